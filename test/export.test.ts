import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as ortNode from "onnxruntime-node";
import { loadAudio } from "../src/audio/decode.js";
import { logMelSpectrogram } from "../src/audio/mel.js";
import { calibrateActivations } from "../src/asr/calibrate.js";
import { Transcriber } from "../src/asr/transcriber.js";
import { TransformersJsTranscriber } from "../src/asr/transformers-js.js";
import { loadWebRuntime, type WebSession } from "../src/export/browser-check.js";
import { exportTransformersJs, refuseBrowserBlockers, VARIANTS_FILE, type ExportedVariant } from "../src/export/transformers-js.js";
import { GraphBuilder, readOnnxModel } from "../src/model/onnx.js";
import { readWhisperConfig } from "../src/model/config.js";
import { RECIPES } from "../src/recipes/catalog.js";
import { ensureQuantizedModel, type CalibrationRun } from "../src/recipes/quantize-model.js";
import { KitError } from "../src/util/errors.js";
import { readJson } from "../src/util/fs.js";
import { syntheticModel, tempDir, TEST_CLEAN_FLAC } from "./support/env.js";

const MAX_NEW_TOKENS = 24; // random weights never stop by themselves

const ortWeb = loadWebRuntime();

describe("ptq export --format transformers.js", () => {
  let modelDir: string;
  let outDir: string;
  let mel: Float32Array;
  const variants: Array<{ recipe: string; subfolder: string }> = [
    { recipe: "fp32", subfolder: "onnx" },
    { recipe: "quanto/w4", subfolder: "onnx" },
    { recipe: "hqq/4", subfolder: "onnx-hqq-4" },
    { recipe: "bnb/nf4", subfolder: "onnx" },
    { recipe: "quanto/w8", subfolder: "onnx" },
  ];
  const exported = new Map<string, ExportedVariant>();

  before(async () => {
    modelDir = await syntheticModel({ dModel: 64, heads: 2, layers: 2, seed: 5 });
    outDir = join(await tempDir(), "export");
    for (const v of variants) exported.set(v.recipe, await exportTransformersJs({ modelDir, recipe: v.recipe, outDir, subfolder: v.subfolder }));
    mel = logMelSpectrogram(await loadAudio(TEST_CLEAN_FLAC), 80);
  });

  it("writes the folder transformers.js reads: the merged decoder's names, an If on use_cache_branch, disjoint initializers", async () => {
    const top = await readdir(outDir);
    for (const f of [
      "config.json",
      "generation_config.json",
      "preprocessor_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      VARIANTS_FILE,
      "README.md",
    ]) {
      assert.ok(top.includes(f), `${f} written`);
    }
    assert.deepEqual((await readdir(join(outDir, "onnx"))).sort(), [
      "decoder_model_merged.onnx",
      "decoder_model_merged.onnx_data",
      "decoder_model_merged_bnb4.onnx",
      "decoder_model_merged_bnb4.onnx_data",
      "decoder_model_merged_q4.onnx",
      "decoder_model_merged_q4.onnx_data",
      "decoder_model_merged_quantized.onnx",
      "decoder_model_merged_quantized.onnx_data",
      "encoder_model.onnx",
      "encoder_model.onnx_data",
      "encoder_model_bnb4.onnx",
      "encoder_model_bnb4.onnx_data",
      "encoder_model_q4.onnx",
      "encoder_model_q4.onnx_data",
      "encoder_model_quantized.onnx",
      "encoder_model_quantized.onnx_data",
    ]);
    const config = await readJson<Record<string, { dtype: string; use_external_data_format: Record<string, number> }>>(join(outDir, "config.json"));
    assert.equal(config["transformers.js_config"]!.dtype, "fp32");
    assert.equal(config["transformers.js_config"]!.use_external_data_format["decoder_model_merged_q4.onnx"], 1);

    const decoder = (await readOnnxModel(join(outDir, "onnx", "decoder_model_merged.onnx"))).graph!;
    const inputs = decoder.input.map((i) => i.name);
    assert.deepEqual(inputs.slice(0, 2), ["input_ids", "encoder_hidden_states"]);
    assert.equal(inputs.at(-1), "use_cache_branch");
    assert.deepEqual(inputs.slice(2, 6), [
      "past_key_values.0.decoder.key",
      "past_key_values.0.decoder.value",
      "past_key_values.0.encoder.key",
      "past_key_values.0.encoder.value",
    ]);
    const outputs = decoder.output.map((o) => o.name);
    assert.deepEqual(outputs.slice(0, 5), ["logits", "present.0.decoder.key", "present.0.decoder.value", "present.0.encoder.key", "present.0.encoder.value"]);
    assert.equal(outputs.length, 1 + 4 * 2);
    const ifNode = decoder.node.find((n) => n.opType === "If")!;
    assert.deepEqual(ifNode.input, ["use_cache_branch"]);
    const branches = Object.fromEntries(ifNode.attribute.map((a) => [a.name, a.g!]));
    assert.ok(
      branches.then_branch!.node.every((n) => n.opType === "Identity"),
      "the cached branch only passes the keys and values through",
    );
    assert.ok(
      branches.else_branch!.node.some((n) => n.opType === "MatMul" && n.input.includes("encoder_hidden_states")),
      "the first step projects encoder_hidden_states",
    );
    const encoder = (await readOnnxModel(join(outDir, "onnx", "encoder_model.onnx"))).graph!;
    assert.deepEqual(
      encoder.output.map((o) => o.name),
      ["last_hidden_state"],
    );
    const encoderNames = new Set(encoder.initializer.map((t) => t.name));
    assert.deepEqual(
      decoder.initializer.filter((t) => encoderNames.has(t.name)).map((t) => t.name),
      [],
    );
    const readme = await readFile(join(outDir, "README.md"), "utf8");
    for (const v of variants) assert.match(readme, new RegExp(`\\| ${v.recipe.replace("/", "\\/")} \\|`));
  });

  it("transformers.js decodes the kit's tokens with every exported variant (same features, greedy)", async () => {
    const config = await readWhisperConfig(join(modelDir, "config.json"));
    for (const v of variants) {
      const { dir } = await ensureQuantizedModel(modelDir, v.recipe);
      const kit = await Transcriber.load(modelDir, { onnxDir: dir, threads: 1 });
      const variant = exported.get(v.recipe)!;
      const tj = await TransformersJsTranscriber.load(
        { folder: outDir, dtype: variant.dtype, subfolder: variant.subfolder },
        { modelDir, manifest: kit.manifest, generation: kit.generation },
        { threads: 1, maxNewTokens: MAX_NEW_TOKENS },
      );
      try {
        const expected = (await kit.decodeFeatures(mel, { maxNewTokens: MAX_NEW_TOKENS })).tokens;
        const got = await tj.decodeFeatures(mel, config.numMelBins);
        assert.equal(expected.length, MAX_NEW_TOKENS, `${v.recipe}: the kit decodes to the limit`);
        assert.deepEqual(got, expected, `${v.recipe}: transformers.js's tokens`);
      } finally {
        await kit.close();
        await tj.close();
      }
    }
  });

  it("onnxruntime-web (the browser's build) computes what onnxruntime-node computes on the exported graphs, both branches", async () => {
    const config = await readWhisperConfig(join(modelDir, "config.json"));
    const H = config.decoderHeads;
    const Dh = config.dModel / H;
    for (const v of variants) {
      const variant = exported.get(v.recipe)!;
      const file = (kind: "encoder" | "decoder") =>
        Object.keys(variant.files).find((f) => f.endsWith(".onnx") && f.includes(kind === "encoder" ? "encoder_model" : "decoder_model_merged"))!;
      const results: Array<Record<string, Float32Array>> = [];
      for (const runtime of ["node", "web"] as const) {
        const open = async (path: string) => {
          const full = join(outDir, path);
          if (runtime === "node") return ortNode.InferenceSession.create(full, { intraOpNumThreads: 1 });
          return ortWeb.InferenceSession.create(await readFile(full), {
            executionProviders: ["wasm"],
            externalData: [{ path: path.split("/")[1] + "_data", data: await readFile(`${full}_data`) }],
          });
        };
        const T = runtime === "node" ? ortNode.Tensor : ortWeb.Tensor;
        const tensor = (type: string, data: ArrayLike<unknown>, dims: number[]) => new T(type as "float32", data as Float32Array, dims);
        const encoder = (await open(file("encoder"))) as unknown as WebSession;
        const decoder = (await open(file("decoder"))) as unknown as WebSession;
        const hidden = (await encoder.run({ input_features: tensor("float32", mel, [1, 80, 3000]) })).last_hidden_state!;
        const feeds = (ids: number[], past: Record<string, unknown> | null) => {
          const f: Record<string, unknown> = {
            input_ids: tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
            encoder_hidden_states: tensor("float32", hidden.data, [...hidden.dims]),
            use_cache_branch: tensor("bool", Uint8Array.from([past ? 1 : 0]), [1]),
          };
          for (let l = 0; l < config.decoderLayers; l++) {
            for (const part of ["decoder.key", "decoder.value", "encoder.key", "encoder.value"]) {
              const name = `past_key_values.${l}.${part}`;
              const empty = part === "encoder.key" ? [1, H, Dh, 0] : [1, H, 0, Dh];
              f[name] = past ? past[`present.${l}.${part}`] : tensor("float32", new Float32Array(0), empty);
            }
          }
          return f;
        };
        const first = await decoder.run(feeds([50257, 50362], null));
        const second = await decoder.run(feeds([440], first as Record<string, unknown>));
        results.push({ first: first.logits!.data, second: second.logits!.data, cross: first["present.1.encoder.value"]!.data });
        await encoder.release();
        await decoder.release();
      }
      for (const key of ["first", "second", "cross"]) {
        const [a, b] = [results[0]![key]!, results[1]![key]!];
        assert.equal(a.length, b.length);
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < a.length; i++) {
          worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
          scale = Math.max(scale, Math.abs(a[i]!));
        }
        assert.ok(worst <= 1e-4 * scale, `${v.recipe} ${key}: node and web differ by ${worst} (scale ${scale})`);
      }
    }
  });

  it("refuses a recipe the browser cannot run before writing anything, naming the operator, the build and the alternative", async () => {
    const out = join(await tempDir(), "refused");
    await assert.rejects(exportTransformersJs({ modelDir, recipe: "pytorch/dynamic-int8", outDir: out }), (err: unknown) => {
      assert.ok(err instanceof KitError);
      assert.match(err.message, /pytorch\/dynamic-int8 cannot run in a browser: its graph needs Cast to\/from double/);
      assert.match(err.message, /asyncify WASM build/);
      assert.match(err.message, /fix: export a weight-only recipe/);
      return true;
    });
    await assert.rejects(readdir(out), "nothing written");
    await assert.rejects(
      exportTransformersJs({ modelDir, recipe: "hqq/4", outDir, subfolder: "onnx" }),
      /already holds quanto\/w4[\s\S]*--subfolder onnx-hqq-4/,
      "a second q4 recipe in the same subfolder",
    );
  });

  it("the catalog's browser column is what the export finds, for every recipe that runs", async () => {
    const calibration: CalibrationRun = {
      source: "one test-clean file",
      run: async (dir) => (await calibrateActivations(modelDir, dir, [TEST_CLEAN_FLAC], { threads: 1, maxNewTokens: 4 })).activations,
    };
    for (const recipe of RECIPES.filter((r) => r.quantize)) {
      const { dir } = await ensureQuantizedModel(modelDir, recipe.id, {}, recipe.scheme === "static" ? calibration : undefined);
      const encoder = (await GraphBuilder.fromFile(join(dir, "encoder.onnx"))).builder;
      const decoder = (await GraphBuilder.fromFile(join(dir, "decoder.onnx"))).builder;
      let refusal: string | null = null;
      try {
        refuseBrowserBlockers(recipe.id, encoder, decoder);
      } catch (err) {
        refusal = (err as Error).message;
      }
      if (recipe.notInBrowser) assert.ok(refusal?.includes(recipe.notInBrowser.split(" (")[0]!), `${recipe.id} refused for its stated reason: ${refusal}`);
      else assert.equal(refusal, null, `${recipe.id} exports`);
    }
  });
});
