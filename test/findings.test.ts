/**
 * Uncertainty in the report, from results stores written by hand: intervals on every row, the
 * paired difference against fp32 (a planted difference found, an equal recipe left unmarked), the
 * tables' and F8's marks, the noise floor (T11) from perturbed reruns, static calibration sizes
 * (T12), the chapters' computed sentences, grid files that ask for perturbed reruns, and how a
 * run names its model in the store.
 */
import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { readGrid, storeModelName } from "../src/eval/jobs.js";
import type { RunSummary, UtteranceResult } from "../src/eval/results-store.js";
import { calibrationSizeFigure, pairedDifferenceFigure, sensitivityFigure, werVsSnrFigure } from "../src/report/figures.js";
import { beyondStudyFindings, calibrationFindings, chapterFindings, claimFindings } from "../src/report/findings.js";
import { loadResultRows } from "../src/report/rows.js";
import { calibrationSizeTable, mainResultsTable, noiseFloorTable } from "../src/report/tables.js";
import { KitError } from "../src/util/errors.js";
import { repoRoot } from "../src/util/fs.js";
import { tempDir } from "./support/env.js";

function utterance(id: string, errors: number, words: number, hypothesis = ""): UtteranceResult {
  return {
    id,
    hypothesis,
    hypothesisNormalized: hypothesis,
    referenceNormalized: "",
    audioSeconds: 5,
    tokens: 20,
    seconds: 1,
    wordErrors: [],
    words: { hits: words - errors, substitutions: errors, deletions: 0, insertions: 0, referenceLength: words },
    chars: { hits: 0, substitutions: 0, deletions: 0, insertions: 0, referenceLength: 1 },
  } as UtteranceResult;
}

interface Run {
  key: string;
  recipe: string;
  utterances: UtteranceResult[];
  conditions?: Record<string, string>;
  calibration?: string;
  parameterMB?: number;
}

async function writeStore(runs: Run[]): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, "runs"), { recursive: true });
  const summaries = runs.map((run) => {
    const errors = run.utterances.reduce((a, r) => a + r.words.substitutions, 0);
    const words = run.utterances.reduce((a, r) => a + r.words.referenceLength, 0);
    return {
      key: run.key,
      wer: errors / words,
      cer: 0.01,
      words: run.utterances[0]!.words,
      chars: run.utterances[0]!.chars,
      audioSeconds: 5 * run.utterances.length,
      finishedAt: "2026-12-02",
      spec: {
        model: { name: "data/models/whisper-tiny.en", weightsSha256: "x" },
        recipe: { id: run.recipe, options: run.calibration ? { calibration: run.calibration } : {} },
        split: "test-other",
        decoding: {},
        conditions: run.conditions ?? {},
        kitVersion: "t",
        utterances: run.utterances.length,
        utteranceIdsSha256: "y",
      },
      size: {
        files: {},
        onDiskBytes: (run.parameterMB ?? 150) * 1e6,
        parameterBytes: (run.parameterMB ?? 150) * 1e6,
        fp32ParameterBytes: 150e6,
        compression: 1 - (run.parameterMB ?? 150) / 150,
        quantizeSeconds: 1,
        dequantizedAtLoad: false,
      },
      timing: {},
    } as unknown as RunSummary;
  });
  await writeFile(join(dir, "results.jsonl"), `${summaries.map((s) => JSON.stringify(s)).join("\n")}\n`);
  for (const run of runs) await writeFile(join(dir, "runs", `${run.key}.jsonl`), `${run.utterances.map((r) => JSON.stringify(r)).join("\n")}\n`);
  return dir;
}

/** fp32 with 1-3 errors in 20 words per utterance; a recipe planted 8 errors worse on every tenth utterance; one equal to fp32. */
function baseRuns(n = 60): Run[] {
  const fp32 = Array.from({ length: n }, (_, i) => utterance(`u${i}`, 1 + (i % 3), 20, `text ${i}`));
  const worse = fp32.map((u, i) => (i % 10 === 0 ? utterance(u.id, u.words.substitutions + 8, 20, `worse ${i}`) : u));
  const equal = fp32.map((u, i) => (i % 7 === 0 ? utterance(u.id, u.words.substitutions + (i % 14 === 0 ? 1 : -1), 20, `moved ${i}`) : u));
  return [
    { key: "fp32", recipe: "fp32", utterances: fp32 },
    { key: "w4", recipe: "hqq/4", utterances: worse, parameterMB: 30 },
    { key: "w8", recipe: "quanto/w8", utterances: equal, parameterMB: 40 },
  ];
}

describe("uncertainty in the report", () => {
  it("every row carries its interval and its paired difference; the planted one is found, the equal one is not", async () => {
    const rows = await loadResultRows(await writeStore(baseRuns()));
    for (const r of rows) assert.ok(r.werLow <= r.wer && r.wer <= r.werHigh && r.werHigh > r.werLow, `${r.recipe}: ${r.werLow} ${r.wer} ${r.werHigh}`);
    const hqq = rows.find((r) => r.recipe === "hqq/4")!;
    const w8 = rows.find((r) => r.recipe === "quanto/w8")!;
    assert.equal(rows.find((r) => r.recipe === "fp32")!.versusFp32, null);
    assert.ok(hqq.versusFp32!.significant && hqq.versusFp32!.low > 0, JSON.stringify(hqq.versusFp32));
    assert.ok(Math.abs(hqq.versusFp32!.difference - (6 * 8 * 100) / 1200) < 1e-9, "48 planted errors in 1200 words: 4 points");
    assert.ok(!w8.versusFp32!.significant && w8.versusFp32!.low <= 0 && w8.versusFp32!.high >= 0, JSON.stringify(w8.versusFp32));

    const t2 = mainResultsTable(rows);
    const col = t2.columns.indexOf("vs fp32, points test-other");
    const ci = t2.columns.indexOf("WER 95 % CI test-other");
    assert.match(String(t2.rows.find((r) => r[1] === "hqq/4")![col]), /^\+4\.00 \(\d+\.\d\d, \d+\.\d\d\) \*$/);
    assert.doesNotMatch(String(t2.rows.find((r) => r[1] === "quanto/w8")![col]), /\*/);
    assert.match(String(t2.rows.find((r) => r[1] === "fp32")![ci]), /^\d+\.\d\d-\d+\.\d\d$/);
    assert.ok(t2.notes.some((n) => n.includes("Holm")));

    const f8 = pairedDifferenceFigure(rows, null);
    const filled = f8.data.find((d) => String(d.name).startsWith("differs from fp32"))!;
    const hollow = f8.data.find((d) => String(d.name).startsWith("not significant"))!;
    assert.deepEqual(filled.y, ["hqq/4"]);
    assert.deepEqual(hollow.y, ["quanto/w8"]);
    const bars = filled.error_x as { array: number[]; arrayminus: number[] };
    assert.ok(bars.array[0]! > 0 && bars.arrayminus[0]! > 0, "error bars drawn on both sides");
    assert.match((f8.layout.xaxis as { title: { text: string } }).title.text, /\(percentage points\)/);
  });

  it("a finding carried by runaway loops says so, with the difference without them", async () => {
    const runs = baseRuns();
    const loops = (n: number) => runs[0]!.utterances.map((u, i) => (i < n ? { ...utterance(u.id, 200, 20, "la la la"), tokens: 448 } : u));
    const rows = await loadResultRows(
      await writeStore([...runs, { key: "nf4", recipe: "bnb/nf4", utterances: loops(8) }, { key: "fp4", recipe: "bnb/fp4", utterances: loops(1) }]),
    );
    const text = chapterFindings(rows);
    assert.match(
      text,
      /Worse[^\n]*bnb\/nf4 \+[\d.]+ points \(95 % CI [^)]*, 60 utterances\) \(8 utterances with a runaway loop; without them 0\.00, 95 % CI 0\.00 to 0\.00, 52 utterances\)/,
    );
    assert.match(
      text,
      /Not distinguishable[^\n]*bnb\/fp4 \+[\d.]+ \(1 utterance with a runaway loop; without it 0\.00/,
      "one loop in 60: not a finding, and said why the number is large",
    );
    assert.doesNotMatch(text, /hqq\/4 [^;]*runaway/, "no loops, no note");
  });

  it("F8 labels a run paired on fewer utterances than the rest of its panel with its count", async () => {
    const runs = baseRuns();
    const loops = runs[1]!.utterances.slice(0, 20).map((u) => utterance(u.id, u.words.substitutions + 15, 20, `loop ${u.id}`));
    const rows = await loadResultRows(await writeStore([...runs, { key: "w3", recipe: "hqq/3", utterances: loops }]));
    const labels = pairedDifferenceFigure(rows, null).data.flatMap((d) => (d.y as string[]) ?? []);
    assert.ok(labels.includes("hqq/3, 20 utt."), JSON.stringify(labels));
    assert.ok(labels.includes("hqq/4") && labels.includes("quanto/w8"), "runs on the usual count keep their plain label");
  });

  it("a chapter names what differs beyond the noise, what does not, the best trade-off, and the study's claims", async () => {
    const rows = await loadResultRows(await writeStore(baseRuns()));
    const text = chapterFindings(rows);
    assert.match(text, /Worse than fp32 beyond the noise: hqq\/4 \+4\.00 points \(95 % CI [\d.]+ to [\d.]+, 60 utterances\)/);
    assert.match(text, /Not distinguishable from fp32[^:]*: quanto\/w8/);
    assert.match(text, /Best size trade-off here: quanto\/w8, 40\.0 MB/, "hqq/4 is smaller but significantly worse");
    assert.doesNotMatch(text, /too few/);
    assert.match(
      claimFindings(rows),
      /Quanto int8 weights improve on fp32[^\n]*not shown here \(inside the noise\): quanto\/w8 is not distinguishable from fp32/,
    );
    const few = chapterFindings(await loadResultRows(await writeStore(baseRuns(10))));
    assert.match(few, /too few to tell/);
  });

  it("chapter 09 says whether noise widens a gap, which blocks matter, and what mixed precision buys, with intervals", async () => {
    const runs = baseRuns();
    const fp32 = runs[0]!.utterances;
    const plant = (every: number, extra: number, tag: string) =>
      fp32.map((u, i) => (i % every === 0 ? utterance(u.id, u.words.substitutions + extra, 20, `${tag} ${i}`) : u));
    const noisyFp32 = fp32.map((u) => utterance(u.id, u.words.substitutions + 2, 20, `noisy ${u.id}`));
    const noisyNf4 = noisyFp32.map((u, i) => (i % 2 === 0 ? utterance(u.id, u.words.substitutions + 6, 20, `worse ${i}`) : u));
    runs.push(
      { key: "nf4", recipe: "bnb/nf4", utterances: plant(7, 1, "nf4") },
      { key: "fp32n", recipe: "fp32", utterances: noisyFp32, conditions: { noise: "white:5" } },
      { key: "nf4n", recipe: "bnb/nf4", utterances: noisyNf4, conditions: { noise: "white:5" } },
      { key: "blk0", recipe: "hqq/3", utterances: plant(5, 8, "b0") },
      { key: "blk1", recipe: "hqq/3", utterances: fp32 },
      { key: "all", recipe: "hqq/3", utterances: plant(2, 10, "all"), parameterMB: 20 },
      { key: "mix", recipe: "hqq/3", utterances: plant(5, 8, "mix"), parameterMB: 25 },
    );
    const rows = await loadResultRows(await writeStore(runs));
    const byKey = (k: string) => rows.find((r) => r.key === k)!;
    const clean = rows.filter((r) => ["fp32", "nf4"].includes(r.key));
    const noisy = rows.filter((r) => r.noise !== null);
    const sensitivity = [
      { block: "model.encoder.layers.0", row: byKey("blk0") },
      { block: "model.decoder.layers.0", row: byKey("blk1") },
    ];
    const text = beyondStudyFindings({ clean, noisy, sensitivity, everywhere: byKey("all"), mixed: byKey("mix"), mixedBlock: "model.encoder.layers.0" });
    assert.match(text, /fp32 goes from 10\.00 % \(95 % CI [\d.]+-[\d.]+\) on clean audio to 20\.00 %/);
    assert.match(
      text,
      /bnb\/nf4 against fp32: clean [+-][\d.]+ points[^;]*; at 5 dB \+15\.00 points[^;]*; the intervals are apart: the gap widens under noise here/,
    );
    assert.match(text, /beyond the noise: model\.encoder\.layers\.0 \+8\.00 points \(95 % CI/);
    assert.match(text, /The other block is inside the noise/);
    assert.match(text, /hqq\/3 everywhere \+25\.00 points.*20\.0 MB; with model\.encoder\.layers\.0 in fp32 \+8\.00 points.*the intervals are apart/);
    assert.doesNotMatch(text, /too few/);

    const f6 = sensitivityFigure(sensitivity, "hqq/3", null);
    const marker = f6.data[0]!.marker as { color: string[] };
    assert.deepEqual(marker.color, ["#1f77b4", "white"], "the significant encoder block filled, the decoder block hollow");
    const bars = f6.data[0]!.error_y as { array: number[]; arrayminus: number[] };
    assert.ok(bars.array[0]! > 0 && bars.arrayminus[0]! > 0);
    assert.match((f6.layout.yaxis as { title: { text: string } }).title.text, /percentage points/);
    const f5 = werVsSnrFigure([...clean, ...noisy], null);
    assert.ok(
      f5.data.every((d) => (d.error_y as { array: number[] }).array.every((v) => v >= 0)),
      "every point of F5 has its interval",
    );

    const few = beyondStudyFindings({ clean: [], noisy: [], sensitivity: [{ block: "b", row: (await loadResultRows(await writeStore(baseRuns(10))))[1]! }] });
    assert.match(few, /too few to tell/);
  });

  it("T11 sets each recipe's WER under input perturbation beside its interval", async () => {
    const runs = baseRuns();
    const hqq = runs[1]!.utterances;
    const perturbed = hqq.map((u, i) => (i < 6 ? utterance(u.id, u.words.substitutions + 2, 20, `other ${i}`) : u));
    runs.push({ key: "w4p1", recipe: "hqq/4", utterances: perturbed, conditions: { perturb: "0.000001:1" } });
    runs.push({ key: "w4p2", recipe: "hqq/4", utterances: hqq, conditions: { perturb: "0.000001:2" } });
    const rows = await loadResultRows(await writeStore(runs));
    const t11 = noiseFloorTable(rows);
    assert.equal(t11.rows.length, 1, "only the recipe with perturbed reruns");
    const [model, split, recipe, n, wer, , seeds, range, identical] = t11.rows[0]!;
    assert.deepEqual([model, split, recipe, n, seeds], ["whisper-tiny.en", "test-other", "hqq/4", 60, "0.000001:1, 0.000001:2"]);
    assert.equal(wer, 14, "(120 + 48) errors in 1200 words");
    assert.equal(range, "14.00-15.00", "12 more errors in 1200 words");
    assert.equal(identical, 90, "6 of 60 transcripts moved");
    assert.equal(mainResultsTable(rows).rows.length, 3, "perturbed runs stay out of T2");
  });

  it("T12 and F9 order static runs by their calibration size", async () => {
    const runs = baseRuns();
    for (const n of [10, 2, 5])
      runs.push({ key: `s${n}`, recipe: "quanto/w8a8", utterances: runs[0]!.utterances, calibration: `test-other calibration part: ${n} utterances, a .. b` });
    const rows = await loadResultRows(await writeStore(runs));
    const t12 = calibrationSizeTable(rows);
    assert.deepEqual(
      t12.rows.map((r) => r[3]),
      [2, 5, 10],
    );
    const f9 = calibrationSizeFigure(rows, null);
    assert.deepEqual(f9.data[0]!.x, [2, 5, 10]);
    assert.ok((f9.data[0]!.error_y as { array: number[] }).array.every((v) => v >= 0));
  });

  it("chapter 04's calibration text says whether the smallest and largest calibration sizes are apart", async () => {
    const runs = baseRuns();
    const fp32 = runs[0]!.utterances;
    const worse = fp32.map((u) => utterance(u.id, u.words.substitutions + 6, 20, `bad ${u.id}`));
    const source = (n: number) => `test-other calibration part: ${n} utterances, a .. b`;
    runs.push({ key: "a2", recipe: "quanto/w8a8", utterances: worse, calibration: source(2) });
    runs.push({ key: "a10", recipe: "quanto/w8a8", utterances: fp32, calibration: source(10) });
    runs.push({ key: "b2", recipe: "pytorch/static-int8", utterances: worse, calibration: source(2) });
    runs.push({ key: "b10", recipe: "pytorch/static-int8", utterances: worse.map((u, i) => (i === 0 ? fp32[0]! : u)), calibration: source(10) });
    const text = calibrationFindings(await loadResultRows(await writeStore(runs)));
    assert.match(
      text,
      /quanto\/w8a8 [^\n]*2 calibration utterances [\d.]+ %[^\n]*10 calibration utterances[^\n]*are apart: more calibration utterances lower WER here/,
    );
    assert.match(text, /pytorch\/static-int8 [^\n]*overlap: this run shows no effect of the calibration size/);
    assert.match(calibrationFindings((await loadResultRows(await writeStore(baseRuns()))).slice()), /No static recipe was calibrated/);
  });

  it("a grid file asks for perturbed reruns; a malformed one is refused naming the field", async () => {
    const dir = await tempDir();
    const good = join(dir, "grid.json");
    await writeFile(good, JSON.stringify({ models: ["m"], recipes: ["fp32"], splits: ["test-other"], perturb: ["1e-6:1", "1e-6:2"] }));
    const jobs = await readGrid(good);
    assert.deepEqual(
      jobs.map((j) => j.perturb ?? null),
      [null, { size: 1e-6, seed: 1 }, { size: 1e-6, seed: 2 }],
    );
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ models: ["m"], splits: ["test-other"], perturb: ["1e-6:x"] }));
    await assert.rejects(readGrid(bad), (e: unknown) => e instanceof KitError && e.field === "perturb" && e.message.includes("1e-6:x"));
  });
});

describe("run keys across checkouts", () => {
  it("a model folder inside the checkout is named by its path from the root, from anywhere; others as given", async () => {
    const inside = join(repoRoot(), "data", "keys-test-model");
    await mkdir(inside, { recursive: true });
    await writeFile(join(inside, "config.json"), "{}");
    try {
      assert.equal(storeModelName(inside), join("data", "keys-test-model"));
      assert.equal(storeModelName(relative(process.cwd(), inside)), join("data", "keys-test-model"));
      const outside = await tempDir();
      await writeFile(join(outside, "config.json"), "{}");
      assert.equal(storeModelName(outside), outside);
      assert.equal(storeModelName("openai/whisper-small"), "openai/whisper-small");
    } finally {
      await rm(inside, { recursive: true, force: true });
    }
  });
});
