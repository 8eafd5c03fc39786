/** A worker thread of the weight pool: quantizes one weight at a time with a recipe's own quantizer. */
import { parentPort } from "node:worker_threads";
import type { Weight } from "../quant/schemes.js";
import { findRecipe, type RecipeOptions } from "./catalog.js";

export interface QuantizeTask {
  id: number;
  recipeId: string;
  options: RecipeOptions;
  weight: Weight;
}

parentPort?.on("message", (task: QuantizeTask) => {
  try {
    const q = findRecipe(task.recipeId).quantize!(task.weight, task.options);
    const buffers = [q.codes.buffer, q.scales.buffer, ...(q.zeros ? [q.zeros.buffer] : [])] as ArrayBuffer[];
    parentPort!.postMessage({ id: task.id, q }, buffers);
  } catch (err) {
    parentPort!.postMessage({ id: task.id, error: (err as Error).message });
  }
});
