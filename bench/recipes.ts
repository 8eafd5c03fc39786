/**
 * Speed and memory per recipe (issue 7's `make bench`): for one model and a fixed utterance set,
 * each recipe in its own process (so that load time and peak memory are its own): time to quantize
 * (from the manifest, calibration included), model load time, encoder time per 30 s window,
 * decoder time per token, RTFx after a warm-up utterance (log-mel, encoder and decoder; audio
 * decoding excluded, as for the peers), peak resident memory, and WER on the set, so that speed is
 * never read without accuracy.
 *
 *   make bench [BENCH_MODEL=dir] [RECIPES=a,b@accuracy-level=4] [LIMIT=20] [THREADS=2] [WORKERS=1]
 *              [LIBRISPEECH_DIR=...] [PEERS_PYTHON=python-with-torch-transformers-faster-whisper]
 *              [PEERS_CT2=ct2 model dir]
 *
 * Model: BENCH_MODEL, else data/models/whisper-small when imported, else a random-weight model of
 * whisper-tiny's dimensions (timings only: its WER means nothing). Utterances: the first LIMIT of
 * train-clean-5's evaluation part. WORKERS > 1 splits the utterances over that many processes of
 * THREADS / WORKERS intra-op threads each, started together (throughput on the same cores; memory
 * is then the sum of the processes'). Prints a table; writes data/bench/recipes-<time>.json.
 * With PEERS_PYTHON, the peers of tools/bench-peers/peers.py run on the same utterances in the
 * same layout (processes x threads); their WER is computed here with the kit's normalizer, and
 * each recipe's RTFx is printed as a ratio to each peer's.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadAudio, SAMPLE_RATE } from "../src/audio/decode.js";
import { logMelSpectrogram } from "../src/audio/mel.js";
import { greedyDecode } from "../src/asr/greedy.js";
import { stepperFor, Transcriber } from "../src/asr/transcriber.js";
import { EnglishTextNormalizer } from "../src/eval/normalizers.js";
import { peakRssMB, resetPeakRss } from "../src/eval/runner.js";
import { splitCalibration } from "../src/eval/jobs.js";
import { evaluationPart } from "../src/eval/splits.js";
import { addCounts, align, countsOf, emptyCounts, errorRate, words } from "../src/eval/wer.js";
import { buildManifest, defaultLibriSpeechDir } from "../src/hub/librispeech.js";
import { BUNDLED_ASSETS, writeSyntheticWhisper } from "../src/model/synthetic.js";
import { findRecipe, type RecipeOptions } from "../src/recipes/catalog.js";
import { ensureQuantizedModel } from "../src/recipes/quantize-model.js";
import { dataDir, repoRoot, writeFileAtomic, writeJsonAtomic } from "../src/util/fs.js";

const execFileAsync = promisify(execFile);

interface PeerResult {
  system: string;
  layout: string; // processes x threads each, as the kit's rows
  rtfx: number;
  wer: number; // percent, the kit's normalizer and WER on the peer's texts
}

interface PeerOutput {
  systems: Array<{ system: string; wallSeconds: number; audioSeconds: number; texts: string[] }>;
}

/**
 * tools/bench-peers/peers.py on the same files, greedy, in the kit's layout: W processes of
 * THREADS / W threads, each on every W-th file, each system's timed part started together (a
 * barrier folder). RTFx: all audio over the slowest process's wall time. WER scored here, as the
 * kit scores its own.
 */
async function runPeers(
  python: string,
  modelDir: string,
  ct2: string,
  threads: number,
  workers: number,
  files: string[],
  references: string[],
): Promise<PeerResult[]> {
  const script = join(repoRoot(), "tools", "bench-peers", "peers.py");
  const perProcess = workers === 1 ? threads : Math.max(1, Math.floor(threads / workers));
  const barrier = await mkdtemp(join(tmpdir(), "peers-barrier-"));
  const shards = Array.from({ length: workers }, (_, w) => files.map((f, i) => [i, f] as const).filter(([i]) => i % workers === w));
  const outputs = await Promise.all(
    shards.map(async (shard, w) => {
      const list = join(dataDir(), "bench", `peers-files-${w}.txt`);
      await writeFileAtomic(list, shard.map(([, f]) => f).join("\n"));
      const { stdout } = await execFileAsync(python, [script, modelDir, ct2, String(perProcess), list, barrier, String(workers)], {
        encoding: "utf8",
        maxBuffer: 1 << 26,
      });
      return JSON.parse(stdout) as PeerOutput;
    }),
  );
  await rm(barrier, { recursive: true, force: true });
  const normalizer = await EnglishTextNormalizer.load(modelDir);
  return outputs[0]!.systems.map((first, s) => {
    const texts: string[] = [];
    shards.forEach((shard, w) => {
      shard.forEach(([i], k) => {
        texts[i] = outputs[w]!.systems[s]!.texts[k]!;
      });
    });
    const audio = outputs.reduce((a, o) => a + o.systems[s]!.audioSeconds, 0);
    const wall = Math.max(...outputs.map((o) => o.systems[s]!.wallSeconds));
    return {
      system: first.system,
      layout: `${workers} x ${perProcess}`,
      rtfx: audio / wall,
      wer: corpusWer(
        normalizer,
        texts.map((text, i) => [references[i]!, text]),
      ),
    };
  });
}

interface RecipeBench {
  recipe: string;
  execution: string;
  layout: string; // processes x intra-op threads each
  quantizeSeconds: number;
  loadSeconds: number;
  encoderMsPerWindow: number;
  decoderMsPerToken: number;
  rtfx: number;
  peakRssMB: number;
  wer: number; // percent
  utterances: number;
  tokens: number;
}

/** Corpus WER in percent of hypotheses against references, both through Whisper's English normalizer (as the harness scores). */
function corpusWer(normalizer: EnglishTextNormalizer, pairs: Array<[reference: string, hypothesis: string]>): number {
  let counts = emptyCounts();
  for (const [ref, hyp] of pairs) counts = addCounts(counts, countsOf(align(words(normalizer.normalize(ref)), words(normalizer.normalize(hyp)))));
  return 100 * errorRate(counts);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** What one process measured on its share of the utterances (timed after its warm-up). */
interface ShardResult {
  loadSeconds: number;
  encoderMs: number[];
  wallMs: number; // log-mel + encoder + decoder over the shard; audio decoding excluded, as for the peers
  audioSeconds: number;
  decodeMs: number;
  tokens: number;
  texts: Array<[index: number, hypothesis: string]>;
  peakRssMB: number;
}

/**
 * Load the recipe's graphs, warm up on the first utterance, decode the shard's audio, then wait for
 * `start` (all workers begin together) and time features, encoder and greedy decoding.
 */
async function measureShard(
  modelDir: string,
  onnxDir: string,
  paths: Array<[index: number, path: string]>,
  threads: number,
  start: () => Promise<void>,
): Promise<ShardResult> {
  resetPeakRss();
  let t = performance.now();
  const transcriber = await Transcriber.load(modelDir, { onnxDir, threads });
  const loadSeconds = (performance.now() - t) / 1000;
  const audios = await Promise.all(paths.map(([, path]) => loadAudio(path)));
  await transcriber.transcribe(audios[0]!); // warm-up, not counted
  const mel0 = logMelSpectrogram(audios[0]!, transcriber.config.numMelBins);
  const encoderMs: number[] = [];
  for (let i = 0; i < 3; i++) {
    t = performance.now();
    await transcriber.model.encode(mel0);
    encoderMs.push(performance.now() - t);
  }
  await start();
  let decodeMs = 0;
  let tokens = 0;
  let audioSeconds = 0;
  const texts: Array<[number, string]> = [];
  const wallStart = performance.now();
  for (let i = 0; i < paths.length; i++) {
    const samples = audios[i]!;
    const encoded = await transcriber.model.encode(logMelSpectrogram(samples, transcriber.config.numMelBins));
    const decodeStart = performance.now();
    const result = await greedyDecode(stepperFor(transcriber.model, encoded), transcriber.generation, transcriber.options);
    decodeMs += performance.now() - decodeStart;
    audioSeconds += samples.length / SAMPLE_RATE;
    tokens += result.tokens.length + 1; // the end-of-text step costs a step too
    texts.push([paths[i]![0], transcriber.tokenizer.decode(result.tokens)]);
  }
  const wallMs = performance.now() - wallStart;
  const peak = peakRssMB();
  await transcriber.close();
  return { loadSeconds, encoderMs, wallMs, audioSeconds, decodeMs, tokens, texts, peakRssMB: peak };
}

/** A worker process: measure its shard, starting when the parent writes a line to stdin. */
async function runWorker(modelDir: string, onnxDir: string, shard: Array<[number, string]>, threads: number): Promise<void> {
  const start = () =>
    new Promise<void>((resolve) => {
      process.stdout.write("ready\n");
      process.stdin.once("data", () => resolve());
    });
  const result = await measureShard(modelDir, onnxDir, shard, threads, start);
  process.stdin.pause();
  console.log(JSON.stringify(result));
}

/** Shards in parallel processes (utterance i to worker i mod W); the timed parts start together. */
async function measureInWorkers(modelDir: string, onnxDir: string, paths: string[], workers: number, threads: number): Promise<ShardResult[]> {
  const children = Array.from({ length: workers }, (_, w) => {
    const shard = paths.map((p, i) => [i, p] as [number, string]).filter(([i]) => i % workers === w);
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--worker", modelDir, onnxDir, String(threads), JSON.stringify(shard)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let out = "";
    const ready = new Promise<void>((resolve) =>
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("ready\n")) resolve();
      }),
    );
    const done = new Promise<ShardResult>((resolve, reject) =>
      child.on("close", (code) =>
        code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!) as ShardResult) : reject(new Error(`bench worker ${w} exited with ${code}`)),
      ),
    );
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.stdin.end("go\n");
  return Promise.all(children.map((c) => c.done));
}

/** A RECIPES entry: a recipe id, optionally "@accuracy-level=4" (MatMulNBits with int8 activations). */
function parseRecipeEntry(entry: string): { id: string; options: RecipeOptions } {
  const [id, ...settings] = entry.split("@");
  const options: RecipeOptions = {};
  for (const setting of settings) {
    const m = /^accuracy-level=(0|4)$/.exec(setting);
    if (!m) throw new Error(`RECIPES entry '${entry}': only @accuracy-level=0|4 is understood`);
    options.accuracyLevel = Number(m[1]) as 0 | 4;
  }
  return { id: id!, options };
}

/** One recipe, measured from this process (the parent runs each recipe in a fresh child). */
async function measure(modelDir: string, recipe: string, split: string, root: string, limit: number, threads: number, workers: number): Promise<RecipeBench> {
  const manifest = await buildManifest(root, split);
  const utterances = evaluationPart(manifest, { limit });
  const { id, options } = parseRecipeEntry(recipe);
  const calibration =
    findRecipe(id).scheme === "static" ? splitCalibration(modelDir, split, manifest, { threads }, Number(process.env.CALIBRATION_LIMIT || 20)) : undefined;
  const quantized = await ensureQuantizedModel(modelDir, id, options, calibration);
  const paths = utterances.map((u) => u.path);
  const shards =
    workers === 1
      ? [
          await measureShard(
            modelDir,
            quantized.dir,
            paths.map((p, i) => [i, p]),
            threads,
            async () => {},
          ),
        ]
      : await measureInWorkers(modelDir, quantized.dir, paths, workers, Math.max(1, Math.floor(threads / workers)));
  const normalizer = await EnglishTextNormalizer.load(modelDir);
  const hypotheses = new Map(shards.flatMap((s) => s.texts));
  const execution =
    [...new Set(quantized.manifest.parameters.map((p) => p.execution ?? "fp32"))].filter((e) => e !== "fp32" || recipe === "fp32").join(" + ") +
    (options.accuracyLevel === 4 ? " (int8 activations)" : "");
  const audio = shards.reduce((a, s) => a + s.audioSeconds, 0);
  const tokens = shards.reduce((a, s) => a + s.tokens, 0);
  return {
    recipe,
    execution,
    layout: `${workers} x ${workers === 1 ? threads : Math.max(1, Math.floor(threads / workers))}`,
    quantizeSeconds: quantized.manifest.quantizeSeconds ?? 0,
    loadSeconds: Math.max(...shards.map((s) => s.loadSeconds)),
    encoderMsPerWindow: median(shards[0]!.encoderMs),
    decoderMsPerToken: shards.reduce((a, s) => a + s.decodeMs, 0) / tokens,
    rtfx: audio / (Math.max(...shards.map((s) => s.wallMs)) / 1000), // the shards ran at the same time
    peakRssMB: shards.reduce((a, s) => a + s.peakRssMB, 0), // all workers together
    wer: corpusWer(
      normalizer,
      utterances.map((u, i) => [u.transcript, hypotheses.get(i)!]),
    ),
    utterances: utterances.length,
    tokens,
  };
}

async function benchModel(): Promise<string> {
  if (process.env.BENCH_MODEL) return process.env.BENCH_MODEL;
  const small = join(dataDir(), "models", "whisper-small");
  if (existsSync(join(small, "model.safetensors"))) return small;
  const random = join(dataDir(), "bench", "tiny-dims-model");
  if (!existsSync(join(random, "model.safetensors")))
    await writeSyntheticWhisper(random, { dModel: 384, heads: 6, layers: 4, ffnDim: 1536, assetsDir: BUNDLED_ASSETS });
  return random;
}

async function main(): Promise<void> {
  const [flag, ...rest] = process.argv.slice(2);
  const threads = Number(process.env.THREADS || 2); // the Makefile exports unset variables as empty strings
  const limit = Number(process.env.LIMIT || 20);
  const root = process.env.LIBRISPEECH_DIR || defaultLibriSpeechDir();
  const workers = Number(process.env.WORKERS || 1);
  if (flag === "--worker") {
    const [modelDir, onnxDir, workerThreads, shard] = rest as [string, string, string, string];
    await runWorker(modelDir, onnxDir, JSON.parse(shard) as Array<[number, string]>, Number(workerThreads));
    return;
  }
  if (flag === "--child") {
    const [modelDir, recipe] = rest as [string, string];
    console.log(JSON.stringify(await measure(modelDir, recipe, "train-clean-5", root, limit, threads, workers)));
    return;
  }
  if (!Number.isInteger(workers) || workers < 1 || workers > threads)
    throw new Error(`WORKERS=${process.env.WORKERS}: give a whole number from 1 to THREADS (${threads})`);
  const modelDir = await benchModel();
  const recipes = (process.env.RECIPES || "fp32,pytorch/dynamic-int8,quanto/w8,quanto/w8a8,quanto/w4,hqq/4,bnb/nf4,bnb/llm-int8").split(",");
  const rows: RecipeBench[] = [];
  for (const recipe of recipes) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--child", modelDir, recipe], {
      encoding: "utf8",
      env: process.env,
      maxBuffer: 1 << 26,
      stdio: ["ignore", "pipe", "inherit"],
    });
    rows.push(JSON.parse(out.trim().split("\n").at(-1)!) as RecipeBench);
    const r = rows.at(-1)!;
    process.stderr.write(`${recipe}: RTFx ${r.rtfx.toFixed(2)}, WER ${r.wer.toFixed(2)} %\n`);
  }
  const fp32 = rows.find((r) => r.recipe === "fp32");
  console.log(`model ${modelDir}; ${rows[0]?.utterances ?? 0} utterances of train-clean-5; ${threads} threads in ${workers} process(es)`);
  console.log("| recipe | execution | processes x threads | quantize s | load s | encoder ms/window | decoder ms/token | RTFx | x fp32 | peak MB | WER % |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.recipe} | ${r.execution} | ${r.layout} | ${r.quantizeSeconds.toFixed(1)} | ${r.loadSeconds.toFixed(2)} | ${r.encoderMsPerWindow.toFixed(0)} | ${r.decoderMsPerToken.toFixed(1)} | ${r.rtfx.toFixed(2)} | ${fp32 ? (r.rtfx / fp32.rtfx).toFixed(2) : "-"} | ${r.peakRssMB.toFixed(0)} | ${r.wer.toFixed(2)} |`,
    );
  }
  let peers: PeerResult[] = [];
  if (process.env.PEERS_PYTHON) {
    const utterances = evaluationPart(await buildManifest(root, "train-clean-5"), { limit });
    peers = await runPeers(
      process.env.PEERS_PYTHON,
      modelDir,
      process.env.PEERS_CT2 ?? "-",
      threads,
      workers,
      utterances.map((u) => u.path),
      utterances.map((u) => u.transcript),
    );
    console.log("\n| peer | processes x threads | RTFx | WER % |\n|---|---|---|---|");
    for (const p of peers) console.log(`| ${p.system} | ${p.layout} | ${p.rtfx.toFixed(2)} | ${p.wer.toFixed(2)} |`);
    console.log(`\n| recipe | ${peers.map((p) => `RTFx / ${p.system}`).join(" | ")} |\n|---|${peers.map(() => "---").join("|")}|`);
    for (const r of rows) console.log(`| ${r.recipe} | ${peers.map((p) => (r.rtfx / p.rtfx).toFixed(2)).join(" | ")} |`);
  }
  const file = join(dataDir(), "bench", `recipes-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeJsonAtomic(file, { model: modelDir, threads, workers, limit, rows, peers });
  console.log(`written: ${file}`);
}

await main();
