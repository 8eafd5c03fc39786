/**
 * The study's cut of each split: the first 10 % (in manifest order) calibrates static recipes,
 * the remaining 90 % is evaluated. --full evaluates everything; --limit N takes the first N
 * evaluation utterances; --shard i/n takes every n-th of those, from the i-th.
 */
import { KitError } from "../util/errors.js";

export const CALIBRATION_FRACTION = 0.1;

export interface Selection {
  full?: boolean;
  limit?: number;
  shard?: { index: number; count: number }; // 0-based index
}

export function calibrationCount(total: number): number {
  return Math.ceil(total * CALIBRATION_FRACTION);
}

export function calibrationPart<T>(items: readonly T[]): T[] {
  return items.slice(0, calibrationCount(items.length));
}

export function evaluationPart<T>(items: readonly T[], selection: Selection = {}): T[] {
  let chosen = selection.full ? [...items] : items.slice(calibrationCount(items.length));
  if (selection.limit !== undefined) chosen = chosen.slice(0, selection.limit);
  if (selection.shard) {
    const { index, count } = selection.shard;
    chosen = chosen.filter((_, i) => i % count === index);
  }
  return chosen;
}

/** "i/n" with 1 <= i <= n, as users write shards (1-based); returned 0-based. */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new KitError(`--shard must be i/n with 1 <= i <= n, got '${text}'`, { field: "--shard", fix: "e.g. --shard 2/4 for the second of four shards" });
  }
  return { index: index - 1, count };
}
