/**
 * Evaluation jobs as users name them (model, recipe, split, selection, noise), and grids of them:
 * what `ptq eval` and `ptq grid` run. A grid is a JSON file:
 *   { "models": ["openai/whisper-small", "data/models/whisper-base"], "recipes": ["fp32"],
 *     "splits": ["test-clean", "test-other"], "limit": 100, "noise": ["white:10"], "perturb": ["1e-6:1"] }
 * Each noise condition and each perturbation ("size:seed") adds a run beside the clean one.
 */
import { existsSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { loadAudio } from "../audio/decode.js";
import { Transcriber, type SpeechRecognizer, type TranscriberOptions } from "../asr/transcriber.js";
import { TransformersJsTranscriber } from "../asr/transformers-js.js";
import { readGenerationSettings } from "../asr/greedy.js";
import { WhisperTokenizer } from "../asr/tokenizer.js";
import { readWhisperConfig } from "../model/config.js";
import { MANIFEST_FILE, type ModelManifest } from "../model/build.js";
import { exportTransformersJs, VARIANTS_FILE, defaultDtype, type ExportedVariant } from "../export/transformers-js.js";
import { buildManifest, defaultLibriSpeechDir, type Utterance } from "../hub/librispeech.js";
import { KitError } from "../util/errors.js";
import { RECIPES } from "../recipes/catalog.js";
import { ensureQuantizedModel, type CalibrationRun } from "../recipes/quantize-model.js";
import { findRecipe, type RecipeOptions } from "../recipes/catalog.js";
import { calibrateActivations } from "../asr/calibrate.js";
import { resolveModelDir } from "../hub/fetch-model.js";
import { exists, readJson, repoRoot } from "../util/fs.js";
import { parsePerturbationSpec, type Perturbation } from "./perturb.js";
import { babble, babbleTalkers, mixAtSnr, parseNoise, seedOf, whiteNoise, type NoiseSpec } from "./noise.js";
import type { ResultsStore } from "./results-store.js";
import { runEvaluation, type Progress, type RunOutcome } from "./runner.js";
import { calibrationPart, evaluationPart, type Selection } from "./splits.js";

/**
 * The model as the results store names it: a folder inside this checkout by its path from the
 * checkout's root, so that the CLI (run from the root) and the notebooks (run from notebooks/, with
 * absolute paths) share runs, and a store resumes in another checkout; anything else as given.
 */
export function storeModelName(model: string): string {
  const folder = resolve(model);
  if (!existsSync(join(folder, "config.json"))) return model;
  const fromRoot = relative(repoRoot(), folder);
  return fromRoot && !fromRoot.startsWith("..") && !isAbsolute(fromRoot) ? fromRoot : model;
}

/** Recipes that can run (the catalog lists more; see `ptq recipes`). */
export const RECIPES_AVAILABLE = RECIPES.filter((r) => r.id === "fp32" || r.quantize).map((r) => r.id);

export interface EvalJob {
  model: string;
  recipe: string;
  split: string;
  librispeechDir?: string;
  selection?: Omit<Selection, "shard">;
  shard?: Selection["shard"];
  noise?: NoiseSpec;
  /** Input features moved by a seeded relative amount (the recipe's numerical noise floor). */
  perturb?: Perturbation;
  workers?: number;
  /** Worker processes sharing the store (ptq eval|grid --workers K), this one among them. */
  processes?: number;
  force?: boolean;
  /** Recipe options (layer selection, bits, group size), as `ptq quantize` takes them. */
  options?: RecipeOptions;
  /** Static recipes: use at most this many calibration utterances (default: the whole 10 %). */
  calibrationLimit?: number;
  /** Who runs the graphs: the kit (default), or transformers.js on the recipe's export (a run condition). */
  runtime?: Runtime;
}

export type Runtime = "kit" | "transformers.js";

export interface JobContext {
  store: ResultsStore;
  transcriberOptions: TranscriberOptions;
  onProgress?: (job: EvalJob, p: Progress) => void;
  /** Loaded models, reused across the jobs of a grid. */
  transcribers?: Map<string, SpeechRecognizer>;
}

function noiseTransform(noise: NoiseSpec, manifest: Utterance[]): (audio: Float32Array, u: Utterance) => Promise<Float32Array> {
  return async (audio, u) => {
    if (noise.kind === "white") return mixAtSnr(audio, whiteNoise(audio.length, seedOf(`white:${u.id}`)), noise.snrDb);
    const byId = new Map(manifest.map((x) => [x.id, x]));
    const talkers = await Promise.all(
      babbleTalkers(
        u.id,
        manifest.map((x) => x.id),
      ).map((id) => loadAudio(byId.get(id)!.path)),
    );
    return mixAtSnr(audio, babble(audio.length, talkers), noise.snrDb);
  };
}

/**
 * The study's calibration for static recipes: the first 10 % of the split (by sorted utterance id),
 * never part of the evaluation. `limit` caps the utterances used (for quick runs; recorded in the source).
 */
export function splitCalibration(modelDir: string, split: string, manifest: Utterance[], options: TranscriberOptions = {}, limit?: number): CalibrationRun {
  let part = calibrationPart(manifest);
  if (limit !== undefined) part = part.slice(0, limit);
  if (part.length === 0)
    throw new KitError(`${split} has no calibration part (${manifest.length} utterances)`, {
      field: "split",
      fix: "calibrate on a split with at least 10 utterances",
    });
  return {
    source: `${split} calibration part: ${part.length} utterances, ${part[0]!.id} .. ${part.at(-1)!.id}`,
    run: async (dir) =>
      (
        await calibrateActivations(
          modelDir,
          dir,
          part.map((u) => u.path),
          { threads: options.threads ?? 0 },
        )
      ).activations,
  };
}

/** What identifies a recipe's run: its options and, for static recipes, what calibrated it. */
function recipeSpec(transcriber: SpeechRecognizer): Record<string, unknown> {
  const { recipeOptions, calibration } = transcriber.manifest;
  return { ...(recipeOptions ?? {}), ...(typeof calibration === "object" ? { calibration: calibration.source } : {}) };
}

/** The job's model folder and its graphs, fetched, built, quantized and (static recipes) calibrated on `manifest`'s split. */
async function jobGraphs(
  job: EvalJob,
  manifest: Utterance[],
  context: Pick<JobContext, "transcriberOptions">,
): Promise<{ modelDir: string; onnxDir: string; calibration: CalibrationRun | undefined }> {
  const modelDir = await resolveModelDir(job.model, context.transcriberOptions.hub ?? {});
  const calibration =
    findRecipe(job.recipe).scheme === "static" ? splitCalibration(modelDir, job.split, manifest, context.transcriberOptions, job.calibrationLimit) : undefined;
  const { dir } = await ensureQuantizedModel(modelDir, job.recipe, job.options ?? {}, calibration);
  return { modelDir, onnxDir: dir, calibration };
}

/** The recipe's transformers.js export, made once beside its graphs (data/onnx/<model>/<recipe>.transformers.js). */
async function jobExport(
  job: EvalJob,
  manifest: Utterance[],
  context: Pick<JobContext, "transcriberOptions">,
): Promise<{ modelDir: string; onnxDir: string; folder: string; variant: ExportedVariant }> {
  const { modelDir, onnxDir, calibration } = await jobGraphs(job, manifest, context);
  const folder = `${onnxDir}.transformers.js`;
  const dtype = defaultDtype(job.recipe, job.options ?? {});
  if (await exists(join(folder, VARIANTS_FILE))) {
    const variant = (await readJson<ExportedVariant[]>(join(folder, VARIANTS_FILE))).find((v) => v.dtype === dtype && v.subfolder === "onnx");
    if (variant) return { modelDir, onnxDir, folder, variant };
  }
  // No load into onnxruntime-web here: its WASM heap would stay in this process and count in the run's peak memory.
  const variant = await exportTransformersJs({
    modelDir,
    recipe: job.recipe,
    options: job.options ?? {},
    ...(calibration ? { calibration } : {}),
    outDir: folder,
    dtype,
    checkInBrowserRuntime: false,
  });
  return { modelDir, onnxDir, folder, variant };
}

async function loadRecognizer(job: EvalJob, manifest: Utterance[], context: Pick<JobContext, "transcriberOptions">): Promise<SpeechRecognizer> {
  if ((job.runtime ?? "kit") === "kit") {
    const { modelDir, onnxDir } = await jobGraphs(job, manifest, context);
    return Transcriber.load(modelDir, { ...context.transcriberOptions, onnxDir });
  }
  const { modelDir, onnxDir, folder, variant } = await jobExport(job, manifest, context);
  const config = await readWhisperConfig(join(modelDir, "config.json"));
  const generation = await readGenerationSettings(modelDir, await WhisperTokenizer.load(modelDir), config.maxTargetPositions);
  const kitManifest = await readJson<ModelManifest>(join(onnxDir, MANIFEST_FILE));
  const o = context.transcriberOptions;
  return TransformersJsTranscriber.load(
    { folder, dtype: variant.dtype, subfolder: variant.subfolder },
    { modelDir, manifest: kitManifest, generation },
    { ...(o.threads !== undefined ? { threads: o.threads } : {}), ...(o.maxNewTokens !== undefined ? { maxNewTokens: o.maxNewTokens } : {}) },
  );
}

/**
 * Everything a job needs on disk before it runs. Worker processes of one grid get this from their
 * parent, so that no two of them build the same folder at once.
 */
export async function prepareJob(job: EvalJob, context: Pick<JobContext, "transcriberOptions">): Promise<void> {
  if (!RECIPES_AVAILABLE.includes(job.recipe)) return; // runJob names the problem
  const manifest = await buildManifest(job.librispeechDir ?? defaultLibriSpeechDir(), job.split);
  if ((job.runtime ?? "kit") === "kit") await jobGraphs(job, manifest, context);
  else await jobExport(job, manifest, context);
}

export async function runJob(job: EvalJob, context: JobContext): Promise<RunOutcome> {
  if (!RECIPES_AVAILABLE.includes(job.recipe)) {
    throw new KitError(`unknown recipe '${job.recipe}'`, { field: "recipe", fix: `recipes available: ${RECIPES_AVAILABLE.join(", ")}` });
  }
  const root = job.librispeechDir ?? defaultLibriSpeechDir();
  const manifest = await buildManifest(root, job.split);
  const utterances = evaluationPart(manifest, job.selection ?? {});
  if (utterances.length === 0) throw new KitError(`the selection from ${job.split} is empty`, { field: "--limit", fix: "raise --limit or use --full" });
  const isStatic = findRecipe(job.recipe).scheme === "static";
  const cacheKey = `${job.model}\u0000${job.recipe}\u0000${JSON.stringify(job.options ?? {})}\u0000${job.runtime ?? "kit"}${isStatic ? `\u0000${job.split}` : ""}`; // static recipes are calibrated per split
  let transcriber = context.transcribers?.get(cacheKey);
  if (!transcriber && context.transcribers) {
    // One model in memory at a time, so that each run's peak memory is its own.
    for (const [key, loaded] of context.transcribers) {
      await loaded.close();
      context.transcribers.delete(key);
    }
  }
  if (!transcriber) {
    transcriber = await loadRecognizer(job, manifest, context);
    context.transcribers?.set(cacheKey, transcriber);
  }
  const conditions: Record<string, unknown> = {
    ...(job.noise ? { noise: `${job.noise.kind}:${job.noise.snrDb}` } : {}),
    ...(job.perturb ? { perturb: `${job.perturb.size}:${job.perturb.seed}` } : {}),
    ...(job.runtime && job.runtime !== "kit" ? { runtime: job.runtime } : {}),
  };
  try {
    return await runEvaluation({
      transcriber,
      modelName: storeModelName(job.model),
      recipe: { id: job.recipe, options: recipeSpec(transcriber) },
      split: job.split,
      utterances,
      store: context.store,
      workers: job.workers ?? 1,
      processes: job.processes ?? 1,
      force: job.force ?? false,
      conditions,
      ...(job.shard ? { shard: job.shard } : {}),
      ...(job.noise ? { transformAudio: noiseTransform(job.noise, manifest) } : {}),
      ...(job.perturb ? { perturb: job.perturb } : {}),
      ...(context.onProgress ? { onProgress: (p: Progress) => context.onProgress!(job, p) } : {}),
    });
  } finally {
    if (!context.transcribers) await transcriber.close();
  }
}

interface GridFile {
  models?: unknown;
  recipes?: unknown;
  splits?: unknown;
  noise?: unknown;
  perturb?: unknown;
  limit?: unknown;
  full?: unknown;
  librispeechDir?: unknown;
  calibrationLimit?: unknown;
}

/** The jobs of a grid file: models x recipes x splits (x noise conditions). */
export async function readGrid(file: string): Promise<EvalJob[]> {
  const grid = await readJson<GridFile>(file);
  const list = (field: keyof GridFile, required: boolean): string[] => {
    const v = grid[field];
    if (v === undefined && !required) return [];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) {
      throw new KitError(`grid field '${field}' must be a non-empty list of strings`, { file, field, fix: `e.g. "${field}": ["..."]` });
    }
    return v as string[];
  };
  const models = list("models", true);
  const recipes = grid.recipes === undefined ? ["fp32"] : list("recipes", true);
  const splits = list("splits", true);
  const noises = list("noise", false).map(parseNoise);
  const perturbations = list("perturb", false).map((p) => {
    try {
      return parsePerturbationSpec(p);
    } catch (e) {
      throw new KitError(`grid field 'perturb': ${(e as Error).message}`, { file, field: "perturb", fix: 'e.g. "perturb": ["1e-6:1", "1e-6:2"] (size:seed)' });
    }
  });
  if (grid.limit !== undefined && (!Number.isInteger(grid.limit) || (grid.limit as number) < 1)) {
    throw new KitError("grid field 'limit' must be a positive integer", { file, field: "limit", fix: 'e.g. "limit": 100' });
  }
  if (grid.calibrationLimit !== undefined && (!Number.isInteger(grid.calibrationLimit) || (grid.calibrationLimit as number) < 1)) {
    throw new KitError("grid field 'calibrationLimit' must be a positive integer", {
      file,
      field: "calibrationLimit",
      fix: 'e.g. "calibrationLimit": 20, or leave it out to calibrate on the whole 10 %',
    });
  }
  for (const r of recipes)
    if (!RECIPES_AVAILABLE.includes(r))
      throw new KitError(`unknown recipe '${r}'`, { file, field: "recipes", fix: `recipes available: ${RECIPES_AVAILABLE.join(", ")}` });
  const selection: Omit<Selection, "shard"> = { full: grid.full === true, ...(grid.limit !== undefined ? { limit: grid.limit as number } : {}) };
  const jobs: EvalJob[] = [];
  for (const model of models) {
    for (const recipe of recipes) {
      for (const split of splits) {
        const conditions: Array<Pick<EvalJob, "noise" | "perturb">> = [
          {},
          ...noises.map((noise) => ({ noise })),
          ...perturbations.map((perturb) => ({ perturb })),
        ];
        for (const condition of conditions) {
          jobs.push({
            model,
            recipe,
            split,
            selection,
            ...(typeof grid.librispeechDir === "string" ? { librispeechDir: grid.librispeechDir } : {}),
            ...condition,
            ...(grid.calibrationLimit !== undefined ? { calibrationLimit: grid.calibrationLimit as number } : {}),
          });
        }
      }
    }
  }
  return jobs;
}
