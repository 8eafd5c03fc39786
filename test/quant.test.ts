/**
 * The TypeScript quantizers against the libraries themselves (fixtures made by
 * tools/reference/make_quant_fixtures.py with torch, optimum-quanto, hqq and bitsandbytes), on a
 * slice of a real Whisper weight and a seeded tensor with an outlier: integer codes identical,
 * scales and zero points equal up to float rounding.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  dequantize,
  dequantizeAbsmax,
  doubleQuantizeAbsmax,
  packBnb4,
  quantizeLlmInt8Weight,
  quantizeBnb4,
  quantizeHqq,
  quantizeQuantoAffine,
  quantizeQuantoSymmetric,
  quantizeTorchInt8,
  quantoGroupSize,
  type Weight,
} from "../src/quant/schemes.js";
import { fromFloat8E4M3, toFloat8E4M3 } from "../src/quant/float32.js";
import { quantizeWeights, WeightQuantizeError } from "../src/recipes/weight-pool.js";
import { base64Float32, FIXTURES } from "./support/env.js";

const f32 = base64Float32;

// biome-ignore lint/suspicious/noExplicitAny: fixtures are JSON written by the Python reference scripts
type Fixture = Record<string, any>;
const load = (name: string): Fixture => JSON.parse(readFileSync(join(FIXTURES, "quant", `${name}.json`), "utf8"));

/** Count of differing codes, and the largest relative difference of a float array. */
function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}
function maxRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-30));
  return m;
}

for (const name of ["whisper_fc1", "random"]) {
  const fx = load(name);
  const w: Weight = { data: f32(fx.weight), rows: fx.shape[0], cols: fx.shape[1] };

  describe(`library parity on ${name} [${fx.shape}]`, () => {
    it("PyTorch quantize_dynamic: qint8 per tensor and per channel", () => {
      for (const granularity of ["per_tensor", "per_channel"] as const) {
        const ref = fx.torch_dynamic[granularity];
        const q = quantizeTorchInt8(w, granularity);
        assert.equal(mismatches(q.codes, ref.codes), 0, granularity);
        const scales = Array.isArray(ref.scale) ? ref.scale.map(Math.fround) : [...f32(ref.scale)]; // per tensor: q_scale() as a double
        assert.deepEqual([...q.scales], scales, granularity);
        assert.ok(ref.zero_point.every((z: number) => z === 0));
      }
    });

    it("optimum-quanto: int8 and float8 per channel, int4 and int2 group-wise", () => {
      for (const qtype of ["int8", "float8"] as const) {
        const ref = fx.quanto[qtype];
        const q = quantizeQuantoSymmetric(w, qtype);
        assert.equal(mismatches(q.codes, ref.codes), 0, qtype);
        assert.deepEqual([...q.scales], [...f32(ref.scale)], qtype);
      }
      for (const bits of [4, 2] as const) {
        const ref = fx.quanto[`int${bits}`];
        assert.equal(quantoGroupSize(w.cols), ref.group_size);
        const q = quantizeQuantoAffine(w, bits);
        assert.equal(mismatches(q.codes, ref.codes), 0, `int${bits}`);
        assert.deepEqual([...q.scales], [...f32(ref.scale)], `int${bits} scale`);
        assert.deepEqual([...q.zeros!], [...f32(ref.shift)], `int${bits} shift`);
      }
    });

    it("HQQ: 8, 4, 3, 2 and 1 bits, group 64, axis 1 and 0, after the solver", () => {
      for (const bits of [8, 4, 3, 2, 1] as const) {
        for (const axis of [1, 0] as const) {
          const ref = fx.hqq[`${bits}bit_axis${axis}`];
          const q = quantizeHqq(w, { bits, axis, roundZero: false }); // the fixture calls Quantizer.quantize(round_zero=False); entry-point-parity.test.ts checks the defaults
          const label = `${bits} bits, axis ${axis}`;
          assert.equal(mismatches(q.codes, ref.codes), 0, label);
          assert.ok(maxRelative(q.scales, f32(ref.scale)) < 1e-6, `${label} scale`);
          assert.ok(maxRelative(q.zeros!, f32(ref.zero)) < 1e-5, `${label} zero ${maxRelative(q.zeros!, f32(ref.zero))}`);
          if (axis === 1) {
            const deq = dequantize(q);
            const want = f32(ref.dequantized);
            const scale = want.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
            assert.ok(
              deq.every((v, i) => Math.abs(v - want[i]!) <= 1e-6 * scale),
              `${label} dequantized`,
            );
          }
        }
      }
    });

    it("bitsandbytes: double quantization of the absmax (nf4-dq)", () => {
      const ref = fx.bnb.nf4_double;
      const q = quantizeBnb4(w, "nf4");
      const dq = doubleQuantizeAbsmax(q.scales, ref.state2_blocksize);
      assert.deepEqual([...dq.code], [...f32(ref.state2_code)], "dynamic map");
      assert.equal(Math.fround(dq.offset), Math.fround(ref.offset[0]));
      assert.deepEqual([...dq.codes], ref.absmax_codes);
      assert.deepEqual([...dq.absmax2], [...f32(ref.state2_absmax)]);
      assert.deepEqual([...dequantizeAbsmax(dq, ref.state2_blocksize)], [...f32(ref.dequantized_absmax)]);
      assert.deepEqual([...packBnb4(q.codes)], ref.packed, "the 4-bit codes do not change");
    });

    it("bitsandbytes: LLM.int8 weights (per-row absmax of the fp16 weight)", () => {
      const ref = fx.bnb.llm_int8;
      const q = quantizeLlmInt8Weight(w);
      assert.equal(mismatches(q.codes, ref.weight_codes), 0);
      assert.deepEqual([...q.scales], [...f32(ref.weight_absmax)]);
    });

    it("bitsandbytes: NF4 and FP4 codes, packing and absmax", () => {
      for (const qt of ["nf4", "fp4"] as const) {
        const ref = fx.bnb[qt];
        const q = quantizeBnb4(w, qt);
        assert.deepEqual([...packBnb4(q.codes)], ref.packed, qt);
        assert.deepEqual([...q.scales], [...f32(ref.absmax)], `${qt} absmax`);
        assert.deepEqual([...q.codebook!], [...f32(ref.code)], `${qt} codebook`);
      }
    });
  });
}

describe("float8 e4m3fn", () => {
  it("round-trips every finite code and rounds half to even", () => {
    for (let b = 0; b < 256; b++) {
      const v = fromFloat8E4M3(b);
      if (Number.isNaN(v)) continue;
      assert.equal(toFloat8E4M3(v) & 0x7f, b & 0x7f, `code ${b}`);
    }
    assert.equal(fromFloat8E4M3(toFloat8E4M3(448)), 448);
    assert.equal(fromFloat8E4M3(toFloat8E4M3(1.0625)), 1); // halfway between 1 and 1.125: even mantissa
    assert.equal(fromFloat8E4M3(toFloat8E4M3(1.1875)), 1.25);
  });
});

describe("the weight pool", () => {
  it("quantizes on several threads to exactly the codes one thread computes, in input order, and names a refused weight", async () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (seed / 2 ** 31) * 2 - 1;
    };
    const weights = [
      [96, 64],
      [256, 64],
      [64, 128],
    ].map(([rows, cols]) => ({ data: Float32Array.from({ length: rows! * cols! }, random), rows: rows!, cols: cols! }));
    for (const recipe of ["hqq/4", "bnb/nf4", "quanto/w4"]) {
      const one = await quantizeWeights(recipe, {}, weights, { threads: 1 });
      const done: number[] = [];
      const many = await quantizeWeights(recipe, {}, weights, { threads: 2, minParallelElements: 0, onDone: (i) => done.push(i) });
      assert.deepEqual(many, one, `${recipe}: the same codes, scales and zeros`);
      assert.deepEqual(done.sort(), [0, 1, 2]);
    }
    await assert.rejects(quantizeWeights("hqq/4", { groupSize: 48 }, weights, { threads: 2, minParallelElements: 0 }), (err: unknown) => {
      assert.ok(err instanceof WeightQuantizeError);
      assert.match(err.message, /group size 48 does not divide/);
      return true;
    });
  });
});
