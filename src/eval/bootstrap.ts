/**
 * Uncertainty of a corpus WER by resampling whole utterances (numerator and denominator together),
 * and the paired difference of two systems on the same utterances. Seeded, so a table is
 * reproducible. Pure functions over per-utterance counts.
 */
import { seededRandom } from "../model/synthetic.js";

/** Per utterance: word edits (S + D + I) and reference words. */
export interface UtteranceCounts {
  errors: number;
  words: number;
}

export interface Interval {
  estimate: number; // percent
  low: number; // percent, 2.5th percentile of the resamples (for level 0.95)
  high: number;
}

export interface PairedDifference extends Interval {
  /** Two-sided bootstrap p-value of "no difference": twice the smaller tail share of resampled differences at or beyond 0. */
  p: number;
}

// The kit's one seeded generator (mulberry32), re-exported for the statistics' users.
export { seededRandom };

function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface BootstrapOptions {
  resamples?: number; // 2000
  seed?: number; // 1
  level?: number; // 0.95
  /** One label per utterance (its speaker): resample whole speakers, since one speaker's utterances are correlated. */
  blocks?: readonly string[];
}

/** Utterances grouped into the units that are resampled: one per utterance, or one per block label. */
function units(n: number, blocks: readonly string[] | undefined): number[][] {
  if (!blocks) return Array.from({ length: n }, (_, i) => [i]);
  if (blocks.length !== n) throw new Error(`${blocks.length} block labels for ${n} utterances`);
  const groups = new Map<string, number[]>();
  blocks.forEach((b, i) => {
    const g = groups.get(b);
    if (g) g.push(i);
    else groups.set(b, [i]);
  });
  return [...groups.values()];
}

const rate = (errors: number, words: number) => (words > 0 ? (100 * errors) / words : 0);

/** Corpus WER with a percentile bootstrap interval over utterances. */
export function werInterval(utterances: readonly UtteranceCounts[], options: BootstrapOptions = {}): Interval {
  const { resamples = 2000, seed = 1, level = 0.95 } = options;
  const random = seededRandom(seed);
  const groups = units(utterances.length, options.blocks);
  const n = groups.length;
  const draws = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let e = 0;
    let w = 0;
    for (let i = 0; i < n; i++) {
      for (const k of groups[Math.floor(random() * n)]!) {
        e += utterances[k]!.errors;
        w += utterances[k]!.words;
      }
    }
    draws[b] = rate(e, w);
  }
  draws.sort();
  const total = utterances.reduce((a, u) => ({ errors: a.errors + u.errors, words: a.words + u.words }), { errors: 0, words: 0 });
  return { estimate: rate(total.errors, total.words), low: quantile(draws, (1 - level) / 2), high: quantile(draws, 1 - (1 - level) / 2) };
}

/** WER(a) - WER(b) in points, on the same utterances (same order), with a paired bootstrap interval. */
export function pairedWerDifference(a: readonly UtteranceCounts[], b: readonly UtteranceCounts[], options: BootstrapOptions = {}): PairedDifference {
  if (a.length !== b.length) throw new Error(`paired comparison needs the same utterances: ${a.length} against ${b.length}`);
  a.forEach((u, i) => {
    if (u.words !== b[i]!.words)
      throw new Error(`utterance ${i}: ${u.words} reference words against ${b[i]!.words}; the runs are not over the same references`);
  });
  const { resamples = 2000, seed = 1, level = 0.95 } = options;
  const random = seededRandom(seed);
  const groups = units(a.length, options.blocks);
  const n = groups.length;
  const draws = new Float64Array(resamples);
  let atOrBelow = 0;
  let atOrAbove = 0;
  for (let r = 0; r < resamples; r++) {
    let ea = 0;
    let eb = 0;
    let w = 0;
    for (let i = 0; i < n; i++) {
      for (const k of groups[Math.floor(random() * n)]!) {
        ea += a[k]!.errors;
        eb += b[k]!.errors;
        w += a[k]!.words;
      }
    }
    const d = rate(ea, w) - rate(eb, w);
    draws[r] = d;
    if (d <= 0) atOrBelow++;
    if (d >= 0) atOrAbove++;
  }
  draws.sort();
  const sum = (xs: readonly UtteranceCounts[]) => xs.reduce((s, u) => s + u.errors, 0);
  const words = a.reduce((s, u) => s + u.words, 0);
  const estimate = rate(sum(a), words) - rate(sum(b), words);
  const p = Math.min(1, (2 * Math.min(atOrBelow, atOrAbove)) / resamples);
  return { estimate, low: quantile(draws, (1 - level) / 2), high: quantile(draws, 1 - (1 - level) / 2), p };
}

/**
 * Holm's step-down correction: p-values adjusted so that rejecting where adjusted p < alpha keeps
 * the family-wise error rate at alpha. Returned in the input order.
 */
export function holm(pValues: readonly number[]): number[] {
  const order = pValues.map((p, i) => [p, i] as const).sort((x, y) => x[0] - y[0]);
  const m = pValues.length;
  const adjusted = new Array<number>(m);
  let running = 0;
  order.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[i] = running;
  });
  return adjusted;
}
