/**
 * The weight quantizers of the four libraries, on a weight in Hugging Face layout [out, in]
 * (row-major). Each returns what the library stores: integer codes, scales, zero points, with the
 * library's grouping and rounding, so that codes are identical to the library's on the same tensor.
 */
import { clamp, f, FLOAT32_EPS, fromFloat8E4M3 as fromFloat8, roundHalfEven, toFloat8E4M3, torchSumFloat32 } from "./float32.js";
import { float16ToFloat32, float32ToFloat16 } from "../util/half.js";

export interface Weight {
  data: Float32Array; // [rows, cols] row-major
  rows: number; // out features
  cols: number; // in features
}

/** Codes with one scale (and zero point) per group of `groupSize` consecutive elements of a row. */
export interface QuantizedWeight {
  codes: Int32Array; // one per weight element, row-major like the weight
  scales: Float32Array; // one per group, row-major over [rows, cols / groupSize]
  zeros: Float32Array | null; // one per group, in the scheme's own convention (see `dequantize`)
  groupSize: number; // elements per group along a row (cols for per-channel, rows*cols for per-tensor)
  bits: number;
  /** code -> value: scale * (code - zero) for "affine", scale * code - zero for "shift", code * scale for "symmetric". */
  convention: "symmetric" | "affine" | "shift" | "float8" | "codebook" | "absmax127";
  codebook?: Float32Array; // for NF4/FP4: value = codebook[code] * scale
}

function groupsOf(w: Weight, groupSize: number): number {
  if (w.cols % groupSize !== 0 && groupSize !== w.rows * w.cols) throw new Error(`group size ${groupSize} does not divide ${w.cols} input features`);
  return (w.rows * w.cols) / groupSize;
}

/** Dequantize to fp32 (float32 arithmetic, as the libraries do). */
export function dequantize(q: QuantizedWeight): Float32Array {
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) {
    const g = Math.floor(i / q.groupSize);
    const s = q.scales[g]!;
    const c = q.codes[i]!;
    switch (q.convention) {
      case "symmetric":
        out[i] = f(c * s);
        break;
      case "affine":
        out[i] = f(f(c - q.zeros![g]!) * s);
        break;
      case "shift":
        out[i] = f(f(c * s) - q.zeros![g]!);
        break;
      case "float8":
        out[i] = f(fromFloat8(c) * s);
        break;
      case "codebook":
        out[i] = f(q.codebook![c]! * s);
        break;
      case "absmax127": // bitsandbytes' int8_vectorwise_dequant: code * absmax / 127
        out[i] = f(f(c * s) * 7.874015718698502e-3);
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PyTorch: torch.ao.quantization.quantize_dynamic weights (MinMaxObserver, qint8, symmetric)

/**
 * qint8 symmetric: scale = max(|min|, |max|) / 127.5 (the observer's (qmax - qmin) / 2), at least
 * float32 eps; code = clamp(round(w / scale), -128, 127) (ATen's quantize_val: nearbyint).
 * Per tensor (quantize_dynamic's default) or per output channel (per_channel_dynamic_qconfig).
 */
export function quantizeTorchInt8(w: Weight, granularity: "per_tensor" | "per_channel"): QuantizedWeight {
  const groupSize = granularity === "per_tensor" ? w.rows * w.cols : w.cols;
  const groups = groupsOf(w, groupSize);
  const scales = new Float32Array(groups);
  const codes = new Int32Array(w.data.length);
  for (let g = 0; g < groups; g++) {
    let amax = 0;
    for (let i = g * groupSize; i < (g + 1) * groupSize; i++) amax = Math.max(amax, Math.abs(w.data[i]!));
    const scale = Math.max(f(amax / 127.5), FLOAT32_EPS);
    scales[g] = scale;
    const inv = f(1 / scale);
    for (let i = g * groupSize; i < (g + 1) * groupSize; i++) codes[i] = clamp(roundHalfEven(f(w.data[i]! * inv)), -128, 127);
  }
  return { codes, scales, zeros: null, groupSize, bits: 8, convention: "symmetric" };
}

/**
 * PyTorch's dynamic activation quantization on x86 (fbgemm, reduce_range): quint8 in [0, 127],
 * min/max of the batch widened to include 0, scale = (max - min) / 127, zero point nudged to an
 * integer (ATen's ChooseQuantizationParams), code = clamp(round(x / scale) + zp, 0, 127).
 */
export function chooseActivationParams(min: number, max: number, qmin = 0, qmax = 127): { scale: number; zeroPoint: number } {
  min = Math.min(min, 0);
  max = Math.max(max, 0);
  let scale = (max - min) / (qmax - qmin); // double, as ATen computes it
  if (f(scale) === 0 || !Number.isFinite(1 / f(scale))) scale = 0.1;
  const fromMin = qmin - min / scale;
  const fromMax = qmax - max / scale;
  const fromMinError = Math.abs(qmin) - Math.abs(min / scale);
  const fromMaxError = Math.abs(qmax) - Math.abs(max / scale);
  const initial = fromMinError < fromMaxError ? fromMin : fromMax;
  const zeroPoint = initial < qmin ? qmin : initial > qmax ? qmax : roundHalfEven(initial);
  return { scale: f(scale), zeroPoint };
}

// ---------------------------------------------------------------------------------------------
// optimum-quanto: quantize(model, weights=...) then freeze()

/** quanto's group size for int2/int4: 128, reduced by 32 until it divides in_features (min 32); else per-axis. */
export function quantoGroupSize(inFeatures: number): number | null {
  let groupSize = 128;
  if (inFeatures <= groupSize) return null;
  while (inFeatures % groupSize !== 0 && groupSize > 32) groupSize -= 32;
  return inFeatures % groupSize === 0 ? groupSize : null;
}

/** int8 / float8 e4m3fn: symmetric per output channel, scale = absmax / qmax (127 or 448). */
export function quantizeQuantoSymmetric(w: Weight, qtype: "int8" | "float8"): QuantizedWeight {
  const qmax = qtype === "int8" ? 127 : 448;
  const scales = new Float32Array(w.rows);
  const codes = new Int32Array(w.data.length);
  for (let r = 0; r < w.rows; r++) {
    let amax = 0;
    for (let c = 0; c < w.cols; c++) amax = Math.max(amax, Math.abs(w.data[r * w.cols + c]!));
    const scale = f(amax / qmax);
    scales[r] = scale;
    for (let c = 0; c < w.cols; c++) {
      const x = f(w.data[r * w.cols + c]! / scale);
      codes[r * w.cols + c] = qtype === "int8" ? clamp(roundHalfEven(x), -128, 127) : toFloat8E4M3(x);
    }
  }
  return { codes, scales, zeros: null, groupSize: w.cols, bits: 8, convention: qtype === "int8" ? "symmetric" : "float8" };
}

/**
 * int4 / int2: affine per group along the input features (quanto's MaxOptimizer): scale =
 * (max - min) / (2^bits - 1), shift = -min, code = clamp(round((w + shift) / scale), 0, 2^bits - 1),
 * value = code * scale - shift.
 */
export function quantizeQuantoAffine(w: Weight, bits: 2 | 4, groupSize: number | null = quantoGroupSize(w.cols)): QuantizedWeight {
  const size = groupSize ?? w.cols;
  const groups = groupsOf(w, size);
  const qmax = 2 ** bits - 1;
  const scales = new Float32Array(groups);
  const shifts = new Float32Array(groups);
  const codes = new Int32Array(w.data.length);
  for (let g = 0; g < groups; g++) {
    let min = Infinity;
    let max = -Infinity;
    for (let i = g * size; i < (g + 1) * size; i++) {
      min = Math.min(min, w.data[i]!);
      max = Math.max(max, w.data[i]!);
    }
    const scale = f(f(max - min) / qmax);
    const shift = -min;
    scales[g] = scale;
    shifts[g] = shift;
    for (let i = g * size; i < (g + 1) * size; i++) codes[i] = clamp(roundHalfEven(f(f(w.data[i]! + shift) / scale)), 0, qmax);
  }
  return { codes, scales, zeros: shifts, groupSize: size, bits, convention: "shift" };
}

// ---------------------------------------------------------------------------------------------
// HQQ: HQQLinear(linear, BaseQuantizeConfig(nbits, group_size=64, axis=1)) on CPU (float32)

export interface HqqOptions {
  bits: 8 | 4 | 3 | 2 | 1;
  groupSize?: number; // 64
  axis?: 0 | 1; // 1: groups of consecutive elements along the input features
  lpNorm?: number; // 0.7
  beta?: number; // 10
  iterations?: number; // 20
  /** Round the initial zero point (torch.round, half to even) before the solver: BaseQuantizeConfig sets it for 4 bits only. */
  roundZero?: boolean;
}

/** hqq's BaseQuantizeConfig: round_zero is True for nbits 4 and False for every other width. */
export const hqqRoundsZero = (bits: number): boolean => bits === 4;

/**
 * HQQ's half-quadratic solver (hqq 0.2.8, optimize_weights_proximal_legacy): starting from
 * min/max affine parameters (zero = -min * scale with scale the inverse step), it alternates
 *   W_q = clamp(round(W * scale + zero)), W_r = (W_q - zero) / scale,
 *   W_e = shrink_lp(W - W_r) (a generalized soft threshold, lp norm 0.7, beta 10),
 *   zero = mean(W_q - (W - W_e) * scale) per group,
 * stopping when the mean absolute error stops decreasing (at most 20 steps). Stored as
 * value = (code - zero) * step with step = 1 / scale. (kappa is not applied by this solver.)
 * For 4 bits BaseQuantizeConfig rounds the starting zero to an integer (round_zero).
 */
export function quantizeHqq(w: Weight, options: HqqOptions): QuantizedWeight {
  const bits = options.bits;
  const groupSize = options.groupSize ?? 64;
  const axis = options.axis ?? 1;
  const lp = options.lpNorm ?? 0.7;
  const beta = options.beta ?? 10;
  const iterations = options.iterations ?? 20;
  const roundZero = options.roundZero ?? hqqRoundsZero(bits);
  const n = w.data.length;
  if (n % groupSize !== 0) throw new Error(`group size ${groupSize} does not divide ${n} weights`);
  const groups = n / groupSize;
  const qmax = 2 ** bits - 1;
  // Grouping: axis 1 reshapes to [-1, groupSize] (rows of consecutive elements); axis 0 to [groupSize, -1]
  // (columns). The solver works on the weights in group order (a copy only for axis 0), so every loop is contiguous.
  const stride = axis === 1 ? 1 : groups; // distance between consecutive members of a group in the weight
  const startOf = (g: number) => (axis === 1 ? g * groupSize : g);
  let data = w.data;
  if (axis !== 1) {
    data = new Float32Array(n);
    for (let g = 0, j = 0; g < groups; g++) for (let k = 0, i = g; k < groupSize; k++, i += stride, j++) data[j] = w.data[i]!;
  }
  const scale = new Float32Array(groups);
  const zero = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    let min = Infinity;
    let max = -Infinity;
    for (let j = g * groupSize, end = j + groupSize; j < end; j++) {
      const v = data[j]!;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const denom = f(max - min);
    let s = f(qmax * f(1 / denom)); // torch's number / tensor is reciprocal(tensor) * number
    if (Math.abs(denom) <= 1e-4) s = 1;
    s = Math.min(s, 2e4);
    scale[g] = s;
    zero[g] = roundZero ? roundHalfEven(f(-min * s)) : f(-min * s);
  }
  // torch runs `(1.0 / beta) * out.pow(lp_norm - 1)` on a float32 tensor: both scalars become float32.
  const invBeta = f(1 / beta);
  const exponent = f(lp - 1);
  // shrink_lp is zero wherever |d| <= invBeta * |d|^(lp - 1), i.e. below (1/beta)^(1/(2 - lp)) (0.170 for
  // the defaults): skipping the power there (1 % short of the bound, far beyond float rounding) keeps
  // every value and saves two thirds of the time, since quantization errors are far below it.
  const zeroBelow = lp < 2 ? 0.99 * invBeta ** (1 / (2 - lp)) : 0;
  // W * scale does not change across steps (only the zero does): computed once.
  const scaled = new Float32Array(n);
  for (let g = 0; g < groups; g++) for (let j = g * groupSize, end = j + groupSize; j < end; j++) scaled[j] = f(data[j]! * scale[g]!);
  // One pass per step and group: quantize with the current zero, measure, and compute the next zero.
  let best = Infinity;
  const nextZero = new Float32Array(groups);
  // A group whose zero did not move repeats last step's values exactly: its step is skipped. Most
  // groups settle within a few of the 20 steps, and this is most of the solver's time saved.
  const zeroUsed = new Float32Array(groups).fill(Number.NaN);
  const groupError = new Float64Array(groups);
  for (let it = 0; it < iterations; it++) {
    for (let g = 0; g < groups; g++) {
      const s = scale[g]!;
      const z = zero[g]!;
      if (z === zeroUsed[g]) continue; // nextZero[g] and groupError[g] hold this step's values already
      zeroUsed[g] = z;
      let errorSum = 0;
      let acc = 0;
      for (let j = g * groupSize, end = j + groupSize; j < end; j++) {
        const wv = data[j]!;
        const ws = scaled[j]!;
        let q = roundHalfEven(f(ws + z));
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        const diff = f(wv - f(f(q - z) / s)); // W - W_r
        const a = Math.abs(diff);
        if (a < zeroBelow) {
          acc += f(q - ws); // shrink_lp(W - W_r) is 0 here, so W - W_e is W
        } else {
          const shrunk = a === 0 ? 0 : Math.max(0, f(a - f(invBeta * f(Math.exp(exponent * Math.log(a))))));
          const we = diff < 0 ? -shrunk : shrunk; // shrink_lp(W - W_r)
          acc += f(q - f(f(wv - we) * s));
        }
        errorSum += a;
      }
      nextZero[g] = f(acc / groupSize);
      groupError[g] = errorSum;
    }
    zero.set(nextZero); // the step's zero is kept even when its error stops the loop, as HQQ does
    let errorSum = 0;
    for (let g = 0; g < groups; g++) errorSum += groupError[g]!;
    const error = errorSum / n;
    if (error < best) best = error;
    else break;
  }
  const codes = new Int32Array(n);
  for (let g = 0; g < groups; g++) {
    const z = zero[g]!;
    for (let k = 0, i = startOf(g), j = g * groupSize; k < groupSize; k++, i += stride, j++) {
      const q = roundHalfEven(f(scaled[j]! + z));
      codes[i] = q < 0 ? 0 : q > qmax ? qmax : q;
    }
  }
  const step = Float32Array.from(scale, (s) => f(1 / s));
  return { codes, scales: step, zeros: zero, groupSize: axis === 1 ? groupSize : n / groups, bits, convention: "affine" };
}

// ---------------------------------------------------------------------------------------------
// bitsandbytes: quantize_4bit (blocks of 64 over the flattened weight, absmax scaling)

/** bitsandbytes' 4-bit codebooks (get_4bit_type), exact float32 values. */
export const NF4_CODE = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);
export const FP4_CODE = Float32Array.from([
  0, 0.005208333333333333, 0.6666666666666666, 1, 0.3333333333333333, 0.5, 0.16666666666666666, 0.25, 0, -0.005208333333333333, -0.6666666666666666, -1,
  -0.3333333333333333, -0.5, -0.16666666666666666, -0.25,
]);

/**
 * scaled = clamp(w * (1 / absmax), -1, 1) per block; code = the bucket of `scaled` among the
 * midpoints of the sorted codebook (torch.bucketize: a tie goes to the lower bucket), mapped back
 * to the codebook's own order. Returns codes (one per element) and one absmax per block.
 */
export function quantizeBnb4(w: Weight, quantType: "nf4" | "fp4", blockSize = 64): QuantizedWeight {
  const code = quantType === "nf4" ? NF4_CODE : FP4_CODE;
  const order = [...code.keys()].sort((a, b) => code[a]! - code[b]! || a - b);
  const bounds = order.slice(0, -1).map((o, i) => f((code[o]! + code[order[i + 1]!]!) / 2));
  const n = w.data.length;
  const blocks = Math.ceil(n / blockSize);
  const absmax = new Float32Array(blocks);
  const codes = new Int32Array(n);
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(n, (b + 1) * blockSize);
    let amax = 0;
    for (let i = b * blockSize; i < end; i++) amax = Math.max(amax, Math.abs(w.data[i]!));
    absmax[b] = amax;
    const inv = f(1 / Math.max(amax, 1e-38));
    for (let i = b * blockSize; i < end; i++) {
      const scaled = clamp(f(w.data[i]! * inv), -1, 1);
      let bucket = 0;
      while (bucket < bounds.length && bounds[bucket]! < scaled) bucket++;
      codes[i] = order[bucket]!;
    }
  }
  return { codes, scales: absmax, zeros: null, groupSize: blockSize, bits: 4, convention: "codebook", codebook: code };
}

/** bitsandbytes' packing: two codes a byte, the even element in the high nibble. */
export function packBnb4(codes: Int32Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i += 2) out[i >> 1] = ((codes[i]! & 0xf) << 4) | ((codes[i + 1] ?? 0) & 0xf);
  return out;
}

/**
 * torch.linspace(start, end, steps) in float32: the first half counts up from start, the rest down
 * from end, each value one fused multiply-add (rounded once), as torch's vectorized CPU kernel does.
 */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < half ? f(s + step * i) : f(e - step * (steps - 1 - i));
  return out;
}

/**
 * bitsandbytes' signed 8-bit dynamic map (create_dynamic_map): for exponents 10^-6 .. 10^0, the
 * midpoints of linspace(0.1, 1) with 2^i + 1 points, both signs, plus 0 and 1, sorted.
 */
export function bnbDynamicMap(): Float32Array {
  const data: number[] = [];
  const maxExponentBits = 7;
  for (let i = 0; i < maxExponentBits; i++) {
    const boundaries = linspaceF32(0.1, 1, 2 ** i + 1);
    const scale = f(10 ** (-(maxExponentBits - 1) + i));
    for (let j = 0; j + 1 < boundaries.length; j++) {
      const mean = f(f(boundaries[j]! + boundaries[j + 1]!) / 2);
      data.push(f(scale * mean), f(-scale * mean));
    }
  }
  data.push(0, 1);
  while (data.length < 256) data.push(0);
  return Float32Array.from(data.sort((a, b) => a - b));
}

export interface DoubleQuantizedAbsmax {
  codes: Uint8Array; // one per 4-bit block
  absmax2: Float32Array; // one per 256 codes
  offset: number; // mean of the original absmax
  code: Float32Array; // the dynamic map
}

/**
 * bitsandbytes' double quantization (compress_statistics): absmax minus torch's float32 mean of it,
 * quantized blockwise (256) to the dynamic map: per block absmax2, scaled = x / absmax2, the
 * nearest code. (bitsandbytes 0.50's CPU kernel misses the nearest code near some decision
 * boundaries; test/entry-point-parity.test.ts counts where.)
 */
export function doubleQuantizeAbsmax(absmax: Float32Array, blockSize = 256): DoubleQuantizedAbsmax {
  const code = bnbDynamicMap();
  const offset = f(torchSumFloat32(absmax) / absmax.length); // torch's absmax.mean() in float32
  const centred = Float32Array.from(absmax, (v) => f(v - offset));
  const bounds = Float32Array.from({ length: 255 }, (_, i) => f(f(code[i]! + code[i + 1]!) / 2));
  const blocks = Math.ceil(centred.length / blockSize);
  const absmax2 = new Float32Array(blocks);
  const codes = new Uint8Array(centred.length);
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(centred.length, (b + 1) * blockSize);
    let amax = 0;
    for (let i = b * blockSize; i < end; i++) amax = Math.max(amax, Math.abs(centred[i]!));
    absmax2[b] = amax;
    for (let i = b * blockSize; i < end; i++) {
      const scaled = clamp(f(centred[i]! / Math.max(amax, 1e-38)), -1, 1); // the CPU kernel divides
      let lo = 0;
      let hi = 255; // bucketize: the number of bounds strictly below `scaled`
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (bounds[mid]! < scaled) lo = mid + 1;
        else hi = mid;
      }
      codes[i] = lo;
    }
  }
  return { codes, absmax2, offset, code };
}

/** The absmax bitsandbytes reconstructs: code[q] * absmax2[block] + offset. */
export function dequantizeAbsmax(d: DoubleQuantizedAbsmax, blockSize = 256): Float32Array {
  return Float32Array.from(d.codes, (q, i) => f(f(d.code[q]! * d.absmax2[Math.floor(i / blockSize)]!) + d.offset));
}

/**
 * LLM.int8 weights (bitsandbytes int8_vectorwise_quant on the fp16 weight): per output row,
 * absmax of the fp16-rounded row; code = round(w16 * (127 / absmax)) in float32, the division
 * being torch's reciprocal-then-multiply.
 */
export function quantizeLlmInt8Weight(w: Weight): QuantizedWeight {
  const codes = new Int32Array(w.data.length);
  const absmax = new Float32Array(w.rows);
  const half = (v: number) => float16ToFloat32(float32ToFloat16(v));
  for (let r = 0; r < w.rows; r++) {
    let amax = 0;
    for (let c = 0; c < w.cols; c++) amax = Math.max(amax, Math.abs(half(w.data[r * w.cols + c]!)));
    absmax[r] = amax;
    const factor = f(127 * f(1 / amax)); // torch's 127.0 / tensor is reciprocal(tensor) * 127
    for (let c = 0; c < w.cols; c++) codes[r * w.cols + c] = clamp(roundHalfEven(f(half(w.data[r * w.cols + c]!) * factor)), -128, 127);
  }
  return { codes, scales: absmax, zeros: null, groupSize: w.cols, bits: 8, convention: "absmax127" };
}
