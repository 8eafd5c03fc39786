/**
 * One evaluation run: a model (and recipe) on a set of utterances, as the study measured it:
 * corpus WER/CER after EnglishTextNormalizer, RTF after a warm-up, peak memory. Utterances are
 * recorded one by one in the results store, so an interrupted run resumes where it stopped, and
 * shards of one run (on other machines) fill the same run key, joined later by `mergeStores`.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadAudio } from "../audio/decode.js";
import type { SpeechRecognizer } from "../asr/transcriber.js";
import type { Utterance } from "../hub/librispeech.js";
import { KitError } from "../util/errors.js";
import { repoRoot } from "../util/fs.js";
import { collectGarbage } from "../util/memory.js";
import { EnglishTextNormalizer } from "./normalizers.js";
import { werInterval, type UtteranceCounts } from "./bootstrap.js";
import { perturbFeatures, type Perturbation } from "./perturb.js";
import { type ResultsStore, runKey, type ModelSize, type RunIntervals, type RunSpec, type RunSummary, type UtteranceResult } from "./results-store.js";
import type { ModelManifest } from "../model/build.js";
import { numericsRevision } from "../recipes/catalog.js";
import { evaluationPart, type Selection } from "./splits.js";
import { addCounts, align, characters, countsOf, emptyCounts, errorRate, words } from "./wer.js";

export const KIT_VERSION: string = JSON.parse(readFileSync(join(repoRoot(), "package.json"), "utf8")).version;

export interface EvalRequest {
  transcriber: SpeechRecognizer;
  modelName: string;
  recipe: { id: string; options: Record<string, unknown> };
  split: string;
  utterances: Utterance[]; // the whole run (before sharding)
  shard?: Selection["shard"]; // this process computes only its shard of `utterances`
  store: ResultsStore;
  workers?: number; // utterances in flight at once in this process (onnxruntime runs one at a time: no gain measured)
  /** Worker processes sharing `store` (ptq eval|grid --workers K); the last to finish writes the summary. */
  processes?: number;
  force?: boolean; // recompute even if finished
  conditions?: Record<string, unknown>;
  /** Audio transform applied before features (noise mixing); describe it in `conditions`. */
  transformAudio?: (audio: Float32Array, utterance: Utterance) => Float32Array | Promise<Float32Array>;
  /** Input features moved at float-rounding scale (describe it in `conditions`). */
  perturb?: Perturbation;
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

export interface RunOutcome {
  key: string;
  summary: RunSummary | null; // null while other shards' utterances are missing
  done: number;
  total: number;
}

/** Start a fresh peak-memory window (Linux: writing 5 to clear_refs resets VmHWM to the current RSS). */
export function resetPeakRss(): void {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
  } catch {
    // not Linux, or not permitted: the peak then covers the whole process
  }
}

export function peakRssMB(): number {
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
    // A recipe whose numerics were corrected carries a revision, so that its earlier results are not reused.
    recipe: numericsRevision(request.recipe.id) ? { ...request.recipe, numerics: numericsRevision(request.recipe.id) } : request.recipe,
    split: request.split,
    utteranceIds: request.utterances.map((u) => u.id),
    decoding: {
      strategy: "greedy",
      language: t.options.language ?? "en",
      maxLength: t.generation.maxLength,
      normalizer: "EnglishTextNormalizer",
      ...(t.options.maxNewTokens !== undefined ? { maxNewTokens: t.options.maxNewTokens } : {}),
    },
    conditions: request.conditions ?? {},
    kitVersion: KIT_VERSION,
  };
}

/** What the study calls model size: bytes on disk per graph file, and the bytes the parameters take. */
export function sizeOf(manifest: ModelManifest): ModelSize {
  const fp32ParameterBytes = manifest.baselineParameterBytes ?? manifest.parameterBytes;
  return {
    files: Object.fromEntries(manifest.files.map((f) => [f.file, f.bytes])),
    onDiskBytes: manifest.files.reduce((a, f) => a + f.bytes, 0),
    parameterBytes: manifest.parameterBytes,
    fp32ParameterBytes,
    compression: 1 - manifest.parameterBytes / fp32ParameterBytes,
    quantizeSeconds: manifest.quantizeSeconds ?? 0,
    dequantizedAtLoad: manifest.dequantizedAtLoad ?? false,
  };
}

/** The summary of a finished run from its utterance records (also what `merge` computes). */
export function summarize(
  key: string,
  spec: RunSpec,
  records: Map<string, UtteranceResult>,
  timing: Record<string, number | string>,
  size: ModelSize | null,
): RunSummary {
  let wordsTotal = emptyCounts();
  let charsTotal = emptyCounts();
  let audioSeconds = 0;
  let seconds = 0;
  for (const id of spec.utteranceIds) {
    const r = records.get(id)!;
    wordsTotal = addCounts(wordsTotal, r.words);
    charsTotal = addCounts(charsTotal, r.chars);
    audioSeconds += r.audioSeconds;
    seconds += r.seconds;
  }
  const { utteranceIds, ...rest } = spec;
  const rs = utteranceIds.map((id) => records.get(id)!);
  const edits = (c: { substitutions: number; deletions: number; insertions: number }) => c.substitutions + c.deletions + c.insertions;
  const wordCounts = rs.map((r) => ({ errors: edits(r.words), words: r.words.referenceLength }));
  const bootstrap = { resamples: 2000, seed: 1 };
  const interval = (u: UtteranceCounts[], blocks?: string[]) => {
    const { low, high } = werInterval(u, { ...bootstrap, ...(blocks ? { blocks } : {}) });
    return { low, high };
  };
  const intervals: RunIntervals = {
    wer: interval(wordCounts),
    cer: interval(rs.map((r) => ({ errors: edits(r.chars), words: r.chars.referenceLength }))),
    werBySpeaker: interval(
      wordCounts,
      utteranceIds.map((id) => id.split("-")[0]!),
    ), // LibriSpeech ids: speaker-chapter-utterance
    ...bootstrap,
  };
  return {
    key,
    spec: { ...rest, utterances: utteranceIds.length, utteranceIdsSha256: createHash("sha256").update(utteranceIds.join("\n")).digest("hex") },
    wer: errorRate(wordsTotal),
    cer: errorRate(charsTotal),
    intervals,
    words: wordsTotal,
    chars: charsTotal,
    audioSeconds,
    size,
    // Per-utterance seconds survive resume and merge; wall-clock figures describe the last process.
    timing: { utteranceSeconds: seconds, rtf: seconds / audioSeconds, rtfx: audioSeconds / seconds, ...timing },
    finishedAt: new Date().toISOString(),
  };
}

export async function runEvaluation(request: EvalRequest): Promise<RunOutcome> {
  const spec = specFor(request);
  const key = runKey(spec);
  const { store } = request;
  const total = spec.utteranceIds.length;
  if (!request.force) {
    const finished = await store.summary(key);
    if (finished) return { key, summary: finished, done: total, total };
  }
  await store.writeSpec(key, spec, sizeOf(request.transcriber.manifest));
  const normalizer = await EnglishTextNormalizer.load(request.transcriber.modelDir);
  const done = request.force ? new Map<string, UtteranceResult>() : await store.finishedUtterances(key);
  const resumed = done.size;
  const mine = request.shard ? evaluationPart(request.utterances, { full: true, shard: request.shard }) : request.utterances;
  const todo = mine.filter((u) => !done.has(u.id));
  const transcribe = async (u: Utterance) => {
    let audio: Float32Array;
    try {
      audio = await loadAudio(u.path);
    } catch (err) {
      // Nothing of this utterance is recorded; what the store holds stays, and the run resumes from it.
      if (!(err instanceof KitError)) throw err;
      const [first, ...rest] = err.message.split("\n");
      throw new KitError(
        `${first}\n  ${rest.map((l) => l.trim()).join("\n  ")}\n  run: ${done.size} utterances of this run are in the store (${store.dir}); replace the file and run the same command again: it resumes there`,
        {},
        err,
      );
    }
    if (request.transformAudio) audio = await request.transformAudio(audio, u);
    const perturb = request.perturb;
    return { audio, result: await request.transcriber.transcribe(audio, {}, perturb ? (mel) => perturbFeatures(mel, perturb, u.id) : undefined) };
  };

  resetPeakRss(); // the peak of this run: the loaded model plus what evaluating it takes
  // Warm-up on one utterance (not timed, not recorded), as the study measured RTF.
  if (todo.length > 0) await transcribe(todo[0]!);
  let running = emptyCounts();
  for (const r of done.values()) running = addCounts(running, r.words);
  const started = performance.now();
  let next = 0;
  let finishedNow = 0;
  let timedAudio = 0;
  const worker = async () => {
    while (next < todo.length) {
      const u = todo[next++]!;
      collectGarbage(); // the previous utterance's output buffers, before this one allocates its own
      const t0 = performance.now();
      const { audio, result } = await transcribe(u);
      const seconds = (performance.now() - t0) / 1000;
      const hyp = normalizer.normalize(result.text);
      const ref = normalizer.normalize(u.transcript);
      const wordAlignment = align(words(ref), words(hyp));
      const record: UtteranceResult = {
        id: u.id,
        hypothesis: result.text,
        hypothesisNormalized: hyp,
        referenceNormalized: ref,
        words: countsOf(wordAlignment),
        wordErrors: wordAlignment.steps.filter((s) => s.op !== "equal").map((s) => [s.op, s.ref, s.hyp]),
        chars: countsOf(align(characters(ref), characters(hyp))),
        audioSeconds: audio.length / 16000,
        tokens: result.tokens.length,
        seconds,
      };
      await store.appendUtterance(key, record);
      done.set(u.id, record);
      timedAudio += record.audioSeconds;
      running = addCounts(running, record.words);
      finishedNow++;
      const rate = finishedNow / ((performance.now() - started) / 1000);
      request.onProgress?.({
        done: done.size,
        total,
        resumed,
        utterancesPerSecond: rate,
        etaSeconds: (todo.length - finishedNow) / rate,
        runningWer: errorRate(running),
      });
    }
  };
  const workers = Math.max(1, request.workers ?? 1);
  await Promise.all(Array.from({ length: workers }, worker));
  const wallSeconds = (performance.now() - started) / 1000;
  if (!spec.utteranceIds.every((id) => done.has(id)) && (request.processes ?? 1) > 1) {
    // Other worker processes may have finished the rest meanwhile: the last one summarizes.
    for (const [id, r] of await store.finishedUtterances(key)) if (!done.has(id)) done.set(id, r);
    if (await store.summary(key)) return { key, summary: null, done: done.size, total };
  }
  if (!spec.utteranceIds.every((id) => done.has(id))) return { key, summary: null, done: done.size, total };
  const claim = (request.processes ?? 1) > 1 ? await store.claimSummary(key) : null;
  if (claim && (!claim.claimed || (await store.summary(key)))) {
    await claim.release();
    return { key, summary: null, done: done.size, total }; // another worker process summarizes
  }
  const summary = summarize(
    key,
    spec,
    done,
    {
      lastProcessUtterances: todo.length,
      lastProcessWallSeconds: wallSeconds,
      lastProcessRtfx: timedAudio > 0 ? timedAudio / wallSeconds : NaN,
      workers,
      processes: request.processes ?? 1,
      peakRssMB: peakRssMB(),
    },
    sizeOf(request.transcriber.manifest),
  );
  await store.appendSummary(summary);
  await claim?.release();
  return { key, summary, done: total, total };
}

/** Join the stores of a sharded run: union of utterance records; runs that became complete are summarized. */
export async function mergeStores(sources: ResultsStore[], target: ResultsStore): Promise<{ runs: number; completed: number }> {
  const keys = new Set<string>();
  for (const s of sources) for (const k of await s.runKeys()) keys.add(k);
  let completed = 0;
  for (const key of keys) {
    let spec: RunSpec | undefined;
    const records = await target.finishedUtterances(key);
    const before = new Set(records.keys());
    for (const s of sources) {
      spec ??= await s.readSpec(key);
      for (const [id, r] of await s.finishedUtterances(key)) if (!records.has(id)) records.set(id, r);
    }
    if (!spec) continue;
    const size = (await Promise.all(sources.map((s) => s.summaryOrSize(key)))).find((x) => x) ?? null;
    await target.writeSpec(key, spec, size);
    for (const [id, r] of records) if (!before.has(id)) await target.appendUtterance(key, r);
    if (spec.utteranceIds.every((id) => records.has(id)) && !(await target.summary(key))) {
      await target.appendSummary(summarize(key, spec, records, { mergedFrom: sources.length }, size));
      completed++;
    }
  }
  return { runs: keys.size, completed };
}
