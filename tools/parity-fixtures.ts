/**
 * Turns the libraries' codes for full real layers (tools/reference/dump_entry_point_codes.py, under
 * data/ref/codes) into the small committed fixtures of test/fixtures/parity/ (developers only):
 *
 *   node build/tools/parity-fixtures.js data/ref/codes data/models test/fixtures/parity
 *
 * A full layer's codes are too large to commit, so each fixture keeps, per layer and library
 * configuration, the sha256 of the library's codes and the library's code, scale and zero at every
 * position where the kit differs from it today. The test re-quantizes the layer, patches those
 * positions with the library's values and checks the hash: any further difference fails it. It
 * prints the agreement per configuration.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "../src/model/safetensors.js";
import { codesAsInt16, float32Sha256, LIBRARY_CONFIGS } from "../test/support/library-configs.js";

interface Difference {
  index: number; // element of the weight, row-major
  library: number; // the library's code there
  kit: number; // the kit's code when the fixture was made (for the record)
}

export interface LayerFixture {
  layer: string;
  shape: [number, number];
  configs: Record<
    string,
    {
      sha256: string;
      differences: Difference[];
      scaleSha256?: string;
      scaleDifferences?: Array<{ index: number; library: number }>;
      groupSize?: number;
      libraryZero?: Record<string, number>;
      libraryScale?: Record<string, number>;
    }
  >;
}

function readInt16(file: string): Int16Array {
  const b = readFileSync(file);
  return new Int16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function readFloat32(file: string): Float32Array | null {
  if (!existsSync(file)) return null;
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function main(codesDir: string, modelsDir: string, outDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  for (const model of readdirSync(codesDir).sort()) {
    const weights = await SafetensorsFile.load(join(modelsDir, model, "model.safetensors"));
    const layers: LayerFixture[] = [];
    let versions: Record<string, string> = {};
    for (const layer of readdirSync(join(codesDir, model)).sort()) {
      const dir = join(codesDir, model, layer);
      const meta = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      versions = meta.versions;
      const [rows, cols] = meta.shape as [number, number];
      const w = { data: weights.float32(`${layer}.weight`), rows, cols };
      const fixture: LayerFixture = { layer, shape: [rows, cols], configs: {} };
      for (const config of LIBRARY_CONFIGS) {
        const lib = readInt16(join(dir, `${config.name}.codes`));
        const q = config.kit(w);
        const differences: Difference[] = [];
        for (let i = 0; i < lib.length; i++) if (lib[i] !== q.codes[i]) differences.push({ index: i, library: lib[i]!, kit: q.codes[i]! });
        const entry: LayerFixture["configs"][string] = { sha256: createHash("sha256").update(codesAsInt16(lib)).digest("hex"), differences };
        const zero = readFloat32(join(dir, `${config.name}.zero`));
        const scale = readFloat32(join(dir, `${config.name}.scale`));
        let scaleNote = "";
        if (config.dequantScales && scale) {
          // the library's absmax, and where the kit's differs (double quantization: bitsandbytes' CPU kernel misses the nearest 8-bit code there)
          entry.scaleSha256 = float32Sha256(scale);
          const kitScales = config.dequantScales(q);
          entry.scaleDifferences = [];
          for (let i = 0; i < scale.length; i++) if (kitScales[i] !== scale[i]) entry.scaleDifferences.push({ index: i, library: scale[i]! });
          scaleNote = `, absmax ${scale.length - entry.scaleDifferences.length}/${scale.length} identical`;
        }
        if (config.name.startsWith("hqq") && differences.length > 0 && zero && scale) {
          // The library's zero and step of each group holding a difference: the test explains each difference from them.
          entry.groupSize = 64;
          entry.libraryZero = {};
          entry.libraryScale = {};
          for (const d of differences) {
            const g = Math.floor(d.index / 64);
            entry.libraryZero[g] = zero[g]!;
            entry.libraryScale[g] = scale[g]!;
          }
        }
        fixture.configs[config.name] = entry;
        const pct = (100 * (lib.length - differences.length)) / lib.length;
        console.log(`${model} ${layer} ${config.name}: ${lib.length - differences.length}/${lib.length} identical (${pct.toFixed(4)} %)${scaleNote}`);
      }
      layers.push(fixture);
    }
    writeFileSync(
      join(outDir, `${model}.json`),
      `${JSON.stringify({ model, versions, made: "tools/reference/dump_entry_point_codes.py + tools/parity-fixtures.ts", layers })}\n`,
    );
  }
}

const [codesDir, modelsDir, outDir] = process.argv.slice(2);
if (!codesDir || !modelsDir || !outDir) {
  console.error("usage: node build/tools/parity-fixtures.js <codes dir> <models dir> <out dir>");
  process.exit(2);
}
await main(codesDir, modelsDir, outDir);
