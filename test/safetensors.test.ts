import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { buildOnnxModel } from "../src/model/build.js";
import { parseWhisperConfig, readWhisperConfig } from "../src/model/config.js";
import { encodeSafetensors, float16ToFloat32, float32ToFloat16, readSafetensorsHeader, SafetensorsFile, type TensorToWrite } from "../src/model/safetensors.js";
import { KitError } from "../src/util/errors.js";
import { syntheticModel, tempDir, TINY_EN_ASSETS } from "./support/env.js";

const tensors = () =>
  new Map<string, TensorToWrite>([
    ["a.weight", { dtype: "F32", shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -7.25]) }],
    ["b.half", { dtype: "F16", shape: [4], data: Float32Array.from([1, -0.5, 65504, 6.1e-5]) }],
    ["c.bf16", { dtype: "BF16", shape: [2], data: Float32Array.from([3.140625, -256]) }],
  ]);

describe("safetensors", () => {
  it("round-trips F32, F16 and BF16 tensors", async () => {
    const file = join(await tempDir(), "t.safetensors");
    await writeFile(file, encodeSafetensors(tensors()));
    const st = await SafetensorsFile.load(file);
    assert.deepEqual(st.names().sort(), ["a.weight", "b.half", "c.bf16"]);
    assert.deepEqual(st.float32("a.weight"), Float32Array.from([1, -2, 3.5, 0, 1e-8, -7.25]));
    assert.deepEqual(st.float32("b.half"), Float32Array.from([1, -0.5, 65504, float16ToFloat32(float32ToFloat16(6.1e-5))]));
    assert.deepEqual(st.float32("c.bf16"), Float32Array.from([3.140625, -256]));
    assert.deepEqual((await readSafetensorsHeader(file)).tensors.get("a.weight")!.shape, [2, 3]);
  });

  it("half precision conversion is exact on every finite half", () => {
    for (let h = 0; h < 0x7c00; h += 7) assert.equal(float32ToFloat16(float16ToFloat32(h)), h);
    assert.equal(float16ToFloat32(0x3c00), 1);
    assert.equal(float16ToFloat32(0x0001), 2 ** -24);
  });

  it("rejects a wrong header and a truncated body, naming the file and tensor", async () => {
    const dir = await tempDir();
    const good = encodeSafetensors(tensors());
    const badLength = good.slice();
    new DataView(badLength.buffer).setBigUint64(0, 10n ** 12n, true);
    const notJson = good.slice();
    notJson[9] = 0x7b; // "{{" is not JSON
    notJson[8] = 0x7b;
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ["tiny.safetensors", good.subarray(0, 5), /too short/],
      ["length.safetensors", badLength, /invalid safetensors header length/],
      ["json.safetensors", notJson, /header that is not JSON/],
      ["cut.safetensors", good.subarray(0, good.length - 3), /truncated/],
    ];
    for (const [name, bytes, pattern] of cases) {
      const file = join(dir, name);
      await writeFile(file, bytes);
      await assert.rejects(SafetensorsFile.load(file), (err: unknown) => {
        assert.ok(err instanceof KitError);
        assert.match(err.message, pattern);
        assert.equal(err.file, file);
        return true;
      });
    }
    await assert.rejects(SafetensorsFile.load(join(dir, "absent.safetensors")), /cannot read .*absent\.safetensors/);
  });

  it("a checkpoint whose shapes disagree with config.json is refused by name", async () => {
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1 });
    const config = JSON.parse(await readFile(join(model, "config.json"), "utf8"));
    config.encoder_ffn_dim = 64; // the weights have 128
    await writeFile(join(model, "config.json"), JSON.stringify(config));
    await assert.rejects(
      buildOnnxModel(model, join(await tempDir(), "out")),
      /model\.encoder\.layers\.0\.fc1\.weight' has shape \[128,32\] but config\.json implies \[64,32\]/,
    );
  });
});

describe("config.json", () => {
  it("reads every Whisper size's architecture from config.json alone", async () => {
    const config = await readWhisperConfig(join(TINY_EN_ASSETS, "config.json"));
    assert.equal(config.dModel, 384);
    assert.equal(config.encoderLayers, 4);
    assert.equal(config.vocabSize, 51864);
    const small = parseWhisperConfig(
      {
        model_type: "whisper",
        d_model: 768,
        encoder_layers: 12,
        encoder_attention_heads: 12,
        encoder_ffn_dim: 3072,
        decoder_layers: 12,
        decoder_attention_heads: 12,
        decoder_ffn_dim: 3072,
        num_mel_bins: 80,
        max_source_positions: 1500,
        max_target_positions: 448,
        vocab_size: 51865,
      },
      "small/config.json",
    );
    assert.equal(small.decoderHeads, 12);
  });

  it("names a missing or malformed field and the file", () => {
    const base = JSON.parse(
      JSON.stringify({
        d_model: 64,
        encoder_layers: 1,
        encoder_attention_heads: 2,
        encoder_ffn_dim: 8,
        decoder_layers: 1,
        decoder_attention_heads: 2,
        decoder_ffn_dim: 8,
        num_mel_bins: 80,
        max_source_positions: 1500,
        max_target_positions: 448,
        vocab_size: 100,
      }),
    );
    const { d_model: _omit, ...missing } = base;
    assert.throws(
      () => parseWhisperConfig(missing, "m/config.json"),
      (err: unknown) => err instanceof KitError && err.field === "d_model" && err.file === "m/config.json" && /has no 'd_model'/.test(err.message),
    );
    assert.throws(() => parseWhisperConfig({ ...base, vocab_size: "many" }, "m/config.json"), /'vocab_size' must be a positive integer/);
    assert.throws(() => parseWhisperConfig({ ...base, model_type: "bert" }, "m/config.json"), /'bert' model, not Whisper/);
    assert.throws(() => parseWhisperConfig({ ...base, d_model: 63 }, "m/config.json"), /not divisible/);
  });
});
