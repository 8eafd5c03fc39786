/**
 * What the notebooks and `make reproduce` ask of the kit, in one place: the study's configuration
 * (from the environment, so that a headless run and a notebook agree), evaluations run or resumed
 * through the results store, and the report written from that store.
 *
 * Environment: MODELS (comma-separated hub ids or folders; default openai/whisper-small), SPLITS
 * (default test-clean,test-other), LIMIT (utterances per split; default all of the 90 % evaluation
 * part), RECIPE_LIMITS (per-recipe limits that replace LIMIT, e.g. hqq/3:100 for recipes that loop),
 * RECIPES (default every runnable recipe), MODEL_DIR (a folder holding models by short name,
 * used instead of the hub when present), LIBRISPEECH_DIR, HUB_URL, CALIBRATION_LIMIT, RESULTS_DIR,
 * FIGURES_DIR, THREADS, and SMOKE=1 (random-weight model, every output stamped as a smoke run).
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { cpus } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { runJob, RECIPES_AVAILABLE, type EvalJob } from "../eval/jobs.js";
import type { NoiseSpec } from "../eval/noise.js";
import { parsePerturbationSpec, type Perturbation } from "../eval/perturb.js";
import { ResultsStore } from "../eval/results-store.js";
import type { Transcriber } from "../asr/transcriber.js";
import type { RecipeOptions } from "../recipes/catalog.js";
import { KitError } from "../util/errors.js";
import { dataDir, repoRoot, writeJsonAtomic } from "../util/fs.js";
import { defaultLibriSpeechDir, fetchLibriSpeech } from "../hub/librispeech.js";
import { fetchModel } from "../hub/fetch-model.js";
import { progress } from "../util/progress.js";
import { loadResultRows, shortModelName, type ResultRow } from "../report/rows.js";
import { jobState, resubmitCommand, submitGrid } from "../slurm/slurm.js";

export interface StudyConfig {
  models: string[]; // hub ids or folders, as given
  splits: string[];
  limit: number | undefined;
  /** RECIPE_LIMITS: utterances for the named recipes instead of LIMIT (loop-prone recipes on fewer). */
  recipeLimits: Record<string, number>;
  recipes: string[];
  modelDir: string | undefined;
  librispeechDir: string;
  /** No LIBRISPEECH_DIR given: each split is downloaded into data/librispeech on first use. */
  downloadSplits: boolean;
  librispeechMirror: string | undefined;
  hubUrl: string | undefined;
  calibrationLimit: number | undefined;
  resultsDir: string;
  figuresDir: string;
  threads: number;
  /** Random weights: outputs are stamped so that nobody takes them for results. */
  smoke: boolean;
  /** Decoding cap for smoke runs (random weights never emit end-of-text). */
  maxNewTokens: number | undefined;
  /** PERTURB: reruns with the input features perturbed (size:seed), for each recipe's noise floor. */
  perturb: Perturbation[];
}

export const SMOKE_STAMP = "SMOKE RUN: random weights, not a result";

function list(value: string | undefined, fallback: string[]): string[] {
  const items = (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length ? items : fallback;
}

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new KitError(`${name} must be a positive integer, got '${value}'`, { field: name, fix: `e.g. ${name}=20, or leave it unset` });
  return n;
}

/** RECIPE_LIMITS=recipe:N,...: each named recipe evaluated on its own first N utterances. */
function parseRecipeLimits(value: string | undefined): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const item of list(value, [])) {
    const at = item.lastIndexOf(":");
    const recipe = item.slice(0, at);
    const n = Number(item.slice(at + 1));
    const fix = "e.g. RECIPE_LIMITS=hqq/3:100,quanto/w8a8:100 (recipe:utterances), or leave it unset";
    if (at < 1 || !Number.isInteger(n) || n < 1)
      throw new KitError(`RECIPE_LIMITS entry '${item}' is not recipe:N with N a positive integer`, { field: "RECIPE_LIMITS", fix });
    if (!RECIPES_AVAILABLE.includes(recipe))
      throw new KitError(`RECIPE_LIMITS names '${recipe}', which cannot run`, { field: "RECIPE_LIMITS", fix: `choose from: ${RECIPES_AVAILABLE.join(", ")}` });
    limits[recipe] = n;
  }
  return limits;
}

/** The number of utterances a recipe is evaluated on: its RECIPE_LIMITS entry, else LIMIT (undefined: all). */
export function recipeLimit(config: Pick<StudyConfig, "limit" | "recipeLimits">, recipe: string): number | undefined {
  return config.recipeLimits[recipe] ?? config.limit;
}

/** Paths in the environment are relative to the repository (a notebook's working directory is notebooks/). */
function fromRepo(path: string): string {
  return isAbsolute(path) ? path : resolve(repoRoot(), path);
}

/** A model given as a folder relative to the repository becomes absolute; a hub id stays as it is. */
function modelArgument(model: string): string {
  return !isAbsolute(model) && existsSync(join(repoRoot(), model, "config.json")) ? resolve(repoRoot(), model) : model;
}

export function studyConfig(env: NodeJS.ProcessEnv = process.env): StudyConfig {
  const recipes = list(env.RECIPES, RECIPES_AVAILABLE);
  for (const r of recipes)
    if (!RECIPES_AVAILABLE.includes(r))
      throw new KitError(`RECIPES names '${r}', which cannot run`, { field: "RECIPES", fix: `choose from: ${RECIPES_AVAILABLE.join(", ")}` });
  const smoke = env.SMOKE === "1";
  const recipeLimits = parseRecipeLimits(env.RECIPE_LIMITS);
  return {
    models: list(env.MODELS, ["openai/whisper-small"]).map(modelArgument),
    splits: list(env.SPLITS, ["test-clean", "test-other"]),
    limit: positive("LIMIT", env.LIMIT),
    recipeLimits,
    recipes,
    modelDir: env.MODEL_DIR ? fromRepo(env.MODEL_DIR) : undefined,
    librispeechDir: env.LIBRISPEECH_DIR ? fromRepo(env.LIBRISPEECH_DIR) : defaultLibriSpeechDir(),
    downloadSplits: !env.LIBRISPEECH_DIR,
    librispeechMirror: env.LIBRISPEECH_MIRROR || undefined,
    hubUrl: env.HUB_URL || undefined,
    calibrationLimit: positive("CALIBRATION_LIMIT", env.CALIBRATION_LIMIT),
    resultsDir: env.RESULTS_DIR ? fromRepo(env.RESULTS_DIR) : join(dataDir(), "results"),
    figuresDir: env.FIGURES_DIR ? fromRepo(env.FIGURES_DIR) : join(repoRoot(), "figures"),
    threads: positive("THREADS", env.THREADS) ?? Math.max(1, cpus().length),
    smoke,
    maxNewTokens: positive("MAX_NEW_TOKENS", env.MAX_NEW_TOKENS) ?? (smoke ? 8 : undefined),
    perturb: list(env.PERTURB, []).map((spec) => {
      try {
        return parsePerturbationSpec(spec);
      } catch (e) {
        throw new KitError(`PERTURB: ${(e as Error).message}`, { field: "PERTURB", fix: "e.g. PERTURB=1e-6:1,1e-6:2 (size:seed), or leave it unset" });
      }
    }),
  };
}

/** A model as the jobs name it: the folder under MODEL_DIR with its short name when there is one. */
export function modelLocation(config: StudyConfig, model: string): string {
  if (config.modelDir) {
    const local = join(config.modelDir, shortModelName(model));
    if (existsSync(join(local, "config.json"))) return local;
  }
  return model;
}

const OFFLINE =
  'offline, `make smoke` runs every chapter on a random-weight model and the repository\'s own utterances; with local data, `make reproduce MODEL_DIR=<models folder> LIBRISPEECH_DIR=<LibriSpeech folder>` (README, "Notebooks, tables and figures")';

/** A download that could not connect, rethrown with the variable that points elsewhere and the offline ways. */
function unreachable(err: unknown, what: string, variable: string, local: string): unknown {
  if (!(err instanceof KitError) || !/could not be reached|cannot reach/.test(err.message)) return err;
  const first = err.message.split("\n")[0];
  return new KitError(`${what}: ${first}`, { field: variable, fix: `check the network, or set ${variable} to a mirror, or ${local}; ${OFFLINE}` }, err);
}

/**
 * What the configuration needs on disk, fetched on first use: each model that is neither a folder
 * nor under MODEL_DIR from the hub (HUB_URL), and, without LIBRISPEECH_DIR, each split from
 * OpenSLR (LIBRISPEECH_MIRROR) into data/librispeech, verified and extracted; an interrupted
 * download resumes. Returns at once when everything is there.
 */
export async function ensureData(config: StudyConfig, models: string[] = config.models, splits: string[] = config.splits): Promise<void> {
  for (const model of models) {
    const location = modelLocation(config, model);
    if (existsSync(join(location, "config.json"))) continue;
    const bars = new Map<string, ReturnType<typeof progress>>();
    try {
      await fetchModel(location, {
        ...(config.hubUrl ? { hubUrl: config.hubUrl } : {}),
        onProgress: (file, bytes, total) => {
          if (!bars.has(file)) bars.set(file, progress(`download ${location} ${file}`, { unit: "bytes" }));
          bars.get(file)!.update(bytes, total);
        },
      });
    } catch (err) {
      throw unreachable(err, `model ${location}`, "HUB_URL", "set MODEL_DIR to a folder holding the model by its short name");
    } finally {
      for (const b of bars.values()) b.done();
    }
  }
  if (!config.downloadSplits) return;
  for (const split of splits) {
    if (existsSync(join(config.librispeechDir, `${split}.manifest.jsonl`))) continue;
    const bar = progress(`download LibriSpeech ${split}`, { unit: "bytes" });
    try {
      await fetchLibriSpeech(split, {
        root: join(config.librispeechDir, ".."),
        ...(config.librispeechMirror ? { mirrorUrl: config.librispeechMirror } : {}),
        onProgress: (b, t) => bar.update(b, t),
      });
    } catch (err) {
      throw unreachable(err, `LibriSpeech ${split}`, "LIBRISPEECH_MIRROR", "set LIBRISPEECH_DIR to a LibriSpeech folder that has it");
    } finally {
      bar.done();
    }
  }
}

export interface StudyRequest {
  models?: string[];
  recipes?: string[];
  splits?: string[];
  noise?: NoiseSpec[];
  /** Perturbed reruns (the noise floor); absent: the configuration's PERTURB. Not combined with noise. */
  perturb?: Perturbation[];
  /** Static recipes: calibrate on the first N utterances of the 10 % (absent: the configuration's CALIBRATION_LIMIT). */
  calibrationLimit?: number;
  options?: RecipeOptions; // e.g. { include: [...] }: quantize only these layers (per-layer sensitivity)
}

/**
 * Run (or resume) every evaluation the request names; finished runs are read from the store, so a
 * rerun does only what is missing. Progress goes to stderr, one line per run.
 */
/** One line saying which configuration a chapter runs on (printed by every chapter's first evaluation). */
export function describeConfig(config: StudyConfig): string {
  const models = config.models.map((m) => shortModelName(m)).join(", ");
  return [
    `configuration: ${config.smoke ? "SMOKE (random weights), " : ""}models ${models}`,
    `splits ${config.splits.join(", ")} (${config.limit ? `first ${config.limit} evaluated` : "the whole evaluation part"}${
      Object.keys(config.recipeLimits).length
        ? `; ${Object.entries(config.recipeLimits)
            .map(([r, n]) => `${r} on ${n}`)
            .join(", ")}`
        : ""
    })`,
    `${config.recipes.length} recipes`,
    `audio from ${config.librispeechDir}`,
    `results in ${config.resultsDir}`,
    `${config.threads} threads`,
    ...(config.perturb.length ? [`perturbed reruns ${config.perturb.map((p) => `${p.size}:${p.seed}`).join(", ")}`] : []),
  ].join("; ");
}

export async function runStudy(config: StudyConfig, request: StudyRequest = {}): Promise<ResultRow[]> {
  console.log(describeConfig(config));
  await ensureData(config, request.models ?? config.models, request.splits ?? config.splits);
  const store = new ResultsStore(config.resultsDir);
  const jobs: EvalJob[] = [];
  for (const model of request.models ?? config.models) {
    for (const recipe of request.recipes ?? config.recipes) {
      const limit = recipeLimit(config, recipe);
      for (const split of request.splits ?? config.splits) {
        const perturbations = request.noise ? [] : (request.perturb ?? config.perturb);
        const conditions: Array<{ noise?: NoiseSpec; perturb?: Perturbation }> = request.noise
          ? request.noise.map((noise) => ({ noise })) // a noise sweep runs only its noisy conditions
          : [{}, ...perturbations.map((perturb) => ({ perturb }))];
        for (const { noise, perturb } of conditions) {
          jobs.push({
            model: modelLocation(config, model),
            recipe,
            split,
            librispeechDir: config.librispeechDir,
            selection: { full: false, ...(limit ? { limit } : {}) },
            ...(noise ? { noise } : {}),
            ...(perturb ? { perturb } : {}),
            ...((request.calibrationLimit ?? config.calibrationLimit) ? { calibrationLimit: request.calibrationLimit ?? config.calibrationLimit } : {}),
            ...(request.options ? { options: request.options } : {}),
          });
        }
      }
    }
  }
  if (process.env.SCHEDULER === "slurm") await runOnSlurm(config, jobs);
  const transcribers = new Map<string, Transcriber>();
  const keys = new Set<string>();
  try {
    for (const [i, job] of jobs.entries()) {
      const label = `[${i + 1}/${jobs.length}] ${shortModelName(job.model)} ${job.recipe} ${job.split}${job.noise ? ` ${job.noise.kind}:${job.noise.snrDb}dB` : ""}${job.perturb ? ` perturbed ${job.perturb.size}:${job.perturb.seed}` : ""}`;
      const started = performance.now();
      const bar = progress(label);
      const outcome = await runJob(job, {
        store,
        transcribers,
        transcriberOptions: {
          threads: config.threads,
          ...(config.hubUrl ? { hub: { hubUrl: config.hubUrl } } : {}),
          ...(config.maxNewTokens ? { maxNewTokens: config.maxNewTokens } : {}),
        },
        onProgress: (_, p) => bar.update(p.done, p.total, `${p.resumed} resumed, WER so far ${(100 * p.runningWer).toFixed(2)} %`),
      });
      bar.done();
      keys.add(outcome.key);
      process.stderr.write(
        `${label}: done in ${((performance.now() - started) / 1000).toFixed(1)} s, WER ${outcome.summary ? (100 * outcome.summary.wer).toFixed(2) : "?"} %\n`,
      );
    }
  } finally {
    for (const t of transcribers.values()) await t.close();
  }
  return (await loadResultRows(config.resultsDir)).filter((r) => keys.has(r.key));
}

/**
 * Static calibration, measured: each static recipe calibrated on the first N utterances of each
 * split's 10 %, for each N (a size beyond a split's calibration part calibrates on the whole part, one run).
 */
export async function runCalibrationStudy(config: StudyConfig, recipes: string[], sizes: number[]): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const n of [...new Set(sizes)].sort((a, b) => a - b)) {
    rows.push(...(await runStudy(config, { recipes: ["fp32", ...recipes], calibrationLimit: n, perturb: [] })));
  }
  const seen = new Set<string>();
  return rows.filter((r) => !seen.has(r.key) && seen.add(r.key));
}

/**
 * SCHEDULER=slurm: the study's evaluations as a Slurm grid (prepare, array, merge into the results
 * folder), waited for; the chapter then finds every run finished in the store. Jobs with recipe
 * options (chapter 09's per-layer runs) have no grid form and run here as before.
 */
async function runOnSlurm(config: StudyConfig, jobs: EvalJob[]): Promise<void> {
  const gridable = jobs.filter((j) => !j.options);
  if (gridable.length === 0) return;
  const conditions = (j: EvalJob) =>
    `${j.noise ? `noise ${j.noise.kind}:${j.noise.snrDb}` : j.perturb ? `perturb ${j.perturb.size}:${j.perturb.seed}` : ""} limit ${j.selection?.limit ?? "all"}`;
  // one grid per set of conditions and limit: a grid file crosses models x recipes x splits with its noise, perturbations and limit
  const groups = new Map<string, EvalJob[]>();
  for (const j of gridable) groups.set(conditions(j), [...(groups.get(conditions(j)) ?? []), j]);
  for (const group of groups.values()) {
    const first = group[0]!;
    const dir = join(config.resultsDir, "slurm-grids");
    await mkdir(dir, { recursive: true });
    const grid = {
      models: [...new Set(group.map((j) => j.model))],
      recipes: [...new Set(group.map((j) => j.recipe))],
      splits: [...new Set(group.map((j) => j.split))],
      librispeechDir: config.librispeechDir,
      ...(first.selection?.limit ? { limit: first.selection.limit } : {}),
      ...(first.calibrationLimit ? { calibrationLimit: first.calibrationLimit } : {}),
      ...(first.noise ? { noise: [`${first.noise.kind}:${first.noise.snrDb}`] } : {}),
      ...(first.perturb ? { perturb: [`${first.perturb.size}:${first.perturb.seed}`] } : {}),
    };
    const file = join(dir, `grid-${Date.now()}.json`);
    await writeJsonAtomic(file, grid);
    const cli = { node: process.execPath, script: join(repoRoot(), "build", "src", "cli.js"), cwd: repoRoot() };
    const { jobs: submitted } = await submitGrid(
      { config: file, results: config.resultsDir, gridArgs: config.hubUrl ? ["--hub-url", config.hubUrl] : [], sbatchArgs: [] },
      cli,
      false,
    );
    process.stderr.write(
      `submitted to Slurm: ${grid.recipes.length} recipes x ${grid.splits.length} splits as ${submitted!.tasks} tasks; waiting for merge job ${submitted!.merge}\n`,
    );
    for (;;) {
      const s = await jobState(submitted!.merge);
      if (!s || s.state === "COMPLETED") break;
      if ((s.state !== "PENDING" && s.state !== "RUNNING" && s.state !== "COMPLETING") || s.reason === "DependencyNeverSatisfied")
        throw new KitError(`the Slurm grid in ${config.resultsDir} did not finish: merge job ${submitted!.merge} is ${s.state} (${s.reason})`, {
          field: "SCHEDULER",
          fix: `see ptq grid --status ${config.resultsDir}; after fixing the cause: ${resubmitCommand(config.resultsDir)}, then rerun`,
        });
      await new Promise((r) => setTimeout(r, 10_000));
    }
  }
}
