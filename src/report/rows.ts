/**
 * The results store, flattened for reporting: one row per finished run, with what the catalog says
 * of its recipe. Reads only the store's files (results.jsonl and runs/*.jsonl), so a store made on
 * another machine, or merged from shards, renders the same way.
 */
import { werInterval } from "../eval/bootstrap.js";
import {
  calibrationCount,
  compareLoadedRuns,
  loadRuns,
  perturbationSpreads,
  RUNAWAY_TOKENS,
  shortModelName,
  type PerturbationSpread,
} from "../eval/compare.js";
import type { UtteranceResult } from "../eval/results-store.js";
import { RECIPES } from "../recipes/catalog.js";

export { RUNAWAY_TOKENS, shortModelName };

/** A recipe's paired WER difference against fp32 on the same utterances (points), Holm-corrected within its model and split. */
export interface VersusBaseline {
  difference: number;
  low: number;
  high: number;
  pHolm: number;
  significant: boolean;
  utterances: number;
  withoutRunaways: { utterances: number; difference: number; low: number; high: number };
}

export interface ResultRow {
  key: string;
  model: string; // short name (last path component)
  recipe: string;
  library: string;
  scheme: string;
  bits: string;
  execution: string; // the recipe's execution path, "+ dequantized at load" where some tensors are
  split: string;
  noiseSnrDb: number | null; // null: clean audio
  noise: string | null;
  perturb: string | null; // "size:seed" when the input features were perturbed
  runtime: string; // "kit", or "transformers.js" for a run of the recipe's export
  utterances: number;
  wer: number; // percent
  werLow: number; // 95 % bootstrap interval over utterances, percent
  werHigh: number;
  versusFp32: VersusBaseline | null; // null for fp32 itself, or when no fp32 run shares the utterances
  spread: PerturbationSpread | null; // the same recipe under input perturbation, where the store has it
  cer: number; // percent
  werWithoutRunaways: number | null; // percent; null when every utterance ran away
  runaways: number;
  parameterMB: number | null;
  onDiskMB: number | null;
  compression: number | null; // percent
  rtf: number | null;
  rtfx: number | null;
  peakRssMB: number | null;
  quantizeSeconds: number | null;
  calibration: string | null;
}

const num = (v: unknown): number | null =>
  typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && v !== "" && Number.isFinite(Number(v)) ? Number(v) : null;

/** The runs the study's tables and figures show: clean audio, unperturbed, on the kit's runtime. */
export const cleanRows = <T extends Pick<ResultRow, "noise" | "perturb" | "runtime">>(rows: readonly T[]): T[] =>
  rows.filter((r) => r.noise === null && r.perturb === null && r.runtime === "kit");

/** The number of calibration utterances a static run's source names ("...: 10 utterances, ..."). */
export function calibrationUtterances(r: ResultRow): number | null {
  return calibrationCount(r.calibration);
}

/** One row per run key (the latest summary wins: a rerun with --force replaces the earlier one). */
export async function loadResultRows(storeDir: string): Promise<ResultRow[]> {
  const runs = await loadRuns(storeDir);
  const versus = new Map(compareLoadedRuns(runs).map((c) => [c.key, c]));
  const spreads = new Map(perturbationSpreads(runs).map((p) => [p.key, p]));
  const rows: ResultRow[] = [];
  for (const { summary: s, records: byId } of runs) {
    const records = [...byId.values()];
    const kept = records.filter((r) => r.tokens < RUNAWAY_TOKENS);
    const errors = (rs: UtteranceResult[]) => rs.reduce((a, r) => a + r.words.substitutions + r.words.deletions + r.words.insertions, 0);
    const refWords = kept.reduce((a, r) => a + r.words.referenceLength, 0);
    const interval = s.intervals?.wer ?? werInterval(records.map((r) => ({ errors: errors([r]), words: r.words.referenceLength })));
    const c = versus.get(s.key);
    const recipe = RECIPES.find((r) => r.id === s.spec.recipe.id);
    const noise = typeof s.spec.conditions.noise === "string" ? s.spec.conditions.noise : null;
    const execution = recipe ? recipe.execution(s.spec.recipe.options) : "?";
    rows.push({
      key: s.key,
      model: shortModelName(s.spec.model.name),
      recipe: s.spec.recipe.id,
      library: recipe?.library ?? "?",
      scheme: recipe?.scheme ?? "?",
      bits: recipe?.bits ?? "?",
      execution: s.size?.dequantizedAtLoad && execution !== "dequantized at load" ? `${execution} + dequantized at load` : execution,
      split: s.spec.split,
      noise,
      noiseSnrDb: noise ? Number(noise.split(":")[1]) : null,
      perturb: typeof s.spec.conditions.perturb === "string" ? s.spec.conditions.perturb : null,
      runtime: typeof s.spec.conditions.runtime === "string" ? s.spec.conditions.runtime : "kit",
      utterances: s.spec.utterances,
      wer: 100 * s.wer,
      werLow: interval.low,
      werHigh: interval.high,
      versusFp32: c
        ? {
            difference: c.difference,
            low: c.low,
            high: c.high,
            pHolm: c.pHolm,
            significant: c.significant,
            utterances: c.utterances,
            withoutRunaways: { ...c.withoutRunaways },
          }
        : null,
      spread: spreads.get(s.key) ?? null,
      cer: 100 * s.cer,
      werWithoutRunaways: refWords > 0 ? (100 * errors(kept)) / refWords : null,
      runaways: records.length - kept.length,
      parameterMB: s.size ? s.size.parameterBytes / 1e6 : null,
      onDiskMB: s.size ? s.size.onDiskBytes / 1e6 : null,
      compression: s.size ? 100 * s.size.compression : null,
      rtf: num(s.timing.rtf),
      rtfx: num(s.timing.rtfx),
      peakRssMB: num(s.timing.peakRssMB),
      quantizeSeconds: s.size ? s.size.quantizeSeconds : null,
      calibration: typeof s.spec.recipe.options.calibration === "string" ? s.spec.recipe.options.calibration : null,
    });
  }
  const order = new Map(RECIPES.map((r, i) => [r.id, i]));
  return rows.sort(
    (a, b) =>
      a.model.localeCompare(b.model) ||
      (order.get(a.recipe) ?? 99) - (order.get(b.recipe) ?? 99) ||
      a.split.localeCompare(b.split) ||
      (a.noiseSnrDb ?? 1e9) - (b.noiseSnrDb ?? 1e9),
  );
}
