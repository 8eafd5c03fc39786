/**
 * One evaluation run: a model (and recipe) on a set of utterances, as the study measured it:
 * corpus WER/CER after EnglishTextNormalizer, RTF with a warm-up, peak memory. Utterances are
 * recorded one by one in the results store, so an interrupted run resumes where it stopped.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAudio } from "../audio/decode.js";
import type { Transcriber } from "../asr/transcriber.js";
import type { Utterance } from "../hub/librispeech.js";
import { repoRoot } from "../util/fs.js";
import { EnglishTextNormalizer } from "./normalizers.js";
import { ResultsStore, runKey, type RunSpec, type RunSummary, type UtteranceResult } from "./results-store.js";
import { addCounts, align, characters, countsOf, emptyCounts, errorRate, words } from "./wer.js";

export const KIT_VERSION: string = JSON.parse(readFileSync(join(repoRoot(), "package.json"), "utf8")).version;

export interface EvalRequest {
  transcriber: Transcriber;
  modelName: string;
  recipe: { id: string; options: Record<string, unknown> };
  split: string;
  utterances: Utterance[];
  store: ResultsStore;
  workers?: number; // utterances in flight at once
  force?: boolean; // recompute even if finished
  conditions?: Record<string, unknown>;
  /** Audio transform applied before features (noise mixing); part of `conditions`. */
  transformAudio?: (audio: Float32Array, utterance: Utterance) => Float32Array;
  onProgress?: (p: Progress) => void;
}

export interface Progress {
  done: number;
  total: number;
  resumed: number;
  utterancesPerSecond: number;
  etaSeconds: number;
  runningWer: number;
}

function peakRssMB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: fall back to the runtime's figure
  }
  return process.resourceUsage().maxRSS / 1024;
}

export function specFor(request: EvalRequest): RunSpec {
  const t = request.transcriber;
  return {
    model: { name: request.modelName, weightsSha256: t.weightsSha256 },
    recipe: request.recipe,
    split: request.split,
    utteranceIds: request.utterances.map((u) => u.id),
    decoding: { strategy: "greedy", language: t.options.language ?? "en", maxLength: t.generation.maxLength, normalizer: "EnglishTextNormalizer" },
    conditions: request.conditions ?? {},
    kitVersion: KIT_VERSION,
  };
}

export async function runEvaluation(request: EvalRequest): Promise<RunSummary> {
  const spec = specFor(request);
  const key = runKey(spec);
  const { store } = request;
  if (!request.force) {
    const finished = await store.summary(key);
    if (finished) return finished;
  }
  const normalizer = await EnglishTextNormalizer.load(request.transcriber.modelDir);
  const done = request.force ? new Map<string, UtteranceResult>() : await store.finishedUtterances(key);
  const resumed = done.size;
  const todo = request.utterances.filter((u) => !done.has(u.id));
  const transcribe = async (u: Utterance) => {
    let audio = await loadAudio(u.path);
    if (request.transformAudio) audio = request.transformAudio(audio, u);
    return { audio, result: await request.transcriber.transcribe(audio) };
  };

  // Warm-up on one utterance (not timed, not recorded), as the study measured RTF.
  if (todo.length > 0) await transcribe(todo[0]!);
  let processSeconds = 0;
  let running = emptyCounts();
  for (const r of done.values()) running = addCounts(running, r.words);
  const started = performance.now();
  let next = 0;
  let finishedNow = 0;
  const worker = async () => {
    while (next < todo.length) {
      const u = todo[next++]!;
      const t0 = performance.now();
      const { audio, result } = await transcribe(u);
      processSeconds += (performance.now() - t0) / 1000;
      const hyp = normalizer.normalize(result.text);
      const ref = normalizer.normalize(u.transcript);
      const record: UtteranceResult = {
        id: u.id,
        hypothesis: result.text,
        hypothesisNormalized: hyp,
        referenceNormalized: ref,
        words: countsOf(align(words(ref), words(hyp))),
        chars: countsOf(align(characters(ref), characters(hyp))),
        audioSeconds: audio.length / 16000,
        tokens: result.tokens.length,
      };
      await store.appendUtterance(key, record);
      done.set(u.id, record);
      running = addCounts(running, record.words);
      finishedNow++;
      const elapsed = (performance.now() - started) / 1000;
      const rate = finishedNow / elapsed;
      request.onProgress?.({ done: done.size, total: request.utterances.length, resumed, utterancesPerSecond: rate, etaSeconds: (todo.length - finishedNow) / rate, runningWer: errorRate(running) });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, request.workers ?? 1) }, worker));
  const wallSeconds = (performance.now() - started) / 1000;

  let wordsTotal = emptyCounts();
  let charsTotal = emptyCounts();
  let audioSeconds = 0;
  let timedAudio = 0;
  const timedIds = new Set(todo.map((u) => u.id));
  for (const u of request.utterances) {
    const r = done.get(u.id)!;
    wordsTotal = addCounts(wordsTotal, r.words);
    charsTotal = addCounts(charsTotal, r.chars);
    audioSeconds += r.audioSeconds;
    if (timedIds.has(u.id)) timedAudio += r.audioSeconds;
  }
  const { utteranceIds, ...rest } = spec;
  const summary: RunSummary = {
    key,
    spec: { ...rest, utterances: utteranceIds.length, utteranceIdsSha256: createHash("sha256").update(utteranceIds.join("\n")).digest("hex") },
    wer: errorRate(wordsTotal),
    cer: errorRate(charsTotal),
    words: wordsTotal,
    chars: charsTotal,
    audioSeconds,
    timing: {
      // Over the utterances computed in this process (a resumed run times only its remainder).
      timedUtterances: todo.length,
      timedAudioSeconds: timedAudio,
      wallSeconds,
      rtf: timedAudio > 0 ? wallSeconds / timedAudio : NaN,
      rtfx: timedAudio > 0 ? timedAudio / wallSeconds : NaN,
      sumOfUtteranceSeconds: processSeconds,
      workers: request.workers ?? 1,
      peakRssMB: peakRssMB(),
    },
    finishedAt: new Date().toISOString(),
  };
  await store.appendSummary(summary);
  return summary;
}
