/**
 * Float32 arithmetic as the libraries do it on CPU. A single + - * / computed in double and then
 * rounded to float32 gives exactly the IEEE float32 result, so `f(a * b)` emulates torch exactly.
 */
export const f = Math.fround;

/** torch.round / nearbyint: round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // rounds halves up (toward +infinity)
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r; // a half that went to an odd integer goes to the even one below
}

export function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : Math.min(x, hi);
}

export const FLOAT32_EPS = 1.1920928955078125e-7; // torch.finfo(torch.float32).eps

/** float32 -> float8 e4m3fn (no infinities, max 448, NaN 0x7f), round to nearest even, saturating as torch's cast does not: callers scale first. */
export function toFloat8E4M3(value: number): number {
  if (Number.isNaN(value)) return 0x7f;
  const sign = value < 0 || Object.is(value, -0) ? 0x80 : 0;
  const a = Math.abs(value);
  if (a === 0) return sign;
  // e4m3fn: bias 7, normals 2^-6 .. 448, subnormals m * 2^-9
  let exponent = Math.floor(Math.log2(a));
  if (exponent < -6) exponent = -6; // subnormal range shares the minimum exponent
  let mantissa = a / 2 ** exponent; // [1, 2) for normals, [0, 1) for subnormals
  const normal = a >= 2 ** -6;
  let m = roundHalfEven((normal ? mantissa - 1 : mantissa) * 8);
  let e = normal ? exponent + 7 : 0;
  if (m === 8) {
    m = 0;
    e += 1;
  }
  if (e > 15 || (e === 15 && m === 7)) return sign | 0x7f; // beyond 448: NaN, as torch's cast gives
  mantissa = m;
  return sign | (e << 3) | mantissa;
}

export function fromFloat8E4M3(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const e = (byte >> 3) & 0x0f;
  const m = byte & 0x07;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? sign * (m / 8) * 2 ** -6 : sign * (1 + m / 8) * 2 ** (e - 7);
}

/**
 * torch.sum of a contiguous float32 vector on CPU, in its order of additions (ATen's vectorized
 * cascade sum, read from its SumKernel): `lanes`-wide vectors (8: the AVX2 kernel torch ran here),
 * four interleaved vector accumulators, each a 4-level cascade that folds every 2^p vectors upward
 * (p = max(4, ceil(log2(rows)) / 4)); then the leftover vectors, the four accumulators, the scalar
 * tail and finally the lanes in order. Float32 sums depend on order; bitsandbytes' double
 * quantization subtracts torch's mean, so its codes depend on this one.
 */
export function torchSumFloat32(values: Float32Array, lanes = 8): number {
  const vectors = Math.floor(values.length / lanes);
  const rows = Math.floor(vectors / 4); // each row: 4 consecutive vectors, one per accumulator
  const power = Math.max(4, Math.floor((rows <= 1 ? 0 : Math.ceil(Math.log2(rows))) / 4));
  const step = 2 ** power;
  const mask = step - 1;
  // acc[level][accumulator][lane]
  const acc = Array.from({ length: 4 }, () => Array.from({ length: 4 }, () => new Float32Array(lanes)));
  const addVector = (into: Float32Array, vector: number) => {
    for (let l = 0; l < lanes; l++) into[l] = f(into[l]! + values[vector * lanes + l]!);
  };
  const addAcc = (into: Float32Array, from: Float32Array) => {
    for (let l = 0; l < lanes; l++) into[l] = f(into[l]! + from[l]!);
  };
  let row = 0;
  while (row + step <= rows) {
    for (let j = 0; j < step; j++, row++) for (let k = 0; k < 4; k++) addVector(acc[0]![k]!, 4 * row + k);
    for (let level = 1; level < 4; level++) {
      for (let k = 0; k < 4; k++) {
        addAcc(acc[level]![k]!, acc[level - 1]![k]!);
        acc[level - 1]![k]!.fill(0);
      }
      if ((row & (mask * 2 ** (level * power))) !== 0) break;
    }
  }
  for (; row < rows; row++) for (let k = 0; k < 4; k++) addVector(acc[0]![k]!, 4 * row + k);
  for (let level = 1; level < 4; level++) for (let k = 0; k < 4; k++) addAcc(acc[0]![k]!, acc[level]![k]!);
  const partial = acc[0]!;
  for (let v = rows * 4; v < vectors; v++) addVector(partial[0]!, v);
  for (let k = 1; k < 4; k++) addAcc(partial[0]!, partial[k]!);
  let total = 0;
  for (let i = vectors * lanes; i < values.length; i++) total = f(total + values[i]!);
  for (let l = 0; l < lanes; l++) total = f(total + partial[0]![l]!);
  return total;
}
