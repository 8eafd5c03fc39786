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
