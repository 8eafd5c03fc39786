/**
 * The utterance bootstrap: a closed form it must approach, coverage on simulated data with a known
 * WER, determinism for a seed, and the paired difference finding a planted effect but not noise.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { holm, pairedWerDifference, seededRandom, werInterval, type UtteranceCounts } from "../src/eval/bootstrap.js";

/** n one-word utterances, each wrong with probability p. */
function oneWordUtterances(n: number, p: number, random: () => number): UtteranceCounts[] {
  return Array.from({ length: n }, () => ({ errors: random() < p ? 1 : 0, words: 1 }));
}

describe("WER bootstrap over utterances", () => {
  it("one word per utterance: the interval is the binomial one, p +- 1.96 sqrt(p(1-p)/n)", () => {
    const u = oneWordUtterances(2000, 0.1, seededRandom(3));
    const r = werInterval(u, { resamples: 4000, seed: 5 });
    const p = r.estimate / 100;
    const half = 196 * Math.sqrt((p * (1 - p)) / u.length);
    assert.ok(Math.abs(r.high - r.estimate - half) < 0.1 * half, `upper half-width ${r.high - r.estimate} against ${half}`);
    assert.ok(Math.abs(r.estimate - r.low - half) < 0.1 * half, `lower half-width ${r.estimate - r.low} against ${half}`);
  });

  it("covers the true WER about 95 % of the time", () => {
    const random = seededRandom(11);
    const truth = 8; // percent: each word wrong with probability 0.08, utterances of 5-30 words
    let covered = 0;
    const trials = 300;
    for (let t = 0; t < trials; t++) {
      const u = Array.from({ length: 150 }, () => {
        const n = 5 + Math.floor(random() * 26);
        let e = 0;
        for (let w = 0; w < n; w++) if (random() < truth / 100) e++;
        return { errors: e, words: n };
      });
      const r = werInterval(u, { resamples: 400, seed: t });
      if (r.low <= truth && truth <= r.high) covered++;
    }
    const share = covered / trials;
    assert.ok(share > 0.9 && share < 0.99, `coverage ${share}`);
  });

  it("gives identical output for an identical seed", () => {
    const u = oneWordUtterances(300, 0.2, seededRandom(1));
    assert.deepEqual(werInterval(u, { seed: 9 }), werInterval(u, { seed: 9 }));
    assert.notDeepEqual(werInterval(u, { seed: 9 }), werInterval(u, { seed: 10 }));
  });
});

describe("paired WER difference", () => {
  const random = seededRandom(21);
  const base = (n: number) =>
    Array.from({ length: n }, () => {
      const words = 10 + Math.floor(random() * 20);
      return { errors: Math.floor(random() * 3), words };
    });

  it("finds a planted difference: 10 % of utterances made worse by two errors", () => {
    const a = base(400);
    const b = a.map((u, i) => (i % 10 === 0 ? { ...u, errors: u.errors + 2 } : u));
    const d = pairedWerDifference(b, a, { seed: 3 });
    assert.ok(d.low > 0 && d.p < 0.01, JSON.stringify(d));
  });

  it("flags about 5 % of pairs drawn from the same error distribution at the 5 % level", () => {
    let flagged = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const a = base(120);
      const b = a.map((u) => ({ words: u.words, errors: Math.floor(random() * 3) }));
      const c = a.map((u) => ({ words: u.words, errors: Math.floor(random() * 3) }));
      if (pairedWerDifference(b, c, { seed: t, resamples: 500 }).p < 0.05) flagged++;
    }
    const share = flagged / trials;
    assert.ok(share > 0.01 && share < 0.1, `false positives ${share}`);
  });

  it("is zero with p = 1 for identical runs, and refuses different references", () => {
    const a = base(50);
    const d = pairedWerDifference(a, a);
    assert.equal(d.estimate, 0);
    assert.equal(d.p, 1);
    assert.throws(
      () =>
        pairedWerDifference(
          a,
          a.map((u) => ({ ...u, words: u.words + 1 })),
        ),
      /not over the same references/,
    );
  });
});

describe("Holm's correction", () => {
  it("matches the textbook example (Holm 1979 as in Wikipedia: 0.01, 0.04, 0.03, 0.005)", () => {
    // sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    const adjusted = holm([0.01, 0.04, 0.03, 0.005]);
    const want = [0.03, 0.06, 0.06, 0.02];
    for (const [i, p] of adjusted.entries()) assert.ok(Math.abs(p - want[i]!) < 1e-12, `${i}: ${p}`);
    assert.deepEqual(holm([0.5, 0.9]), [1, 1]);
  });
});

describe("speaker-level bootstrap", () => {
  it("is wider than the utterance bootstrap when a speaker's utterances share their errors", () => {
    const random = seededRandom(4);
    const u: UtteranceCounts[] = [];
    const speakers: string[] = [];
    for (let s = 0; s < 10; s++) {
      const rate = random() * 0.3; // each speaker has an error rate of its own
      for (let k = 0; k < 20; k++) {
        const words = 15;
        let errors = 0;
        for (let w = 0; w < words; w++) if (random() < rate) errors++;
        u.push({ errors, words });
        speakers.push(`s${s}`);
      }
    }
    const plain = werInterval(u, { seed: 2 });
    const blocked = werInterval(u, { seed: 2, blocks: speakers });
    assert.equal(plain.estimate, blocked.estimate);
    assert.ok(blocked.high - blocked.low > 1.5 * (plain.high - plain.low), `${JSON.stringify(plain)} ${JSON.stringify(blocked)}`);
  });
});
