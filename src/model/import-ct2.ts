/**
 * Import a CTranslate2 Whisper model (faster-whisper's format: model.bin, config.json,
 * tokenizer.json) into the Hugging Face layout that the rest of the kit reads.
 *
 * model.bin (binary version <= 6): u32 version, string spec name ("WhisperSpec"), u32 spec
 * revision, u32 variable count, then per variable: string name, u8 rank, u32 dims[rank], u8 dtype
 * (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), u32 byte count, bytes; then u32 alias count and
 * (alias, target) string pairs. Strings are u16 length (with the trailing NUL) + bytes.
 * CTranslate2 fuses attention projections: self-attention linear_0 = [q; k; v] rows, cross-
 * attention linear_1 = [k; v] rows, with zero biases where Whisper's k_proj has none.
 * int8 checkpoints store `weight` as int8 codes and `weight_scale` per output row: they are
 * dequantized (weight / scale) and the folder is marked int8-derived.
 */
import { copyFile, readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { KitError } from "../util/errors.js";
import { exists, readJson, withAtomicDir, writeJsonAtomic, writeFileAtomic } from "../util/fs.js";
import { float16ToFloat32, writeSafetensors, type TensorToWrite } from "./safetensors.js";

const CT2_DTYPES = ["float32", "int8", "int16", "int32", "float16", "bfloat16"] as const;
type Ct2Dtype = (typeof CT2_DTYPES)[number];
const DTYPE_BYTES: Record<Ct2Dtype, number> = { float32: 4, int8: 1, int16: 2, int32: 4, float16: 2, bfloat16: 2 };

export interface Ct2Variable {
  dtype: Ct2Dtype;
  dims: number[];
  bytes: Uint8Array;
}

export interface Ct2Model {
  version: number;
  spec: string;
  revision: number;
  variables: Map<string, Ct2Variable>;
  aliases: Map<string, string>;
}

/** Parse model.bin bytes (already joined from its parts); `source` names the file(s) in errors. */
export function parseCt2Model(bytes: Uint8Array, source: string): Ct2Model {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const fail = (message: string, field: string, fix: string): never => {
    throw new KitError(message, { file: source, field, fix });
  };
  const need = (n: number, what: string) => {
    if (pos + n > bytes.length) {
      fail(
        `${source} ends at byte ${bytes.length} inside ${what} (needs ${pos + n})`,
        what,
        "the file is truncated or a part is missing: join all model.bin.partN files in order",
      );
    }
  };
  const u8 = () => {
    need(1, "header");
    return view.getUint8(pos++);
  };
  const u32 = (what = "header") => {
    need(4, what);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const str = (what: string) => {
    need(2, what);
    const n = view.getUint16(pos, true);
    pos += 2;
    need(n, what);
    const s = new TextDecoder().decode(bytes.subarray(pos, pos + Math.max(0, n - 1)));
    pos += n;
    return s;
  };
  if (bytes.length < 8) fail(`${source} is too short to be a CTranslate2 model (${bytes.length} bytes)`, "header", "check the path");
  const version = u32();
  if (version < 1 || version > 6) {
    fail(
      `${source} is not a CTranslate2 model.bin (binary version ${version}; expected 1 to 6)`,
      "binary_version",
      "point the importer at a faster-whisper/CTranslate2 model.bin; a whisper.cpp ggml file is a different format",
    );
  }
  const spec = version >= 2 ? str("spec name") : "";
  const revision = version >= 2 ? u32() : 1;
  if (spec !== "WhisperSpec")
    fail(`${source} holds a '${spec || "(unnamed)"}' model, not Whisper`, "spec", "import a Whisper model converted by ct2-transformers-converter");
  const count = u32();
  const variables = new Map<string, Ct2Variable>();
  for (let i = 0; i < count; i++) {
    const name = str(`variable ${i} name`);
    const rank = u8();
    const dims: number[] = [];
    for (let d = 0; d < rank; d++) dims.push(u32(`${name} dims`));
    const code = u8();
    const dtype = CT2_DTYPES[code];
    if (!dtype) fail(`${name} has unknown dtype code ${code}`, name, "the file is damaged or from a newer CTranslate2");
    const length = u32(`${name} size`);
    const expected = dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype!];
    if (length !== expected) fail(`${name} holds ${length} bytes but its shape [${dims}] needs ${expected}`, name, "the file is damaged");
    need(length, `variable ${name} (${i + 1} of ${count})`);
    variables.set(name, { dtype: dtype!, dims, bytes: bytes.subarray(pos, pos + length) });
    pos += length;
  }
  const aliases = new Map<string, string>();
  if (version >= 5 && pos < bytes.length) {
    const n = u32("aliases");
    for (let i = 0; i < n; i++) aliases.set(str("alias"), str("alias target"));
  }
  return { version, spec, revision, variables, aliases };
}

function toFloat32(v: Ct2Variable): Float32Array {
  const view = new DataView(v.bytes.buffer, v.bytes.byteOffset, v.bytes.byteLength);
  const n = v.bytes.byteLength / DTYPE_BYTES[v.dtype];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (v.dtype === "float16") out[i] = float16ToFloat32(view.getUint16(i * 2, true));
    else if (v.dtype === "float32") out[i] = view.getFloat32(i * 4, true);
    else if (v.dtype === "bfloat16") out[i] = new Float32Array(new Uint32Array([view.getUint16(i * 2, true) << 16]).buffer)[0]!;
    else if (v.dtype === "int8") out[i] = view.getInt8(i);
    else if (v.dtype === "int16") out[i] = view.getInt16(i * 2, true);
    else out[i] = view.getInt32(i * 4, true);
  }
  return out;
}

function scalarInt(model: Ct2Model, name: string, source: string): number {
  const v = model.variables.get(name);
  if (v?.dims.length !== 0) throw new KitError(`the model has no scalar ${name}`, { file: source, field: name, fix: "import a complete Whisper model" });
  return toFloat32(v)[0]!;
}

interface ImportedWeights {
  tensors: Map<string, TensorToWrite>;
  int8Derived: boolean;
  sourcePrecision: string;
}

/** Map CTranslate2 names to Hugging Face ones, splitting the fused projections. */
export function ct2ToHuggingFace(model: Ct2Model, source: string): ImportedWeights {
  const tensors = new Map<string, TensorToWrite>();
  let int8Derived = false;
  const precisions = new Set<string>();
  const get = (name: string): { data: Float32Array; dims: number[]; dtype: Ct2Dtype } => {
    const target = model.aliases.get(name) ?? name;
    const v = model.variables.get(target);
    if (!v) throw new KitError(`the model has no variable ${name}`, { file: source, field: name, fix: "the model is incomplete; join all of its parts" });
    const data = toFloat32(v);
    const scale = model.variables.get(target.replace(/weight$/, "weight_scale"));
    if (v.dtype === "int8" && target.endsWith("weight")) {
      if (!scale) throw new KitError(`${name} is int8 but has no weight_scale`, { file: source, field: name, fix: "the model is damaged" });
      const s = toFloat32(scale);
      const rowLength = data.length / s.length;
      for (let i = 0; i < data.length; i++) data[i] = data[i]! / s[Math.floor(i / rowLength)]!;
      int8Derived = true;
    }
    precisions.add(v.dtype);
    return { data, dims: v.dims, dtype: v.dtype };
  };
  // Half and bfloat16 stay in their precision (lossless); fp32 and dequantized int8 are written as fp32.
  const put = (name: string, t: { data: Float32Array; dims: number[]; dtype: Ct2Dtype }) =>
    tensors.set(name, { dtype: t.dtype === "float16" ? "F16" : t.dtype === "bfloat16" ? "BF16" : "F32", shape: t.dims, data: t.data });
  const rows = (t: { data: Float32Array; dims: number[]; dtype: Ct2Dtype }, start: number, count: number) => {
    const width = t.dims.length === 2 ? t.dims[1]! : 1;
    return { data: t.data.slice(start * width, (start + count) * width), dims: t.dims.length === 2 ? [count, width] : [count], dtype: t.dtype };
  };
  const linear = (from: string, to: string) => {
    put(`${to}.weight`, get(`${from}/weight`));
    put(`${to}.bias`, get(`${from}/bias`));
  };
  const norm = (from: string, to: string) => {
    put(`${to}.weight`, get(`${from}/gamma`));
    put(`${to}.bias`, get(`${from}/beta`));
  };
  /** Split a fused [n*d, d] projection into Hugging Face's separate ones; a zero k bias is dropped. */
  const fused = (from: string, to: string[]) => {
    const w = get(`${from}/weight`);
    const b = get(`${from}/bias`);
    const d = w.dims[1]!;
    to.forEach((name, i) => {
      put(`${name}.weight`, rows(w, i * d, d));
      const bias = rows(b, i * d, d);
      if (name.endsWith("k_proj")) {
        if (bias.data.some((x) => x !== 0))
          throw new KitError(`${from}/bias has a non-zero key bias, which Whisper lacks`, {
            file: source,
            field: `${from}/bias`,
            fix: "this is not an OpenAI Whisper checkpoint",
          });
      } else put(`${name}.bias`, bias);
    });
  };
  const block = (ct2: string, hf: string, cross: boolean) => {
    norm(`${ct2}/self_attention/layer_norm`, `${hf}.self_attn_layer_norm`);
    fused(`${ct2}/self_attention/linear_0`, [`${hf}.self_attn.q_proj`, `${hf}.self_attn.k_proj`, `${hf}.self_attn.v_proj`]);
    linear(`${ct2}/self_attention/linear_1`, `${hf}.self_attn.out_proj`);
    if (cross) {
      norm(`${ct2}/attention/layer_norm`, `${hf}.encoder_attn_layer_norm`);
      linear(`${ct2}/attention/linear_0`, `${hf}.encoder_attn.q_proj`);
      fused(`${ct2}/attention/linear_1`, [`${hf}.encoder_attn.k_proj`, `${hf}.encoder_attn.v_proj`]);
      linear(`${ct2}/attention/linear_2`, `${hf}.encoder_attn.out_proj`);
    }
    norm(`${ct2}/ffn/layer_norm`, `${hf}.final_layer_norm`);
    linear(`${ct2}/ffn/linear_0`, `${hf}.fc1`);
    linear(`${ct2}/ffn/linear_1`, `${hf}.fc2`);
  };
  const layers = (prefix: string) => new Set([...model.variables.keys()].map((n) => new RegExp(`^${prefix}/layer_(\\d+)/`).exec(n)?.[1]).filter(Boolean)).size;
  linear("encoder/conv1", "model.encoder.conv1");
  linear("encoder/conv2", "model.encoder.conv2");
  put("model.encoder.embed_positions.weight", get("encoder/position_encodings/encodings"));
  for (let l = 0; l < layers("encoder"); l++) block(`encoder/layer_${l}`, `model.encoder.layers.${l}`, false);
  norm("encoder/layer_norm", "model.encoder.layer_norm");
  put("model.decoder.embed_tokens.weight", get("decoder/embeddings/weight"));
  put("model.decoder.embed_positions.weight", get("decoder/position_encodings/encodings"));
  for (let l = 0; l < layers("decoder"); l++) block(`decoder/layer_${l}`, `model.decoder.layers.${l}`, true);
  norm("decoder/layer_norm", "model.decoder.layer_norm");
  return { tensors, int8Derived, sourcePrecision: [...precisions].filter((p) => p.startsWith("float") || p === "int8" || p === "bfloat16").join("+") };
}

/** model.bin, or model.bin.part1, model.bin.part2 ... found in the given folders, joined in order. */
export async function findCt2Parts(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    if (!(await exists(p))) throw new KitError(`${p} does not exist`, { file: p, fix: "give the folder(s) holding model.bin or its parts" });
    const entries = (await stat(p)).isDirectory() ? (await readdir(p)).map((f) => join(p, f)) : [p];
    files.push(...entries.filter((f) => /(^|\/)model\.bin(\.part\d+)?$/.test(f)));
  }
  const whole = files.filter((f) => f.endsWith("model.bin"));
  if (whole.length === 1) return whole;
  const parts = files.filter((f) => /\.part\d+$/.test(f)).sort((a, b) => Number(/part(\d+)$/.exec(a)![1]) - Number(/part(\d+)$/.exec(b)![1]));
  if (parts.length === 0)
    throw new KitError(`no model.bin or model.bin.partN in ${paths.join(", ")}`, { file: paths[0]!, fix: "give the folder(s) of a faster-whisper model" });
  parts.forEach((f, i) => {
    if (Number(/part(\d+)$/.exec(f)![1]) !== i + 1) {
      throw new KitError(`model.bin.part${i + 1} is missing (found ${parts.map((x) => basename(x)).join(", ")})`, {
        file: f,
        field: `part${i + 1}`,
        fix: "give every part's folder",
      });
    }
  });
  return parts;
}

export interface ImportOptions {
  /** Folder with normalizer.json and the like to use where the model lacks them (e.g. BUNDLED_ASSETS). */
  fallbackAssets?: string;
}

export interface ImportReport {
  outDir: string;
  sourceFiles: string[];
  sourcePrecision: string;
  int8Derived: boolean;
  parameters: number;
  filesFromFallback: string[];
  config: Record<string, unknown>;
}

/** Whisper's special tokens by name, as the tokenizer numbers them. */
function specialIds(tokenizer: { added_tokens?: Array<{ id: number; content: string }> }): Map<string, number> {
  return new Map((tokenizer.added_tokens ?? []).map((t) => [t.content, t.id]));
}

export async function importCt2Model(paths: string[], outDir: string, options: ImportOptions = {}): Promise<ImportReport> {
  const parts = await findCt2Parts(paths);
  const source = parts.join(" + ");
  const bytes = parts.length === 1 ? await readFile(parts[0]!) : Buffer.concat(await Promise.all(parts.map((p) => readFile(p))));
  const model = parseCt2Model(bytes, source);
  const weights = ct2ToHuggingFace(model, source);
  const folders = [...new Set(parts.map((p) => join(p, "..")))];
  const findFile = async (name: string) => {
    for (const f of folders) if (await exists(join(f, name))) return join(f, name);
    return null;
  };
  const tokenizerFile = await findFile("tokenizer.json");
  const ct2ConfigFile = await findFile("config.json");
  if (!tokenizerFile)
    throw new KitError(`no tokenizer.json beside ${parts[0]}`, {
      file: join(folders[0]!, "tokenizer.json"),
      fix: "faster-whisper models ship tokenizer.json; give the folder that holds it",
    });
  const tokenizer = await readJson<{ added_tokens?: Array<{ id: number; content: string }> }>(tokenizerFile);
  const ct2Config = ct2ConfigFile
    ? await readJson<{ suppress_ids?: number[]; suppress_ids_begin?: number[]; lang_ids?: number[]; alignment_heads?: number[][] }>(ct2ConfigFile)
    : {};
  const ids = specialIds(tokenizer);
  const id = (token: string) => {
    const v = ids.get(token);
    if (v === undefined)
      throw new KitError(`tokenizer.json lacks ${token}`, { file: tokenizerFile, field: token, fix: "use the tokenizer that came with the model" });
    return v;
  };
  const shape = (name: string) => weights.tensors.get(name)!.shape;
  const dModel = shape("model.encoder.conv1.weight")[0]!;
  const vocab = shape("model.decoder.embed_tokens.weight")[0]!;
  const encoderLayers = [...weights.tensors.keys()].filter((n) => /^model\.encoder\.layers\.\d+\.fc1\.weight$/.test(n)).length;
  const decoderLayers = [...weights.tensors.keys()].filter((n) => /^model\.decoder\.layers\.\d+\.fc1\.weight$/.test(n)).length;
  const isMultilingual = vocab >= 51865;
  const langToId: Record<string, number> = {};
  for (const lid of ct2Config.lang_ids ?? []) {
    const token = [...ids].find(([, v]) => v === lid)?.[0];
    if (token) langToId[token] = lid;
  }
  const config = {
    _name_or_path: `imported from CTranslate2 (${basename(folders[0]!)})`,
    architectures: ["WhisperForConditionalGeneration"],
    model_type: "whisper",
    activation_function: "gelu",
    d_model: dModel,
    encoder_layers: encoderLayers,
    decoder_layers: decoderLayers,
    num_hidden_layers: encoderLayers,
    encoder_attention_heads: scalarInt(model, "encoder/num_heads", source),
    decoder_attention_heads: scalarInt(model, "decoder/num_heads", source),
    encoder_ffn_dim: shape("model.encoder.layers.0.fc1.weight")[0]!,
    decoder_ffn_dim: shape("model.decoder.layers.0.fc1.weight")[0]!,
    num_mel_bins: shape("model.encoder.conv1.weight")[1]!,
    max_source_positions: shape("model.encoder.embed_positions.weight")[0]!,
    max_target_positions: shape("model.decoder.embed_positions.weight")[0]!,
    vocab_size: vocab,
    scale_embedding: false,
    decoder_start_token_id: id("<|startoftranscript|>"),
    eos_token_id: id("<|endoftext|>"),
    pad_token_id: id("<|endoftext|>"),
    torch_dtype: weights.int8Derived ? "float32" : weights.sourcePrecision === "float16" ? "float16" : "float32",
    imported: {
      format: "ctranslate2",
      source_files: parts.map((p) => basename(p)),
      ct2_binary_version: model.version,
      ct2_spec_revision: model.revision,
      source_precision: weights.sourcePrecision,
      int8_derived: weights.int8Derived,
    },
  };
  const generation = {
    decoder_start_token_id: id("<|startoftranscript|>"),
    eos_token_id: id("<|endoftext|>"),
    pad_token_id: id("<|endoftext|>"),
    bos_token_id: id("<|endoftext|>"),
    no_timestamps_token_id: id("<|notimestamps|>"),
    suppress_tokens: ct2Config.suppress_ids ?? [],
    begin_suppress_tokens: ct2Config.suppress_ids_begin ?? [],
    is_multilingual: isMultilingual,
    ...(isMultilingual ? { lang_to_id: langToId, task_to_id: { transcribe: id("<|transcribe|>"), translate: id("<|translate|>") } } : {}),
    alignment_heads: ct2Config.alignment_heads ?? [],
    max_length: config.max_target_positions,
    return_timestamps: false,
  };
  const preprocessor = {
    chunk_length: 30,
    feature_extractor_type: "WhisperFeatureExtractor",
    feature_size: config.num_mel_bins,
    hop_length: 160,
    n_fft: 400,
    n_samples: 480000,
    nb_max_frames: 3000,
    padding_side: "right",
    padding_value: 0,
    processor_class: "WhisperProcessor",
    return_attention_mask: false,
    sampling_rate: 16000,
  };
  const filesFromFallback: string[] = [];
  const parameters = [...weights.tensors.values()].reduce((a, t) => a + t.data.length, 0);
  await withAtomicDir(outDir, async (tmp) => {
    await writeSafetensors(join(tmp, "model.safetensors"), weights.tensors, { format: "pt", source: "ctranslate2 import" });
    await writeJsonAtomic(join(tmp, "config.json"), config);
    await writeJsonAtomic(join(tmp, "generation_config.json"), generation);
    await writeJsonAtomic(join(tmp, "preprocessor_config.json"), preprocessor);
    await copyFile(tokenizerFile, join(tmp, "tokenizer.json"));
    for (const name of ["normalizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
      const own = await findFile(name);
      const fallback = options.fallbackAssets ? join(options.fallbackAssets, name) : null;
      if (own) await copyFile(own, join(tmp, name));
      else if (fallback && (await exists(fallback))) {
        await copyFile(fallback, join(tmp, name));
        filesFromFallback.push(name);
      }
    }
    const lines = [
      `# Imported Whisper model`,
      ``,
      `Converted by whisper-ptq-kit from a CTranslate2 (faster-whisper) model: ${parts.map((p) => basename(p)).join(" + ")}.`,
      ``,
      `- source precision: ${weights.sourcePrecision}; ${weights.int8Derived ? "**int8-derived**: the source held int8 weights, dequantized here. This is NOT an fp32 baseline." : "converted losslessly (stored in the source precision; the kit computes in fp32)."}`,
      `- parameters: ${parameters.toLocaleString("en-US")}`,
      `- files not in the source, taken from ${options.fallbackAssets ?? "-"}: ${filesFromFallback.join(", ") || "none"}`,
      `- config.json and generation_config.json were derived from the weights' shapes, the CTranslate2 config.json and tokenizer.json.`,
      ``,
    ];
    await writeFileAtomic(join(tmp, "README.md"), lines.join("\n"));
  });
  return { outDir, sourceFiles: parts, sourcePrecision: weights.sourcePrecision, int8Derived: weights.int8Derived, parameters, filesFromFallback, config };
}
