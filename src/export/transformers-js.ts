/**
 * `ptq export --format transformers.js`: a recipe's graphs as a model folder that
 * `pipeline("automatic-speech-recognition", DIR)` of transformers.js loads offline. Several
 * recipes of one model sit side by side (one dtype suffix or subfolder each); variants.json
 * records each one's recipe, files and sizes, and README.md lists them.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { ModelManifest } from "../model/build.js";
import { readWhisperConfig } from "../model/config.js";
import { GraphBuilder, writeOnnxModel } from "../model/onnx.js";
import { findRecipe, type RecipeOptions } from "../recipes/catalog.js";
import { ensureQuantizedModel, type CalibrationRun } from "../recipes/quantize-model.js";
import { KitError } from "../util/errors.js";
import { exists, readJson, writeFileAtomic, writeJsonAtomic } from "../util/fs.js";
import { browserBlockers, loadInWebRuntime, WEB_BUILD } from "./browser-check.js";
import { toTransformersJsGraphs } from "./merged-decoder.js";

/** transformers.js's dtypes and the file-name suffix each selects (it never inspects operators). */
export const DTYPE_SUFFIX = {
  fp32: "",
  fp16: "_fp16",
  q8: "_quantized",
  int8: "_int8",
  uint8: "_uint8",
  q4: "_q4",
  q4f16: "_q4f16",
  bnb4: "_bnb4",
  q2: "_q2",
  q1: "_q1",
} as const;
export type TransformersJsDtype = keyof typeof DTYPE_SUFFIX;

/** The files transformers.js reads beside the graphs (tokenizer_config.json makes it load the tokenizer). */
const MODEL_FOLDER_FILES = [
  "generation_config.json",
  "preprocessor_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "normalizer.json",
];
const REQUIRED_FILES = ["generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"];

export const VARIANTS_FILE = "variants.json";

export interface ExportedVariant {
  recipe: string;
  recipeOptions: RecipeOptions;
  dtype: TransformersJsDtype;
  subfolder: string;
  files: Record<string, number>; // path inside the folder -> bytes
  bytes: number; // the variant's graph and data files
  execution: string; // how its linear layers run (MatMulNBits, MatMulBnb4, ...)
  dequantizedAtLoad: boolean;
  exportedAt: string;
  /** Measured WERs of this variant, added by evaluations (kit runtime or transformers.js). */
  measured?: Array<{ runtime: string; split: string; utterances: number; wer: number; werLow?: number; werHigh?: number }>;
}

export interface ExportOptions {
  modelDir: string;
  recipe: string;
  options?: RecipeOptions;
  calibration?: CalibrationRun;
  outDir: string;
  dtype?: TransformersJsDtype;
  subfolder?: string;
  /** Load the written graphs into the web build before publishing them (default true). */
  checkInBrowserRuntime?: boolean;
  /** WERs measured for this model and recipe (from a results store), listed in README.md. */
  measured?: ExportedVariant["measured"];
}

/** The dtype a recipe exports as by default: its weight format's closest transformers.js name. */
export function defaultDtype(recipeId: string, options: RecipeOptions = {}): TransformersJsDtype {
  const recipe = findRecipe(recipeId);
  if (recipe.id === "fp32") return "fp32";
  if (recipe.library === "bitsandbytes") return recipe.llmInt8 ? "int8" : "bnb4";
  const bits = options.bits ?? (recipe.bits.startsWith("float8") ? 8 : Number.parseInt(recipe.bits, 10)); // the weights' bits ("4 x 8": 4)
  if (bits === 8) return recipe.scheme === "weight-only" ? "q8" : "int8";
  if (bits === 4) return "q4";
  if (bits === 2) return "q2";
  if (bits === 1) return "q1";
  return "uint8"; // 3 bits: codes packed in bytes, expanded at load; transformers.js has no 3-bit name
}

export function variantFiles(dtype: TransformersJsDtype): { encoder: string; decoder: string } {
  const s = DTYPE_SUFFIX[dtype];
  return { encoder: `encoder_model${s}.onnx`, decoder: `decoder_model_merged${s}.onnx` };
}

/** Refuse, before anything is written, what the web build cannot run. */
export function refuseBrowserBlockers(recipeId: string, encoder: GraphBuilder, decoder: GraphBuilder): void {
  const types = new Map<string, number>();
  for (const g of [encoder, decoder]) for (const init of g.initializers.values()) types.set(init.name, init.dataType);
  const blockers = browserBlockers([...encoder.nodes, ...decoder.nodes], types);
  if (blockers.length === 0) return;
  const b = blockers[0]!;
  throw new KitError(`${recipeId} cannot run in a browser: its graph needs ${b.operator} (node ${b.node}), and ${WEB_BUILD} lacks it: ${b.reason}`, {
    field: "--recipe",
    fix: `export ${b.alternative}; \`ptq recipes\` lists which recipes export`,
  });
}

async function readVariants(outDir: string): Promise<ExportedVariant[]> {
  const file = join(outDir, VARIANTS_FILE);
  return (await exists(file)) ? await readJson<ExportedVariant[]>(file) : [];
}

/** Export one recipe into `outDir` (created if needed); returns what was written. */
export async function exportTransformersJs(o: ExportOptions): Promise<ExportedVariant> {
  const recipe = findRecipe(o.recipe);
  const options = o.options ?? {};
  const dtype = o.dtype ?? defaultDtype(recipe.id, options);
  const subfolder = o.subfolder ?? "onnx";
  if (!/^[A-Za-z0-9._-]+$/.test(subfolder))
    throw new KitError(`subfolder '${subfolder}' is not a plain folder name`, { field: "--subfolder", fix: "use letters, digits, '.', '_' or '-'" });
  const files = variantFiles(dtype);
  const variants = await readVariants(o.outDir);
  const clash = variants.find(
    (v) => v.subfolder === subfolder && v.dtype === dtype && (v.recipe !== recipe.id || JSON.stringify(v.recipeOptions) !== JSON.stringify(options)),
  );
  if (clash) {
    throw new KitError(`${o.outDir}/${subfolder}/${files.decoder} already holds ${clash.recipe}`, {
      file: join(o.outDir, VARIANTS_FILE),
      field: "--subfolder",
      fix: `give this variant its own folder, e.g. --subfolder onnx-${recipe.id.replace("/", "-")}`,
    });
  }
  for (const f of REQUIRED_FILES) {
    if (!(await exists(join(o.modelDir, f))))
      throw new KitError(`the model folder has no ${f}, which transformers.js needs`, {
        file: join(o.modelDir, f),
        fix: "fetch the model from the hub again (ptq fetch model)",
      });
  }

  const { dir, manifest } = await ensureQuantizedModel(o.modelDir, recipe.id, options, o.calibration);
  const config = await readWhisperConfig(join(o.modelDir, "config.json"));
  const encoder = await GraphBuilder.fromFile(join(dir, "encoder.onnx"));
  const decoder = await GraphBuilder.fromFile(join(dir, "decoder.onnx"));
  refuseBrowserBlockers(recipe.id, encoder.builder, decoder.builder);
  const graphs = toTransformersJsGraphs(encoder.builder, decoder.builder, config);

  // Written beside the target and checked in the web build first: a refused recipe leaves nothing behind.
  const target = join(o.outDir, subfolder);
  const tmp = join(o.outDir, `.export-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(tmp, { recursive: true });
  const written: Record<string, number> = {};
  try {
    const domains = { ...encoder.domains, ...decoder.domains };
    for (const [graph, file] of [
      [graphs.encoder, files.encoder],
      [graphs.decoder, files.decoder],
    ] as const) {
      const out = await writeOnnxModel(graph, join(tmp, file), {
        opset: encoder.opset,
        domains,
        dataFileName: `${file}_data`,
        metadata: { recipe: recipe.id },
      });
      written[file] = out.graphBytes;
      if (out.dataFile) written[`${file}_data`] = out.dataBytes;
      if (o.checkInBrowserRuntime ?? true) await loadInWebRuntime(out.file, out.dataFile, recipe.id);
    }
    await mkdir(target, { recursive: true });
    for (const file of Object.keys(written)) await rename(join(tmp, file), join(target, file));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  const variant: ExportedVariant = {
    recipe: recipe.id,
    recipeOptions: options,
    dtype,
    subfolder,
    files: Object.fromEntries(Object.entries(written).map(([f, b]) => [`${subfolder}/${f}`, b])),
    bytes: Object.values(written).reduce((a, b) => a + b, 0),
    execution: recipe.execution(options),
    dequantizedAtLoad: manifest.dequantizedAtLoad ?? false,
    exportedAt: new Date().toISOString(),
    ...(o.measured?.length ? { measured: o.measured } : {}),
  };
  const kept = variants.filter((v) => !(v.subfolder === subfolder && v.dtype === dtype));
  await writeModelFiles(o.modelDir, o.outDir, [...kept, variant], manifest);
  return variant;
}

/** config.json (with transformers.js_config), the tokenizer and processor files, variants.json, README.md. */
async function writeModelFiles(modelDir: string, outDir: string, variants: ExportedVariant[], manifest: ModelManifest): Promise<void> {
  for (const f of MODEL_FOLDER_FILES) {
    const from = join(modelDir, f);
    if (await exists(from)) await writeFileAtomic(join(outDir, f), await readFile(from)); // not copyFile: sources may be read-only
  }
  const hf = await readJson<Record<string, unknown>>(join(modelDir, "config.json"));
  const externalData: Record<string, number> = {};
  for (const v of variants)
    for (const f of Object.keys(v.files)) if (f.endsWith(".onnx") && v.files[`${f}_data`] !== undefined) externalData[f.split("/")[1]!] = 1;
  const first = variants.find((v) => v.subfolder === "onnx") ?? variants[0]!;
  await writeJsonAtomic(join(outDir, "config.json"), {
    ...hf,
    is_encoder_decoder: true, // Whisper always is; configs rebuilt from other formats may leave it out, and transformers.js then decodes as a decoder-only model
    "transformers.js_config": { dtype: first.dtype, use_external_data_format: externalData },
  });
  await writeJsonAtomic(join(outDir, VARIANTS_FILE), variants);
  await writeFileAtomic(join(outDir, "README.md"), variantsReadme(manifest.source.modelDir, variants));
}

export function variantsReadme(source: string, variants: readonly ExportedVariant[]): string {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const lines = [
    "# Whisper for transformers.js, exported by whisper-ptq-kit",
    "",
    `Source model: \`${source}\`. Each variant is one post-training quantization recipe of the kit; load it with`,
    "",
    "```js",
    'const asr = await pipeline("automatic-speech-recognition", "<this folder>", { dtype: "<dtype>", subfolder: "<subfolder>" });',
    "```",
    "",
    "| recipe | dtype | subfolder | execution | size (MB) | measured WER |",
    "|---|---|---|---|---:|---|",
  ];
  for (const v of variants) {
    const wer =
      v.measured
        ?.map(
          (m) =>
            `${(100 * m.wer).toFixed(2)} %${m.werLow !== undefined && m.werHigh !== undefined ? ` (95 % CI ${(100 * m.werLow).toFixed(2)}-${(100 * m.werHigh).toFixed(2)})` : ""} on ${m.split}, ${m.utterances} utt., ${m.runtime}`,
        )
        .join("; ") || "not measured";
    lines.push(
      `| ${v.recipe} | ${v.dtype} | ${v.subfolder} | ${v.execution}${v.dequantizedAtLoad ? " (dequantized at load)" : ""} | ${mb(v.bytes)} | ${wer} |`,
    );
  }
  lines.push(
    "",
    "Sizes are the graph and external-data files of each variant. WERs (95 % bootstrap intervals over utterances) come from the results store given to `ptq export --results`: `kit` ran the same graphs in the kit's decoder, `transformers.js` ran this export through transformers.js (`ptq eval --runtime transformers.js`).",
    "",
  );
  return lines.join("\n");
}
