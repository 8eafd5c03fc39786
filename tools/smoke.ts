/**
 * `make smoke`: the main job's real path on a random-weight model, offline and in minutes. A
 * synthetic Whisper is served by a loopback hub and the repository's train-clean-5 utterances as a
 * LibriSpeech archive by a loopback OpenSLR mirror; then `make run-notebooks` (the last step of
 * `make reproduce`) runs every chapter from an empty data folder, downloading both through the
 * kit's own verified, resumable downloads. Every output is stamped as a smoke run.
 *
 *   node build/tools/smoke.js <smoke dir>
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeSyntheticWhisper, BUNDLED_ASSETS } from "../src/model/synthetic.js";
import { repoRoot } from "../src/util/fs.js";
import { HubMirror } from "../test/support/hub-mirror.js";
import { StaticServer } from "../test/support/static-server.js";
import { splitEntries, tarGz } from "../test/support/tar-writer.js";

const SPLIT = "train-clean-5";
const MODEL = "kit-smoke/whisper-synthetic";

async function splitArchive(libri: string, split: string): Promise<Uint8Array> {
  return tarGz([{ name: "LibriSpeech/LICENSE.TXT", data: await readFile(join(libri, "LICENSE.TXT")) }, ...(await splitEntries(libri, split))]);
}

export interface SmokeServices {
  /** The environment a smoke run gives the notebooks: the loopback hub and mirror, an empty data folder under `dir`. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** The loopback hub (a random-weight Whisper) and OpenSLR mirror (the bundled utterances) a smoke run downloads from. */
export async function startSmokeServices(dir: string): Promise<SmokeServices> {
  dir = resolve(dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const source = join(dir, "served-model");
  await writeSyntheticWhisper(source, { assetsDir: BUNDLED_ASSETS, dModel: 64, layers: 2, heads: 2, seed: 3 });
  const hub = new HubMirror();
  await hub.addRepoFromDir(MODEL, source);
  const openslr = new StaticServer();
  const archive = await splitArchive(join(repoRoot(), "test", "fixtures", "librispeech", "LibriSpeech"), SPLIT);
  openslr.files.set(`/resources/12/${SPLIT}.tar.gz`, archive);
  const checksums = join(dir, "checksums.json");
  await writeFile(
    checksums,
    JSON.stringify({ [SPLIT]: { md5: createHash("md5").update(archive).digest("hex"), sha256: createHash("sha256").update(archive).digest("hex") } }),
  );
  await hub.start();
  await openslr.start();
  return {
    env: {
      SMOKE: "1",
      MODELS: MODEL,
      SPLITS: SPLIT,
      LIMIT: "2",
      CALIBRATION_LIMIT: "2",
      MODEL_DIR: "",
      LIBRISPEECH_DIR: "",
      HUB_URL: hub.url,
      LIBRISPEECH_MIRROR: `${openslr.url}/resources/12`,
      LIBRISPEECH_CHECKSUMS: checksums,
      PTQ_DATA_DIR: join(dir, "data"),
      RESULTS_DIR: join(dir, "data", "results"),
    },
    stop: async () => {
      await hub.stop();
      await openslr.stop();
    },
  };
}

async function main(dir: string): Promise<number> {
  dir = resolve(dir);
  const services = await startSmokeServices(dir);
  try {
    const make = spawn("make", ["--no-print-directory", "run-notebooks", `EXECUTED_DIR=${join(dir, "notebooks")}`, `FIGURES_DIR=${join(dir, "figures")}`], {
      cwd: repoRoot(),
      env: { ...process.env, ...services.env },
      stdio: "inherit",
    });
    return await new Promise<number>((done) => make.on("exit", (code) => done(code ?? 1)));
  } finally {
    await services.stop();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = process.argv[2];
  if (!target) {
    console.error("usage: node build/tools/smoke.js <smoke dir>");
    process.exit(2);
  }
  process.exit(await main(target));
}
