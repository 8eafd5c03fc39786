/**
 * The ONNX graphs against an independent plain-TypeScript forward pass of the same weights:
 * encoder output, decoder logits with and without the KV cache, and the decoded tokens.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { loadAudio } from "../src/audio/decode.js";
import { logMelSpectrogram } from "../src/audio/mel.js";
import { greedyDecode, readGenerationSettings } from "../src/asr/greedy.js";
import { OnnxWhisper, type KvCache } from "../src/asr/onnx-whisper.js";
import { WhisperTokenizer } from "../src/asr/tokenizer.js";
import { stepperFor } from "../src/asr/transcriber.js";
import { buildOnnxModel } from "../src/model/build.js";
import { readWhisperConfig, type WhisperConfig } from "../src/model/config.js";
import { SafetensorsFile } from "../src/model/safetensors.js";
import { linearLayerNames } from "../src/model/whisper-graphs.js";
import { ReferenceWhisper, relativeError } from "./support/reference-whisper.js";
import { syntheticModel, tempDir, TEST_CLEAN_FLAC } from "./support/env.js";

const TOLERANCE = 1e-4; // relative, over each tensor

describe("Whisper ONNX graphs vs a plain TypeScript forward pass", () => {
  let config: WhisperConfig;
  let onnx: OnnxWhisper;
  let reference: ReferenceWhisper;
  let mel: Float32Array;
  let refHidden: Float64Array;
  let modelDir: string;

  before(async () => {
    modelDir = await syntheticModel({ dModel: 64, heads: 4, layers: 2, seed: 7 });
    const onnxDir = join(await tempDir(), "onnx");
    await buildOnnxModel(modelDir, onnxDir);
    config = await readWhisperConfig(join(modelDir, "config.json"));
    onnx = await OnnxWhisper.load(onnxDir, config, { threads: 1 });
    reference = new ReferenceWhisper(config, await SafetensorsFile.load(join(modelDir, "model.safetensors")));
    mel = logMelSpectrogram(await loadAudio(TEST_CLEAN_FLAC));
    refHidden = reference.encode(mel);
  });

  it("encoder output matches within 1e-4", async () => {
    const encoded = await onnx.encode(mel);
    assert.deepEqual(encoded.hidden.dims, [1, 1500, config.dModel]);
    const err = relativeError(encoded.hidden.data as Float32Array, refHidden);
    assert.ok(err < TOLERANCE, `encoder relative error ${err}`);
  });

  it("decoder logits of the first steps match, with and without the cache", async () => {
    const encoded = await onnx.encode(mel);
    const ids = [50257, 50362, 464, 2068, 7586]; // <|startoftranscript|> <|notimestamps|> " The" " quick" " brown"
    const refLogits = reference.decode(ids, refHidden);
    const V = config.vocabSize;

    // No cache: the whole sequence at once.
    const full = await onnx.step(ids, encoded, null);
    assert.equal(full.logits.length, ids.length * V);
    const errFull = relativeError(full.logits, refLogits);
    assert.ok(errFull < TOLERANCE, `uncached logits relative error ${errFull}`);

    // With the cache: the prompt, then one token per step.
    let cache: KvCache | null = null;
    let fed = 0;
    for (const chunk of [ids.slice(0, 2), [ids[2]!], [ids[3]!], [ids[4]!]]) {
      const out = await onnx.step(chunk, encoded, cache);
      const want = refLogits.subarray(fed * V, (fed + chunk.length) * V);
      const err = relativeError(out.logits, want);
      assert.ok(err < TOLERANCE, `cached logits at position ${fed} relative error ${err}`);
      assert.deepEqual(out.cache["past_key.0"]!.dims, [1, config.decoderHeads, fed + chunk.length, config.dModel / config.decoderHeads]);
      fed += chunk.length;
      cache = out.cache;
    }
  });

  it("greedy decoding gives the same tokens with and without the cache", async () => {
    const tokenizer = await WhisperTokenizer.load(modelDir);
    const settings = await readGenerationSettings(modelDir, tokenizer, config.maxTargetPositions);
    const encoded = await onnx.encode(mel);
    const cached = await greedyDecode(stepperFor(onnx, encoded), settings, { maxNewTokens: 24 });
    const uncached = await greedyDecode(stepperFor(onnx, encoded), settings, { maxNewTokens: 24, useCache: false });
    assert.deepEqual(cached.prompt, [50257, 50362]);
    assert.ok(cached.tokens.length > 0);
    assert.deepEqual(cached.tokens, uncached.tokens);
    // begin_suppress_tokens and suppress_tokens are honoured
    assert.ok(!settings.beginSuppressTokens.includes(cached.tokens[0]!));
    for (const t of cached.tokens) assert.ok(!settings.suppressTokens.includes(t), `suppressed token ${t} was generated`);
  });

  it("every linear layer is a MatMul on an initializer named after the Hugging Face parameter", async () => {
    const { readOnnxModel } = await import("../src/model/onnx.js");
    const dir = join(await tempDir(), "onnx");
    const manifest = await buildOnnxModel(modelDir, dir);
    const enc = await readOnnxModel(join(dir, "encoder.onnx"));
    const dec = await readOnnxModel(join(dir, "decoder.onnx"));
    const matmulWeights = new Set([...enc.graph!.node, ...dec.graph!.node].filter((n) => n.opType === "MatMul").map((n) => n.input[1]!));
    for (const linear of linearLayerNames(config)) assert.ok(matmulWeights.has(`${linear}.weight`), `${linear} is not a MatMul`);
    // the tied token embedding is stored once, and proj_out reads it through Gemm(transB)
    const embeddings = dec.graph!.initializer.filter((t) => t.name === "model.decoder.embed_tokens.weight");
    assert.equal(embeddings.length, 1);
    const gemm = dec.graph!.node.find((n) => n.opType === "Gemm")!;
    assert.equal(gemm.input[1], "model.decoder.embed_tokens.weight");
    // sizes add up: parameters are all fp32, every parameter once, files hold them plus the graph
    const paramCount = manifest.parameters.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal(manifest.parameterBytes, paramCount * 4);
    assert.equal(new Set(manifest.parameters.map((p) => p.name)).size, manifest.parameters.length);
    const dataBytes = manifest.files.filter((f) => f.file.endsWith(".data")).reduce((a, f) => a + f.bytes, 0);
    assert.ok(dataBytes >= manifest.parameterBytes * 0.99 && dataBytes <= manifest.parameterBytes + 64 * manifest.parameters.length);
  });
});
