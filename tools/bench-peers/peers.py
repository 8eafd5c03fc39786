#!/usr/bin/env python3
"""The peers of `make bench` (issue 7), on the same utterances and thread count as the kit, greedy:
transformers WhisperForConditionalGeneration fp32 (the study's pipeline), the same after
torch.ao.quantization.quantize_dynamic(nn.Linear, qint8), and faster-whisper with int8 compute on
a CTranslate2 model. Never needed by users.

    python3 tools/bench-peers/peers.py HF_MODEL_DIR CT2_MODEL_DIR|- THREADS FILE_LIST [BARRIER_DIR PROCESSES] > peers.json

Per system: the first file is a warm-up; then wall time over all files (features included, audio
decoding excluded for all three alike), and the text of each file for WER. With BARRIER_DIR,
PROCESSES copies of this script (each on its share of the files) start each system's timed part
together, as the kit's worker processes do.
"""
import json
import os
import sys
import time

import numpy as np
import soundfile
import torch


def load(files):
    out = []
    for f in files:
        audio, rate = soundfile.read(f, dtype="float32")
        assert rate == 16000, f
        out.append(audio)
    return out


BARRIER = None  # (folder, processes) when several copies run at once


def wait_for_peers(name):
    if BARRIER is None:
        return
    folder, processes = BARRIER
    open(os.path.join(folder, f"{name}.{os.getpid()}"), "w").close()
    while sum(1 for f in os.listdir(folder) if f.startswith(name + ".")) < processes:
        time.sleep(0.005)


def timed(name, transcribe, audios):
    transcribe(audios[0])  # warm-up
    wait_for_peers(name)
    start = time.perf_counter()
    texts = [transcribe(a) for a in audios]
    wall = time.perf_counter() - start
    seconds = sum(len(a) for a in audios) / 16000
    return {"system": name, "wallSeconds": wall, "audioSeconds": seconds, "rtfx": seconds / wall, "texts": texts}


def hf_systems(model_dir, audios):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    kwargs = {"language": "en", "task": "transcribe"} if model.generation_config.is_multilingual else {}

    def run(m):
        def transcribe(audio):
            features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
            with torch.no_grad():
                ids = m.generate(features, **kwargs)
            return processor.batch_decode(ids, skip_special_tokens=True)[0]
        return transcribe

    results = [timed("transformers fp32", run(model), audios)]
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    results.append(timed("torch quantize_dynamic int8", run(quantized), audios))
    return results


def faster_whisper_system(ct2_dir, threads, audios):
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir, device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(audio):
        segments, _ = model.transcribe(audio, language="en", beam_size=1, best_of=1, temperature=0.0, condition_on_previous_text=False, without_timestamps=True, vad_filter=False)
        return "".join(s.text for s in segments)

    return timed("faster-whisper int8", transcribe, audios)


def main():
    global BARRIER
    hf_dir, ct2_dir, threads, file_list = sys.argv[1:5]
    threads = int(threads)
    if len(sys.argv) > 6:
        BARRIER = (sys.argv[5], int(sys.argv[6]))
    torch.set_num_threads(threads)
    audios = load(open(file_list).read().split())
    results = hf_systems(hf_dir, audios)
    if ct2_dir != "-":
        results.append(faster_whisper_system(ct2_dir, threads, audios))
    json.dump({"torch": torch.__version__, "threads": threads, "systems": results}, sys.stdout)


if __name__ == "__main__":
    main()
