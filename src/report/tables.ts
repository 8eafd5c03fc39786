/**
 * The study's tables, built from result rows alone (pure functions): T1 the configuration grid,
 * T2 main results per recipe with the study's published values beside ours, T3 the static
 * weights x activations grid, T4 model size side by side.
 */
import { RECIPES } from "../recipes/catalog.js";
import { calibrationUtterances, cleanRows, type ResultRow } from "./rows.js";

export type Cell = string | number | null;

export interface Table {
  id: string; // file stem: figures/tables/<id>.csv|md|tex
  title: string;
  columns: string[];
  rows: Cell[][];
  notes: string[]; // printed under the table (sources, caveats, the smoke stamp)
}

/**
 * Values of the paper as quoted in secondary sources (DESIGN.md): never measured here. Each is
 * keyed by the model's short name (exactly: whisper-tiny's are not whisper-tiny.en's), recipe and split.
 */
export interface PublishedValue {
  model: string;
  recipe: string;
  split: string;
  metric: "wer" | "compression" | "rtf";
  value: number;
}
export const PUBLISHED: PublishedValue[] = [
  { model: "whisper-small", recipe: "fp32", split: "test-clean", metric: "wer", value: 3.48 },
  { model: "whisper-small", recipe: "fp32", split: "test-other", metric: "wer", value: 11.88 },
  { model: "whisper-small", recipe: "quanto/w8", split: "test-clean", metric: "wer", value: 3.41 },
  { model: "whisper-small", recipe: "quanto/w8", split: "test-clean", metric: "compression", value: 57 },
  { model: "whisper-small", recipe: "pytorch/dynamic-int8", split: "test-clean", metric: "rtf", value: 0.077 },
  { model: "whisper-small", recipe: "fp32", split: "test-clean", metric: "rtf", value: 0.121 },
  { model: "whisper-base", recipe: "fp32", split: "test-other", metric: "wer", value: 12.87 },
  { model: "whisper-base", recipe: "pytorch/dynamic-int8", split: "test-other", metric: "wer", value: 14.72 },
  { model: "whisper-tiny", recipe: "fp32", split: "test-other", metric: "wer", value: 23.69 },
  { model: "whisper-tiny", recipe: "pytorch/dynamic-int8", split: "test-other", metric: "wer", value: 24.64 },
  { model: "whisper-tiny", recipe: "bnb/nf4", split: "test-other", metric: "wer", value: 32.19 },
];
export const PUBLISHED_NOTE =
  "quoted: the study's values as secondary sources quote them (DESIGN.md), not measured by this kit; the kit's own runs are the other columns";

const round = (v: number | null, digits: number): Cell => (v === null ? null : Number(v.toFixed(digits)));
const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "-");

/** "3.10-4.52": a row's 95 % bootstrap interval of its WER. */
export function werIntervalText(r: ResultRow | undefined): Cell {
  return r ? `${f2(r.werLow)}-${f2(r.werHigh)}` : null;
}

/**
 * "+1.23 (0.40, 2.10) *": the paired difference against fp32 in points with its 95 % interval; the
 * mark only where Holm's corrected p is below 0.05 (a difference inside the noise is not marked).
 */
export function versusFp32Text(r: ResultRow | undefined): Cell {
  const v = r?.versusFp32;
  if (!v) return null;
  const sign = (x: number) => (x > 0 ? `+${f2(x)}` : f2(x));
  return `${sign(v.difference)} (${f2(v.low)}, ${f2(v.high)})${v.significant ? " *" : ""}`;
}

export const SIGNIFICANCE_NOTE =
  "vs fp32: the recipe's WER minus fp32's on the same utterances, in points, with a 95 % paired bootstrap interval (2000 resamples of whole utterances, seed 1); * marks a difference whose Holm-corrected p (over every recipe of that model and split in the results store) is below 0.05. Unmarked differences are not findings.";

export function configurationTable(): Table {
  return {
    id: "T1-configuration-grid",
    title: "T1. The configuration grid: every recipe, its library, scheme, granularity, bits and execution path",
    columns: ["recipe", "library", "scheme", "granularity", "bits", "execution", "quantizes proj_out", "runs here"],
    rows: RECIPES.map((r) => [
      r.id,
      r.library,
      r.scheme,
      r.granularity,
      r.bits,
      r.execution({}),
      r.quantizesProjOut ? "yes" : "no",
      r.quantize || r.id === "fp32" ? "yes" : `no: ${r.missing}`,
    ]),
    notes: [
      "'dequantized at load': onnxruntime has no kernel for the format; the packed codes are stored and expanded to fp32 when the session loads (file size shrinks, memory does not).",
    ],
  };
}

/** The clean (noise-free, unperturbed) rows only: tables T2-T4 report clean audio. */
const clean = cleanRows;

export function mainResultsTable(rows: ResultRow[]): Table {
  const splits = [...new Set(clean(rows).map((r) => r.split))].sort();
  const groups = new Map<string, ResultRow[]>();
  for (const r of clean(rows)) {
    const k = `${r.model}\u0000${r.recipe}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const published = (model: string, recipe: string, split: string, metric: PublishedValue["metric"]) =>
    PUBLISHED.find((p) => model === p.model && p.recipe === recipe && p.split === split && p.metric === metric)?.value ?? null;
  const columns = ["model", "recipe", "execution", "parameter MB", "on-disk MB", "compression %"];
  for (const s of splits)
    columns.push(`WER % ${s}`, `WER 95 % CI ${s}`, `vs fp32, points ${s}`, `CER % ${s}`, `WER % ${s} quoted`, `utterances ${s}`, `runaway loops ${s}`);
  columns.push("RTF", "RTFx", "peak memory MB");
  const out: Cell[][] = [];
  for (const group of groups.values()) {
    const first = group[0]!;
    const row: Cell[] = [first.model, first.recipe, first.execution, round(first.parameterMB, 1), round(first.onDiskMB, 1), round(first.compression, 1)];
    for (const s of splits) {
      const r = group.find((x) => x.split === s);
      row.push(
        round(r?.wer ?? null, 2),
        werIntervalText(r),
        versusFp32Text(r),
        round(r?.cer ?? null, 2),
        published(first.model, first.recipe, s, "wer"),
        r?.utterances ?? null,
        r?.runaways ?? null,
      );
    }
    const timed = group.filter((x) => x.rtf !== null);
    const mean = (f: (x: ResultRow) => number | null) => (timed.length ? timed.reduce((a, x) => a + (f(x) ?? 0), 0) / timed.length : null);
    row.push(
      round(
        mean((x) => x.rtf),
        4,
      ),
      round(
        mean((x) => x.rtfx),
        1,
      ),
      round(Math.max(0, ...group.map((x) => x.peakRssMB ?? 0)) || null, 0),
    );
    out.push(row);
  }
  return {
    id: "T2-main-results",
    title: "T2. Main results per recipe: size, WER and CER per split, speed and memory",
    columns,
    rows: out,
    notes: [
      SIGNIFICANCE_NOTE,
      PUBLISHED_NOTE,
      "parameter MB: what the parameters take as the recipe stores them (the study's model size); on-disk MB adds the graph; compression vs the fp32 parameters.",
      "runaway loops: utterances whose greedy decoding hit the length limit (a repetition loop); one such loop can move a 100-utterance WER by several points.",
      "RTF and RTFx are this machine's, after a warm-up utterance; peak memory is the run's own resident peak.",
    ],
  };
}

export function staticGridTable(rows: ResultRow[]): Table {
  const statics = clean(rows).filter((r) => r.scheme === "static" || r.recipe === "fp32" || ["quanto/w8", "quanto/w4", "quanto/wf8"].includes(r.recipe));
  const weightsOf = (recipe: string) => (recipe === "fp32" ? "fp32" : recipe.startsWith("quanto/") ? recipe.slice(7).replace(/a.*$/, "") : recipe);
  const activationsOf = (r: ResultRow) =>
    r.recipe === "fp32" || r.scheme === "weight-only" ? "float32" : r.recipe.endsWith("af8") ? "float8" : r.recipe.endsWith("a8") ? "int8" : "-";
  return {
    id: "T3-static-grid",
    title: "T3. Optimum-Quanto's weights x activations grid (static activations calibrated on the split's first 10 %)",
    columns: [
      "model",
      "split",
      "weights",
      "activations",
      "recipe",
      "WER %",
      "WER 95 % CI",
      "vs fp32, points",
      "CER %",
      "runaway loops",
      "utterances",
      "execution",
      "calibration",
    ],
    rows: statics.map((r) => [
      r.model,
      r.split,
      weightsOf(r.recipe),
      activationsOf(r),
      r.recipe,
      round(r.wer, 2),
      werIntervalText(r),
      versusFp32Text(r),
      round(r.cer, 2),
      r.runaways,
      r.utterances,
      r.execution,
      r.calibration,
    ]),
    notes: ["activations 'float32' rows are the weight-only recipes and the baseline, for reference.", SIGNIFICANCE_NOTE],
  };
}

/** T4: each model at fp32, int8, 4-bit and 3-bit, side by side. */
export const SIZE_TABLE_RECIPES: Array<[string, string]> = [
  ["fp32", "fp32"],
  ["int8 (pytorch/dynamic-int8)", "pytorch/dynamic-int8"],
  ["int8 weights (quanto/w8)", "quanto/w8"],
  ["4-bit (hqq/4)", "hqq/4"],
  ["4-bit (bnb/nf4)", "bnb/nf4"],
  ["3-bit (hqq/3)", "hqq/3"],
];

export function modelSizeTable(rows: ResultRow[]): Table {
  const models = [...new Set(clean(rows).map((r) => r.model))].sort();
  const splits = [...new Set(clean(rows).map((r) => r.split))].sort();
  const columns = ["precision", "recipe"];
  for (const m of models) {
    columns.push(`${m} parameter MB`);
    for (const s of splits) columns.push(`${m} WER % ${s}`, `${m} vs fp32 ${s}`);
  }
  const out: Cell[][] = SIZE_TABLE_RECIPES.map(([label, recipe]) => {
    const row: Cell[] = [label, recipe];
    for (const m of models) {
      const rs = clean(rows).filter((r) => r.model === m && r.recipe === recipe);
      row.push(round(rs[0]?.parameterMB ?? null, 1));
      for (const s of splits) {
        const r = rs.find((x) => x.split === s);
        row.push(r ? `${f2(r.wer)} (${werIntervalText(r)})` : null, versusFp32Text(r));
      }
    }
    return row;
  });
  return {
    id: "T4-model-size",
    title: "T4. Model size: each Whisper at fp32, int8, 4-bit and 3-bit",
    columns,
    rows: out,
    notes: [
      "WER cells: the corpus WER and its 95 % bootstrap interval.",
      SIGNIFICANCE_NOTE,
      "empty cells: that model/recipe/split was not run in this results store.",
    ],
  };
}

/**
 * T11: each recipe's numerical noise floor: its run beside reruns with the input features moved at
 * float-rounding scale (`--perturb 1e-6`, a few seeds), next to its bootstrap interval. A recipe
 * whose WER moves by more than a difference between two recipes cannot be ranked against it.
 */
export function noiseFloorTable(rows: ResultRow[]): Table {
  const spread = rows.filter((r) => r.spread !== null && r.noise === null && r.perturb === null && r.runtime === "kit");
  return {
    id: "T11-noise-floor",
    title: "T11. Noise floor: WER under a 1e-6 relative perturbation of the input features, beside the bootstrap interval",
    columns: ["model", "split", "recipe", "utterances", "WER %", "WER 95 % CI", "perturbed runs", "WER % range over runs", "identical transcripts, lowest %"],
    rows: spread.map((r) => {
      const s = r.spread!;
      return [
        r.model,
        r.split,
        r.recipe,
        s.utterances,
        round(s.wer, 2),
        werIntervalText(r),
        s.perturbed.map((p) => p.perturb).join(", "),
        `${f2(s.werMin)}-${f2(s.werMax)}`,
        round(100 * s.identicalMin, 1),
      ];
    }),
    notes: [
      "perturbed runs: size:seed of `ptq eval --perturb`; each multiplies the log-mel features by (1 + size N(0, 1)), seeded per utterance.",
      "WER range: over the unperturbed run and every perturbed one, on the utterances all of them finished; identical transcripts: against the unperturbed run.",
    ],
  };
}

/** T12: static recipes' WER against the number of calibration utterances, with intervals. */
export function calibrationSizeTable(rows: ResultRow[]): Table {
  const statics = clean(rows)
    .filter((r) => calibrationUtterances(r) !== null)
    .sort(
      (a, b) =>
        a.model.localeCompare(b.model) ||
        a.split.localeCompare(b.split) ||
        a.recipe.localeCompare(b.recipe) ||
        calibrationUtterances(a)! - calibrationUtterances(b)!,
    );
  return {
    id: "T12-calibration-size",
    title: "T12. Static recipes against the number of calibration utterances (the first N of the split's 10 %)",
    columns: ["model", "split", "recipe", "calibration utterances", "WER %", "WER 95 % CI", "vs fp32, points", "runaway loops", "utterances"],
    rows: statics.map((r) => [
      r.model,
      r.split,
      r.recipe,
      calibrationUtterances(r),
      round(r.wer, 2),
      werIntervalText(r),
      versusFp32Text(r),
      r.runaways,
      r.utterances,
    ]),
    notes: [SIGNIFICANCE_NOTE, "calibration utterances come from the split's calibration part, which is never evaluated."],
  };
}

/** T5: each scheme's reconstruction error on one weight [rows, cols]. */
export function schemeErrorTable(
  layer: string,
  shape: [number, number],
  errors: ReadonlyArray<{ scheme: string; bits: number; granularity: string; relativeRmse: number; maxAbsError: number }>,
): Table {
  return {
    id: "T5-scheme-errors",
    title: `T5. Quantization error of each scheme on ${layer} [${shape[0]}, ${shape[1]}]`,
    columns: ["scheme", "bits", "granularity", "relative RMS error %", "max |error|"],
    rows: errors.map((e) => [e.scheme, e.bits, e.granularity, round(100 * e.relativeRmse, 3), Number(e.maxAbsError.toExponential(3))]),
    notes: ["relative RMS error: ||dequantized - original|| / ||original||, over every element"],
  };
}

/** T10 (chapter 09): fp32, a recipe everywhere, and the same recipe with one block kept in fp32, with intervals and paired differences. */
export function mixedPrecisionTable(fp32: ResultRow, everywhere: ResultRow, mixed: ResultRow, block: string, split: string): Table {
  const line = (label: string, r: ResultRow): Cell[] => [
    label,
    round(r.wer, 2),
    werIntervalText(r),
    versusFp32Text(r),
    round(r.parameterMB, 1),
    r.utterances,
    r.runaways,
  ];
  return {
    id: "T10-mixed-precision",
    title: `T10. Mixed precision: ${everywhere.recipe} everywhere vs ${everywhere.recipe} with ${block} kept in fp32 (${split})`,
    columns: ["recipe", "WER %", "WER 95 % CI", "vs fp32, points", "parameter MB", "utterances", "runaway loops"],
    rows: [line("fp32", fp32), line(`${everywhere.recipe} everywhere`, everywhere), line(`${everywhere.recipe} except ${block}`, mixed)],
    notes: ["the block kept in fp32 is the one whose quantization alone raised WER most (F6)", SIGNIFICANCE_NOTE],
  };
}
