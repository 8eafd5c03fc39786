/**
 * PyTorch static int8 against torch itself (fixture by tools/reference/make_torch_static_fixture.py):
 * the HistogramObserver's histogram, clipping search and qparams on fixed tensor sequences, and a
 * converted QuantStub -> Linear -> DeQuantStub: calibrated qparams, weight codes and scales, and
 * its output, run by onnxruntime.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { DataType, GraphBuilder, writeOnnxModel } from "../src/model/onnx.js";
import { HistogramObserver } from "../src/quant/histogram-observer.js";
import { quantizeTorchInt8 } from "../src/quant/schemes.js";
import { emitTorchStatic, requantizeOutput } from "../src/recipes/static.js";
import { base64Float32, FIXTURES, tempDir } from "./support/env.js";

const fixture = JSON.parse(readFileSync(join(FIXTURES, "quant", "torch_static.json"), "utf8"));

describe("PyTorch static int8, as torch computes it", () => {
  for (const c of fixture.observer as Array<{ name: string; inputs: string[]; min: number; max: number; histogram: string; search_min: number; search_max: number; scale: number; zero_point: number }>) {
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
      for (let r = 0; r < rows; r++) for (let o = 0; o < n; o++) {
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
