/**
 * Transcription through transformers.js itself, on an exported model folder: the artifact a user
 * ships, run by the library they ship it with (its feature extractor, its generate(), its
 * onnxruntime session options). The evaluation harness uses it like the kit's own Transcriber.
 */
import { basename, dirname, join, resolve } from "node:path";
import { SAMPLE_RATE } from "../audio/decode.js";
import { N_SAMPLES } from "../audio/mel.js";
import type { ModelManifest } from "../model/build.js";
import { KitError, messageOf } from "../util/errors.js";
import { exists } from "../util/fs.js";
import type { GenerationSettings, GreedyOptions } from "./greedy.js";
import type { SpeechRecognizer, Transcription } from "./transcriber.js";

// The parts of transformers.js used here (its own types pull in the DOM library).
interface TjTensor {
  data: ArrayLike<number | bigint>;
  dims: number[];
}
interface TjModel {
  generate(args: Record<string, unknown>): Promise<TjTensor>;
  dispose(): Promise<void>;
}
type TjProcessor = (audio: Float32Array) => Promise<{ input_features: TjTensor }>;
interface TjTokenizer {
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
}
interface TransformersJs {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
  AutoProcessor: { from_pretrained(path: string, options?: Record<string, unknown>): Promise<TjProcessor> };
  AutoTokenizer: { from_pretrained(path: string, options?: Record<string, unknown>): Promise<TjTokenizer> };
  WhisperForConditionalGeneration: { from_pretrained(path: string, options: Record<string, unknown>): Promise<TjModel> };
  Tensor: new (type: string, data: Float32Array, dims: number[]) => TjTensor;
}

export interface TransformersJsVariant {
  folder: string; // the exported model folder
  dtype: string; // a transformers.js dtype: fp32, q8, q4, bnb4, ...
  subfolder: string;
}

export interface TransformersJsOptions {
  threads?: number;
  /** Stop after this many generated tokens (tests). */
  maxNewTokens?: number;
}

async function importTransformersJs(): Promise<TransformersJs> {
  try {
    return (await import("@huggingface/transformers")) as unknown as TransformersJs;
  } catch (err) {
    throw new KitError(`cannot load @huggingface/transformers: ${messageOf(err)}`, { fix: "run npm ci in the checkout (make install)" });
  }
}

export class TransformersJsTranscriber implements SpeechRecognizer {
  private constructor(
    readonly variant: TransformersJsVariant,
    readonly modelDir: string,
    readonly manifest: ModelManifest,
    readonly generation: GenerationSettings,
    readonly options: TransformersJsOptions & { language?: string },
    private readonly model: TjModel,
    private readonly processor: TjProcessor,
    private readonly tokenizer: TjTokenizer,
    private readonly tj: TransformersJs,
  ) {}

  /** `modelDir`, `manifest`, `generation`: the kit's view of the same model and recipe (run keys, sizes, normalizer). */
  static async load(
    variant: TransformersJsVariant,
    kit: { modelDir: string; manifest: ModelManifest; generation: GenerationSettings },
    options: TransformersJsOptions = {},
  ): Promise<TransformersJsTranscriber> {
    const folder = resolve(variant.folder);
    if (!(await exists(join(folder, "config.json")))) {
      throw new KitError(`${folder} is not an exported model folder`, {
        file: join(folder, "config.json"),
        fix: "export it first: ptq export --format transformers.js",
      });
    }
    const tj = await importTransformersJs();
    tj.env.allowRemoteModels = false; // never the hub: the folder is the artifact under test
    tj.env.allowLocalModels = true;
    tj.env.localModelPath = `${dirname(folder)}/`; // a model id is a folder name under localModelPath
    const path = basename(folder);
    const sessionOptions = { intraOpNumThreads: options.threads ?? 0, interOpNumThreads: 1 };
    try {
      const model = await tj.WhisperForConditionalGeneration.from_pretrained(path, {
        dtype: variant.dtype,
        subfolder: variant.subfolder,
        device: "cpu",
        session_options: sessionOptions,
      });
      const processor = await tj.AutoProcessor.from_pretrained(path);
      const tokenizer = await tj.AutoTokenizer.from_pretrained(path);
      return new TransformersJsTranscriber(variant, kit.modelDir, kit.manifest, kit.generation, options, model, processor, tokenizer, tj);
    } catch (err) {
      throw new KitError(`transformers.js cannot load ${folder} (dtype ${variant.dtype}, subfolder ${variant.subfolder}): ${messageOf(err)}`, {
        file: join(folder, variant.subfolder),
        fix: "export the variant again (ptq export); its files may be incomplete",
      });
    }
  }

  get weightsSha256(): string {
    return this.manifest.source.weightsSha256;
  }

  /** Greedy tokens from given log-mel features [n_mels, 3000]: the model graphs alone, without transformers.js's feature extractor. */
  async decodeFeatures(mel: Float32Array, nMels: number): Promise<number[]> {
    const features = new this.tj.Tensor("float32", mel, [1, nMels, mel.length / nMels]);
    const out = await this.model.generate({ input_features: features, ...this.generateOptions() });
    return this.generatedTokens(Array.from(out.data, Number));
  }

  /** Transcribe 16 kHz mono samples (the first 30 s), features and all by transformers.js. */
  async transcribe(audio: Float32Array, _options: GreedyOptions = {}, transformFeatures?: (mel: Float32Array) => Float32Array): Promise<Transcription> {
    if (transformFeatures) {
      throw new KitError("transformers.js computes its own features: they cannot be perturbed", {
        field: "--perturb",
        fix: "drop --perturb, or use the kit's runtime",
      });
    }
    const { input_features } = await this.processor(audio.length > N_SAMPLES ? audio.subarray(0, N_SAMPLES) : audio);
    const out = await this.model.generate({ input_features, ...this.generateOptions() });
    const ids = Array.from(out.data, Number);
    const tokens = this.generatedTokens(ids);
    return {
      text: this.tokenizer.decode(tokens, { skip_special_tokens: true }).trim(),
      tokens,
      language: this.options.language ?? "en",
      finished: ids.at(-1) === this.generation.eosTokenId,
      audioSeconds: audio.length / SAMPLE_RATE,
      truncated: audio.length > N_SAMPLES,
    };
  }

  private generateOptions(): Record<string, unknown> {
    return this.options.maxNewTokens !== undefined ? { max_new_tokens: this.options.maxNewTokens } : {};
  }

  /** generate() returns prompt + generated (+ <|endoftext|>): keep what the kit calls tokens. */
  private generatedTokens(ids: number[]): number[] {
    const promptLength = ids.indexOf(this.generation.noTimestampsTokenId) + 1;
    const tokens = ids.slice(promptLength);
    return tokens.at(-1) === this.generation.eosTokenId ? tokens.slice(0, -1) : tokens;
  }

  async close(): Promise<void> {
    await this.model.dispose();
  }
}
