/**
 * The teaching chapter's numerics, on one real weight tensor: what each scheme does to it (error
 * against bit width, per granularity), and why LLM.int8 splits outlier activation columns. All of
 * it is the quantizers of src/quant applied as the recipes apply them.
 */
import {
  dequantize,
  quantizeBnb4,
  quantizeHqq,
  quantizeQuantoAffine,
  quantizeQuantoSymmetric,
  quantizeTorchInt8,
  type QuantizedWeight,
  type Weight,
} from "../quant/schemes.js";
import { quantizeActivation } from "../quant/activations.js";
import { SafetensorsFile } from "../model/safetensors.js";
import { join } from "node:path";

export interface SchemeError {
  scheme: string; // e.g. "affine group 64 (HQQ solver)"
  family: string; // line in the error-vs-bits plot
  bits: number;
  granularity: "per-tensor" | "per-channel" | "group";
  relativeRmse: number; // ||W_q - W|| / ||W||
  maxAbsError: number;
  errors: Float32Array; // dequantized - original, per element
}

/** One linear weight [out, in] of a model folder in Hugging Face layout. */
export async function loadWeight(modelDir: string, name: string): Promise<Weight> {
  const file = await SafetensorsFile.load(join(modelDir, "model.safetensors"));
  const [rows, cols] = file.entry(name).shape as [number, number];
  return { data: file.float32(name), rows, cols };
}

function measure(w: Weight, q: QuantizedWeight, scheme: string, family: string, bits: number, granularity: SchemeError["granularity"]): SchemeError {
  const dq = dequantize(q);
  const errors = new Float32Array(dq.length);
  let se = 0;
  let norm = 0;
  let max = 0;
  for (let i = 0; i < dq.length; i++) {
    const e = dq[i]! - w.data[i]!;
    errors[i] = e;
    se += e * e;
    norm += w.data[i]! * w.data[i]!;
    max = Math.max(max, Math.abs(e));
  }
  return { scheme, family, bits, granularity, relativeRmse: Math.sqrt(se / norm), maxAbsError: max, errors };
}

/** Every scheme of the study on one weight: symmetric vs affine, per-tensor vs per-channel vs group, int vs NF4/FP4 vs float8. */
export function schemeErrors(w: Weight): SchemeError[] {
  const out: SchemeError[] = [
    measure(w, quantizeTorchInt8(w, "per_tensor"), "int8 symmetric per-tensor (PyTorch)", "symmetric int, per-tensor", 8, "per-tensor"),
    measure(w, quantizeTorchInt8(w, "per_channel"), "int8 symmetric per-channel (PyTorch)", "symmetric int, per-channel", 8, "per-channel"),
    measure(w, quantizeQuantoSymmetric(w, "int8"), "int8 symmetric per-channel (Quanto)", "symmetric int, per-channel", 8, "per-channel"),
    measure(w, quantizeQuantoSymmetric(w, "float8"), "float8 e4m3fn per-channel (Quanto)", "float8, per-channel", 8, "per-channel"),
    measure(w, quantizeQuantoAffine(w, 4), "int4 affine group (Quanto)", "affine int, group (Quanto)", 4, "group"),
    measure(w, quantizeQuantoAffine(w, 2), "int2 affine group (Quanto)", "affine int, group (Quanto)", 2, "group"),
    measure(w, quantizeBnb4(w, "nf4"), "NF4 blocks of 64 (bitsandbytes)", "4-bit codebooks (bitsandbytes)", 4, "group"),
    measure(w, quantizeBnb4(w, "fp4"), "FP4 blocks of 64 (bitsandbytes)", "4-bit codebooks (bitsandbytes)", 4, "group"),
  ];
  for (const bits of [8, 4, 3, 2, 1] as const) {
    out.push(
      measure(
        w,
        quantizeHqq(w, { bits, groupSize: 64, iterations: 0, roundZero: false }),
        `int${bits} affine group 64, round-to-nearest`,
        "affine group 64, round-to-nearest",
        bits,
        "group",
      ),
    );
    out.push(measure(w, quantizeHqq(w, { bits, groupSize: 64 }), `int${bits} affine group 64, HQQ solver`, "affine group 64, HQQ solver", bits, "group"));
  }
  return out;
}

export interface OutlierDemo {
  columns: number;
  outlierColumns: number;
  plainRelativeError: number; // the whole activation quantized per tensor to int8
  splitRelativeError: number; // outlier columns kept in float, the rest int8
}

/**
 * LLM.int8's argument on an activation matrix [tokens, features]: a few feature columns far above
 * the others set a per-tensor int8 scale that crushes everything else; keeping those columns in
 * floating point (|x| >= threshold) leaves a small scale for the rest.
 */
export function outlierSplitDemo(x: Float32Array, tokens: number, features: number, threshold = 6): OutlierDemo {
  const isOutlier = new Array<boolean>(features).fill(false);
  for (let t = 0; t < tokens; t++) for (let c = 0; c < features; c++) if (Math.abs(x[t * features + c]!) >= threshold) isOutlier[c] = true;
  const error = (values: Float32Array, keep: (c: number) => boolean) => {
    let absmax = 0;
    for (let i = 0; i < values.length; i++) if (keep(i % features)) absmax = Math.max(absmax, Math.abs(values[i]!));
    const scale = Math.fround(absmax / 127) || 1;
    const codes = quantizeActivation(values, scale, "int8");
    let se = 0;
    let norm = 0;
    for (let i = 0; i < values.length; i++) {
      const v = keep(i % features) ? codes[i]! * scale : values[i]!;
      se += (v - values[i]!) ** 2;
      norm += values[i]! ** 2;
    }
    return Math.sqrt(se / norm);
  };
  return {
    columns: features,
    outlierColumns: isOutlier.filter(Boolean).length,
    plainRelativeError: error(x, () => true),
    splitRelativeError: error(x, (c) => !isOutlier[c]),
  };
}
