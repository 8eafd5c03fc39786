/**
 * Greedy decoding as Hugging Face's WhisperForConditionalGeneration.generate() does it with its
 * defaults: prompt <|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|>; suppress_tokens
 * at every step; begin_suppress_tokens at the first generated position; argmax; stop at
 * <|endoftext|> or max_length (448) tokens in all, prompt included.
 */
import { join } from "node:path";
import { KitError } from "../util/errors.js";
import { exists, readJson } from "../util/fs.js";
import type { WhisperTokenizer } from "./tokenizer.js";

export interface GenerationSettings {
  decoderStartTokenId: number;
  eosTokenId: number;
  noTimestampsTokenId: number;
  suppressTokens: number[];
  beginSuppressTokens: number[];
  isMultilingual: boolean;
  langToId: Record<string, number>; // "<|en|>" -> 50259 (multilingual models only)
  taskToId: Record<string, number>; // "transcribe" -> 50360
  maxLength: number;
}

interface GenerationConfigJson {
  decoder_start_token_id?: number;
  eos_token_id?: number;
  no_timestamps_token_id?: number;
  suppress_tokens?: number[];
  begin_suppress_tokens?: number[];
  is_multilingual?: boolean;
  lang_to_id?: Record<string, number>;
  task_to_id?: Record<string, number>;
  max_length?: number;
}

/** generation_config.json, with the tokenizer filling what older exports leave out. */
export async function readGenerationSettings(modelDir: string, tokenizer: WhisperTokenizer, maxTargetPositions: number): Promise<GenerationSettings> {
  const file = join(modelDir, "generation_config.json");
  const json: GenerationConfigJson = (await exists(file)) ? await readJson<GenerationConfigJson>(file) : {};
  const langToId = json.lang_to_id ?? {};
  const isMultilingual = json.is_multilingual ?? Object.keys(langToId).length > 0;
  if (isMultilingual && Object.keys(langToId).length === 0) {
    throw new KitError("generation_config.json marks the model multilingual but has no lang_to_id", {
      file,
      field: "lang_to_id",
      fix: "fetch generation_config.json from the original checkpoint",
    });
  }
  return {
    decoderStartTokenId: json.decoder_start_token_id ?? tokenizer.id("<|startoftranscript|>"),
    eosTokenId: json.eos_token_id ?? tokenizer.id("<|endoftext|>"),
    noTimestampsTokenId: json.no_timestamps_token_id ?? tokenizer.id("<|notimestamps|>"),
    suppressTokens: json.suppress_tokens ?? [],
    beginSuppressTokens: json.begin_suppress_tokens ?? [],
    isMultilingual,
    langToId,
    taskToId: json.task_to_id ?? { transcribe: tokenizer.maybeId("<|transcribe|>") ?? -1, translate: tokenizer.maybeId("<|translate|>") ?? -1 },
    maxLength: Math.min(json.max_length ?? maxTargetPositions, maxTargetPositions),
  };
}

/** One decoder call: logits [T, vocab] for the T tokens fed after what `state` has cached. */
export interface DecoderStepper<State> {
  vocabSize: number;
  step(ids: number[], state: State | null): Promise<{ logits: Float32Array; state: State }>;
}

export interface GreedyOptions {
  /** "en" (default), any language code of a multilingual model, or "auto" to detect as generate() does. */
  language?: string;
  task?: "transcribe" | "translate";
  /** false: feed the whole sequence each step with an empty cache (slow; for verification). */
  useCache?: boolean;
  /** Stop after this many generated tokens (tests); default: until max_length. */
  maxNewTokens?: number;
  /** <|endoftext|> suppressed until this many tokens are generated, as generate(min_new_tokens) does (benchmarks of a fixed length). */
  minNewTokens?: number;
}

export interface GreedyResult {
  prompt: number[];
  tokens: number[]; // generated, without the prompt and the final <|endoftext|>
  language: string | null; // the language token used, e.g. "<|en|>"; null for English-only models
  finished: boolean; // ended on <|endoftext|> rather than on the length limit
}

/** argmax over the last row of `logits` [T, vocab], skipping the suppressed ids (-inf in generate()). */
function argmaxLastRow(logits: Float32Array, vocab: number, masked: ReadonlySet<number>): number {
  const row = logits.subarray(logits.length - vocab);
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < vocab; i++) {
    if (masked.has(i)) continue;
    const v = row[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

export async function greedyDecode<State>(stepper: DecoderStepper<State>, settings: GenerationSettings, options: GreedyOptions = {}): Promise<GreedyResult> {
  const useCache = options.useCache ?? true;
  const task = options.task ?? "transcribe";
  let language: string | null = null;
  let state: State | null = null;
  const sot = settings.decoderStartTokenId;
  const prompt = [sot];
  if (settings.isMultilingual) {
    const requested = options.language ?? "en";
    if (requested === "auto") {
      // generate() with no language: one step on <|startoftranscript|>, argmax over language tokens.
      const first = await stepper.step([sot], null);
      const langIds = new Set(Object.values(settings.langToId));
      const notLanguages = new Set(Array.from({ length: stepper.vocabSize }, (_, i) => i).filter((i) => !langIds.has(i)));
      const detected = argmaxLastRow(first.logits, stepper.vocabSize, notLanguages);
      language = Object.entries(settings.langToId).find(([, id]) => id === detected)![0];
      if (useCache) state = first.state;
    } else {
      language = `<|${requested}|>`;
      if (settings.langToId[language] === undefined) {
        throw new KitError(`the model has no language '${requested}'`, {
          field: "--language",
          fix: `use one of ${Object.keys(settings.langToId).slice(0, 8).join(" ")} ... or auto`,
        });
      }
    }
    prompt.push(settings.langToId[language]!);
    const taskId = settings.taskToId[task];
    if (taskId === undefined || taskId < 0) throw new KitError(`the model has no task '${task}'`, { field: "--task", fix: "use transcribe" });
    prompt.push(taskId);
  } else if (options.language !== undefined && options.language !== "en" && options.language !== "auto") {
    throw new KitError(`this is an English-only model; it cannot transcribe '${options.language}'`, {
      field: "--language",
      fix: "drop --language or use a multilingual model",
    });
  }
  prompt.push(settings.noTimestampsTokenId);

  const sequence = [...prompt];
  let pending = state ? prompt.slice(1) : [...prompt]; // with a cache from detection, <|startoftranscript|> is already in it
  const limit = Math.min(settings.maxLength, prompt.length + (options.maxNewTokens ?? Infinity));
  let finished = false;
  const suppressAlways = new Set(settings.suppressTokens);
  const suppressFirst = new Set([...settings.suppressTokens, ...settings.beginSuppressTokens]);
  const minLength = prompt.length + (options.minNewTokens ?? 0);
  const withEos = (s: ReadonlySet<number>) => new Set([...s, settings.eosTokenId]);
  const [suppressAlwaysEarly, suppressFirstEarly] = [withEos(suppressAlways), withEos(suppressFirst)];
  while (sequence.length < limit) {
    const out = await stepper.step(useCache ? pending : sequence, useCache ? state : null);
    const early = sequence.length < minLength;
    const first = sequence.length === prompt.length;
    const masked = early ? (first ? suppressFirstEarly : suppressAlwaysEarly) : first ? suppressFirst : suppressAlways;
    const next = argmaxLastRow(out.logits, stepper.vocabSize, masked);
    sequence.push(next);
    if (next === settings.eosTokenId) {
      finished = true;
      break;
    }
    pending = [next];
    state = out.state;
  }
  const tokens = sequence.slice(prompt.length);
  if (finished) tokens.pop();
  return { prompt, tokens, language, finished };
}
