/**
 * Full real layers of whisper-tiny.en and whisper-base (imported by `make import-models`) against
 * each library as its users call it (tools/reference/dump_entry_point_codes.py: quantize_dynamic,
 * quanto's quantize + freeze, HQQLinear with BaseQuantizeConfig, Linear4bit / Linear8bitLt).
 * The fixture holds the sha256 of the library's codes and the library's code at each position the
 * kit differed when it was made; the kit's codes, patched there, must hash to the library's, so
 * any other difference fails. Every remaining difference must be explained (HQQ only: see below).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { SafetensorsFile } from "../src/model/safetensors.js";
import { dataDir } from "../src/util/fs.js";
import { FIXTURES } from "./support/env.js";
import { codesAsInt16, LIBRARY_CONFIGS } from "./support/library-configs.js";

interface Fixture {
  model: string;
  versions: Record<string, string>;
  layers: Array<{
    layer: string;
    shape: [number, number];
    configs: Record<
      string,
      { sha256: string; differences: Array<{ index: number; library: number }>; libraryZero?: Record<string, number>; libraryScale?: Record<string, number> }
    >;
  }>;
}

const GROUP = 64; // HQQ's group along the input features (axis 1)

for (const model of ["whisper-tiny.en", "whisper-base"]) {
  const dir = join(dataDir(), "models", model);
  const missing = existsSync(join(dir, "model.safetensors")) ? false : `${dir} is not imported: run make import-models (needs PyPI)`;
  const fixture: Fixture = JSON.parse(readFileSync(join(FIXTURES, "parity", `${model}.json`), "utf8"));

  describe(`${model}: full layers against the libraries' entry points (${Object.entries(fixture.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")})`, { skip: missing }, () => {
    let weights: SafetensorsFile;
    const weightOf = async (layer: string, [rows, cols]: [number, number]) => {
      weights ??= await SafetensorsFile.load(join(dir, "model.safetensors"));
      return { data: weights.float32(`${layer}.weight`), rows, cols };
    };

    for (const config of LIBRARY_CONFIGS) {
      it(`${config.recipe} = ${config.entryPoint}`, async () => {
        for (const layer of fixture.layers) {
          const ref = layer.configs[config.name]!;
          const w = await weightOf(layer.layer, layer.shape);
          const q = config.kit(w);
          const codes = Int32Array.from(q.codes);
          let differing = 0;
          for (const d of ref.differences) {
            if (codes[d.index] !== d.library) {
              differing++;
              if (config.name.startsWith("hqq")) explainHqqDifference(w.data, q, d, ref, `${layer.layer} ${config.name}`);
            }
            codes[d.index] = d.library;
          }
          const label = `${layer.layer} [${layer.shape}]`;
          assert.equal(
            createHash("sha256").update(codesAsInt16(codes)).digest("hex"),
            ref.sha256,
            `${label}: the kit's codes differ from the library's beyond the ${ref.differences.length} positions the fixture records`,
          );
          const identical = 1 - differing / codes.length;
          assert.ok(identical >= 0.999, `${label}: ${(100 * identical).toFixed(4)} % identical`);
          if (!config.name.startsWith("hqq"))
            assert.equal(differing, 0, `${label}: ${differing} codes differ; only HQQ's solver may differ at float-rounding ties`);
        }
      });
    }
  });
}

/**
 * HQQ's solver updates a group's zero as the mean of 64 terms that include the rounded codes. Its
 * float32 sums (torch's vectorized reduction, whose order depends on the CPU) and the kit's differ
 * in the last bits; when that moves a value sitting at x.5 across the rounding boundary in one
 * step, one code of the 64 changes and the group's zero moves by 1/64 from then on. So each
 * difference must lie in a group whose zero differs from the library's by a whole number of 64ths,
 * at a weight whose library pre-rounding value is within that shift of a half-integer.
 */
function explainHqqDifference(
  w: Float32Array,
  q: { zeros: Float32Array | null; scales: Float32Array },
  d: { index: number; library: number },
  ref: { libraryZero?: Record<string, number>; libraryScale?: Record<string, number> },
  label: string,
): void {
  const g = Math.floor(d.index / GROUP);
  const libZero = ref.libraryZero?.[g];
  const libStep = ref.libraryScale?.[g];
  assert.ok(libZero !== undefined && libStep !== undefined, `${label}: no library zero recorded for group ${g}`);
  const shift = q.zeros![g]! - libZero;
  const sixtyFourths = shift * GROUP;
  assert.ok(
    Math.abs(sixtyFourths) >= 0.99 && Math.abs(sixtyFourths - Math.round(sixtyFourths)) < 0.01,
    `${label} [${d.index}]: zero differs by ${shift}, not by whole 64ths`,
  );
  const preRound = w[d.index]! / libStep + libZero;
  const toHalf = Math.abs(preRound - Math.floor(preRound) - 0.5);
  assert.ok(toHalf <= Math.abs(shift) + 1e-4, `${label} [${d.index}]: library value ${preRound} is ${toHalf} from a tie, beyond the zero shift ${shift}`);
  assert.equal(Math.abs(q.scales[g]! - libStep), 0, `${label}: the step must be identical (it does not depend on the solver)`);
}
