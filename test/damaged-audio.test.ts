/**
 * Damaged audio is caught, never transcribed: FLAC cut at 25, 50 and 99 % of its bytes, a flipped
 * byte in a frame, a wrong STREAMINFO MD5, a cut WAV; in `ptq transcribe`, and in an evaluation,
 * whose store keeps the utterances done before and whose message says how to resume.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { decodeAudio, encodeWav16, loadAudio, SAMPLE_RATE } from "../src/audio/decode.js";
import { checkFrames, readFlacLayout } from "../src/audio/flac-integrity.js";
import { Transcriber } from "../src/asr/transcriber.js";
import { ResultsStore } from "../src/eval/results-store.js";
import { runEvaluation } from "../src/eval/runner.js";
import { buildManifest } from "../src/hub/librispeech.js";
import { LIBRISPEECH, miniSplit, ROOT, syntheticModel, tempDir, TEST_CLEAN_FLAC } from "./support/env.js";

const run = promisify(execFile);

/** The damaged variants of a real FLAC file, each with the check that must catch it. */
async function damagedVariants(): Promise<Array<[string, Uint8Array, RegExp]>> {
  const good = await readFile(TEST_CLEAN_FLAC);
  const cut = (share: number) => good.subarray(0, Math.floor(good.length * share));
  const flipped = Buffer.from(good);
  flipped[Math.floor(good.length / 2)]! ^= 0x10;
  const md5 = Buffer.from(good);
  md5[4 + 4 + 18]! ^= 0xff; // STREAMINFO's MD5 starts 18 bytes into the block
  return [
    ["cut at 25 %", cut(0.25), /fails its CRC or is cut off/],
    ["cut at 50 %", cut(0.5), /fails its CRC or is cut off/],
    ["cut at 99 %", cut(0.99), /fails its CRC or is cut off/],
    ["a flipped byte in a frame", flipped, /the audio frame at byte \d+ .* fails its CRC/],
    ["a wrong STREAMINFO MD5", md5, /MD5 is [0-9a-f]{32}, STREAMINFO records [0-9a-f]{32}/],
  ];
}

describe("damaged audio", () => {
  it("every real FLAC fixture passes every check", async () => {
    for (const split of ["test-clean", "train-clean-5"]) {
      for (const u of await buildManifest(LIBRISPEECH, split)) {
        const bytes = await readFile(u.path);
        const layout = readFlacLayout(bytes)!;
        assert.equal(checkFrames(bytes, layout.firstFrame).damagedAt, null, u.id);
        assert.equal((await decodeAudio(bytes, u.path)).channels[0]!.length, layout.streamInfo.totalSamples, u.id);
      }
    }
  });

  it("FLAC cut, flipped or with a wrong MD5 is a KitError naming the file and what is wrong", async () => {
    for (const [what, bytes, pattern] of await damagedVariants()) {
      await assert.rejects(decodeAudio(bytes, "speech.flac"), (err: Error) => {
        assert.match(err.message, /^speech\.flac is a damaged FLAC file: /, what);
        assert.match(err.message, pattern, what);
        assert.match(err.message, /fix: replace the file/, what);
        return true;
      });
    }
  });

  it("a WAV whose data chunk runs past the end of the file", async () => {
    const wav = encodeWav16(
      Float32Array.from({ length: 1600 }, (_, i) => Math.sin(i / 10) / 4),
      SAMPLE_RATE,
    );
    await assert.rejects(
      decodeAudio(wav.subarray(0, 44 + 1000), "cut.wav"),
      /cut\.wav is a damaged WAV file: its data chunk records 3200 bytes, the file holds 1000 after it/,
    );
    assert.equal((await decodeAudio(wav, "whole.wav")).channels[0]!.length, 1600);
  });

  it("ptq transcribe refuses each of them with exit 1", async () => {
    const dir = await tempDir();
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 5 });
    for (const [what, bytes, pattern] of await damagedVariants()) {
      const file = join(dir, "damaged.flac");
      await writeFile(file, bytes);
      await assert.rejects(
        run(process.execPath, [join(ROOT, "build", "src", "cli.js"), "transcribe", "--model", model, "--threads", "1", file], {
          env: { ...process.env, PTQ_DATA_DIR: dir },
        }),
        (err: { code?: number; stderr?: string }) => {
          assert.equal(err.code, 1, what);
          assert.match(err.stderr ?? "", new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is a damaged FLAC file`), what);
          assert.match(err.stderr ?? "", pattern, what);
          return true;
        },
      );
    }
  });

  it("ptq eval stops at each of them with exit 1, keeping the utterances done before in its store", async () => {
    const dir = await tempDir();
    const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 5 });
    const { root, utterances } = await miniSplit(5);
    const victim = utterances[2]!;
    const results = join(dir, "results");
    const env = { ...process.env, PTQ_DATA_DIR: dir, PTQ_PROGRESS: "0", MAX_NEW_TOKENS: "4" };
    for (const [what, bytes, pattern] of await damagedVariants()) {
      await rm(victim.path, { force: true });
      await writeFile(victim.path, bytes);
      const args = [
        join(ROOT, "build", "src", "cli.js"),
        "eval",
        "--model",
        model,
        "--split",
        "mini",
        "--librispeech-dir",
        root,
        "--full",
        "--threads",
        "1",
        "--results",
        results,
      ];
      await assert.rejects(run(process.execPath, args, { env }), (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1, what);
        assert.match(err.stderr ?? "", new RegExp(`${victim.id}\\.flac is a damaged FLAC file`), what);
        assert.match(err.stderr ?? "", pattern, what);
        assert.match(err.stderr ?? "", /2 utterances of this run are in the store .* replace the file and run the same command again/, what);
        return true;
      });
      const store = new ResultsStore(results);
      const [key] = await store.runKeys();
      assert.deepEqual(
        [...(await store.finishedUtterances(key!)).keys()],
        utterances.slice(0, 2).map((u) => u.id),
        what,
      );
    }
  });

  describe("in an evaluation", () => {
    let transcriber: Transcriber;
    before(async () => {
      transcriber = await Transcriber.load(await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 5 }), { threads: 1, maxNewTokens: 4 });
    });

    it("stops at the damaged utterance, keeps those before it, says how to resume, and resumes once it is replaced", async () => {
      const { utterances } = await miniSplit(6);
      const victim = utterances[3]!;
      const original = await readFile(victim.path);
      await rm(victim.path); // a symlink into the fixtures: replace it by a damaged copy
      await writeFile(victim.path, original.subarray(0, Math.floor(original.length / 2)));
      const store = new ResultsStore(await tempDir());
      const base = { transcriber, modelName: "synthetic", recipe: { id: "fp32", options: {} }, split: "mini", utterances };
      await assert.rejects(runEvaluation({ ...base, store }), (err: Error) => {
        assert.match(err.message, new RegExp(`${victim.id}\\.flac is a damaged FLAC file`));
        assert.match(err.message, /3 utterances of this run are in the store .*replace the file and run the same command again: it resumes there/);
        return true;
      });
      const [key] = await store.runKeys();
      const kept = await store.finishedUtterances(key!);
      assert.deepEqual(
        [...kept.keys()],
        utterances.slice(0, 3).map((u) => u.id),
        "nothing of the damaged utterance, nothing lost before it",
      );

      await rm(victim.path);
      await copyFile(join(LIBRISPEECH, "train-clean-5", ...victim.id.split("-").slice(0, 2), `${victim.id}.flac`), victim.path);
      const decoded: string[] = [];
      const outcome = await runEvaluation({
        ...base,
        store,
        transformAudio: (audio, u) => {
          decoded.push(u.id);
          return audio;
        },
      });
      assert.equal(outcome.summary?.spec.utterances, 6);
      assert.deepEqual(
        decoded.slice(1),
        utterances.slice(3).map((u) => u.id),
        "only the rest is decoded (after the warm-up)",
      );
      assert.ok((await loadAudio(victim.path)).length > 0);
    });
  });
});
