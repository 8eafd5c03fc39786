/**
 * Whisper's input features, as openai/whisper audio.py computes them:
 *   pad or trim to 30 s; STFT (n_fft 400, hop 160, periodic Hann, centred with reflect padding);
 *   drop the last frame; power spectrum; Slaney mel filterbank; log10 clamped at 1e-10;
 *   floor at (max - 8); (x + 4) / 4.
 */
import { RealFFT } from "./fft.js";
import { SAMPLE_RATE } from "./decode.js";

export const N_FFT = 400;
export const HOP_LENGTH = 160;
export const CHUNK_SECONDS = 30;
export const N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE; // 480000
export const N_FRAMES = N_SAMPLES / HOP_LENGTH; // 3000
const N_BINS = N_FFT / 2 + 1; // 201

/** Zero-pad or cut to exactly 30 s, as whisper.pad_or_trim and Hugging Face's feature extractor do. */
export function padOrTrim(audio: Float32Array, length = N_SAMPLES): Float32Array {
  if (audio.length === length) return audio;
  const out = new Float32Array(length);
  out.set(audio.length > length ? audio.subarray(0, length) : audio);
  return out;
}

// Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOG_STEP = Math.log(6.4) / 27;

export function hzToMel(hz: number): number {
  return hz >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(hz / MIN_LOG_HZ) / LOG_STEP : hz / F_SP;
}

export function melToHz(mel: number): number {
  return mel >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOG_STEP * (mel - MIN_LOG_MEL)) : F_SP * mel;
}

/**
 * librosa.filters.mel(sr=16000, n_fft=400, n_mels, fmin=0, fmax=8000, norm="slaney"): triangles
 * between consecutive mel points, each scaled to unit area. This is what OpenAI saved in
 * mel_filters.npz and what Hugging Face's WhisperFeatureExtractor computes.
 */
export function melFilterbank(nMels: number, sampleRate = SAMPLE_RATE, nFft = N_FFT): Float32Array /* [nMels, nFft/2+1] */ {
  const bins = nFft / 2 + 1;
  const fftFreqs = Array.from({ length: bins }, (_, i) => (i * sampleRate) / 2 / (bins - 1));
  const melMax = hzToMel(sampleRate / 2);
  const melPoints = Array.from({ length: nMels + 2 }, (_, i) => melToHz((i * melMax) / (nMels + 1)));
  const out = new Float32Array(nMels * bins);
  for (let m = 0; m < nMels; m++) {
    const [lo, centre, hi] = [melPoints[m]!, melPoints[m + 1]!, melPoints[m + 2]!];
    const enorm = 2 / (hi - lo);
    for (let b = 0; b < bins; b++) {
      const lower = (fftFreqs[b]! - lo) / (centre - lo);
      const upper = (hi - fftFreqs[b]!) / (hi - centre);
      out[m * bins + b] = Math.max(0, Math.min(lower, upper)) * enorm;
    }
  }
  return out;
}

const filterCache = new Map<number, Float32Array>();
function cachedFilterbank(nMels: number): Float32Array {
  let filters = filterCache.get(nMels);
  if (!filters) {
    filters = melFilterbank(nMels);
    filterCache.set(nMels, filters);
  }
  return filters;
}

/** Log-mel features of up to 30 s of 16 kHz audio: [nMels, 3000], row-major. */
export function logMelSpectrogram(audio: Float32Array, nMels = 80, filters: Float32Array = cachedFilterbank(nMels)): Float32Array {
  const x = padOrTrim(audio);
  const pad = N_FFT / 2;
  const fft = new RealFFT(N_FFT);
  const window = new Float64Array(N_FFT);
  for (let i = 0; i < N_FFT; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N_FFT); // periodic Hann
  const frame = new Float64Array(N_FFT);
  const specRe = new Float64Array(N_BINS);
  const specIm = new Float64Array(N_BINS);
  const power = new Float64Array(N_BINS);
  const logMel = new Float32Array(nMels * N_FRAMES);
  // A frame of zeros (the padding after a short utterance) has zero power in every bin: its
  // column is log10 of the clamp, exactly what the transform would give, without computing it.
  const silentLog = Math.log10(1e-10);
  let maxLog = -Infinity;
  // Each triangular filter is non-zero on a few bins only: [first, end) per filter.
  const support = new Int32Array(2 * nMels);
  for (let m = 0; m < nMels; m++) {
    let first = N_BINS;
    let end = 0;
    for (let k = 0; k < N_BINS; k++) {
      if (filters[m * N_BINS + k] !== 0) {
        first = Math.min(first, k);
        end = k + 1;
      }
    }
    support[2 * m] = first;
    support[2 * m + 1] = Math.max(first, end);
  }
  // Reflect padding (torch.stft center=True): index -j maps to j, index n-1+j to n-1-j.
  const at = (i: number) => x[i < 0 ? -i : i >= x.length ? 2 * (x.length - 1) - i : i]!;
  for (let t = 0; t < N_FRAMES; t++) {
    const start = t * HOP_LENGTH - pad;
    let silent = true;
    for (let i = 0; i < N_FFT; i++) {
      const v = at(start + i) * window[i]!;
      frame[i] = v;
      if (v !== 0) silent = false;
    }
    if (silent) {
      for (let m = 0; m < nMels; m++) logMel[m * N_FRAMES + t] = silentLog;
      if (silentLog > maxLog) maxLog = silentLog;
      continue;
    }
    fft.transform(frame, specRe, specIm);
    for (let k = 0; k < N_BINS; k++) power[k] = specRe[k]! * specRe[k]! + specIm[k]! * specIm[k]!;
    for (let m = 0; m < nMels; m++) {
      let acc = 0;
      const row = m * N_BINS;
      for (let k = support[2 * m]!; k < support[2 * m + 1]!; k++) acc += filters[row + k]! * power[k]!;
      const v = Math.log10(Math.max(acc, 1e-10));
      logMel[m * N_FRAMES + t] = v;
      if (v > maxLog) maxLog = v;
    }
  }
  const floor = maxLog - 8;
  for (let i = 0; i < logMel.length; i++) logMel[i] = (Math.max(logMel[i]!, floor) + 4) / 4;
  return logMel;
}
