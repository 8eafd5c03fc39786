/** The greedy loop against a scripted decoder: prompts, language detection, suppression, limits. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { greedyDecode, type DecoderStepper, type GenerationSettings } from "../src/asr/greedy.js";

const V = 20;
const SOT = 10,
  EOT = 11,
  NOTS = 12,
  EN = 13,
  DE = 14,
  TRANSCRIBE = 15;

const settings = (over: Partial<GenerationSettings> = {}): GenerationSettings => ({
  decoderStartTokenId: SOT,
  eosTokenId: EOT,
  noTimestampsTokenId: NOTS,
  suppressTokens: [3],
  beginSuppressTokens: [4, EOT],
  isMultilingual: false,
  langToId: {},
  taskToId: { transcribe: TRANSCRIBE },
  maxLength: 448,
  ...over,
});

/** A decoder whose next-token preferences depend only on the sequence so far (like a real model). */
function scripted(prefer: (sequence: number[]) => number[]): DecoderStepper<number[]> & { calls: Array<{ ids: number[]; cached: number }> } {
  const calls: Array<{ ids: number[]; cached: number }> = [];
  return {
    vocabSize: V,
    calls,
    async step(ids, state) {
      calls.push({ ids, cached: state?.length ?? 0 });
      const seq = [...(state ?? []), ...ids];
      const logits = new Float32Array(ids.length * V);
      for (let t = 0; t < ids.length; t++) {
        const ranking = prefer(seq.slice(0, seq.length - ids.length + t + 1));
        ranking.forEach((tok, rank) => {
          logits[t * V + tok] = 100 - rank;
        });
      }
      return { logits, state: seq };
    },
  };
}

describe("greedy decoding", () => {
  it("English-only prompt, begin suppression, per-step suppression, stop at <|endoftext|>", async () => {
    // wants EOT first (begin-suppressed), then 4 (begin-suppressed), so 5; then 3 (always suppressed) -> 6; then EOT
    const stepper = scripted((seq) => (seq.length === 2 ? [EOT, 4, 5] : seq.length === 3 ? [3, 6] : [EOT]));
    const result = await greedyDecode(stepper, settings());
    assert.deepEqual(result.prompt, [SOT, NOTS]);
    assert.deepEqual(result.tokens, [5, 6]);
    assert.equal(result.finished, true);
    assert.deepEqual(
      stepper.calls.map((c) => c.ids),
      [[SOT, NOTS], [5], [6]],
      "the cache is fed one token at a time",
    );
  });

  it("without the cache, feeds the whole sequence each step and gets the same tokens", async () => {
    const prefer = (seq: number[]) => (seq.length < 6 ? [seq.length % 3 === 0 ? 7 : 8] : [EOT]);
    const cached = await greedyDecode(scripted(prefer), settings());
    const uncachedStepper = scripted(prefer);
    const uncached = await greedyDecode(uncachedStepper, settings(), { useCache: false });
    assert.deepEqual(uncached.tokens, cached.tokens);
    assert.ok(uncachedStepper.calls.every((c) => c.cached === 0));
  });

  it("min and max new tokens both N: exactly N tokens, <|endoftext|> passed over until then (a fixed-length benchmark)", async () => {
    // wants EOT from the second step on; the runner-up is 7
    const stepper = scripted((seq) => (seq.length === 2 ? [5] : [EOT, 7]));
    const free = await greedyDecode(stepper, settings());
    assert.deepEqual(free.tokens, [5]);
    const forced = await greedyDecode(
      scripted((seq) => (seq.length === 2 ? [5] : [EOT, 7])),
      settings(),
      { minNewTokens: 4, maxNewTokens: 4 },
    );
    assert.deepEqual(forced.tokens, [5, 7, 7, 7]);
    assert.equal(forced.finished, false);
    const longer = await greedyDecode(
      scripted((seq) => (seq.length === 2 ? [5] : [EOT, 7])),
      settings(),
      { minNewTokens: 2 },
    );
    assert.deepEqual(longer.tokens, [5, 7], "after N tokens <|endoftext|> may end it again");
    assert.equal(longer.finished, true);
  });

  it("stops at max_length tokens in all, prompt included", async () => {
    const result = await greedyDecode(
      scripted(() => [9]),
      settings({ maxLength: 10 }),
    );
    assert.equal(result.prompt.length + result.tokens.length, 10);
    assert.equal(result.finished, false);
  });

  it("multilingual: --language auto picks the likeliest language token, as generate() does", async () => {
    const multi = settings({ isMultilingual: true, langToId: { "<|en|>": EN, "<|de|>": DE } });
    // after <|startoftranscript|>, token 9 is likelier than any language, and German beats English
    const stepper = scripted((seq) => (seq.length === 1 ? [9, DE, EN] : seq.length < 5 ? [EOT] : [EOT]));
    const result = await greedyDecode(stepper, multi, { language: "auto" });
    assert.equal(result.language, "<|de|>");
    assert.deepEqual(result.prompt, [SOT, DE, TRANSCRIBE, NOTS]);
    assert.deepEqual(stepper.calls[0]!.ids, [SOT]);
    assert.deepEqual(stepper.calls[1], { ids: [DE, TRANSCRIBE, NOTS], cached: 1 }, "the detection step's cache is reused");
  });

  it("multilingual: a forced language; unknown languages and English-only models refuse clearly", async () => {
    const multi = settings({ isMultilingual: true, langToId: { "<|en|>": EN } });
    const result = await greedyDecode(
      scripted(() => [EOT]),
      multi,
    );
    assert.deepEqual(result.prompt, [SOT, EN, TRANSCRIBE, NOTS]);
    await assert.rejects(
      greedyDecode(
        scripted(() => [EOT]),
        multi,
        { language: "xx" },
      ),
      /no language 'xx'/,
    );
    await assert.rejects(
      greedyDecode(
        scripted(() => [EOT]),
        settings(),
        { language: "de" },
      ),
      /English-only model/,
    );
  });
});
