/** `ptq fetch librispeech`: download (resumable), verification and safe extraction, on archives built from ../shared. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { extractTarGz } from "../src/hub/archive.js";
import { buildManifest, fetchLibriSpeech } from "../src/hub/librispeech.js";
import { KitError } from "../src/util/errors.js";
import { LIBRISPEECH, tempDir } from "./support/env.js";
import { StaticServer } from "./support/static-server.js";
import { splitEntries as libriSpeechEntries, tarGz, type TarInput } from "./support/tar-writer.js";

async function splitEntries(split: string): Promise<TarInput[]> {
  return [{ name: "LibriSpeech/README.TXT", data: new TextEncoder().encode("test archive\n") }, ...(await libriSpeechEntries(LIBRISPEECH, split))];
}

const sums = (bytes: Uint8Array) => ({ md5: createHash("md5").update(bytes).digest("hex"), sha256: createHash("sha256").update(bytes).digest("hex") });

describe("LibriSpeech download and extraction", () => {
  const server = new StaticServer();
  let archive: Uint8Array;

  before(async () => {
    archive = tarGz(await splitEntries("test-clean"));
    server.files.set("/resources/12/test-clean.tar.gz", archive);
    await server.start();
  });
  after(() => server.stop());

  it("downloads, verifies, extracts and builds the manifest; a second fetch does nothing", async () => {
    const root = await tempDir();
    const libri = await fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12`, root, checksums: sums(archive) });
    const manifest = await buildManifest(libri, "test-clean");
    assert.equal(manifest.length, 4);
    assert.deepEqual(await readFile(manifest[0]!.path), await readFile(join(LIBRISPEECH, "test-clean", "1089", "134686", "1089-134686-0000.flac")));
    assert.equal((await readFile(join(libri, "test-clean.manifest.jsonl"), "utf8")).trim().split("\n").length, 4);
    server.ranges.length = 0;
    await fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12`, root, checksums: sums(archive) });
    assert.equal(server.ranges.length, 0);
  });

  it("resumes a download that broke off, asking only for the missing bytes", async () => {
    const root = await tempDir();
    server.dropAfter.set("/resources/12/test-clean.tar.gz", Math.floor(archive.length / 3));
    await assert.rejects(
      fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12`, root, checksums: sums(archive) }),
      /broke off after \d+ bytes/,
    );
    const partial = (await stat(join(root, "archives", "test-clean.tar.gz.partial"))).size;
    server.ranges.length = 0;
    await fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12`, root, checksums: sums(archive) });
    assert.deepEqual(server.ranges, [`bytes=${partial}-`]);
  });

  it("rejects a corrupt archive by its checksum and extracts nothing", async () => {
    const root = await tempDir();
    const wrong = { md5: "0".repeat(32), sha256: sums(archive).sha256 };
    await assert.rejects(fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12`, root, checksums: wrong }), (err: unknown) => {
      assert.ok(err instanceof KitError);
      assert.match(err.message, /is corrupt: md5/);
      return true;
    });
    assert.deepEqual(await readdir(join(root, "archives")), [], "the damaged download is deleted");
    assert.ok(!(await readdir(root)).includes("LibriSpeech"));
  });

  it("refuses entries that would land outside the target, and truncated archives, leaving nothing behind", async () => {
    const dir = await tempDir();
    const cases: Array<[string, TarInput[], RegExp, boolean?]> = [
      [
        "dotdot",
        [
          { name: "LibriSpeech/ok.txt", data: new Uint8Array(3) },
          { name: "LibriSpeech/../../evil.txt", data: new Uint8Array(3) },
        ],
        /outside the target folder/,
      ],
      ["absolute", [{ name: "/tmp/evil.txt", data: new Uint8Array(3) }], /outside the target folder/],
      ["link", [{ name: "LibriSpeech/passwd", symlinkTo: "/etc/passwd" }], /link that points outside/],
      ["link-up", [{ name: "LibriSpeech/a/up", symlinkTo: "../../../secret" }], /link that points outside/],
      ["cut", await splitEntries("test-clean"), /ends in the middle of an entry|cannot extract/, true],
    ];
    for (const [name, entries, pattern, truncate] of cases) {
      const file = join(dir, `${name}.tar.gz`);
      await (await import("node:fs/promises")).writeFile(file, tarGz(entries, { truncate: truncate ?? false }));
      const dest = join(dir, `out-${name}`);
      await assert.rejects(extractTarGz(file, dest), pattern, name);
      assert.ok(!(await readdir(dir)).some((f) => f.startsWith(`out-${name}`)), `${name}: nothing left behind`);
    }
    assert.ok(!(await readdir(join(dir, ".."))).includes("evil.txt"));
  });

  it("checks every FLAC once at extraction: a damaged file in a checksum-valid archive is refused, and the manifest records the check", async () => {
    const entries = await splitEntries("test-clean");
    const flac = entries.find((e) => e.name.endsWith("1089-134686-0001.flac"))!;
    const damaged = Uint8Array.from(flac.data!);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
    const bad = tarGz(entries.map((e) => (e === flac ? { ...e, data: damaged } : e)));
    server.files.set("/resources/12/bad/test-clean.tar.gz", bad);
    const root = await tempDir();
    await assert.rejects(
      fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12/bad`, root, checksums: sums(bad) }),
      /holds a damaged FLAC file, 1089-134686-0001\.flac \(the frame at byte \d+ fails its CRC\)/,
    );
    assert.ok(!(await readdir(root)).includes("LibriSpeech"), "nothing of the split appears");
    const good = await tempDir();
    const libri = await fetchLibriSpeech("test-clean", { mirrorUrl: `${server.url}/resources/12`, root: good, checksums: sums(archive) });
    const lines = (await readFile(join(libri, "test-clean.manifest.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(lines.every((l) => l.checked === "metadata and frame CRCs"));
  });

  it("names an unknown split and an unreachable mirror", async () => {
    await assert.rejects(fetchLibriSpeech("train-other-9000", { root: await tempDir() }), /no checksums are known for LibriSpeech 'train-other-9000'/);
    await assert.rejects(
      fetchLibriSpeech("test-other", { root: await tempDir(), mirrorUrl: "http://127.0.0.1:9/x" }),
      /cannot reach http:\/\/127\.0\.0\.1:9\/x\/test-other\.tar\.gz/,
    );
  });
});
