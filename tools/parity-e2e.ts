/**
 * The end-to-end parity table (developers only): each recipe's transcripts from the kit (a results
 * store) against the original library's (tools/reference/run_e2e.sh), on the same utterances.
 *
 *   node build/tools/parity-e2e.js --library data/ref/e2e/whisper-tiny.en/test-other \
 *        --results data/ref/kit-results --model data/models/whisper-tiny.en --split test-other
 *
 * Per recipe: identical normalized transcripts, WER of both (Whisper's English normalizer on both
 * sides), the paired kit - library difference with a bootstrap interval, and for the recipes run
 * with --perturb the library's own spread (its transcripts against its perturbed runs).
 * Prints a markdown table; --json writes the rows too.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pairedWerDifference, werInterval, type UtteranceCounts } from "../src/eval/bootstrap.js";
import { EnglishTextNormalizer } from "../src/eval/normalizers.js";
import { readJsonl, type RunSummary, type UtteranceResult } from "../src/eval/results-store.js";
import { align, words } from "../src/eval/wer.js";
import { shortModelName } from "../src/report/rows.js";
import { LIBRARY_CONFIGS } from "../test/support/library-configs.js";

interface LibraryLine {
  id: string;
  text: string;
}

const fileOf = (recipe: string) => recipe.replace("/", "_");

function kitRuns(store: string, model: string, split: string): Map<string, Map<string, UtteranceResult>> {
  const runs = new Map<string, Map<string, UtteranceResult>>();
  const file = join(store, "results.jsonl");
  const summaries = existsSync(file)
    ? (readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l)) as RunSummary[])
    : [];
  for (const s of summaries) {
    if (shortModelName(s.spec.model.name) !== model || s.spec.split !== split || Object.keys(s.spec.conditions).length) continue;
    const records = readFileSync(join(store, "runs", `${s.key}.jsonl`), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as UtteranceResult);
    runs.set(s.spec.recipe.id, new Map(records.map((r) => [r.id, r])));
  }
  return runs;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { library: { type: "string" }, results: { type: "string" }, model: { type: "string" }, split: { type: "string" }, json: { type: "string" } },
  });
  if (!values.library || !values.results || !values.model || !values.split)
    throw new Error("usage: --library DIR --results STORE --model MODEL_DIR --split NAME [--json FILE]");
  const normalizer = await EnglishTextNormalizer.load(values.model);
  const kit = kitRuns(values.results, shortModelName(values.model), values.split);
  const readLibrary = async (file: string) => new Map((await readJsonl<LibraryLine>(file)).records.map((r) => [r.id, r]));
  const counts = (ref: string, hyp: string): UtteranceCounts => {
    const a = align(words(ref), words(hyp));
    return { errors: a.substitutions + a.deletions + a.insertions, words: a.referenceLength };
  };
  const rows: Array<Record<string, string | number>> = [];
  const recipes = readdirSync(values.library)
    .filter((f) => f.endsWith(".jsonl") && !f.includes(".perturb-"))
    .map((f) => f.replace(".jsonl", "").replace("_", "/"));
  for (const recipe of recipes) {
    const lib = await readLibrary(join(values.library, `${fileOf(recipe)}.jsonl`));
    const ours = kit.get(recipe);
    if (!ours) continue;
    const ids = [...ours.keys()].filter((id) => lib.has(id));
    if (ids.length === 0) continue;
    const libNorm = (m: Map<string, LibraryLine>, id: string) => normalizer.normalize(m.get(id)!.text);
    const same = ids.filter((id) => ours.get(id)!.hypothesisNormalized === libNorm(lib, id)).length;
    const kitCounts = ids.map((id) => counts(ours.get(id)!.referenceNormalized, ours.get(id)!.hypothesisNormalized));
    const libCounts = ids.map((id) => counts(ours.get(id)!.referenceNormalized, libNorm(lib, id)));
    const d = pairedWerDifference(kitCounts, libCounts, { seed: 7 });
    // The library's own spread: its runs with the input moved by 1e-6, against it and each other.
    const perturbedFiles = readdirSync(values.library).filter((f) => f.startsWith(`${fileOf(recipe)}.perturb-`) && f.endsWith(".jsonl"));
    const libraryRuns = [lib, ...(await Promise.all(perturbedFiles.map((f) => readLibrary(join(values.library!, f)))))];
    // All on the utterances every run has finished, so the figures compare like with like.
    const common = ids.filter((id) => libraryRuns.every((run) => run.has(id)));
    const fewest = common.length;
    const wers = libraryRuns.map((run) => werInterval(common.map((id) => counts(ours.get(id)!.referenceNormalized, libNorm(run, id)))).estimate);
    const identities: number[] = [];
    for (const [i, run] of libraryRuns.entries()) {
      for (const other of libraryRuns.slice(i + 1)) identities.push(common.filter((id) => libNorm(run, id) === libNorm(other, id)).length / common.length);
    }
    const kitWer = werInterval(kitCounts).estimate;
    const kitWerCommon = werInterval(common.map((id) => counts(ours.get(id)!.referenceNormalized, ours.get(id)!.hypothesisNormalized))).estimate;
    const sameCommon = common.filter((id) => ours.get(id)!.hypothesisNormalized === libNorm(lib, id)).length;
    const werInside = kitWerCommon >= Math.min(...wers) && kitWerCommon <= Math.max(...wers);
    const identityInside = sameCommon / Math.max(1, common.length) >= Math.min(...identities);
    const inside = perturbedFiles.length > 0 && werInside && identityInside;
    const spread = perturbedFiles.length
      ? `${perturbedFiles.length + 1} library runs${fewest < ids.length ? ` (perturbed on the first ${fewest})` : ""}: ${identities.map((x) => `${Math.round(100 * x)} %`).join(", ")} identical pairwise, WER ${Math.min(...wers).toFixed(2)}-${Math.max(...wers).toFixed(2)}; kit WER ${werInside ? "inside" : "outside"}, identity ${identityInside ? "inside" : "below"}`
      : "";
    const config = LIBRARY_CONFIGS.find((c) => c.recipe === recipe);
    rows.push({
      recipe,
      entryPoint: config?.entryPoint ?? "",
      utterances: ids.length,
      identical: same,
      identicalShare: same / ids.length,
      kitWer,
      libraryWer: werInterval(libCounts).estimate,
      difference: d.estimate,
      differenceLow: d.low,
      differenceHigh: d.high,
      p: d.p,
      librarySpread: spread,
      withinSpread: spread ? (inside ? "yes" : "no") : "",
    });
  }
  const fmt = (x: number) => x.toFixed(2);
  console.log("| recipe | utterances | identical transcripts | kit WER % | library WER % | kit - library, points (95 % CI) | library under 1e-6 input noise |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const spread = r.librarySpread || "-";
    console.log(
      `| ${r.recipe} | ${r.utterances} | ${r.identical} (${(100 * (r.identicalShare as number)).toFixed(0)} %) | ${fmt(r.kitWer as number)} | ${fmt(r.libraryWer as number)} | ${fmt(r.difference as number)} (${fmt(r.differenceLow as number)}, ${fmt(r.differenceHigh as number)}) | ${spread} |`,
    );
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 1)}\n`);
}

await main();
