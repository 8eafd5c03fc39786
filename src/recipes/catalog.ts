/**
 * The PTQ recipes of the study, each in the style of one library: what it quantizes, how (the
 * numerics in src/quant), and how onnxruntime executes it. `ptq recipes` prints this table.
 */
import { KitError } from "../util/errors.js";
import type { ActivationType } from "../quant/activations.js";
import type { QuantizedWeight, Weight } from "../quant/schemes.js";
import { quantizeBnb4, quantizeHqq, quantizeLlmInt8Weight, quantizeQuantoAffine, quantizeQuantoSymmetric, quantizeTorchInt8 } from "../quant/schemes.js";

export type Library = "none" | "pytorch" | "quanto" | "hqq" | "bitsandbytes";
export type Scheme = "none" | "dynamic" | "static" | "weight-only";

/** How onnxruntime runs a quantized linear layer. */
export type Execution =
  | "fp32" // MatMul on float weights
  | "MatMulInteger" // native int8 GEMM, activations quantized in-graph per call
  | "MatMulNBits" // native low-bit GEMM (com.microsoft)
  | "MatMulBnb4" // native NF4/FP4 GEMM (com.microsoft)
  | "dequantized at load"; // packed codes stored; onnxruntime expands them to fp32 when the session loads

export interface RecipeOptions {
  bits?: number;
  groupSize?: number;
  axis?: 0 | 1;
  granularity?: "per_tensor" | "per_channel";
  include?: string[]; // globs over parameter names (linear layer prefixes)
  exclude?: string[];
  /**
   * MatMulNBits recipes only. 0 (default): fp32 compute on the dequantized weights, the library's
   * numerics. 4: onnxruntime quantizes each activation block to int8 and sums integers: faster,
   * and no longer the library's computation (every table says so).
   */
  accuracyLevel?: 0 | 4;
  /**
   * Weight-only recipes on a native kernel: which layers onnxruntime expands to fp32 when the
   * session loads, with the library's dequantized values exactly (fp32 GEMM speed, fp32 bytes in
   * memory for those layers). "decoder": the layers run once per token (all of the decoder's but the
   * cross-attention keys and values, computed once per utterance); "all"; "none". Default: the
   * recipe's `expandByDefault`, else none.
   */
  expand?: Expansion;
}

export type Expansion = "none" | "decoder" | "all";

export interface Recipe {
  id: string;
  library: Library;
  scheme: Scheme;
  granularity: string;
  bits: string;
  /** How a layer of this recipe runs, given its options. */
  execution: (o: RecipeOptions) => Execution;
  /** Does the library quantize the output projection (tied to the token embedding) by default? */
  quantizesProjOut: boolean;
  /** Weight quantizer; null for fp32 and for recipes not implemented yet. */
  quantize: ((w: Weight, o: RecipeOptions) => QuantizedWeight) | null;
  /** bitsandbytes LLM.int8 (mixed int8 / floating outlier decomposition). */
  llmInt8?: boolean;
  /** Emulate fp16 compute (rounding of weight, activation and output to fp16). */
  fp16Compute?: boolean;
  /** bitsandbytes' compress_statistics: the absmax is itself quantized. */
  doubleQuant?: boolean;
  /** Quanto's static recipes: the activation type, quantized per tensor with a calibrated scale. */
  activations?: ActivationType;
  /** PyTorch's static recipe: activations calibrated by HistogramObservers (fp32 model, input and output of each linear). */
  observer?: "histogram";
  /** Why a listed recipe cannot run yet (it needs calibration or numerics this kit does not have yet). */
  missing?: string;
  /** Bumped when this recipe's graph form changes (part of its graphs' cache key; other recipes keep theirs). */
  graphRevision?: number;
  /** Where the native kernel is slow for the decoder's single rows, the expansion that is fastest (measured; see `expand`). */
  expandByDefault?: Exclude<Expansion, "none">;
  /** Why its graph cannot run in a browser (onnxruntime-web's build for transformers.js), if it cannot; tests check it against the export. */
  notInBrowser?: string;
  notes: string;
}

const hqqBits = [8, 4, 3, 2, 1] as const;
const nativeNBits = (bits: number) => bits === 2 || bits === 4; // MatMulNBits takes float zero points only for 2 and 4 bits

export const RECIPES: Recipe[] = [
  {
    id: "fp32",
    library: "none",
    scheme: "none",
    granularity: "-",
    bits: "32",
    execution: () => "fp32",
    quantizesProjOut: false,
    quantize: null,
    notes: "the baseline, untouched",
  },
  {
    id: "pytorch/dynamic-int8",
    library: "pytorch",
    scheme: "dynamic",
    granularity: "per-tensor (weights); per-call (activations)",
    bits: "8",
    execution: () => "MatMulInteger",
    quantizesProjOut: true,
    quantize: (w, o) => quantizeTorchInt8(w, o.granularity ?? "per_tensor"),
    notInBrowser: "Cast to/from double (the activation scale is chosen in double, as ATen does; onnxruntime-web has no float64 kernels)",
    notes: "torch.ao quantize_dynamic(nn.Linear, qint8); activations uint8 with reduce_range (0..127) as fbgemm on x86; --granularity per_channel",
  },
  {
    id: "pytorch/static-int8",
    library: "pytorch",
    scheme: "static",
    granularity: "per-channel (weights); per-tensor calibrated (activations, input and output)",
    bits: "8",
    execution: () => "MatMulInteger",
    quantizesProjOut: true,
    quantize: (w) => quantizeTorchInt8(w, "per_channel"),
    observer: "histogram",
    notes:
      "get_default_qconfig('x86'): HistogramObserver (reduce_range, uint8 0..127) on each linear's input and output, per-channel symmetric int8 weights; QuantStub -> quantized Linear -> DeQuantStub around every linear",
  },
  ...(["w8", "wf8"] as const).map<Recipe>((id) => ({
    id: `quanto/${id}`,
    library: "quanto",
    scheme: "weight-only",
    granularity: "per-channel",
    bits: id === "w8" ? "8" : "8 (float8 e4m3fn)",
    execution: () => (id === "w8" ? "MatMulNBits" : "dequantized at load"),
    // onnxruntime 1.30 has no fast 8-bit MatMulNBits for one row at fp32 compute: 0.22x fp32 per token (make bench)
    ...(id === "w8" ? { expandByDefault: "decoder" as const } : {}),
    quantizesProjOut: true,
    quantize: (w) => quantizeQuantoSymmetric(w, id === "w8" ? "int8" : "float8"),
    notes: id === "w8" ? "symmetric, absmax / 127 per output channel" : "absmax / 448 per output channel; onnxruntime has no float8 GEMM on CPU",
  })),
  ...([4, 2] as const).map<Recipe>((bits) => ({
    id: `quanto/w${bits}`,
    library: "quanto",
    scheme: "weight-only",
    granularity: "group (128, -32 until it divides in_features)",
    bits: String(bits),
    execution: () => "MatMulNBits",
    quantizesProjOut: true,
    quantize: (w) => quantizeQuantoAffine(w, bits),
    notes: "affine, scale = (max - min) / (2^bits - 1), float shift = -min",
  })),
  ...(["w8a8", "w4a8", "wf8a8", "w8af8", "w4af8", "wf8af8"] as const).map<Recipe>((id) => {
    const weights = id.slice(0, id.indexOf("a")) as "w8" | "w4" | "wf8";
    const activations: ActivationType = id.endsWith("af8") ? "float8" : "int8";
    return {
      id: `quanto/${id}`,
      library: "quanto",
      scheme: "static",
      granularity: `${weights === "w4" ? "group (128, -32 until it divides in_features)" : "per-channel"} (weights); per-tensor calibrated (activations)`,
      bits: `${weights === "wf8" ? "float8" : weights.slice(1)} x ${activations === "float8" ? "float8" : "8"}`,
      execution: () => (weights === "w4" ? "MatMulNBits" : weights === "w8" && activations === "int8" ? "MatMulInteger" : "dequantized at load"),
      quantizesProjOut: true,
      quantize: (w) => (weights === "w4" ? quantizeQuantoAffine(w, 4) : quantizeQuantoSymmetric(w, weights === "w8" ? "int8" : "float8")),
      activations,
      ...(id === "w8a8" ? { graphRevision: 1 } : {}), // 1: uint8 x uint8 MatMulInteger (exact; see numericsRevision)
      ...(activations === "float8" ? { notInBrowser: "float8 tensors (onnxruntime-web registers no float8e4m3fn type)" } : {}),
      notes:
        "the study's static grid: quantize(weights, activations), Calibration() (momentum 0.9, streamline) over greedy decoding of the calibration part, freeze(); outputs stay float",
    };
  }),
  ...hqqBits.map<Recipe>((bits) => ({
    id: `hqq/${bits}`,
    library: "hqq",
    scheme: "weight-only",
    granularity: "group 64, axis 1",
    bits: String(bits),
    execution: (o) => (nativeNBits(o.bits ?? bits) && (o.axis ?? 1) === 1 ? "MatMulNBits" : "dequantized at load"),
    quantizesProjOut: true,
    quantize: (w, o) => quantizeHqq(w, { bits: (o.bits ?? bits) as 8 | 4 | 3 | 2 | 1, groupSize: o.groupSize ?? 64, axis: o.axis ?? 1 }),
    notes: "half-quadratic solver on the zero point (lp 0.7, beta 10, 20 steps, early stop); float scales and zeros",
  })),
  ...(["nf4", "fp4"] as const).map<Recipe>((qt) => ({
    id: `bnb/${qt}`,
    library: "bitsandbytes",
    scheme: "weight-only",
    granularity: "blocks of 64 (flattened weight)",
    bits: "4",
    execution: () => "MatMulBnb4",
    expandByDefault: "decoder", // MatMulBnb4 for one row: 0.84x fp32 per utterance on tiny.en (make bench)
    quantizesProjOut: false,
    quantize: (w) => quantizeBnb4(w, qt),
    notes: "absmax per block, nearest code; transformers leaves the tied output projection in float",
  })),
  ...(["nf4", "fp4"] as const).map<Recipe>((qt) => ({
    id: `bnb/${qt}-dq`,
    library: "bitsandbytes",
    scheme: "weight-only",
    granularity: "blocks of 64; absmax double-quantized (8-bit, blocks of 256)",
    bits: "4",
    execution: () => "MatMulBnb4",
    expandByDefault: "decoder", // MatMulBnb4 for one row: 0.84x fp32 per utterance on tiny.en (make bench)
    quantizesProjOut: false,
    quantize: (w) => quantizeBnb4(w, qt),
    doubleQuant: true,
    notes: "compress_statistics: absmax minus its mean, 8-bit dynamic map per 256 blocks; the absmax is rebuilt at load",
  })),
  ...(["nf4", "fp4"] as const).flatMap((qt) =>
    [false, true].map<Recipe>((doubleQuant) => ({
      id: `bnb/${qt}-fp16${doubleQuant ? "-dq" : ""}`,
      library: "bitsandbytes",
      scheme: "weight-only",
      granularity: doubleQuant ? "blocks of 64; absmax double-quantized (8-bit, blocks of 256)" : "blocks of 64 (flattened weight)",
      bits: "4",
      execution: () => "dequantized at load",
      quantizesProjOut: false,
      quantize: (w) => quantizeBnb4(w, qt),
      fp16Compute: true,
      doubleQuant,
      notes:
        "compute_dtype float16: weight, activation and output rounded to fp16, fp32 accumulation (emulated; onnxruntime has no fp16 MatMulBnb4 on CPU)" +
        (doubleQuant ? "; compress_statistics: the weight is expanded with the absmax rebuilt from its 8-bit codes" : ""),
    })),
  ),
  {
    id: "bnb/llm-int8",
    library: "bitsandbytes",
    scheme: "dynamic",
    granularity: "per-row weights, per-token activations, outlier columns in floating point",
    bits: "8",
    execution: () => "MatMulInteger",
    graphRevision: 2, // 1: the floating path gathers the outlier columns instead of a full fp32 product; 2: codes as uint8 with zero point 128
    quantizesProjOut: false,
    quantize: (w) => quantizeLlmInt8Weight(w),
    llmInt8: true,
    notes: "threshold 6.0, fp16 rounding as bitsandbytes' CPU kernels; the floating path dequantizes only the outlier columns' weight rows, per call",
  },
];

/**
 * Revisions of a recipe's numerics after a correction (part of the results store's run key; absent
 * means the first). 2: HQQ's round_zero for 4 bits (BaseQuantizeConfig) and torch's
 * reciprocal-then-multiply in HQQ's starting scale and in LLM.int8's weight scale; for double
 * quantization (bnb/*-dq), the absmax offset as torch's float32 mean and the division the CPU kernel does.
 * 3 (bnb/llm-int8): the floating path sums over the outlier columns only; the same terms, in
 * another order, which moves fp16 roundings by one unit in about 0.1 % of a long input's outputs.
 * 2 (quanto/w8a8): its int8 GEMM as uint8 x uint8, exact; the earlier uint8 x int8 form saturated on AVX2.
 */
export function numericsRevision(id: string): number | undefined {
  if (id === "bnb/llm-int8") return 3;
  if (id === "quanto/w8a8") return 2; // 2: exact int32 sums (uint8 x uint8), where onnxruntime's uint8 x int8 kernel saturated on AVX2
  return id.startsWith("hqq/") || (id.startsWith("bnb/") && id.endsWith("-dq")) ? 2 : undefined;
}

export function findRecipe(id: string): Recipe {
  const recipe = RECIPES.find((r) => r.id === id);
  if (!recipe) {
    const close = RECIPES.filter((r) => r.id.split("/")[0] === id.split("/")[0]).map((r) => r.id);
    throw new KitError(`unknown recipe '${id}'`, {
      field: "--recipe",
      fix: `one of: ${(close.length ? close : RECIPES.map((r) => r.id)).join(", ")} (ptq recipes lists them)`,
    });
  }
  return recipe;
}
