/**
 * Memory of an evaluating process. onnxruntime-node copies every output into a fresh JavaScript
 * buffer (whisper-small's encoder: 115 MB a call), which V8 frees only at its next collection, and
 * glibc keeps freed blocks below its (self-raising) mmap threshold for reuse instead of returning
 * them. Measured on an encoder session of whisper-small's dimensions, four calls: peak 1060 MB as
 * is, 979 with the threshold fixed at 128 KB, 869 with a collection before each call as well.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** glibc reads this at start-up: set for the processes the kit spawns to evaluate (no effect elsewhere). */
export const EVALUATION_PROCESS_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "131072" };

/** The environment for a spawned evaluating process: the caller's, with EVALUATION_PROCESS_ENV's defaults. */
export function evaluationEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...EVALUATION_PROCESS_ENV, ...env };
}

let gc: (() => void) | null | undefined;

/** A full collection (5-10 ms on this kit's heaps): between utterances, so that one encoding's buffers are live at a time. */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as () => void;
    } catch {
      gc = null; // a runtime without it: V8 collects on its own schedule
    }
  }
  gc?.();
}
