/**
 * Download and unpack archives safely: a resumable HTTP GET into a partial file, checksums before
 * use, and a tar.gz reader that refuses any entry that would land outside the target folder
 * (absolute paths, "..", links pointing out) and extracts into a temporary folder renamed into
 * place when complete.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, normalize, relative, resolve, sep } from "node:path";
import { createGunzip } from "node:zlib";
import { KitError, messageOf } from "../util/errors.js";
import { exists } from "../util/fs.js";

export interface Checksums {
  md5?: string;
  sha256?: string;
}

/** GET `url` into `target`, resuming from `target.partial`; verified before the rename. */
export async function downloadVerified(url: string, target: string, expected: Checksums, onProgress?: (bytes: number, total: number) => void): Promise<void> {
  if (await exists(target)) return;
  const partial = `${target}.partial`;
  await mkdir(dirname(target), { recursive: true });
  let have = (await exists(partial)) ? (await stat(partial)).size : 0;
  let response: Response;
  try {
    response = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  } catch (err) {
    throw new KitError(`cannot reach ${url}: ${messageOf(err)}`, {
      file: url,
      fix: "check the network or the mirror address (--mirror-url / LIBRISPEECH_MIRROR); an existing tree works with --librispeech-dir",
    });
  }
  if (response.status === 416 && have > 0) {
    // the partial file is already complete (or longer than the file): verify below
  } else if (!response.ok) {
    throw new KitError(`${url} answered HTTP ${response.status}`, { file: url, fix: "check the split name and the mirror address" });
  } else {
    if (have > 0 && response.status !== 206) have = 0; // the server ignored Range: start over
    const total = have + Number(response.headers.get("content-length") ?? NaN);
    let written = have;
    // Awaited writes, chunk by chunk: whatever arrived before a break is on disk for the resume.
    const handle = await open(partial, have > 0 ? "a" : "w");
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        await handle.write(chunk);
        written += chunk.byteLength;
        onProgress?.(written, total);
      }
    } catch (err) {
      throw new KitError(`download of ${url} broke off after ${written} bytes: ${messageOf(err)}`, {
        file: url,
        fix: "run the same command again: it resumes from the partial file",
      });
    } finally {
      await handle.close();
    }
  }
  const hashes = { md5: createHash("md5"), sha256: createHash("sha256") };
  for await (const chunk of createReadStream(partial, { highWaterMark: 1 << 22 })) {
    hashes.md5.update(chunk as Buffer);
    hashes.sha256.update(chunk as Buffer);
  }
  const got = { md5: hashes.md5.digest("hex"), sha256: hashes.sha256.digest("hex") };
  for (const algo of ["md5", "sha256"] as const) {
    const want = expected[algo];
    if (want && got[algo] !== want) {
      await rm(partial, { force: true });
      throw new KitError(`${url} is corrupt: ${algo} ${got[algo]}, expected ${want}`, {
        file: url,
        field: algo,
        fix: "the damaged download was deleted; run the command again",
      });
    }
  }
  await rename(partial, target);
}

interface TarEntry {
  name: string;
  type: "file" | "directory" | "symlink" | "hardlink" | "other";
  size: number;
  linkTarget: string;
}

function parseOctal(bytes: Uint8Array): number {
  const text = new TextDecoder("latin1").decode(bytes).replace(/\0.*$/s, "").trim();
  return text === "" ? 0 : parseInt(text, 8);
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** The path an entry would take inside `root`, or an error if it would escape it. */
function safePath(root: string, name: string, archive: string): string {
  const cleaned = normalize(name);
  const target = resolve(root, cleaned);
  if (isAbsolute(name) || cleaned.split(sep).includes("..") || (target !== root && !target.startsWith(root + sep))) {
    throw new KitError(`${archive} contains an entry that would be written outside the target folder: ${JSON.stringify(name)}`, {
      file: archive,
      field: name,
      fix: "the archive is malicious or damaged; nothing was extracted",
    });
  }
  return target;
}

/**
 * Extract a tar.gz into `dest`, which must not exist: entries go to a temporary sibling folder
 * that is renamed to `dest` after the last entry, so a failure leaves nothing at `dest`.
 */
export async function extractTarGz(archive: string, dest: string): Promise<number> {
  const tmp = `${dest}.extracting`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const root = resolve(tmp);
  let files = 0;
  try {
    let buffer: Buffer = Buffer.alloc(0);
    let entry: TarEntry | null = null;
    let remaining = 0;
    let padding = 0;
    let out: Buffer[] = [];
    let longName: string | null = null;
    let paxPath: string | null = null;
    let finished = false;
    const finishEntry = async () => {
      if (!entry) return;
      const data = Buffer.concat(out);
      if (entry.type === "other" && entry.name === "././@LongLink") longName = cString(data);
      else if (entry.name === "\0pax") {
        const m = /\d+ path=([^\n]*)\n/.exec(data.toString("utf8"));
        paxPath = m ? m[1]! : null;
      } else if (entry.type === "file") {
        const path = safePath(root, entry.name, archive);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, data);
        files++;
      }
      entry = null;
      out = [];
    };
    for await (const chunk of createReadStream(archive).pipe(createGunzip())) {
      buffer = Buffer.concat([buffer, chunk as Buffer]);
      while (!finished) {
        if (entry) {
          const take = Math.min(remaining, buffer.length);
          if (take > 0) out.push(buffer.subarray(0, take));
          buffer = buffer.subarray(take);
          remaining -= take;
          if (remaining > 0) break;
          const skip = Math.min(padding, buffer.length);
          buffer = buffer.subarray(skip);
          padding -= skip;
          if (padding > 0) break;
          await finishEntry();
          continue;
        }
        if (buffer.length < 512) break;
        const header = buffer.subarray(0, 512);
        buffer = buffer.subarray(512);
        if (header.every((b) => b === 0)) {
          finished = true;
          break;
        }
        const prefix = cString(header.subarray(345, 500));
        let name = (prefix ? `${prefix}/` : "") + cString(header.subarray(0, 100));
        const flag = String.fromCharCode(header[156]!);
        const size = parseOctal(header.subarray(124, 136));
        const linkTarget = cString(header.subarray(157, 257));
        if (longName !== null && flag !== "L") [name, longName] = [longName, null];
        if (paxPath !== null && flag !== "x") [name, paxPath] = [paxPath, null];
        const type: TarEntry["type"] =
          flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "directory" : flag === "2" ? "symlink" : flag === "1" ? "hardlink" : "other";
        if (flag === "L") name = "././@LongLink";
        if (flag === "x") name = "\0pax";
        if (type !== "other") safePath(root, name, archive);
        if (type === "directory") await mkdir(safePath(root, name, archive), { recursive: true });
        if (type === "symlink" || type === "hardlink") {
          const from = safePath(root, name, archive);
          const pointsTo = type === "symlink" ? resolve(dirname(from), linkTarget) : resolve(root, linkTarget);
          if (isAbsolute(linkTarget) || relative(root, pointsTo).startsWith("..")) {
            throw new KitError(`${archive} contains a link that points outside the target folder: ${name} -> ${linkTarget}`, {
              file: archive,
              field: name,
              fix: "the archive is malicious or damaged; nothing was extracted",
            });
          }
          await mkdir(dirname(from), { recursive: true });
          await symlink(relative(dirname(from), pointsTo), from);
        }
        entry = { name, type, size, linkTarget };
        remaining = size;
        padding = (512 - (size % 512)) % 512;
        if (size === 0) await finishEntry();
      }
    }
    if (!finished && (entry || buffer.length > 0)) {
      throw new KitError(`${archive} ends in the middle of an entry`, { file: archive, fix: "the archive is truncated; delete it and download again" });
    }
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
    return files;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof KitError) throw err;
    throw new KitError(`cannot extract ${archive}: ${messageOf(err)}`, { file: archive, fix: "the archive is damaged; delete it and download again" });
  }
}
