import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { decodeAudio, encodeWav16, loadAudio, SAMPLE_RATE } from "../src/audio/decode.js";
import { FFT, RealFFT } from "../src/audio/fft.js";
import { HOP_LENGTH, logMelSpectrogram, melFilterbank, N_FFT, N_FRAMES, padOrTrim } from "../src/audio/mel.js";
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
    const audio = await loadAudio(join(ASSETS, "openai", "jfk-3s.flac"));
    assert.equal(audio.length, 48000); // 3 s
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

  it("the planned FFT equals a direct DFT at sizes with radices 2, 3, 4, 5, 7 and a prime", () => {
    for (const n of [1, 2, 8, 63, 200, 210, 22]) {
      const re = Float64Array.from({ length: n }, (_, i) => Math.cos(i * 1.3) - ((i * 31) % 7) / 7);
      const im = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 0.7));
      const outRe = new Float64Array(n);
      const outIm = new Float64Array(n);
      new FFT(n).transform(re, im, outRe, outIm);
      for (let k = 0; k < n; k++) {
        let sr = 0;
        let si = 0;
        for (let t = 0; t < n; t++) {
          const a = (-2 * Math.PI * k * t) / n;
          sr += re[t]! * Math.cos(a) - im[t]! * Math.sin(a);
          si += re[t]! * Math.sin(a) + im[t]! * Math.cos(a);
        }
        assert.ok(Math.abs(outRe[k]! - sr) < 1e-9 && Math.abs(outIm[k]! - si) < 1e-9, `n ${n}, bin ${k}: ${outRe[k]} ${outIm[k]} vs ${sr} ${si}`);
      }
    }
  });

  it("the real FFT of 400 samples gives every bin 0..200 of the complex one", () => {
    const x = Float64Array.from({ length: 400 }, (_, i) => Math.sin(i * 0.37) + ((i * 7919) % 13) / 13);
    const re = new Float64Array(201);
    const im = new Float64Array(201);
    new RealFFT(400).transform(x, re, im);
    const fullRe = new Float64Array(400);
    const fullIm = new Float64Array(400);
    new FFT(400).transform(x, new Float64Array(400), fullRe, fullIm);
    for (let k = 0; k <= 200; k++) assert.ok(Math.abs(re[k]! - fullRe[k]!) < 1e-9 && Math.abs(im[k]! - fullIm[k]!) < 1e-9, `bin ${k}`);
  });

  it("skipping silent frames gives what transforming every frame gives", () => {
    // Quiet noise (so that the floor, max - 8, lies below the silent frames' -10), a stretch of
    // digital silence, noise again, then the 30 s padding.
    const audio = Float32Array.from({ length: 24000 }, (_, i) =>
      i >= 8000 && i < 16000 ? 0 : (Math.sin(i * 0.05) * 0.2 + (((i * 7919) % 101) / 101 - 0.5) * 0.05) * 1e-3,
    );
    const filters = melFilterbank(80);
    const fast = logMelSpectrogram(audio, 80, filters);
    // The plain recipe: complex FFT of every frame, power, filterbank, log10, floor, scale.
    const x = padOrTrim(audio);
    const fft = new FFT(N_FFT);
    const frame = new Float64Array(N_FFT);
    const re = new Float64Array(N_FFT);
    const im = new Float64Array(N_FFT);
    const plain = new Float64Array(80 * N_FRAMES);
    for (let t = 0; t < N_FRAMES; t++) {
      for (let i = 0; i < N_FFT; i++) {
        const j = t * HOP_LENGTH - N_FFT / 2 + i;
        frame[i] = x[j < 0 ? -j : j >= x.length ? 2 * (x.length - 1) - j : j]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N_FFT));
      }
      fft.transform(frame, new Float64Array(N_FFT), re, im);
      for (let m = 0; m < 80; m++) {
        let acc = 0;
        for (let k = 0; k <= N_FFT / 2; k++) acc += filters[m * 201 + k]! * (re[k]! * re[k]! + im[k]! * im[k]!);
        plain[m * N_FRAMES + t] = Math.log10(Math.max(acc, 1e-10));
      }
    }
    const floor = plain.reduce((a, b) => Math.max(a, b), -Infinity) - 8;
    let maxDiff = 0;
    for (let i = 0; i < plain.length; i++) maxDiff = Math.max(maxDiff, Math.abs(fast[i]! - Math.fround((Math.max(plain[i]!, floor) + 4) / 4)));
    assert.ok(maxDiff < 1e-6, `max difference ${maxDiff}`);
    assert.ok(floor < -10, `floor ${floor}`);
    assert.equal(fast[10 * N_FRAMES + 75], Math.fround((-10 + 4) / 4), "a frame inside the silence takes the clamped value");
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
