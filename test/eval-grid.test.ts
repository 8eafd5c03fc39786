/** Shards and merge, noise mixing, grid files, and a grid process killed midway (SIGKILL) and restarted. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { Transcriber } from "../src/asr/transcriber.js";
import { readGrid } from "../src/eval/jobs.js";
import { babble, babbleTalkers, mixAtSnr, parseNoise, power, whiteNoise } from "../src/eval/noise.js";
import { ResultsStore, readJsonl, type RunSummary } from "../src/eval/results-store.js";
import { mergeStores, runEvaluation } from "../src/eval/runner.js";
import type { Utterance } from "../src/hub/librispeech.js";
import { evaluationPart } from "../src/eval/splits.js";
import { withoutOptions, workerShard } from "../src/eval/worker-processes.js";
import { miniSplit, ROOT, syntheticModel, tempDir } from "./support/env.js";

const deterministic = (s: RunSummary) => {
  const { timing: _t, finishedAt: _f, ...rest } = s;
  return rest;
};

describe("noise", () => {
  it("mixes at the requested SNR, deterministically", () => {
    const signal = Float32Array.from({ length: 16000 }, (_, i) => Math.sin(i / 7));
    for (const snr of [20, 5, 0, -5]) {
      const noise = whiteNoise(signal.length, 42);
      const mixed = mixAtSnr(signal, noise, snr);
      const residual = Float32Array.from(mixed, (v, i) => v - signal[i]!);
      assert.ok(Math.abs(10 * Math.log10(power(signal) / power(residual)) - snr) < 1e-3, `snr ${snr}`);
    }
    assert.deepEqual(whiteNoise(100, 7), whiteNoise(100, 7));
    const talkers = babbleTalkers("a", ["a", "b", "c", "d", "e", "f"]);
    assert.equal(talkers.length, 4);
    assert.ok(!talkers.includes("a"));
    assert.deepEqual(babbleTalkers("a", ["a", "b", "c", "d", "e", "f"]), talkers);
    assert.equal(babble(10, [Float32Array.of(1, -1)]).length, 10);
    assert.throws(() => parseNoise("pink:3"), /--noise must be <white\|babble>:<snr dB>/);
  });
});

describe("grid files", () => {
  it("expands models x recipes x splits x noise, and names a bad field", async () => {
    const dir = await tempDir();
    const file = join(dir, "grid.json");
    await writeFile(file, JSON.stringify({ models: ["m1", "m2"], splits: ["test-clean"], noise: ["white:10"], limit: 5 }));
    const jobs = await readGrid(file);
    assert.equal(jobs.length, 4);
    assert.deepEqual(jobs[1], { model: "m1", recipe: "fp32", split: "test-clean", selection: { full: false, limit: 5 }, noise: { kind: "white", snrDb: 10 } });
    await writeFile(file, JSON.stringify({ models: "m1", splits: ["x"] }));
    await assert.rejects(readGrid(file), (err: Error & { field?: string }) => err.field === "models" && /non-empty list/.test(err.message));
    await writeFile(file, JSON.stringify({ models: ["m"], splits: ["x"], recipes: ["hqq/9"] }));
    await assert.rejects(readGrid(file), /unknown recipe 'hqq\/9'/);
  });
});

describe("sharded runs", () => {
  let transcriber: Transcriber;
  let utterances: Utterance[];

  before(async () => {
    transcriber = await Transcriber.load(await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 9 }), { threads: 1, maxNewTokens: 6 });
    utterances = (await miniSplit(9)).utterances;
  });

  it("two shards merged give the same results as one unsharded run", async () => {
    const base = { transcriber, modelName: "synthetic", recipe: { id: "fp32", options: {} }, split: "mini", utterances };
    const whole = await runEvaluation({ ...base, store: new ResultsStore(await tempDir()) });
    const [a, b] = [new ResultsStore(await tempDir()), new ResultsStore(await tempDir())];
    const shardA = await runEvaluation({ ...base, store: a, shard: { index: 0, count: 2 } });
    const shardB = await runEvaluation({ ...base, store: b, shard: { index: 1, count: 2 } });
    assert.equal(shardA.summary, null);
    assert.deepEqual([shardA.done, shardB.done], [5, 4]);
    const target = new ResultsStore(await tempDir());
    assert.deepEqual(await mergeStores([a, b], target), { runs: 1, completed: 1 });
    const merged = await target.summary(whole.key);
    assert.ok(merged && whole.summary);
    assert.deepEqual(deterministic(merged), deterministic(whole.summary));
    // model size, as the study reports it: fp32 parameters, no compression, files larger than the parameters
    const size = whole.summary.size!;
    assert.equal(size.parameterBytes, transcriber.manifest.parameterBytes);
    assert.equal(size.compression, 0);
    assert.ok(size.onDiskBytes > size.parameterBytes);
    assert.deepEqual(Object.keys(size.files).sort(), ["decoder.onnx", "decoder.onnx.data", "encoder.onnx", "encoder.onnx.data"]);
    assert.deepEqual(await mergeStores([a, b], target), { runs: 1, completed: 0 }, "merging again adds nothing");
  });
});

describe("ptq grid killed midway", () => {
  it("restarts where it stopped, redoes no utterance, and ends with the same results as an uninterrupted run", async () => {
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 13 });
    const { root } = await miniSplit(12);
    const grid = join(await tempDir(), "grid.json");
    await writeFile(grid, JSON.stringify({ models: [model], splits: ["mini"], full: true, librispeechDir: root }));
    const env = { ...process.env, PTQ_DATA_DIR: await tempDir(), PTQ_PROGRESS: "1" };
    const ptq = (results: string) =>
      spawn(process.execPath, [join(ROOT, "build", "src", "cli.js"), "grid", "--config", grid, "--results", results, "--threads", "1"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
    const finish = (p: ReturnType<typeof ptq>) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        let stdout = "";
        let stderr = "";
        p.stdout!.on("data", (d) => (stdout += d));
        p.stderr!.on("data", (d) => (stderr += d));
        p.on("close", (code) => resolve({ code, stdout, stderr }));
      });

    const uninterrupted = await tempDir();
    assert.equal((await finish(ptq(uninterrupted))).code, 0);

    const killed = await tempDir();
    const first = ptq(killed);
    const firstDone = finish(first);
    const runs = join(killed, "runs");
    /** The run's utterance file, once the run has started. */
    const runFile = async () => {
      const jsonl = (await readdir(runs).catch(() => [] as string[])).find((f) => f.endsWith(".jsonl"));
      return jsonl ? join(runs, jsonl) : null;
    };
    for (let i = 0; i < 600; i++) {
      const file = await runFile();
      if (file && (await readFile(file, "utf8")).split("\n").length > 4) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    first.kill("SIGKILL");
    await firstDone;
    const before = await readJsonl<{ id: string }>((await runFile())!);
    assert.ok(before.records.length >= 4 && before.records.length < 12, `killed after ${before.records.length} utterances`);

    const second = await finish(ptq(killed));
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, new RegExp(` ${before.records.length} resumed, `));
    const after = await readJsonl<{ id: string }>((await runFile())!);
    assert.equal(new Set(after.records.map((r) => r.id)).size, after.records.length, "no utterance recorded twice");
    assert.equal(after.records.length, 12);
    const [x] = (await readJsonl<RunSummary>(join(uninterrupted, "results.jsonl"))).records;
    const [y] = (await readJsonl<RunSummary>(join(killed, "results.jsonl"))).records;
    assert.deepEqual(deterministic(y!), deterministic(x!));
  });
});

describe("ptq grid --workers 2", () => {
  it("the workers of shard i/n split exactly that shard's utterances; their command lines lose --workers, --shard, --threads", () => {
    const items = Array.from({ length: 23 }, (_, i) => i);
    for (const shard of [undefined, { index: 1, count: 3 }]) {
      const parts = [0, 1, 2].map((w) => evaluationPart(items, { full: true, shard: workerShard(shard, w, 3) }));
      const whole = evaluationPart(items, { full: true, ...(shard ? { shard } : {}) });
      assert.deepEqual(
        parts.flat().sort((a, b) => a - b),
        whole,
      );
      assert.ok(parts.every((p) => p.length > 0));
    }
    assert.deepEqual(withoutOptions(["--config", "g.json", "--workers", "2", "--shard=1/2", "--threads", "1", "--force"], ["workers", "shard", "threads"]), [
      "--config",
      "g.json",
      "--force",
    ]);
  });

  it("two processes share the store: every utterance once, one summary, the single process's results; a rerun redoes nothing", async () => {
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 17 });
    const { root } = await miniSplit(10);
    const grid = join(await tempDir(), "grid.json");
    await writeFile(grid, JSON.stringify({ models: [model], recipes: ["fp32", "hqq/4"], splits: ["mini"], full: true, librispeechDir: root }));
    const env = { ...process.env, PTQ_DATA_DIR: await tempDir(), PTQ_PROGRESS: "1" };
    const ptq = (results: string, ...extra: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(ROOT, "build", "src", "cli.js"), "grid", "--config", grid, "--results", results, ...extra], {
          env,
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (d) => (stdout += d));
        p.stderr.on("data", (d) => (stderr += d));
        p.on("close", (code) => resolve({ code, stdout, stderr }));
      });
    const single = await tempDir();
    assert.equal((await ptq(single, "--threads", "1")).code, 0);
    const shared = await tempDir();
    const run = await ptq(shared, "--workers", "2", "--threads", "1");
    assert.equal(run.code, 0, run.stderr);
    const summaries = (await readJsonl<RunSummary>(join(shared, "results.jsonl"))).records;
    assert.equal(summaries.length, 2, "one summary per run, written by the last worker to finish");
    const want = new Map((await readJsonl<RunSummary>(join(single, "results.jsonl"))).records.map((r) => [r.key, r]));
    for (const s of summaries) {
      assert.deepEqual(deterministic(s), deterministic(want.get(s.key)!));
      assert.equal(s.timing.processes, 2);
      const records = (await readJsonl<{ id: string }>(join(shared, "runs", `${s.key}.jsonl`))).records;
      assert.equal(records.length, 10);
      assert.equal(new Set(records.map((r) => r.id)).size, 10, "no utterance recorded twice");
    }
    assert.deepEqual(
      (await readdir(join(shared, "runs"))).filter((f) => f.endsWith(".summarizing")),
      [],
      "no summary marker left",
    );
    const again = await ptq(shared, "--workers", "2", "--threads", "1");
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await readJsonl<RunSummary>(join(shared, "results.jsonl"))).records.length, 2, "finished runs are not redone");
  });
});
