/**
 * Model download from the Hugging Face hub (or any server speaking its API, such as a mirror),
 * through @huggingface/hub: revision -> commit, file list with sizes and hashes, ranged GETs.
 *
 * Layout: <cache>/<org>/<name>/<commit>/<file>, with refs/<revision> holding the commit, and
 * partial downloads in <commit>/.incomplete/<file> until their size and hash check out. A file
 * at its final path is always complete and verified; an interrupted download resumes.
 */
import { downloadFile, fileDownloadInfo, listFiles, modelInfo, type ListFileEntry } from "@huggingface/hub";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KitError, messageOf } from "../util/errors.js";
import { dataDir, exists, gitBlobSha1, hashFile, writeFileAtomic } from "../util/fs.js";

export const DEFAULT_HUB_URL = "https://huggingface.co";
export const MODEL_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "normalizer.json", "model.safetensors"];
/** Fetched when the repo has them; the kit runs without. */
export const OPTIONAL_MODEL_FILES = ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt"];

export interface FetchOptions {
  revision?: string; // branch, tag or commit; default "main"
  hubUrl?: string; // default: HF_ENDPOINT, else huggingface.co
  cacheDir?: string; // default data/hub
  files?: string[];
  optionalFiles?: string[];
  fetch?: typeof fetch;
  accessToken?: string; // default HF_TOKEN
  onProgress?: (file: string, bytes: number, total: number) => void;
}

export function hubUrlFrom(options: { hubUrl?: string }): string {
  return (options.hubUrl ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL).replace(/\/+$/, "");
}

function checkRepoId(repo: string): void {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) {
    throw new KitError(`'${repo}' is neither a model folder nor a hub id like openai/whisper-small`, {
      field: "--model",
      fix: "give an existing folder with config.json and model.safetensors, or a hub id <org>/<name>",
    });
  }
}

function credentials(options: FetchOptions): { accessToken?: string } {
  const token = options.accessToken ?? process.env.HF_TOKEN;
  return token ? { accessToken: token } : {};
}

/** Resolve a branch or tag to its commit (the hub's revision API). */
async function resolveCommit(repo: string, revision: string, hubUrl: string, options: FetchOptions): Promise<string> {
  if (/^[0-9a-f]{40}$/.test(revision)) return revision;
  try {
    const info = await modelInfo({
      name: repo,
      revision,
      hubUrl,
      additionalFields: ["sha"],
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...credentials(options),
    });
    const sha = (info as { sha?: string }).sha;
    if (!sha) throw new Error("the hub's answer has no commit sha");
    return sha;
  } catch (err) {
    throw hubError(err, repo, `${hubUrl}/api/models/${repo}/revision/${revision}`);
  }
}

function hubError(err: unknown, repo: string, url: string): KitError {
  if (err instanceof KitError) return err;
  const status = (err as { statusCode?: number }).statusCode;
  if (status === 404 || status === 401) {
    return new KitError(`model '${repo}' was not found on ${new URL(url).origin} (HTTP ${status})`, {
      file: url,
      field: "--model",
      fix: "check the model id and revision; for a gated or private model set HF_TOKEN",
    });
  }
  if (status !== undefined || (err as Error).name === "InvalidApiResponseFormatError") {
    return new KitError(`the hub at ${new URL(url).origin} answered ${status ?? "in a form the kit cannot use"} for '${repo}': ${messageOf(err)}`, {
      file: url,
      fix: "check that --hub-url / HF_ENDPOINT points at a Hugging Face hub or a mirror of its API",
    });
  }
  return new KitError(`the hub at ${new URL(url).origin} could not be reached for '${repo}': ${messageOf(err)}`, {
    file: url,
    fix: "check the network or --hub-url / HF_ENDPOINT; a local model folder works offline",
  });
}

/** The hash the hub gives for a file: sha256 for LFS files, git's blob sha1 for the rest. */
async function verify(file: string, entry: ListFileEntry, url: string): Promise<void> {
  const size = (await stat(file)).size;
  const expectedSize = entry.lfs?.size ?? entry.size;
  if (size !== expectedSize) {
    throw new KitError(`download of ${entry.path} has ${size} bytes, the hub lists ${expectedSize}`, {
      file: url,
      field: "size",
      fix: "run the command again to resume",
    });
  }
  if (entry.lfs?.oid) {
    const sha = await hashFile(file, "sha256");
    if (sha !== entry.lfs.oid) {
      throw new KitError(`download of ${entry.path} is corrupt: sha256 ${sha}, the hub lists ${entry.lfs.oid}`, {
        file: url,
        field: "sha256",
        fix: "the damaged file was deleted; run the command again",
      });
    }
  } else if (entry.oid) {
    const sha1 = await gitBlobSha1(file);
    if (sha1 !== entry.oid) {
      throw new KitError(`download of ${entry.path} is corrupt: git blob ${sha1}, the hub lists ${entry.oid}`, {
        file: url,
        field: "oid",
        fix: "the damaged file was deleted; run the command again",
      });
    }
  }
}

/** Download one file to `target`, resuming from `partial`; verified before it is renamed into place. */
async function downloadOne(
  repo: string,
  commit: string,
  entry: ListFileEntry,
  target: string,
  partial: string,
  hubUrl: string,
  options: FetchOptions,
): Promise<void> {
  const url = `${hubUrl}/${repo}/resolve/${commit}/${entry.path}`;
  await mkdir(dirname(partial), { recursive: true });
  const total = entry.lfs?.size ?? entry.size;
  let have = (await exists(partial)) ? (await stat(partial)).size : 0;
  if (have > total) {
    await rm(partial);
    have = 0;
  }
  if (have < total) {
    const common = { repo, path: entry.path, revision: commit, hubUrl, ...(options.fetch ? { fetch: options.fetch } : {}), ...credentials(options) };
    let blob: Blob | null;
    try {
      const info = await fileDownloadInfo(common);
      if (!info) throw new KitError(`${entry.path} is listed but not served`, { file: url, fix: "try again later" });
      blob = await downloadFile({ ...common, downloadInfo: info, xet: false });
    } catch (err) {
      throw hubError(err, repo, url);
    }
    if (!blob) throw new KitError(`${entry.path} is missing from ${repo}@${commit}`, { file: url, fix: "check the revision" });
    // Awaited writes, chunk by chunk: whatever arrived before a break is on disk for the resume.
    let written = have;
    const handle = await open(partial, have > 0 ? "a" : "w");
    try {
      for await (const chunk of blob.slice(have).stream() as unknown as AsyncIterable<Uint8Array>) {
        await handle.write(chunk);
        written += chunk.byteLength;
        options.onProgress?.(entry.path, written, total);
      }
    } catch (err) {
      throw new KitError(`download of ${entry.path} broke off after ${written} of ${total} bytes: ${messageOf(err)}`, {
        file: url,
        fix: "run the same command again: it resumes from the partial file",
      });
    } finally {
      await handle.close();
    }
  }
  try {
    await verify(partial, entry, url);
  } catch (err) {
    await rm(partial, { force: true }); // never resume from, or use, a file that failed its check
    throw err;
  }
  await mkdir(dirname(target), { recursive: true });
  await rename(partial, target);
}

/**
 * Fetch a model's files into the cache and return the folder. Files already complete are not
 * downloaded again; with no network, a revision fetched before is served from the cache.
 */
export async function fetchModel(repo: string, options: FetchOptions = {}): Promise<string> {
  checkRepoId(repo);
  const hubUrl = hubUrlFrom(options);
  const revision = options.revision ?? "main";
  const cacheRoot = options.cacheDir ?? join(dataDir(), "hub");
  const repoDir = join(cacheRoot, ...repo.split("/"));
  const refFile = join(repoDir, "refs", revision.replaceAll("/", "%2F"));
  const wanted = options.files ?? MODEL_FILES;
  const optional = options.optionalFiles ?? OPTIONAL_MODEL_FILES;

  let commit: string;
  try {
    commit = await resolveCommit(repo, revision, hubUrl, options);
  } catch (err) {
    // Offline: a revision fetched completely before is still good.
    if (err instanceof KitError && !/not found/.test(err.message) && (await exists(refFile))) {
      const cached = (await readFile(refFile, "utf8")).trim();
      const dir = join(repoDir, cached);
      const complete = await Promise.all(wanted.map((f) => exists(join(dir, f))));
      if (complete.every(Boolean)) return dir;
    }
    throw err;
  }
  const dir = join(repoDir, commit);
  let listing: Map<string, ListFileEntry>;
  try {
    listing = new Map();
    for await (const entry of listFiles({
      repo,
      revision: commit,
      recursive: true,
      hubUrl,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...credentials(options),
    })) {
      if (entry.type === "file") listing.set(entry.path, entry);
    }
  } catch (err) {
    throw hubError(err, repo, `${hubUrl}/api/models/${repo}/tree/${commit}`);
  }
  const missing = wanted.filter((f) => !listing.has(f));
  if (missing.length > 0) {
    throw new KitError(`${repo}@${commit.slice(0, 7)} lacks ${missing.join(", ")}`, {
      file: `${hubUrl}/${repo}/tree/${commit}`,
      field: missing[0]!,
      fix: "use a Whisper repo in the transformers layout with safetensors weights (e.g. openai/whisper-small)",
    });
  }
  for (const path of [...wanted, ...optional.filter((f) => listing.has(f))]) {
    const entry = listing.get(path)!;
    const target = join(dir, path);
    if ((await exists(target)) && (await stat(target)).size === (entry.lfs?.size ?? entry.size)) continue;
    await downloadOne(repo, commit, entry, target, join(dir, ".incomplete", path), hubUrl, options);
  }
  await rm(join(dir, ".incomplete"), { recursive: true, force: true });
  await writeFileAtomic(refFile, `${commit}\n`);
  return dir;
}

/** A local model folder as it is, or a hub id fetched into the cache. */
export async function resolveModelDir(ref: string, options: FetchOptions = {}): Promise<string> {
  if (await exists(join(ref, "config.json"))) return ref;
  if (await exists(ref)) {
    throw new KitError(`${ref} is a folder but has no config.json`, {
      file: join(ref, "config.json"),
      fix: "a model folder needs config.json, model.safetensors and tokenizer.json (the Hugging Face layout)",
    });
  }
  return fetchModel(ref, options);
}
