/**
 * Static activation quantization as optimum-quanto computes it: one scale per tensor, symmetric,
 * int8 (round half to even, clamp to -128..127) or float8 e4m3fn (saturated to +-448, round to
 * nearest even); calibrated by Calibration(): per call, absmax / qmax, folded into a running
 * scale with momentum 0.9 (the first call, while the scale still holds its initial 1, takes the
 * new value as it is).
 */
import { clamp, f, roundHalfEven, toFloat8E4M3 } from "./float32.js";

export type ActivationType = "int8" | "float8";

/** dtype_info(qtype).max: the largest code of the activation type. */
export function activationQmax(type: ActivationType): number {
  return type === "int8" ? 127 : 448;
}

/** quanto's absmax_scale, per tensor: max |x| / qmax in float32. */
export function absmaxScale(x: Float32Array, type: ActivationType): number {
  let m = 0;
  for (const v of x) m = Math.max(m, Math.abs(v));
  return f(m / activationQmax(type));
}

export const CALIBRATION_MOMENTUM = 0.9;

/** quanto's _updated_scale: `momentum * scale + new * (1 - momentum)` in float32, unless scale is still 1. */
export function updatedScale(scale: number, next: number, momentum = CALIBRATION_MOMENTUM): number {
  if (scale === 1) return next;
  return f(f(f(momentum) * scale) + f(next * f(1 - momentum)));
}

/** quanto's quantize_symmetric(x, dtype, axis=None, scale): codes (int8 values, or float8 bytes). */
export function quantizeActivation(x: Float32Array, scale: number, type: ActivationType): Int32Array {
  const codes = new Int32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = f(x[i]! / scale);
    codes[i] = type === "int8" ? clamp(roundHalfEven(v), -128, 127) : toFloat8E4M3(clamp(v, -448, 448));
  }
  return codes;
}

/**
 * One layer's calibrated activation quantization: its input's scale (and zero point for affine
 * uint8), and its output's where the recipe requantizes the output (PyTorch's static linear).
 */
export interface ActivationQuant {
  inputScale: number;
  inputZeroPoint?: number;
  outputScale?: number;
  outputZeroPoint?: number;
}
