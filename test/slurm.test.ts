/**
 * The grid on a real Slurm (slurmctld and slurmd started here, test/support/slurm-cluster.ts): a
 * toy model, 2 recipes x 1 split, a 3-task array between a prepare and a merge job. The merged
 * store must equal an unsharded run; a task made to fail (a damaged FLAC in its shard) must keep
 * the merge from running and be named by `ptq grid --status`; once the file is fixed, resubmitting
 * the failed task and the merge completes the grid without recomputing a stored utterance.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, readdir, readFile, realpath, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { readJsonl, type RunSummary } from "../src/eval/results-store.js";
import { runStudy, studyConfig } from "../src/study/study.js";
import { miniSplit, ROOT, syntheticModel, tempDir } from "./support/env.js";
import { freePort } from "./support/free-port.js";
import { type SlurmCluster, slurmMissing, startSlurm } from "./support/slurm-cluster.js";

const execFileAsync = promisify(execFile);

const deterministic = (s: RunSummary) => {
  const { timing: _t, finishedAt: _f, ...rest } = s;
  return rest;
};

describe("ptq grid on Slurm", { skip: slurmMissing() }, () => {
  let cluster: SlurmCluster;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    cluster = await startSlurm(await tempDir("ptq-slurm-"), { ctld: await freePort(), d: await freePort() });
    env = { ...process.env, ...cluster.env, PTQ_DATA_DIR: await tempDir(), PTQ_PROGRESS: "0" };
  });
  after(async () => {
    await cluster?.stop();
  });

  const ptq = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [join(ROOT, "build", "src", "cli.js"), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d) => (stdout += d));
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code) => resolve({ code, stdout, stderr }));
    });

  /** A job's state, once it is COMPLETED or FAILED, or PENDING on a dependency that can never be met. */
  const settled = async (id: string, limitMs = 300_000): Promise<string> => {
    const started = Date.now();
    for (;;) {
      const { stdout } = await execFileAsync("scontrol", ["-o", "show", "job", id], { env });
      const state = stdout.match(/JobState=(\S+)/)?.[1] ?? "?";
      const reason = stdout.match(/Reason=(\S+)/)?.[1] ?? "";
      if (["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"].includes(state)) return state;
      if (state === "PENDING" && reason === "DependencyNeverSatisfied") return `${state} ${reason}`;
      if (Date.now() - started > limitMs) throw new Error(`job ${id} still ${state} (${reason}) after ${limitMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const jobsOf = async (results: string) => JSON.parse(await readFile(join(results, "slurm", "jobs.json"), "utf8"));
  const storeContent = async (dir: string) => {
    const files = (await readdir(join(dir, "runs")).catch(() => [] as string[])).filter((f) => f.endsWith(".jsonl")).sort();
    const h = createHash("sha256");
    for (const f of files) h.update(f).update(await readFile(join(dir, "runs", f)));
    return h.digest("hex");
  };

  it("a 3-task array between prepare and merge gives the unsharded run's results; a failed task blocks the merge and is resubmitted alone", async () => {
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 17 });
    const { root, utterances } = await miniSplit(9);
    const grid = join(await tempDir(), "grid.json");
    await writeFile(grid, JSON.stringify({ models: [model], recipes: ["fp32", "hqq/4"], splits: ["mini"], full: true, librispeechDir: root }));

    const dry = await ptq("grid", "--config", grid, "--slurm", "--tasks", "3", "--results", join(await tempDir(), "never"), "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /#SBATCH --array|--shard "\$\(\(task \+ 1\)\)\/3"/);
    assert.match(dry.stdout, /--prepare-only/);
    assert.match(dry.stdout, /--require-complete/);

    const whole = await tempDir();
    assert.equal((await ptq("grid", "--config", grid, "--results", whole, "--threads", "1")).code, 0);

    // 1. the whole grid through Slurm
    const results = await tempDir();
    const submitted = await ptq("grid", "--config", grid, "--slurm", "--tasks", "3", "--results", results);
    assert.equal(submitted.code, 0, submitted.stderr);
    const jobs = await jobsOf(results);
    assert.equal(await settled(jobs.merge), "COMPLETED");
    const want = new Map((await readJsonl<RunSummary>(join(whole, "results.jsonl"))).records.map((s) => [s.key, s]));
    const got = (await readJsonl<RunSummary>(join(results, "results.jsonl"))).records;
    assert.equal(got.length, 2);
    for (const s of got) {
      const { mergedFrom: _m, ...timing } = s.timing;
      assert.deepEqual(deterministic({ ...s, timing }), deterministic(want.get(s.key)!));
      const ids = (await readJsonl<{ id: string }>(join(results, "runs", `${s.key}.jsonl`))).records.map((r) => r.id);
      assert.deepEqual([...ids].sort(), utterances.map((u) => u.id).sort(), "each utterance once");
    }
    const status = await ptq("grid", "--status", results);
    assert.match(status.stdout, /task 0: done[^\n]*6 utterances stored/, status.stdout);
    assert.match(await readFile(join(results, "report", "tables", "T2-main-results.md"), "utf8"), /hqq\/4/);

    // 2. a task that fails: the eighth utterance (shard 2 of 3 holds utterances 2, 5, 8) damaged
    const damaged = utterances[7]!;
    const flac = join(root, "mini", ...damaged.id.split("-").slice(0, 2), `${damaged.id}.flac`);
    const original = await realpath(flac); // the split links the repository's fixtures: damage a copy
    await rm(flac);
    await copyFile(original, flac);
    await truncate(flac, 2000);
    const failing = await tempDir();
    assert.equal((await ptq("grid", "--config", grid, "--slurm", "--tasks", "3", "--results", failing)).code, 0);
    const first = await jobsOf(failing);
    assert.equal(await settled(first.merge), "PENDING DependencyNeverSatisfied", "the merge never runs on partial results");
    const blocked = await ptq("grid", "--status", failing);
    assert.match(blocked.stdout, /task 1: failed \(FAILED\), \d+ utterances stored; log \S+array-\d+_1\.log/, blocked.stdout);
    assert.match(blocked.stdout, /task 0: done/);
    assert.match(blocked.stdout, /ptq grid --resubmit /);
    const log = blocked.stdout.match(/log (\S+)/)![1]!;
    assert.match(await readFile(log, "utf8"), new RegExp(damaged.id), "the task's log names the damaged file");
    assert.equal(await readFile(join(failing, "results.jsonl"), "utf8").catch(() => ""), "", "nothing merged");

    const stored = { 0: await storeContent(join(failing, "shards", "task-0")), 2: await storeContent(join(failing, "shards", "task-2")) };
    const partial = (await readdir(join(failing, "shards", "task-1", "runs"))).filter((f) => f.endsWith(".jsonl"));
    const partialLines = new Map<string, string[]>();
    for (const f of partial)
      partialLines.set(
        f,
        (await readJsonl<{ id: string }>(join(failing, "shards", "task-1", "runs", f))).records.map((r) => r.id),
      );
    assert.ok(
      [...partialLines.values()].some((ids) => ids.length === 2),
      "the failed task had stored the utterances before the damaged one",
    );

    // fixed, resubmitted: only task 1 runs again, resuming; the new merge completes
    await rm(flac);
    await symlink(original, flac);
    const again = await ptq("grid", "--resubmit", failing);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /resubmitted tasks 1 as array job/);
    const second = await jobsOf(failing);
    assert.equal(await settled(second.history.at(-1).merge), "COMPLETED");
    assert.equal(await storeContent(join(failing, "shards", "task-0")), stored[0], "task 0 not rerun");
    assert.equal(await storeContent(join(failing, "shards", "task-2")), stored[2], "task 2 not rerun");
    for (const [f, before] of partialLines) {
      const ids = (await readJsonl<{ id: string }>(join(failing, "shards", "task-1", "runs", f))).records.map((r) => r.id);
      assert.deepEqual(ids.slice(0, before.length), before, "stored utterances kept in place");
      assert.equal(new Set(ids).size, ids.length, "no utterance recomputed");
    }
    const merged = (await readJsonl<RunSummary>(join(failing, "results.jsonl"))).records;
    for (const s of merged) assert.deepEqual(deterministic({ ...s, timing: {} }), deterministic({ ...want.get(s.key)!, timing: {} }));
    assert.equal(merged.length, 2);
  });

  it("SCHEDULER=slurm: a chapter's evaluations go through the array, and the chapter reads them from the store", async () => {
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 19 });
    const { root } = await miniSplit(4);
    const results = await tempDir();
    const saved = { ...process.env };
    Object.assign(process.env, env, { SCHEDULER: "slurm" });
    try {
      const config = studyConfig({ MODELS: model, SPLITS: "mini", LIBRISPEECH_DIR: root, RECIPES: "fp32", RESULTS_DIR: results, THREADS: "1", LIMIT: "3" });
      const rows = await runStudy(config, { recipes: ["fp32"] });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.utterances, 3);
      const jobs = await jobsOf(results);
      assert.equal(await settled(jobs.merge), "COMPLETED", "the evaluation ran as a Slurm grid");
      assert.ok((await readdir(join(results, "shards"))).length >= 1);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});
