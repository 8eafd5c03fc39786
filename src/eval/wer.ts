/**
 * Word and character error rates as the study computed them (jiwer's corpus measures): total
 * substitutions + deletions + insertions over the total number of reference words (characters),
 * from a minimum-edit-distance alignment per utterance. Alignments are kept for error analysis.
 */
import { pySplit } from "./normalizers.js";

export type EditOp = "equal" | "substitute" | "delete" | "insert";

export interface AlignmentStep {
  op: EditOp;
  ref: string | null; // null for an insertion
  hyp: string | null; // null for a deletion
}

export interface ErrorCounts {
  substitutions: number;
  deletions: number;
  insertions: number;
  hits: number;
  referenceLength: number; // words or characters in the reference
}

export interface Alignment extends ErrorCounts {
  steps: AlignmentStep[];
}

/**
 * Levenshtein alignment with unit costs. The error total is the edit distance; among the paths
 * that reach it, the one with the most matches is kept (ties broken substitution, deletion,
 * insertion), so "mat" pairs with "mat" rather than being substituted around it.
 */
export function align(ref: readonly string[], hyp: readonly string[]): Alignment {
  const n = ref.length;
  const m = hyp.length;
  const cost = new Uint32Array((n + 1) * (m + 1));
  const hits = new Uint32Array((n + 1) * (m + 1));
  const move = new Uint8Array((n + 1) * (m + 1)); // 0 diagonal, 1 deletion (up), 2 insertion (left)
  const at = (i: number, j: number) => i * (m + 1) + j;
  for (let i = 1; i <= n; i++) [cost[at(i, 0)], move[at(i, 0)]] = [i, 1];
  for (let j = 1; j <= m; j++) [cost[at(0, j)], move[at(0, j)]] = [j, 2];
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const same = ref[i - 1] === hyp[j - 1];
      const candidates: Array<[number, number, number]> = [
        [cost[at(i - 1, j - 1)]! + (same ? 0 : 1), hits[at(i - 1, j - 1)]! + (same ? 1 : 0), 0],
        [cost[at(i - 1, j)]! + 1, hits[at(i - 1, j)]!, 1],
        [cost[at(i, j - 1)]! + 1, hits[at(i, j - 1)]!, 2],
      ];
      let best = candidates[0]!;
      for (const c of candidates.slice(1)) if (c[0] < best[0] || (c[0] === best[0] && c[1] > best[1])) best = c;
      [cost[at(i, j)], hits[at(i, j)], move[at(i, j)]] = best;
    }
  }
  const steps: AlignmentStep[] = [];
  const counts: ErrorCounts = { substitutions: 0, deletions: 0, insertions: 0, hits: 0, referenceLength: n };
  let i = n;
  let j = m;
  while (i > 0 || j > 0) {
    const how = move[at(i, j)]!;
    if (how === 0) {
      const same = ref[i - 1] === hyp[j - 1];
      steps.push({ op: same ? "equal" : "substitute", ref: ref[i - 1]!, hyp: hyp[j - 1]! });
      if (same) counts.hits++;
      else counts.substitutions++;
      i--;
      j--;
    } else if (how === 1) {
      steps.push({ op: "delete", ref: ref[i - 1]!, hyp: null });
      counts.deletions++;
      i--;
    } else {
      steps.push({ op: "insert", ref: null, hyp: hyp[j - 1]! });
      counts.insertions++;
      j--;
    }
  }
  steps.reverse();
  return { ...counts, steps };
}

/** Words of a normalized transcript (whitespace-separated, as jiwer's default transform). */
export const words = (text: string): string[] => pySplit(text);

/** Characters of a normalized transcript, spaces between words included, runs of space folded (jiwer's CER). */
export const characters = (text: string): string[] => [...pySplit(text).join(" ")];

export function emptyCounts(): ErrorCounts {
  return { substitutions: 0, deletions: 0, insertions: 0, hits: 0, referenceLength: 0 };
}

export function addCounts(a: ErrorCounts, b: ErrorCounts): ErrorCounts {
  return {
    substitutions: a.substitutions + b.substitutions,
    deletions: a.deletions + b.deletions,
    insertions: a.insertions + b.insertions,
    hits: a.hits + b.hits,
    referenceLength: a.referenceLength + b.referenceLength,
  };
}

/** (S + D + I) / N over a whole corpus; NaN for an empty reference corpus. */
export function errorRate(c: ErrorCounts): number {
  return c.referenceLength === 0 ? NaN : (c.substitutions + c.deletions + c.insertions) / c.referenceLength;
}

/** Strip an alignment to its counts (what result records store per utterance). */
export function countsOf(a: Alignment): ErrorCounts {
  return { substitutions: a.substitutions, deletions: a.deletions, insertions: a.insertions, hits: a.hits, referenceLength: a.referenceLength };
}
