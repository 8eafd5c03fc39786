/**
 * Paired comparisons in a results store: each recipe against a baseline (fp32) on the same model,
 * split, conditions and utterances, with a paired bootstrap interval of the WER difference, its
 * p-value, Holm's correction across the recipes of one table, and the same without the utterances
 * on which either run hit the length limit (a runaway loop can move a WER by tens of points).
 * Also each recipe's spread under input perturbation (`--perturb`): its numerical noise floor.
 */
import { join } from "node:path";
import { holm, pairedWerDifference, werInterval, type UtteranceCounts } from "./bootstrap.js";
import { readJsonl, type RunSummary, type UtteranceResult } from "./results-store.js";

/** Tokens at which an utterance counts as a runaway loop (448 is the decoding limit). */
export const RUNAWAY_TOKENS = 440;

export interface Comparison {
  key: string; // the recipe's run
  model: string;
  split: string;
  conditions: string; // "" for clean audio
  recipe: string;
  calibrationUtterances: number | null; // static recipes: how many utterances calibrated this run
  baseline: string;
  utterances: number;
  wer: number; // percent
  werLow: number;
  werHigh: number;
  baselineWer: number;
  difference: number; // recipe - baseline, points
  low: number;
  high: number;
  p: number;
  pHolm: number; // within this model, split and conditions
  significant: boolean; // pHolm < 0.05
  runaways: number;
  baselineRunaways: number;
  identical: number; // utterances whose transcript is the baseline's, character for character
  withoutRunaways: { utterances: number; difference: number; low: number; high: number; p: number };
}

export interface CompareOptions {
  /** "recipe" (default): each recipe against `baseline` under the same conditions; "runtime": each run on another runtime against the kit's run of the same recipe. */
  across?: "recipe" | "runtime";
  baseline?: string; // "fp32"
  model?: string; // short name or path; all when absent
  split?: string;
  seed?: number;
  resamples?: number;
}

/** A model's short name: the last component of its hub id or folder. */
export function shortModelName(name: string): string {
  return name.replace(/\/+$/, "").split("/").pop() ?? name;
}
const counts = (r: UtteranceResult): UtteranceCounts => ({
  errors: r.words.substitutions + r.words.deletions + r.words.insertions,
  words: r.words.referenceLength,
});

export interface LoadedRun {
  summary: RunSummary;
  records: Map<string, UtteranceResult>;
}

/** Every run of a store (the latest summary per key) with its utterances. */
export async function loadRuns(storeDir: string): Promise<LoadedRun[]> {
  const latest = new Map<string, RunSummary>();
  for (const s of (await readJsonl<RunSummary>(join(storeDir, "results.jsonl"))).records) latest.set(s.key, s);
  const runs: LoadedRun[] = [];
  for (const summary of latest.values()) {
    const records = (await readJsonl<UtteranceResult>(join(storeDir, "runs", `${summary.key}.jsonl`))).records;
    runs.push({ summary, records: new Map(records.map((r) => [r.id, r])) });
  }
  return runs;
}

/** Every recipe against the baseline, per model, split and conditions; Holm within each group. */
export async function compareRuns(storeDir: string, options: CompareOptions = {}): Promise<Comparison[]> {
  return compareLoadedRuns(await loadRuns(storeDir), options);
}

/**
 * The baseline run to pair with: the one sharing most of the run's utterances, then the larger
 * (a store can hold fp32 at 300 and at 100 utterances; a recipe on 300 must not be paired on 100).
 */
function closestBaseline(run: LoadedRun, bases: readonly LoadedRun[]): LoadedRun {
  const shared = (b: LoadedRun) => [...run.records.keys()].filter((id) => b.records.has(id)).length;
  return bases.map((b) => ({ b, n: shared(b) })).reduce((best, c) => (c.n > best.n || (c.n === best.n && c.b.records.size > best.b.records.size) ? c : best)).b;
}

export function compareLoadedRuns(all: readonly LoadedRun[], options: CompareOptions = {}): Comparison[] {
  const baseline = options.baseline ?? "fp32";
  const bootstrap = { seed: options.seed ?? 1, resamples: options.resamples ?? 2000 };
  const runs = all.filter(
    (r) =>
      (!options.model || shortModelName(r.summary.spec.model.name) === shortModelName(options.model)) &&
      (!options.split || r.summary.spec.split === options.split),
  );
  const byRuntime = options.across === "runtime";
  const withoutRuntime = (c: Record<string, unknown>) => Object.fromEntries(Object.entries(c).filter(([k]) => k !== "runtime"));
  const groupOf = (r: LoadedRun) => {
    const s = r.summary.spec;
    return JSON.stringify(
      byRuntime ? [shortModelName(s.model.name), s.split, s.recipe, withoutRuntime(s.conditions)] : [shortModelName(s.model.name), s.split, s.conditions],
    );
  };
  const groups = new Map<string, LoadedRun[]>();
  for (const r of runs) groups.set(groupOf(r), [...(groups.get(groupOf(r)) ?? []), r]);
  const out: Comparison[] = [];
  for (const members of groups.values()) {
    const bases = members.filter((r) => (byRuntime ? r.summary.spec.conditions.runtime === undefined : r.summary.spec.recipe.id === baseline));
    if (bases.length === 0) continue;
    const rows: Comparison[] = [];
    for (const run of members) {
      if (bases.includes(run)) continue;
      const base = closestBaseline(run, bases);
      const ids = [...run.records.keys()].filter((id) => base.records.has(id));
      if (ids.length === 0) continue;
      const a = ids.map((id) => counts(run.records.get(id)!));
      const b = ids.map((id) => counts(base.records.get(id)!));
      const d = pairedWerDifference(a, b, bootstrap);
      const calm = ids.filter((id) => run.records.get(id)!.tokens < RUNAWAY_TOKENS && base.records.get(id)!.tokens < RUNAWAY_TOKENS);
      const dCalm = calm.length
        ? pairedWerDifference(
            calm.map((id) => counts(run.records.get(id)!)),
            calm.map((id) => counts(base.records.get(id)!)),
            bootstrap,
          )
        : { estimate: Number.NaN, low: Number.NaN, high: Number.NaN, p: Number.NaN };
      const w = werInterval(a, bootstrap);
      const s = run.summary.spec;
      rows.push({
        key: run.summary.key,
        model: shortModelName(s.model.name),
        split: s.split,
        conditions: Object.entries(s.conditions)
          .map(([k, v]) => `${k}=${v}`)
          .join(","),
        recipe: s.recipe.id,
        calibrationUtterances: calibrationCount(s.recipe.options.calibration),
        baseline: byRuntime ? "kit runtime" : baseline,
        utterances: ids.length,
        wer: w.estimate,
        werLow: w.low,
        werHigh: w.high,
        baselineWer: werInterval(b, bootstrap).estimate,
        difference: d.estimate,
        low: d.low,
        high: d.high,
        p: d.p,
        pHolm: Number.NaN,
        significant: false,
        runaways: ids.filter((id) => run.records.get(id)!.tokens >= RUNAWAY_TOKENS).length,
        baselineRunaways: ids.filter((id) => base.records.get(id)!.tokens >= RUNAWAY_TOKENS).length,
        identical: ids.filter((id) => run.records.get(id)!.hypothesis === base.records.get(id)!.hypothesis).length,
        withoutRunaways: { utterances: calm.length, difference: dCalm.estimate, low: dCalm.low, high: dCalm.high, p: dCalm.p },
      });
    }
    const adjusted = holm(rows.map((r) => r.p));
    rows.forEach((r, i) => {
      r.pHolm = adjusted[i]!;
      r.significant = r.pHolm < 0.05;
    });
    out.push(...rows.sort((x, y) => x.difference - y.difference));
  }
  return out;
}

/** The count in a calibration source ("test-other calibration part: 10 utterances, ..."); null when none. */
export function calibrationCount(source: unknown): number | null {
  const m = typeof source === "string" ? source.match(/: (\d+) utterances/) : null;
  return m ? Number(m[1]) : null;
}

/** The recipe as a table names it: a static run says how many utterances calibrated it, so two calibrations never read as one recipe twice. */
export const recipeLabel = (r: Pick<Comparison, "recipe" | "calibrationUtterances">): string =>
  r.calibrationUtterances === null ? r.recipe : `${r.recipe} (calibrated on ${r.calibrationUtterances})`;

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");
const pText = (p: number) => (!Number.isFinite(p) ? "-" : p < 0.001 ? "< 0.001" : p.toFixed(3));

/** The comparison as a markdown table; a difference is marked only when Holm's p is below 0.05. */
export function comparisonMarkdown(rows: readonly Comparison[]): string {
  const lines = [
    "| model | split | conditions | recipe | utterances | WER % (95 % CI) | baseline WER % | difference, points (95 % CI) | p (Holm) | runaways (recipe / baseline) | difference without runaways | identical transcripts |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const mark = r.significant ? (r.difference > 0 ? " worse" : " better") : "";
    const calm = r.withoutRunaways;
    lines.push(
      `| ${r.model} | ${r.split} | ${r.conditions || "clean"} | ${recipeLabel(r)} | ${r.utterances} | ${f2(r.wer)} (${f2(r.werLow)}-${f2(r.werHigh)}) | ${f2(r.baselineWer)} | ${f2(r.difference)} (${f2(r.low)}, ${f2(r.high)})${mark} | ${pText(r.pHolm)} | ${r.runaways} / ${r.baselineRunaways} | ${f2(calm.difference)} (${f2(calm.low)}, ${f2(calm.high)}) on ${calm.utterances} | ${r.identical} |`,
    );
  }
  return lines.join("\n");
}

export interface PerturbationSpread {
  key: string; // the unperturbed run
  model: string;
  split: string;
  recipe: string;
  utterances: number; // those every run of the group finished
  wer: number; // the unperturbed run's, percent, on those utterances
  /** Per perturbed run ("1e-06:1" = size:seed): its WER and the share of transcripts identical to the unperturbed run's. */
  perturbed: Array<{ perturb: string; wer: number; identical: number }>;
  werMin: number; // over the unperturbed and every perturbed run
  werMax: number;
  identicalMin: number; // the lowest share of identical transcripts, 0..1
}

/**
 * Each recipe's noise floor: its unperturbed run beside its runs with perturbed input features (same
 * model, split, recipe options and clean audio), on the utterances all of them finished.
 */
export function perturbationSpreads(all: readonly LoadedRun[]): PerturbationSpread[] {
  const identity = (r: LoadedRun) => {
    const s = r.summary.spec;
    const { perturb: _, ...conditions } = s.conditions;
    return JSON.stringify([shortModelName(s.model.name), s.split, s.recipe, conditions]);
  };
  const groups = new Map<string, LoadedRun[]>();
  for (const r of all) groups.set(identity(r), [...(groups.get(identity(r)) ?? []), r]);
  const out: PerturbationSpread[] = [];
  for (const members of groups.values()) {
    const base = members.find((r) => r.summary.spec.conditions.perturb === undefined);
    const perturbed = members.filter((r) => r.summary.spec.conditions.perturb !== undefined);
    if (!base || perturbed.length === 0 || Object.keys(base.summary.spec.conditions).length > 0) continue;
    const ids = [...base.records.keys()].filter((id) => perturbed.every((r) => r.records.has(id)));
    if (ids.length === 0) continue;
    const werOf = (r: LoadedRun) => {
      const c = ids.map((id) => counts(r.records.get(id)!));
      const words = c.reduce((a, u) => a + u.words, 0);
      return words ? (100 * c.reduce((a, u) => a + u.errors, 0)) / words : 0;
    };
    const runs = perturbed
      .map((r) => ({
        perturb: String(r.summary.spec.conditions.perturb),
        wer: werOf(r),
        identical: ids.filter((id) => r.records.get(id)!.hypothesis === base.records.get(id)!.hypothesis).length / ids.length,
      }))
      .sort((x, y) => x.perturb.localeCompare(y.perturb));
    const wers = [werOf(base), ...runs.map((r) => r.wer)];
    const s = base.summary.spec;
    out.push({
      key: base.summary.key,
      model: shortModelName(s.model.name),
      split: s.split,
      recipe: s.recipe.id,
      utterances: ids.length,
      wer: wers[0]!,
      perturbed: runs,
      werMin: Math.min(...wers),
      werMax: Math.max(...wers),
      identicalMin: Math.min(...runs.map((r) => r.identical)),
    });
  }
  return out;
}
