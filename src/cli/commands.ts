/**
 * Every `ptq` command as data: its arguments, its options (with defaults), an example and what it
 * runs. src/cli.ts turns this list into the command line; nothing else defines a command.
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { Transcriber } from "../asr/transcriber.js";
import { prepareJob, readGrid, runJob, splitCalibration, type EvalJob } from "../eval/jobs.js";
import { compareRuns, comparisonMarkdown, shortModelName } from "../eval/compare.js";
import { parseNoise } from "../eval/noise.js";
import { parsePerturbation } from "../eval/perturb.js";
import { ResultsStore } from "../eval/results-store.js";
import { mergeStores } from "../eval/runner.js";
import { parseShard, type Selection } from "../eval/splits.js";
import { runWorkerProcesses, withoutOptions } from "../eval/worker-processes.js";
import { fetchModel, resolveModelDir, type FetchOptions } from "../hub/fetch-model.js";
import { buildManifest, defaultLibriSpeechDir, fetchLibriSpeech } from "../hub/librispeech.js";
import { buildOnnxModel, ensureOnnxModel } from "../model/build.js";
import { importCt2Model } from "../model/import-ct2.js";
import { BUNDLED_ASSETS, writeSyntheticWhisper } from "../model/synthetic.js";
import { findRecipe, RECIPES, type Expansion, type RecipeOptions } from "../recipes/catalog.js";
import { ensureQuantizedModel, quantizeModel, quantizeWithCalibration, type CalibrationRun } from "../recipes/quantize-model.js";
import { KitError } from "../util/errors.js";
import { dataDir } from "../util/fs.js";
import { progress } from "../util/progress.js";
import { ensureData, modelLocation, studyConfig } from "../study/study.js";
import { gridStatus, resubmitCommand, resubmitFailed, submitGrid } from "../slurm/slurm.js";
import { writeStoreReport } from "../report/write.js";
import { DTYPE_SUFFIX, exportTransformersJs, type ExportedVariant } from "../export/transformers-js.js";
import { loadResultRows } from "../report/rows.js";

/** A value the user typed was not what the option takes (exit status 2, like any usage error). */
export class UsageError extends Error {}

export interface OptionSpec {
  flags: string; // commander syntax: "--threads <n>", "--json", "-h, --help"
  description: string;
  default?: string | number | boolean;
  defaultShown?: string; // how --help shows the default, where the value itself is a machine's path
  parse?: (value: string, previous: unknown) => unknown; // previous: the value so far (repeatable options)
  required?: boolean;
  hidden?: boolean; // set by the kit itself (worker processes), not by users
}

export interface CommandSpec {
  name: string; // "fetch model" for a subcommand
  summary: string;
  arguments?: string; // commander syntax: "<repo>", "<files...>"
  options: OptionSpec[];
  example: string;
  // biome-ignore lint/suspicious/noExplicitAny: commander hands over the options its spec parsed; each run reads its own
  run: (args: string[], options: Record<string, any>, raw: string[]) => Promise<void>;
}

/** A repeatable option's values, in order. */
export function collect(value: string, previous: unknown): string[] {
  return [...(Array.isArray(previous) ? (previous as string[]) : []), value];
}

export function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`expects a positive whole number, got '${text}'`);
  return n;
}

function oneOf(...allowed: string[]) {
  return (text: string) => {
    if (!allowed.includes(text)) throw new UsageError(`expects one of ${allowed.join(", ")}, got '${text}'`);
    return text;
  };
}

const list = (text: string) => text.split(",").filter(Boolean);

const HUB: OptionSpec[] = [
  { flags: "--hub-url <url>", description: "Hugging Face hub or a mirror (default: HF_ENDPOINT, else huggingface.co)" },
  { flags: "--revision <rev>", description: "branch, tag or commit of the model repository", default: "main" },
];
const MODEL: OptionSpec = {
  flags: "--model <id|dir>",
  description: "a hub id (openai/whisper-small), a model folder, or a short name under MODEL_DIR",
  required: true,
};
const THREADS: OptionSpec = { flags: "--threads <n>", description: "onnxruntime threads (default: cores / workers)", parse: positiveInt };

function hubOptions(o: { hubUrl?: string; revision?: string }): FetchOptions {
  const options: FetchOptions = {};
  if (o.hubUrl) options.hubUrl = o.hubUrl;
  if (o.revision && o.revision !== "main") options.revision = o.revision;
  const shown = new Map<string, ReturnType<typeof progress>>();
  options.onProgress = (file, bytes, total) => {
    let p = shown.get(file);
    if (!p) {
      p = progress(`download ${file}`, { unit: "bytes" });
      shown.set(file, p);
    }
    p.update(bytes, total);
    if (bytes >= total) p.done();
  };
  return options;
}

function recipeOptions(o: Record<string, unknown>): RecipeOptions {
  const options: RecipeOptions = {};
  if (o.bits !== undefined) options.bits = o.bits as number;
  if (o.groupSize !== undefined) options.groupSize = o.groupSize as number;
  if (o.accuracyLevel !== undefined) options.accuracyLevel = Number(o.accuracyLevel) as 0 | 4;
  if (o.axis !== undefined) options.axis = Number(o.axis) as 0 | 1;
  if (o.expand !== undefined) options.expand = o.expand as Expansion;
  if (o.granularity !== undefined) options.granularity = o.granularity as "per_tensor" | "per_channel";
  if (o.include) options.include = o.include as string[];
  if (o.exclude) options.exclude = o.exclude as string[];
  return options;
}

const EVALUATION: OptionSpec[] = [
  ...HUB,
  {
    flags: "--librispeech-dir <dir>",
    description: "a LibriSpeech folder (<split>/<speaker>/<chapter>/); default data/librispeech/LibriSpeech, downloaded on demand",
  },
  { flags: "--workers <k>", description: "K processes sharing the utterances and the store", default: 1, parse: positiveInt },
  THREADS,
  { flags: "--shard <i/n>", description: "every n-th utterance from the i-th (a grid cut across machines)" },
  { flags: "--results <dir>", description: "the results store (default data/results)" },
  { flags: "--force", description: "recompute runs already in the store" },
  { flags: "--language <code>", description: "en, auto or a language code (multilingual models)" },
  { flags: "--calibration-limit <n>", description: "static recipes: calibrate on the first N of the split's 10 % calibration part", parse: positiveInt },
  { flags: "--worker-processes <k>", description: "set by --workers on the processes it starts", parse: positiveInt, hidden: true },
];

const SLURM_FLAGS = ["slurm", "dry-run", "prepare-only"];
const SLURM_VALUES = ["config", "results", "tasks", "partition", "time", "cpus-per-task", "mem", "sbatch-arg", "threads", "workers", "shard"];

// biome-ignore lint/suspicious/noExplicitAny: the options of grid, as commander parsed them
async function submitToSlurm(o: Record<string, any>, raw: string[]): Promise<void> {
  const gridArgs = withoutOptions(
    raw.filter((a) => !SLURM_FLAGS.some((f) => a === `--${f}`)),
    SLURM_VALUES,
  );
  const results = o.results ?? join(dataDir(), "results");
  const { scripts, files, jobs } = await submitGrid(
    {
      config: o.config,
      results,
      gridArgs,
      ...(o.tasks ? { tasks: o.tasks } : {}),
      ...(o.partition ? { partition: o.partition } : {}),
      ...(o.time ? { time: o.time } : {}),
      ...(o.cpusPerTask ? { cpusPerTask: o.cpusPerTask } : {}),
      ...(o.mem ? { mem: o.mem } : {}),
      sbatchArgs: o.sbatchArg ?? [],
    },
    { node: process.execPath, script: process.argv[1]!, cwd: process.cwd() },
    o.dryRun ?? false,
  );
  if (!jobs) {
    for (const k of ["prepare", "array", "merge"] as const) console.log(`# ${files[k]}\n${scripts[k]}`);
    return;
  }
  console.log(
    `submitted: prepare ${jobs.prepare}, array ${jobs.array} (${jobs.tasks} tasks), merge ${jobs.merge}; scripts and logs in ${join(results, "slurm")}`,
  );
  console.log(`follow it with: ptq grid --status ${results}`);
}

async function printGridStatus(results: string): Promise<void> {
  const { jobs, tasks, merge, prepare } = await gridStatus(results);
  console.log(`prepare ${jobs.prepare}: ${prepare ?? "finished (no longer listed by Slurm)"}`);
  for (const t of tasks)
    console.log(
      `task ${t.task}: ${t.state}${t.slurmState ? ` (${t.slurmState})` : ""}, ${t.utterances} utterances stored${t.state === "failed" ? `; log ${t.log}` : ""}`,
    );
  console.log(`merge ${jobs.history?.at(-1)?.merge ?? jobs.merge}: ${merge ?? "finished (no longer listed by Slurm)"}`);
  const failed = tasks.filter((t) => t.state === "failed");
  if (failed.length) console.log(`${failed.length} failed; after fixing the cause, resubmit them and the merge with: ${resubmitCommand(results)}`);
}

// biome-ignore lint/suspicious/noExplicitAny: the options of eval or grid, as commander parsed them
async function evaluate(command: "eval" | "grid", o: Record<string, any>, raw: string[]): Promise<void> {
  const shard = o.shard !== undefined ? parseShard(o.shard) : undefined;
  let jobs: EvalJob[];
  if (command === "grid") jobs = await readGrid(o.config);
  else {
    const selection: Selection = { full: o.full ?? false, ...(o.limit !== undefined ? { limit: o.limit } : {}) };
    jobs = [
      {
        model: o.model,
        recipe: o.recipe,
        split: o.split,
        selection,
        ...(o.noise ? { noise: parseNoise(o.noise) } : {}),
        ...(o.perturb !== undefined ? { perturb: { size: o.perturb, seed: o.perturbSeed } } : {}),
        ...(o.runtime && o.runtime !== "kit" ? { runtime: o.runtime } : {}),
      },
    ];
  }
  const workers: number = o.workers;
  const processes: number = o.workerProcesses ?? 1;
  const storeDir = o.results ?? join(dataDir(), "results");
  const settings = (job: EvalJob): EvalJob => ({
    ...job,
    processes,
    force: o.force ?? false,
    ...(shard ? { shard } : {}),
    ...(o.librispeechDir ? { librispeechDir: o.librispeechDir } : {}),
    ...(o.calibrationLimit ? { calibrationLimit: o.calibrationLimit } : {}),
  });
  const threads: number = o.threads ?? Math.max(1, Math.floor(cpus().length / workers));
  if (o.prepareOnly) {
    for (const job of jobs) await prepareJob(settings(job), { transcriberOptions: { hub: hubOptions(o), threads } });
    console.log(`prepared ${jobs.length} jobs: every model and recipe built, quantized and calibrated`);
    return;
  }
  if (workers > 1) {
    // Models built, quantized and calibrated here first, the store repaired, then K children.
    for (const job of jobs) await prepareJob(settings(job), { transcriberOptions: { hub: hubOptions(o), threads: threads * workers } });
    await new ResultsStore(storeDir).repairAll();
    const code = await runWorkerProcesses(process.argv[1]!, command, raw, workers, threads, shard);
    if (code !== 0)
      throw new KitError(`${code === 1 ? "a worker process" : "worker processes"} failed (exit ${code})`, {
        fix: "see the messages above; rerun the same command to resume",
      });
    return;
  }
  const store = new ResultsStore(storeDir, processes > 1);
  const transcribers = new Map<string, Transcriber>();
  try {
    for (const [i, job] of jobs.entries()) {
      const bar = progress(`[${i + 1}/${jobs.length}] ${job.model} ${job.recipe} ${job.split}${job.noise ? ` ${job.noise.kind}:${job.noise.snrDb}dB` : ""}`);
      const outcome = await runJob(settings(job), {
        store,
        transcribers,
        transcriberOptions: { hub: hubOptions(o), threads, ...(o.language ? { language: o.language } : {}) },
        onProgress: (_, p) => bar.update(p.done, p.total, `${p.resumed} resumed, WER ${(100 * p.runningWer).toFixed(2)} %`),
      });
      bar.done();
      const s = outcome.summary;
      const pending = processes > 1 ? "the last worker process to finish summarizes" : "other shards pending; ptq merge joins them";
      console.log(
        JSON.stringify(
          s
            ? {
                key: s.key,
                model: job.model,
                recipe: job.recipe,
                split: job.split,
                conditions: s.spec.conditions,
                utterances: s.spec.utterances,
                wer: s.wer,
                cer: s.cer,
                ...s.timing,
              }
            : { key: outcome.key, model: job.model, split: job.split, partial: `${outcome.done}/${outcome.total} utterances (${pending})` },
        ),
      );
    }
  } finally {
    for (const t of transcribers.values()) await t.close();
    for (const w of store.warnings) console.error(`warning: ${w}`);
  }
}

const LAYER_SELECTION: OptionSpec[] = [
  { flags: "--bits <n>", description: "HQQ: 8, 4, 3, 2 or 1 (default: the recipe's)", parse: positiveInt },
  { flags: "--group-size <n>", description: "HQQ only: elements per group (default 64)", parse: positiveInt },
  { flags: "--axis <0|1>", description: "HQQ: group along the input features (1) or the outputs (0)", parse: oneOf("0", "1") },
  { flags: "--granularity <g>", description: "pytorch/dynamic-int8: per_tensor (default) or per_channel", parse: oneOf("per_tensor", "per_channel") },
  {
    flags: "--accuracy-level <0|4>",
    description: "MatMulNBits recipes: 4 quantizes activations to int8 (faster, not the library's numerics)",
    parse: oneOf("0", "4"),
  },
  {
    flags: "--expand <none|decoder|all>",
    description:
      "weight-only recipes on MatMulNBits/MatMulBnb4: layers expanded to fp32 at load, same values (decoder: those run per token; default: the recipe's, see ptq recipes)",
    parse: oneOf("none", "decoder", "all"),
  },
  { flags: "--include <globs>", description: "comma-separated globs of layers to quantize (e.g. model.decoder.*)", parse: list },
  { flags: "--exclude <globs>", description: "comma-separated globs of layers to leave in fp32", parse: list },
];
const CALIBRATION: OptionSpec[] = [
  { flags: "--split <name>", description: "static recipes: the split whose first 10 % calibrates" },
  { flags: "--librispeech-dir <dir>", description: "a LibriSpeech folder (default data/librispeech/LibriSpeech)" },
  { flags: "--calibration-limit <n>", description: "static recipes: the first N calibration utterances", parse: positiveInt },
];

/** The clean runs of a model and recipe in a store, on either runtime, for an export's README. */
async function measuredWers(storeDir: string, model: string, recipe: string): Promise<NonNullable<ExportedVariant["measured"]>> {
  const rows = (await loadResultRows(storeDir)).filter(
    (r) => r.model === shortModelName(model) && r.recipe === recipe && r.noise === null && r.perturb === null,
  );
  return rows.map((r) => ({
    runtime: r.runtime,
    split: r.split,
    utterances: r.utterances,
    wer: r.wer / 100,
    werLow: r.werLow / 100,
    werHigh: r.werHigh / 100,
  }));
}

/** Static recipes calibrate on the first 10 % of --split; undefined for the others. */
// biome-ignore lint/suspicious/noExplicitAny: the options of quantize or export, as commander parsed them
async function staticCalibration(recipeId: string, modelDir: string, o: Record<string, any>): Promise<CalibrationRun | undefined> {
  if (findRecipe(recipeId).scheme !== "static") return undefined;
  if (!o.split)
    throw new KitError(`${recipeId} is a static recipe: it calibrates on a split's first 10 %`, {
      field: "--split",
      fix: "add --split NAME (and --librispeech-dir DIR for a local LibriSpeech tree)",
    });
  const root = o.librispeechDir ?? defaultLibriSpeechDir();
  return splitCalibration(modelDir, o.split, await buildManifest(root, o.split), { threads: o.threads ?? 0 }, o.calibrationLimit);
}

export const COMMANDS: CommandSpec[] = [
  {
    name: "prepare",
    summary: "download what `make reproduce` needs (MODELS and SPLITS of the environment), then it runs offline",
    options: [],
    example: "ptq prepare   # with MODELS=openai/whisper-small SPLITS=test-clean,test-other (the defaults) in the environment",
    run: async () => {
      const config = studyConfig();
      await ensureData(config);
      console.log(JSON.stringify({ models: config.models.map((m) => modelLocation(config, m)), splits: config.splits, librispeechDir: config.librispeechDir }));
    },
  },
  {
    name: "fetch model",
    summary: "download a Whisper checkpoint from the hub (resumable, verified against the hub's hashes)",
    arguments: "<repo>",
    options: HUB,
    example: "ptq fetch model openai/whisper-small",
    run: async ([repo], o) => console.log(await fetchModel(repo!, hubOptions(o))),
  },
  {
    name: "fetch librispeech",
    summary: "download and extract a LibriSpeech split from OpenSLR (resumable, md5 and sha256 checked)",
    arguments: "<split>",
    options: [
      { flags: "--mirror-url <url>", description: "an OpenSLR mirror (default: LIBRISPEECH_MIRROR, else openslr.org/resources/12)" },
      { flags: "--root <dir>", description: "where archives and the extracted LibriSpeech folder go", default: "data/librispeech" },
    ],
    example: "ptq fetch librispeech test-clean",
    run: async ([split], o) => {
      const bar = progress(`download ${split}.tar.gz`, { unit: "bytes" });
      const libri = await fetchLibriSpeech(split!, {
        ...(o.mirrorUrl ? { mirrorUrl: o.mirrorUrl } : {}),
        root: o.root,
        onProgress: (b, t) => bar.update(b, t),
      });
      bar.done();
      console.log(join(libri, split!));
    },
  },
  {
    name: "build",
    summary: "build the fp32 ONNX graphs (encoder, decoder with cache) of a model",
    options: [MODEL, ...HUB, { flags: "--out <dir>", description: "where to write them (default: the model's cache under data/)" }],
    example: "ptq build --model data/models/whisper-tiny.en",
    run: async (_, o) => {
      const modelDir = await resolveModelDir(o.model, hubOptions(o));
      const started = performance.now();
      const result = o.out ? { dir: o.out, manifest: await buildOnnxModel(modelDir, o.out) } : await ensureOnnxModel(modelDir);
      const mb = result.manifest.files.reduce((a, f) => a + f.bytes, 0) / 1e6;
      console.log(`${result.dir}\t${mb.toFixed(1)} MB\t${((performance.now() - started) / 1000).toFixed(2)} s`);
    },
  },
  {
    name: "transcribe",
    summary: "transcribe audio files (FLAC or WAV) with a model and a recipe",
    arguments: "<files...>",
    options: [
      MODEL,
      ...HUB,
      { flags: "--recipe <id>", description: "a recipe of `ptq recipes`", default: "fp32" },
      { flags: "--language <code>", description: "en, auto or a language code (multilingual models)" },
      THREADS,
      { flags: "--no-cache", description: "decode without the key/value cache (slower; for checking)" },
      { flags: "--json", description: "one JSON object per file (text, tokens, language)" },
    ],
    example: "ptq transcribe --model data/models/whisper-tiny.en --recipe hqq/4 speech.flac",
    run: async (files, o) => {
      const modelDir = await resolveModelDir(o.model, hubOptions(o));
      const { dir: onnxDir } = await ensureQuantizedModel(modelDir, findRecipe(o.recipe).id);
      const transcriber = await Transcriber.load(modelDir, {
        onnxDir,
        hub: hubOptions(o),
        ...(o.threads ? { threads: o.threads } : {}),
        ...(o.language ? { language: o.language } : {}),
        useCache: o.cache !== false,
      });
      try {
        for (const file of files) {
          const r = await transcriber.transcribeFile(file);
          console.log(
            o.json
              ? JSON.stringify({ file, text: r.text, tokens: r.tokens, language: r.language, finished: r.finished, truncated: r.truncated })
              : `${file}\t${r.text}`,
          );
        }
      } finally {
        await transcriber.close();
      }
    },
  },
  {
    name: "recipes",
    summary: "list the recipes: library, scheme, granularity, bits, how onnxruntime runs them",
    options: [],
    example: "ptq recipes",
    run: async () => {
      const rows = RECIPES.map((r) => [
        r.id,
        r.library,
        r.scheme,
        r.granularity,
        r.bits,
        r.expandByDefault ? `${r.execution({})}; ${r.expandByDefault} expanded at load` : r.execution({}),
        r.quantizesProjOut ? "yes" : "no",
        r.quantize || r.id === "fp32" ? (r.notInBrowser ? "no" : "yes") : "-",
        r.quantize || r.id === "fp32" ? "yes" : `no: ${r.missing}`,
      ]);
      const header = ["recipe", "library", "scheme", "granularity", "bits", "execution", "proj_out", "browser", "runs"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const row of [header, ...rows]) console.log(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
      const refused = RECIPES.filter((r) => r.notInBrowser);
      console.log(`\nbrowser: whether \`ptq export --format transformers.js\` writes it; the others, and why:`);
      for (const r of refused) console.log(`  ${r.id}: ${r.notInBrowser}`);
      console.log(
        "\nexpanded at load: where the native kernel is slow for the decoder's single rows, those layers are expanded to fp32 when the session loads (the library's values exactly; fp32 bytes in memory for them); --expand none keeps them native",
      );
    },
  },
  {
    name: "quantize",
    summary: "apply a recipe to a model's fp32 graphs (static recipes calibrate on a split first)",
    options: [
      MODEL,
      ...HUB,
      { flags: "--recipe <id>", description: "a recipe of `ptq recipes`", required: true },
      ...LAYER_SELECTION,
      { flags: "--out <dir>", description: "where to write the model (default: the cache under data/)" },
      ...CALIBRATION,
      THREADS,
    ],
    example: "ptq quantize --model data/models/whisper-tiny.en --recipe hqq/4 --group-size 128",
    run: async (_, o) => {
      const options = recipeOptions(o);
      const recipe = findRecipe(o.recipe);
      const modelDir = await resolveModelDir(o.model, hubOptions(o));
      const fp32 = await ensureOnnxModel(modelDir);
      const started = performance.now();
      const calibration = await staticCalibration(recipe.id, modelDir, o);
      const result = o.out
        ? {
            dir: o.out as string,
            manifest: (calibration
              ? await quantizeWithCalibration(fp32.dir, recipe.id, options, o.out, calibration)
              : await quantizeModel(fp32.dir, recipe.id, options, o.out)
            ).manifest,
          }
        : await ensureQuantizedModel(modelDir, recipe.id, options, calibration);
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
    },
  },
  {
    name: "export",
    summary: "write a recipe's graphs as a transformers.js model folder (refuses what a browser cannot run)",
    options: [
      MODEL,
      ...HUB,
      { flags: "--recipe <id>", description: "a recipe of `ptq recipes` (its export column says which)", required: true },
      { flags: "--format <name>", description: "the model folder's format", default: "transformers.js", parse: oneOf("transformers.js") },
      { flags: "--out <dir>", description: "the model folder (variants of one model may share it)", required: true },
      {
        flags: "--dtype <name>",
        description: `the transformers.js dtype naming the files (${Object.keys(DTYPE_SUFFIX).join(", ")}; default: the recipe's)`,
        parse: oneOf(...Object.keys(DTYPE_SUFFIX)),
      },
      { flags: "--subfolder <name>", description: "where the graphs go inside the folder (default onnx); one per variant of the same dtype" },
      { flags: "--results <dir>", description: "a results store: the WERs measured for this model and recipe go into the folder's README.md" },
      ...LAYER_SELECTION,
      ...CALIBRATION,
      THREADS,
    ],
    example: "ptq export --model data/models/whisper-tiny.en --recipe hqq/4 --out data/exports/whisper-tiny.en",
    run: async (_, o) => {
      const recipe = findRecipe(o.recipe);
      const modelDir = await resolveModelDir(o.model, hubOptions(o));
      const calibration = await staticCalibration(recipe.id, modelDir, o);
      const started = performance.now();
      const measured = o.results ? await measuredWers(o.results, o.model, recipe.id) : [];
      const v = await exportTransformersJs({
        measured,
        modelDir,
        recipe: recipe.id,
        options: recipeOptions(o),
        outDir: o.out,
        ...(calibration ? { calibration } : {}),
        ...(o.dtype ? { dtype: o.dtype } : {}),
        ...(o.subfolder ? { subfolder: o.subfolder } : {}),
      });
      console.log(
        JSON.stringify({
          out: o.out,
          recipe: v.recipe,
          dtype: v.dtype,
          subfolder: v.subfolder,
          MB: +(v.bytes / 1e6).toFixed(2),
          seconds: +((performance.now() - started) / 1000).toFixed(1),
        }),
      );
      console.log(`load it with: pipeline("automatic-speech-recognition", "${o.out}", { dtype: "${v.dtype}", subfolder: "${v.subfolder}" })`);
    },
  },
  {
    name: "import ct2",
    summary: "convert a CTranslate2 (faster-whisper) model folder to the Hugging Face layout",
    arguments: "<paths...>",
    options: [
      { flags: "--out <dir>", description: "the Hugging Face model folder to write", required: true },
      {
        flags: "--assets <dir>",
        description: "where to take files the source lacks (normalizer.json, ...)",
        default: BUNDLED_ASSETS,
        defaultShown: "whisper-tiny.en's, in test/fixtures/whisper-assets",
      },
    ],
    example: "ptq import ct2 faster-whisper-tiny.en/ --out data/models/whisper-tiny.en",
    run: async (paths, o) => {
      const report = await importCt2Model(paths, o.out, { fallbackAssets: o.assets });
      console.log(
        `${report.outDir}\t${report.parameters} parameters\t${report.sourcePrecision}${report.int8Derived ? " (int8-derived)" : ""}\tfallback files: ${report.filesFromFallback.join(", ") || "none"}`,
      );
    },
  },
  {
    name: "eval",
    summary: "evaluate a model and recipe on a LibriSpeech split into the results store (resumable)",
    options: [
      MODEL,
      { flags: "--split <name>", description: "test-clean, test-other or any split folder", required: true },
      { flags: "--recipe <id>", description: "a recipe of `ptq recipes`", default: "fp32" },
      { flags: "--limit <n>", description: "the first N utterances of the evaluation part", parse: positiveInt },
      { flags: "--full", description: "evaluate every utterance, the 10 % calibration part too" },
      { flags: "--noise <kind:snr>", description: "white:<dB> or babble:<dB> mixed into the audio (seeded)" },
      {
        flags: "--perturb <size>",
        description: "move the input features by this relative amount (e.g. 1e-6: the recipe's numerical noise floor)",
        parse: (v) => parsePerturbation(v).size,
      },
      { flags: "--perturb-seed <k>", description: "the perturbation's seed", default: 0, parse: (v) => (v === "0" ? 0 : positiveInt(v)) },
      {
        flags: "--runtime <name>",
        description: "kit (the kit's decoder on onnxruntime-node) or transformers.js (the recipe's export, run by transformers.js)",
        default: "kit",
        parse: oneOf("kit", "transformers.js"),
      },
      ...EVALUATION,
    ],
    example: "ptq eval --model data/models/whisper-tiny.en --split test-clean --recipe hqq/4 --workers 2",
    run: async (_, o, raw) => evaluate("eval", o, raw),
  },
  {
    name: "grid",
    summary: "evaluate models x recipes x splits (x noise) from a grid file into the results store, here or on Slurm",
    options: [
      { flags: "--config <file>", description: 'grid JSON: {"models": [...], "recipes": [...], "splits": [...], "limit": 100}' },
      ...EVALUATION,
      { flags: "--prepare-only", description: "only download, build, quantize and calibrate what the grid needs (the Slurm prepare job)" },
      { flags: "--slurm", description: "submit the grid to Slurm: a prepare job, an array of --tasks shards, a merge job after them" },
      { flags: "--tasks <n>", description: "Slurm: array tasks (default: one per ~250 utterance evaluations)", parse: positiveInt },
      { flags: "--partition <name>", description: "Slurm: the partition" },
      { flags: "--time <limit>", description: "Slurm: time limit of each job (e.g. 4:00:00)" },
      { flags: "--cpus-per-task <n>", description: "Slurm: cores per task (onnxruntime threads)", parse: positiveInt },
      { flags: "--mem <size>", description: "Slurm: memory per job (e.g. 8G)" },
      { flags: "--sbatch-arg <arg>", description: "Slurm: one more #SBATCH line (repeatable)", parse: collect },
      { flags: "--dry-run", description: "Slurm: print the scripts, submit nothing" },
      { flags: "--status <dir>", description: "Slurm: each task of the grid submitted into DIR: pending, running, done, failed, utterances stored" },
      { flags: "--resubmit <dir>", description: "Slurm: resubmit only the failed tasks of DIR, and the merge after them" },
    ],
    example:
      "ptq grid --config grid.json --shard 2/4\n  ptq grid --config grid.json --slurm --tasks 8 --partition cpu --results /shared/results\n  ptq grid --status /shared/results",
    run: async (_, o, raw) => {
      if (o.status) return printGridStatus(o.status);
      if (o.resubmit) {
        const r = await resubmitFailed(o.resubmit);
        console.log(`resubmitted tasks ${r.tasks.join(", ")} as array job ${r.array}; merge job ${r.merge} after them`);
        return;
      }
      if (!o.config) throw new KitError("ptq grid needs --config <file>", { field: "--config", fix: "ptq grid --config grid.json (or --status DIR)" });
      if (o.slurm) return submitToSlurm(o, raw);
      return evaluate("grid", o, raw);
    },
  },
  {
    name: "merge",
    summary: "join the results stores of a sharded grid",
    arguments: "<stores...>",
    options: [
      { flags: "--out <dir>", description: "the store to merge into", required: true },
      { flags: "--require-complete", description: "fail unless every run has all its utterances (the Slurm merge job)" },
    ],
    example: "ptq merge shard1/ shard2/ --out data/results",
    run: async (stores, o) => {
      const target = new ResultsStore(o.out);
      const result = await mergeStores(
        stores.map((d) => new ResultsStore(d)),
        target,
      );
      console.log(`${result.runs} runs merged into ${o.out}; ${result.completed} completed by the merge`);
      if (o.requireComplete) {
        const incomplete = await target.incompleteRuns();
        if (incomplete.length)
          throw new KitError(`${incomplete.length} of ${result.runs} runs lack utterances after the merge: ${incomplete.slice(0, 3).join(", ")}`, {
            field: "--require-complete",
            fix: "a shard is missing or partial: see ptq grid --status, resubmit its task, merge again",
          });
      }
    },
  },
  {
    name: "report",
    summary: "the tables (T2-T4, T11; csv, md, tex) and figures (F1, F2, F8; html) of a results store, without a notebook or a browser",
    options: [
      { flags: "--results <dir>", description: "the results store", required: true },
      { flags: "--out <dir>", description: "where the tables and figures go", required: true },
    ],
    example: "ptq report --results data/results --out data/results/report",
    run: async (_, o) => {
      const files = await writeStoreReport(o.results, o.out);
      console.log(`${files.length} files written under ${o.out}`);
    },
  },
  {
    name: "compare",
    summary: "each recipe against a baseline on the same utterances: paired WER difference, 95 % CI, p (Holm-corrected)",
    options: [
      { flags: "--results <dir>", description: "the results store (default data/results)" },
      { flags: "--baseline <recipe>", description: "the recipe every other is compared with", default: "fp32" },
      {
        flags: "--across <what>",
        description: "recipe (each recipe against the baseline) or runtime (each transformers.js run against the kit's run of the same recipe)",
        default: "recipe",
        parse: oneOf("recipe", "runtime"),
      },
      { flags: "--model <name>", description: "only this model (short name or folder)" },
      { flags: "--split <name>", description: "only this split" },
      { flags: "--json", description: "the rows as JSON instead of a markdown table" },
    ],
    example: "ptq compare --results data/results --split test-other",
    run: async (_, o) => {
      const rows = await compareRuns(o.results ?? join(dataDir(), "results"), {
        baseline: o.baseline,
        across: o.across,
        ...(o.model ? { model: o.model } : {}),
        ...(o.split ? { split: o.split } : {}),
      });
      if (rows.length === 0)
        throw new KitError(`no run in the store has a ${o.baseline} run to compare with on the same model and split`, {
          field: "--baseline",
          fix: "evaluate the baseline on the same model and split first (ptq eval --recipe fp32 ...)",
        });
      console.log(o.json ? JSON.stringify(rows, null, 1) : comparisonMarkdown(rows));
    },
  },
  {
    name: "synth",
    summary: "write a random-weight Whisper of any size (tests, smoke runs, size-true benchmarks)",
    options: [
      { flags: "--out <dir>", description: "the model folder to write", required: true },
      { flags: "--d-model <n>", description: "width", default: 64, parse: positiveInt },
      { flags: "--layers <n>", description: "encoder and decoder layers", default: 2, parse: positiveInt },
      { flags: "--heads <n>", description: "attention heads", default: 2, parse: positiveInt },
      { flags: "--seed <n>", description: "random seed", default: 0, parse: (v) => (v === "0" ? 0 : positiveInt(v)) },
      {
        flags: "--assets <dir>",
        description: "a real Whisper's tokenizer and config files",
        default: BUNDLED_ASSETS,
        defaultShown: "whisper-tiny.en's, in test/fixtures/whisper-assets",
      },
    ],
    example: "ptq synth --out data/bench/small-dims-model --d-model 768 --layers 12 --heads 12",
    run: async (_, o) => {
      await writeSyntheticWhisper(o.out, { assetsDir: o.assets, dModel: o.dModel, layers: o.layers, heads: o.heads, seed: o.seed });
      console.log(o.out);
    },
  },
];
