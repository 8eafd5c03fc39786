/** The real download code (@huggingface/hub + the kit's resume and verification) against a loopback hub. */
import assert from "node:assert/strict";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { fetchModel, resolveModelDir } from "../src/hub/fetch-model.js";
import { KitError } from "../src/util/errors.js";
import { HubMirror } from "./support/hub-mirror.js";
import { syntheticModel, tempDir } from "./support/env.js";

const REPO = "kit-tests/whisper-synthetic";

describe("model download from a hub mirror", () => {
  const mirror = new HubMirror();
  let source: string;
  let commit: string;
  let cache: string;

  before(async () => {
    source = await syntheticModel({ dModel: 32, heads: 2, layers: 1 });
    commit = await mirror.addRepoFromDir(REPO, source);
    await mirror.start();
  });
  after(() => mirror.stop());
  beforeEach(async () => {
    cache = await tempDir();
    mirror.log.length = 0;
    mirror.faults.ignoreRange = false;
  });

  const fetchIt = () => fetchModel(REPO, { hubUrl: mirror.url, cacheDir: cache });

  it("fetches, verifies and pins the files to the commit; a second fetch downloads nothing", async () => {
    const dir = await fetchIt();
    assert.equal(dir, join(cache, "kit-tests", "whisper-synthetic", commit));
    for (const f of ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "normalizer.json", "model.safetensors"]) {
      assert.deepEqual(await readFile(join(dir, f)), await readFile(join(source, f)), f);
    }
    assert.equal((await readFile(join(cache, "kit-tests", "whisper-synthetic", "refs", "main"), "utf8")).trim(), commit);
    assert.ok(!(await readdir(dir)).includes(".incomplete"));
    mirror.log.length = 0;
    assert.equal(await fetchIt(), dir);
    assert.equal(mirror.log.filter((r) => r.url.includes("/resolve/")).length, 0, "nothing downloaded twice");
  });

  it("takes the hub address from HF_ENDPOINT when no --hub-url is given", async () => {
    process.env.HF_ENDPOINT = mirror.url;
    try {
      const dir = await fetchModel(REPO, { cacheDir: cache });
      assert.ok((await stat(join(dir, "model.safetensors"))).size > 0);
    } finally {
      delete process.env.HF_ENDPOINT;
    }
  });

  it("resumes a download whose connection dropped halfway, and never exposes the partial file", async () => {
    const total = (await stat(join(source, "model.safetensors"))).size;
    const cut = Math.floor(total / 2);
    mirror.faults.dropAfter.set("model.safetensors", cut);
    await assert.rejects(fetchIt(), (err: unknown) => {
      assert.ok(err instanceof KitError, String(err));
      assert.match(err.message, /download of model\.safetensors broke off after \d+ of \d+ bytes/);
      assert.match(err.fix ?? "", /resumes/);
      return true;
    });
    const dir = join(cache, "kit-tests", "whisper-synthetic", commit);
    await assert.rejects(stat(join(dir, "model.safetensors")), "no file at the final path");
    const partial = (await stat(join(dir, ".incomplete", "model.safetensors"))).size;
    assert.ok(partial > 0 && partial < total);
    mirror.log.length = 0;
    await fetchIt();
    const ranges = mirror.log.filter((r) => r.url.endsWith("/model.safetensors") && r.range && r.range !== "bytes=0-0").map((r) => r.range);
    assert.deepEqual(ranges, [`bytes=${partial}-${total - 1}`], "the second run asks only for the missing bytes");
    assert.deepEqual(await readFile(join(dir, "model.safetensors")), await readFile(join(source, "model.safetensors")));
  });

  it("detects a corrupt download by its sha256, deletes it, and succeeds on the next run", async () => {
    mirror.faults.corruptOnce.add("model.safetensors");
    await assert.rejects(fetchIt(), /model\.safetensors is corrupt: sha256/);
    const dir = join(cache, "kit-tests", "whisper-synthetic", commit);
    await assert.rejects(stat(join(dir, "model.safetensors")));
    await assert.rejects(stat(join(dir, ".incomplete", "model.safetensors")), "the damaged partial is not kept");
    await fetchIt();
    assert.deepEqual(await readFile(join(dir, "model.safetensors")), await readFile(join(source, "model.safetensors")));
  });

  it("a small (non-LFS) file is checked against its git blob id", async () => {
    mirror.faults.corruptOnce.add("tokenizer.json");
    await assert.rejects(fetchIt(), /tokenizer\.json is corrupt: git blob/);
  });

  it("a server that ignores Range on resume cannot smuggle in a wrong file", async () => {
    const total = (await stat(join(source, "model.safetensors"))).size;
    mirror.faults.dropAfter.set("model.safetensors", Math.floor(total / 3));
    await assert.rejects(fetchIt(), /broke off/);
    mirror.faults.ignoreRange = true;
    await assert.rejects(fetchIt(), /model\.safetensors (has \d+ bytes|is corrupt)/);
    mirror.faults.ignoreRange = false;
    await fetchIt();
  });

  it("names an unknown model id, a malformed id and a repo without weights", async () => {
    await assert.rejects(fetchModel("kit-tests/no-such-model", { hubUrl: mirror.url, cacheDir: cache }), (err: unknown) => {
      assert.ok(err instanceof KitError);
      assert.match(err.message, /model 'kit-tests\/no-such-model' was not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404\)/);
      assert.equal(err.field, "--model");
      return true;
    });
    await assert.rejects(resolveModelDir("not a model id", { hubUrl: mirror.url, cacheDir: cache }), /neither a model folder nor a hub id/);
    const weightless = await syntheticModel({ dModel: 32, heads: 2, layers: 1 });
    await rm(join(weightless, "model.safetensors"));
    await mirror.addRepoFromDir("kit-tests/no-weights", weightless);
    await assert.rejects(fetchModel("kit-tests/no-weights", { hubUrl: mirror.url, cacheDir: cache }), /lacks model\.safetensors/);
  });

  it("serves a complete earlier fetch when the hub cannot be reached", async () => {
    const dir = await fetchIt();
    const offline = await fetchModel(REPO, { hubUrl: "http://127.0.0.1:9", cacheDir: cache });
    assert.equal(offline, dir);
    await assert.rejects(fetchModel(REPO, { hubUrl: "http://127.0.0.1:9", cacheDir: await tempDir() }), /could not be reached/);
  });

  it("a local folder is used as it is, and one without config.json is named", async () => {
    assert.equal(await resolveModelDir(source), source);
    const empty = await tempDir();
    await assert.rejects(resolveModelDir(empty), /has no config\.json/);
  });
});
