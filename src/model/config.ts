import { KitError } from "../util/errors.js";
import { readJson } from "../util/fs.js";

/**
 * The subset of a Hugging Face Whisper config.json that fixes the architecture. Every Whisper
 * size (tiny ... large) follows from these numbers alone.
 */
export interface WhisperConfig {
  dModel: number;
  encoderLayers: number;
  encoderHeads: number;
  encoderFfnDim: number;
  decoderLayers: number;
  decoderHeads: number;
  decoderFfnDim: number;
  numMelBins: number;
  maxSourcePositions: number; // encoder frames after the stride-2 convolution (1500 for 30 s)
  maxTargetPositions: number; // decoder positions (448)
  vocabSize: number;
  scaleEmbedding: boolean;
}

const REQUIRED_INTEGERS: Array<[keyof WhisperConfig, string]> = [
  ["dModel", "d_model"],
  ["encoderLayers", "encoder_layers"],
  ["encoderHeads", "encoder_attention_heads"],
  ["encoderFfnDim", "encoder_ffn_dim"],
  ["decoderLayers", "decoder_layers"],
  ["decoderHeads", "decoder_attention_heads"],
  ["decoderFfnDim", "decoder_ffn_dim"],
  ["numMelBins", "num_mel_bins"],
  ["maxSourcePositions", "max_source_positions"],
  ["maxTargetPositions", "max_target_positions"],
  ["vocabSize", "vocab_size"],
];

/** Validate a parsed config.json; `file` is only used to name the source in errors. */
export function parseWhisperConfig(raw: unknown, file: string): WhisperConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new KitError("config.json is not a JSON object", { file, fix: "fetch the model again" });
  }
  const json = raw as Record<string, unknown>;
  if (json.model_type !== undefined && json.model_type !== "whisper") {
    throw new KitError(`config.json describes a '${String(json.model_type)}' model, not Whisper`, {
      file,
      field: "model_type",
      fix: "point --model at a Whisper checkpoint (e.g. openai/whisper-small)",
    });
  }
  const activation = json.activation_function ?? "gelu";
  if (activation !== "gelu") {
    throw new KitError(`unsupported activation_function '${String(activation)}' (Whisper uses exact gelu)`, {
      file,
      field: "activation_function",
      fix: "use an original Whisper config.json",
    });
  }
  const out: Partial<WhisperConfig> = { scaleEmbedding: json.scale_embedding === true };
  for (const [key, name] of REQUIRED_INTEGERS) {
    const value = json[name];
    if (value === undefined) {
      throw new KitError(`config.json has no '${name}'`, {
        file,
        field: name,
        fix: "the config is incomplete; fetch the model again or add the field from the original checkpoint",
      });
    }
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw new KitError(`config.json field '${name}' must be a positive integer, got ${JSON.stringify(value)}`, {
        file,
        field: name,
        fix: "correct the value to match the original checkpoint",
      });
    }
    (out as Record<string, unknown>)[key] = value;
  }
  const config = out as WhisperConfig;
  for (const [heads, name] of [
    [config.encoderHeads, "encoder_attention_heads"],
    [config.decoderHeads, "decoder_attention_heads"],
  ] as const) {
    if (config.dModel % heads !== 0) {
      throw new KitError(`d_model ${config.dModel} is not divisible by ${name} ${heads}`, {
        file,
        field: name,
        fix: "correct the config to match the checkpoint",
      });
    }
  }
  return config;
}

export async function readWhisperConfig(file: string): Promise<WhisperConfig> {
  return parseWhisperConfig(await readJson(file), file);
}

/** The number of audio frames the encoder expects: two per output position (conv2 stride 2). */
export function inputFrames(config: WhisperConfig): number {
  return config.maxSourcePositions * 2;
}
