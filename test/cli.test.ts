/** `ptq` end to end: a synthetic Whisper served by the loopback hub, fetched, built and run. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { COMMANDS } from "../src/cli/commands.js";
import { HubMirror } from "./support/hub-mirror.js";
import { LIBRISPEECH, ROOT, syntheticModel, tempDir, TEST_CLEAN_FLAC } from "./support/env.js";

const run = promisify(execFile);
const CLI = join(ROOT, "build", "src", "cli.js");

describe("ptq command line", () => {
  const mirror = new HubMirror();
  let env: NodeJS.ProcessEnv;

  before(async () => {
    await mirror.addRepoFromDir("kit-tests/whisper-synthetic", await syntheticModel({ dModel: 32, heads: 2, layers: 2, seed: 3 }));
    await mirror.start();
    env = { ...process.env, PTQ_DATA_DIR: await tempDir(), HF_ENDPOINT: mirror.url };
  });
  after(() => mirror.stop());

  const ptq = (...args: string[]) => run(process.execPath, [CLI, ...args], { env, maxBuffer: 1 << 24 });

  it("transcribe fetches the model from the hub, builds the graphs and prints one line per file", async () => {
    const second = join(LIBRISPEECH, "test-clean", "1089", "134691", "1089-134691-0000.flac");
    const { stdout } = await ptq("transcribe", "--model", "kit-tests/whisper-synthetic", "--threads", "1", TEST_CLEAN_FLAC, second);
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.ok(lines[0]!.startsWith(`${TEST_CLEAN_FLAC}\t`));
    assert.ok(lines[1]!.startsWith(`${second}\t`));
    assert.ok(lines[0]!.split("\t")[1]!.length > 0, "a (random) transcript is printed");
    // the same run again is served from the caches: identical output
    const again = await ptq("transcribe", "--model", "kit-tests/whisper-synthetic", "--threads", "1", TEST_CLEAN_FLAC, second);
    assert.equal(again.stdout, stdout);
    // and --no-cache decoding agrees token for token
    const uncached = await ptq("transcribe", "--model", "kit-tests/whisper-synthetic", "--threads", "1", "--no-cache", TEST_CLEAN_FLAC);
    assert.equal(uncached.stdout.trimEnd(), lines[0]);
  });

  it("fetch model prints the cached folder; build prints the graphs' size", async () => {
    const { stdout } = await ptq("fetch", "model", "kit-tests/whisper-synthetic");
    assert.match(stdout.trim(), /kit-tests\/whisper-synthetic\/[0-9a-f]{40}$/);
    const built = await ptq("build", "--model", stdout.trim());
    assert.match(built.stdout, /fp32\t\d+\.\d MB\t\d+\.\d+ s/);
  });

  it("recipes lists the grid; quantize writes a model and reports its size", async () => {
    const { stdout } = await ptq("recipes");
    assert.match(stdout, /^recipe\s+library\s+scheme/);
    for (const id of ["pytorch/dynamic-int8", "quanto/w4", "hqq/3", "bnb/nf4", "quanto/w8a8"])
      assert.match(stdout, new RegExp(`^${id.replace("/", "\\/")}\\s`, "m"));
    assert.match(stdout, /hqq\/3 .*dequantized at load/);
    const out = await ptq("quantize", "--model", "kit-tests/whisper-synthetic", "--recipe", "hqq/4", "--group-size", "32");
    const report = JSON.parse(out.stdout);
    assert.equal(report.recipe, "hqq/4");
    // in this toy model the tied 51864-row embedding dominates, so the quantized proj_out copy can outweigh the savings
    assert.ok(Number.isFinite(report.compression) && report.compression < 1);
    assert.ok(report.parameterMB > 0 && report.onDiskMB >= report.parameterMB);
    await assert.rejects(ptq("quantize", "--model", "kit-tests/whisper-synthetic", "--recipe", "quanto/w4", "--bits", "5"), /does not support 5 bits/);
    const transcribed = await ptq("transcribe", "--model", "kit-tests/whisper-synthetic", "--recipe", "bnb/nf4", "--json", TEST_CLEAN_FLAC);
    assert.ok(JSON.parse(transcribed.stdout).tokens.length > 0);
  });

  it("export writes a transformers.js folder, says how to load it, and refuses what a browser cannot run", async () => {
    assert.match((await ptq("recipes")).stdout, /pytorch\/dynamic-int8 .*MatMulInteger\s+yes\s+no\s+yes/);
    const out = join(await tempDir(), "exported");
    const { stdout } = await ptq("export", "--model", "kit-tests/whisper-synthetic", "--recipe", "bnb/nf4", "--out", out);
    const [report, hint] = stdout.trimEnd().split("\n");
    assert.deepEqual(JSON.parse(report!).dtype, "bnb4");
    assert.match(hint!, /pipeline\("automatic-speech-recognition", ".*exported", \{ dtype: "bnb4", subfolder: "onnx" \}\)/);
    await assert.rejects(
      ptq("export", "--model", "kit-tests/whisper-synthetic", "--recipe", "pytorch/dynamic-int8", "--out", out),
      (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr ?? "", /cannot run in a browser: its graph needs Cast to\/from double/);
        return true;
      },
    );
  });

  it("fails with exit code 1 and a message that names the problem", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["transcribe", "--model", "kit-tests/absent", TEST_CLEAN_FLAC], /model 'kit-tests\/absent' was not found/],
      [["transcribe", "--model", "kit-tests/whisper-synthetic", "/no/such/file.flac"], /cannot read audio file \/no\/such\/file\.flac/],
    ];
    for (const [args, pattern] of cases) {
      await assert.rejects(ptq(...args), (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr ?? "", pattern);
        return true;
      });
    }
  });
});

describe("ptq explains itself", () => {
  const ptq = (...args: string[]) => run(process.execPath, [CLI, ...args], { maxBuffer: 1 << 24 });
  const usageError = async (args: string[], pattern: RegExp) =>
    assert.rejects(ptq(...args), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 2, `${args.join(" ")}: exit ${err.code}`);
      const lines = (err.stderr ?? "").trimEnd().split("\n");
      assert.equal(lines.length, 1, `one line, got: ${err.stderr}`);
      assert.match(lines[0]!, pattern);
      return true;
    });

  it("ptq --help names every command", async () => {
    const { stdout } = await ptq("--help");
    for (const c of COMMANDS) assert.match(stdout, new RegExp(`\\b${c.name.split(" ").pop()}\\b`), c.name);
  });

  it("every command's --help exits 0, names each of its options and gives an example", async () => {
    for (const c of COMMANDS) {
      const { stdout } = await ptq(...c.name.split(" "), "--help");
      const text = stdout.replace(/\s+/g, " ");
      for (const o of c.options.filter((o) => !o.hidden)) assert.ok(stdout.includes(o.flags.split(" ")[0]!), `${c.name}: ${o.flags}`);
      for (const o of c.options.filter((o) => o.default !== undefined && typeof o.default !== "boolean"))
        assert.ok(text.includes(`default: ${o.defaultShown ?? JSON.stringify(o.default)}`), `${c.name}: default of ${o.flags}`);
      assert.match(stdout, /Example:\n {2}ptq /, c.name);
    }
  });

  it("an unknown option exits 2 with one line naming the option and the command, for every command", async () => {
    for (const c of COMMANDS) await usageError([...c.name.split(" "), "--group-sise", "100"], new RegExp(`^ptq ${c.name}: unknown option '--group-sise'`));
  });

  it("a missing value, a bad number, a missing required option and an unknown command exit 2", async () => {
    await usageError(["eval", "--model", "m", "--split"], /^ptq eval: option '--split <name>' argument missing/);
    await usageError(
      ["eval", "--model", "m", "--split", "s", "--limit", "ten"],
      /^ptq eval: option '--limit <n>' argument 'ten' is invalid\. expects a positive whole number/,
    );
    await usageError(["transcribe", TEST_CLEAN_FLAC], /^ptq transcribe: required option '--model <id\|dir>' not specified/);
    await usageError(["quantise"], /^ptq: unknown command 'quantise'/);
    await usageError(["fetch"], /^ptq fetch: which one\? model or librispeech/);
  });
});
