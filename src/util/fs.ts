import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KitError } from "./errors.js";

/**
 * Write a file so that readers see either the old content or the whole new content, never a
 * prefix: write a sibling temporary file, fsync it, then rename over the target.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const handle = await open(tmp, "w");
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Build a directory under a temporary name and rename it into place when `fill` succeeds, so
 * that a crash or an error never leaves a half-written directory where a complete one belongs.
 */
export async function withAtomicDir<T>(target: string, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const result = await fill(tmp);
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

/** Streaming hash of a file: model weights are far too large to read whole for this. */
export async function hashFile(path: string, algorithm: "sha256" | "sha1" | "md5" = "sha256"): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Git's blob id: sha1("blob <size>\0" + content). The hub reports it for files not in LFS. */
export async function gitBlobSha1(path: string): Promise<string> {
  const size = await fileSize(path);
  const hash = createHash("sha1");
  hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Read and parse a JSON file; a syntax error names the file. */
export async function readJson<T = unknown>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new KitError(`cannot read ${path}`, { file: path, fix: "check that the file exists and is readable" }, err);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new KitError(`${path} is not valid JSON: ${(err as Error).message}`, {
      file: path,
      fix: "the file is corrupt or truncated; delete it and fetch the model again",
    });
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The kit's data folder: PTQ_DATA_DIR, else data/ at the repository root. */
export function dataDir(): string {
  return process.env.PTQ_DATA_DIR ?? join(repoRoot(), "data");
}

/** The repository root, found from this file's compiled location (build/src/util/fs.js). */
export function repoRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".."); // fileURLToPath: paths with spaces stay intact
}

/** A copy of `bytes` that owns exactly its own buffer (a Node Buffer's .slice is a view into a shared pool). */
export function ownedCopy(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return Uint8Array.prototype.slice.call(bytes) as Uint8Array<ArrayBuffer>;
}
