/**
 * The calibration pass of static recipes: greedy decoding of each calibration utterance through
 * the recipe's calibration graphs (src/recipes/static.ts), carrying every layer's running input
 * scale from one call to the next in call order, as quanto's Calibration() sees the forward
 * calls of generate(): the encoder (and the cross-attention projections) once per utterance, the
 * decoder once per token step.
 */
import * as ort from "onnxruntime-node";
import { FIRST_CALL } from "../recipes/static.js";
import { KitError } from "../util/errors.js";
import type { SessionInstrument } from "./onnx-whisper.js";
import { Transcriber, type TranscriberOptions } from "./transcriber.js";

const SCALE_INPUT = ".input_scale";
const SCALE_OUTPUT = ".input_scale.next";

/** Running scales of one calibration pass (1 until a layer's first call, as quanto initializes them). */
export class ScaleCalibration implements SessionInstrument {
  readonly scales = new Map<string, number>();
  private readonly firstCall = { encoder: true, decoder: true };

  feeds(graph: "encoder" | "decoder", inputNames: readonly string[]): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of inputNames) {
      if (name === FIRST_CALL) feeds[name] = new ort.Tensor("bool", [this.firstCall[graph]], []);
      else if (name.endsWith(SCALE_INPUT)) feeds[name] = new ort.Tensor("float32", Float32Array.of(this.scales.get(name.slice(0, -SCALE_INPUT.length)) ?? 1), []);
    }
    return feeds;
  }

  observe(graph: "encoder" | "decoder", outputs: ort.InferenceSession.OnnxValueMapType): void {
    for (const [name, value] of Object.entries(outputs)) {
      if (name.endsWith(SCALE_OUTPUT)) this.scales.set(name.slice(0, -SCALE_OUTPUT.length), (value.data as Float32Array)[0]!);
    }
    this.firstCall[graph] = false;
  }
}

export interface CalibrationResult {
  scales: Record<string, number>;
  /** The tokens decoded on each utterance (for parity checks with the library's own pass). */
  tokens: number[][];
}

/** Run a static recipe's calibration graphs (`graphsDir`) over audio files, in the order given. */
export async function calibrateActivationScales(modelDir: string, graphsDir: string, files: string[], options: TranscriberOptions = {}): Promise<CalibrationResult> {
  if (files.length === 0) throw new KitError("calibration needs at least one utterance", { field: "calibration", fix: "give a split with a non-empty calibration part" });
  const instrument = new ScaleCalibration();
  const transcriber = await Transcriber.load(modelDir, { ...options, onnxDir: graphsDir, instrument });
  const tokens: number[][] = [];
  try {
    for (const file of files) tokens.push((await transcriber.transcribeFile(file)).tokens);
  } finally {
    await transcriber.close();
  }
  return { scales: Object.fromEntries([...instrument.scales].sort(([a], [b]) => a.localeCompare(b))), tokens };
}
