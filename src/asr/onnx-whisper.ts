import * as ort from "onnxruntime-node";
import { join } from "node:path";
import type { WhisperConfig } from "../model/config.js";
import { inputFrames } from "../model/config.js";
import { DECODER_FILE, ENCODER_FILE } from "../model/build.js";
import { KitError, messageOf } from "../util/errors.js";

export interface RuntimeOptions {
  /** Intra-op threads per session; 0 lets onnxruntime choose (all cores). */
  threads?: number;
  /**
   * Let onnxruntime repack constant weights into its GEMM layout at load (default true, its own
   * default). The packed copy sits beside the mapped original: on whisper-small's dimensions, fp32,
   * after one encoder call and 40 decoder steps, 1546 MB at 25.8 ms per step packed, 1394 MB at
   * 32.2 ms unpacked (packing the decoder only saves nothing). 4-bit MatMulNBits needs its packing
   * (tiny.en 4.6 -> 79 ms per token without).
   */
  prepackWeights?: boolean;
  /**
   * onnxruntime's CPU memory arena (default false here; onnxruntime's own default is true). The
   * arena keeps every activation and cache buffer it ever grew: without it, peak resident memory on
   * whisper-small's dimensions after the encoder and 40 steps is 1390 MB fp32 (1541 with it) and
   * 473 MB quanto/w4 (629); on tiny.en the encoder and a step take the same time either way
   * (bench/profile.js memory ... [--arena]).
   */
  cpuMemArena?: boolean;
  /** Extra session configuration entries (onnxruntime's session.* keys), for memory profiles. */
  sessionConfig?: Record<string, string>;
  /** Extra inputs and a look at every output: how calibration graphs are driven. */
  instrument?: SessionInstrument;
}

export interface SessionInstrument {
  feeds(graph: "encoder" | "decoder", inputNames: readonly string[]): Record<string, ort.Tensor>;
  observe(graph: "encoder" | "decoder", outputs: ort.InferenceSession.OnnxValueMapType): void;
}

/** Per-utterance encoder results: what the decoder needs at every step. */
export interface EncodedAudio {
  hidden: ort.Tensor; // last_hidden_state [1, 1500, d]
  cross: Record<string, ort.Tensor>; // cross_key.{l}, cross_value.{l}
}

/** The self-attention cache: present_key.{l}/present_value.{l} of the previous step. */
export type KvCache = Record<string, ort.Tensor>;

export interface StepResult {
  logits: Float32Array; // [T, vocab] for the T tokens fed
  tokens: number; // T
  cache: KvCache;
}

/** {"session.a_b": "1"} -> { session: { a_b: "1" } }: how onnxruntime-node takes config entries. */
function nestedConfig(entries: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entries)) {
    const parts = key.split(".");
    let at = out;
    for (const p of parts.slice(0, -1)) {
      at[p] ??= {};
      at = at[p] as Record<string, unknown>;
    }
    at[parts.at(-1)!] = value;
  }
  return out;
}

/** The two onnxruntime sessions of one Whisper model folder (encoder.onnx, decoder.onnx). */
export class OnnxWhisper {
  private constructor(
    readonly config: WhisperConfig,
    readonly encoder: ort.InferenceSession,
    readonly decoder: ort.InferenceSession,
    private readonly emptyPast: KvCache,
    private readonly instrument?: SessionInstrument,
  ) {}

  static async load(dir: string, config: WhisperConfig, options: RuntimeOptions = {}): Promise<OnnxWhisper> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      intraOpNumThreads: options.threads ?? 0,
      enableCpuMemArena: options.cpuMemArena ?? false,
    };
    const entries: Record<string, string> = { ...(options.prepackWeights === false ? { "session.disable_prepacking": "1" } : {}), ...options.sessionConfig };
    if (Object.keys(entries).length > 0) sessionOptions.extra = nestedConfig(entries);
    const open = async (file: string) => {
      try {
        return await ort.InferenceSession.create(join(dir, file), sessionOptions);
      } catch (err) {
        throw new KitError(`onnxruntime cannot load ${file}: ${messageOf(err)}`, { file: join(dir, file), fix: "delete the folder and build the model again" });
      }
    };
    const encoder = await open(ENCODER_FILE);
    const decoder = await open(DECODER_FILE);
    const H = config.decoderHeads;
    const Dh = config.dModel / H;
    const emptyPast: KvCache = {};
    for (let l = 0; l < config.decoderLayers; l++) {
      emptyPast[`past_key.${l}`] = new ort.Tensor("float32", new Float32Array(0), [1, H, 0, Dh]);
      emptyPast[`past_value.${l}`] = new ort.Tensor("float32", new Float32Array(0), [1, H, 0, Dh]);
    }
    return new OnnxWhisper(config, encoder, decoder, emptyPast, options.instrument);
  }

  /** Run the encoder on one [nMels, 3000] log-mel matrix. */
  async encode(mel: Float32Array): Promise<EncodedAudio> {
    const frames = inputFrames(this.config);
    if (mel.length !== this.config.numMelBins * frames) {
      throw new Error(`encode: expected ${this.config.numMelBins}x${frames} features, got ${mel.length} values`);
    }
    const feeds = {
      input_features: new ort.Tensor("float32", mel, [1, this.config.numMelBins, frames]),
      ...this.instrument?.feeds("encoder", this.encoder.inputNames),
    };
    const out = await this.encoder.run(feeds);
    this.instrument?.observe("encoder", out);
    const cross: Record<string, ort.Tensor> = {};
    for (let l = 0; l < this.config.decoderLayers; l++) {
      cross[`cross_key.${l}`] = out[`cross_key.${l}`]!;
      cross[`cross_value.${l}`] = out[`cross_value.${l}`]!;
    }
    return { hidden: out.last_hidden_state!, cross };
  }

  /** Feed `ids` after the cached positions (none when `cache` is null). */
  async step(ids: number[], encoded: EncodedAudio, cache: KvCache | null): Promise<StepResult> {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor(
        "int64",
        BigInt64Array.from(ids, (id) => BigInt(id)),
        [1, ids.length],
      ),
      ...encoded.cross,
    };
    const past = cache ?? this.emptyPast;
    for (let l = 0; l < this.config.decoderLayers; l++) {
      feeds[`past_key.${l}`] = past[`past_key.${l}`] ?? past[`present_key.${l}`]!;
      feeds[`past_value.${l}`] = past[`past_value.${l}`] ?? past[`present_value.${l}`]!;
    }
    if (this.instrument) Object.assign(feeds, this.instrument.feeds("decoder", this.decoder.inputNames));
    const out = await this.decoder.run(feeds);
    this.instrument?.observe("decoder", out);
    const next: KvCache = {};
    for (let l = 0; l < this.config.decoderLayers; l++) {
      next[`past_key.${l}`] = out[`present_key.${l}`]!;
      next[`past_value.${l}`] = out[`present_value.${l}`]!;
    }
    return { logits: out.logits!.data as Float32Array, tokens: ids.length, cache: next };
  }

  async release(): Promise<void> {
    await this.encoder.release();
    await this.decoder.release();
  }
}
