import { rmSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { repoRoot } from "../../src/util/fs.js";
import { writeSyntheticWhisper, type SyntheticOptions } from "../../src/model/synthetic.js";
import { buildManifest, type Utterance } from "../../src/hub/librispeech.js";

export const ROOT = repoRoot();
export const FIXTURES = join(ROOT, "test", "fixtures");
/** 16 real LibriSpeech utterances in the repository (test/fixtures/librispeech/README.md). */
export const LIBRISPEECH = join(FIXTURES, "librispeech", "LibriSpeech");
export const ASSETS = join(FIXTURES, "whisper-assets");
export const TINY_EN_ASSETS = join(ASSETS, "whisper-tiny.en");
export const TEST_CLEAN_FLAC = join(LIBRISPEECH, "test-clean", "1089", "134686", "1089-134686-0000.flac");

/**
 * A LibriSpeech folder with larger real sets (train-clean-5, test-other), given as the kit's
 * LIBRISPEECH_DIR; the few tests that need it say so and skip without it (`make test-data` runs them).
 */
export const LARGE_LIBRISPEECH = process.env.LIBRISPEECH_DIR ? resolve(ROOT, process.env.LIBRISPEECH_DIR) : null;
export const largeDataMissing = (split: string): string | false =>
  LARGE_LIBRISPEECH ? false : `needs real ${split} audio: set LIBRISPEECH_DIR to a LibriSpeech folder that has it (make test-data)`;

const made: string[] = [];
// Removed when the test process ends (node --test runs each file in its own process).
process.on("exit", () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder, removed when the test file's process exits. */
export async function tempDir(prefix = "ptq-test-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A synthetic tiny Whisper in a fresh temporary folder. */
export async function syntheticModel(options: Partial<SyntheticOptions> = {}): Promise<string> {
  const dir = join(await tempDir(), "model");
  await writeSyntheticWhisper(dir, { assetsDir: TINY_EN_ASSETS, ...options });
  return dir;
}

/** Float32 values stored exactly as base64 little-endian bytes (the quantization fixtures' encoding). */
export function base64Float32(b64: string): Float32Array {
  const bytes = Buffer.from(b64, "base64");
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** A LibriSpeech-layout split of `count` (at most 12) real train-clean-5 utterances of the fixtures (symlinks). */
export async function miniSplit(count: number): Promise<{ root: string; utterances: Utterance[] }> {
  const root = await tempDir();
  const all = await buildManifest(LIBRISPEECH, "train-clean-5");
  for (const u of all.slice(0, count)) {
    const [spk, chap] = u.id.split("-");
    const dir = join(root, "mini", spk!, chap!);
    await mkdir(dir, { recursive: true });
    await symlink(u.path, join(dir, `${u.id}.flac`));
    await appendFile(join(dir, `${spk}-${chap}.trans.txt`), `${u.id} ${u.transcript}\n`);
  }
  return { root, utterances: await buildManifest(root, "mini") };
}
