/**
 * Tables and figures to files. Tables: danfojs DataFrames written as CSV, and the same frame as
 * Markdown and LaTeX. Figures: standalone HTML (Plotly from node_modules, else its CDN), and PNG
 * and SVG exported by Plotly.toImage in headless Chromium driven by playwright-core. Every file is
 * written atomically.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import dfd from "danfojs-node";
import { KitError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { pairedDifferenceFigure, werVsBitsFigure, werVsSizeFigure, type Figure } from "./figures.js";
import { loadResultRows } from "./rows.js";
import { mainResultsTable, modelSizeTable, noiseFloorTable, staticGridTable, type Cell, type Table } from "./tables.js";

const require = createRequire(import.meta.url);

export function tableFrame(table: Table): dfd.DataFrame {
  // danfojs infers a dtype per column; empty cells stay empty strings rather than NaN
  return new dfd.DataFrame(
    table.rows.map((r) => r.map((c) => (c === null ? "" : c))),
    { columns: table.columns },
  );
}

const text = (c: Cell) => (c === null || c === undefined ? "" : String(c));

export function tableMarkdown(table: Table): string {
  const frame = tableFrame(table);
  const rows = frame.values as Cell[][];
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [`**${table.title}**`, "", `| ${frame.columns.map(esc).join(" | ")} |`, `|${frame.columns.map(() => "---").join("|")}|`];
  for (const r of rows) lines.push(`| ${r.map((c) => esc(text(c))).join(" | ")} |`);
  if (table.notes.length) lines.push("", ...table.notes.map((n) => `- ${n}`));
  return `${lines.join("\n")}\n`;
}

export function tableLatex(table: Table): string {
  const frame = tableFrame(table);
  const esc = (s: string) =>
    s
      .replace(/\\/g, "\\textbackslash{}")
      .replace(/([&%$#_{}])/g, "\\$1")
      .replace(/~/g, "\\textasciitilde{}")
      .replace(/\^/g, "\\textasciicircum{}");
  const lines = [
    "\\begin{table}[ht]",
    "\\centering",
    "\\scriptsize",
    `\\caption{${esc(table.title)}}`,
    `\\begin{tabular}{${frame.columns.map(() => "l").join("")}}`,
    "\\hline",
    `${frame.columns.map(esc).join(" & ")} \\\\`,
    "\\hline",
    ...(frame.values as Cell[][]).map((r) => `${r.map((c) => esc(text(c))).join(" & ")} \\\\`),
    "\\hline",
    "\\end{tabular}",
    ...table.notes.map((n) => `\\par\\footnotesize ${esc(n)}`),
    "\\end{table}",
  ];
  return `${lines.join("\n")}\n`;
}

/** figures/tables/<id>.csv, .md, .tex; returns the files written. */
export async function writeTable(table: Table, dir: string): Promise<string[]> {
  const frame = tableFrame(table);
  const files = [join(dir, `${table.id}.csv`), join(dir, `${table.id}.md`), join(dir, `${table.id}.tex`)];
  await writeFileAtomic(files[0]!, dfd.toCSV(frame, { sep: "," }) as string);
  await writeFileAtomic(files[1]!, tableMarkdown(table));
  await writeFileAtomic(files[2]!, tableLatex(table));
  return files;
}

const PLOTLY_CDN = "https://cdn.plot.ly/plotly-3.1.0.min.js";

export function plotlyScriptPath(): string {
  return require.resolve("plotly.js-dist/plotly.js");
}

/** A standalone page: Plotly from this checkout's node_modules when opened in place, else from its CDN. */
export function figureHtml(figure: Figure, plotlySrc: string): string {
  const spec = JSON.stringify({ data: figure.data, layout: { ...figure.layout, width: figure.width, height: figure.height } });
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${figure.title}</title>
<script src="${plotlySrc}"></script>
<script>if (typeof Plotly === "undefined") document.write('<script src="${PLOTLY_CDN}"><\\/script>');</script>
</head><body style="margin:0">
<div id="figure"></div>
<script>const spec = ${spec}; Plotly.newPlot("figure", spec.data, spec.layout, { responsive: true });</script>
</body></html>
`;
}

export interface FigureRenderer {
  render(figure: Figure, format: "png" | "svg"): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Headless Chromium with Plotly loaded once; each figure exported with Plotly.toImage. */
export async function openFigureRenderer(executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"): Promise<FigureRenderer> {
  const { chromium } = await import("playwright-core");
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined; // playwright gives each launch a fresh temporary profile of its own
  try {
    browser = await chromium.launch({
      executablePath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  } catch (err) {
    throw new KitError(`cannot start headless Chromium for PNG/SVG export: ${(err as Error).message.split("\n")[0]}`, {
      file: executablePath,
      fix: "apt-get install chromium (or set CHROMIUM_PATH); make reproduce installs it",
    });
  }
  const page = await browser.newPage();
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ content: await readFile(plotlyScriptPath(), "utf8") });
  return {
    async render(figure, format) {
      const url: string = await page.evaluate(
        async ({ spec, format: f, width, height }) => {
          const g = globalThis as unknown as { Plotly: { toImage(fig: unknown, opts: unknown): Promise<string> } };
          return g.Plotly.toImage(spec, { format: f, width, height, scale: f === "png" ? 2 : 1 });
        },
        { spec: { data: figure.data, layout: figure.layout }, format, width: figure.width, height: figure.height },
      );
      if (format === "png") return Buffer.from(url.slice(url.indexOf(",") + 1), "base64");
      const body = url.slice(url.indexOf(",") + 1);
      return Buffer.from(url.includes(";base64,") ? Buffer.from(body, "base64").toString("utf8") : decodeURIComponent(body), "utf8");
    },
    async close() {
      await browser.close();
    },
  };
}

/** figures/<id>.html, .png, .svg; returns the files written. */
export async function writeFigure(figure: Figure, dir: string, renderer: FigureRenderer, plotlySrc: string): Promise<string[]> {
  const files = [join(dir, `${figure.id}.html`), join(dir, `${figure.id}.png`), join(dir, `${figure.id}.svg`)];
  await writeFileAtomic(files[0]!, figureHtml(figure, plotlySrc));
  await writeFileAtomic(files[1]!, await renderer.render(figure, "png"));
  await writeFileAtomic(files[2]!, await renderer.render(figure, "svg"));
  return files;
}

/** A results store's tables and figures (HTML only: no browser needed, e.g. on a cluster node). */
export async function writeStoreReport(storeDir: string, outDir: string): Promise<string[]> {
  const rows = await loadResultRows(storeDir);
  const files: string[] = [];
  for (const t of [mainResultsTable(rows), staticGridTable(rows), modelSizeTable(rows), noiseFloorTable(rows)])
    files.push(...(await writeTable(t, join(outDir, "tables"))));
  const plotly = relative(outDir, plotlyScriptPath());
  for (const f of [werVsSizeFigure(rows, null), werVsBitsFigure(rows, null), pairedDifferenceFigure(rows, null)]) {
    const file = join(outDir, `${f.id}.html`);
    await writeFileAtomic(file, figureHtml(f, plotly));
    files.push(file);
  }
  return files;
}
