/**
 * The report layer, from a results store written by hand: rows (runaway loops counted, WER without
 * them), the study's tables (quoted values marked and placed), Markdown/LaTeX escaping, the Pareto
 * front, figure specifications (units on every axis), and the notebook tooling (Markdown chapters
 * to cells; a failing cell found and named).
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { RunSummary, UtteranceResult } from "../src/eval/results-store.js";
import { paretoFront, speedMemoryFigure, werVsBitsFigure, werVsSizeFigure, weightBits } from "../src/report/figures.js";
import { loadResultRows, RUNAWAY_TOKENS } from "../src/report/rows.js";
import { configurationTable, mainResultsTable, modelSizeTable, staticGridTable } from "../src/report/tables.js";
import { tableLatex, tableMarkdown } from "../src/report/write.js";
import { RECIPES } from "../src/recipes/catalog.js";
import { firstError, markdownToNotebook } from "../tools/notebooks.js";
import { tempDir } from "./support/env.js";

function utterance(id: string, errors: number, words: number, tokens: number): UtteranceResult {
  return {
    id,
    hypothesis: "",
    hypothesisNormalized: "",
    referenceNormalized: "",
    audioSeconds: 5,
    tokens,
    seconds: 1,
    wordErrors: [],
    words: { hits: words - errors, substitutions: errors, deletions: 0, insertions: 0, referenceLength: words },
    chars: { hits: 0, substitutions: 0, deletions: 0, insertions: 0, referenceLength: 1 },
  } as UtteranceResult;
}

async function store(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, "runs"), { recursive: true });
  const runs: Array<[string, string, string, number, UtteranceResult[], number]> = [
    ["k1", "openai/whisper-small", "fp32", 0, [utterance("a", 1, 10, 20), utterance("b", 0, 10, 20)], 967],
    ["k2", "openai/whisper-small", "hqq/4", 0.6, [utterance("a", 2, 10, 20), utterance("b", 30, 10, RUNAWAY_TOKENS + 8)], 300],
    ["k3", "openai/whisper-small", "quanto/w8a8", 0.7, [utterance("a", 1, 10, 20)], 260],
  ];
  const summaries: RunSummary[] = runs.map(([key, model, recipe, compression, rs, mb]) => {
    const errors = rs.reduce((a, r) => a + r.words.substitutions, 0);
    const words = rs.reduce((a, r) => a + r.words.referenceLength, 0);
    return {
      key,
      wer: errors / words,
      cer: 0.01,
      words: rs[0]!.words,
      chars: rs[0]!.chars,
      audioSeconds: 10,
      finishedAt: "2026-11-21",
      spec: {
        model: { name: model, weightsSha256: "x" },
        recipe: { id: recipe, options: recipe === "quanto/w8a8" ? { calibration: "test-clean calibration part: 262 utterances" } : {} },
        split: "test-clean",
        decoding: {},
        conditions: {},
        kitVersion: "t",
        utterances: rs.length,
        utteranceIdsSha256: "y",
      },
      size: {
        files: {},
        onDiskBytes: mb * 1e6 + 1e5,
        parameterBytes: mb * 1e6,
        fp32ParameterBytes: 967e6,
        compression,
        quantizeSeconds: 1,
        dequantizedAtLoad: recipe === "hqq/4",
      },
      timing: { rtf: 0.1, rtfx: 10, peakRssMB: 900 },
    } as RunSummary;
  });
  await writeFile(join(dir, "results.jsonl"), `${summaries.map((s) => JSON.stringify(s)).join("\n")}\n`);
  for (const [key, , , , rs] of runs) await writeFile(join(dir, "runs", `${key}.jsonl`), `${rs.map((r) => JSON.stringify(r)).join("\n")}\n`);
  return dir;
}

describe("report", () => {
  it("rows count runaway loops and give WER without them", async () => {
    const rows = await loadResultRows(await store());
    const hqq = rows.find((r) => r.recipe === "hqq/4")!;
    assert.equal(hqq.runaways, 1);
    assert.equal(hqq.wer, 160);
    assert.equal(hqq.werWithoutRunaways, 20);
    assert.equal(hqq.library, "hqq");
    assert.equal(hqq.execution, "MatMulNBits + dequantized at load");
    assert.equal(rows.find((r) => r.recipe === "quanto/w8a8")!.calibration, "test-clean calibration part: 262 utterances");
    assert.deepEqual(
      rows.map((r) => r.recipe),
      ["fp32", "quanto/w8a8", "hqq/4"],
      "catalog order",
    );
  });

  it("T2 puts the study's quoted values beside the kit's, and T1-T4 cover what they promise", async () => {
    const rows = await loadResultRows(await store());
    const t2 = mainResultsTable(rows);
    const quoted = t2.columns.indexOf("WER % test-clean quoted");
    const fp32 = t2.rows.find((r) => r[1] === "fp32")!;
    assert.equal(fp32[quoted], 3.48);
    assert.equal(t2.rows.find((r) => r[1] === "hqq/4")![quoted], null, "no quoted value where the paper gives none");
    assert.ok(t2.notes.some((n) => n.startsWith("quoted:")));
    assert.equal(configurationTable().rows.length, RECIPES.length);
    const t3 = staticGridTable(rows);
    assert.deepEqual(t3.rows.find((r) => r[4] === "quanto/w8a8")!.slice(2, 4), ["w8", "int8"]);
    const t4 = modelSizeTable(rows);
    assert.equal(t4.rows.find((r) => r[1] === "hqq/4")![2], 300);
  });

  it("Markdown and LaTeX escape what their syntax would eat", () => {
    const table = {
      id: "t",
      title: "a_b & c",
      columns: ["x|y", "50%"],
      rows: [
        ["p|q", 1.5],
        [null, "$"],
      ],
      notes: ["n_1"],
    };
    const md = tableMarkdown(table);
    assert.match(md, /\| x\\\|y \| 50% \|/);
    assert.match(md, /\| p\\\|q \| 1\.5 \|/);
    const tex = tableLatex(table);
    assert.match(tex, /\\caption\{a\\_b \\& c\}/);
    assert.match(tex, /x\|y & 50\\% \\\\/);
    assert.match(tex, / & \\\$ \\\\/);
  });

  it("the Pareto front keeps exactly the undominated points", () => {
    const pts = [
      { s: 100, w: 5 },
      { s: 50, w: 6 },
      { s: 60, w: 7 },
      { s: 30, w: 20 },
      { s: 100, w: 4 },
    ];
    assert.deepEqual(
      paretoFront(
        pts,
        (p) => p.s,
        (p) => p.w,
      ),
      [
        { s: 30, w: 20 },
        { s: 50, w: 6 },
        { s: 100, w: 4 },
      ],
    );
  });

  it("every figure axis names its unit, and bit widths parse", async () => {
    const rows = await loadResultRows(await store());
    for (const fig of [werVsSizeFigure(rows, null), werVsBitsFigure(rows, null), speedMemoryFigure(rows, "SMOKE")]) {
      const axes = Object.entries(fig.layout)
        .filter(([k]) => /^[xy]axis\d*$/.test(k))
        .map(([, v]) => (v as { title?: { text?: string } }).title?.text ?? "");
      assert.ok(axes.length >= 2, fig.id);
      for (const t of axes.filter(Boolean)) assert.match(t, /\(.+\)/, `${fig.id}: '${t}' has a unit`);
    }
    assert.equal(
      (speedMemoryFigure(rows, "SMOKE").layout.annotations as Array<{ text: string }>).some((a) => a.text === "SMOKE"),
      true,
    );
    assert.deepEqual(["8", "8 (float8 e4m3fn)", "4", "8 x float8", "32"].map(weightBits), [8, 8, 4, null, 32]);
  });

  it("F2 draws one panel per model: no line joins two models, each panel has its own fp32", async () => {
    const rows = await loadResultRows(await store());
    const other = rows.map((r) => ({ ...r, model: "whisper-other", wer: r.wer * 2 }));
    const fig = werVsBitsFigure([...rows, ...other], null);
    const panelOf = (d: Record<string, unknown>) => (d.xaxis as string) ?? "x";
    assert.deepEqual([...new Set(fig.data.map(panelOf))].sort(), ["x", "x2"]);
    for (const d of fig.data.filter((t) => t.mode === "lines+markers")) {
      const models = new Set((d.text as string[]).map((t) => t.split(" ")[0]));
      assert.equal(models.size, 1, `${d.name as string} joins ${[...models].join(", ")}`);
    }
    const baselines = fig.data.filter((t) => String(t.name).startsWith("fp32 baseline"));
    const fp32 = rows.find((r) => r.recipe === "fp32")!;
    const y = (panel: string) => baselines.filter((b) => panelOf(b) === panel && String(b.name).endsWith(fp32.split)).map((b) => (b.y as number[])[0]);
    assert.deepEqual([y("x"), y("x2")].sort(), [[fp32.wer], [fp32.wer * 2]].sort());
  });

  it("a Markdown chapter becomes markdown and code cells; a failing cell is found and named", () => {
    const nb = markdownToNotebook("# Title\n\ntext\n\n```ts\nconst a = 1;\na\n```\n\nafter\n", "00-x") as {
      cells: Array<{ cell_type: string; source: string[] }>;
    };
    assert.deepEqual(
      nb.cells.map((c) => c.cell_type),
      ["markdown", "code", "markdown"],
    );
    assert.deepEqual(nb.cells[1]!.source, ["const a = 1;\n", "a"]);
    const executed = {
      cells: [
        { cell_type: "code", id: "1", metadata: {}, source: ["ok()"], outputs: [{ output_type: "stream", name: "stderr", text: ["progress 1/2\n"] }] },
        {
          cell_type: "code",
          id: "2",
          metadata: {},
          source: ["broken()\n", "more"],
          outputs: [
            {
              output_type: "stream",
              name: "stderr",
              text: ["evalmachine.<anonymous>:3\n", "ReferenceError: broken is not defined\n", "    at evalmachine.<anonymous>:3:1\n"],
            },
          ],
        },
      ],
    };
    assert.deepEqual(firstError(executed as never), { cell: 2, firstLine: "broken()", error: "ReferenceError: broken is not defined" });
    assert.equal(firstError({ cells: [executed.cells[0]!] } as never), null);
    // an error thrown inside the kit (async, no evalmachine frame) is found too
    const kitError = {
      cells: [
        {
          cell_type: "code",
          id: "3",
          metadata: {},
          source: ["await run()"],
          outputs: [
            {
              output_type: "stream",
              name: "stderr",
              text: ["KitError: no split 'x' under y\n", "  file: y/x\n", "    at buildManifest (file:///repo/build/src/hub/librispeech.js:59:15)\n"],
            },
          ],
        },
      ],
    };
    assert.deepEqual(firstError(kitError as never), { cell: 1, firstLine: "await run()", error: "KitError: no split 'x' under y\n  file: y/x" });
  });
});
