/**
 * LibriSpeech on disk: <root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac with one
 * <speaker>-<chapter>.trans.txt per chapter ("<utt-id> <UPPER CASE TRANSCRIPT>"). The manifest
 * lists a split's utterances sorted by utterance id, which fixes the study's calibration cut.
 */
import { cp, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { KitError } from "../util/errors.js";
import { dataDir, exists, readJson, writeFileAtomic } from "../util/fs.js";
import { checkFrames, readFlacLayout } from "../audio/flac-integrity.js";
import { downloadVerified, extractTarGz, type Checksums } from "./archive.js";

export interface Utterance {
  id: string; // "1089-134686-0000"
  path: string; // absolute or root-relative path of the FLAC file
  duration: number; // seconds, from the FLAC header
  transcript: string; // as in .trans.txt (upper case, no punctuation)
}

export const LIBRISPEECH_SPLITS = [
  "test-clean",
  "test-other",
  "dev-clean",
  "dev-other",
  "train-clean-100",
  "train-clean-360",
  "train-other-500",
  "train-clean-5",
  "dev-clean-2",
];

/** Duration of a FLAC file from STREAMINFO (total samples / sample rate), without decoding. */
export async function flacDuration(file: string): Promise<number> {
  const handle = await open(file, "r").catch((err) => {
    throw new KitError(`the manifest points at ${file}, which cannot be opened`, { file, fix: "the split is incomplete; fetch or extract it again" }, err);
  });
  try {
    const head = new Uint8Array(42);
    const { bytesRead } = await handle.read(head, 0, 42, 0);
    if (bytesRead < 42 || new TextDecoder("latin1").decode(head.subarray(0, 4)) !== "fLaC") {
      throw new KitError(`${file} is not a FLAC file`, { file, fix: "the split is damaged; fetch or extract it again" });
    }
    const v = new DataView(head.buffer);
    // STREAMINFO body starts at byte 8: sample rate (20 bits) at bit 80, total samples (36 bits) at bit 108.
    const sampleRate = (v.getUint32(18) >>> 12) & 0xfffff;
    const totalSamples = (v.getUint8(21) & 0x0f) * 2 ** 32 + v.getUint32(22);
    if (sampleRate === 0) throw new KitError(`${file} has a zero sample rate`, { file, field: "STREAMINFO", fix: "the file is damaged" });
    return totalSamples / sampleRate;
  } finally {
    await handle.close();
  }
}

/** Parse one .trans.txt: every non-empty line must be "<utt-id> <TRANSCRIPT>". */
export function parseTranscripts(text: string, file: string): Array<{ id: string; transcript: string }> {
  const out: Array<{ id: string; transcript: string }> = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") return;
    const m = /^(\d+-\d+-\d+) (.+)$/.exec(line);
    if (!m) {
      throw new KitError(`line ${index + 1} of ${file} is not '<speaker>-<chapter>-<utterance> <TRANSCRIPT>': ${JSON.stringify(line.slice(0, 80))}`, {
        file,
        field: `line ${index + 1}`,
        fix: "repair or re-extract the transcript file",
      });
    }
    out.push({ id: m[1]!, transcript: m[2]!.trim() });
  });
  return out;
}

/** Every utterance of `<root>/<split>`, sorted by id; durations from the FLAC headers. */
export async function buildManifest(root: string, split: string): Promise<Utterance[]> {
  const dir = join(root, split);
  if (!(await exists(dir))) {
    const available = (await exists(root)) ? (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name) : [];
    throw new KitError(`no split '${split}' under ${root}`, {
      file: dir,
      field: "--split",
      fix: available.length
        ? `available here: ${available.join(", ")}`
        : "point --librispeech-dir at a LibriSpeech folder, or run ptq fetch librispeech <split>",
    });
  }
  const utterances: Utterance[] = [];
  for (const speaker of (await readdir(dir)).sort()) {
    const speakerDir = join(dir, speaker);
    if (!(await stat(speakerDir)).isDirectory()) continue;
    for (const chapter of (await readdir(speakerDir)).sort()) {
      const chapterDir = join(speakerDir, chapter);
      if (!(await stat(chapterDir)).isDirectory()) continue;
      const transFile = join(chapterDir, `${speaker}-${chapter}.trans.txt`);
      if (!(await exists(transFile))) continue;
      for (const { id, transcript } of parseTranscripts(await readFile(transFile, "utf8"), transFile)) {
        const path = join(chapterDir, `${id}.flac`);
        utterances.push({ id, path, duration: await flacDuration(path), transcript });
      }
    }
  }
  if (utterances.length === 0) {
    throw new KitError(`split '${split}' under ${root} holds no utterances`, {
      file: dir,
      field: "--split",
      fix: "the folder is empty or lacks .trans.txt files; extract the split again",
    });
  }
  return utterances.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export const DEFAULT_LIBRISPEECH_MIRROR = "https://www.openslr.org/resources/12";

/** The official archives of the study's splits (OpenSLR SLR12). */
export const OPENSLR_CHECKSUMS: Record<string, Checksums> = {
  "test-clean": { md5: "32fa31d27d2e1cad72775fee3f4849a9", sha256: "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23" },
  "test-other": { md5: "fb5a50374b501bb3bac4815ee91d3135", sha256: "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29" },
};

export interface LibriSpeechFetchOptions {
  mirrorUrl?: string; // default LIBRISPEECH_MIRROR, else OpenSLR
  root?: string; // default data/librispeech
  checksums?: Checksums; // default: the official ones for the split
  onProgress?: (bytes: number, total: number) => void;
}

/**
 * A mirror of one's own archives (a subset, another split) names their checksums in a JSON file,
 * LIBRISPEECH_CHECKSUMS = {"<split>": {"md5": "...", "sha256": "..."}}; nothing is extracted unverified.
 */
async function mirrorChecksums(split: string): Promise<Checksums | undefined> {
  const file = process.env.LIBRISPEECH_CHECKSUMS;
  if (!file) return undefined;
  const table = await readJson<Record<string, Checksums>>(file);
  const entry = table[split];
  if (entry && !(typeof entry.sha256 === "string" && /^[0-9a-f]{64}$/.test(entry.sha256))) {
    throw new KitError(`LIBRISPEECH_CHECKSUMS gives no sha256 for '${split}'`, {
      file,
      field: `${split}.sha256`,
      fix: "give the archive's sha256 (64 hex digits), and its md5 if known",
    });
  }
  return entry;
}

/** Where `ptq fetch librispeech` puts the LibriSpeech tree, and where everything looks by default. */
export function defaultLibriSpeechDir(): string {
  return join(dataDir(), "librispeech", "LibriSpeech");
}

/**
 * Download, verify and extract one LibriSpeech split; returns the LibriSpeech folder that holds
 * it. A finished split is not fetched again; a broken download resumes; a corrupt archive is
 * deleted and never extracted; the split appears only when fully extracted and its manifest built.
 */
export async function fetchLibriSpeech(split: string, options: LibriSpeechFetchOptions = {}): Promise<string> {
  const checksums = options.checksums ?? OPENSLR_CHECKSUMS[split] ?? (await mirrorChecksums(split));
  if (!checksums) {
    throw new KitError(`no checksums are known for LibriSpeech '${split}'`, {
      field: "split",
      fix: `fetch one of ${Object.keys(OPENSLR_CHECKSUMS).join(", ")}, name the archive's md5 and sha256 in a LIBRISPEECH_CHECKSUMS file, or use an existing tree with --librispeech-dir`,
    });
  }
  const root = options.root ?? join(dataDir(), "librispeech");
  const libri = join(root, "LibriSpeech");
  const manifestFile = join(libri, `${split}.manifest.jsonl`);
  if (await exists(manifestFile)) return libri;
  const mirror = (options.mirrorUrl ?? process.env.LIBRISPEECH_MIRROR ?? DEFAULT_LIBRISPEECH_MIRROR).replace(/\/+$/, "");
  const archive = join(root, "archives", `${split}.tar.gz`);
  await downloadVerified(`${mirror}/${split}.tar.gz`, archive, checksums, options.onProgress);
  const extracted = join(root, `.extract-${split}`);
  await extractTarGz(archive, extracted);
  const inner = join(extracted, "LibriSpeech", split);
  if (!(await exists(inner))) {
    await rm(extracted, { recursive: true, force: true });
    throw new KitError(`${archive} does not hold LibriSpeech/${split}/`, { file: archive, fix: "the archive is not the LibriSpeech split it is named after" });
  }
  const manifest = await buildManifest(join(extracted, "LibriSpeech"), split); // validates before the split becomes visible
  // Each FLAC checked once, here: its metadata and every frame's CRC (decoding checks the rest on use).
  for (const u of manifest) {
    const bytes = await readFile(u.path);
    const layout = readFlacLayout(bytes);
    const damagedAt = layout ? checkFrames(bytes, layout.firstFrame).damagedAt : 0;
    if (damagedAt !== null) {
      await rm(extracted, { recursive: true, force: true });
      throw new KitError(
        `${archive} holds a damaged FLAC file, ${u.id}.flac (${layout ? `the frame at byte ${damagedAt} fails its CRC` : "its metadata is malformed"})`,
        {
          file: archive,
          field: `${u.id}.flac`,
          fix: "the archive passed its checksums, so the mirror serves a damaged archive: use another mirror (--mirror-url / LIBRISPEECH_MIRROR)",
        },
      );
    }
  }
  await mkdir(libri, { recursive: true });
  for (const f of await readdir(join(extracted, "LibriSpeech"))) {
    if (f !== split && !(await exists(join(libri, f)))) await cp(join(extracted, "LibriSpeech", f), join(libri, f), { recursive: true });
  }
  await rm(join(libri, split), { recursive: true, force: true });
  await rename(inner, join(libri, split));
  await rm(extracted, { recursive: true, force: true });
  const lines = manifest.map((u) =>
    JSON.stringify({ ...u, path: join(libri, split, ...u.id.split("-").slice(0, 2), `${u.id}.flac`), checked: "metadata and frame CRCs" }),
  );
  await writeFileAtomic(manifestFile, `${lines.join("\n")}\n`);
  return libri;
}
