/**
 * The study's outputs on disk: tables under <figures>/tables, figures beside them, each stamped
 * when the run is a smoke run. Returns the files written, so that a notebook can show them.
 */
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { Figure } from "../report/figures.js";
import type { Table } from "../report/tables.js";
import { openFigureRenderer, plotlyScriptPath, tableMarkdown, writeFigure, writeTable } from "../report/write.js";
import { SMOKE_STAMP, type StudyConfig } from "./study.js";

export function stampOf(config: StudyConfig): string | null {
  return config.smoke ? SMOKE_STAMP : null;
}

function stampTable(config: StudyConfig, t: Table): Table {
  return config.smoke ? { ...t, title: `[${SMOKE_STAMP}] ${t.title}`, notes: [SMOKE_STAMP, ...t.notes] } : t;
}

/** A table as a notebook shows it: the columns this run left empty dropped (the files keep them), so it fits the page. */
export function withoutEmptyColumns(t: Table): Table {
  const keep = t.columns.map((_, i) => t.rows.some((r) => r[i] !== null && r[i] !== undefined && r[i] !== ""));
  return { ...t, columns: t.columns.filter((_, i) => keep[i]), rows: t.rows.map((r) => r.filter((_, i) => keep[i])) };
}

export async function writeTables(config: StudyConfig, tables: Table[]): Promise<{ files: string[]; markdown: string }> {
  const files: string[] = [];
  const parts: string[] = [];
  for (const t of tables.map((x) => stampTable(config, x))) {
    files.push(...(await writeTable(t, join(config.figuresDir, "tables"))));
    parts.push(tableMarkdown(withoutEmptyColumns(t)));
  }
  return { files, markdown: parts.join("\n") };
}

export interface WrittenFigure {
  id: string;
  files: string[];
  png: Uint8Array; // for display in a notebook
}

export async function writeFigures(config: StudyConfig, figures: Figure[]): Promise<WrittenFigure[]> {
  const renderer = await openFigureRenderer();
  const plotlySrc = relative(config.figuresDir, plotlyScriptPath());
  const out: WrittenFigure[] = [];
  try {
    for (const f of figures) {
      const stamped = config.smoke
        ? { ...f, layout: { ...f.layout, title: { ...(f.layout.title as object), text: `[SMOKE] ${(f.layout.title as { text: string }).text}` } } }
        : f;
      const files = await writeFigure(stamped, config.figuresDir, renderer, plotlySrc);
      out.push({ id: f.id, files, png: await readFile(files[1]!) });
    }
  } finally {
    await renderer.close();
  }
  return out;
}
