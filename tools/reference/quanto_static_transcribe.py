#!/usr/bin/env python3
"""Transcribe with a real optimum-quanto static model, for end-to-end comparison with the kit.

    python3 tools/reference/quanto_static_transcribe.py <model dir> <weights w8|w4|wf8> <activations a8|af8> \
        CALIB_LIST EVAL_LIST > out.jsonl

CALIB_LIST and EVAL_LIST are text files with one audio path per line. Calibration as in
make_quanto_static_fixture.py (greedy decoding inside Calibration(momentum=0.9)), then freeze()
and greedy decoding of every evaluation file; prints {"file", "tokens"} per line, then the scales.
Developers only.
"""
import json
import sys

import torch
from optimum.quanto import Calibration, freeze, quantize
from make_quanto_static_fixture import QTYPES, greedy, features_of
from transformers import WhisperForConditionalGeneration, WhisperProcessor


def main():
    model_dir, weights, activations, calib_list, eval_list = sys.argv[1:6]
    torch.set_num_threads(2)
    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    quantize(model, weights=QTYPES[weights], activations=QTYPES[activations])
    with torch.no_grad(), Calibration(momentum=0.9):
        for f in open(calib_list).read().split():
            greedy(model, features_of(processor, f))
    freeze(model)
    with torch.no_grad():
        for f in open(eval_list).read().split():
            print(json.dumps({"file": f, "tokens": greedy(model, features_of(processor, f))}), flush=True)
    scales = {n: float(m.input_scale) for n, m in model.named_modules() if hasattr(m, "input_scale") and type(m).__name__ == "QLinear"}
    print(json.dumps({"scales": scales}))


if __name__ == "__main__":
    main()
