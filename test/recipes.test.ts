/**
 * Recipes: each quantized linear layer, as onnxruntime runs it, against the TypeScript reference
 * of its recipe (and PyTorch's dynamic int8 against torch's own output); whole models: sizes add
 * up, transcription runs, and bad requests fail cleanly.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { Transcriber } from "../src/asr/transcriber.js";
import { buildOnnxModel, type ModelManifest } from "../src/model/build.js";
import { DataType, GraphBuilder, writeOnnxModel } from "../src/model/onnx.js";
import { float16ToFloat32, float32ToFloat16 } from "../src/model/safetensors.js";
import { dequantize, dequantizeAbsmax, doubleQuantizeAbsmax, packBnb4, type QuantizedWeight, type Weight } from "../src/quant/schemes.js";
import { findRecipe, RECIPES } from "../src/recipes/catalog.js";
import { emitDequantized, emitLlmInt8, emitMatMulBnb4, emitMatMulNBits, emitTorchDynamic, nbitsBlock } from "../src/recipes/emit.js";
import type { ActivationQuant } from "../src/quant/activations.js";
import { quantizeModel, quantizeWithCalibration, type CalibrationRun } from "../src/recipes/quantize-model.js";
import { calibrateActivations } from "../src/asr/calibrate.js";
import { KitError } from "../src/util/errors.js";
import { relativeError } from "./support/reference-whisper.js";
import { base64Float32, FIXTURES, syntheticModel, tempDir, TEST_CLEAN_FLAC } from "./support/env.js";

const f32 = base64Float32;

/** One quantized linear layer as an ONNX model, run on `x` [rows, K]. */
async function runLayer(emit: (g: GraphBuilder) => void, x: Float32Array, rows: number, k: number, n: number): Promise<Float32Array> {
  const g = new GraphBuilder("layer");
  g.input("x", DataType.FLOAT, [rows, k]);
  emit(g);
  g.output("y", DataType.FLOAT, [rows, n]);
  const file = join(await tempDir(), "layer.onnx");
  await writeOnnxModel(g, file, { opset: 21, domains: { "com.microsoft": 1 } });
  const session = await ort.InferenceSession.create(file);
  const out = await session.run({ x: new ort.Tensor("float32", x, [rows, k]) });
  await session.release();
  return out.y!.data as Float32Array;
}

/** x W^T in double precision, W [N, K]. */
function reference(x: Float32Array, w: Float32Array, rows: number, k: number, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < n; o++) {
      let a = 0;
      for (let i = 0; i < k; i++) a += x[r * k + i]! * w[o * k + i]!;
      y[r * n + o] = a;
    }
  return y;
}

const relErr = relativeError;

describe("each quantized linear layer in onnxruntime", () => {
  const fx = JSON.parse(readFileSync(join(FIXTURES, "quant", "whisper_fc1.json"), "utf8"));
  const w: Weight = { data: f32(fx.weight), rows: fx.shape[0], cols: fx.shape[1] };
  const rows = 3;
  const x = Float32Array.from({ length: rows * w.cols }, (_, i) => Math.sin(i * 0.7) * (i % 17 === 0 ? 6 : 1));

  /** Our fragment + Add(bias) on a library's recorded input, for comparison with its recorded output. */
  const runAgainstLibrary = (ref: { input: string; input_shape: number[]; bias: string }, emit: (g: GraphBuilder) => void) => {
    const [r, k] = ref.input_shape as [number, number];
    return runLayer(
      (g) => {
        emit(g);
        g.initializer("bias", f32(ref.bias), [w.rows]);
        g.op("Add", ["xw", "bias"], {}, { output: "y" });
      },
      f32(ref.input),
      r,
      k,
      w.rows,
    );
  };

  for (const recipe of RECIPES.filter((r) => r.quantize && r.id !== "pytorch/dynamic-int8" && !r.llmInt8)) {
    it(`${recipe.id}: ${recipe.execution({})} output equals its reference (x · dequantize(W)^T${recipe.fp16Compute ? " with fp16 rounding" : ""})`, async () => {
      const q = recipe.quantize!(w, {});
      const path = recipe.execution({});
      const dq = recipe.doubleQuant ? doubleQuantizeAbsmax(q.scales) : undefined;
      const y = await runLayer(
        (g) =>
          path === "MatMulNBits"
            ? emitMatMulNBits(g, "x", "y", "layer", q, w.rows, w.cols)
            : path === "MatMulBnb4"
              ? emitMatMulBnb4(g, "x", "y", "layer", q, packBnb4(q.codes), recipe.id.includes("fp4") ? "fp4" : "nf4", w.rows, w.cols, dq)
              : emitDequantized(g, "x", "y", "layer", q, w.rows, w.cols, {
                  fp16Compute: recipe.fp16Compute ?? false,
                  doubleQuant: recipe.doubleQuant ?? false,
                }),
        x,
        rows,
        w.cols,
        w.rows,
      );
      // with double quantization the kernel sees bitsandbytes' reconstructed absmax
      const effective = dq ? { ...q, scales: dequantizeAbsmax(dq) } : q;
      if (recipe.fp16Compute) {
        // reference: fp16-rounded weight and input, fp32 accumulation, fp16-rounded output
        const h = (a: Float32Array) => a.map((v) => float16ToFloat32(float32ToFloat16(v)));
        const want = Float64Array.from(reference(h(x), h(dequantize(effective)), rows, w.cols, w.rows), (v) => float16ToFloat32(float32ToFloat16(v)));
        const err = relErr(y, want);
        assert.ok(err < 1e-3, `relative error ${err} (fp16 output rounding)`);
        const err32 = relErr(y, reference(x, dequantize(effective), rows, w.cols, w.rows));
        assert.ok(err32 > 1e-5, `fp16 rounding is visible against fp32 compute (${err32})`);
        return;
      }
      const err = relErr(y, reference(x, dequantize(effective), rows, w.cols, w.rows));
      // fp32 accumulation order (and quanto's shift expressed as a zero point for MatMulNBits) allow ~1e-6
      assert.ok(err < 2e-6, `relative error ${err}`);
    });
  }

  it("expanded at load: the weights the native kernel uses, bit for bit, and the library's dequantized values", async () => {
    const k = w.cols;
    const identity = new Float32Array(k * k);
    for (let i = 0; i < k; i++) identity[i * k + i] = 1; // x = I: each output is 1 * w + exact zeros, so y = W^T exactly
    const expanding = RECIPES.filter((r) => r.expandByDefault);
    assert.deepEqual(
      expanding.map((r) => r.id),
      ["quanto/w8", "bnb/nf4", "bnb/fp4", "bnb/nf4-dq", "bnb/fp4-dq"],
    );
    for (const recipe of expanding) {
      const q = recipe.quantize!(w, {});
      const dq = recipe.doubleQuant ? doubleQuantizeAbsmax(q.scales) : undefined;
      const native = await runLayer(
        (g) =>
          recipe.execution({}) === "MatMulNBits"
            ? emitMatMulNBits(g, "x", "y", "layer", q, w.rows, k)
            : emitMatMulBnb4(g, "x", "y", "layer", q, packBnb4(q.codes), recipe.id.includes("fp4") ? "fp4" : "nf4", w.rows, k, dq),
        identity,
        k,
        k,
        w.rows,
      );
      const expanded = await runLayer(
        (g) => emitDequantized(g, "x", "y", "layer", q, w.rows, k, { doubleQuant: recipe.doubleQuant ?? false }),
        identity,
        k,
        k,
        w.rows,
      );
      const library = dequantize(dq ? { ...q, scales: dequantizeAbsmax(dq) } : q); // [N, K]
      const libraryT = new Float32Array(k * w.rows);
      for (let o = 0; o < w.rows; o++) for (let i = 0; i < k; i++) libraryT[i * w.rows + o] = library[o * k + i]!;
      assert.deepEqual(expanded, native, `${recipe.id}: expanded and native weights differ`);
      assert.deepEqual(expanded, libraryT, `${recipe.id}: expanded weights are not the library's dequantized values`);
    }
  });

  it("accuracy_level 4 (int8 activations) is close to the library's numerics but not them; level 0 is them", async () => {
    for (const id of ["quanto/w8", "hqq/4"]) {
      const q = findRecipe(id).quantize!(w, {});
      const want = reference(x, dequantize(q), rows, w.cols, w.rows);
      const exact = relErr(await runLayer((g) => emitMatMulNBits(g, "x", "y", "layer", q, w.rows, w.cols, 0), x, rows, w.cols, w.rows), want);
      const int8 = relErr(await runLayer((g) => emitMatMulNBits(g, "x", "y", "layer", q, w.rows, w.cols, 4), x, rows, w.cols, w.rows), want);
      assert.ok(exact < 2e-6, `${id} level 0: ${exact}`);
      assert.ok(int8 > 1e-4 && int8 < 2e-2, `${id} level 4: relative error ${int8} (int8 activation rounding)`);
    }
  });

  it("bnb/llm-int8: int8 GEMM plus floating outlier columns matches bitsandbytes' own output", async () => {
    const ref = fx.bnb.llm_int8;
    const input = f32(ref.input);
    const [r, k] = ref.input_shape as [number, number];
    const q = findRecipe("bnb/llm-int8").quantize!(w, {});
    const y = await runAgainstLibrary(ref, (g) => emitLlmInt8(g, "x", "xw", "layer", q, w.rows, w.cols));
    const want = f32(ref.output);
    const err = relErr(y, want);
    // bitsandbytes adds the bias before its fp16 rounding, the graph after it: fp16 resolution (~1e-3)
    assert.ok(err < 2e-3, `relative error vs bitsandbytes ${err}`);
    // and the outlier column matters: without the floating path the error would be far larger
    const noOutliers = reference(
      Float32Array.from(input, (v) => (Math.abs(v) >= 6 ? 0 : v)),
      dequantize(q),
      r,
      k,
      w.rows,
    );
    assert.ok(relErr(noOutliers, want) > 10 * err);
  });

  it("bnb/llm-int8 without any outlier: the floating path is empty (no column gathered) and the int8 path alone answers", async () => {
    const q = findRecipe("bnb/llm-int8").quantize!(w, {});
    const calm = Float32Array.from(x, (v) => Math.max(-5, Math.min(5, v))); // below the 6.0 threshold everywhere
    const y = await runLayer((g) => emitLlmInt8(g, "x", "y", "layer", q, w.rows, w.cols), calm, rows, w.cols, w.rows);
    assert.ok(y.every(Number.isFinite));
    const err = relErr(y, reference(calm, dequantize(q), rows, w.cols, w.rows));
    assert.ok(err > 1e-5 && err < 2e-2, `relative error ${err} (int8 activations and fp16 rounding only)`);
    const g = new GraphBuilder("layer");
    g.input("x", DataType.FLOAT, [rows, w.cols]);
    emitLlmInt8(g, "x", "y", "layer", q, w.rows, w.cols);
    const consumers = g.nodes.filter((n) => n.input.includes("layer.qweight")).map((n) => n.opType);
    assert.deepEqual(
      consumers.sort(),
      ["Gather", "MatMulInteger"],
      "the int8 weight is only multiplied as int8 or gathered by row: no fp32 copy to fold at load",
    );
  });

  it("4-bit float zero points leave MatMulNBits on integer zero points (its fast kernel) and come back as a group-sum correction; 2-bit keeps them", () => {
    const w: Weight = { data: Float32Array.from({ length: 8 * 256 }, (_, i) => Math.sin(i * 0.11) + (i % 5) * 0.01), rows: 8, cols: 256 };
    for (const [id, bits, folded] of [
      ["hqq/4", 4, true],
      ["quanto/w4", 4, true],
      ["hqq/2", 2, false],
    ] as const) {
      const q = findRecipe(id).quantize!(w, {});
      assert.equal(q.bits, bits);
      const g = new GraphBuilder("layer");
      emitMatMulNBits(g, "x", "y", "layer", q, w.rows, w.cols);
      const nbits = g.nodes.find((n) => n.opType === "MatMulNBits")!;
      const zeros = g.initializers.get(nbits.input[3]!)!;
      assert.equal(zeros.dataType, folded ? DataType.UINT8 : DataType.FLOAT, id);
      assert.equal(
        g.nodes.some((n) => n.name.endsWith("ShiftCorrection")),
        folded,
        id,
      );
      if (folded)
        assert.ok(
          (zeros.data as Uint8Array).every((z) => z === 0),
          `${id}: integer zero points are 0, leaving code x scale`,
        );
    }
  });

  it("MatMulNBits blocks stay within onnxruntime's 16..256 for any row length (whisper-base's 512, small's 768 and 3072)", async () => {
    assert.deepEqual(
      [
        [64, 384],
        [128, 384],
        [384, 384],
        [512, 512],
        [768, 768],
        [3072, 3072],
      ].map(([g, k]) => nbitsBlock(g!, k!)),
      [64, 128, 128, 256, 256, 256],
    );
    const wide: Weight = { data: Float32Array.from({ length: 4 * 1024 }, (_, i) => Math.sin(i * 0.3)), rows: 4, cols: 1024 };
    const q = findRecipe("quanto/w8").quantize!(wide, {});
    const x1 = Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i));
    const y = await runLayer((g) => emitMatMulNBits(g, "x", "y", "layer", q, 4, 1024), x1, 1, 1024, 4);
    // 1024 cancelling terms: fp32 accumulation error scales with the sum of |terms|, not with the result
    const d = dequantize(q);
    const want = reference(x1, d, 1, 1024, 4);
    for (let o = 0; o < 4; o++) {
      let magnitude = 0;
      for (let i = 0; i < 1024; i++) magnitude += Math.abs(x1[i]! * d[o * 1024 + i]!);
      assert.ok(Math.abs(y[o]! - want[o]!) < 1e-6 * magnitude, `output ${o}: ${y[o]} vs ${want[o]}`);
    }
  });

  it("pytorch/dynamic-int8: MatMulInteger with torch's activation quantization matches torch's own output", async () => {
    for (const granularity of ["per_tensor", "per_channel"] as const) {
      const ref = fx.torch_dynamic[granularity];
      const q = findRecipe("pytorch/dynamic-int8").quantize!(w, { granularity });
      const err = relErr(await runAgainstLibrary(ref, (g) => emitTorchDynamic(g, "x", "xw", "layer", q, w.rows, w.cols)), f32(ref.output));
      assert.ok(err < 1e-5, `${granularity}: relative error vs torch ${err}`);
    }
  });
});

describe("quantized models", () => {
  let fp32Dir: string;
  let modelDir: string;

  before(async () => {
    modelDir = await syntheticModel({ dModel: 64, heads: 2, layers: 1, seed: 21 });
    fp32Dir = join(await tempDir(), "fp32");
    await buildOnnxModel(modelDir, fp32Dir);
  });

  it("every implemented recipe quantizes, sizes add up, and the model transcribes", async () => {
    for (const recipe of RECIPES.filter((r) => r.quantize)) {
      const out = join(await tempDir(), recipe.id.replace("/", "-"));
      const calibration: CalibrationRun = {
        source: "one test-clean file",
        run: async (dir) => (await calibrateActivations(modelDir, dir, [TEST_CLEAN_FLAC], { threads: 1, maxNewTokens: 4 })).activations,
      };
      const { manifest } =
        recipe.scheme === "static" ? await quantizeWithCalibration(fp32Dir, recipe.id, {}, out, calibration) : await quantizeModel(fp32Dir, recipe.id, {}, out);
      assert.equal(manifest.recipe, recipe.id);
      if (recipe.scheme === "static") {
        assert.ok(typeof manifest.calibration === "object" && manifest.calibration.source === "one test-clean file");
        const scales = Object.values((manifest.calibration as { activations: Record<string, { inputScale: number }> }).activations).map((a) => a.inputScale);
        assert.equal(
          scales.length,
          manifest.parameters.filter((p) => p.format !== "fp32").length,
          `${recipe.id}: one calibrated input scale per quantized layer`,
        );
        assert.ok(
          scales.every((v) => v > 0 && v !== 1),
          `${recipe.id}: every scale calibrated`,
        );
        assert.deepEqual(
          (await readdir(join(out, ".."))).filter((f) => f.endsWith(".calibration")),
          [],
          "calibration graphs removed",
        );
      }
      assert.equal(
        manifest.parameterBytes,
        manifest.parameters.reduce((a, p) => a + p.bytes, 0),
        "manifest bytes sum to the parameter bytes",
      );
      const onDisk = manifest.files.reduce((a, f) => a + f.bytes, 0);
      const graphs = manifest.files.filter((f) => !f.file.endsWith(".data")).reduce((a, f) => a + f.bytes, 0);
      assert.ok(onDisk >= manifest.parameterBytes, `${recipe.id}: files hold every parameter byte`);
      assert.ok(onDisk - graphs <= manifest.parameterBytes * 1.02 + 64 * 200 + 4096, `${recipe.id}: data files exceed the parameters only by alignment`);
      assert.ok(
        manifest.parameterBytes < manifest.baselineParameterBytes! * (recipe.quantizesProjOut ? 1.3 : 1),
        `${recipe.id} is smaller than fp32 (a quantized proj_out copy may add)`,
      );
      const linear = manifest.parameters.filter((p) => p.name.endsWith(".weight") && /(proj|fc\d)\.weight$/.test(p.name));
      assert.ok(
        linear.every((p) => p.format !== "fp32"),
        `${recipe.id}: every linear layer quantized`,
      );
      assert.ok(manifest.floatTensors!.includes("model.decoder.embed_tokens.weight"), "the embedding stays float");
      assert.equal(
        manifest.parameters.some((p) => p.name === "proj_out.weight"),
        recipe.quantizesProjOut,
      );
      assert.equal(
        manifest.dequantizedAtLoad,
        manifest.parameters.some((p) => p.execution === "dequantized at load"),
      );
      const t = await Transcriber.load(modelDir, { onnxDir: out, threads: 1, maxNewTokens: 4 });
      const result = await t.transcribeFile(TEST_CLEAN_FLAC);
      assert.equal(result.tokens.length, 4, recipe.id);
      await t.close();
    }
  });

  it("a static recipe quantizes its weights once for both passes, and the graphs are those of a fresh quantization", async () => {
    for (const id of ["quanto/w8a8", "quanto/w4af8"]) {
      const out = join(await tempDir(), "shared");
      const calibration: CalibrationRun = {
        source: "one test-clean file",
        run: async (dir) => (await calibrateActivations(modelDir, dir, [TEST_CLEAN_FLAC], { threads: 1, maxNewTokens: 4 })).activations,
      };
      const { manifest } = await quantizeWithCalibration(fp32Dir, id, {}, out, calibration);
      const activations = (manifest.calibration as { activations: Record<string, ActivationQuant> }).activations;
      const fresh = join(await tempDir(), "fresh");
      await quantizeModel(fp32Dir, id, {}, fresh, { mode: "calibrated", source: "one test-clean file", activations, seconds: 0 });
      for (const f of manifest.files.map((x) => x.file))
        assert.ok((await readFile(join(out, f))).equals(await readFile(join(fresh, f))), `${id}: ${f} identical`);
      // the final pass takes the weights it is given: one code moved there moves the graphs
      const weights = new Map<string, QuantizedWeight[]>();
      await quantizeModel(fp32Dir, id, {}, join(await tempDir(), "graphs"), { mode: "calibrate", weights });
      assert.deepEqual([...weights.keys()].sort(), ["decoder.onnx", "encoder.onnx"]);
      const first = weights.get("encoder.onnx")![0]!;
      first.codes[0] = first.codes[0] === 1 ? 2 : 1;
      const moved = join(await tempDir(), "moved");
      await quantizeModel(fp32Dir, id, {}, moved, { mode: "calibrated", source: "one test-clean file", activations, seconds: 0, weights });
      const differs = await Promise.all(manifest.files.map(async (x) => !(await readFile(join(moved, x.file))).equals(await readFile(join(fresh, x.file)))));
      assert.ok(differs.some(Boolean), `${id}: the shared weights are the ones emitted`);
    }
  });

  it("weights left unpacked (prepackWeights false, to save memory) give the packed sessions' tokens", async () => {
    const out = join(await tempDir(), "hqq-4");
    await quantizeModel(fp32Dir, "hqq/4", {}, out);
    const tokens: number[][] = [];
    for (const prepackWeights of [true, false]) {
      for (const onnxDir of [fp32Dir, out]) {
        const t = await Transcriber.load(modelDir, { onnxDir, threads: 1, maxNewTokens: 6, prepackWeights });
        tokens.push((await t.transcribeFile(TEST_CLEAN_FLAC)).tokens);
        await t.close();
      }
    }
    assert.deepEqual(tokens.slice(2), tokens.slice(0, 2));
  });

  it("quanto/w8 and the MatMulBnb4 recipes expand the decoder's per-token layers at load by default; --expand chooses", async () => {
    const executions = async (id: string, options: Record<string, unknown>) => {
      const { manifest } = await quantizeModel(fp32Dir, id, options, join(await tempDir(), "expand"));
      const of = (re: RegExp) => [...new Set(manifest.parameters.filter((p) => re.test(p.name) && p.format !== "fp32").map((p) => p.execution))];
      return {
        encoder: of(/^model\.encoder\./),
        perToken: of(/^model\.decoder\.layers\.\d+\.(self_attn|fc|encoder_attn\.(q|out)_proj)/),
        crossKeysValues: of(/\.encoder_attn\.(k|v)_proj\.weight$/),
        dequantizedAtLoad: manifest.dequantizedAtLoad,
      };
    };
    for (const [id, native] of [
      ["quanto/w8", "MatMulNBits"],
      ["bnb/nf4", "MatMulBnb4"],
    ] as const) {
      assert.deepEqual(await executions(id, {}), {
        encoder: [native],
        perToken: ["dequantized at load"],
        crossKeysValues: [native],
        dequantizedAtLoad: true,
      });
      assert.deepEqual(await executions(id, { expand: "none" }), {
        encoder: [native],
        perToken: [native],
        crossKeysValues: [native],
        dequantizedAtLoad: false,
      });
      const all = await executions(id, { expand: "all" });
      assert.deepEqual([all.encoder, all.perToken, all.crossKeysValues], [["dequantized at load"], ["dequantized at load"], ["dequantized at load"]]);
    }
    const int8 = await executions("quanto/w8", { accuracyLevel: 4 });
    assert.deepEqual([int8.encoder, int8.perToken, int8.dequantizedAtLoad], [["MatMulNBits"], ["MatMulNBits"], false], "int8 activations stay on MatMulNBits");
    const hqq = await executions("hqq/4", {});
    assert.deepEqual([hqq.perToken, hqq.dequantizedAtLoad], [["MatMulNBits"], false], "fast native kernels are not expanded");
  });

  it("--include and --exclude select layers by parameter name", async () => {
    const out = join(await tempDir(), "partial");
    const { manifest } = await quantizeModel(fp32Dir, "quanto/w8", { include: ["model.decoder.*"], exclude: ["*.fc2"] }, out);
    const quantized = manifest.parameters.filter((p) => p.format !== "fp32").map((p) => p.name);
    assert.ok(quantized.length > 0);
    assert.ok(
      quantized.every((n) => n.startsWith("model.decoder.") && !n.endsWith("fc2.weight")),
      quantized.join(),
    );
  });

  it("bad requests fail with a clear error and leave no output folder", async () => {
    const parent = await tempDir();
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ["hqq/4", { groupSize: 100 }, /cannot quantize .* group size 100 does not divide/],
      ["quanto/w4", { bits: 3 }, /quanto\/w4 does not support 3 bits/],
      ["quanto/w4", { groupSize: 64 }, /takes no --group-size/],
      ["bnb/nf4", { accuracyLevel: 4 }, /does not run on MatMulNBits: --accuracy-level does not apply/],
      ["quanto/w8", { accuracyLevel: 2 }, /--accuracy-level must be 0 or 4, got 2/],
      ["bnb/llm-int8", { expand: "decoder" }, /runs on MatMulInteger: --expand applies to weight-only recipes/],
      ["quanto/w8", { expand: "all", accuracyLevel: 4 }, /--expand with --accuracy-level 4 mixes int8 and fp32 activations/],
      ["hqq/9", {}, /unknown recipe 'hqq\/9'/],
      ["pytorch/static-int8", {}, /static recipe: its activation scales come from calibration data, and none was given/],
      ["fp32", {}, /nothing to quantize/],
      ["quanto/w8a8", {}, /static recipe: its activation scales come from calibration data, and none was given/],
    ];
    for (const [id, options, pattern] of cases) {
      await assert.rejects(
        quantizeModel(fp32Dir, id, options, join(parent, "out")),
        (err: unknown) => err instanceof KitError && pattern.test(err.message),
        id,
      );
      assert.deepEqual(await readdir(parent), [], `${id}: nothing left behind`);
    }
    const once = join(parent, "once");
    await quantizeModel(fp32Dir, "bnb/nf4", {}, once);
    await assert.rejects(quantizeModel(once, "hqq/4", {}, join(parent, "twice")), /already quantized \(recipe bnb\/nf4\)/);
    const manifest: ModelManifest = JSON.parse(await readFile(join(once, "manifest.json"), "utf8"));
    assert.ok(manifest.quantizeSeconds! > 0);
  });
});
