/**
 * The profiles behind issue 7's note (why a recipe is slow or large), as commands:
 *
 *   node build/bench/profile.js kernels                      MatMulNBits vs fp32 MatMul on one layer
 *   node build/bench/profile.js ops <model dir> <recipe>     onnxruntime's time per operator and node
 *   node build/bench/profile.js memory <model dir> <recipe[@expand=decoder]> [--no-prepack] [--arena] [--config key=value]... [--steps N]
 *   node build/bench/profile.js quantize-times <model dir> [recipes]   each recipe's time to quantize (static: calibration pass apart)
 *
 * Weights of the kernel table are arbitrary (timings do not depend on values); `ops` and `memory`
 * feed a constant log-mel and a fixed token sequence, so they time the graphs, not a transcript.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { OnnxWhisper, type KvCache, type RuntimeOptions } from "../src/asr/onnx-whisper.js";
import { inputFrames, readWhisperConfig } from "../src/model/config.js";
import { DataType, GraphBuilder, writeOnnxModel } from "../src/model/onnx.js";
import { RECIPES } from "../src/recipes/catalog.js";
import { calibrateActivations } from "../src/asr/calibrate.js";
import { type CalibrationRun, ensureQuantizedModel } from "../src/recipes/quantize-model.js";
import { repoRoot } from "../src/util/fs.js";
import { parseRecipeEntry } from "./recipe-entry.js";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeRuns(session: ort.InferenceSession, rows: number, k: number): Promise<number> {
  const x = new ort.Tensor("float32", new Float32Array(rows * k).fill(0.5), [rows, k]);
  for (let i = 0; i < 3; i++) await session.run({ x });
  const times: number[] = [];
  for (let i = 0; i < (rows === 1 ? 200 : 10); i++) {
    const t = performance.now();
    await session.run({ x });
    times.push(performance.now() - t);
  }
  return median(times) * 1000; // µs
}

/** One [rows, 384] x [384, 1536] product (whisper-tiny's fc1) per MatMulNBits variant, and in fp32. */
async function kernels(): Promise<void> {
  const [K, N, block] = [384, 1536, 64];
  const dir = await mkdtemp(join(tmpdir(), "ptq-kernels-"));
  const session = async (build: (g: GraphBuilder) => void, file: string) => {
    const g = new GraphBuilder("layer");
    g.input("x", DataType.FLOAT, ["rows", K]);
    build(g);
    g.output("y", DataType.FLOAT, ["rows", N]);
    await writeOnnxModel(g, join(dir, file), { opset: 17, domains: { "com.microsoft": 1 } });
    return ort.InferenceSession.create(join(dir, file), { intraOpNumThreads: 2, graphOptimizationLevel: "all" });
  };
  console.log("| kernel | zero points | accuracy_level | 1 row µs | 1500 rows µs |\n|---|---|---|---|---|");
  const dense = await session((g) => {
    g.initializer("w", new Float32Array(K * N).fill(0.01), [K, N]);
    g.op("MatMul", ["x", "w"], {}, { output: "y" });
  }, "dense.onnx");
  console.log(`| fp32 MatMul | - | - | ${(await timeRuns(dense, 1, K)).toFixed(0)} | ${(await timeRuns(dense, 1500, K)).toFixed(0)} |`);
  for (const bits of [8, 4, 2]) {
    const blocks = K / block;
    for (const zeros of ["float", "uint8", "none"] as const) {
      for (const accuracy of [0, 4]) {
        const s = await session((g) => {
          const packed = Uint8Array.from({ length: N * blocks * ((block * bits) / 8) }, (_, i) => (i * 37) & 255);
          g.initializer("w", packed, [N, blocks, (block * bits) / 8], DataType.UINT8);
          g.initializer("s", new Float32Array(N * blocks).fill(0.01), [N * blocks]);
          const inputs = ["x", "w", "s"];
          if (zeros === "float") g.initializer("z", new Float32Array(N * blocks).fill(2 ** (bits - 1) - 0.3), [N * blocks]);
          if (zeros === "uint8") g.initializer("z", new Uint8Array(N * Math.ceil((blocks * bits) / 8)), [N * Math.ceil((blocks * bits) / 8)], DataType.UINT8);
          if (zeros !== "none") inputs.push("z");
          g.op("MatMulNBits", inputs, { K, N, bits, block_size: block, accuracy_level: accuracy }, { domain: "com.microsoft", output: "y" });
        }, `nbits-${bits}-${zeros}-${accuracy}.onnx`);
        const cell = async (rows: number) =>
          timeRuns(s, rows, K).then(
            (us) => us.toFixed(0),
            (err: Error) => `fails (${err.message.split("\n")[0]!.slice(-60)})`,
          );
        console.log(`| MatMulNBits ${bits}-bit | ${zeros} | ${accuracy} | ${await cell(1)} | ${await cell(1500)} |`);
      }
    }
  }
  await rm(dir, { recursive: true, force: true });
}

/** onnxruntime's own profile of 3 encoder calls and 50 decoder steps (after one call not counted): time per operator type and the costliest nodes. */
async function ops(modelDir: string, recipe: string): Promise<void> {
  const { dir } = await ensureQuantizedModel(modelDir, recipe);
  const config = await readWhisperConfig(join(modelDir, "config.json"));
  const prefix = join(await mkdtemp(join(tmpdir(), "ptq-profile-")), "run");
  for (const [graph, steps] of [
    ["encoder", 4],
    ["decoder", 51],
  ] as const) {
    const session = await ort.InferenceSession.create(join(dir, `${graph}.onnx`), {
      intraOpNumThreads: 2,
      graphOptimizationLevel: "all",
      enableProfiling: true,
      profileFilePrefix: `${prefix}-${graph}`,
    });
    const encoder = graph === "encoder" ? session : await ort.InferenceSession.create(join(dir, "encoder.onnx"), { intraOpNumThreads: 2 });
    const features = new ort.Tensor("float32", new Float32Array(config.numMelBins * inputFrames(config)).fill(0.1), [
      1,
      config.numMelBins,
      inputFrames(config),
    ]);
    const encoded = await encoder.run({ input_features: features });
    if (graph === "encoder") for (let i = 1; i < steps; i++) await encoder.run({ input_features: features });
    if (graph === "decoder") {
      const heads = config.decoderHeads;
      let past: KvCache = {};
      for (let l = 0; l < config.decoderLayers; l++)
        for (const kv of ["key", "value"]) past[`past_${kv}.${l}`] = new ort.Tensor("float32", new Float32Array(0), [1, heads, 0, config.dModel / heads]);
      const cross = Object.fromEntries(session.inputNames.filter((n) => n.startsWith("cross_")).map((n) => [n, encoded[n]!]));
      let ids = [50257, 50362];
      for (let i = 0; i < steps; i++) {
        const out = await session.run({ ...cross, ...past, input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]) });
        past = {};
        for (let l = 0; l < config.decoderLayers; l++) for (const kv of ["key", "value"]) past[`past_${kv}.${l}`] = out[`present_${kv}.${l}`]!;
        ids = [1000 + i];
      }
    }
    session.endProfiling(); // writes the file; onnxruntime-node does not return its name
    const events = JSON.parse(await readFile(await profileFile(prefix, graph), "utf8")) as Array<{
      cat: string;
      name: string;
      ts: number;
      dur: number;
      args?: { op_name?: string };
    }>;
    const calls = events.filter((e) => e.cat === "Session" && e.name === "model_run").sort((a, b) => a.ts - b.ts);
    const warmedUp = calls[0]!.ts + calls[0]!.dur; // the first call (allocations, first touch of the weights) is left out
    const runs = calls.length - 1;
    const byOp = new Map<string, number>();
    const byNode = new Map<string, number>();
    for (const e of events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts > warmedUp)) {
      byOp.set(e.args!.op_name!, (byOp.get(e.args!.op_name!) ?? 0) + e.dur);
      const node = e.name.replace(/_kernel_time$/, "");
      byNode.set(node, (byNode.get(node) ?? 0) + e.dur);
    }
    const total = [...byOp.values()].reduce((a, b) => a + b, 0);
    console.log(
      `\n${recipe} ${graph}: ${(total / runs / 1000).toFixed(2)} ms of kernels per call (${runs} calls)\n| operator | ms per call | share |\n|---|---|---|`,
    );
    for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 8))
      console.log(`| ${op} | ${(us / runs / 1000).toFixed(3)} | ${((100 * us) / total).toFixed(1)} % |`);
    console.log("| costliest nodes | | |");
    for (const [node, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 5))
      console.log(`| ${node} | ${(us / runs / 1000).toFixed(3)} | ${((100 * us) / total).toFixed(1)} % |`);
    await session.release();
  }
}

/** The profile file onnxruntime wrote for `graph` (named `<prefix>-<graph>_<date>.json`). */
async function profileFile(prefix: string, graph: string): Promise<string> {
  const folder = join(prefix, "..");
  const name = (await readdir(folder))
    .filter((f) => f.startsWith(`run-${graph}`))
    .sort()
    .at(-1);
  if (!name) throw new Error(`no onnxruntime profile for the ${graph} in ${folder}`);
  return join(folder, name);
}

function memory(): string {
  const status = readFileSync("/proc/self/status", "utf8");
  const mb = (field: string) => (Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]) / 1024).toFixed(0);
  return `RSS ${mb("VmRSS")} MB, peak ${mb("VmHWM")} MB`;
}

/** Resident memory of the sessions: loaded, then after one encoder call and N decoder steps. */
async function sessionMemory(modelDir: string, recipe: string, runtime: RuntimeOptions, steps: number): Promise<void> {
  const { id, options } = parseRecipeEntry(recipe); // e.g. quanto/w8@expand=all
  const { dir } = await ensureQuantizedModel(modelDir, id, options);
  const config = await readWhisperConfig(join(modelDir, "config.json"));
  const before = memory();
  const model = await OnnxWhisper.load(dir, config, { threads: 2, ...runtime });
  const loaded = memory();
  const e0 = performance.now();
  const encoded = await model.encode(new Float32Array(config.numMelBins * inputFrames(config)).fill(0.1)); // once: a second call's outputs would coexist with the first's
  const encoderMs = `encoder ${(performance.now() - e0).toFixed(0)} ms`;
  let cache: KvCache | null = null;
  let ids = [50257, 50362];
  const t = performance.now();
  for (let i = 0; i < steps; i++) {
    cache = (await model.step(ids, encoded, cache)).cache;
    ids = [1000 + i];
  }
  console.log(
    `${recipe}, ${JSON.stringify(runtime)}: before ${before}; loaded ${loaded}; after encoder + ${steps} steps ${memory()}; ${encoderMs}; ${((performance.now() - t) / steps).toFixed(1)} ms per step`,
  );
}

/**
 * Each recipe's time to quantize on a fresh model folder. Static recipes run their whole path (the
 * calibration graphs, a calibration pass, the final graphs) on one bundled utterance for one token,
 * and the calibration pass itself is timed apart: at random weights it would decode to the length
 * limit, so its time is measured on real weights instead (the grid's manifests).
 */
async function quantizeTimes(modelDir: string, only?: string[]): Promise<void> {
  let total = 0;
  const utterance = join(repoRoot(), "test", "fixtures", "librispeech", "LibriSpeech", "test-clean", "1089", "134686", "1089-134686-0000.flac");
  console.log("| recipe | quantize s | of which calibration pass s | running total s (without calibration passes) |\n|---|---|---|---|");
  for (const recipe of RECIPES.filter((r) => r.quantize && (!only || only.includes(r.id)))) {
    let calibrationSeconds = 0;
    const calibration: CalibrationRun = {
      source: "profile: one bundled utterance, one token",
      run: async (dir) => {
        const started = performance.now();
        const { activations } = await calibrateActivations(modelDir, dir, [utterance], { maxNewTokens: 1 });
        calibrationSeconds = (performance.now() - started) / 1000;
        return activations;
      },
    };
    const { manifest } = await ensureQuantizedModel(modelDir, recipe.id, {}, recipe.scheme === "static" ? calibration : undefined);
    const seconds = manifest.quantizeSeconds ?? 0;
    total += seconds - calibrationSeconds;
    console.log(`| ${recipe.id} | ${seconds.toFixed(1)} | ${recipe.scheme === "static" ? calibrationSeconds.toFixed(1) : "-"} | ${total.toFixed(1)} |`);
  }
}

const [command, ...args] = process.argv.slice(2);
const usage =
  "usage: node build/bench/profile.js kernels | ops <model dir> <recipe> | memory <model dir> <recipe[@expand=decoder]> [--no-prepack] [--arena] [--config key=value]... [--steps N] | quantize-times <model dir> [recipe,recipe,...]";
if (command === "kernels") await kernels();
else if (command === "ops" && args.length === 2) await ops(args[0]!, args[1]!);
else if (command === "memory" && args.length >= 2) {
  const steps = args.includes("--steps") ? Number(args[args.indexOf("--steps") + 1]) : 40;
  const sessionConfig = Object.fromEntries(args.flatMap((a, i) => (args[i - 1] === "--config" ? [a.split("=") as [string, string]] : [])));
  await sessionMemory(
    args[0]!,
    args[1]!,
    {
      ...(args.includes("--no-prepack") ? { prepackWeights: false } : {}),
      ...(args.includes("--arena") ? { cpuMemArena: true } : {}),
      ...(Object.keys(sessionConfig).length ? { sessionConfig } : {}),
    },
    steps,
  );
} else if (command === "quantize-times" && args.length >= 1) await quantizeTimes(args[0]!, args[1]?.split(","));
else throw new Error(usage);
