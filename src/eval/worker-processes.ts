/**
 * `ptq eval|grid --workers K`: K processes, each with its share of the cores, each evaluating
 * every K-th utterance of every run into the same results store. Measured on 2 cores
 * (make bench WORKERS=2): whisper-tiny.en fp32 27.2 RTFx against 22.2 for one process of two
 * threads; utterances in flight inside one process gain nothing, because onnxruntime-node runs
 * one session call at a time.
 */
import { spawn } from "node:child_process";
import type { Selection } from "./splits.js";
import { evaluationEnv } from "../util/memory.js";

/** Worker `w` of `workers` inside shard `shard` (every n-th utterance from the i-th): every (n K)-th from i + n w. */
export function workerShard(shard: Selection["shard"] | undefined, w: number, workers: number): NonNullable<Selection["shard"]> {
  const outer = shard ?? { index: 0, count: 1 };
  return { index: outer.index + outer.count * w, count: outer.count * workers };
}

/** The command line without the named options (`--name value` and `--name=value` forms). */
export function withoutOptions(args: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = names.find((n) => a === `--${n}` || a.startsWith(`--${n}=`));
    if (name === undefined) out.push(a);
    else if (a === `--${name}`) i++; // skip its value too
  }
  return out;
}

/**
 * Run `cli command args` once per worker, with its shard, threads and the worker count (the
 * children then share the store); their output passes through. Resolves to the first non-zero
 * exit code, or 0.
 */
export async function runWorkerProcesses(
  cli: string,
  command: string,
  args: readonly string[],
  workers: number,
  threadsEach: number,
  shard: Selection["shard"] | undefined,
): Promise<number> {
  const base = withoutOptions(args, ["workers", "shard", "threads"]);
  const codes = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const mine = workerShard(shard, w, workers);
      const child = spawn(
        process.execPath,
        [cli, command, ...base, "--shard", `${mine.index + 1}/${mine.count}`, "--threads", String(threadsEach), "--worker-processes", String(workers)],
        { stdio: ["ignore", "inherit", "inherit"], env: evaluationEnv() },
      );
      return new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
    }),
  );
  return codes.find((c) => c !== 0) ?? 0;
}
