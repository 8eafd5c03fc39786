/**
 * The library configurations that tools/reference/dump_entry_point_codes.py runs through each
 * library's public entry point, and the kit quantizer (with the recipe's defaults) that must give
 * the same codes. Codes are in the library's storage order, which for all of them is the weight's
 * [out, in] row-major order.
 */
import { createHash } from "node:crypto";
import {
  dequantizeAbsmax,
  doubleQuantizeAbsmax,
  quantizeBnb4,
  quantizeHqq,
  quantizeLlmInt8Weight,
  quantizeQuantoAffine,
  quantizeQuantoSymmetric,
  quantizeTorchInt8,
  type QuantizedWeight,
  type Weight,
} from "../../src/quant/schemes.js";

export interface LibraryConfig {
  name: string; // the file stem the dump script writes
  entryPoint: string; // what the library's user calls
  recipe: string; // the kit recipe with these numerics
  kit: (w: Weight) => QuantizedWeight;
  /** The per-block scale the library dequantizes with, where the fixture records its hash (bitsandbytes 4-bit: absmax, rebuilt from its 8-bit codes under double quantization). */
  dequantScales?: (q: QuantizedWeight) => Float32Array;
}

const hqq = (bits: 8 | 4 | 3 | 2 | 1): LibraryConfig => ({
  name: `hqq-${bits}`,
  entryPoint: `HQQLinear(linear, BaseQuantizeConfig(nbits=${bits}, group_size=64, axis=1), compute_dtype=float32, device="cpu")`,
  recipe: `hqq/${bits}`,
  kit: (w) => quantizeHqq(w, { bits, groupSize: 64, axis: 1 }),
});

const bnb4 = (qt: "nf4" | "fp4", fp16: boolean, dq: boolean): LibraryConfig => ({
  name: `bnb-${qt}${fp16 ? "-fp16" : ""}${dq ? "-dq" : ""}`,
  entryPoint: `Linear4bit(quant_type="${qt}", compute_dtype=${fp16 ? "float16" : "float32"}, compress_statistics=${dq ? "True" : "False"}).to("cpu")`,
  recipe: `bnb/${qt}${fp16 ? "-fp16" : ""}${dq ? "-dq" : ""}`,
  kit: (w) => quantizeBnb4(w, qt),
  dequantScales: (q) => (dq ? dequantizeAbsmax(doubleQuantizeAbsmax(q.scales)) : q.scales),
});

export const LIBRARY_CONFIGS: LibraryConfig[] = [
  {
    name: "torch-int8",
    entryPoint: "quantize_dynamic(model, {nn.Linear}, dtype=qint8)",
    recipe: "pytorch/dynamic-int8",
    kit: (w) => quantizeTorchInt8(w, "per_tensor"),
  },
  {
    name: "torch-int8-per-channel",
    entryPoint: "quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=qint8)",
    recipe: "pytorch/dynamic-int8 --granularity per_channel",
    kit: (w) => quantizeTorchInt8(w, "per_channel"),
  },
  { name: "quanto-int8", entryPoint: "quantize(model, weights=qint8); freeze(model)", recipe: "quanto/w8", kit: (w) => quantizeQuantoSymmetric(w, "int8") },
  {
    name: "quanto-float8",
    entryPoint: "quantize(model, weights=qfloat8); freeze(model)",
    recipe: "quanto/wf8",
    kit: (w) => quantizeQuantoSymmetric(w, "float8"),
  },
  { name: "quanto-int4", entryPoint: "quantize(model, weights=qint4); freeze(model)", recipe: "quanto/w4", kit: (w) => quantizeQuantoAffine(w, 4) },
  { name: "quanto-int2", entryPoint: "quantize(model, weights=qint2); freeze(model)", recipe: "quanto/w2", kit: (w) => quantizeQuantoAffine(w, 2) },
  hqq(8),
  hqq(4),
  hqq(3),
  hqq(2),
  hqq(1),
  ...(["nf4", "fp4"] as const).flatMap((qt) => ([false, true] as const).flatMap((fp16) => ([false, true] as const).map((dq) => bnb4(qt, fp16, dq)))),
  {
    name: "bnb-llm-int8",
    entryPoint: 'Linear8bitLt(has_fp16_weights=False, threshold=6.0).to("cpu")',
    recipe: "bnb/llm-int8",
    kit: (w) => quantizeLlmInt8Weight(w),
  },
];

/** sha256 of codes as int16 little-endian, the dump script's storage. */
export function codesAsInt16(codes: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(codes.length * 2);
  for (let i = 0; i < codes.length; i++) out.writeInt16LE(codes[i]!, i * 2);
  return out;
}

/** sha256 of float32 values as little-endian bytes (the dump script's .scale files). */
export function float32Sha256(values: Float32Array): string {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return createHash("sha256").update(out).digest("hex");
}
