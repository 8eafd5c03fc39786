/**
 * Apply a recipe to the kit's fp32 Whisper graphs: every selected linear layer (a MatMul on an
 * initializer named after its Hugging Face parameter) is replaced, in place, by the recipe's
 * quantized form; the output projection (Gemm on the tied embedding) gets a quantized copy where
 * the library quantizes it. The result is a model folder with a manifest of every tensor's format.
 */
import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { DECODER_FILE, ENCODER_FILE, ensureOnnxModel, MANIFEST_FILE, type ModelManifest, type ParameterRecord } from "../model/build.js";
import { GraphBuilder, writeOnnxModel } from "../model/onnx.js";
import { transpose2d, TOKEN_EMBEDDING } from "../model/whisper-graphs.js";
import { doubleQuantizeAbsmax, packBnb4, type QuantizedWeight } from "../quant/schemes.js";
import { KitError } from "../util/errors.js";
import { exists, readJson, withAtomicDir, writeJsonAtomic } from "../util/fs.js";
import { progress } from "../util/progress.js";
import type { ActivationQuant } from "../quant/activations.js";
import { findRecipe, type Execution, type Expansion, type Recipe, type RecipeOptions } from "./catalog.js";
import { quantizeWeights, WeightQuantizeError } from "./weight-pool.js";
import { emitDequantized, emitLlmInt8, emitMatMulBnb4, emitMatMulNBits, emitTorchDynamic, fitsMatMulNBits } from "./emit.js";
import {
  calibrationInput,
  emitQuantoStatic,
  emitTorchStatic,
  observeTensor,
  OBSERVE_INPUT,
  OBSERVE_OUTPUT,
  quantizeOnFirstCall,
  requantizeOutput,
} from "./static.js";

export const PROJ_OUT = "proj_out";

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split("*")
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
}

/** Whether a linear layer (Hugging Face name without ".weight") is quantized under these options. */
export function selects(recipe: Recipe, options: RecipeOptions, layer: string): boolean {
  if (layer === PROJ_OUT && !recipe.quantizesProjOut && !options.include?.some((g) => globToRegExp(g).test(layer))) return false;
  if (options.include && !options.include.some((g) => globToRegExp(g).test(layer))) return false;
  if (options.exclude?.some((g) => globToRegExp(g).test(layer))) return false;
  return true;
}

/** The expansion in force: RecipeOptions.expand, else the recipe's default (none at --accuracy-level 4 and for recipes that cannot expand). */
export function expansionOf(recipe: Recipe, options: RecipeOptions): Expansion {
  if (options.expand) return options.expand;
  return options.accuracyLevel === 4 ? "none" : (recipe.expandByDefault ?? "none"); // int8 activations are the fast path there
}

/** Whether a layer of this graph runs in fp32 weights expanded at load under this expansion. */
function expands(expansion: Expansion, graph: "encoder" | "decoder", layer: string): boolean {
  if (expansion === "all") return true;
  return expansion === "decoder" && graph === "decoder" && !/\.encoder_attn\.(k|v)_proj$/.test(layer);
}

function checkOptions(recipe: Recipe, options: RecipeOptions): void {
  if (options.expand !== undefined && options.expand !== "none") {
    const execution = recipe.execution(options);
    if (recipe.scheme !== "weight-only" || (execution !== "MatMulNBits" && execution !== "MatMulBnb4"))
      throw new KitError(`${recipe.id} runs on ${execution}: --expand applies to weight-only recipes on MatMulNBits or MatMulBnb4`, {
        field: "--expand",
        fix: "drop --expand (expanding an activation-quantizing recipe's weights would change its numerics)",
      });
    if (options.accuracyLevel === 4)
      throw new KitError("--expand with --accuracy-level 4 mixes int8 and fp32 activations", {
        field: "--expand",
        fix: "choose one: --accuracy-level 4 (int8 activations) or --expand (the library's fp32 numerics)",
      });
  }
  if (options.bits !== undefined) {
    const allowed = recipe.library === "hqq" ? [8, 4, 3, 2, 1] : [Number(recipe.bits)];
    if (!allowed.includes(options.bits)) {
      throw new KitError(`${recipe.id} does not support ${options.bits} bits`, { field: "--bits", fix: `use ${allowed.join(", ")}` });
    }
  }
  if (options.groupSize !== undefined && (!Number.isInteger(options.groupSize) || options.groupSize < 1)) {
    throw new KitError(`--group-size must be a positive integer, got ${options.groupSize}`, { field: "--group-size", fix: "e.g. --group-size 64" });
  }
  if (options.accuracyLevel !== undefined) {
    if (options.accuracyLevel !== 0 && options.accuracyLevel !== 4)
      throw new KitError(`--accuracy-level must be 0 or 4, got ${options.accuracyLevel}`, {
        field: "--accuracy-level",
        fix: "0: the library's fp32 numerics; 4: int8 activations (faster)",
      });
    if (recipe.execution(options) !== "MatMulNBits" || recipe.scheme === "static")
      throw new KitError(`${recipe.id} does not run on MatMulNBits: --accuracy-level does not apply`, {
        field: "--accuracy-level",
        fix: "use it with quanto/w8, quanto/w4, quanto/w2 or hqq/4, hqq/2",
      });
  }
  if (options.groupSize !== undefined && recipe.library !== "hqq") {
    throw new KitError(`${recipe.id} takes no --group-size: ${recipe.library} fixes its own grouping (${recipe.granularity})`, {
      field: "--group-size",
      fix: "drop --group-size, or use an hqq recipe",
    });
  }
}

function describe(recipe: Recipe, q: QuantizedWeight, execution: Execution, options: RecipeOptions): string {
  const grouping = q.groupSize === q.codes.length ? "per-tensor" : `group ${q.groupSize}`;
  const int8Activations = execution === "MatMulNBits" && options.accuracyLevel === 4 ? ", int8 activations: accuracy_level 4" : "";
  return `${recipe.library} ${q.convention} ${q.bits}-bit ${grouping} (${execution}${int8Activations})`;
}

/**
 * Static recipes need activation scales: either build the calibration form of the graphs (scales
 * as inputs, updated per call), or the final graphs with the calibrated scales baked in.
 */
export type StaticCalibration = (
  | { mode: "calibrate" }
  | { mode: "calibrated"; source: string; activations: Record<string, ActivationQuant>; seconds: number }
) & {
  /** Quantized weights per graph file, filled by the calibration pass and reused by the final one (the same quantizer on the same weights). */
  weights?: Map<string, QuantizedWeight[]>;
};

/** Where a static recipe's scales come from: a description (part of the cache key) and the pass itself. */
export interface CalibrationRun {
  source: string;
  /** Run the calibration graphs in `dir` over the calibration audio; returns each layer's activation quantization. */
  run: (dir: string) => Promise<Record<string, ActivationQuant>>;
}

export interface QuantizeReport {
  manifest: ModelManifest;
  seconds: number;
}

/** Quantize the fp32 graphs in `fp32Dir` with a recipe into `outDir` (written atomically). */
export async function quantizeModel(
  fp32Dir: string,
  recipeId: string,
  options: RecipeOptions,
  outDir: string,
  calibration?: StaticCalibration,
): Promise<QuantizeReport> {
  const started = performance.now();
  const manifestFile = join(fp32Dir, MANIFEST_FILE);
  if (!(await exists(manifestFile)))
    throw new KitError(`${fp32Dir} has no ${MANIFEST_FILE}`, { file: manifestFile, fix: "build the fp32 graphs first (ptq build)" });
  const base = await readJson<ModelManifest>(manifestFile);
  if (base.recipe !== "fp32") {
    throw new KitError(`${fp32Dir} is already quantized (recipe ${base.recipe})`, {
      file: manifestFile,
      field: "recipe",
      fix: "quantize the fp32 model, not a quantized one",
    });
  }
  const recipe = findRecipe(recipeId);
  if (recipe.id === "fp32")
    throw new KitError("fp32 is the baseline: there is nothing to quantize", { field: "--recipe", fix: "use the fp32 folder as it is" });
  if (!recipe.quantize)
    throw new KitError(`recipe ${recipe.id} is listed but cannot run yet: ${recipe.missing}`, {
      field: "--recipe",
      fix: "choose another recipe (ptq recipes)",
    });
  checkOptions(recipe, options);
  const activations = recipe.activations;
  const torchObserved = recipe.observer === "histogram";
  if (recipe.scheme === "static" && !calibration) {
    throw new KitError(`${recipe.id} is a static recipe: its activation scales come from calibration data, and none was given`, {
      field: "calibration",
      fix: "give the calibration split (ptq quantize --split NAME --librispeech-dir DIR, or evaluate with ptq eval, which calibrates on the split's first 10 %)",
    });
  }
  const execution = recipe.execution(options);
  const expansion = recipe.scheme === "weight-only" ? expansionOf(recipe, options) : "none";

  return withAtomicDir(outDir, async (tmp) => {
    const records = new Map(base.parameters.map((p) => [p.name, { ...p }]));
    const files: ModelManifest["files"] = [];
    const quantizeLayer = (g: GraphBuilder, layer: string, q: QuantizedWeight, n: number, k: number, x: string, out: string) => {
      let bytes: number;
      let path: Execution;
      if (torchObserved && calibration?.mode === "calibrated") {
        const p = calibration.activations[layer];
        if (!p || !(p.inputScale > 0) || p.inputZeroPoint === undefined)
          throw new KitError(`no calibrated input qparams for ${layer}`, {
            field: `activations.${layer}`,
            fix: "calibrate again with the same recipe and options",
          });
        ({ bytes, execution: path } = emitTorchStatic(g, x, out, layer, q, n, k, p.inputScale, p.inputZeroPoint));
      } else if (activations && calibration?.mode === "calibrated") {
        const params = calibration.activations[layer];
        if (!params || !(params.inputScale > 0))
          throw new KitError(`no calibrated input scale for ${layer}`, {
            field: `activations.${layer}`,
            fix: "calibrate again with the same recipe and options",
          });
        ({ bytes, execution: path } = emitQuantoStatic(g, x, out, layer, q, n, k, activations, params.inputScale));
      } else {
        if (activations) x = calibrationInput(g, x, layer, activations); // calibration form: weight-only numerics behind a fake-quantized input
        const expanded = expands(expansion, g.name.includes("encoder") ? "encoder" : "decoder", layer);
        const weightPath: Execution = activations || expanded ? "dequantized at load" : execution; // calibration runs float GEMMs: fast, same values up to summation order
        path = weightPath === "MatMulNBits" && !fitsMatMulNBits(q, k) ? "dequantized at load" : weightPath;
        if (path === "MatMulNBits") bytes = emitMatMulNBits(g, x, out, layer, q, n, k, options.accuracyLevel ?? 0);
        else if (path === "MatMulBnb4")
          bytes = emitMatMulBnb4(
            g,
            x,
            out,
            layer,
            q,
            packBnb4(q.codes),
            recipe.id.includes("fp4") ? "fp4" : "nf4",
            n,
            k,
            recipe.doubleQuant ? doubleQuantizeAbsmax(q.scales) : undefined,
          );
        else if (path === "MatMulInteger") bytes = recipe.llmInt8 ? emitLlmInt8(g, x, out, layer, q, n, k) : emitTorchDynamic(g, x, out, layer, q, n, k);
        else bytes = emitDequantized(g, x, out, layer, q, n, k, { fp16Compute: recipe.fp16Compute ?? false, doubleQuant: recipe.doubleQuant ?? false });
      }
      const name = `${layer}.weight`;
      const record: ParameterRecord = records.get(name) ?? {
        name,
        shape: [n, k],
        graph: g.name.includes("encoder") ? "encoder" : "decoder",
        format: "fp32",
        bytes: 0,
      };
      records.set(name, { ...record, format: describe(recipe, q, path, options), bytes, execution: path });
    };

    for (const file of [ENCODER_FILE, DECODER_FILE]) {
      const { builder: g, opset, domains } = await GraphBuilder.fromFile(join(fp32Dir, file));
      const original = [...g.nodes];
      const layerOutputs: string[] = [];
      const layerOf = (node: (typeof original)[number]): string | null => {
        const isLinear = node.opType === "MatMul" && node.input[1]?.endsWith(".weight") && g.initializers.has(node.input[1]!);
        const isProjOut = node.opType === "Gemm" && node.input[1] === TOKEN_EMBEDDING;
        if (!isLinear && !isProjOut) return null;
        const layer = isProjOut ? PROJ_OUT : node.input[1]!.slice(0, -".weight".length);
        return selects(recipe, options, layer) ? layer : null;
      };
      const layers = original.flatMap((node) => {
        const layer = layerOf(node);
        if (layer === null) return [];
        const init = g.initializers.get(node.input[1]!)!;
        const [rows, cols] = init.dims as [number, number];
        const isProjOut = layer === PROJ_OUT;
        // fp32 graphs hold linear weights as W^T [K, N]; the embedding is already [vocab = N, d = K].
        const [n, k] = isProjOut ? [rows, cols] : [cols, rows];
        return [{ node, layer, isProjOut, n, k, init }];
      });
      const observing = torchObserved && calibration?.mode === "calibrate"; // PyTorch observes the fp32 model: no weight is quantized
      const bar = progress(`quantize ${recipe.id} ${file}`);
      let done = 0;
      const weights = observing
        ? []
        : layers.map(({ isProjOut, n, k, init }) => ({
            data: isProjOut ? (init.data as Float32Array) : transpose2d(init.data as Float32Array, k, n),
            rows: n,
            cols: k,
          }));
      let quantized: QuantizedWeight[];
      try {
        const reused = observing ? undefined : calibration?.weights?.get(file);
        quantized = reused ?? (await quantizeWeights(recipe.id, options, weights, { onDone: (i) => bar.update(++done, layers.length, layers[i]!.layer) }));
        if (!observing && !reused) calibration?.weights?.set(file, quantized);
      } catch (err) {
        if (!(err instanceof WeightQuantizeError)) throw err;
        const { layer, n, k } = layers[err.index]!;
        throw new KitError(`${recipe.id} cannot quantize ${layer} [${n}, ${k}]: ${err.message}`, {
          field: "--group-size",
          fix: "the library refuses this too: choose a group size that divides the layer's weights",
        });
      }
      for (const [i, { node, layer, isProjOut, n, k }] of layers.entries()) {
        const biasAddOf = () => g.nodes.find((m) => m.opType === "Add" && m.input[0] === node.output[0] && m.input[1] === `${layer}.bias`);
        if (observing) {
          observeTensor(g, node.input[0]!, `${layer}${OBSERVE_INPUT}`);
          observeTensor(g, biasAddOf()?.output[0] ?? node.output[0]!, `${layer}${OBSERVE_OUTPUT}`);
          continue;
        }
        const at = g.nodes.indexOf(node);
        g.nodes.splice(at, 1);
        const before = g.nodes.length;
        quantizeLayer(g, layer, quantized[i]!, n, k, node.input[0]!, node.output[0]!);
        g.nodes.splice(at, 0, ...g.nodes.splice(before)); // keep topological order: new nodes where the old one was
        if (!isProjOut) g.dropUnusedInitializer(node.input[1]!);
        const biasAdd = biasAddOf();
        const layerOutput = biasAdd ? biasAdd.output[0]! : node.output[0]!;
        layerOutputs.push(layerOutput);
        if (torchObserved && calibration?.mode === "calibrated") {
          const p = calibration.activations[layer]!;
          if (p.outputScale === undefined || p.outputZeroPoint === undefined)
            throw new KitError(`no calibrated output qparams for ${layer}`, {
              field: `activations.${layer}`,
              fix: "calibrate again with the same recipe and options",
            });
          requantizeOutput(g, layerOutput, layer, p.outputScale, p.outputZeroPoint);
        }
      }
      bar.done();
      if (activations && calibration?.mode === "calibrate") {
        for (const t of layerOutputs) quantizeOnFirstCall(g, t, activations);
        for (const ln of g.nodes.filter((m) => m.opType === "LayerNormalization")) quantizeOnFirstCall(g, ln.output[0]!, activations);
      }
      const written = await writeOnnxModel(g, join(tmp, file), { opset, domains: { ...domains, "com.microsoft": 1 }, metadata: { recipe: recipe.id } });
      files.push({ file, bytes: written.graphBytes });
      if (written.dataFile) files.push({ file: `${file}.data`, bytes: written.dataBytes });
    }
    const parameters = [...records.values()];
    const manifest: ModelManifest = {
      ...base,
      recipe: recipe.id,
      recipeOptions: options as Record<string, unknown>,
      files,
      parameters,
      parameterBytes: parameters.reduce((a, p) => a + p.bytes, 0),
      baselineParameterBytes: base.parameterBytes,
      quantizeSeconds: (performance.now() - started) / 1000 + (calibration?.mode === "calibrated" ? calibration.seconds : 0),
      floatTensors: parameters.filter((p) => p.format === "fp32").map((p) => p.name),
      dequantizedAtLoad: parameters.some((p) => p.execution === "dequantized at load"),
      ...(calibration?.mode === "calibrated"
        ? { calibration: { source: calibration.source, seconds: calibration.seconds, activations: calibration.activations } }
        : {}),
      ...(calibration?.mode === "calibrate" ? { calibration: "graphs for calibration" as const } : {}),
    };
    await writeJsonAtomic(join(tmp, MANIFEST_FILE), manifest);
    return { manifest, seconds: manifest.quantizeSeconds! };
  });
}

/** A static recipe end to end: calibration graphs, the calibration pass, the final graphs with the scales baked in. */
export async function quantizeWithCalibration(
  fp32Dir: string,
  recipeId: string,
  options: RecipeOptions,
  outDir: string,
  calibration: CalibrationRun,
): Promise<QuantizeReport> {
  const started = performance.now();
  const graphsDir = `${outDir}.calibration`;
  await rm(graphsDir, { recursive: true, force: true });
  const weights = new Map<string, QuantizedWeight[]>(); // quantized once, for both passes
  await quantizeModel(fp32Dir, recipeId, options, graphsDir, { mode: "calibrate", weights });
  let activations: Record<string, ActivationQuant>;
  try {
    activations = await calibration.run(graphsDir);
  } finally {
    await rm(graphsDir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  return quantizeModel(fp32Dir, recipeId, options, outDir, { mode: "calibrated", source: calibration.source, activations, seconds, weights });
}

/**
 * Bumped when the emitted graphs change for the same recipe, so caches rebuild (2: 4-bit float zero
 * points folded out of MatMulNBits; 3: HQQ and LLM.int8 numerics revised, 4: double quantization's
 * offset and division; see numericsRevision).
 */
export const QUANTIZED_GRAPH_VERSION = 4;

/**
 * The quantized graphs for a model folder and recipe, made once and cached beside the fp32 build.
 * Static recipes first write their calibration graphs, run `calibration` over them, and bake the
 * resulting scales in; the calibration source is part of the cache key.
 */
export async function ensureQuantizedModel(
  modelDir: string,
  recipeId: string,
  options: RecipeOptions = {},
  calibration?: CalibrationRun,
): Promise<{ dir: string; manifest: ModelManifest }> {
  const fp32 = await ensureOnnxModel(modelDir);
  if (recipeId === "fp32") return fp32;
  const recipe = findRecipe(recipeId);
  const expansion = expansionOf(recipe, options);
  const key = {
    recipeId,
    options,
    graphs: QUANTIZED_GRAPH_VERSION,
    ...(expansion !== "none" ? { expansion } : {}), // graphs made before expansion existed keep their folder
    ...(recipe.graphRevision ? { revision: recipe.graphRevision } : {}),
    ...(recipe.scheme === "static" ? { calibration: calibration?.source } : {}),
  };
  const tag = createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 12);
  const dir = join(fp32.dir, "..", `${recipeId.replace("/", "-")}-${tag}`);
  if (await exists(join(dir, MANIFEST_FILE))) return { dir, manifest: await readJson<ModelManifest>(join(dir, MANIFEST_FILE)) };
  if (recipe.scheme !== "static" || !calibration) {
    const { manifest } = await quantizeModel(fp32.dir, recipeId, options, dir);
    return { dir, manifest };
  }
  const { manifest } = await quantizeWithCalibration(fp32.dir, recipeId, options, dir, calibration);
  return { dir, manifest };
}
