/**
 * The transformers.js export of real whisper-tiny.en (make import-models), in Node and in a real
 * browser: Debian's Chromium loads transformers.js's browser build and the exported q4 variant from
 * a loopback server and transcribes real LibriSpeech utterances. Part of `make test-data`.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { loadAudio } from "../src/audio/decode.js";
import { logMelSpectrogram } from "../src/audio/mel.js";
import { Transcriber } from "../src/asr/transcriber.js";
import { TransformersJsTranscriber } from "../src/asr/transformers-js.js";
import { exportTransformersJs, type ExportedVariant } from "../src/export/transformers-js.js";
import { buildManifest } from "../src/hub/librispeech.js";
import { ensureQuantizedModel } from "../src/recipes/quantize-model.js";
import { launchChromium, openDemoPage, startDemoServer, type DemoServer } from "../tools/demo/serve.js";
import { LARGE_LIBRISPEECH, largeDataMissing, ROOT, tempDir } from "./support/env.js";

const TINY_EN = join(ROOT, "data", "models", "whisper-tiny.en");
const missing = !existsSync(join(TINY_EN, "model.safetensors")) ? "needs whisper-tiny.en: make import-models" : largeDataMissing("test-other");
const UTTERANCES = 6;

describe("transformers.js export of whisper-tiny.en", { skip: missing }, () => {
  let outDir: string;
  let files: string[];
  const variants = new Map<string, ExportedVariant>();
  const recipes: Array<[string, string]> = [
    ["fp32", "onnx"],
    ["quanto/w4", "onnx"],
    ["hqq/4", "onnx-hqq-4"],
    ["bnb/nf4", "onnx"],
  ];

  before(async () => {
    outDir = join(await tempDir(), "whisper-tiny.en");
    for (const [recipe, subfolder] of recipes) variants.set(recipe, await exportTransformersJs({ modelDir: TINY_EN, recipe, outDir, subfolder }));
    const manifest = await buildManifest(LARGE_LIBRISPEECH!, "test-other");
    files = manifest.slice(-UTTERANCES).map((u) => u.path); // the evaluation part's end: never calibration
  });

  it(`Node: transformers.js gives the kit's tokens on ${UTTERANCES} real test-other utterances, for fp32, quanto/w4, hqq/4 and bnb/nf4`, async () => {
    for (const [recipe] of recipes) {
      const { dir } = await ensureQuantizedModel(TINY_EN, recipe);
      const kit = await Transcriber.load(TINY_EN, { onnxDir: dir, threads: 2 });
      const v = variants.get(recipe)!;
      const tj = await TransformersJsTranscriber.load({ folder: outDir, dtype: v.dtype, subfolder: v.subfolder }, kit, { threads: 2 });
      let same = 0;
      try {
        for (const file of files) {
          const mel = logMelSpectrogram(await loadAudio(file), 80);
          const expected = (await kit.decodeFeatures(mel)).tokens;
          if (JSON.stringify(await tj.decodeFeatures(mel, 80)) === JSON.stringify(expected)) same++;
        }
      } finally {
        await kit.close();
        await tj.close();
      }
      console.log(`# ${recipe}: ${same} of ${files.length} utterances with identical tokens`);
      assert.equal(same, files.length, `${recipe}: transformers.js and the kit agree on every utterance`);
    }
  });

  describe("in a browser", () => {
    let server: DemoServer;
    let browser: Browser;
    before(async () => {
      server = await startDemoServer(outDir, { audioDir: LARGE_LIBRISPEECH! });
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
      await server?.close();
    });

    it("Chromium transcribes two real utterances with the exported q4 variant, as transformers.js does in Node", async () => {
      const page = await openDemoPage(browser, server);
      assert.equal(await page.crossOriginIsolated(), true, "cross-origin isolated: WASM threads allowed");
      await page.select("quanto/w4");
      const v = variants.get("quanto/w4")!;
      const { dir } = await ensureQuantizedModel(TINY_EN, "quanto/w4");
      const kit = await Transcriber.load(TINY_EN, { onnxDir: dir, threads: 1 });
      const node = await TransformersJsTranscriber.load({ folder: outDir, dtype: v.dtype, subfolder: v.subfolder }, kit, { threads: 1 });
      try {
        for (const file of files.slice(0, 2)) {
          const url = `/audio/${file.slice(LARGE_LIBRISPEECH!.length + 1)}`;
          const inBrowser = await page.transcribe(url);
          const inNode = await node.transcribe(await loadAudio(file));
          console.log(
            `# browser: ${(inBrowser.ms / 1000).toFixed(2)} s for ${inBrowser.audioSeconds.toFixed(1)} s of audio (load ${(inBrowser.loadMs / 1000).toFixed(1)} s): ${inBrowser.text}`,
          );
          assert.equal(inBrowser.text, inNode.text, `${file}: the browser's transcript is Node's`);
          assert.ok(inBrowser.text.split(" ").length >= 3, "a real transcript");
        }
      } finally {
        await kit.close();
        await node.close();
      }
      assert.deepEqual(page.errors, []);
    });
  });
});
