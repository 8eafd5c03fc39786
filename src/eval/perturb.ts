/**
 * The numerical noise floor of a recipe: the input features multiplied by (1 + size * N(0, 1)),
 * seeded per utterance, so a run can be repeated at float-rounding scale (size 1e-6). Dynamic
 * activation quantization turns such noise into different transcripts; the spread over a few
 * seeds is the resolution at which recipes can be ranked.
 */
import { seededNormal } from "../model/synthetic.js";
import { seedOf } from "./noise.js";

export interface Perturbation {
  size: number; // relative, e.g. 1e-6; 0 leaves the features exactly as they are
  seed: number;
}

/** A copy of the log-mel features with each value moved by its own seeded relative amount. */
export function perturbFeatures(mel: Float32Array, p: Perturbation, utteranceId: string): Float32Array {
  if (p.size === 0) return mel;
  const normal = seededNormal(seedOf(`perturb:${p.seed}:${utteranceId}`));
  const out = new Float32Array(mel.length);
  for (let i = 0; i < mel.length; i++) out[i] = mel[i]! * (1 + p.size * normal());
  return out;
}

/** A relative size ("1e-6") as `--perturb` takes it, with its seed. */
export function parsePerturbation(size: string, seed = 0): Perturbation {
  const n = Number(size);
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new Error(`expects a relative size from 0 to below 1 (e.g. 1e-6), got '${size}'`);
  return { size: n, seed };
}

/** "1e-6:3" (size:seed; the seed defaults to 0), as grid files and PERTURB take it. */
export function parsePerturbationSpec(spec: string): Perturbation {
  const [size = "", seed = "0"] = spec.split(":");
  if (!/^\d+$/.test(seed)) throw new Error(`expects size:seed with a whole-number seed (e.g. 1e-6:1), got '${spec}'`);
  return parsePerturbation(size, Number(seed));
}
