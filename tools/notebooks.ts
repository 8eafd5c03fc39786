/**
 * The notebooks, made and run.
 *   node build/tools/notebooks.js convert            notebooks/src/*.md -> notebooks/*.ipynb
 *   node build/tools/notebooks.js run OUT_DIR [N..]  execute them headless (tslab kernel) into OUT_DIR
 * A chapter is written as Markdown with ```ts fences (one code cell each), so that it reads and
 * diffs as text; the .ipynb files are generated from it and committed. `run` stops at the first
 * notebook with a failing cell and names the notebook, the cell and the error.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { writeFileAtomic, repoRoot } from "../src/util/fs.js";

const NOTEBOOKS = join(repoRoot(), "notebooks");
const SOURCES = join(NOTEBOOKS, "src");

interface Cell {
  cell_type: "markdown" | "code";
  id: string;
  metadata: Record<string, unknown>;
  source: string[];
  outputs?: unknown[];
  execution_count?: number | null;
}

export function markdownToNotebook(text: string, stem: string): object {
  const cells: Cell[] = [];
  let buffer: string[] = [];
  let inCode = false;
  const flush = (type: "markdown" | "code") => {
    while (buffer.length && buffer[0]!.trim() === "") buffer.shift();
    while (buffer.length && buffer.at(-1)!.trim() === "") buffer.pop();
    if (buffer.length) {
      const source = buffer.map((l, i) => (i < buffer.length - 1 ? `${l}\n` : l));
      const id = `${stem}-${cells.length}`;
      cells.push(
        type === "code"
          ? { cell_type: "code", id, metadata: {}, source, outputs: [], execution_count: null }
          : { cell_type: "markdown", id, metadata: {}, source },
      );
    }
    buffer = [];
  };
  for (const line of text.split("\n")) {
    if (!inCode && line.startsWith("```ts")) {
      flush("markdown");
      inCode = true;
    } else if (inCode && line.startsWith("```")) {
      flush("code");
      inCode = false;
    } else buffer.push(line);
  }
  if (inCode) throw new Error(`${stem}: unclosed code fence`);
  flush("markdown");
  return {
    cells,
    metadata: {
      kernelspec: { name: "tslab", display_name: "TypeScript (tslab)", language: "typescript" },
      language_info: { name: "typescript", file_extension: ".ts" },
    },
    nbformat: 4,
    nbformat_minor: 5,
  };
}

async function convert(): Promise<void> {
  for (const file of readdirSync(SOURCES)
    .filter((f) => f.endsWith(".md"))
    .sort()) {
    const stem = basename(file, ".md");
    await writeFileAtomic(
      join(NOTEBOOKS, `${stem}.ipynb`),
      `${JSON.stringify(markdownToNotebook(readFileSync(join(SOURCES, file), "utf8"), stem), null, 1)}\n`,
    );
    console.log(`notebooks/${stem}.ipynb`);
  }
}

interface CellOutput {
  output_type: string;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}
interface ExecutedNotebook {
  cells: Array<Omit<Cell, "outputs"> & { outputs?: CellOutput[] }>;
}

/** The first failing cell of an executed notebook: 1-based index among all cells, and its error. */
/** The error's whole message from a stack trace: its first line and what follows up to the first frame (a KitError's file, field and fix). */
function errorMessage(lines: string[]): string {
  const start = lines.findIndex((l) => /^\w*(Error|Exception)\b/.test(l));
  if (start < 0) return lines.slice(0, 5).join(" | ");
  const end = lines.findIndex((l, i) => i > start && /^\s+at /.test(l));
  return lines.slice(start, end < 0 ? start + 6 : end).join("\n");
}

export function firstError(nb: ExecutedNotebook): { cell: number; firstLine: string; error: string } | null {
  for (const [i, cell] of nb.cells.entries()) {
    const err = cell.outputs?.find((o) => o.output_type === "error");
    // tslab reports an uncaught exception as a stack trace on stderr (and the cell as ok), not as an error output
    const trace = cell.outputs?.find(
      (o) =>
        o.output_type === "stream" &&
        (o as { name?: string }).name === "stderr" &&
        /^\s+at .*(evalmachine\.<anonymous>|file:|node:)/m.test(((o as { text?: string[] }).text ?? []).join("")),
    );
    if (trace) {
      const lines = ((trace as { text?: string[] }).text ?? []).join("").split("\n");
      return {
        cell: i + 1,
        firstLine: cell.source.join("").split("\n")[0]!.slice(0, 100),
        error: errorMessage(lines),
      };
    }
    if (err) {
      const detail = [err.ename, err.evalue].filter(Boolean).join(": ") || (err.traceback ?? []).join("\n").slice(0, 2000) || "(no message)";
      return { cell: i + 1, firstLine: cell.source.join("").split("\n")[0]!.slice(0, 100), error: detail };
    }
  }
  return null;
}

function run(outDir: string, only: string[]): number {
  mkdirSync(outDir, { recursive: true });
  const jupyterPath = join(repoRoot(), "data", "jupyter");
  if (!existsSync(join(jupyterPath, "kernels", "tslab", "kernel.json"))) {
    console.error(`no tslab kernel at ${jupyterPath}/kernels/tslab: run make kernel (make reproduce does)`);
    return 1;
  }
  const notebooks = readdirSync(NOTEBOOKS)
    .filter((f) => f.endsWith(".ipynb") && (only.length === 0 || only.some((o) => f.startsWith(o))))
    .sort();
  for (const nb of notebooks) {
    const started = Date.now();
    console.log(`[notebooks] ${nb} ...`);
    const result = spawnSync(
      "jupyter",
      [
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--allow-errors",
        "--ExecutePreprocessor.timeout=-1",
        "--ExecutePreprocessor.kernel_name=tslab",
        "--output-dir",
        outDir,
        join(NOTEBOOKS, nb),
      ],
      {
        stdio: ["ignore", "inherit", "pipe"],
        env: { ...process.env, JUPYTER_PATH: jupyterPath },
        encoding: "utf8",
      },
    );
    if (result.error) {
      console.error(
        `[notebooks] FAILED: could not start jupyter (${result.error.message}): run make system-deps (make reproduce does), which installs jupyter-nbconvert`,
      );
      return 1;
    }
    if (result.status !== 0) {
      console.error(result.stderr.split("\n").slice(-15).join("\n"));
      console.error(`[notebooks] FAILED: notebooks/${nb}: jupyter nbconvert exited ${result.status}`);
      return 1;
    }
    const executed = JSON.parse(readFileSync(join(outDir, nb), "utf8")) as ExecutedNotebook;
    const failure = firstError(executed);
    if (failure) {
      console.error(`[notebooks] FAILED: notebooks/${nb}, cell ${failure.cell} ("${failure.firstLine}"): ${failure.error}`);
      return 1;
    }
    console.log(`[notebooks] ${nb} done in ${((Date.now() - started) / 1000).toFixed(0)} s -> ${join(outDir, nb)}`);
  }
  return 0;
}

/** The study's tables (csv, md, tex) and figures (html, png, svg) that a full run of the notebooks writes. */
export const EXPECTED_TABLES = ["T1-configuration-grid", "T2-main-results", "T3-static-grid", "T4-model-size"];
export const EXPECTED_FIGURES = ["F1-wer-vs-size", "F2-wer-vs-bits", "F3-speed-memory", "F4-weight-error-histograms", "F5-wer-vs-snr", "F6-layer-sensitivity"];

function check(figuresDir: string): number {
  const wanted = [
    ...EXPECTED_TABLES.flatMap((t) => ["csv", "md", "tex"].map((e) => join(figuresDir, "tables", `${t}.${e}`))),
    ...EXPECTED_FIGURES.flatMap((f) => ["html", "png", "svg"].map((e) => join(figuresDir, `${f}.${e}`))),
  ];
  const missing = wanted.filter((f) => !existsSync(f) || statSync(f).size === 0);
  for (const f of missing) console.error(`[notebooks] missing or empty: ${f}`);
  console.log(`[notebooks] ${wanted.length - missing.length}/${wanted.length} tables and figures present and non-empty in ${figuresDir}`);
  return missing.length ? 1 : 0;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
const [command, ...args] = invokedDirectly ? process.argv.slice(2) : [];
if (!invokedDirectly) {
  // imported (by the tests): no command line to run
} else if (command === "convert") await convert();
else if (command === "check" && args[0]) process.exitCode = check(resolve(args[0]));
else if (command === "run" && args[0]) process.exitCode = run(resolve(args[0]), args.slice(1));
else {
  console.error("usage: node build/tools/notebooks.js convert | run OUT_DIR [NN ...] | check FIGURES_DIR");
  process.exitCode = 2;
}
