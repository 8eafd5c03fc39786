/**
 * `ptq compare` over a results store: a recipe made worse on 10 % of the utterances is found, one
 * that differs only by chance is not marked, runaway loops are counted and left out on request,
 * and the run summaries carry their bootstrap intervals.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../src/eval/bootstrap.js";
import { compareRuns, comparisonMarkdown } from "../src/eval/compare.js";
import { ResultsStore, runKey, type RunSpec, type UtteranceResult } from "../src/eval/results-store.js";
import { summarize } from "../src/eval/runner.js";
import { tempDir } from "./support/env.js";

const N = 200;
const ids = Array.from({ length: N }, (_, i) => `${100 + (i % 10)}-1-${String(i).padStart(4, "0")}`);

function result(id: string, words: number, errors: number, tokens = 30): UtteranceResult {
  return {
    id,
    hypothesis: "",
    hypothesisNormalized: "",
    referenceNormalized: "",
    words: { substitutions: errors, deletions: 0, insertions: 0, hits: words - errors, referenceLength: words },
    chars: { substitutions: errors, deletions: 0, insertions: 0, hits: 5 * words - errors, referenceLength: 5 * words },
    wordErrors: [],
    audioSeconds: 5,
    tokens,
    seconds: 0.5,
  };
}

async function addRun(store: ResultsStore, recipe: string, records: UtteranceResult[], options: Record<string, unknown> = {}): Promise<void> {
  const spec: RunSpec = {
    model: { name: "m", weightsSha256: "0" },
    recipe: { id: recipe, options },
    split: "s",
    utteranceIds: records.map((r) => r.id),
    decoding: {},
    conditions: {},
    kitVersion: "test",
  };
  const key = runKey(spec);
  await store.writeSpec(key, spec);
  for (const r of records) await store.appendUtterance(key, r);
  await store.appendSummary(summarize(key, spec, new Map(records.map((r) => [r.id, r])), {}, null));
}

describe("ptq compare", () => {
  it("marks a planted difference, not a chance one, and handles runaways", async () => {
    const random = seededRandom(8);
    const words = ids.map(() => 10 + Math.floor(random() * 20));
    const base = ids.map((id, i) => result(id, words[i]!, Math.floor(random() * 2)));
    const store = new ResultsStore(await tempDir());
    await addRun(store, "fp32", base);
    await addRun(
      store,
      "worse",
      base.map((r, i) => (i % 10 === 0 ? result(r.id, words[i]!, r.words.substitutions + 3) : r)),
    );
    await addRun(
      store,
      "same",
      base.map((r, i) => (i === 5 ? result(r.id, words[i]!, r.words.substitutions + 1) : r)),
    );
    await addRun(
      store,
      "loops",
      base.map((r, i) => (i === 7 ? result(r.id, words[i]!, 300, 448) : r)),
    );
    const rows = await compareRuns(store.dir);
    const by = new Map(rows.map((r) => [r.recipe, r]));
    assert.equal(rows.length, 3);
    assert.ok(by.get("worse")!.significant && by.get("worse")!.low > 0, JSON.stringify(by.get("worse")));
    assert.ok(!by.get("same")!.significant);
    const loops = by.get("loops")!;
    assert.equal(loops.runaways, 1);
    assert.equal(loops.withoutRunaways.utterances, N - 1);
    assert.equal(loops.withoutRunaways.difference, 0);
    assert.ok(loops.pHolm >= loops.p);
    const table = comparisonMarkdown(rows);
    assert.match(table, /\| worse \| 200 \|.* worse \|/);
    assert.doesNotMatch(table, /\| same \|.*(worse|better) \|/);
  });

  it("pairs each recipe with the fp32 run that shares most of its utterances (a store may hold fp32 at two limits)", async () => {
    const random = seededRandom(5);
    const base = ids.map((id) => result(id, 20, Math.floor(random() * 3)));
    const few = N / 4;
    const worse = base.map((r, i) => (i % 5 === 0 ? result(r.id, 20, r.words.substitutions + 2) : r));
    for (const order of [
      ["short", "long"],
      ["long", "short"],
    ]) {
      const store = new ResultsStore(await tempDir());
      for (const which of order) await addRun(store, "fp32", which === "short" ? base.slice(0, few) : base);
      await addRun(store, "worse", worse);
      await addRun(store, "worse-on-few", worse.slice(0, few));
      const rows = await compareRuns(store.dir);
      const by = new Map(rows.map((r) => [r.recipe, r]));
      assert.deepEqual(rows.map((r) => r.recipe).sort(), ["worse", "worse-on-few"], "the second fp32 run is a baseline, not a compared recipe");
      assert.equal(by.get("worse")!.utterances, N, `order ${order}: paired on all ${N}, not on the ${few} of the shorter fp32 run`);
      assert.equal(by.get("worse-on-few")!.utterances, few);
    }
  });

  it("names a static recipe's calibration size, so two calibrations never read as one recipe twice", async () => {
    const base = ids.map((id) => result(id, 20, 1));
    const store = new ResultsStore(await tempDir());
    await addRun(store, "fp32", base);
    for (const n of [5, 10]) await addRun(store, "static", base, { calibration: `s calibration part: ${n} utterances, a .. b` });
    const rows = await compareRuns(store.dir);
    assert.deepEqual(rows.map((r) => r.calibrationUtterances).sort(), [10, 5]);
    const table = comparisonMarkdown(rows);
    assert.match(table, /\| static \(calibrated on 5\) \|/);
    assert.match(table, /\| static \(calibrated on 10\) \|/);
  });

  it("run summaries carry 95 % intervals over utterances and over speakers", async () => {
    const store = new ResultsStore(await tempDir());
    const random = seededRandom(3);
    await addRun(
      store,
      "fp32",
      ids.map((id) => result(id, 20, Math.floor(random() * 4))),
    );
    const [summary] = await store.summaries();
    const iv = summary!.intervals!;
    assert.ok(iv.wer.low < 100 * summary!.wer && 100 * summary!.wer < iv.wer.high, JSON.stringify(iv));
    assert.ok(iv.werBySpeaker.low <= iv.wer.high && iv.cer.high > iv.cer.low);
    assert.equal(iv.resamples, 2000);
  });
});
