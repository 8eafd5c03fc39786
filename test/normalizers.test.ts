/** Parity of the TypeScript normalizers with OpenAI's, on the committed reference fixture. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BasicTextNormalizer, EnglishTextNormalizer, toFraction } from "../src/eval/normalizers.js";
import { FIXTURES, TINY_EN_ASSETS } from "./support/env.js";

interface Case {
  input: string;
  english: string;
  basic: string;
  basic_remove_diacritics: string;
}
const fixture: { cases: Case[] } = JSON.parse(readFileSync(join(FIXTURES, "normalizer-cases.json"), "utf8"));

describe("Whisper text normalizers", () => {
  it("EnglishTextNormalizer matches OpenAI's on every fixture string (100 %)", async () => {
    const english = await EnglishTextNormalizer.load(TINY_EN_ASSETS);
    assert.ok(fixture.cases.length >= 300, `${fixture.cases.length} cases`);
    const failures = fixture.cases.filter((c) => english.normalize(c.input) !== c.english);
    assert.deepEqual(failures.map((c) => ({ input: c.input, want: c.english, got: english.normalize(c.input) })).slice(0, 10), []);
  });

  it("BasicTextNormalizer matches OpenAI's, with and without diacritics removal", () => {
    const basic = new BasicTextNormalizer();
    const stripping = new BasicTextNormalizer(true);
    for (const c of fixture.cases) {
      assert.equal(basic.normalize(c.input), c.basic, JSON.stringify(c.input));
      assert.equal(stripping.normalize(c.input), c.basic_remove_diacritics, JSON.stringify(c.input));
    }
  });

  it("parses numbers as Python's Fraction does", () => {
    assert.deepEqual(toFraction("1."), { num: 1n, den: 1n });
    assert.deepEqual(toFraction(".5"), { num: 1n, den: 2n });
    assert.deepEqual(toFraction("2.50"), { num: 5n, den: 2n });
    assert.equal(toFraction("1.2.3"), null);
    assert.equal(toFraction("."), null);
  });

  it("keeps numbers beyond 2^53 exact", async () => {
    const english = await EnglishTextNormalizer.load(TINY_EN_ASSETS);
    assert.equal(english.normalize("two decillion").trim(), "2000000000000000000000000000000000");
  });
});
