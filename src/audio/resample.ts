/**
 * Band-limited resampling by a Kaiser-windowed sinc (the method of libswresample and
 * libsamplerate). Whisper's load_audio resamples with ffmpeg; this is not bit-identical to it,
 * but both are linear-phase low-pass interpolators with the cutoff just under the new Nyquist.
 */
const HALF_TAPS = 32; // zero crossings on each side of the kernel centre
const KAISER_BETA = 9; // ~90 dB stop band
const CUTOFF = 0.97; // fraction of the lower Nyquist kept

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Resample `input` (fromRate Hz) to toRate Hz; both rates integers. */
export function resample(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (fromRate === toRate) return input;
  const g = gcd(fromRate, toRate);
  const up = toRate / g; // output n sits at input position n * down / up
  const down = fromRate / g;
  const ratio = toRate / fromRate;
  const fc = CUTOFF * Math.min(1, ratio); // cutoff in units of the input Nyquist
  const halfWidth = HALF_TAPS / fc; // kernel half-width in input samples
  const reach = Math.ceil(halfWidth);
  const taps = 2 * reach;
  const i0Beta = besselI0(KAISER_BETA);
  // Polyphase table: the kernel for each fractional offset phase/up, taps k = base - reach + 1 .. base + reach.
  const phases = Math.min(up, 4096);
  const table = new Float64Array(phases * taps);
  for (let p = 0; p < phases; p++) {
    const frac = p / phases;
    for (let j = 0; j < taps; j++) {
      const t = j - reach + 1 - frac;
      const x = t * fc;
      const r = t / halfWidth;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const window = Math.abs(r) >= 1 ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / i0Beta;
      table[p * taps + j] = fc * sinc * window;
    }
  }
  const outLength = Math.round(input.length * ratio);
  const out = new Float32Array(outLength);
  for (let n = 0; n < outLength; n++) {
    const base = Math.floor((n * down) / up);
    const phase = phases === up ? (n * down) % up : Math.floor((((n * down) % up) / up) * phases);
    const row = phase * taps;
    let acc = 0;
    for (let j = 0; j < taps; j++) {
      const k = base - reach + 1 + j;
      if (k >= 0 && k < input.length) acc += input[k]! * table[row + j]!;
    }
    out[n] = acc;
  }
  return out;
}
