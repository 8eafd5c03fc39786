/**
 * Speed and memory per recipe (issue 7's `make bench`, the kit's side; the peers are not in yet):
 * for one model and a fixed utterance set, each recipe in its own process (so that load time and
 * peak memory are its own): time to quantize (from the manifest, calibration included), model
 * load time, encoder time per 30 s window, decoder time per token, RTFx after a warm-up utterance,
 * peak resident memory, and WER on the set, so that speed is never read without accuracy.
 *
 *   make bench [BENCH_MODEL=dir] [RECIPES=a,b] [LIMIT=20] [THREADS=2] [LIBRISPEECH_DIR=...]
 *              [PEERS_PYTHON=python-with-torch-transformers-faster-whisper] [PEERS_CT2=ct2 model dir]
 *
 * Model: BENCH_MODEL, else data/models/whisper-small when imported, else a random-weight model of
 * whisper-tiny's dimensions (timings only: its WER means nothing). Utterances: the first LIMIT of
 * train-clean-5's evaluation part. Prints a table; writes data/bench/recipes-<time>.json.
 * With PEERS_PYTHON, the peers of tools/bench-peers/peers.py run on the same utterances and
 * threads; their WER is computed here with the kit's normalizer, and each recipe's RTFx is printed
 * as a ratio to each peer's.
 */
import { execFileSync } from "node:child_process";
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
import { buildManifest } from "../src/hub/librispeech.js";
import { writeSyntheticWhisper } from "../src/model/synthetic.js";
import { findRecipe } from "../src/recipes/catalog.js";
import { ensureQuantizedModel } from "../src/recipes/quantize-model.js";
import { dataDir, repoRoot, sharedDataDir, writeFileAtomic, writeJsonAtomic } from "../src/util/fs.js";

interface PeerResult {
  system: string;
  rtfx: number;
  wer: number; // percent, the kit's normalizer and WER on the peer's texts
}

/** tools/bench-peers/peers.py on the same files and threads; WER scored here, as the kit scores its own. */
async function runPeers(python: string, modelDir: string, ct2: string, threads: number, files: string[], references: string[]): Promise<PeerResult[]> {
  const list = join(dataDir(), "bench", "peers-files.txt");
  await writeFileAtomic(list, files.join("\n"));
  const script = join(repoRoot(), "tools", "bench-peers", "peers.py");
  const out = JSON.parse(execFileSync(python, [script, modelDir, ct2, String(threads), list], { encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "ignore"] })) as { systems: Array<{ system: string; rtfx: number; texts: string[] }> };
  const normalizer = await EnglishTextNormalizer.load(modelDir);
  return out.systems.map((s) => ({ system: s.system, rtfx: s.rtfx, wer: corpusWer(normalizer, s.texts.map((text, i) => [references[i]!, text])) }));
}

interface RecipeBench {
  recipe: string;
  execution: string;
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

/** One recipe, measured in this process (the parent runs each in a fresh child). */
async function measure(modelDir: string, recipe: string, split: string, root: string, limit: number, threads: number): Promise<RecipeBench> {
  const manifest = await buildManifest(root, split);
  const utterances = evaluationPart(manifest, { limit });
  const calibration = findRecipe(recipe).scheme === "static" ? splitCalibration(modelDir, split, manifest, { threads }, Number(process.env.CALIBRATION_LIMIT ?? 20)) : undefined;
  const quantized = await ensureQuantizedModel(modelDir, recipe, {}, calibration);
  resetPeakRss();
  let t = performance.now();
  const transcriber = await Transcriber.load(modelDir, { onnxDir: quantized.dir, threads });
  const loadSeconds = (performance.now() - t) / 1000;
  const normalizer = await EnglishTextNormalizer.load(modelDir);
  await transcriber.transcribeFile(utterances[0]!.path); // warm-up, not counted
  const mel0 = logMelSpectrogram(await loadAudio(utterances[0]!.path), transcriber.config.numMelBins);
  const encoderMs: number[] = [];
  for (let i = 0; i < 3; i++) {
    t = performance.now();
    await transcriber.model.encode(mel0);
    encoderMs.push(performance.now() - t);
  }
  let wall = 0;
  let audio = 0;
  let decodeMs = 0;
  let tokens = 0;
  const texts: Array<[string, string]> = [];
  for (const u of utterances) {
    const start = performance.now();
    const samples = await loadAudio(u.path);
    const encoded = await transcriber.model.encode(logMelSpectrogram(samples, transcriber.config.numMelBins));
    const decodeStart = performance.now();
    const result = await greedyDecode(stepperFor(transcriber.model, encoded), transcriber.generation, transcriber.options);
    decodeMs += performance.now() - decodeStart;
    wall += performance.now() - start;
    audio += samples.length / SAMPLE_RATE;
    tokens += result.tokens.length + 1; // the end-of-text step costs a step too
    texts.push([u.transcript, transcriber.tokenizer.decode(result.tokens)]);
  }
  const peak = peakRssMB();
  await transcriber.close();
  const execution = [...new Set(quantized.manifest.parameters.map((p) => p.execution ?? "fp32"))].filter((e) => e !== "fp32" || recipe === "fp32").join(" + ");
  return { recipe, execution, quantizeSeconds: quantized.manifest.quantizeSeconds ?? 0, loadSeconds, encoderMsPerWindow: median(encoderMs), decoderMsPerToken: decodeMs / tokens, rtfx: audio / (wall / 1000), peakRssMB: peak, wer: corpusWer(normalizer, texts), utterances: utterances.length, tokens };
}

async function benchModel(): Promise<string> {
  if (process.env.BENCH_MODEL) return process.env.BENCH_MODEL;
  const small = join(dataDir(), "models", "whisper-small");
  if (existsSync(join(small, "model.safetensors"))) return small;
  const random = join(dataDir(), "bench", "tiny-dims-model");
  if (!existsSync(join(random, "model.safetensors"))) await writeSyntheticWhisper(random, { dModel: 384, heads: 6, layers: 4, ffnDim: 1536, assetsDir: join(sharedDataDir(), "whisper-assets", "whisper-tiny.en") });
  return random;
}

async function main(): Promise<void> {
  const [flag, ...rest] = process.argv.slice(2);
  const threads = Number(process.env.THREADS ?? 2);
  const limit = Number(process.env.LIMIT ?? 20);
  const root = process.env.LIBRISPEECH_DIR ?? join(sharedDataDir(), "librispeech", "LibriSpeech");
  if (flag === "--child") {
    const [modelDir, recipe] = rest as [string, string];
    console.log(JSON.stringify(await measure(modelDir, recipe, "train-clean-5", root, limit, threads)));
    return;
  }
  const modelDir = await benchModel();
  const recipes = (process.env.RECIPES ?? "fp32,pytorch/dynamic-int8,quanto/w8,quanto/w8a8,quanto/w4,hqq/4,bnb/nf4,bnb/llm-int8").split(",");
  const rows: RecipeBench[] = [];
  for (const recipe of recipes) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--child", modelDir, recipe], { encoding: "utf8", env: process.env, maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "inherit"] });
    rows.push(JSON.parse(out.trim().split("\n").at(-1)!) as RecipeBench);
    const r = rows.at(-1)!;
    process.stderr.write(`${recipe}: RTFx ${r.rtfx.toFixed(2)}, WER ${r.wer.toFixed(2)} %\n`);
  }
  const fp32 = rows.find((r) => r.recipe === "fp32");
  console.log(`model ${modelDir}; ${rows[0]?.utterances ?? 0} utterances of train-clean-5; ${threads} threads`);
  console.log("| recipe | execution | quantize s | load s | encoder ms/window | decoder ms/token | RTFx | x fp32 | peak MB | WER % |");
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.recipe} | ${r.execution} | ${r.quantizeSeconds.toFixed(1)} | ${r.loadSeconds.toFixed(2)} | ${r.encoderMsPerWindow.toFixed(0)} | ${r.decoderMsPerToken.toFixed(1)} | ${r.rtfx.toFixed(2)} | ${fp32 ? (r.rtfx / fp32.rtfx).toFixed(2) : "-"} | ${r.peakRssMB.toFixed(0)} | ${r.wer.toFixed(2)} |`);
  }
  let peers: PeerResult[] = [];
  if (process.env.PEERS_PYTHON) {
    const utterances = evaluationPart(await buildManifest(root, "train-clean-5"), { limit });
    peers = await runPeers(process.env.PEERS_PYTHON, modelDir, process.env.PEERS_CT2 ?? "-", threads, utterances.map((u) => u.path), utterances.map((u) => u.transcript));
    console.log("\n| peer | RTFx | WER % |\n|---|---|---|");
    for (const p of peers) console.log(`| ${p.system} | ${p.rtfx.toFixed(2)} | ${p.wer.toFixed(2)} |`);
    console.log(`\n| recipe | ${peers.map((p) => `RTFx / ${p.system}`).join(" | ")} |\n|---|${peers.map(() => "---").join("|")}|`);
    for (const r of rows) console.log(`| ${r.recipe} | ${peers.map((p) => (r.rtfx / p.rtfx).toFixed(2)).join(" | ")} |`);
  }
  const file = join(dataDir(), "bench", `recipes-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeJsonAtomic(file, { model: modelDir, threads, limit, rows, peers });
  console.log(`written: ${file}`);
}

await main();
