/**
 * Speed and memory per recipe (issue 7's `make bench`): for one model and a fixed utterance set,
 * each recipe in its own process (so that load time and peak memory are its own): time to quantize
 * (from the manifest, calibration included), model load time, encoder time per 30 s window,
 * decoder time per token, RTFx after a warm-up utterance (log-mel, encoder and decoder; audio
 * decoding excluded, as for the peers), peak resident memory, and WER on the set, so that speed is
 * never read without accuracy.
 *
 *   make bench [BENCH_MODEL=dir] [RECIPES=a,b@accuracy-level=4,c@expand=decoder] [LIMIT=20] [THREADS=2] [WORKERS=1]
 *              [LENGTHS=reference|free] [LIBRISPEECH_DIR=...]
 *              [PEERS_PYTHON=python-with-torch-transformers-faster-whisper] [PEERS_CT2=ct2 model dir]
 *
 * Model: BENCH_MODEL, else data/models/whisper-small when imported, else a random-weight model of
 * whisper-small's dimensions (d_model 768, 12 layers, 12 heads; made once in data/bench). Random
 * weights never stop where speech ends, so such a model is decoded at teacher-forced length: each
 * utterance for exactly as many tokens as the tokenizer's encoding of its reference transcript (in
 * sentence case: that is within 10 % of what real weights generate), by every system alike
 * (LENGTHS=reference forces it for real weights too); tables say "teacher-forced length, random
 * weights" and carry no WER. Utterances: the first LIMIT of train-clean-5's evaluation part, each
 * cut to its first 30 s for every system (the kit transcribes one window). WORKERS > 1 splits the
 * utterances over that many processes of THREADS / WORKERS intra-op threads each, started together
 * (throughput on the same cores; memory is then the sum of the processes'). Prints a table; writes
 * data/bench/recipes-<time>.json. With PEERS_PYTHON, the peers of tools/bench-peers/peers.py run on
 * the same utterances in the same layout (processes x threads) and at the same lengths; their WER
 * is computed here with the kit's normalizer, and each recipe's RTFx is printed as a ratio to each
 * peer's. Without PEERS_CT2, a random-weight model is converted for faster-whisper by that Python.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
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
import { buildManifest, defaultLibriSpeechDir, type Utterance } from "../src/hub/librispeech.js";
import { BUNDLED_ASSETS, writeSyntheticWhisper } from "../src/model/synthetic.js";
import { findRecipe } from "../src/recipes/catalog.js";
import { parseRecipeEntry } from "./recipe-entry.js";
import { ensureQuantizedModel } from "../src/recipes/quantize-model.js";
import { dataDir, readJson, repoRoot, writeFileAtomic, writeJsonAtomic } from "../src/util/fs.js";
import { collectGarbage, evaluationEnv } from "../src/util/memory.js";

const execFileAsync = promisify(execFile);

interface PeerResult {
  system: string;
  layout: string; // processes x threads each, as the kit's rows
  rtfx: number;
  wer: number | null; // percent, the kit's normalizer and WER on the peer's texts; null at teacher-forced length
  tokens: number; // generated over the timed utterances (checked against the forced lengths)
}

interface PeerOutput {
  systems: Array<{ system: string; wallSeconds: number; audioSeconds: number; texts: string[]; tokens: number[] }>;
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
  lengths: number[] | null,
): Promise<PeerResult[]> {
  const script = join(repoRoot(), "tools", "bench-peers", "peers.py");
  const perProcess = workers === 1 ? threads : Math.max(1, Math.floor(threads / workers));
  const barrier = await mkdtemp(join(tmpdir(), "peers-barrier-"));
  const shards = Array.from({ length: workers }, (_, w) => files.map((f, i) => [i, f] as const).filter(([i]) => i % workers === w));
  const outputs = await Promise.all(
    shards.map(async (shard, w) => {
      const list = join(dataDir(), "bench", `peers-files-${w}.txt`);
      await writeFileAtomic(list, shard.map(([i, f]) => (lengths ? `${f}\t${lengths[i]}` : f)).join("\n"));
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
    const tokens: number[] = [];
    shards.forEach((shard, w) => {
      shard.forEach(([i], k) => {
        texts[i] = outputs[w]!.systems[s]!.texts[k]!;
        tokens[i] = outputs[w]!.systems[s]!.tokens[k]!;
      });
    });
    if (lengths) {
      const off = tokens.findIndex((t, i) => t !== lengths[i]);
      if (off >= 0) throw new Error(`${first.system} generated ${tokens[off]} tokens for ${files[off]}, not the forced ${lengths[off]}`);
    }
    const audio = outputs.reduce((a, o) => a + o.systems[s]!.audioSeconds, 0);
    const wall = Math.max(...outputs.map((o) => o.systems[s]!.wallSeconds));
    return {
      system: first.system,
      layout: `${workers} x ${perProcess}`,
      rtfx: audio / wall,
      wer: lengths
        ? null
        : corpusWer(
            normalizer,
            texts.map((text, i) => [references[i]!, text]),
          ),
      tokens: tokens.reduce((a, b) => a + b, 0),
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
  wer: number | null; // percent; null at teacher-forced length (random weights)
  utterances: number;
  tokens: number;
}

/** Corpus WER in percent of hypotheses against references, both through Whisper's English normalizer (as the harness scores). */
function corpusWer(normalizer: EnglishTextNormalizer, pairs: Array<[reference: string, hypothesis: string]>): number {
  let counts = emptyCounts();
  for (const [ref, hyp] of pairs) counts = addCounts(counts, countsOf(align(words(normalizer.normalize(ref)), words(normalizer.normalize(hyp)))));
  return 100 * errorRate(counts);
}

const WINDOW_SAMPLES = 30 * SAMPLE_RATE; // one Whisper window: what the kit transcribes, and what every peer is given

/**
 * The forced length of each utterance, or null for free decoding: random weights (ptq synth marks
 * them in config.json) never predict the end of speech, so they decode as many tokens as the
 * tokenizer's encoding of the reference; LENGTHS=reference asks for the same on real weights.
 * Sentence case with a leading space, as Whisper writes: LibriSpeech's upper case encodes into 43 %
 * more tokens than tiny.en generates on test-other, sentence case into 9 % fewer (no punctuation).
 */
async function forcedLengths(modelDir: string, transcripts: string[]): Promise<number[] | null> {
  const mode = process.env.LENGTHS || ((await hasRandomWeights(modelDir)) ? "reference" : "free");
  if (mode === "free") return null;
  if (mode !== "reference") throw new Error(`LENGTHS=${mode}: give reference (teacher-forced length) or free`);
  const tj = (await import("@huggingface/transformers")) as unknown as {
    env: { allowRemoteModels: boolean; localModelPath: string };
    AutoTokenizer: { from_pretrained(id: string): Promise<{ encode(text: string, o: { add_special_tokens: boolean }): number[] }> };
  };
  tj.env.allowRemoteModels = false;
  tj.env.localModelPath = `${dirname(resolve(modelDir))}/`;
  const tokenizer = await tj.AutoTokenizer.from_pretrained(basename(resolve(modelDir)));
  return transcripts.map((t) => {
    const lower = t.toLowerCase();
    return tokenizer.encode(` ${lower.charAt(0).toUpperCase()}${lower.slice(1)}`, { add_special_tokens: false }).length;
  });
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
  lengths: number[] | null,
  threads: number,
  start: () => Promise<void>,
): Promise<ShardResult> {
  resetPeakRss();
  let t = performance.now();
  const transcriber = await Transcriber.load(modelDir, { onnxDir, threads });
  const loadSeconds = (performance.now() - t) / 1000;
  const audios = await Promise.all(paths.map(async ([, path]) => (await loadAudio(path)).subarray(0, WINDOW_SAMPLES)));
  const first = lengths?.[paths[0]![0]];
  await transcriber.transcribe(audios[0]!, first === undefined ? {} : { minNewTokens: first, maxNewTokens: first }); // warm-up, not counted
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
    collectGarbage(); // as the evaluation does between utterances
    const encoded = await transcriber.model.encode(logMelSpectrogram(samples, transcriber.config.numMelBins));
    const decodeStart = performance.now();
    const n = lengths?.[paths[i]![0]];
    const fixed = n === undefined ? {} : { minNewTokens: n, maxNewTokens: n };
    const result = await greedyDecode(stepperFor(transcriber.model, encoded), transcriber.generation, { ...transcriber.options, ...fixed });
    decodeMs += performance.now() - decodeStart;
    audioSeconds += samples.length / SAMPLE_RATE;
    if (n !== undefined && result.tokens.length !== n) throw new Error(`${paths[i]![1]}: ${result.tokens.length} tokens generated, not the forced ${n}`);
    tokens += result.tokens.length + (result.finished ? 1 : 0); // the end-of-text step costs a step too
    texts.push([paths[i]![0], transcriber.tokenizer.decode(result.tokens)]);
  }
  const wallMs = performance.now() - wallStart;
  const peak = peakRssMB();
  await transcriber.close();
  return { loadSeconds, encoderMs, wallMs, audioSeconds, decodeMs, tokens, texts, peakRssMB: peak };
}

/** A worker process: measure its shard, starting when the parent writes a line to stdin. */
async function runWorker(modelDir: string, onnxDir: string, shard: Array<[number, string]>, lengths: number[] | null, threads: number): Promise<void> {
  const start = () =>
    new Promise<void>((resolve) => {
      process.stdout.write("ready\n");
      process.stdin.once("data", () => resolve());
    });
  const result = await measureShard(modelDir, onnxDir, shard, lengths, threads, start);
  process.stdin.pause();
  console.log(JSON.stringify(result));
}

/** Shards in parallel processes (utterance i to worker i mod W); the timed parts start together. */
async function measureInWorkers(
  modelDir: string,
  onnxDir: string,
  paths: string[],
  lengths: number[] | null,
  workers: number,
  threads: number,
): Promise<ShardResult[]> {
  const children = Array.from({ length: workers }, (_, w) => {
    const shard = paths.map((p, i) => [i, p] as [number, string]).filter(([i]) => i % workers === w);
    const args = ["--worker", modelDir, onnxDir, String(threads), JSON.stringify(shard), JSON.stringify(lengths)];
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], {
      stdio: ["pipe", "pipe", "inherit"],
      env: evaluationEnv(),
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

/** The recipe's graphs, quantized (and calibrated) if not cached: in a process of its own, so that the measuring one holds none of it. */
async function prepare(modelDir: string, recipe: string, split: string, manifest: Utterance[], threads: number) {
  const { id, options } = parseRecipeEntry(recipe);
  const calibration =
    findRecipe(id).scheme === "static" ? splitCalibration(modelDir, split, manifest, { threads }, Number(process.env.CALIBRATION_LIMIT || 20)) : undefined;
  return ensureQuantizedModel(modelDir, id, options, calibration);
}

/** One recipe, measured from this process (the parent runs each recipe in a fresh child, after preparing it in another). */
async function measure(
  modelDir: string,
  recipe: string,
  split: string,
  root: string,
  limit: number,
  threads: number,
  workers: number,
  lengths: number[] | null,
): Promise<RecipeBench> {
  const manifest = await buildManifest(root, split);
  const utterances = evaluationPart(manifest, { limit });
  const { options } = parseRecipeEntry(recipe);
  const quantized = await prepare(modelDir, recipe, split, manifest, threads); // cached by now
  const paths = utterances.map((u) => u.path);
  const shards =
    workers === 1
      ? [
          await measureShard(
            modelDir,
            quantized.dir,
            paths.map((p, i) => [i, p]),
            lengths,
            threads,
            async () => {},
          ),
        ]
      : await measureInWorkers(modelDir, quantized.dir, paths, lengths, workers, Math.max(1, Math.floor(threads / workers)));
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
    wer: lengths
      ? null
      : corpusWer(
          normalizer,
          utterances.map((u, i) => [u.transcript, hypotheses.get(i)!]),
        ),
    utterances: utterances.length,
    tokens,
  };
}

const werText = (wer: number | null) => (wer === null ? "-" : wer.toFixed(2));

async function hasRandomWeights(modelDir: string): Promise<boolean> {
  return Boolean((await readJson<{ synthetic?: unknown }>(join(modelDir, "config.json"))).synthetic);
}

/** A CTranslate2 copy of a random-weight model for faster-whisper, made once beside it by the peers' Python. */
async function convertForFasterWhisper(python: string, modelDir: string): Promise<string> {
  const out = `${resolve(modelDir)}-ct2`;
  if (!existsSync(join(out, "model.bin"))) {
    process.stderr.write(`converting ${modelDir} for faster-whisper into ${out}\n`);
    await execFileAsync(python, [join(repoRoot(), "tools", "bench-peers", "peers.py"), "--convert", modelDir, out], { maxBuffer: 1 << 26 });
  }
  return out;
}

async function benchModel(): Promise<string> {
  if (process.env.BENCH_MODEL) return process.env.BENCH_MODEL;
  const small = join(dataDir(), "models", "whisper-small");
  if (existsSync(join(small, "model.safetensors"))) return small;
  const random = join(dataDir(), "bench", "small-dims-model"); // what `ptq synth --d-model 768 --layers 12 --heads 12` writes
  if (!existsSync(join(random, "model.safetensors")))
    await writeSyntheticWhisper(random, { dModel: 768, heads: 12, layers: 12, ffnDim: 3072, assetsDir: BUNDLED_ASSETS });
  return random;
}

async function main(): Promise<void> {
  const [flag, ...rest] = process.argv.slice(2);
  const threads = Number(process.env.THREADS || 2); // the Makefile exports unset variables as empty strings
  const limit = Number(process.env.LIMIT || 20);
  const root = process.env.LIBRISPEECH_DIR || defaultLibriSpeechDir();
  const workers = Number(process.env.WORKERS || 1);
  if (flag === "--worker") {
    const [modelDir, onnxDir, workerThreads, shard, lengths] = rest as [string, string, string, string, string];
    await runWorker(modelDir, onnxDir, JSON.parse(shard) as Array<[number, string]>, JSON.parse(lengths) as number[] | null, Number(workerThreads));
    return;
  }
  if (flag === "--prepare") {
    const [modelDir, recipe] = rest as [string, string];
    await prepare(modelDir, recipe, "train-clean-5", await buildManifest(root, "train-clean-5"), threads);
    return;
  }
  if (flag === "--child") {
    const [modelDir, recipe, lengths] = rest as [string, string, string];
    console.log(JSON.stringify(await measure(modelDir, recipe, "train-clean-5", root, limit, threads, workers, JSON.parse(lengths) as number[] | null)));
    return;
  }
  if (!Number.isInteger(workers) || workers < 1 || workers > threads)
    throw new Error(`WORKERS=${process.env.WORKERS}: give a whole number from 1 to THREADS (${threads})`);
  const modelDir = await benchModel();
  const recipes = (process.env.RECIPES || "fp32,pytorch/dynamic-int8,quanto/w8,quanto/w8a8,quanto/w4,hqq/4,bnb/nf4,bnb/llm-int8").split(",");
  // Lengths here, once: the measuring processes never load the tokenizer library.
  const utterances = evaluationPart(await buildManifest(root, "train-clean-5"), { limit });
  const lengths = await forcedLengths(
    modelDir,
    utterances.map((u) => u.transcript),
  );
  const rows: RecipeBench[] = [];
  for (const recipe of recipes) {
    execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--prepare", modelDir, recipe], {
      env: process.env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--child", modelDir, recipe, JSON.stringify(lengths)], {
      encoding: "utf8",
      env: evaluationEnv(), // as the kit's evaluating processes run
      maxBuffer: 1 << 26,
      stdio: ["ignore", "pipe", "inherit"],
    });
    rows.push(JSON.parse(out.trim().split("\n").at(-1)!) as RecipeBench);
    const r = rows.at(-1)!;
    process.stderr.write(`${recipe}: RTFx ${r.rtfx.toFixed(2)}, WER ${werText(r.wer)} %\n`);
  }
  const fp32 = rows.find((r) => r.recipe === "fp32");
  const decoding = lengths ? `teacher-forced length, ${(await hasRandomWeights(modelDir)) ? "random weights" : "real weights"}` : "free greedy decoding";
  console.log(`model ${modelDir} (${decoding}); ${utterances.length} utterances of train-clean-5; ${threads} threads in ${workers} process(es)`);
  console.log("| recipe | execution | processes x threads | quantize s | load s | encoder ms/window | decoder ms/token | RTFx | x fp32 | peak MB | WER % |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.recipe} | ${r.execution} | ${r.layout} | ${r.quantizeSeconds.toFixed(1)} | ${r.loadSeconds.toFixed(2)} | ${r.encoderMsPerWindow.toFixed(0)} | ${r.decoderMsPerToken.toFixed(1)} | ${r.rtfx.toFixed(2)} | ${fp32 ? (r.rtfx / fp32.rtfx).toFixed(2) : "-"} | ${r.peakRssMB.toFixed(0)} | ${werText(r.wer)} |`,
    );
  }
  let peers: PeerResult[] = [];
  if (process.env.PEERS_PYTHON) {
    const ct2 = process.env.PEERS_CT2 || ((await hasRandomWeights(modelDir)) ? await convertForFasterWhisper(process.env.PEERS_PYTHON, modelDir) : "-");
    peers = await runPeers(
      process.env.PEERS_PYTHON,
      modelDir,
      ct2,
      threads,
      workers,
      utterances.map((u) => u.path),
      utterances.map((u) => u.transcript),
      lengths,
    );
    console.log(`\n| peer (${decoding}) | processes x threads | RTFx | tokens | WER % |\n|---|---|---|---|---|`);
    for (const p of peers) console.log(`| ${p.system} | ${p.layout} | ${p.rtfx.toFixed(2)} | ${p.tokens} | ${werText(p.wer)} |`);
    console.log(`\n| recipe | ${peers.map((p) => `RTFx / ${p.system}`).join(" | ")} |\n|---|${peers.map(() => "---").join("|")}|`);
    for (const r of rows) console.log(`| ${r.recipe} | ${peers.map((p) => (r.rtfx / p.rtfx).toFixed(2)).join(" | ")} |`);
  }
  const file = join(dataDir(), "bench", `recipes-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeJsonAtomic(file, { model: modelDir, decoding, lengths, threads, workers, limit, rows, peers });
  console.log(`written: ${file}`);
}

await main();
