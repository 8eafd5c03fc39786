/**
 * A grid on a Slurm cluster, through Slurm's own machinery rather than a scheduler of the kit's:
 * a prepare job (downloads, builds, quantizes and calibrates every model x recipe once, so array
 * tasks never race to build the same folder), an array of N tasks each running its shard into its
 * own store (resumable: a requeued or resubmitted task continues where it stopped), and a merge job
 * that runs only if every task succeeded (afterok), joins the stores, refuses an incomplete result
 * and writes the tables. Scripts and job ids are kept in <results>/slurm/ for the record.
 *
 * Assumes what every Slurm cluster running this gives: this checkout (with its build/ and node) and
 * the results folder on a filesystem every node sees.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { readGrid } from "../eval/jobs.js";
import { ResultsStore } from "../eval/results-store.js";
import { buildManifest, defaultLibriSpeechDir } from "../hub/librispeech.js";
import { evaluationPart } from "../eval/splits.js";
import { KitError } from "../util/errors.js";
import { exists, writeFileAtomic, writeJsonAtomic } from "../util/fs.js";

const run = promisify(execFile);

export interface SlurmRequest {
  config: string; // the grid file
  results: string; // the merged store; shards, scripts and logs live under it
  /** Evaluation options passed to every `ptq grid` (e.g. --librispeech-dir, --hub-url, --calibration-limit). */
  gridArgs: string[];
  tasks?: number; // default: one per ~250 utterance evaluations, 1..64
  partition?: string;
  time?: string;
  cpusPerTask?: number;
  mem?: string;
  sbatchArgs?: string[];
}

export interface SubmittedGrid {
  prepare: string;
  array: string;
  merge: string;
  tasks: number;
  submittedAt: string;
  /** Earlier submissions of failed tasks and merges, oldest first. */
  history?: Array<{ array: string; tasks: number[]; merge: string; at: string }>;
}

/** Where a grid's Slurm files go. */
export function slurmDir(results: string): string {
  return join(resolve(results), "slurm");
}
export const shardStore = (results: string, task: number) => join(resolve(results), "shards", `task-${task}`);

const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The three sbatch scripts (pure): prepare, array (N tasks), merge. */
export function slurmScripts(r: Required<Pick<SlurmRequest, "tasks">> & SlurmRequest, cli: { node: string; script: string; cwd: string }) {
  const results = resolve(r.results);
  const logs = join(slurmDir(results), "logs");
  const ptq = `${quote(cli.node)} ${quote(cli.script)}`;
  const grid = ["--config", resolve(r.config), ...r.gridArgs].map(quote).join(" ");
  const header = (name: string, output: string, cpus: number | undefined) =>
    [
      "#!/bin/bash",
      `#SBATCH --job-name=ptq-${name}`,
      `#SBATCH --output=${join(logs, output)}`,
      ...(r.partition ? [`#SBATCH --partition=${r.partition}`] : []),
      ...(r.time ? [`#SBATCH --time=${r.time}`] : []),
      ...(cpus ? [`#SBATCH --cpus-per-task=${cpus}`] : []),
      ...(r.mem ? [`#SBATCH --mem=${r.mem}`] : []),
      ...(r.sbatchArgs ?? []).map((a) => `#SBATCH ${a}`),
      "set -euo pipefail",
      `cd ${quote(cli.cwd)}`,
      "",
    ].join("\n");
  const threads = `--threads "\${SLURM_CPUS_PER_TASK:-1}"`; // expanded by bash on the node
  return {
    prepare: `${header("prepare", "prepare-%j.log", r.cpusPerTask)}# every model x recipe built, quantized and calibrated once, before the array starts\n${ptq} grid ${grid} --prepare-only ${threads}\n`,
    array: `${header("array", "array-%A_%a.log", r.cpusPerTask)}# task i (0-based) runs shard i+1 of ${r.tasks} into its own store; rerun, it resumes\ntask=\${SLURM_ARRAY_TASK_ID}\n${ptq} grid ${grid} --shard "$((task + 1))/${r.tasks}" --results ${quote(results)}/shards/task-\${task} ${threads}\n`,
    merge: `${header("merge", "merge-%j.log", undefined)}# runs only after every task succeeded (afterok); refuses a result with a missing utterance\n${ptq} merge ${Array.from({ length: r.tasks }, (_, i) => quote(shardStore(results, i))).join(" ")} --out ${quote(results)} --require-complete\n${ptq} report --results ${quote(results)} --out ${quote(join(results, "report"))}\n`,
  };
}

/** One array task per ~250 utterance evaluations (1..64): a shard long enough to amortize loading the model. */
export async function defaultTaskCount(config: string, gridArgs: string[]): Promise<number> {
  const dirArg = gridArgs.indexOf("--librispeech-dir");
  const given = dirArg >= 0 ? gridArgs[dirArg + 1]! : undefined; // the command line wins over the grid file, as in ptq grid
  let evaluations = 0;
  const sizes = new Map<string, number>();
  for (const job of await readGrid(config)) {
    const root = given ?? job.librispeechDir ?? defaultLibriSpeechDir();
    const key = `${root}\u0000${job.split}\u0000${JSON.stringify(job.selection ?? {})}`;
    if (!sizes.has(key)) sizes.set(key, evaluationPart(await buildManifest(root, job.split), job.selection ?? {}).length);
    evaluations += sizes.get(key)!;
  }
  return Math.max(1, Math.min(64, Math.ceil(evaluations / 250)));
}

async function sbatch(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("sbatch", ["--parsable", ...args]);
    return stdout.trim().split(";")[0]!;
  } catch (e) {
    throw new KitError(`sbatch failed: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, {
      field: "--slurm",
      fix: "run on a machine where Slurm's sbatch works (a login node of the cluster), or use --dry-run to see the scripts",
    });
  }
}

/** Writes the scripts under <results>/slurm and, unless dryRun, submits prepare -> array -> merge. */
export async function submitGrid(
  r: SlurmRequest,
  cli: { node: string; script: string; cwd: string },
  dryRun: boolean,
): Promise<{ scripts: Record<string, string>; files: Record<string, string>; jobs: SubmittedGrid | null }> {
  const tasks = r.tasks ?? (await defaultTaskCount(r.config, r.gridArgs));
  const scripts = slurmScripts({ ...r, tasks }, cli);
  const dir = slurmDir(r.results);
  const files = { prepare: join(dir, "prepare.sbatch"), array: join(dir, "array.sbatch"), merge: join(dir, "merge.sbatch") };
  if (dryRun) return { scripts, files, jobs: null };
  await mkdir(join(dir, "logs"), { recursive: true });
  for (const k of ["prepare", "array", "merge"] as const) await writeFileAtomic(files[k], scripts[k]);
  const prepare = await sbatch([files.prepare]);
  const array = await sbatch([`--dependency=afterok:${prepare}`, `--array=0-${tasks - 1}`, files.array]);
  const merge = await sbatch([`--dependency=afterok:${array}`, files.merge]);
  const jobs: SubmittedGrid = { prepare, array, merge, tasks, submittedAt: new Date().toISOString() };
  await writeJsonAtomic(join(dir, "jobs.json"), jobs);
  return { scripts, files, jobs };
}

export async function readSubmitted(results: string): Promise<SubmittedGrid> {
  const file = join(slurmDir(results), "jobs.json");
  if (!(await exists(file)))
    throw new KitError(`${file} does not exist: no grid was submitted to Slurm into ${results}`, {
      file,
      fix: "submit it with ptq grid --config G --slurm --results DIR",
    });
  return JSON.parse(await readFile(file, "utf8")) as SubmittedGrid;
}

/** A job's state as Slurm reports it (scontrol), or null once Slurm has forgotten it. */
export async function jobState(id: string): Promise<{ state: string; reason: string } | null> {
  try {
    const { stdout } = await run("scontrol", ["-o", "show", "job", id]);
    const state = stdout.match(/JobState=(\S+)/)?.[1];
    return state ? { state, reason: stdout.match(/Reason=(\S+)/)?.[1] ?? "None" } : null;
  } catch {
    return null;
  }
}

export interface TaskStatus {
  task: number; // 0-based array index
  state: "pending" | "running" | "done" | "failed" | "unknown";
  slurmState: string | null;
  utterances: number; // stored in its shard
  log: string;
}

const FAILED = new Set(["FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"]);

/** Utterances stored in a shard's store, over all its runs. */
async function storedUtterances(dir: string): Promise<number> {
  if (!(await exists(join(dir, "runs")))) return 0;
  const store = new ResultsStore(dir);
  let n = 0;
  for (const key of await store.runKeys()) n += (await store.finishedUtterances(key)).size;
  return n;
}

/** The latest array job that ran each task (a resubmission replaces the first). */
function latestArrayOf(jobs: SubmittedGrid, task: number): string {
  for (const h of [...(jobs.history ?? [])].reverse()) if (h.tasks.includes(task)) return h.array;
  return jobs.array;
}

export async function gridStatus(results: string): Promise<{ jobs: SubmittedGrid; tasks: TaskStatus[]; merge: string | null; prepare: string | null }> {
  const jobs = await readSubmitted(results);
  const tasks: TaskStatus[] = [];
  for (let task = 0; task < jobs.tasks; task++) {
    const array = latestArrayOf(jobs, task);
    const s = await jobState(`${array}_${task}`);
    const state: TaskStatus["state"] = !s
      ? "unknown"
      : s.state === "COMPLETED"
        ? "done"
        : FAILED.has(s.state)
          ? "failed"
          : s.state === "RUNNING" || s.state === "COMPLETING"
            ? "running"
            : "pending";
    tasks.push({
      task,
      state,
      slurmState: s?.state ?? null,
      utterances: await storedUtterances(shardStore(results, task)),
      log: join(slurmDir(results), "logs", `array-${array}_${task}.log`),
    });
  }
  const merge = await jobState(jobs.merge);
  const prepare = await jobState(jobs.prepare);
  return { jobs, tasks, merge: merge ? `${merge.state}${merge.reason !== "None" ? ` (${merge.reason})` : ""}` : null, prepare: prepare?.state ?? null };
}

/** The command that resubmits only the failed tasks, and the merge after them. */
export const resubmitCommand = (results: string) => `ptq grid --resubmit ${quote(resolve(results))}`;

/** Resubmits the failed (or forgotten and unfinished) tasks and a new merge after them; cancels the merge that can never run. */
export async function resubmitFailed(results: string): Promise<{ array: string; merge: string; tasks: number[] }> {
  const { jobs, tasks } = await gridStatus(results);
  const dir = slurmDir(results);
  const again = tasks.filter((t) => t.state === "failed").map((t) => t.task);
  if (again.length === 0)
    throw new KitError(`no failed task to resubmit in ${results}`, { field: "--resubmit", fix: "see ptq grid --status for the state of each task" });
  const previousMerge = jobs.history?.at(-1)?.merge ?? jobs.merge;
  await run("scancel", [previousMerge]).catch(() => undefined); // pending forever (DependencyNeverSatisfied) otherwise
  const array = await sbatch([`--array=${again.join(",")}`, join(dir, "array.sbatch")]);
  const merge = await sbatch([`--dependency=afterok:${array}`, join(dir, "merge.sbatch")]);
  jobs.history = [...(jobs.history ?? []), { array, tasks: again, merge, at: new Date().toISOString() }];
  await writeJsonAtomic(join(dir, "jobs.json"), jobs);
  return { array, merge, tasks: again };
}
