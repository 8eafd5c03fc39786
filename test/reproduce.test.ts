/**
 * `make reproduce`'s downloads (`ptq prepare`, which chapter 00 and every runStudy call too) from an
 * empty data folder against loopback mirrors: the model from a hub, the split from an OpenSLR
 * mirror, verified; killed during the split's download and restarted, it resumes from the bytes it
 * had; with the hub on a closed port it fails fast, naming the host and the fix.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { HubMirror } from "./support/hub-mirror.js";
import { StaticServer } from "./support/static-server.js";
import { splitEntries, tarGz } from "./support/tar-writer.js";
import { LIBRISPEECH, ROOT, syntheticModel, tempDir } from "./support/env.js";

const CLI = join(ROOT, "build", "src", "cli.js");
const ARCHIVE = "/resources/12/train-clean-5.tar.gz";

async function splitArchive(split: string): Promise<Uint8Array> {
  return tarGz(await splitEntries(LIBRISPEECH, split));
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function prepare(env: NodeJS.ProcessEnv): { done: Promise<{ code: number; stdout: string; stderr: string; seconds: number }>; kill: () => void } {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, "prepare"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<{ code: number; stdout: string; stderr: string; seconds: number }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code: code ?? (signal ? 137 : 1), stdout, stderr, seconds: (performance.now() - started) / 1000 })),
  );
  return { done, kill: () => child.kill("SIGKILL") };
}

/** Every file under `dir`, relative. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

describe("make reproduce fetches what it needs", () => {
  const hub = new HubMirror();
  const openslr = new StaticServer();
  let archive: Uint8Array;
  let checksums: string;

  before(async () => {
    await hub.addRepoFromDir("kit-tests/whisper-synthetic", await syntheticModel({ dModel: 32, heads: 2, layers: 2, seed: 3 }));
    archive = await splitArchive("train-clean-5");
    openslr.files.set(ARCHIVE, archive);
    checksums = join(await tempDir(), "checksums.json");
    await writeFile(
      checksums,
      JSON.stringify({ "train-clean-5": { md5: createHash("md5").update(archive).digest("hex"), sha256: createHash("sha256").update(archive).digest("hex") } }),
    );
    await hub.start();
    await openslr.start();
  });
  after(async () => {
    await hub.stop();
    await openslr.stop();
  });

  const envFor = (data: string, hubUrl = hub.url): NodeJS.ProcessEnv => ({
    ...process.env,
    PTQ_DATA_DIR: data,
    PTQ_PROGRESS: "1",
    MODELS: "kit-tests/whisper-synthetic",
    SPLITS: "train-clean-5",
    HUB_URL: hubUrl,
    LIBRISPEECH_DIR: "",
    MODEL_DIR: "",
    LIBRISPEECH_MIRROR: `${openslr.url}/resources/12`,
    LIBRISPEECH_CHECKSUMS: checksums,
  });

  it("downloads the model and the split into an empty data folder, verified; killed midway, it resumes from the bytes it had", async () => {
    const data = await tempDir();
    const stall = Math.floor(archive.length / 2);
    openslr.stallAfter.set(ARCHIVE, stall);
    const first = prepare(envFor(data));
    const partial = join(data, "librispeech", "archives", "train-clean-5.tar.gz.partial");
    const deadline = Date.now() + 60_000;
    while (!(existsSync(partial) && statSync(partial).size >= stall) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(partial), "the download started");
    first.kill();
    const killed = await first.done;
    assert.equal(killed.code, 137);
    assert.equal(statSync(partial).size, stall);
    assert.ok(!existsSync(join(data, "librispeech", "LibriSpeech", "train-clean-5")), "nothing extracted from a partial archive");

    openslr.ranges.length = 0;
    const second = await prepare(envFor(data)).done;
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(openslr.ranges, [`bytes=${stall}-`], "the restart asked only for the missing bytes");
    assert.match(second.stderr, /download LibriSpeech train-clean-5: 100 %/);
    const libri = join(data, "librispeech", "LibriSpeech");
    assert.equal(files(join(libri, "train-clean-5")).filter((f) => f.endsWith(".flac")).length, 12);
    assert.ok(existsSync(join(libri, "train-clean-5.manifest.jsonl")));
    assert.equal(files(join(data, "hub")).filter((f) => f.endsWith("model.safetensors")).length, 1);

    openslr.ranges.length = 0;
    const third = await prepare(envFor(data)).done;
    assert.equal(third.code, 0);
    assert.equal(openslr.ranges.length, 0, "a second run downloads nothing");
  });

  it("fails within 30 s when the hub cannot be reached, naming the host and the fix, and leaves no partial file at a final path", async () => {
    const data = await tempDir();
    const port = await closedPort();
    const r = await prepare(envFor(data, `http://127.0.0.1:${port}`)).done;
    assert.equal(r.code, 1);
    assert.ok(r.seconds < 30, `${r.seconds} s`);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(r.stderr, /field: HUB_URL/);
    assert.match(r.stderr, /MODEL_DIR/);
    assert.match(r.stderr, /make smoke/);
    assert.deepEqual(
      files(join(data, "hub")).filter((f) => !f.includes(".incomplete")),
      [],
    );
  });
});
