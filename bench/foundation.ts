/**
 * Foundation timings (issue 2): building the fp32 graphs, encoder time per 30 s window, decoder
 * time per token, for a Whisper of whisper-tiny's exact dimensions (random weights: timings do not
 * depend on weight values). Run: make bench-foundation [THREADS=n]
 * Peak memory of the build is the VmHWM of a child process (ru_maxrss would include the parent's,
 * which Linux carries across fork).
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { loadAudio } from "../src/audio/decode.js";
import { logMelSpectrogram } from "../src/audio/mel.js";
import { OnnxWhisper, type KvCache } from "../src/asr/onnx-whisper.js";
import { buildOnnxModel } from "../src/model/build.js";
import { readWhisperConfig } from "../src/model/config.js";
import { BUNDLED_ASSETS, writeSyntheticWhisper } from "../src/model/synthetic.js";
import { dataDir, repoRoot, writeJsonAtomic } from "../src/util/fs.js";

const TINY = { dModel: 384, heads: 6, layers: 4, ffnDim: 1536 }; // openai/whisper-tiny's config.json

async function buildInChild(modelDir: string, outDir: string): Promise<{ seconds: number; peakRssMB: number }> {
  const script = `
    const { buildOnnxModel } = await import(${JSON.stringify(new URL("../src/model/build.js", import.meta.url).href)});
    const t = performance.now();
    await buildOnnxModel(${JSON.stringify(modelDir)}, ${JSON.stringify(outDir)});
    const seconds = (performance.now() - t) / 1000;
    const hwm = /VmHWM:\\s+(\\d+) kB/.exec((await import("node:fs")).readFileSync("/proc/self/status", "utf8"))[1];
    console.log(JSON.stringify({ seconds, peakRssMB: Number(hwm) / 1024 }));`;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const threads = Number(process.env.THREADS ?? 0);
  const root = join(dataDir(), "bench", "foundation");
  const modelDir = join(root, "tiny-dims-model");
  const onnxDir = join(root, "tiny-dims-onnx");
  await writeSyntheticWhisper(modelDir, { assetsDir: BUNDLED_ASSETS, ...TINY, seed: 1 });
  const build = await buildInChild(modelDir, onnxDir);
  const baseline =
    Number(
      /VmHWM:\s+(\d+) kB/.exec(
        execFileSync(process.execPath, ["-e", "process.stdout.write(require('fs').readFileSync('/proc/self/status', 'utf8'))"], { encoding: "utf8" }),
      )![1],
    ) / 1024;
  await buildOnnxModel(modelDir, onnxDir); // warm file cache for the runtime timings below
  const config = await readWhisperConfig(join(modelDir, "config.json"));
  const model = await OnnxWhisper.load(onnxDir, config, { threads });
  const audio = await loadAudio(join(repoRoot(), "test", "fixtures", "librispeech", "LibriSpeech", "test-clean", "1089", "134686", "1089-134686-0000.flac"));
  const melStart = performance.now();
  const mel = logMelSpectrogram(audio);
  const melMs = performance.now() - melStart;

  const encodeMs: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t = performance.now();
    await model.encode(mel);
    if (i > 0) encodeMs.push(performance.now() - t); // first run is warm-up
  }
  const encoded = await model.encode(mel);
  const steps = 64;
  const stepMs: number[] = [];
  let cache: KvCache | null = null;
  let ids = [50257, 50362];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    const out = await model.step(ids, encoded, cache);
    if (i > 0) stepMs.push(performance.now() - t); // the prompt step differs; report per generated token
    cache = out.cache;
    ids = [1000 + i];
  }
  const result = {
    model: "whisper-tiny dimensions (d_model 384, 4+4 layers, 6 heads, vocab 51864), random weights",
    threads: threads || "onnxruntime default",
    cores: (await import("node:os")).cpus().length,
    buildSeconds: +build.seconds.toFixed(3),
    buildPeakRssMB: +build.peakRssMB.toFixed(1),
    nodeBaselineRssMB: +baseline.toFixed(1),
    logMelMsPer30s: +melMs.toFixed(1),
    encoderMsPer30sWindow: +median(encodeMs).toFixed(1),
    decoderMsPerTokenMedian: +median(stepMs).toFixed(2),
    decoderMsPerTokenAt63: +stepMs[stepMs.length - 1]!.toFixed(2),
  };
  console.table(result);
  await writeJsonAtomic(join(root, `result-threads${threads}.json`), result);
  await model.release();
}

await main();
