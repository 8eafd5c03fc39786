/** The CTranslate2 (faster-whisper) importer, on model files the tests write themselves. */
import assert from "node:assert/strict";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { readWhisperConfig, type WhisperConfig } from "../src/model/config.js";
import { importCt2Model, parseCt2Model } from "../src/model/import-ct2.js";
import { SafetensorsFile } from "../src/model/safetensors.js";
import { float16ToFloat32, float32ToFloat16 } from "../src/model/safetensors.js";
import { Transcriber } from "../src/asr/transcriber.js";
import { KitError } from "../src/util/errors.js";
import { writeCt2Whisper } from "./support/ct2-writer.js";
import { syntheticModel, tempDir, TEST_CLEAN_FLAC, TINY_EN_ASSETS } from "./support/env.js";

const half = (x: number) => float16ToFloat32(float32ToFloat16(x));

describe("CTranslate2 importer", () => {
  let hfDir: string;
  let config: WhisperConfig;
  let weights: SafetensorsFile;
  let ct2Bytes: Uint8Array;

  /** A faster-whisper model folder: model.bin (or parts), config.json, tokenizer.json. */
  async function ct2Folder(bytes: Uint8Array, parts = 1): Promise<string[]> {
    const root = await tempDir();
    const folders: string[] = [];
    const size = Math.ceil(bytes.length / parts);
    for (let p = 0; p < parts; p++) {
      const folder = join(root, `part${p + 1}`);
      await mkdir(folder, { recursive: true });
      const name = parts === 1 ? "model.bin" : `model.bin.part${p + 1}`;
      await writeFile(join(folder, name), bytes.subarray(p * size, (p + 1) * size));
      folders.push(folder);
    }
    await copyFile(join(TINY_EN_ASSETS, "tokenizer.json"), join(folders[0]!, "tokenizer.json"));
    const gen = JSON.parse(await readFile(join(TINY_EN_ASSETS, "generation_config.json"), "utf8"));
    await writeFile(
      join(folders[0]!, "config.json"),
      JSON.stringify({ suppress_ids: gen.suppress_tokens, suppress_ids_begin: gen.begin_suppress_tokens, lang_ids: [], alignment_heads: [] }),
    );
    return folders;
  }

  before(async () => {
    hfDir = await syntheticModel({ dModel: 32, heads: 2, layers: 2, seed: 11, dtype: "F16" });
    config = await readWhisperConfig(join(hfDir, "config.json"));
    weights = await SafetensorsFile.load(join(hfDir, "model.safetensors"));
    ct2Bytes = writeCt2Whisper(weights, config);
  });

  it("float16 weights import losslessly, every tensor identical to the Hugging Face original", async () => {
    const out = join(await tempDir(), "imported");
    const report = await importCt2Model(await ct2Folder(ct2Bytes), out, { fallbackAssets: TINY_EN_ASSETS });
    assert.equal(report.sourcePrecision, "float16");
    assert.equal(report.int8Derived, false);
    const imported = await SafetensorsFile.load(join(out, "model.safetensors"));
    assert.deepEqual(imported.names().sort(), weights.names().sort());
    for (const name of weights.names()) {
      assert.deepEqual(imported.entry(name).shape, weights.entry(name).shape, name);
      assert.equal(imported.entry(name).dtype, "F16", name);
      assert.deepEqual(imported.float32(name), weights.float32(name), name);
    }
    const importedConfig = await readWhisperConfig(join(out, "config.json"));
    assert.deepEqual(importedConfig, config);
    assert.deepEqual(report.filesFromFallback.includes("normalizer.json"), true);
    assert.match(await readFile(join(out, "README.md"), "utf8"), /converted losslessly/);
  });

  it("joins model.bin.part1 + part2 from two folders, and transcribes like the original", async () => {
    const out = join(await tempDir(), "imported");
    await importCt2Model(await ct2Folder(ct2Bytes, 2), out, { fallbackAssets: TINY_EN_ASSETS });
    const original = await Transcriber.load(hfDir, { threads: 1, maxNewTokens: 12 });
    const imported = await Transcriber.load(out, { threads: 1, maxNewTokens: 12 });
    const a = await original.transcribeFile(TEST_CLEAN_FLAC);
    const b = await imported.transcribeFile(TEST_CLEAN_FLAC);
    assert.deepEqual(b.tokens, a.tokens);
    await original.close();
    await imported.close();
  });

  it("int8 weights are dequantized and the folder is marked int8-derived", async () => {
    const out = join(await tempDir(), "imported");
    const report = await importCt2Model(await ct2Folder(writeCt2Whisper(weights, config, { int8: true })), out, { fallbackAssets: TINY_EN_ASSETS });
    assert.equal(report.int8Derived, true);
    const cfg = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    assert.equal(cfg.imported.int8_derived, true);
    assert.match(await readFile(join(out, "README.md"), "utf8"), /int8-derived.*NOT an fp32 baseline/);
    const imported = await SafetensorsFile.load(join(out, "model.safetensors"));
    const name = "model.decoder.layers.1.fc1.weight";
    const orig = weights.float32(name);
    const deq = imported.float32(name);
    const cols = config.dModel;
    for (let r = 0; r < 4; r++) {
      let amax = 0;
      for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(half(orig[r * cols + c]!)));
      for (let c = 0; c < cols; c++) assert.ok(Math.abs(deq[r * cols + c]! - orig[r * cols + c]!) <= amax / 127 / 2 + 1e-6);
    }
  });

  it("refuses a wrong magic, another spec, a truncated file and a missing part, naming them", async () => {
    const wrongVersion = ct2Bytes.slice();
    new DataView(wrongVersion.buffer).setUint32(0, 0x67676d6c, true); // "lmgg": a whisper.cpp ggml file
    assert.throws(
      () => parseCt2Model(wrongVersion, "ggml.bin"),
      (err: unknown) => err instanceof KitError && /not a CTranslate2 model\.bin/.test(err.message) && err.file === "ggml.bin",
    );
    assert.throws(() => parseCt2Model(ct2Bytes.subarray(0, ct2Bytes.length / 2), "half.bin"), /ends at byte \d+ inside variable [\s\S]* a part is missing/);
    assert.throws(() => parseCt2Model(new Uint8Array(3), "tiny.bin"), /too short/);
    const other = ct2Bytes.slice();
    other.set(new TextEncoder().encode("Transformer"), 6); // 11 characters, as "WhisperSpec"
    assert.throws(() => parseCt2Model(other, "mt.bin"), /'Transformer' model, not Whisper/);
    const folders = await ct2Folder(ct2Bytes, 3);
    await assert.rejects(importCt2Model([folders[0]!, folders[2]!], join(await tempDir(), "x")), /model\.bin\.part2 is missing/);
    const noTokenizer = await tempDir();
    await writeFile(join(noTokenizer, "model.bin"), ct2Bytes);
    await assert.rejects(importCt2Model([noTokenizer], join(await tempDir(), "y")), /no tokenizer\.json/);
  });
});
