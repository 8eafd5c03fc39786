import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { WhisperTokenizer } from "../src/asr/tokenizer.js";
import { FIXTURES, TINY_EN_ASSETS } from "./support/env.js";

interface Case {
  ids: number[];
  text: string;
  text_with_special?: string;
  text_cleaned: string;
}
const fixture: { cases: Case[] } = JSON.parse(readFileSync(join(FIXTURES, "tokenizer.json"), "utf8"));

describe("Whisper tokenizer (decode)", () => {
  it("decodes reference token sequences to Hugging Face's text, special tokens stripped", async () => {
    const tokenizer = await WhisperTokenizer.load(TINY_EN_ASSETS);
    assert.ok(fixture.cases.length >= 8);
    for (const c of fixture.cases) {
      assert.equal(tokenizer.decode(c.ids, { cleanUpSpaces: false }), c.text);
      assert.equal(tokenizer.decode(c.ids, { cleanUpSpaces: true }), c.text_cleaned);
      if (c.text_with_special) assert.equal(tokenizer.decode(c.ids, { skipSpecial: false, cleanUpSpaces: false }), c.text_with_special);
    }
  });

  it("follows tokenizer_config.json's clean_up_tokenization_spaces as transformers 4.x did", async () => {
    const tokenizer = await WhisperTokenizer.load(TINY_EN_ASSETS);
    assert.equal(tokenizer.cleanUpSpaces, true);
    const withSpaces = fixture.cases.find((c) => c.text !== c.text_cleaned)!;
    assert.equal(tokenizer.decode(withSpaces.ids), withSpaces.text_cleaned);
  });

  it("looks up special tokens and names a missing one", async () => {
    const tokenizer = await WhisperTokenizer.load(TINY_EN_ASSETS);
    assert.equal(tokenizer.id("<|startoftranscript|>"), 50257);
    assert.equal(tokenizer.id("<|notimestamps|>"), 50362);
    assert.throws(() => tokenizer.id("<|xx-not-a-token|>"), /no token <\|xx-not-a-token\|>/);
  });
});
