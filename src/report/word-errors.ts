/** The most frequent word errors of a run, from its per-utterance alignments in the results store. */
import { join } from "node:path";
import { readJsonl, type UtteranceResult } from "../eval/results-store.js";

export interface WordErrorCount {
  kind: string; // substitution, deletion, insertion
  reference: string;
  hypothesis: string;
  count: number;
}

export async function commonWordErrors(storeDir: string, key: string, top = 10): Promise<WordErrorCount[]> {
  const counts = new Map<string, WordErrorCount>();
  for (const u of (await readJsonl<UtteranceResult>(join(storeDir, "runs", `${key}.jsonl`))).records) {
    for (const [kind, ref, hyp] of u.wordErrors) {
      const k = `${kind}\u0000${ref ?? ""}\u0000${hyp ?? ""}`;
      const entry = counts.get(k) ?? { kind, reference: ref ?? "", hypothesis: hyp ?? "", count: 0 };
      entry.count++;
      counts.set(k, entry);
    }
  }
  return [...counts.values()].sort((a, b) => b.count - a.count || a.reference.localeCompare(b.reference)).slice(0, top);
}
