/**
 * A random-weight Whisper of the real architecture at toy width and depth, written in the
 * Hugging Face layout with the real tokenizer files. Tests, the loopback hub mirror and
 * `make smoke` use it so that the whole path runs offline in seconds. Its transcripts are noise.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { KitError } from "../util/errors.js";
import { exists, readJson, repoRoot, writeJsonAtomic } from "../util/fs.js";
import type { WhisperConfig } from "./config.js";
import { parameterShapes, TOKEN_EMBEDDING } from "./whisper-graphs.js";
import { writeSafetensors, type TensorToWrite } from "./safetensors.js";

/** Deterministic PRNG (mulberry32) so that a seed gives the same model on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seededNormal(seed: number): () => number {
  const uniform = seededRandom(seed);
  return () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
}

/** Whisper's encoder positions: sin and cos of geometric timescales from 1 to 10000 (openai/whisper model.py). */
export function sinusoids(length: number, channels: number): Float32Array /* [length, channels] */ {
  const half = channels / 2;
  const logIncrement = Math.log(10000) / (half - 1);
  const out = new Float32Array(length * channels);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * Math.exp(-logIncrement * i);
      out[t * channels + i] = Math.sin(angle);
      out[t * channels + half + i] = Math.cos(angle);
    }
  }
  return out;
}

export interface SyntheticOptions {
  dModel?: number;
  heads?: number;
  layers?: number;
  ffnDim?: number;
  seed?: number;
  dtype?: "F32" | "F16" | "BF16";
  /** Folder with the tokenizer and config files of a real Whisper (BUNDLED_ASSETS: whisper-tiny.en's). */
  assetsDir: string;
}

/** whisper-tiny.en's tokenizer, normalizer and config files, shipped with the kit's tests (MIT, OpenAI). */
export const BUNDLED_ASSETS = join(repoRoot(), "test", "fixtures", "whisper-assets", "whisper-tiny.en");

export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "special_tokens_map.json",
  "normalizer.json",
  "preprocessor_config.json",
  "generation_config.json",
];

/**
 * Write a random tiny Whisper into `dir` (config.json, model.safetensors and the tokenizer files).
 * Weights are scaled so that activations stay O(1) through the stack, which makes the numerics
 * tests meaningful (no layer is a near-identity, no softmax saturates).
 */
export async function writeSyntheticWhisper(dir: string, options: SyntheticOptions): Promise<WhisperConfig> {
  const dModel = options.dModel ?? 64;
  const heads = options.heads ?? 2;
  const layers = options.layers ?? 2;
  const ffnDim = options.ffnDim ?? dModel * 4;
  const baseConfigFile = join(options.assetsDir, "config.json");
  if (!(await exists(baseConfigFile))) {
    throw new KitError(`no Whisper assets at ${options.assetsDir}`, {
      file: baseConfigFile,
      fix: `pass the folder of a real Whisper's tokenizer and config files, e.g. ${BUNDLED_ASSETS}`,
    });
  }
  const base = await readJson<Record<string, unknown>>(baseConfigFile);
  const rawConfig = {
    ...base,
    _name_or_path: "whisper-ptq-kit/synthetic-tiny",
    d_model: dModel,
    encoder_layers: layers,
    decoder_layers: layers,
    num_hidden_layers: layers,
    encoder_attention_heads: heads,
    decoder_attention_heads: heads,
    encoder_ffn_dim: ffnDim,
    decoder_ffn_dim: ffnDim,
    torch_dtype: options.dtype === "F16" ? "float16" : options.dtype === "BF16" ? "bfloat16" : "float32",
    synthetic: { seed: options.seed ?? 0, note: "random weights: transcripts are meaningless" },
  };
  const config: WhisperConfig = {
    dModel,
    encoderLayers: layers,
    encoderHeads: heads,
    encoderFfnDim: ffnDim,
    decoderLayers: layers,
    decoderHeads: heads,
    decoderFfnDim: ffnDim,
    numMelBins: base.num_mel_bins as number,
    maxSourcePositions: base.max_source_positions as number,
    maxTargetPositions: base.max_target_positions as number,
    vocabSize: base.vocab_size as number,
    scaleEmbedding: false,
  };
  const normal = seededNormal(options.seed ?? 0);
  const tensors = new Map<string, TensorToWrite>();
  const dtype = options.dtype ?? "F32";
  for (const [name, shape] of parameterShapes(config)) {
    const count = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    if (name === "model.encoder.embed_positions.weight") {
      data.set(sinusoids(shape[0]!, shape[1]!));
    } else if (name.endsWith("layer_norm.weight")) {
      for (let i = 0; i < count; i++) data[i] = 1 + 0.1 * normal();
    } else if (name.endsWith(".bias")) {
      for (let i = 0; i < count; i++) data[i] = 0.05 * normal();
    } else {
      const fanIn = shape.length === 3 ? shape[1]! * shape[2]! : shape.length === 2 && name !== TOKEN_EMBEDDING ? shape[1]! : dModel;
      const std = name.includes("embed") ? 0.5 : 1 / Math.sqrt(fanIn);
      for (let i = 0; i < count; i++) data[i] = std * normal();
    }
    tensors.set(name, { dtype, shape, data });
  }
  await mkdir(dir, { recursive: true });
  for (const file of TOKENIZER_FILES) {
    const from = join(options.assetsDir, file);
    if (await exists(from)) await copyFile(from, join(dir, file));
  }
  await writeJsonAtomic(join(dir, "config.json"), rawConfig);
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  return config;
}
