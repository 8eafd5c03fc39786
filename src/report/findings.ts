/**
 * What a run found, in sentences computed from its rows (pure functions): the closing text of each
 * chapter. Every statement carries its numbers and utterance counts; a difference is called a
 * finding only where its Holm-corrected paired test says so, and a plain "too few to tell" is
 * written where the intervals are too wide to say anything.
 */
import { calibrationUtterances, cleanRows, type ResultRow } from "./rows.js";

const f2 = (v: number) => v.toFixed(2);
const signed = (v: number) => (v > 0 ? `+${f2(v)}` : f2(v));
const clean = cleanRows;

/** Fewer utterances than this and a chapter says the data are too few to tell, whatever the intervals. */
export const TOO_FEW_UTTERANCES = 30;

/** "+1.23 points (95 % CI 0.40 to 2.10, 100 utterances)". */
export function differenceText(r: ResultRow): string {
  const v = r.versusFp32!;
  return `${signed(v.difference)} points (95 % CI ${f2(v.low)} to ${f2(v.high)}, ${v.utterances} utterances)`;
}

/** Where runaway loops are in a comparison, the difference without them: a loop can carry a whole finding. */
function withoutLoopsText(r: ResultRow): string {
  const w = r.versusFp32!.withoutRunaways;
  if (w.utterances === r.versusFp32!.utterances || !Number.isFinite(w.difference)) return "";
  const loops = r.versusFp32!.utterances - w.utterances;
  return ` (${loops} ${loops === 1 ? "utterance" : "utterances"} with a runaway loop; without ${loops === 1 ? "it" : "them"} ${signed(w.difference)}, 95 % CI ${f2(w.low)} to ${f2(w.high)}, ${w.utterances} utterances)`;
}

function groups(rows: readonly ResultRow[]): Array<{ model: string; split: string; rows: ResultRow[] }> {
  const out = new Map<string, { model: string; split: string; rows: ResultRow[] }>();
  for (const r of clean(rows)) {
    const k = `${r.model}\u0000${r.split}`;
    if (!out.has(k)) out.set(k, { model: r.model, split: r.split, rows: [] });
    out.get(k)!.rows.push(r);
  }
  return [...out.values()];
}

/**
 * Per model and split: which recipes differ from fp32 beyond their interval (and in which
 * direction), how many do not, and the smallest recipe not significantly worse than fp32.
 */
export function chapterFindings(rows: readonly ResultRow[]): string {
  const lines: string[] = [];
  for (const g of groups(rows)) {
    const base = g.rows.find((r) => r.recipe === "fp32");
    const compared = g.rows.filter((r) => r.versusFp32 !== null);
    const head = `**${g.model}, ${g.split}**`;
    if (!base || compared.length === 0) {
      if (base)
        lines.push(
          `- ${head}: fp32 WER ${f2(base.wer)} % (95 % CI ${f2(base.werLow)}-${f2(base.werHigh)}, ${base.utterances} utterances); no recipe to compare.`,
        );
      else lines.push(`- ${head}: no fp32 run on these utterances, so no recipe is compared.`);
      continue;
    }
    const few = Math.min(...compared.map((r) => r.versusFp32!.utterances)) < TOO_FEW_UTTERANCES;
    const worse = compared
      .filter((r) => r.versusFp32!.significant && r.versusFp32!.difference > 0)
      .sort((a, b) => a.versusFp32!.difference - b.versusFp32!.difference);
    const better = compared.filter((r) => r.versusFp32!.significant && r.versusFp32!.difference < 0);
    const noise = compared.filter((r) => !r.versusFp32!.significant);
    const parts = [`fp32 WER ${f2(base.wer)} % (95 % CI ${f2(base.werLow)}-${f2(base.werHigh)}, ${base.utterances} utterances).`];
    if (worse.length) parts.push(`Worse than fp32 beyond the noise: ${worse.map((r) => `${r.recipe} ${differenceText(r)}${withoutLoopsText(r)}`).join("; ")}.`);
    if (better.length)
      parts.push(`Better than fp32 beyond the noise: ${better.map((r) => `${r.recipe} ${differenceText(r)}${withoutLoopsText(r)}`).join("; ")}.`);
    if (noise.length)
      parts.push(
        `Not distinguishable from fp32 (interval includes 0 after Holm's correction): ${noise.map((r) => `${r.recipe} ${signed(r.versusFp32!.difference)}${withoutLoopsText(r)}`).join(", ")}.`,
      );
    const safe = compared.filter((r) => !(r.versusFp32!.significant && r.versusFp32!.difference > 0) && r.parameterMB !== null);
    const smallest = safe.sort((a, b) => a.parameterMB! - b.parameterMB!)[0];
    if (smallest && base.parameterMB)
      parts.push(
        `Best size trade-off here: ${smallest.recipe}, ${smallest.parameterMB!.toFixed(1)} MB of parameters against fp32's ${base.parameterMB.toFixed(1)} MB, not significantly worse (${differenceText(smallest)}).`,
      );
    if (few) parts.push(`With fewer than ${TOO_FEW_UTTERANCES} utterances per comparison these data are too few to tell small differences apart.`);
    lines.push(`- ${head}: ${parts.join(" ")}`);
  }
  return lines.length ? lines.join("\n") : "- No runs to report.";
}

interface Claim {
  claim: string; // what the study says
  verdict: (rows: ResultRow[]) => string | null; // null: this run has nothing to say
}

const row = (rows: ResultRow[], recipe: string) => rows.find((r) => r.recipe === recipe && r.versusFp32 !== null);

/** Which side of fp32 a recipe falls, in words the reader can check against the interval. */
function side(r: ResultRow): string {
  const v = r.versusFp32!;
  if (!v.significant) return `not distinguishable from fp32: ${differenceText(r)}`;
  return `${v.difference > 0 ? "worse" : "better"} than fp32: ${differenceText(r)}`;
}

/** The study's claims, checked against this run where it has the recipes. */
export const STUDY_CLAIMS: Claim[] = [
  {
    claim: "Quanto int8 weights improve on fp32 (the study: 3.48 -> 3.41 % on whisper-small, test-clean)",
    verdict: (rows) => {
      const r = row(rows, "quanto/w8");
      if (!r) return null;
      const v = r.versusFp32!;
      const verdict = !v.significant ? "not shown here (inside the noise)" : v.difference < 0 ? "holds here" : "the opposite here";
      return `${verdict}: quanto/w8 is ${side(r)}`;
    },
  },
  {
    claim: "Static activation quantization costs accuracy beyond weight-only int8",
    verdict: (rows) => {
      const statics = ["quanto/w8a8", "pytorch/static-int8"].map((id) => row(rows, id)).filter((r): r is ResultRow => r !== undefined);
      if (!statics.length) return null;
      const weightOnly = row(rows, "quanto/w8");
      const worse = statics.filter((r) => r.versusFp32!.significant && r.versusFp32!.difference > 0);
      const verdict = worse.length === statics.length ? "holds here" : worse.length ? "holds for some" : "not shown here";
      return `${verdict}: ${statics.map((r) => `${r.recipe} ${side(r)}`).join("; ")}${weightOnly ? `; weight-only quanto/w8 ${side(weightOnly)}` : ""}`;
    },
  },
];

/** The claims on one model's splits: one line per claim and split, or the reason this run cannot say. */
export function claimFindings(rows: readonly ResultRow[]): string {
  const lines: string[] = [];
  for (const c of STUDY_CLAIMS) {
    const verdicts = groups(rows)
      .map((g) => {
        const v = c.verdict(g.rows);
        return v ? `${g.model}, ${g.split}: ${v}` : null;
      })
      .filter((v): v is string => v !== null);
    lines.push(`- *${c.claim}*: ${verdicts.length ? verdicts.join(". ") : "this run has no such recipe to check it"}.`);
  }
  // The study: 4-bit NF4 and 3-bit lose more on the harder split.
  for (const recipe of ["bnb/nf4", "hqq/3"]) {
    const bySplit = clean(rows).filter((r) => r.recipe === recipe && r.versusFp32 !== null);
    const models = [...new Set(bySplit.map((r) => r.model))];
    for (const model of models) {
      // exactly the two test sets: train-clean-5 is "clean" too, but not the study's comparison
      const other = bySplit.find((r) => r.model === model && r.split === "test-other");
      const easy = bySplit.find((r) => r.model === model && r.split === "test-clean");
      if (!other || !easy) continue;
      const [a, b] = [other.versusFp32!, easy.versusFp32!];
      const apart = a.low > b.high || b.low > a.high;
      lines.push(
        `- *${recipe} loses more on test-other than on test-clean* (${model}): test-other ${differenceText(other)}, test-clean ${differenceText(easy)}; ${
          apart
            ? a.difference > b.difference
              ? "the intervals do not overlap: holds here"
              : "the intervals do not overlap, the other way round"
            : "the intervals overlap: this run cannot tell"
        }.`,
      );
    }
  }
  return lines.join("\n");
}

const intervalsApart = (a: { low: number; high: number }, b: { low: number; high: number }) => a.low > b.high || b.low > a.high;

/**
 * What chapter 04's calibration study found: per static recipe, its WER at each calibration size
 * with intervals and loops, and whether the smallest and the largest size are apart (intervals
 * that do not overlap) or the run cannot tell.
 */
export function calibrationFindings(rows: readonly ResultRow[]): string {
  const sized = clean(rows).filter((r) => calibrationUtterances(r) !== null);
  const lines: string[] = [];
  const keyOf = (r: ResultRow) => `${r.model}\u0000${r.split}\u0000${r.recipe}`;
  for (const k of [...new Set(sized.map(keyOf))].sort()) {
    const runs = sized.filter((r) => keyOf(r) === k).sort((a, b) => calibrationUtterances(a)! - calibrationUtterances(b)!);
    const [first, last] = [runs[0]!, runs.at(-1)!];
    const head = `- *${first.recipe} (${first.model}, ${first.split}, ${first.utterances} utterances)*:`;
    const points = runs
      .map((r) => `${calibrationUtterances(r)} calibration utterances ${f2(r.wer)} % (95 % CI ${f2(r.werLow)}-${f2(r.werHigh)}, ${r.runaways} runaway loops)`)
      .join("; ");
    if (runs.length < 2) {
      lines.push(`${head} ${points}; one calibration size only, so no effect of the size can be read.`);
      continue;
    }
    const apart = intervalsApart({ low: first.werLow, high: first.werHigh }, { low: last.werLow, high: last.werHigh });
    const verdict = !apart
      ? `the intervals at ${calibrationUtterances(first)} and ${calibrationUtterances(last)} overlap: this run shows no effect of the calibration size`
      : `the intervals at ${calibrationUtterances(first)} and ${calibrationUtterances(last)} are apart: more calibration utterances ${last.wer < first.wer ? "lower" : "raise"} WER here`;
    lines.push(`${head} ${points}; ${verdict}.`);
  }
  return lines.length ? lines.join("\n") : "- No static recipe was calibrated at more than one size in this run.";
}

/** Chapter 09's inputs: clean and noisy runs of a few recipes, one run per block quantized alone, and the mixed-precision pair. */
export interface BeyondStudyRows {
  clean: readonly ResultRow[];
  noisy: readonly ResultRow[];
  sensitivity: ReadonlyArray<{ block: string; row: ResultRow }>;
  everywhere?: ResultRow;
  mixed?: ResultRow;
  mixedBlock?: string;
}

/**
 * What chapter 09 found: whether each recipe's gap to fp32 widens with noise (its paired difference
 * at the lowest SNR against its difference on clean audio, intervals apart or not), which blocks
 * alone cost accuracy beyond the noise, and what keeping one block in fp32 buys back.
 */
export function beyondStudyFindings(input: BeyondStudyRows): string {
  const lines: string[] = [];
  const fp32Clean = input.clean.find((r) => r.recipe === "fp32");
  const snrs = [...new Set(input.noisy.map((r) => r.noiseSnrDb!))].sort((a, b) => a - b);
  if (snrs.length) {
    const lowest = snrs[0]!;
    const fp32Noisy = input.noisy.find((r) => r.recipe === "fp32" && r.noiseSnrDb === lowest);
    if (fp32Clean && fp32Noisy)
      lines.push(
        `- *Noise (${fp32Clean.model}, ${fp32Clean.split})*: fp32 goes from ${f2(fp32Clean.wer)} % (95 % CI ${f2(fp32Clean.werLow)}-${f2(fp32Clean.werHigh)}) on clean audio to ${f2(fp32Noisy.wer)} % (${f2(fp32Noisy.werLow)}-${f2(fp32Noisy.werHigh)}) at ${lowest} dB, ${fp32Noisy.utterances} utterances.`,
      );
    for (const recipe of [...new Set(input.noisy.map((r) => r.recipe))].filter((r) => r !== "fp32")) {
      const atClean = input.clean.find((r) => r.recipe === recipe && r.versusFp32 !== null);
      const atLowest = input.noisy.find((r) => r.recipe === recipe && r.noiseSnrDb === lowest && r.versusFp32 !== null);
      if (!atClean || !atLowest) continue;
      const [c, n] = [atClean.versusFp32!, atLowest.versusFp32!];
      const verdict = !intervalsApart(c, n)
        ? "the intervals overlap: this run cannot tell whether noise widens the gap"
        : n.difference > c.difference
          ? "the intervals are apart: the gap widens under noise here"
          : "the intervals are apart: the gap narrows under noise here";
      lines.push(`  - ${recipe} against fp32: clean ${differenceText(atClean)}; at ${lowest} dB ${differenceText(atLowest)}; ${verdict}.`);
    }
  }
  const blocks = input.sensitivity.filter((p) => p.row.versusFp32 !== null).sort((a, b) => b.row.versusFp32!.difference - a.row.versusFp32!.difference);
  if (blocks.length) {
    const recipe = blocks[0]!.row.recipe;
    const hurt = blocks.filter((p) => p.row.versusFp32!.significant && p.row.versusFp32!.difference > 0);
    const worst = blocks[0]!;
    const head = `- *Per-block sensitivity (${recipe}, one block at a time, ${worst.row.versusFp32!.utterances} utterances)*:`;
    if (hurt.length)
      lines.push(
        `${head} blocks whose quantization alone raises WER beyond the noise: ${hurt.map((p) => `${p.block} ${differenceText(p.row)}`).join("; ")}. ${blocks.length - hurt.length === 1 ? "The other block is" : `The other ${blocks.length - hurt.length} are`} inside the noise.`,
      );
    else
      lines.push(
        `${head} no block alone is distinguishable from fp32 after Holm's correction; the largest difference is ${worst.block} ${differenceText(worst.row)}, so which block is "most sensitive" is not a finding here.`,
      );
  }
  const { everywhere, mixed } = input;
  if (everywhere?.versusFp32 && mixed?.versusFp32) {
    const verdict = intervalsApart(everywhere.versusFp32, mixed.versusFp32)
      ? "the intervals are apart: keeping that block in fp32 changes the result"
      : "the intervals overlap: this run cannot tell whether keeping that block in fp32 helps";
    const size = (r: ResultRow) => (r.parameterMB !== null ? `, ${r.parameterMB.toFixed(1)} MB` : "");
    lines.push(
      `- *Mixed precision*: ${everywhere.recipe} everywhere ${differenceText(everywhere)}${size(everywhere)}; with ${input.mixedBlock ?? "one block"} in fp32 ${differenceText(mixed)}${size(mixed)}; ${verdict}.`,
    );
  }
  const fewest = Math.min(...[...input.clean, ...input.noisy, ...blocks.map((p) => p.row)].filter((r) => r.versusFp32).map((r) => r.versusFp32!.utterances));
  if (Number.isFinite(fewest) && fewest < TOO_FEW_UTTERANCES)
    lines.push(`- With ${fewest} utterances per comparison these data are too few to tell small differences apart.`);
  return lines.length ? lines.join("\n") : "- No runs to report.";
}
