/**
 * optimum-quanto's static scheme as graph fragments: weights quantized as in the weight-only
 * recipes, each linear layer's input quantized per tensor with a calibrated scale, outputs left
 * float (quanto's Calibration(streamline=True) removes every output quantization hook, because in
 * Whisper each output is consumed by a function that cannot take a quantized tensor; the kit's
 * reference trace of the real library on whisper-tiny.en shows all 65 linears and 22 LayerNorms so).
 *
 * Two forms. The evaluation form bakes the calibrated scale in. The calibration form takes the
 * running scale as a graph input, updates it with this call's absmax exactly as Calibration()
 * does (before quantizing with it), returns the new scale, and, on the very first call of a
 * graph, quantizes linear and LayerNorm outputs too (quanto only drops those hooks after the
 * first forward of each parent module).
 * Two known differences, both confined to calibration: on that first call quanto's q/k/v
 * projections adopt the LayerNorm's output scale, where the graph takes the absmax of the
 * quantized LayerNorm output (the same value to an ulp); and the calibration graphs multiply
 * dequantized weights in float where quanto's int8 x int8 kernel sums integers (float rounding).
 */
import { DataType, type GraphBuilder } from "../model/onnx.js";
import { activationQmax, CALIBRATION_MOMENTUM, type ActivationType } from "../quant/activations.js";
import type { QuantizedWeight } from "../quant/schemes.js";
import type { Execution } from "./catalog.js";
import { emitDequantized, emitInt8Gemm, emitMatMulNBits, fitsMatMulNBits } from "./emit.js";

/** Graph input of a calibration graph: true on the first call of that graph. */
export const FIRST_CALL = "calibration_first";
export const scaleInputName = (layer: string) => `${layer}.input_scale`;
export const scaleOutputName = (layer: string) => `${layer}.input_scale.next`;

const f = Math.fround;

/** The code values of quantize_symmetric(x / scale), as float32 (int8 codes, or float8 values). */
function activationCodes(g: GraphBuilder, x: string, scale: string, type: ActivationType, p: string): string {
  const ratio = g.op("Div", [x, scale], {}, { name: `${p}/Divide` });
  if (type === "int8") {
    return g.op("Clip", [g.op("Round", [ratio], {}, { name: `${p}/Round` }), g.scalar(-128), g.scalar(127)], {}, { name: `${p}/Clamp` });
  }
  const clamped = g.op("Clip", [ratio, g.scalar(-448), g.scalar(448)], {}, { name: `${p}/Clamp` });
  const f8 = g.op("Cast", [clamped], { to: DataType.FLOAT8E4M3FN, saturate: 1 }, { name: `${p}/ToFloat8` });
  return g.op("Cast", [f8], { to: DataType.FLOAT }, { name: `${p}/FromFloat8` });
}

function fakeQuantize(g: GraphBuilder, x: string, scale: string, type: ActivationType, p: string): string {
  return g.op("Mul", [activationCodes(g, x, scale, type, p), scale], {}, { name: `${p}/Dequantize` });
}

/** The bytes and execution path of one rewritten layer. */
export interface EmittedLayer {
  bytes: number;
  execution: Execution;
}

/**
 * A frozen quanto QLinear with activations: int8 x int8 runs as quanto's CPU kernel does
 * (integer GEMM, then x (input scale x weight scale)); float8 on either side multiplies the
 * activation codes by the weight pre-scaled with input scale x weight scale (qbytes_mm);
 * 4-bit weights see the dequantized activation (quanto falls back to float for that pair).
 */
export function emitQuantoStatic(
  g: GraphBuilder,
  x: string,
  out: string,
  name: string,
  q: QuantizedWeight,
  n: number,
  k: number,
  type: ActivationType,
  inputScale: number,
): EmittedLayer {
  const p = `${name}/quant/Input`;
  const scale = g.initializer(`${name}.input_scale`, Float32Array.of(inputScale), []);
  const codes = activationCodes(g, x, scale, type, p);
  if (q.bits === 4 || q.bits === 2) {
    const dequantized = g.op("Mul", [codes, scale], {}, { name: `${p}/Dequantize` });
    if (fitsMatMulNBits(q, k)) return { bytes: emitMatMulNBits(g, dequantized, out, name, q, n, k) + 4, execution: "MatMulNBits" };
    return { bytes: emitDequantized(g, dequantized, out, name, q, n, k) + 4, execution: "dequantized at load" };
  }
  const combined = Float32Array.from(q.scales, (s) => f(inputScale * s)); // output_scales = input._scale * weight._scale
  if (type === "int8" && q.convention === "symmetric") {
    g.initializer(`${name}.output_scales`, combined, [n]);
    const acc = emitInt8Gemm(g, codes, name, q, n, k); // exact int32 sums (not onnxruntime's saturating u8 x s8 path)
    g.op(
      "Mul",
      [g.op("Cast", [acc], { to: DataType.FLOAT }, { name: `${name}/quant/AccFloat` }), `${name}.output_scales`],
      {},
      { name: `${name}/quant/Output`, output: out },
    );
    return { bytes: n * k + 4 * n + 4, execution: "MatMulInteger" };
  }
  const bytes = emitDequantized(g, codes, out, name, { ...q, scales: combined }, n, k);
  return { bytes: bytes + 4, execution: "dequantized at load" }; // the stored scales stand for weight x input scale: same count
}

function ensureFirstCallInput(g: GraphBuilder): string {
  if (!g.inputs.some((i) => i.name === FIRST_CALL)) g.input(FIRST_CALL, DataType.BOOL, []);
  return FIRST_CALL;
}

/** Calibration form of a layer's input: update the running scale with this call, quantize with it. */
export function calibrationInput(g: GraphBuilder, x: string, name: string, type: ActivationType): string {
  const p = `${name}/calibrate`;
  const old = g.input(scaleInputName(name), DataType.FLOAT, []);
  const absmax = g.op("ReduceMax", [g.op("Abs", [x], {}, { name: `${p}/Abs` })], { keepdims: 0 }, { name: `${p}/Absmax` });
  const fresh = g.op("Div", [absmax, g.scalar(activationQmax(type))], {}, { name: `${p}/AbsmaxScale` });
  const blended = g.op(
    "Add",
    [
      g.op("Mul", [old, g.scalar(f(CALIBRATION_MOMENTUM))], {}, { name: `${p}/Momentum` }),
      g.op("Mul", [fresh, g.scalar(f(1 - CALIBRATION_MOMENTUM))], {}, { name: `${p}/Fresh` }),
    ],
    {},
    { name: `${p}/Blend` },
  );
  const initial = g.op("Equal", [old, g.scalar(1)], {}, { name: `${p}/Initial` });
  const updated = g.op("Where", [initial, fresh, blended], {}, { name: `${p}/Update`, output: scaleOutputName(name) });
  g.output(updated, DataType.FLOAT, []);
  return fakeQuantize(g, x, updated, type, `${p}/Input`);
}

/**
 * On the first call only, replace tensor `t` by its quantization with this call's absmax scale
 * (quanto quantizes module outputs until the parent's first forward has finished). The producer
 * is renamed and the new nodes placed right after it, keeping the graph topologically sorted.
 */
export function quantizeOnFirstCall(g: GraphBuilder, t: string, type: ActivationType): void {
  rewriteTensor(g, t, (raw) => {
    const p = `${t}/first_call`;
    const scale = g.op(
      "Div",
      [g.op("ReduceMax", [g.op("Abs", [raw], {}, { name: `${p}/Abs` })], { keepdims: 0 }, { name: `${p}/Absmax` }), g.scalar(activationQmax(type))],
      {},
      { name: `${p}/Scale` },
    );
    g.op("Where", [ensureFirstCallInput(g), fakeQuantize(g, raw, scale, type, `${p}/Quantize`), raw], {}, { name: `${p}/Select`, output: t });
  });
}

/**
 * Replace tensor `t` by a function of its old value: the producer now writes `<t>/float`, and the
 * nodes `build` adds (which must write `t`) go right after it, keeping the graph sorted.
 */
function rewriteTensor(g: GraphBuilder, t: string, build: (raw: string) => void): void {
  const producer = g.nodes.findIndex((n) => n.output.includes(t));
  if (producer < 0) throw new Error(`no node produces ${t}`);
  const node = g.nodes[producer]!;
  const raw = `${t}/float`;
  node.output[node.output.indexOf(t)] = raw;
  const before = g.nodes.length;
  build(raw);
  g.nodes.splice(producer + 1, 0, ...g.nodes.splice(before));
}

/** Graph outputs of PyTorch's calibration graphs: each linear layer's input and output, for its observers. */
export const OBSERVE_INPUT = ".observe_input";
export const OBSERVE_OUTPUT = ".observe_output";

/** Calibration form of PyTorch static: the fp32 layer, its input and output exposed for the HistogramObservers. */
export function observeTensor(g: GraphBuilder, t: string, name: string): void {
  g.op("Identity", [t], {}, { name: `${name}/observe`, output: name });
  g.output(name, DataType.FLOAT, null); // any shape: [B, T, features] in the encoder, [B, tokens, features] in the decoder
}

/**
 * PyTorch's static quantized linear (QuantStub -> nnq.Linear, fbgemm): the input quantized to
 * uint8 with its calibrated scale and zero point, an int8 x uint8 GEMM with int32 accumulation,
 * rescaled by input scale x per-channel weight scale. The bias and the output's requantization
 * follow (requantizeOutput), as nnq.Linear does before the DeQuantStub.
 */
export function emitTorchStatic(
  g: GraphBuilder,
  x: string,
  out: string,
  name: string,
  q: QuantizedWeight,
  n: number,
  k: number,
  inputScale: number,
  inputZeroPoint: number,
): EmittedLayer {
  const wT = new Int8Array(n * k); // [K, N]
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wT[c * n + r] = q.codes[r * k + c]!;
  g.initializer(`${name}.qweight`, wT, [k, n], DataType.INT8);
  g.initializer(`${name}.input_scale`, Float32Array.of(inputScale), []);
  g.initializer(`${name}.input_zero_point`, Uint8Array.of(inputZeroPoint), [], DataType.UINT8);
  const perChannel = q.scales.length > 1 ? q.scales : Float32Array.from({ length: n }, () => q.scales[0]!);
  g.initializer(
    `${name}.output_scales`,
    Float32Array.from(perChannel, (s) => f(inputScale * s)),
    [n],
  );
  const xq = g.op("QuantizeLinear", [x, `${name}.input_scale`, `${name}.input_zero_point`], {}, { name: `${name}/quant/Input/Quantize` });
  const acc = g.op("MatMulInteger", [xq, `${name}.qweight`, `${name}.input_zero_point`], {}, { name: `${name}/quant/MatMulInteger` });
  g.op(
    "Mul",
    [g.op("Cast", [acc], { to: DataType.FLOAT }, { name: `${name}/quant/AccFloat` }), `${name}.output_scales`],
    {},
    { name: `${name}/quant/Output`, output: out },
  );
  return { bytes: n * k + 4 * q.scales.length + 2 * (4 + 1), execution: "MatMulInteger" };
}

/** The layer output (after its bias) requantized to uint8 with the calibrated output qparams, then dequantized. */
export function requantizeOutput(g: GraphBuilder, t: string, layer: string, scale: number, zeroPoint: number): void {
  g.initializer(`${layer}.output_scale`, Float32Array.of(scale), []);
  g.initializer(`${layer}.output_zero_point`, Uint8Array.of(zeroPoint), [], DataType.UINT8);
  rewriteTensor(g, t, (raw) => {
    const yq = g.op("QuantizeLinear", [raw, `${layer}.output_scale`, `${layer}.output_zero_point`], {}, { name: `${layer}/quant/Output/Quantize` });
    g.op("DequantizeLinear", [yq, `${layer}.output_scale`, `${layer}.output_zero_point`], {}, { name: `${layer}/quant/Output/Dequantize`, output: t });
  });
}
