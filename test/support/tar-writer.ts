/** A minimal ustar + gzip writer for tests (regular files, directories, symlinks; names < 100 bytes). */
import { gzipSync } from "node:zlib";

export interface TarInput {
  name: string;
  data?: Uint8Array; // a regular file
  symlinkTo?: string;
  directory?: boolean;
}

function header(name: string, size: number, flag: string, link = ""): Uint8Array {
  const h = new Uint8Array(512);
  const put = (text: string, at: number, len: number) => h.set(new TextEncoder().encode(text).subarray(0, len), at);
  put(name, 0, 100);
  put("0000644\0", 100, 8);
  put("0000000\0", 108, 8);
  put("0000000\0", 116, 8);
  put(`${size.toString(8).padStart(11, "0")}\0`, 124, 12);
  put("00000000000\0", 136, 12);
  put("        ", 148, 8);
  put(flag, 156, 1);
  put(link, 157, 100);
  put("ustar\u000000", 257, 8);
  const sum = h.reduce((a, b) => a + b, 0);
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return h;
}

export function tarGz(entries: TarInput[], options: { truncate?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    if (e.directory) parts.push(header(e.name, 0, "5"));
    else if (e.symlinkTo !== undefined) parts.push(header(e.name, 0, "2", e.symlinkTo));
    else {
      const data = e.data ?? new Uint8Array(0);
      parts.push(header(e.name, data.length, "0"), data, new Uint8Array((512 - (data.length % 512)) % 512));
    }
  }
  parts.push(new Uint8Array(1024));
  let tar = Buffer.concat(parts);
  if (options.truncate) tar = tar.subarray(0, Math.floor(tar.length / 2));
  return gzipSync(tar);
}

/** The entries of a LibriSpeech split folder as its archive holds them (LibriSpeech/<split>/...), sorted. */
export async function splitEntries(libri: string, split: string): Promise<TarInput[]> {
  const { readdir, readFile } = await import("node:fs/promises");
  const { join, relative } = await import("node:path");
  const entries: TarInput[] = [];
  const walk = async (dir: string) => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else entries.push({ name: `LibriSpeech/${relative(libri, full)}`, data: await readFile(full) });
    }
  };
  await walk(join(libri, split));
  return entries;
}
