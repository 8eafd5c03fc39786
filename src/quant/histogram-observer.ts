/**
 * PyTorch's HistogramObserver (torch.ao.quantization, the default activation observer of the x86
 * qconfig): a running 2048-bin histogram over the range seen so far (re-binned through a 16x
 * upsampled copy when the range grows), then a search for the clipping range that minimizes the
 * L2 quantization error into 256 destination bins, and MinMaxObserver's affine qparams on that
 * range. float32 wherever torch computes in float32; the counts are float32 as torch keeps them.
 */
import { clamp, f, FLOAT32_EPS, roundHalfEven } from "./float32.js";

const BINS = 2048;
const DST_BINS = 256; // 2^8: the search always assumes 8-bit destinations, even with reduce_range
const UPSAMPLE = 16;

/** torch.linspace(start, end, steps) in float32: the first half counts up from start, the second down from end. */
export function linspaceFloat32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const step = f((end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < half ? f(start + f(step * i)) : f(end - f(step * (steps - i - 1)));
  return out;
}

/** torch.histc(x, bins, min, max) on CPU: linear interpolation, corrected against the bin edges. */
export function histc(x: Float32Array, bins: number, min: number, max: number): Float32Array {
  let lo = f(min);
  let hi = f(max);
  if (lo === hi) {
    lo = f(lo - 1);
    hi = f(hi + 1);
  }
  const edges = linspaceFloat32(lo, hi, bins + 1);
  const hist = new Float32Array(bins);
  const width = f(hi - lo);
  for (const v of x) {
    if (!(v >= lo && v <= hi)) continue; // outside the range (and NaN) is not counted
    let pos = Math.trunc(f(f(f(v - lo) / width) * bins));
    if (pos > bins - 1) pos = bins - 1;
    if (pos < 0) pos = 0;
    // the interpolated bin may be one off near an edge: the edges decide
    if (pos > 0 && v < edges[pos]!) pos--;
    else if (pos < bins - 1 && v >= edges[pos + 1]!) pos++;
    hist[pos] = f(hist[pos]! + 1);
  }
  return hist;
}

export interface AffineQParams {
  scale: number;
  zeroPoint: number;
}

/** MinMaxObserver's per-tensor affine qparams for a range (widened to include 0). */
export function affineQParams(min: number, max: number, quantMin: number, quantMax: number): AffineQParams {
  const minNeg = Math.min(f(min), 0);
  const maxPos = Math.max(f(max), 0);
  const scale = Math.max(f(f(maxPos - minNeg) / (quantMax - quantMin)), FLOAT32_EPS);
  const zeroPoint = clamp(quantMin - roundHalfEven(f(minNeg / scale)), quantMin, quantMax);
  return { scale, zeroPoint };
}

export class HistogramObserver {
  histogram: Float32Array = new Float32Array(BINS);
  min = Infinity;
  max = -Infinity;

  /** quint8 with reduce_range (x86/fbgemm): codes 0..127. */
  constructor(
    readonly quantMin = 0,
    readonly quantMax = 127,
  ) {}

  observe(x: Float32Array): void {
    let xMin = Infinity;
    let xMax = -Infinity;
    for (const v of x) {
      if (!Number.isFinite(v)) continue;
      if (v < xMin) xMin = v;
      if (v > xMax) xMax = v;
    }
    if (xMin === Infinity) return; // empty, or infinities only: ignored, as torch does
    if (this.min === Infinity) {
      this.min = xMin;
      this.max = xMax;
      this.histogram = histc(x, BINS, xMin, xMax);
      return;
    }
    const newMin = Math.min(this.min, xMin);
    const newMax = Math.max(this.max, xMax);
    const update = histc(x, BINS, newMin, newMax);
    if (newMin === this.min && newMax === this.max) {
      for (let i = 0; i < BINS; i++) this.histogram[i] = f(this.histogram[i]! + update[i]!);
      return;
    }
    this.histogram = this.combine(update, newMin, newMax);
    this.min = newMin;
    this.max = newMax;
  }

  /** _combine_histograms: spread the old counts over the new range through a 16x finer copy. */
  private combine(update: Float32Array, newMin: number, newMax: number): Float32Array {
    const out = Float32Array.from(update);
    if (this.min === this.max) {
      const total = this.histogram.reduce((a, b) => f(a + b), 0);
      const moved = histc(Float32Array.of(this.min), BINS, newMin, newMax);
      for (let i = 0; i < BINS; i++) out[i] = f(out[i]! + f(moved[i]! * total));
      return out;
    }
    const fine = BINS * UPSAMPLE;
    const binSize = f(f(this.max - this.min) / fine);
    const mids = linspaceFloat32(this.min, this.max, fine + 1);
    const boundaries = linspaceFloat32(newMin, newMax, BINS + 1);
    const moved = new Float32Array(BINS);
    let b = 0;
    for (let i = 0; i < fine; i++) {
      const mid = f(mids[i]! + f(0.5 * binSize));
      // torch.bucketize(right=True) - 1: the last boundary <= mid
      while (b < BINS && boundaries[b + 1]! <= mid) b++;
      while (b > 0 && boundaries[b]! > mid) b--;
      const bucket = boundaries[0]! > mid ? 0 : b;
      moved[bucket] = f(moved[bucket]! + f(this.histogram[Math.floor(i / UPSAMPLE)]! / UPSAMPLE));
    }
    for (let i = 0; i < BINS; i++) out[i] = f(out[i]! + moved[i]!);
    return out;
  }

  /** _compute_quantization_error for clipping to bins [start, end] (the L2 norm of the error). */
  private quantizationError(start: number, end: number): number {
    const binWidth = (this.max - this.min) / BINS; // python floats from .item()
    const dstWidth = (binWidth * (end - start + 1)) / DST_BINS;
    if (dstWidth === 0) return 0;
    const bw = f(binWidth);
    const dw = f(dstWidth);
    const norm = (a: number, b: number, density: number) => f(density * f(f(f(f(b * b) * b) - f(f(a * a) * a)) / 3));
    let sum = 0;
    for (let i = 0; i < BINS; i++) {
      const begin = f((i - start) * bw);
      const endV = f(begin + bw);
      const dBegin = clamp(Math.floor(f(begin / dw)), 0, DST_BINS - 1);
      const dEnd = clamp(Math.floor(f(endV / dw)), 0, DST_BINS - 1);
      const density = f(this.histogram[i]! / bw);
      const beginCenter = f(f(dBegin + 0.5) * dw);
      let n = norm(f(begin - beginCenter), f(dw / 2), density);
      n = f(n + f((dEnd - dBegin - 1) * norm(f(-dw / 2), f(dw / 2), density)));
      const endCenter = f(f(dEnd * dw) + f(dw / 2));
      n = f(n + norm(f(-dw / 2), f(endV - endCenter), density));
      sum += n;
    }
    return sum;
  }

  /** _non_linear_param_search: shrink the range from whichever side holds less mass while the error falls. */
  searchRange(): [number, number] {
    const total = this.histogram.reduce((a, b) => a + b, 0);
    const cumulative = new Float32Array(BINS);
    let running = 0;
    for (let i = 0; i < BINS; i++) cumulative[i] = running = f(running + this.histogram[i]!);
    const step = 1e-5;
    let alpha = 0;
    let beta = 1;
    let start = 0;
    let end = BINS - 1;
    let best = Infinity;
    while (alpha < beta) {
      const nextAlpha = alpha + step;
      const nextBeta = beta - step;
      let l = start;
      let r = end;
      while (l < end && cumulative[l]! < f(nextAlpha * total)) l++;
      while (r > start && cumulative[r]! > f(nextBeta * total)) r--;
      let nextStart = start;
      let nextEnd = end;
      if (l - start > end - r) {
        nextStart = l;
        alpha = nextAlpha;
      } else {
        nextEnd = r;
        beta = nextBeta;
      }
      if (nextStart === start && nextEnd === end) continue;
      const error = this.quantizationError(nextStart, nextEnd);
      if (error > best) break;
      best = error;
      start = nextStart;
      end = nextEnd;
    }
    const binWidth = f(f(this.max - this.min) / BINS);
    return [f(this.min + f(binWidth * start)), f(this.min + f(binWidth * (end + 1)))];
  }

  qparams(): AffineQParams {
    if (this.min === Infinity) return { scale: 1, zeroPoint: 0 }; // never observed: torch's default (with a warning)
    const [lo, hi] = this.searchRange();
    return affineQParams(lo, hi, this.quantMin, this.quantMax);
  }
}
