#!/usr/bin/env python3
"""Golden log-mel features for test/fixtures/mel/, computed by OpenAI's own implementation.

Developers only (users never need Python). Needs: numpy, soundfile, torch, openai-whisper,
and optionally transformers (to record how far Hugging Face's feature extractor is from OpenAI's).

    python3 tools/reference/make_mel_fixture.py ../shared/data/librispeech/LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac

Audio is read with soundfile (int16 / 32768), which the kit's FLAC decoder matches, so that the
fixture tests the features alone. The full [80, 3000] matrix is 960 kB; the fixture keeps every
STRIDE-th frame (all 80 bins) plus the global maximum, which fixes the (max - 8) floor.
"""
import json
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch
import whisper

STRIDE = 7


def main(flac: str, out_dir: str = "test/fixtures/mel") -> None:
    audio, rate = soundfile.read(flac, dtype="int16")
    assert rate == 16000, rate
    audio = audio.astype(np.float32) / 32768.0
    padded = whisper.pad_or_trim(torch.from_numpy(audio))
    mel = whisper.log_mel_spectrogram(padded, n_mels=80).numpy()  # [80, 3000]
    frames = np.arange(0, mel.shape[1], STRIDE)
    subset = np.ascontiguousarray(mel[:, frames]).astype("<f4")

    meta = {
        "source": Path(flac).name,
        "reference": f"openai-whisper {whisper.__version__ if hasattr(whisper, '__version__') else '?'} "
        f"log_mel_spectrogram(pad_or_trim(audio)), torch {torch.__version__}",
        "audio_samples": int(audio.shape[0]),
        "n_mels": 80,
        "n_frames": int(mel.shape[1]),
        "frame_stride": STRIDE,
        "frames_kept": int(frames.shape[0]),
        "max": float(mel.max()),
        "min": float(mel.min()),
        "layout": "float32 little-endian [n_mels, frames_kept], row-major",
    }
    try:
        from transformers import WhisperFeatureExtractor

        hf = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np").input_features[0]
        meta["hf_feature_extractor_max_abs_diff"] = float(np.abs(hf - mel).max())
    except Exception as err:  # transformers is optional here
        meta["hf_feature_extractor_max_abs_diff"] = f"not computed: {err}"

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mel.f32").write_bytes(subset.tobytes())
    (out / "mel.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
