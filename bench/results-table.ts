/**
 * A markdown table of the finished runs in a results store, with WER also computed without the
 * utterances that ran into the decoder's length limit (src/report/rows.ts counts them), since one such
 * greedy repetition loop moves a 100-utterance WER by several points. Parameter sizes come from the
 * run record, or from the recipe's manifest for records made before sizes were recorded.
 * Run: node build/bench/results-table.js [results dir, default data/results]
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelManifest } from "../src/model/build.js";
import { readJsonl, type RunSummary } from "../src/eval/results-store.js";
import { loadResultRows } from "../src/report/rows.js";
import { dataDir } from "../src/util/fs.js";

function manifests(): Map<string, ModelManifest> {
  const out = new Map<string, ModelManifest>();
  const root = join(dataDir(), "onnx");
  if (!existsSync(root)) return out;
  for (const key of readdirSync(root)) {
    for (const variant of readdirSync(join(root, key))) {
      const file = join(root, key, variant, "manifest.json");
      if (!existsSync(file)) continue;
      const m = JSON.parse(readFileSync(file, "utf8")) as ModelManifest;
      out.set(`${m.source.weightsSha256}|${m.recipe}`, m);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const store = process.argv[2] ?? join(dataDir(), "results");
  const known = manifests();
  const summaries = new Map((await readJsonl<RunSummary>(join(store, "results.jsonl"))).records.map((s) => [s.key, s]));
  console.log("| model | recipe | split | utterances | WER % | WER % w/o runaway (n) | CER % | parameter MB | compression % | RTFx | execution |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of await loadResultRows(store)) {
    const s = summaries.get(r.key)!;
    // records made before sizes were recorded: the recipe's manifest has them
    const m = known.get(`${s.spec.model.weightsSha256}|${s.spec.recipe.id}`);
    const parameterBytes = s.size?.parameterBytes ?? m?.parameterBytes;
    const baseline = s.size?.fp32ParameterBytes ?? m?.baselineParameterBytes ?? m?.parameterBytes;
    const execution = m
      ? [...new Set(m.parameters.map((p) => p.execution ?? "fp32"))].filter((e) => e !== "fp32" || m.recipe === "fp32").join(" + ")
      : r.execution;
    const cells = [
      r.model,
      r.recipe,
      r.split + (r.noise ? ` {"noise":"${r.noise}"}` : ""),
      r.utterances,
      r.wer.toFixed(2),
      `${r.werWithoutRunaways === null ? "-" : r.werWithoutRunaways.toFixed(2)} (${r.runaways})`,
      r.cer.toFixed(2),
      parameterBytes ? (parameterBytes / 1e6).toFixed(1) : "?",
      parameterBytes && baseline ? (100 * (1 - parameterBytes / baseline)).toFixed(1) : "?",
      r.rtfx === null ? "?" : r.rtfx.toFixed(1),
      execution,
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
}

await main();
