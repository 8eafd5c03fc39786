#!/usr/bin/env python3
"""Trace optimum-quanto's static quantization of a real Whisper, for the kit's parity tests.

    python3 tools/reference/make_quanto_static_fixture.py <model dir in HF layout> OUT.json FILE.flac...

The committed fixture: data/models/whisper-tiny.en, test/fixtures/quant/quanto_static.json, and
train-clean-5 files 1088-134315-0002 .. -0005 of ../shared/data/librispeech.

quantize(model, weights=W, activations=A); generate() on each calibration file inside
Calibration() (momentum 0.9, streamline); freeze(). Records, per quantized module: its class, the
calibrated input and output scales, and whether its output stays quantized after calibration.
Also, on seeded random layers [32, 64], the frozen QLinear's output on a fixed input for every
weights x activations pair of the study's static grid. Developers only.
"""
import base64
import json
import sys

import numpy as np
import soundfile
import torch
from optimum.quanto import Calibration, freeze, qfloat8_e4m3fn, qint4, qint8, quantize
from optimum.quanto.nn import QLinear, QModuleMixin
from transformers import WhisperForConditionalGeneration, WhisperProcessor

QTYPES = {"w8": qint8, "w4": qint4, "wf8": qfloat8_e4m3fn, "a8": qint8, "af8": qfloat8_e4m3fn}


def b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().float().numpy()).astype("<f4").tobytes()).decode()


def greedy(model, features, max_length=448):
    """generate()'s greedy search, written out: transformers 5's logits processors call torch.where,
    which quanto's quantized logits refuse (the first calibration step quantizes proj_out's output)."""
    gc = model.generation_config
    ids = [gc.decoder_start_token_id] + ([gc.lang_to_id["<|en|>"], gc.task_to_id["transcribe"]] if gc.is_multilingual else []) + [gc.no_timestamps_token_id]
    prompt = len(ids)
    encoder_outputs = model.model.encoder(features)
    cache, feed = None, ids
    while len(ids) < max_length:
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=torch.tensor([feed]), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits
        logits = logits if type(logits) is torch.Tensor else logits.dequantize()
        scores = logits[0, -1].clone()
        scores[list(gc.suppress_tokens or [])] = -float("inf")
        if len(ids) == prompt:
            scores[list(gc.begin_suppress_tokens or [])] = -float("inf")
        token = int(torch.argmax(scores))
        ids.append(token)
        feed = [token]
        if token == gc.eos_token_id:
            break
    return [t for t in ids[prompt:] if t < gc.eos_token_id]


def features_of(processor, f):
    audio, rate = soundfile.read(f, dtype="int16")
    assert rate == 16000
    return processor(audio.astype(np.float32) / 32768.0, sampling_rate=16000, return_tensors="pt").input_features


def trace_model(model_dir, files, weights, activations):
    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    quantize(model, weights=QTYPES[weights], activations=QTYPES[activations])
    tokens = []
    with torch.no_grad(), Calibration(momentum=0.9):
        for f in files:
            tokens.append(greedy(model, features_of(processor, f)))
    freeze(model)
    modules = {}
    for name, m in model.named_modules():
        if isinstance(m, QModuleMixin):
            modules[name] = {
                "class": type(m).__name__,
                "input_scale": float(m.input_scale),
                "output_scale": float(m.output_scale),
                "output_quantized": "output" in m._quantize_hooks and m._quantize_hooks["output"].id in m._forward_hooks,
                "input_quantized": "input" in m._quantize_hooks and m._quantize_hooks["input"].id in m._forward_pre_hooks,
            }
    return {"weights": weights, "activations": activations, "files": [f.split("/")[-1] for f in files], "calibration_tokens": tokens, "modules": modules}


def linear_cases():
    cases = []
    for w in ["w8", "w4", "wf8"]:
        for a in ["a8", "af8"]:
            torch.manual_seed(7)
            lin = torch.nn.Linear(64, 32)
            x = torch.randn(3, 64) * 2
            weight, bias = lin.weight.detach().clone(), lin.bias.detach().clone()
            model = torch.nn.Sequential(lin)
            quantize(model, weights=QTYPES[w], activations=QTYPES[a])
            with torch.no_grad(), Calibration(momentum=0.9):
                model(x)
                model(x * 0.5)
            freeze(model)
            with torch.no_grad():
                y = model(x)
            q = model[0]
            cases.append({
                "weights": w, "activations": a,
                "weight": b64(weight), "bias": b64(bias), "input": b64(x), "output": b64(y.dequantize() if hasattr(y, "dequantize") else y),
                "input_scale": float(q.input_scale), "output_scale": float(q.output_scale),
            })
    return cases


def main():
    model_dir, out_file, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    torch.set_num_threads(2)
    result = {"torch": torch.__version__, "traces": [trace_model(model_dir, files, "w8", "a8")], "linear": linear_cases()}
    with open(out_file, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
