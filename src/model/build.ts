import type { ActivationQuant } from "../quant/activations.js";
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KitError } from "../util/errors.js";
import { dataDir, exists, hashFile, readJson, withAtomicDir, writeJsonAtomic } from "../util/fs.js";
import { readWhisperConfig, type WhisperConfig } from "./config.js";
import { writeOnnxModel, type GraphBuilder } from "./onnx.js";
import { SafetensorsFile } from "./safetensors.js";
import { buildDecoderGraph, buildEncoderGraph, OPSET, parameterShapes } from "./whisper-graphs.js";

export const ENCODER_FILE = "encoder.onnx";
export const DECODER_FILE = "decoder.onnx";
export const MANIFEST_FILE = "manifest.json";
/** Bumped whenever the graphs change, so that stale builds in the cache are rebuilt. */
export const GRAPH_VERSION = 1;

export interface ParameterRecord {
  name: string; // the Hugging Face parameter name
  shape: number[]; // Hugging Face shape ([out, in] for linear layers)
  graph: "encoder" | "decoder";
  format: string; // "fp32" here; recipes record their formats
  bytes: number;
  execution?: string; // how onnxruntime runs it (recipes): MatMulNBits, MatMulBnb4, MatMulInteger, dequantized at load
}

export interface ModelManifest {
  kind: "whisper-onnx";
  graphVersion: number;
  recipe: string;
  source: { modelDir: string; weightsSha256: string; config: WhisperConfig };
  opset: number;
  files: Array<{ file: string; bytes: number }>;
  parameters: ParameterRecord[];
  parameterBytes: number;
  // Set by recipes:
  recipeOptions?: Record<string, unknown>;
  baselineParameterBytes?: number; // the fp32 model's parameter bytes (tied output projection stored once)
  quantizeSeconds?: number;
  floatTensors?: string[]; // parameters left in fp32
  dequantizedAtLoad?: boolean; // some formats have no onnxruntime kernel and are expanded to fp32 at load
  calibration?: { source: string; seconds: number; activations: Record<string, ActivationQuant> } | "graphs for calibration"; // static recipes
}

/** Check a checkpoint against the parameter list the config implies: names and shapes. */
export function checkCheckpoint(weights: SafetensorsFile, config: WhisperConfig): void {
  for (const [name, shape] of parameterShapes(config)) {
    const entry = weights.entry(name);
    if (entry.shape.join(",") !== shape.join(",")) {
      throw new KitError(`tensor '${name}' has shape [${entry.shape}] but config.json implies [${shape}]`, {
        file: weights.file,
        field: name,
        fix: "config.json and model.safetensors come from different models; fetch both from the same revision",
      });
    }
  }
}

/** Write encoder.onnx, decoder.onnx (+ .data) and manifest.json for a Hugging Face model folder. */
export async function buildOnnxModel(modelDir: string, outDir: string): Promise<ModelManifest> {
  const configFile = join(modelDir, "config.json");
  const weightsFile = join(modelDir, "model.safetensors");
  const config = await readWhisperConfig(configFile);
  const weights = await SafetensorsFile.load(weightsFile);
  checkCheckpoint(weights, config);
  const weightsSha256 = await hashFile(weightsFile);
  return withAtomicDir(outDir, async (tmp) => {
    const files: ModelManifest["files"] = [];
    const parameters: ParameterRecord[] = [];
    const shapes = parameterShapes(config);
    const write = async (graph: GraphBuilder, file: string, role: "encoder" | "decoder") => {
      const written = await writeOnnxModel(graph, join(tmp, file), { opset: OPSET, metadata: { graph_version: String(GRAPH_VERSION) } });
      files.push({ file, bytes: written.graphBytes });
      if (written.dataFile) files.push({ file: `${file}.data`, bytes: written.dataBytes });
      for (const init of graph.initializers.values()) {
        const shape = shapes.get(init.name);
        if (shape) parameters.push({ name: init.name, shape, graph: role, format: "fp32", bytes: init.data.byteLength });
      }
    };
    await write(buildEncoderGraph(config, weights), ENCODER_FILE, "encoder");
    await write(buildDecoderGraph(config, weights), DECODER_FILE, "decoder");
    const manifest: ModelManifest = {
      kind: "whisper-onnx",
      graphVersion: GRAPH_VERSION,
      recipe: "fp32",
      source: { modelDir, weightsSha256, config },
      opset: OPSET,
      files,
      parameters,
      parameterBytes: parameters.reduce((a, p) => a + p.bytes, 0),
    };
    await writeJsonAtomic(join(tmp, MANIFEST_FILE), manifest);
    return manifest;
  });
}

/**
 * The fp32 graphs for a model folder, built once and cached under data/onnx/<key>/fp32, where
 * the key hashes config.json and the weights' size and modification time (a changed file rebuilds).
 */
export async function ensureOnnxModel(modelDir: string, cacheRoot = join(dataDir(), "onnx")): Promise<{ dir: string; manifest: ModelManifest }> {
  const configText = await readFile(join(modelDir, "config.json")).catch((err) => {
    throw new KitError(
      `${modelDir} has no config.json`,
      { file: join(modelDir, "config.json"), fix: "point --model at a Whisper model folder or hub id" },
      err,
    );
  });
  const weightsFile = join(modelDir, "model.safetensors");
  if (!(await exists(weightsFile))) {
    throw new KitError(`${modelDir} has no model.safetensors`, { file: weightsFile, fix: "fetch the model (ptq fetch model <id>) or import one (ptq import)" });
  }
  const st = statSync(weightsFile);
  const key = createHash("sha256").update(configText).update(`${st.size}:${st.mtimeMs}:${GRAPH_VERSION}`).digest("hex").slice(0, 16);
  const dir = join(cacheRoot, key, "fp32");
  const manifestFile = join(dir, MANIFEST_FILE);
  if (await exists(manifestFile)) {
    const manifest = await readJson<ModelManifest>(manifestFile);
    if (manifest.graphVersion === GRAPH_VERSION) return { dir, manifest };
  }
  return { dir, manifest: await buildOnnxModel(modelDir, dir) };
}
