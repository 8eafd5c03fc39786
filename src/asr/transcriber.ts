/**
 * The pipeline, as one object: model folder -> fp32 ONNX graphs -> audio -> log-mel -> encoder
 * -> greedy decoder -> text. Recipes and the evaluation harness call the same pieces.
 */
import { join } from "node:path";
import { loadAudio, SAMPLE_RATE } from "../audio/decode.js";
import { logMelSpectrogram, N_SAMPLES } from "../audio/mel.js";
import { ensureOnnxModel, MANIFEST_FILE, type ModelManifest } from "../model/build.js";
import { readJson } from "../util/fs.js";
import { readWhisperConfig, type WhisperConfig } from "../model/config.js";
import { resolveModelDir, type FetchOptions } from "../hub/fetch-model.js";
import { greedyDecode, readGenerationSettings, type DecoderStepper, type GenerationSettings, type GreedyOptions, type GreedyResult } from "./greedy.js";
import { OnnxWhisper, type EncodedAudio, type KvCache, type RuntimeOptions } from "./onnx-whisper.js";
import { WhisperTokenizer } from "./tokenizer.js";

export interface Transcription {
  text: string;
  tokens: number[];
  language: string | null;
  finished: boolean;
  audioSeconds: number;
  truncated: boolean; // audio beyond 30 s was cut, as Hugging Face's feature extractor does
}

export interface TranscriberOptions extends RuntimeOptions, GreedyOptions {
  hub?: FetchOptions;
  /** A folder holding encoder.onnx/decoder.onnx to run instead of the fp32 build (a recipe's output). */
  onnxDir?: string;
}

/** What the evaluation harness needs of a transcriber: the kit's own, or transformers.js on an export. */
export interface SpeechRecognizer {
  readonly modelDir: string;
  readonly manifest: ModelManifest;
  readonly weightsSha256: string;
  readonly generation: GenerationSettings;
  readonly options: { language?: string; maxNewTokens?: number };
  transcribe(audio: Float32Array, options?: GreedyOptions, transformFeatures?: (mel: Float32Array) => Float32Array): Promise<Transcription>;
  close(): Promise<void>;
}

/** The decoder of one utterance, seen by the greedy loop as a stepper. */
export function stepperFor(model: OnnxWhisper, encoded: EncodedAudio): DecoderStepper<KvCache> {
  return {
    vocabSize: model.config.vocabSize,
    step: async (ids, state) => {
      const out = await model.step(ids, encoded, state);
      return { logits: out.logits, state: out.cache };
    },
  };
}

export class Transcriber implements SpeechRecognizer {
  private constructor(
    readonly modelDir: string,
    readonly onnxDir: string,
    readonly manifest: ModelManifest,
    readonly config: WhisperConfig,
    readonly model: OnnxWhisper,
    readonly tokenizer: WhisperTokenizer,
    readonly generation: GenerationSettings,
    readonly options: TranscriberOptions,
  ) {}

  /** `model`: a folder in the Hugging Face layout, or a hub id (fetched and cached). */
  static async load(model: string, options: TranscriberOptions = {}): Promise<Transcriber> {
    const modelDir = await resolveModelDir(model, options.hub ?? {});
    const config = await readWhisperConfig(join(modelDir, "config.json"));
    const tokenizer = await WhisperTokenizer.load(modelDir);
    const generation = await readGenerationSettings(modelDir, tokenizer, config.maxTargetPositions);
    const onnxDir = options.onnxDir ?? (await ensureOnnxModel(modelDir)).dir;
    const manifest = await readJson<ModelManifest>(join(onnxDir, MANIFEST_FILE));
    const runtime = await OnnxWhisper.load(onnxDir, config, options);
    return new Transcriber(modelDir, onnxDir, manifest, config, runtime, tokenizer, generation, options);
  }

  get weightsSha256(): string {
    return this.manifest.source.weightsSha256;
  }

  async decodeFeatures(mel: Float32Array, options: GreedyOptions = {}): Promise<GreedyResult> {
    const encoded = await this.model.encode(mel);
    return greedyDecode(stepperFor(this.model, encoded), this.generation, { ...this.options, ...options });
  }

  /** Transcribe 16 kHz mono samples (at most 30 s are used, as in the study's pipeline). */
  /** `transformFeatures`: applied to the log-mel features before decoding (a perturbation study). */
  async transcribe(audio: Float32Array, options: GreedyOptions = {}, transformFeatures?: (mel: Float32Array) => Float32Array): Promise<Transcription> {
    const computed = logMelSpectrogram(audio, this.config.numMelBins);
    const mel = transformFeatures ? transformFeatures(computed) : computed;
    const result = await this.decodeFeatures(mel, options);
    return {
      text: this.tokenizer.decode(result.tokens).trim(),
      tokens: result.tokens,
      language: result.language,
      finished: result.finished,
      audioSeconds: audio.length / SAMPLE_RATE,
      truncated: audio.length > N_SAMPLES,
    };
  }

  async transcribeFile(file: string, options: GreedyOptions = {}): Promise<Transcription> {
    return this.transcribe(await loadAudio(file), options);
  }

  async close(): Promise<void> {
    await this.model.release();
  }
}
