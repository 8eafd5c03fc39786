#!/usr/bin/env python3
"""Transcribe with Hugging Face transformers, the study's own pipeline, for token-level parity checks.

    python3 tools/reference/hf_transcribe.py <model dir in HF layout> FILE.flac... > hf.jsonl

Greedy generate() with its defaults (language "en" and task "transcribe" forced for multilingual
models, as the kit's default prompt does), fp32 on CPU. Prints one JSON line per file:
{"file", "tokens" (generated, after the prompt), "text"}. Developers only.
"""
import json
import sys

import numpy as np
import soundfile
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

model_dir, files = sys.argv[1], sys.argv[2:]
processor = WhisperProcessor.from_pretrained(model_dir)
model = WhisperForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
multilingual = model.generation_config.is_multilingual
torch.set_num_threads(2)
for f in files:
    audio, rate = soundfile.read(f, dtype="int16")
    assert rate == 16000
    features = processor(audio.astype(np.float32) / 32768.0, sampling_rate=16000, return_tensors="pt").input_features
    kwargs = {"language": "en", "task": "transcribe"} if multilingual else {}
    with torch.no_grad():
        out = model.generate(features, **kwargs)
    ids = out[0].tolist()
    # special tokens (prompt, <|endoftext|>, timestamps) all have ids >= <|endoftext|>; versions differ in which they return
    gen = [t for t in ids if t < model.generation_config.eos_token_id]
    print(json.dumps({"file": f, "tokens": gen, "text": processor.batch_decode(out, skip_special_tokens=True)[0]}), flush=True)
