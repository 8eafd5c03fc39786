/**
 * The results store: a folder of JSON-lines files, appended one fsynced line at a time.
 *   runs/<key>.jsonl   one line per finished utterance of a run (resume reads it back)
 *   results.jsonl      one summary line per finished run
 * A run's key hashes everything that defines it (model weights, recipe and options, split,
 * utterance set, decoding settings, kit version), so a finished run is found, not recomputed.
 * A crash can leave a truncated last line: it is dropped on reading (and reported), never an
 * earlier line, and the file is cut back to its last complete line before the next append.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readdir, readFile, rm, truncate } from "node:fs/promises";
import { join } from "node:path";
import { KitError } from "../util/errors.js";
import { exists, readJson, writeJsonAtomic } from "../util/fs.js";
import type { EditOp, ErrorCounts } from "./wer.js";

export interface RunSpec {
  model: { name: string; weightsSha256: string };
  recipe: { id: string; options: Record<string, unknown>; numerics?: number };
  split: string;
  utteranceIds: string[];
  decoding: Record<string, unknown>;
  conditions: Record<string, unknown>; // e.g. { noise: "white:10" }
  kitVersion: string;
}

export interface UtteranceResult {
  id: string;
  hypothesis: string; // as decoded
  hypothesisNormalized: string;
  referenceNormalized: string;
  words: ErrorCounts;
  chars: ErrorCounts;
  /** The word alignment's errors, in order: [op, reference word, hypothesis word] (null where absent). */
  wordErrors: Array<[EditOp, string | null, string | null]>;
  audioSeconds: number;
  tokens: number;
  seconds: number; // processing time of this utterance (audio loading to text)
}

/** Model size as the study reports it, from the graphs' manifest. */
export interface ModelSize {
  files: Record<string, number>; // bytes on disk per file (graphs and their external data)
  onDiskBytes: number;
  parameterBytes: number; // what the parameters take (the study's 'model size', like a state_dict)
  fp32ParameterBytes: number; // the same parameters at fp32
  compression: number; // 1 - parameterBytes / fp32ParameterBytes
  quantizeSeconds: number; // time the recipe took to quantize the model (0 for fp32)
  dequantizedAtLoad: boolean; // some tensors have no onnxruntime kernel and are expanded to fp32 at load
}

export interface RunIntervals {
  wer: { low: number; high: number };
  cer: { low: number; high: number };
  werBySpeaker: { low: number; high: number };
  resamples: number;
  seed: number;
}

export interface RunSummary {
  key: string;
  spec: Omit<RunSpec, "utteranceIds"> & { utterances: number; utteranceIdsSha256: string };
  /** 95 % bootstrap intervals (percent) over utterances, and over speakers (whole speakers resampled). */
  intervals?: RunIntervals;
  wer: number;
  cer: number;
  words: ErrorCounts;
  chars: ErrorCounts;
  audioSeconds: number;
  size: ModelSize | null;
  /** Measurements of this machine and moment; everything else is deterministic. */
  timing: Record<string, number | string>;
  finishedAt: string;
}

/** Canonical JSON (sorted keys), so equal specs hash equally. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

export function runKey(spec: RunSpec): string {
  return createHash("sha256").update(canonical(spec)).digest("hex").slice(0, 20);
}

export interface JsonlRead<T> {
  records: T[];
  truncatedTail: boolean; // a partial last line was found (and is ignored)
  goodBytes: number; // length of the complete lines
}

/** Read a JSON-lines file; a damaged last line is a crash artefact, a damaged earlier line an error. */
export async function readJsonl<T>(file: string): Promise<JsonlRead<T>> {
  if (!(await exists(file))) return { records: [], truncatedTail: false, goodBytes: 0 };
  const text = await readFile(file, "utf8");
  const lines = text.split("\n");
  const records: T[] = [];
  let goodBytes = 0;
  let truncatedTail = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const isLast = i === lines.length - 1;
    if (line === "") {
      if (!isLast) goodBytes += 1;
      continue;
    }
    try {
      records.push(JSON.parse(line) as T);
      if (isLast) {
        truncatedTail = true; // valid JSON but no newline: the write did not finish; redo it
        records.pop();
      } else goodBytes += Buffer.byteLength(line) + 1;
    } catch {
      if (isLast) truncatedTail = true;
      else {
        throw new KitError(`line ${i + 1} of ${file} is not valid JSON`, {
          file,
          field: `line ${i + 1}`,
          fix: "the store was edited or damaged; remove that line (it will be recomputed) or the file",
        });
      }
    }
  }
  return { records, truncatedTail, goodBytes };
}

export class ResultsStore {
  readonly warnings: string[] = [];
  private readonly repaired = new Set<string>();

  /**
   * `sharedWithOtherProcesses`: worker processes of one `ptq eval|grid --workers K` append to the
   * same files (one small O_APPEND write per line). They must not cut what looks like a partial
   * last line, which may be another process's line being written: the parent repairs first.
   */
  constructor(
    readonly dir: string,
    private readonly sharedWithOtherProcesses = false,
  ) {}

  /** Cut the partial last lines an interrupted run left in every file of the store (before worker processes start). */
  async repairAll(): Promise<void> {
    const runs = join(this.dir, "runs");
    const names = await readdir(runs).catch(() => [] as string[]);
    const files = [this.resultsFile, ...names.filter((f) => f.endsWith(".jsonl")).map((f) => join(runs, f))];
    for (const file of files) await this.repair(file);
    // A summary marker left by a killed worker would stop every later one from summarizing.
    for (const f of names.filter((f) => f.endsWith(".summarizing"))) await rm(join(runs, f), { force: true });
  }

  private async repair(file: string): Promise<void> {
    if (this.repaired.has(file)) return;
    await mkdir(join(file, ".."), { recursive: true });
    const read = await readJsonl<unknown>(file);
    if (read.truncatedTail) {
      await truncate(file, read.goodBytes);
      this.warnings.push(`${file}: dropped a partial last line left by an interrupted write`);
    }
    this.repaired.add(file);
  }

  private runFile(key: string): string {
    return join(this.dir, "runs", `${key}.jsonl`);
  }

  get resultsFile(): string {
    return join(this.dir, "results.jsonl");
  }

  /** Append one line durably; a crash mid-write leaves at most a partial last line. */
  private async append(file: string, record: unknown): Promise<void> {
    // Once per file and process: cut a partial last line from an earlier crash.
    if (this.sharedWithOtherProcesses) await mkdir(join(file, ".."), { recursive: true });
    else await this.repair(file);
    const handle = await open(file, "a");
    try {
      await handle.write(`${JSON.stringify(record)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** The full spec of a run, written when it starts, so that merge can summarize shards. */
  async writeSpec(key: string, spec: RunSpec, size: ModelSize | null = null): Promise<void> {
    const file = join(this.dir, "runs", `${key}.spec.json`);
    if (!(await exists(file))) await writeJsonAtomic(file, spec);
    const sizeFile = join(this.dir, "runs", `${key}.size.json`);
    if (size && !(await exists(sizeFile))) await writeJsonAtomic(sizeFile, size);
  }

  /** The model size recorded when a run (or one of its shards) started. */
  async summaryOrSize(key: string): Promise<ModelSize | null> {
    const file = join(this.dir, "runs", `${key}.size.json`);
    return (await exists(file)) ? readJson<ModelSize>(file) : ((await this.summary(key))?.size ?? null);
  }

  async readSpec(key: string): Promise<RunSpec | undefined> {
    const file = join(this.dir, "runs", `${key}.spec.json`);
    return (await exists(file)) ? readJson<RunSpec>(file) : undefined;
  }

  async runKeys(): Promise<string[]> {
    const dir = join(this.dir, "runs");
    if (!(await exists(dir))) return [];
    return (await readdir(dir)).filter((f) => f.endsWith(".spec.json")).map((f) => f.slice(0, -".spec.json".length));
  }

  async finishedUtterances(key: string): Promise<Map<string, UtteranceResult>> {
    const read = await readJsonl<UtteranceResult>(this.runFile(key));
    if (read.truncatedTail && !this.sharedWithOtherProcesses) this.warnings.push(`${this.runFile(key)}: a partial last line will be recomputed`);
    return new Map(read.records.map((r) => [r.id, r]));
  }

  /** Runs whose spec names utterances the store does not hold (a shard missing from a merge). */
  async incompleteRuns(): Promise<string[]> {
    const out: string[] = [];
    for (const key of await this.runKeys()) {
      const spec = await this.readSpec(key);
      const done = await this.finishedUtterances(key);
      if (spec && !spec.utteranceIds.every((id) => done.has(id))) out.push(key);
    }
    return out;
  }

  async appendUtterance(key: string, result: UtteranceResult): Promise<void> {
    await this.append(this.runFile(key), result);
  }

  async summaries(): Promise<RunSummary[]> {
    const read = await readJsonl<RunSummary>(this.resultsFile);
    if (read.truncatedTail) this.warnings.push(`${this.resultsFile}: ignored a partial last line`);
    return read.records;
  }

  async summary(key: string): Promise<RunSummary | undefined> {
    return (await this.summaries()).findLast((s) => s.key === key);
  }

  /**
   * Worker processes: the right to summarize `key`, taken by creating a marker file exclusively;
   * false when another process holds it. `release` after the summary is written.
   */
  async claimSummary(key: string): Promise<{ claimed: boolean; release: () => Promise<void> }> {
    const marker = join(this.dir, "runs", `${key}.summarizing`);
    await mkdir(join(this.dir, "runs"), { recursive: true });
    try {
      await (await open(marker, "wx")).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return { claimed: false, release: async () => {} };
      throw err;
    }
    return { claimed: true, release: () => rm(marker, { force: true }) };
  }

  async appendSummary(summary: RunSummary): Promise<void> {
    await this.append(this.resultsFile, summary);
  }
}
