#!/usr/bin/env node
/**
 * `ptq`: a thin command line over the same src functions the notebooks call.
 *   ptq fetch model <id> [--revision R] [--hub-url URL]
 *   ptq build --model <id|dir> [--out DIR]
 *   ptq transcribe --model <id|dir> [--language en|auto|..] [--threads N] FILE...
 *   ptq recipes
  ptq quantize --model <id|dir> --recipe <id> [--bits N] [--group-size N] [--axis 0|1] [--granularity per_tensor|per_channel]
               [--accuracy-level 0|4]  (MatMulNBits recipes; 4: int8 activations, not the library's numerics)
               [--include GLOB,...] [--exclude GLOB,...] [--out DIR]
               static recipes: --split NAME [--librispeech-dir DIR] [--calibration-limit N]
  ptq import ct2 <folder|model.bin|part>... --out DIR [--assets DIR]
  ptq eval --model <id|dir> --split <name> [--librispeech-dir DIR] [--limit N] [--full] [--shard i/n]
           [--workers K] [--threads N] [--results DIR] [--force] [--noise white|babble:<snr dB>]
           [--recipe ID] [--calibration-limit N]
  ptq grid --config grid.json [--shard i/n] [--workers K] [--threads N] [--results DIR] [--force]
  ptq merge STORE... --out STORE
  ptq synth --out DIR [--d-model N --layers N --heads N --seed N]
 --workers K: K processes of --threads N each (default: cores / K) share the utterances and the store.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { Transcriber } from "./asr/transcriber.js";
import { fetchModel, resolveModelDir, type FetchOptions } from "./hub/fetch-model.js";
import { buildOnnxModel, ensureOnnxModel } from "./model/build.js";
import { importCt2Model } from "./model/import-ct2.js";
import { findRecipe, RECIPES, type RecipeOptions } from "./recipes/catalog.js";
import { ensureQuantizedModel, quantizeModel, quantizeWithCalibration, type CalibrationRun } from "./recipes/quantize-model.js";
import { writeSyntheticWhisper } from "./model/synthetic.js";
import { KitError } from "./util/errors.js";
import { dataDir, sharedDataDir } from "./util/fs.js";
import { cpus } from "node:os";
import { buildManifest, defaultLibriSpeechDir, fetchLibriSpeech } from "./hub/librispeech.js";
import { prepareJob, readGrid, runJob, splitCalibration, type EvalJob } from "./eval/jobs.js";
import { runWorkerProcesses } from "./eval/worker-processes.js";
import { parseNoise } from "./eval/noise.js";
import { ResultsStore } from "./eval/results-store.js";
import { mergeStores } from "./eval/runner.js";
import { parseShard, type Selection } from "./eval/splits.js";

const USAGE = `usage:
  ptq fetch model <org/name> [--revision REV] [--hub-url URL]
  ptq fetch librispeech test-clean|test-other [--mirror-url URL]
  ptq build --model <id|dir> [--out DIR]
  ptq transcribe --model <id|dir> [--recipe ID] [--language en|auto|<code>] [--threads N] [--no-cache] [--json] FILE...
  ptq synth --out DIR [--d-model 64] [--layers 2] [--heads 2] [--seed 0] [--assets DIR]

--hub-url (or HF_ENDPOINT) points at a hub mirror; a model may always be a local folder.`;

const COMMON = {
  "hub-url": { type: "string" },
  revision: { type: "string" },
  model: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function hubOptions(values: { "hub-url"?: string; revision?: string }): FetchOptions {
  const options: FetchOptions = {};
  if (values["hub-url"]) options.hubUrl = values["hub-url"];
  if (values.revision) options.revision = values.revision;
  if (process.stderr.isTTY) {
    options.onProgress = (file, bytes, total) => process.stderr.write(`\r${file}: ${(bytes / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
  }
  return options;
}

function positiveInt(text: string, field: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new KitError(`${field} must be a positive integer, got '${text}'`, { field, fix: `e.g. ${field} 100` });
  return n;
}

function requireModel(model: string | undefined): string {
  if (!model) throw new KitError("--model is required", { field: "--model", fix: "give a hub id (openai/whisper-small) or a model folder" });
  return model;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h") {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  switch (command) {
    case "fetch": {
      const { values, positionals } = parseArgs({ args: rest, options: { ...COMMON, "mirror-url": { type: "string" } }, allowPositionals: true });
      if (positionals[0] === "librispeech" && positionals[1]) {
        const libri = await fetchLibriSpeech(positionals[1], {
          ...(values["mirror-url"] ? { mirrorUrl: values["mirror-url"] } : {}),
          ...(process.stderr.isTTY ? { onProgress: (b: number, t: number) => process.stderr.write(`\r${positionals[1]}: ${(b / 1e6).toFixed(1)} / ${(t / 1e6).toFixed(1)} MB`) } : {}),
        });
        if (process.stderr.isTTY) process.stderr.write("\n");
        console.log(join(libri, positionals[1]));
        return 0;
      }
      if (positionals[0] !== "model" || !positionals[1]) throw new KitError("usage: ptq fetch model <org/name> | ptq fetch librispeech <split>", { fix: USAGE });
      const dir = await fetchModel(positionals[1], hubOptions(values));
      if (process.stderr.isTTY) process.stderr.write("\n");
      console.log(dir);
      return 0;
    }
    case "build": {
      const { values } = parseArgs({ args: rest, options: { ...COMMON, out: { type: "string" } } });
      const modelDir = await resolveModelDir(requireModel(values.model), hubOptions(values));
      const started = performance.now();
      const result = values.out ? { dir: values.out, manifest: await buildOnnxModel(modelDir, values.out) } : await ensureOnnxModel(modelDir);
      const mb = result.manifest.files.reduce((a, f) => a + f.bytes, 0) / 1e6;
      console.log(`${result.dir}\t${mb.toFixed(1)} MB\t${((performance.now() - started) / 1000).toFixed(2)} s`);
      return 0;
    }
    case "transcribe": {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...COMMON, language: { type: "string" }, threads: { type: "string" }, "no-cache": { type: "boolean" }, json: { type: "boolean" }, recipe: { type: "string" } },
        allowPositionals: true,
      });
      if (positionals.length === 0) throw new KitError("no audio files given", { fix: "ptq transcribe --model <id|dir> FILE..." });
      const modelDir = await resolveModelDir(requireModel(values.model), hubOptions(values));
      const { dir: onnxDir } = await ensureQuantizedModel(modelDir, values.recipe ?? "fp32");
      const transcriber = await Transcriber.load(modelDir, {
        onnxDir,
        hub: hubOptions(values),
        ...(values.threads ? { threads: Number(values.threads) } : {}),
        ...(values.language ? { language: values.language } : {}),
        useCache: !values["no-cache"],
      });
      try {
        for (const file of positionals) {
          const result = await transcriber.transcribeFile(file);
          if (values.json) console.log(JSON.stringify({ file, text: result.text, tokens: result.tokens, language: result.language, finished: result.finished, truncated: result.truncated }));
          else console.log(`${file}\t${result.text}`);
        }
      } finally {
        await transcriber.close();
      }
      return 0;
    }
    case "eval":
    case "grid": {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...COMMON,
          config: { type: "string" },
          split: { type: "string" },
          recipe: { type: "string", default: "fp32" },
          "librispeech-dir": { type: "string" },
          limit: { type: "string" },
          full: { type: "boolean" },
          shard: { type: "string" },
          workers: { type: "string" },
          threads: { type: "string" },
          results: { type: "string" },
          force: { type: "boolean" },
          language: { type: "string" },
          noise: { type: "string" },
          "calibration-limit": { type: "string" },
          "worker-processes": { type: "string" }, // set by --workers on the processes it starts
        },
      });
      const calibrationLimit = values["calibration-limit"] !== undefined ? positiveInt(values["calibration-limit"], "--calibration-limit") : undefined;
      const workers = values.workers ? positiveInt(values.workers, "--workers") : 1;
      const shard = values.shard !== undefined ? parseShard(values.shard) : undefined;
      let jobs: EvalJob[];
      if (command === "grid") {
        if (!values.config) throw new KitError("--config is required", { field: "--config", fix: "ptq grid --config grid.json (see README)" });
        jobs = await readGrid(values.config);
      } else {
        if (!values.split) throw new KitError("--split is required", { field: "--split", fix: "e.g. --split test-clean" });
        const selection: Selection = { full: values.full ?? false };
        if (values.limit !== undefined) selection.limit = positiveInt(values.limit, "--limit");
        jobs = [{ model: requireModel(values.model), recipe: values.recipe ?? "fp32", split: values.split, selection, ...(values.noise ? { noise: parseNoise(values.noise) } : {}) }];
      }
      const processes = values["worker-processes"] !== undefined ? positiveInt(values["worker-processes"], "--worker-processes") : 1;
      const storeDir = values.results ?? join(dataDir(), "results");
      const jobSettings = (job: EvalJob): EvalJob => ({ ...job, processes, force: values.force ?? false, ...(shard ? { shard } : {}), ...(values["librispeech-dir"] ? { librispeechDir: values["librispeech-dir"] } : {}), ...(calibrationLimit ? { calibrationLimit } : {}) });
      const threads = values.threads ? positiveInt(values.threads, "--threads") : Math.max(1, Math.floor(cpus().length / workers));
      if (workers > 1) {
        // Worker processes: models built, quantized and calibrated here first, the store repaired, then K children.
        for (const job of jobs) await prepareJob(jobSettings(job), { transcriberOptions: { hub: hubOptions(values), threads: threads * workers } });
        await new ResultsStore(storeDir).repairAll();
        return runWorkerProcesses(process.argv[1]!, command, rest, workers, threads, shard);
      }
      const store = new ResultsStore(storeDir, processes > 1);
      const transcribers = new Map<string, Transcriber>();
      try {
        for (const [i, job] of jobs.entries()) {
          const outcome = await runJob(
            jobSettings(job),
            {
              store,
              transcribers,
              transcriberOptions: {
                hub: hubOptions(values),
                threads,
                ...(values.language ? { language: values.language } : {}),
              },
              onProgress: (j, p) =>
                process.stderr.write(`\r[${i + 1}/${jobs.length}] ${j.model} ${j.recipe} ${j.split}${j.noise ? ` ${j.noise.kind}:${j.noise.snrDb}dB` : ""}: ${p.done}/${p.total} (${p.resumed} resumed)  ${p.utterancesPerSecond.toFixed(2)} utt/s  ETA ${Math.round(p.etaSeconds)} s  WER ${(100 * p.runningWer).toFixed(2)} %   `),
            },
          );
          process.stderr.write("\n");
          const s = outcome.summary;
          const pending = processes > 1 ? "the last worker process to finish summarizes" : "other shards pending; ptq merge joins them";
          console.log(JSON.stringify(s ? { key: s.key, model: job.model, recipe: job.recipe, split: job.split, conditions: s.spec.conditions, utterances: s.spec.utterances, wer: s.wer, cer: s.cer, ...s.timing } : { key: outcome.key, model: job.model, split: job.split, partial: `${outcome.done}/${outcome.total} utterances (${pending})` }));
        }
      } finally {
        for (const t of transcribers.values()) await t.close();
        for (const w of store.warnings) console.error(`warning: ${w}`);
      }
      return 0;
    }
    case "merge": {
      const { values, positionals } = parseArgs({ args: rest, options: { out: { type: "string" } }, allowPositionals: true });
      if (!values.out || positionals.length === 0) throw new KitError("usage: ptq merge STORE... --out STORE", { field: "--out", fix: "name the shard stores and the store to merge into" });
      const result = await mergeStores(positionals.map((d) => new ResultsStore(d)), new ResultsStore(values.out));
      console.log(`${result.runs} runs merged into ${values.out}; ${result.completed} completed by the merge`);
      return 0;
    }
    case "recipes": {
      const rows = RECIPES.map((r) => [r.id, r.library, r.scheme, r.granularity, r.bits, r.execution({}), r.quantizesProjOut ? "yes" : "no", r.quantize || r.id === "fp32" ? "yes" : `no: ${r.missing}`]);
      const header = ["recipe", "library", "scheme", "granularity", "bits", "execution", "proj_out", "runs"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const row of [header, ...rows]) console.log(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
      return 0;
    }
    case "quantize": {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...COMMON,
          recipe: { type: "string" },
          bits: { type: "string" },
          "group-size": { type: "string" },
          "accuracy-level": { type: "string" },
          axis: { type: "string" },
          granularity: { type: "string" },
          include: { type: "string" },
          exclude: { type: "string" },
          out: { type: "string" },
          split: { type: "string" },
          "librispeech-dir": { type: "string" },
          "calibration-limit": { type: "string" },
          threads: { type: "string" },
        },
      });
      if (!values.recipe) throw new KitError("--recipe is required", { field: "--recipe", fix: "ptq recipes lists them" });
      const options: RecipeOptions = {};
      if (values.bits) options.bits = positiveInt(values.bits, "--bits");
      if (values["group-size"]) options.groupSize = positiveInt(values["group-size"], "--group-size");
      if (values["accuracy-level"] !== undefined) options.accuracyLevel = Number(values["accuracy-level"]) as 0 | 4; // checked with the recipe
      if (values.axis) {
        if (values.axis !== "0" && values.axis !== "1") throw new KitError("--axis must be 0 or 1", { field: "--axis", fix: "HQQ groups along axis 1 (input features) by default" });
        options.axis = Number(values.axis) as 0 | 1;
      }
      if (values.granularity) {
        if (values.granularity !== "per_tensor" && values.granularity !== "per_channel") throw new KitError("--granularity must be per_tensor or per_channel", { field: "--granularity", fix: "e.g. --granularity per_channel" });
        options.granularity = values.granularity;
      }
      if (values.include) options.include = values.include.split(",");
      if (values.exclude) options.exclude = values.exclude.split(",");
      const modelDir = await resolveModelDir(requireModel(values.model), hubOptions(values));
      const fp32 = await ensureOnnxModel(modelDir);
      const started = performance.now();
      let calibration: CalibrationRun | undefined;
      if (findRecipe(values.recipe).scheme === "static") {
        if (!values.split) throw new KitError(`${values.recipe} is a static recipe: it calibrates on a split's first 10 %`, { field: "--split", fix: "add --split NAME (and --librispeech-dir DIR for a local LibriSpeech tree)" });
        const root = values["librispeech-dir"] ?? defaultLibriSpeechDir();
        const limit = values["calibration-limit"] !== undefined ? positiveInt(values["calibration-limit"], "--calibration-limit") : undefined;
        const threads = values.threads ? positiveInt(values.threads, "--threads") : 0;
        calibration = splitCalibration(modelDir, values.split, await buildManifest(root, values.split), { threads }, limit);
      }
      const result = values.out
        ? { dir: values.out, manifest: (calibration ? await quantizeWithCalibration(fp32.dir, values.recipe, options, values.out, calibration) : await quantizeModel(fp32.dir, values.recipe, options, values.out)).manifest }
        : await ensureQuantizedModel(modelDir, values.recipe, options, calibration);
      const m = result.manifest;
      console.log(
        JSON.stringify({
          dir: result.dir,
          recipe: m.recipe,
          parameterMB: +(m.parameterBytes / 1e6).toFixed(2),
          fp32ParameterMB: +((m.baselineParameterBytes ?? m.parameterBytes) / 1e6).toFixed(2),
          compression: +(1 - m.parameterBytes / (m.baselineParameterBytes ?? m.parameterBytes)).toFixed(4),
          onDiskMB: +(m.files.reduce((a, f) => a + f.bytes, 0) / 1e6).toFixed(2),
          dequantizedAtLoad: m.dequantizedAtLoad ?? false,
          quantizeSeconds: +(m.quantizeSeconds ?? (performance.now() - started) / 1000).toFixed(2),
        }),
      );
      return 0;
    }
    case "import": {
      const { values, positionals } = parseArgs({ args: rest, options: { out: { type: "string" }, assets: { type: "string" } }, allowPositionals: true });
      const [format, ...paths] = positionals;
      if (format !== "ct2" || paths.length === 0 || !values.out) {
        throw new KitError("usage: ptq import ct2 <folder|model.bin|part>... --out DIR", { field: format ?? "format", fix: "the CTranslate2 (faster-whisper) format is the one supported: ct2" });
      }
      const report = await importCt2Model(paths, values.out, { fallbackAssets: values.assets ?? join(sharedDataDir(), "whisper-assets", "whisper-tiny.en") });
      console.log(`${report.outDir}\t${report.parameters} parameters\t${report.sourcePrecision}${report.int8Derived ? " (int8-derived)" : ""}\tfallback files: ${report.filesFromFallback.join(", ") || "none"}`);
      return 0;
    }
    case "synth": {
      const { values } = parseArgs({
        args: rest,
        options: {
          out: { type: "string" },
          "d-model": { type: "string" },
          layers: { type: "string" },
          heads: { type: "string" },
          seed: { type: "string" },
          assets: { type: "string" },
        },
      });
      if (!values.out) throw new KitError("--out is required", { field: "--out", fix: "ptq synth --out data/models/synthetic-tiny" });
      await writeSyntheticWhisper(values.out, {
        assetsDir: values.assets ?? join(sharedDataDir(), "whisper-assets", "whisper-tiny.en"),
        ...(values["d-model"] ? { dModel: Number(values["d-model"]) } : {}),
        ...(values.layers ? { layers: Number(values.layers) } : {}),
        ...(values.heads ? { heads: Number(values.heads) } : {}),
        ...(values.seed ? { seed: Number(values.seed) } : {}),
      });
      console.log(values.out);
      return 0;
    }
    default:
      console.error(`unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof KitError) console.error(`ptq: ${err.message}`);
    else console.error(err);
    process.exit(1);
  },
);
