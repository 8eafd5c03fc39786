#!/usr/bin/env python3
"""The peers of `make bench` (issue 7), on the same utterances and thread count as the kit, greedy:
transformers WhisperForConditionalGeneration fp32 (the study's pipeline), the same after
torch.ao.quantization.quantize_dynamic(nn.Linear, qint8), and faster-whisper with int8 compute on
a CTranslate2 model. Never needed by users.

    python3 tools/bench-peers/peers.py HF_MODEL_DIR CT2_MODEL_DIR|- THREADS FILE_LIST [BARRIER_DIR PROCESSES] > peers.json
    python3 tools/bench-peers/peers.py --convert HF_MODEL_DIR CT2_OUT_DIR

Per system: the first file is a warm-up; then wall time over all files (features included, audio
decoding excluded for all three alike), and the text and generated token count of each file. A
FILE_LIST line is a path, or "path<TAB>N" for a teacher-forced length: exactly N new tokens
(transformers: min_new_tokens = max_new_tokens = N; faster-whisper: <|endoftext|> suppressed and
max_new_tokens N). Every file is cut to its first 30 s, the one window the kit transcribes. With
BARRIER_DIR, PROCESSES copies of this script (each on its share of the files) start each system's
timed part together, as the kit's worker processes do. --convert writes a CTranslate2 copy of a
Hugging Face checkpoint (random-weight models of the bench have no published one).
"""
import json
import os
import sys
import time

import numpy as np
import soundfile
import torch


WINDOW = 30 * 16000


def load(files):
    out = []
    for f in files:
        audio, rate = soundfile.read(f, dtype="float32")
        assert rate == 16000, f
        out.append(audio[:WINDOW])
    return out


BARRIER = None  # (folder, processes) when several copies run at once


def wait_for_peers(name):
    if BARRIER is None:
        return
    folder, processes = BARRIER
    open(os.path.join(folder, f"{name}.{os.getpid()}"), "w").close()
    while sum(1 for f in os.listdir(folder) if f.startswith(name + ".")) < processes:
        time.sleep(0.005)


def timed(name, transcribe, audios, lengths):
    transcribe(audios[0], lengths[0])  # warm-up
    wait_for_peers(name)
    start = time.perf_counter()
    outputs = [transcribe(a, n) for a, n in zip(audios, lengths)]
    wall = time.perf_counter() - start
    seconds = sum(len(a) for a in audios) / 16000
    return {
        "system": name,
        "wallSeconds": wall,
        "audioSeconds": seconds,
        "rtfx": seconds / wall,
        "texts": [text for text, _ in outputs],
        "tokens": [tokens for _, tokens in outputs],
    }


def hf_systems(model_dir, audios, lengths):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    kwargs = {"language": "en", "task": "transcribe"} if model.generation_config.is_multilingual else {}

    config = model.generation_config
    prompt_ids = {config.decoder_start_token_id, config.no_timestamps_token_id, *(getattr(config, "lang_to_id", None) or {}).values(), *(getattr(config, "task_to_id", None) or {}).values()}

    def run(m):
        def transcribe(audio, n):
            features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
            fixed = {} if n is None else {"min_new_tokens": n, "max_new_tokens": n}
            with torch.no_grad():
                ids = m.generate(features, **kwargs, **fixed)
            sequence = ids[0].tolist()
            while sequence and sequence[0] in prompt_ids:  # the decoder prompt, where generate() returns it
                sequence.pop(0)
            if sequence and sequence[-1] == config.eos_token_id:
                sequence.pop()
            generated = len(sequence)
            return processor.batch_decode(ids, skip_special_tokens=True)[0], generated
        return transcribe

    results = [timed("transformers fp32", run(model), audios, lengths)]
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    results.append(timed("torch quantize_dynamic int8", run(quantized), audios, lengths))
    return results


def faster_whisper_system(ct2_dir, threads, audios, lengths):
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    eot = model.hf_tokenizer.token_to_id("<|endoftext|>")
    prompt_length = 4 if model.model.is_multilingual else 2  # start, [language, task,] no-timestamps

    def transcribe(audio, n):
        # forced: no end of text, and no segment dropped as silence (random weights' probabilities are
        # arbitrary). CTranslate2 decodes at most max_length / 2 new tokens (openai-whisper's sample_len,
        # n_text_ctx // 2; measured: max_length 58 gives 29), and faster-whisper passes max_length as
        # prompt + max_new_tokens: so max_new_tokens 2 N - prompt gives N.
        fixed = {} if n is None else {"max_new_tokens": 2 * n - prompt_length, "suppress_tokens": [-1, eot], "no_speech_threshold": None}
        segments, _ = model.transcribe(
            audio, language="en", beam_size=1, best_of=1, temperature=0.0, condition_on_previous_text=False, without_timestamps=True, vad_filter=False, **fixed
        )
        segments = list(segments)
        return "".join(s.text for s in segments), sum(len(s.tokens) for s in segments)

    return timed("faster-whisper int8", transcribe, audios, lengths)


def convert(hf_dir, out_dir):
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(hf_dir, copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(out_dir)


def main():
    global BARRIER
    if sys.argv[1] == "--convert":
        return convert(sys.argv[2], sys.argv[3])
    hf_dir, ct2_dir, threads, file_list = sys.argv[1:5]
    threads = int(threads)
    if len(sys.argv) > 6:
        BARRIER = (sys.argv[5], int(sys.argv[6]))
    torch.set_num_threads(threads)
    entries = [line.split("\t") for line in open(file_list).read().splitlines() if line]
    audios = load([e[0] for e in entries])
    lengths = [int(e[1]) if len(e) > 1 else None for e in entries]
    results = hf_systems(hf_dir, audios, lengths)
    if ct2_dir != "-":
        results.append(faster_whisper_system(ct2_dir, threads, audios, lengths))
    json.dump({"torch": torch.__version__, "threads": threads, "systems": results}, sys.stdout)


if __name__ == "__main__":
    main()
