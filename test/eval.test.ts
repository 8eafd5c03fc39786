/** The evaluation harness: WER/CER, the LibriSpeech manifest, the study's split, the results store, resume. */
import assert from "node:assert/strict";
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { Transcriber } from "../src/asr/transcriber.js";
import { ResultsStore, readJsonl, type RunSummary, type UtteranceResult } from "../src/eval/results-store.js";
import { runEvaluation } from "../src/eval/runner.js";
import { calibrationPart, evaluationPart, parseShard } from "../src/eval/splits.js";
import { align, characters, errorRate, words } from "../src/eval/wer.js";
import { buildManifest, parseTranscripts } from "../src/hub/librispeech.js";
import { KitError } from "../src/util/errors.js";
import { perturbFeatures, parsePerturbation } from "../src/eval/perturb.js";
import { LIBRISPEECH, miniSplit, syntheticModel, tempDir } from "./support/env.js";

describe("WER and CER", () => {
  it("counts substitutions, deletions and insertions on hand-checked alignments", () => {
    const a = align(words("the cat sat on the mat"), words("the cat sit on mat today"));
    assert.deepEqual([a.substitutions, a.deletions, a.insertions, a.hits], [1, 1, 1, 4]); // distance 3, "mat" kept as a match
    assert.deepEqual(
      a.steps.map((s) => s.op),
      ["equal", "equal", "substitute", "equal", "delete", "equal", "insert"],
    );
    assert.equal(errorRate(a), 3 / 6);
    const empty = align(words(""), words("hello there"));
    assert.deepEqual([empty.insertions, empty.referenceLength], [2, 0]);
    assert.ok(Number.isNaN(errorRate(empty)));
    const c = align(characters("kitten"), characters("sitting"));
    assert.equal(c.substitutions + c.deletions + c.insertions, 3); // the classic Levenshtein distance
    assert.equal(errorRate(align(words("a b c"), words("a b c"))), 0);
  });

  it("corpus WER divides by the reference words, not the longer side", () => {
    const r = align(words("one two"), words("one two three four five"));
    assert.equal(errorRate(r), 3 / 2);
  });
});

describe("LibriSpeech manifest and the study's split", () => {
  it("lists a split's utterances sorted by id, with FLAC durations", async () => {
    const m = await buildManifest(LIBRISPEECH, "test-clean");
    assert.deepEqual(
      m.map((u) => u.id),
      ["1089-134686-0000", "1089-134686-0001", "1089-134691-0000", "1089-134691-0001"],
    );
    assert.ok(Math.abs(m.reduce((a, u) => a + u.duration, 0) - 21.2) < 0.05);
    assert.equal(m[0]!.duration, 166960 / 16000);
    assert.match(m[0]!.transcript, /^HE HOPED THERE WOULD BE STEW/);
  });

  it("cuts the first 10 % for calibration; --limit and --shard select from the rest", () => {
    const ids = Array.from({ length: 738 }, (_, i) => i);
    assert.equal(calibrationPart(ids).length, 74);
    assert.equal(evaluationPart(ids).length, 664);
    assert.equal(evaluationPart(ids)[0], 74);
    assert.deepEqual(evaluationPart(ids, { limit: 3 }), [74, 75, 76]);
    assert.equal(evaluationPart(ids, { full: true }).length, 738);
    assert.deepEqual(evaluationPart(ids, { limit: 6, shard: parseShard("2/3") }), [75, 78]);
    assert.throws(() => parseShard("0/2"), /--shard must be i\/n/);
  });

  it("names the file for a missing FLAC, a bad transcript line, an unknown split and an empty split", async () => {
    const root = await tempDir();
    const chapter = join(root, "my-split", "1", "2");
    await mkdir(chapter, { recursive: true });
    await writeFile(join(chapter, "1-2.trans.txt"), "1-2-0000 HELLO WORLD\n");
    await assert.rejects(
      buildManifest(root, "my-split"),
      (err: unknown) => err instanceof KitError && /1-2-0000\.flac, which cannot be opened/.test(err.message),
    );
    await writeFile(join(chapter, "1-2.trans.txt"), "1-2-0000 HELLO\nthis line is wrong\n");
    await assert.rejects(buildManifest(root, "my-split"), /line 2 of .*1-2\.trans\.txt is not/);
    assert.throws(
      () => parseTranscripts("x", "t.txt"),
      (err: unknown) => err instanceof KitError && err.field === "line 1",
    );
    await assert.rejects(buildManifest(root, "no-such-split"), /no split 'no-such-split'[\s\S]*available here: my-split/);
    await mkdir(join(root, "empty-split", "9", "9"), { recursive: true });
    await assert.rejects(buildManifest(root, "empty-split"), /holds no utterances/);
  });
});

describe("results store", () => {
  it("drops a truncated last line left by a crash, keeps everything before it, and appends cleanly", async () => {
    const dir = await tempDir();
    const store = new ResultsStore(dir);
    const rec = (id: string) => ({
      id,
      hypothesis: "x",
      hypothesisNormalized: "x",
      referenceNormalized: "x",
      words: { substitutions: 0, deletions: 0, insertions: 0, hits: 1, referenceLength: 1 },
      chars: { substitutions: 0, deletions: 0, insertions: 0, hits: 1, referenceLength: 1 },
      audioSeconds: 1,
      tokens: 1,
      seconds: 0.1,
      wordErrors: [],
    });
    await store.appendUtterance("k", rec("a"));
    await store.appendUtterance("k", rec("b"));
    await appendFile(join(dir, "runs", "k.jsonl"), '{"id":"c","hypoth'); // killed mid-write
    const fresh = new ResultsStore(dir);
    assert.deepEqual([...(await fresh.finishedUtterances("k")).keys()], ["a", "b"]);
    assert.match(fresh.warnings.join(), /partial last line/);
    await fresh.appendUtterance("k", rec("c"));
    const lines = (await readFile(join(dir, "runs", "k.jsonl"), "utf8")).trimEnd().split("\n");
    assert.deepEqual(
      lines.map((l) => JSON.parse(l).id),
      ["a", "b", "c"],
    );
  });

  it("refuses a damaged line in the middle, naming the line", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "runs"), { recursive: true });
    await writeFile(join(dir, "runs", "k.jsonl"), '{"id":"a"}\nnot json\n{"id":"b"}\n');
    await assert.rejects(new ResultsStore(dir).finishedUtterances("k"), /line 2 of .*k\.jsonl is not valid JSON/);
    assert.equal((await readJsonl(join(dir, "nothing.jsonl"))).records.length, 0);
  });
});

describe("an evaluation run", () => {
  let transcriber: Transcriber;
  let utterances: Awaited<ReturnType<typeof buildManifest>>;

  before(async () => {
    transcriber = await Transcriber.load(await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 5 }), { threads: 1, maxNewTokens: 8 });
    utterances = (await miniSplit(12)).utterances; // 12 real train-clean-5 utterances, symlinked
  });

  const deterministic = (outcome: { summary: RunSummary | null }) => {
    assert.ok(outcome.summary, "the run finished");
    const { timing: _t, finishedAt: _f, ...rest } = outcome.summary;
    return rest;
  };

  it("a run interrupted midway resumes, redoes no finished utterance, and ends with the same results", async () => {
    const base = { transcriber, modelName: "synthetic", recipe: { id: "fp32", options: {} }, split: "mini", utterances };
    const reference = await runEvaluation({ ...base, store: new ResultsStore(await tempDir()) });

    const dir = await tempDir();
    let seen = 0;
    await assert.rejects(
      runEvaluation({
        ...base,
        store: new ResultsStore(dir),
        transformAudio: (audio) => {
          if (++seen > 1 + 5) throw new Error("simulated crash"); // warm-up + 5 utterances
          return audio;
        },
      }),
      /simulated crash/,
    );
    const decoded: string[] = [];
    const resumed = await runEvaluation({
      ...base,
      store: new ResultsStore(dir),
      transformAudio: (audio, u) => {
        decoded.push(u.id);
        return audio;
      },
    });
    assert.equal(decoded.length, 1 + 7, "warm-up + the 7 unfinished utterances only");
    assert.ok(!decoded.slice(1).some((id) => utterances.slice(0, 5).some((u) => u.id === id)));
    assert.deepEqual(deterministic(resumed), deterministic(reference));
    const a = (await readJsonl<UtteranceResult>(join(dir, "runs", `${resumed.key}.jsonl`))).records;
    assert.deepEqual(a.map((r) => r.id).sort(), utterances.map((u) => u.id).sort());
    for (const r of a)
      assert.equal(r.wordErrors.length, r.words.substitutions + r.words.deletions + r.words.insertions, "the alignment is kept with each utterance");

    // finished: asking again computes nothing
    let again = 0;
    const cached = await runEvaluation({
      ...base,
      store: new ResultsStore(dir),
      transformAudio: (x) => {
        again++;
        return x;
      },
    });
    assert.equal(again, 0);
    assert.equal(cached.key, resumed.key);
    assert.equal(cached.summary?.finishedAt, resumed.summary?.finishedAt);
  });

  it("two workers give the same results as one", async () => {
    const base = { transcriber, modelName: "synthetic", recipe: { id: "fp32", options: {} }, split: "mini", utterances: utterances.slice(0, 6) };
    const one = await runEvaluation({ ...base, store: new ResultsStore(await tempDir()), workers: 1 });
    const two = await runEvaluation({ ...base, store: new ResultsStore(await tempDir()), workers: 2 });
    assert.deepEqual(deterministic(two), deterministic(one));
  });
});

describe("--perturb: the input features moved at float-rounding scale", () => {
  it("is seeded per utterance, of the asked size, and size 0 is the identity", () => {
    const mel = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) - 0.5);
    const a = perturbFeatures(mel, { size: 1e-6, seed: 1 }, "u1");
    assert.deepEqual(a, perturbFeatures(mel, { size: 1e-6, seed: 1 }, "u1"));
    assert.notDeepEqual(a, perturbFeatures(mel, { size: 1e-6, seed: 2 }, "u1"));
    assert.notDeepEqual(a, perturbFeatures(mel, { size: 1e-6, seed: 1 }, "u2"));
    let sq = 0;
    for (let i = 0; i < mel.length; i++) sq += ((a[i]! - mel[i]!) / mel[i]!) ** 2;
    const rms = Math.sqrt(sq / mel.length);
    assert.ok(rms > 0.5e-6 && rms < 2e-6, `relative rms ${rms}`);
    assert.equal(perturbFeatures(mel, { size: 0, seed: 3 }, "u1"), mel);
    assert.throws(() => parsePerturbation("-1"), /relative size/);
  });

  it("a run with size 0 reproduces the unperturbed run exactly, under its own run key", async () => {
    const transcriber = await Transcriber.load(await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 5 }), { threads: 1, maxNewTokens: 8 });
    try {
      const { utterances } = await miniSplit(4);
      const store = new ResultsStore(await tempDir());
      const base = { transcriber, modelName: "synthetic", recipe: { id: "fp32", options: {} }, split: "mini", utterances, store };
      const plain = await runEvaluation(base);
      const zero = await runEvaluation({ ...base, perturb: { size: 0, seed: 1 }, conditions: { perturb: "0:1" } });
      assert.notEqual(zero.key, plain.key);
      const texts = async (key: string) => [...(await store.finishedUtterances(key)).values()].map((r) => r.hypothesis);
      assert.deepEqual(await texts(zero.key), await texts(plain.key));
    } finally {
      await transcriber.close();
    }
  });
});
