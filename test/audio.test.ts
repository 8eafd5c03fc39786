import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { decodeAudio, encodeWav16, loadAudio, SAMPLE_RATE } from "../src/audio/decode.js";
import { FFT } from "../src/audio/fft.js";
import { logMelSpectrogram, melFilterbank, N_FRAMES, padOrTrim } from "../src/audio/mel.js";
import { resample } from "../src/audio/resample.js";
import { KitError } from "../src/util/errors.js";
import { readNpz } from "../src/util/npz.js";
import { ASSETS, FIXTURES, TEST_CLEAN_FLAC, tempDir } from "./support/env.js";

describe("audio decoding", () => {
  it("decodes a real LibriSpeech FLAC at 16 kHz with soundfile's int16 scale", async () => {
    const audio = await loadAudio(TEST_CLEAN_FLAC);
    const meta = JSON.parse(readFileSync(join(FIXTURES, "mel", "mel.json"), "utf8"));
    assert.equal(audio.length, meta.audio_samples);
    // every sample is an int16 code divided by 32768, as numpy/soundfile read it
    for (let i = 0; i < audio.length; i += 97) assert.equal(Math.round(audio[i]! * 32768), audio[i]! * 32768);
  });

  it("downmixes and resamples a 44.1 kHz stereo file to 16 kHz mono", async () => {
    const audio = await loadAudio(join(ASSETS, "openai", "jfk.flac"));
    assert.equal(audio.length, 176000); // 11 s
    let energy = 0;
    for (const v of audio) energy += v * v;
    assert.ok(energy / audio.length > 1e-4, "resampled speech has energy");
  });

  it("resampling keeps a tone below the new Nyquist and removes one above it", () => {
    const from = 44100;
    const tone = (hz: number) => Float32Array.from({ length: from }, (_, i) => Math.sin((2 * Math.PI * hz * i) / from));
    const rms = (x: Float32Array) => Math.sqrt(x.subarray(1000, x.length - 1000).reduce((a, v) => a + v * v, 0) / (x.length - 2000));
    const pass = resample(tone(1000), from, SAMPLE_RATE);
    const stop = resample(tone(12000), from, SAMPLE_RATE);
    assert.equal(pass.length, SAMPLE_RATE);
    assert.ok(Math.abs(rms(pass) - Math.SQRT1_2) < 0.01, `passband rms ${rms(pass)}`);
    assert.ok(rms(stop) < 0.001, `stopband rms ${rms(stop)}`);
  });

  it("round-trips 16-bit WAV, mono and multichannel", async () => {
    const samples = Float32Array.from({ length: 1600 }, (_, i) => Math.round(Math.sin(i / 10) * 16000) / 32768);
    const wav = encodeWav16(samples, SAMPLE_RATE);
    const decoded = await decodeAudio(wav, "tone.wav");
    assert.equal(decoded.sampleRate, SAMPLE_RATE);
    assert.deepEqual(decoded.channels[0], samples);
  });

  it("names the file for empty, non-audio, truncated and damaged input", async () => {
    const dir = await tempDir();
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ["empty.flac", new Uint8Array(0), /is empty/],
      ["notes.flac", new TextEncoder().encode("this is a text file, not audio"), /not a FLAC or WAV file/],
      ["cut.flac", readFileSync(TEST_CLEAN_FLAC).subarray(0, 40), /damaged FLAC/],
      ["nodata.wav", encodeWav16(new Float32Array(0), SAMPLE_RATE), /no samples/],
    ];
    for (const [name, bytes, pattern] of cases) {
      const file = join(dir, name);
      await writeFile(file, bytes);
      await assert.rejects(loadAudio(file), (err: unknown) => {
        assert.ok(err instanceof KitError, `${name}: ${String(err)}`);
        assert.match(err.message, pattern);
        assert.equal(err.file, file);
        return true;
      });
    }
    await assert.rejects(loadAudio(join(dir, "missing.flac")), /cannot read audio file .*missing\.flac/);
  });
});

describe("log-mel features", () => {
  it("the FFT of size 400 equals a direct DFT", () => {
    const n = 400;
    const re = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) + ((i * 7919) % 13) / 13);
    const im = new Float64Array(n);
    const outRe = new Float64Array(n);
    const outIm = new Float64Array(n);
    new FFT(n).transform(re, im, outRe, outIm);
    for (const k of [0, 1, 7, 99, 200, 333]) {
      let sr = 0;
      let si = 0;
      for (let t = 0; t < n; t++) {
        sr += re[t]! * Math.cos((2 * Math.PI * k * t) / n);
        si -= re[t]! * Math.sin((2 * Math.PI * k * t) / n);
      }
      assert.ok(Math.abs(outRe[k]! - sr) < 1e-9 && Math.abs(outIm[k]! - si) < 1e-9, `bin ${k}`);
    }
  });

  it("the Slaney filterbank equals OpenAI's mel_filters.npz (80 and 128 bins)", async () => {
    const npz = await readNpz(join(ASSETS, "openai", "mel_filters.npz"));
    for (const n of [80, 128]) {
      const ref = npz.get(`mel_${n}`)!;
      assert.deepEqual(ref.shape, [n, 201]);
      const ours = melFilterbank(n);
      let maxDiff = 0;
      for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - ref.data[i]!));
      assert.ok(maxDiff < 1e-7, `mel_${n}: max difference ${maxDiff}`);
    }
  });

  it("matches OpenAI's log_mel_spectrogram on a real LibriSpeech file within 1e-4", async () => {
    const meta = JSON.parse(readFileSync(join(FIXTURES, "mel", "mel.json"), "utf8"));
    const bytes = readFileSync(join(FIXTURES, "mel", "mel.f32"));
    const golden = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const mel = logMelSpectrogram(await loadAudio(TEST_CLEAN_FLAC));
    assert.equal(mel.length, 80 * N_FRAMES);
    let maxDiff = 0;
    for (let b = 0; b < 80; b++) {
      for (let j = 0; j < meta.frames_kept; j++) {
        maxDiff = Math.max(maxDiff, Math.abs(mel[b * N_FRAMES + j * meta.frame_stride]! - golden[b * meta.frames_kept + j]!));
      }
    }
    assert.ok(maxDiff < 1e-4, `max abs difference ${maxDiff}`);
    assert.ok(Math.abs(mel.reduce((a, b) => Math.max(a, b), -Infinity) - meta.max) < 1e-4);
  });

  it("pads short audio and trims long audio to 30 s", () => {
    assert.equal(padOrTrim(new Float32Array(10)).length, 480000);
    const long = new Float32Array(500000).fill(0.5);
    const cut = padOrTrim(long);
    assert.equal(cut.length, 480000);
    assert.equal(cut[479999], 0.5);
  });
});
