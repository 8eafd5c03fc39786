#!/usr/bin/env python3
"""Transcribe with real PyTorch static int8 (eager mode), for end-to-end comparison with the kit.

    python3 tools/reference/torch_static_transcribe.py <model dir> CALIB_LIST EVAL_LIST > out.jsonl

Every nn.Linear of Hugging Face's Whisper (the tied output projection too) is wrapped as
QuantStub -> Linear -> DeQuantStub with get_default_qconfig("x86"); prepare(); greedy decoding of
each calibration file (the fp32 model, observers recording); convert(); greedy decoding of each
evaluation file. Prints {"file", "tokens"} per line, then the calibrated qparams. Developers only.
"""
import json
import sys

import torch
from torch.ao.quantization import convert, get_default_qconfig, prepare
from make_quanto_static_fixture import features_of, greedy
from make_torch_static_fixture import Wrapped
from transformers import WhisperForConditionalGeneration, WhisperProcessor


def wrap_linears(module):
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, Wrapped(child))
        else:
            wrap_linears(child)


def main():
    model_dir, calib_list, eval_list = sys.argv[1:4]
    torch.set_num_threads(2)
    torch.backends.quantized.engine = "x86"
    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    model.proj_out = torch.nn.Linear(model.proj_out.in_features, model.proj_out.out_features, bias=False)
    model.proj_out.weight = torch.nn.Parameter(model.model.decoder.embed_tokens.weight.detach().clone())  # untied copy, as the kit quantizes it
    wrap_linears(model)
    for m in model.modules():
        if isinstance(m, Wrapped):
            m.qconfig = get_default_qconfig("x86")  # its QuantStub and Linear inherit it; nothing else is quantized
    prepare(model, inplace=True)
    with torch.no_grad():
        for f in open(calib_list).read().split():
            greedy(model, features_of(processor, f))
    convert(model, inplace=True)
    with torch.no_grad():
        for f in open(eval_list).read().split():
            tokens = greedy(model, features_of(processor, f))
            print(json.dumps({"file": f, "tokens": tokens, "text": processor.decode(tokens)}), flush=True)
    qparams = {n: [float(m.quant.scale), int(m.quant.zero_point), float(m.lin.scale), int(m.lin.zero_point)] for n, m in model.named_modules() if isinstance(m, Wrapped)}
    print(json.dumps({"qparams": qparams}))


if __name__ == "__main__":
    main()
