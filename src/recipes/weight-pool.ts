/**
 * Quantizing a model's weights on every core: each weight is quantized whole, by the recipe's own
 * quantizer, in a worker thread (the numerics are pure functions, so the codes are the ones one
 * thread computes). The largest weights go first so that no core waits on the last big one.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { QuantizedWeight, Weight } from "../quant/schemes.js";
import { findRecipe, type RecipeOptions } from "./catalog.js";
import type { QuantizeTask } from "./quantize-worker.js";

/** Below this many weight elements in all, threads cost more than they save. */
const PARALLEL_MIN_ELEMENTS = 4_000_000;

/** Threads for quantizing: PTQ_QUANTIZE_THREADS, else every core. */
export function quantizeThreads(): number {
  const n = Number(process.env.PTQ_QUANTIZE_THREADS);
  return Number.isInteger(n) && n >= 1 ? n : availableParallelism();
}

export class WeightQuantizeError extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
  }
}

export interface PoolOptions {
  threads?: number; // default quantizeThreads()
  minParallelElements?: number; // default PARALLEL_MIN_ELEMENTS
  onDone?: (index: number) => void;
}

/** `recipeId`'s quantizer over `weights`, on up to `threads` threads; results in input order. */
export async function quantizeWeights(
  recipeId: string,
  options: RecipeOptions,
  weights: readonly Weight[],
  pool: PoolOptions = {},
): Promise<QuantizedWeight[]> {
  const quantize = findRecipe(recipeId).quantize!;
  const threads = pool.threads ?? quantizeThreads();
  const onDone = pool.onDone;
  const elements = weights.reduce((a, w) => a + w.data.length, 0);
  const out: QuantizedWeight[] = new Array(weights.length);
  if (threads <= 1 || weights.length <= 1 || elements < (pool.minParallelElements ?? PARALLEL_MIN_ELEMENTS)) {
    for (const [i, w] of weights.entries()) {
      try {
        out[i] = quantize(w, options);
      } catch (err) {
        throw new WeightQuantizeError(i, (err as Error).message);
      }
      onDone?.(i);
    }
    return out;
  }
  const order = weights.map((_, i) => i).sort((a, b) => weights[b]!.data.length - weights[a]!.data.length);
  const workers = Array.from({ length: Math.min(threads, weights.length) }, () => new Worker(new URL("./quantize-worker.js", import.meta.url)));
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let finished = 0;
      const feed = (worker: Worker) => {
        if (next >= order.length) return;
        const id = order[next++]!;
        const w = weights[id]!;
        const task: QuantizeTask = { id, recipeId, options, weight: { data: w.data.slice(), rows: w.rows, cols: w.cols } };
        worker.postMessage(task, [task.weight.data.buffer as ArrayBuffer]);
      };
      for (const worker of workers) {
        worker.on("message", (m: { id: number; q?: QuantizedWeight; error?: string }) => {
          if (m.error !== undefined) {
            reject(new WeightQuantizeError(m.id, m.error));
            return;
          }
          out[m.id] = m.q!;
          onDone?.(m.id);
          if (++finished === weights.length) resolve();
          else feed(worker);
        });
        worker.on("error", reject);
        feed(worker);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return out;
}
