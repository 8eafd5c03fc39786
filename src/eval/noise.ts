/**
 * Noisy conditions for probing robustness where test-other is missing: seeded white noise, and
 * babble (a sum of other utterances of the split), mixed in at a given signal-to-noise ratio.
 * Deterministic: the seed derives from the utterance id, so reruns and shards agree.
 */
import { createHash } from "node:crypto";
import { KitError } from "../util/errors.js";
import { seededNormal, seededRandom } from "../model/synthetic.js";

export type NoiseKind = "white" | "babble";

export interface NoiseSpec {
  kind: NoiseKind;
  snrDb: number;
}

export const BABBLE_TALKERS = 4;

/** "white:10" or "babble:5" (SNR in dB). */
export function parseNoise(text: string): NoiseSpec {
  const m = /^(white|babble):(-?\d+(?:\.\d+)?)$/.exec(text);
  if (!m) throw new KitError(`--noise must be <white|babble>:<snr dB>, got '${text}'`, { field: "--noise", fix: "e.g. --noise white:10 or --noise babble:5" });
  return { kind: m[1] as NoiseKind, snrDb: Number(m[2]) };
}

export function seedOf(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32LE(0);
}

export function power(x: Float32Array): number {
  let sum = 0;
  for (const v of x) sum += v * v;
  return x.length === 0 ? 0 : sum / x.length;
}

export function whiteNoise(length: number, seed: number): Float32Array {
  const normal = seededNormal(seed);
  return Float32Array.from({ length }, () => normal());
}

/** Other talkers, each looped to the length and normalized to unit power, summed. */
export function babble(length: number, talkers: Float32Array[]): Float32Array {
  const out = new Float32Array(length);
  for (const t of talkers) {
    const scale = 1 / Math.sqrt(power(t) || 1);
    for (let i = 0; i < length; i++) out[i]! += t[i % t.length]! * scale;
  }
  return out;
}

/** signal + g * noise with g chosen so that 10 log10(P_signal / P_scaled_noise) = snrDb. */
export function mixAtSnr(signal: Float32Array, noise: Float32Array, snrDb: number): Float32Array {
  const ps = power(signal);
  const pn = power(noise.subarray(0, signal.length));
  const gain = pn === 0 ? 0 : Math.sqrt(ps / (pn * 10 ** (snrDb / 10)));
  return Float32Array.from(signal, (v, i) => v + gain * noise[i]!);
}

/** Choose `count` other ids of the split for an utterance's babble, by its seed. */
export function babbleTalkers(id: string, ids: string[], count = BABBLE_TALKERS): string[] {
  const random = seededRandom(seedOf(`babble:${id}`));
  const others = ids.filter((x) => x !== id);
  const chosen: string[] = [];
  while (chosen.length < Math.min(count, others.length)) {
    const pick = others[Math.floor(random() * others.length)]!;
    if (!chosen.includes(pick)) chosen.push(pick);
  }
  return chosen;
}
