/**
 * The calibration pass of static recipes: greedy decoding of each calibration utterance through
 * the recipe's calibration graphs (src/recipes/static.ts), in call order, as the libraries' hooks
 * see the forward calls of generate(): the encoder (and the cross-attention projections) once per
 * utterance, the decoder once per token step. Quanto's graphs carry each layer's running input
 * scale from call to call; PyTorch's expose each linear layer's input and output, which feed
 * HistogramObservers.
 */
import * as ort from "onnxruntime-node";
import { FIRST_CALL, OBSERVE_INPUT, OBSERVE_OUTPUT } from "../recipes/static.js";
import { HistogramObserver } from "../quant/histogram-observer.js";
import type { ActivationQuant } from "../quant/activations.js";
import { progress } from "../util/progress.js";
import { KitError } from "../util/errors.js";
import type { SessionInstrument } from "./onnx-whisper.js";
import { Transcriber, type TranscriberOptions } from "./transcriber.js";
import { join } from "node:path";
import { MANIFEST_FILE, type ModelManifest } from "../model/build.js";
import { findRecipe } from "../recipes/catalog.js";
import { readJson } from "../util/fs.js";

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
      else if (name.endsWith(SCALE_INPUT))
        feeds[name] = new ort.Tensor("float32", Float32Array.of(this.scales.get(name.slice(0, -SCALE_INPUT.length)) ?? 1), []);
    }
    return feeds;
  }

  observe(graph: "encoder" | "decoder", outputs: ort.InferenceSession.OnnxValueMapType): void {
    for (const [name, value] of Object.entries(outputs)) {
      if (name.endsWith(SCALE_OUTPUT)) this.scales.set(name.slice(0, -SCALE_OUTPUT.length), (value.data as Float32Array)[0]!);
    }
    this.firstCall[graph] = false;
  }

  activations(): Record<string, ActivationQuant> {
    return Object.fromEntries([...this.scales].sort(([a], [b]) => a.localeCompare(b)).map(([layer, inputScale]) => [layer, { inputScale }]));
  }
}

/** PyTorch's observers: one HistogramObserver on each linear layer's input and one on its output. */
export class HistogramCalibration implements SessionInstrument {
  readonly observers = new Map<string, { input: HistogramObserver; output: HistogramObserver }>();

  feeds(): Record<string, ort.Tensor> {
    return {};
  }

  observe(_graph: "encoder" | "decoder", outputs: ort.InferenceSession.OnnxValueMapType): void {
    for (const [name, value] of Object.entries(outputs)) {
      const side = name.endsWith(OBSERVE_INPUT) ? "input" : name.endsWith(OBSERVE_OUTPUT) ? "output" : null;
      if (!side) continue;
      const layer = name.slice(0, -(side === "input" ? OBSERVE_INPUT : OBSERVE_OUTPUT).length);
      let pair = this.observers.get(layer);
      if (!pair) {
        pair = { input: new HistogramObserver(), output: new HistogramObserver() };
        this.observers.set(layer, pair);
      }
      pair[side].observe(value.data as Float32Array);
    }
  }

  activations(): Record<string, ActivationQuant> {
    const out: Record<string, ActivationQuant> = {};
    for (const [layer, { input, output }] of [...this.observers].sort(([a], [b]) => a.localeCompare(b))) {
      const i = input.qparams();
      const o = output.qparams();
      out[layer] = { inputScale: i.scale, inputZeroPoint: i.zeroPoint, outputScale: o.scale, outputZeroPoint: o.zeroPoint };
    }
    return out;
  }
}

export interface CalibrationResult {
  activations: Record<string, ActivationQuant>;
  /** The tokens decoded on each utterance (for parity checks with the library's own pass). */
  tokens: number[][];
}

/** Run a static recipe's calibration graphs (`graphsDir`) over audio files, in the order given. */
export async function calibrateActivations(modelDir: string, graphsDir: string, files: string[], options: TranscriberOptions = {}): Promise<CalibrationResult> {
  if (files.length === 0)
    throw new KitError("calibration needs at least one utterance", { field: "calibration", fix: "give a split with a non-empty calibration part" });
  // the graphs' recipe says which library's calibration they carry
  const { recipe } = await readJson<ModelManifest>(join(graphsDir, MANIFEST_FILE));
  const instrument = findRecipe(recipe).observer === "histogram" ? new HistogramCalibration() : new ScaleCalibration();
  const transcriber = await Transcriber.load(modelDir, { ...options, onnxDir: graphsDir, instrument });
  const tokens: number[][] = [];
  try {
    const bar = progress(`calibrate ${recipe}`);
    for (const [i, file] of files.entries()) {
      bar.update(i, files.length);
      tokens.push((await transcriber.transcribeFile(file)).tokens);
    }
    bar.update(files.length, files.length);
    bar.done();
  } finally {
    await transcriber.close();
  }
  return { activations: instrument.activations(), tokens };
}
