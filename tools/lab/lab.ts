/**
 * Stepping through the notebooks in a browser. `make lab` installs JupyterLab into data/lab/venv
 * (tools/lab/requirements.txt), registers the tslab kernel for this checkout (data/jupyter) and runs
 *
 *   node build/tools/lab/lab.js serve            a server on localhost, notebooks/ open, tslab preselected
 *   node build/tools/lab/lab.js test <out dir>   chapters 00, 02 and 01 run through the UI in Chromium
 *
 * The test starts the smoke run's loopback hub and mirror (random weights), a server on a free
 * loopback port, opens each chapter, runs "Run All" from JupyterLab's own command registry, waits
 * for the kernel to go idle, checks the page (no error output, tables rendered, every figure an
 * image of non-zero size, the audio player in chapter 00) and saves a screenshot per chapter. The
 * server is stopped by its PID at the end, also on failure.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import { launchChromium } from "../demo/serve.js";
import { repoRoot } from "../../src/util/fs.js";
import { freePort } from "../../test/support/free-port.js";
import { startSmokeServices } from "../smoke.js";

const LAB_VENV = join(repoRoot(), "data", "lab", "venv");
const JUPYTER_PATH = join(repoRoot(), "data", "jupyter");

interface LabServer {
  url: string; // with its token
  process: ChildProcess;
  stop(): Promise<void>;
}

/** JupyterLab on 127.0.0.1:port, rooted at notebooks/, tslab the default kernel; resolves once it answers. */
async function startLab(port: number, env: Record<string, string>, settingsDir?: string): Promise<LabServer> {
  const token = randomBytes(24).toString("hex");
  const args = [
    "lab",
    "--no-browser",
    "--ServerApp.ip=127.0.0.1",
    `--ServerApp.port=${port}`,
    "--ServerApp.port_retries=0",
    `--ServerApp.root_dir=${join(repoRoot(), "notebooks")}`,
    `--IdentityProvider.token=${token}`,
    "--MappingKernelManager.default_kernel_name=tslab",
    "--LabApp.expose_app_in_browser=True", // window.jupyterapp: the test drives the UI's own commands
    "--LabApp.extension_manager=readonly", // nothing to install from inside the lab; works offline
    ...(process.getuid?.() === 0 ? ["--allow-root"] : []), // containers and CI run as root
    ...(settingsDir ? [`--LabApp.user_settings_dir=${settingsDir}`, `--LabApp.workspaces_dir=${join(settingsDir, "workspaces")}`] : []), // the test: a fresh workspace
  ];
  const child = spawn(join(LAB_VENV, "bin", "jupyter"), args, {
    env: { ...process.env, ...env, JUPYTER_PATH: [JUPYTER_PATH, process.env.JUPYTER_PATH].filter(Boolean).join(":") },
    stdio: ["ignore", "inherit", "inherit"],
    detached: true, // its own process group, so stop() ends the kernels too
  });
  const stop = async () => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise((done) => child.once("exit", done));
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
    }, 10_000);
    await exited;
    clearTimeout(timer);
  };
  const base = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jupyter lab exited with ${child.exitCode} before answering (is it installed? run make lab)`);
    try {
      const r = await fetch(`${base}/api/status?token=${token}`);
      if (r.ok) break;
    } catch {}
    if (Date.now() - started > 120_000) {
      await stop();
      throw new Error(`jupyter lab did not answer on ${base} within 120 s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url: `${base}/lab?token=${token}`, process: child, stop };
}

async function serve(): Promise<void> {
  const port = Number(process.env.LAB_PORT ?? "") || (await freePort());
  const lab = await startLab(port, {});
  console.log(`\nJupyterLab is serving notebooks/ with the TypeScript (tslab) kernel:\n\n  ${lab.url}\n\nCtrl-C stops it.`);
  const stop = () => void lab.stop().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  await new Promise((done) => lab.process.once("exit", done));
}

interface ChapterCheck {
  chapter: string;
  seconds: number;
  cells: number;
  tables: number;
  images: number;
  audio: number;
  screenshot: string;
}

/** Opens a chapter, runs all cells through the UI, waits for the kernel to be idle, checks the page. */
async function runChapter(page: Page, labUrl: string, chapter: string, outDir: string, timeoutMs: number): Promise<ChapterCheck> {
  const started = Date.now();
  const [base, query] = labUrl.split("?");
  const stem = chapter.replace(/\.ipynb$/, "");
  // a workspace of its own, reset: only this chapter open, so the current widget is this notebook
  await page.goto(`${base}/workspaces/${stem}/tree/${chapter}?reset&${query}`);
  // Page-side code as strings: it runs in the browser, against JupyterLab's application object.
  const notebook = "window.jupyterapp && window.jupyterapp.shell.currentWidget";
  const state = async () =>
    (await page.evaluate(`(() => { const w = ${notebook};
      if (!w || !w.context || !w.content || !w.content.widgets) return { path: null, status: null, ran: 0, code: 0, failed: false };
      const code = w.content.widgets.filter((c) => c.model.type === "code");
      return { path: w.context.path, status: w.sessionContext.session?.kernel?.status ?? null,
        ran: code.filter((c) => typeof c.model.executionCount === "number").length, code: code.length,
        failed: code.some((c) => c.model.outputs.toJSON().some((o) => o.output_type === "error")) }; })()`)) as {
      path: string | null;
      status: string | null;
      ran: number;
      code: number;
      failed: boolean;
    };
  const waitFor = async (what: string, done: (s: Awaited<ReturnType<typeof state>>) => boolean, limitMs: number) => {
    let lastLog = Date.now();
    for (;;) {
      const s = await state();
      if (done(s)) return s;
      if (Date.now() - started > limitMs) throw new Error(`${chapter}: ${what} not reached in ${limitMs / 1000} s (${JSON.stringify(s)})`);
      if (Date.now() - lastLog > 30_000) {
        console.log(`lab test: ${chapter}: waiting for ${what}: ${JSON.stringify(s)}`);
        lastLog = Date.now();
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  await waitFor("its kernel", (s) => s.path === chapter && s.status === "idle", 120_000);
  await page.evaluate(`window.jupyterapp.shell.collapseLeft()`); // the notebook at the page's width, as a reader would
  await page.evaluate(`window.jupyterapp.commands.execute("notebook:run-all-cells")`);
  // idle, and every code cell has run (an execution count), or one failed (run-all stops there)
  // run-all stops at a failing cell; tslab reports some failures only on stderr, without an error output
  let stalled = { ran: -1, since: Date.now() };
  const final = await waitFor(
    "every cell to run",
    (s) => {
      if (s.ran !== stalled.ran) stalled = { ran: s.ran, since: Date.now() };
      const stopped = s.status === "idle" && s.ran < s.code && Date.now() - stalled.since > 20_000;
      return s.path === chapter && s.status === "idle" && (s.failed || s.ran === s.code || stopped);
    },
    timeoutMs,
  );
  if (!final.failed && final.ran < final.code) {
    const stderr = (await page.evaluate(`(() => { const w = ${notebook};
      const code = w.content.widgets.filter((c) => c.model.type === "code");
      const last = code.filter((c) => typeof c.model.executionCount === "number").at(-1);
      return last ? last.model.outputs.toJSON().map((o) => o.text || "").join("").slice(-500) : ""; })()`)) as string;
    await page.screenshot({ path: join(outDir, `${chapter.replace(/\.ipynb$/, "")}-failed.png`) });
    throw new Error(`${chapter}: run-all stopped after ${final.ran} of ${final.code} code cells: ${stderr.trim() || "no message"}`);
  }
  const report = (await page.evaluate(`(() => {
    const w = ${notebook};
    const errors = [];
    w.content.widgets.forEach((cell, i) => {
      for (const o of cell.model.outputs ? cell.model.outputs.toJSON() : []) if (o.output_type === "error") errors.push("cell " + (i + 1) + ": " + o.ename + ": " + o.evalue);
    });
    const images = [...w.node.querySelectorAll(".jp-OutputArea-output img")];
    return {
      errors,
      cells: w.content.widgets.length,
      tables: w.node.querySelectorAll(".jp-OutputArea-output table").length,
      images: images.length,
      emptyImages: images.filter((img) => !(img.naturalWidth > 0 && img.naturalHeight > 0)).length,
      audio: w.node.querySelectorAll(".jp-OutputArea-output audio").length,
      overflowing: [...w.node.querySelectorAll(".jp-OutputArea-output table")].filter((t) => t.scrollWidth > t.closest(".jp-OutputArea-output").clientWidth + 1).length,
    };
  })()`)) as {
    errors: string[];
    cells: number;
    tables: number;
    images: number;
    emptyImages: number;
    audio: number;
    overflowing: number;
  };
  // the notebook scrolls inside the page: one screenshot per screenful, top to bottom (at most 12)
  const scroller = `(${notebook}.node.querySelector(".jp-WindowedPanel-outer") || ${notebook}.node)`;
  const height = (await page.evaluate(`${scroller}.scrollHeight`)) as number;
  const view = (await page.evaluate(`${scroller}.clientHeight`)) as number;
  const screenshot = join(outDir, `${stem}-1.png`);
  for (let k = 0; k < Math.min(12, Math.ceil(height / Math.max(1, view))); k++) {
    await page.evaluate(`${scroller}.scrollTop = ${k * view}`);
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(outDir, `${stem}-${k + 1}.png`) });
  }
  if (report.errors.length) throw new Error(`${chapter}: error output in ${report.errors.join("; ")}`);
  if (report.emptyImages) throw new Error(`${chapter}: ${report.emptyImages} of ${report.images} figures have no size`);
  return {
    chapter,
    seconds: (Date.now() - started) / 1000,
    cells: report.cells,
    tables: report.tables,
    images: report.images,
    audio: report.audio,
    screenshot,
  };
}

async function test(outDir: string): Promise<void> {
  outDir = resolve(outDir);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const started = Date.now();
  const services = await startSmokeServices(join(outDir, "smoke"));
  // autosave off: running cells in the test must not rewrite the committed notebooks
  const settings = join(outDir, "lab-settings");
  await mkdir(join(settings, "@jupyterlab", "docmanager-extension"), { recursive: true });
  await writeFile(join(settings, "@jupyterlab", "docmanager-extension", "plugin.jupyterlab-settings"), JSON.stringify({ autosave: false }));
  await mkdir(join(settings, "@jupyterlab", "apputils-extension"), { recursive: true });
  await writeFile(join(settings, "@jupyterlab", "apputils-extension", "notification.jupyterlab-settings"), JSON.stringify({ fetchNews: "false" }));
  const figures = join(outDir, "figures");
  let lab: LabServer | undefined;
  const browser = await launchChromium();
  try {
    lab = await startLab(await freePort(), { ...services.env, FIGURES_DIR: figures }, settings);
    console.log(`lab test: server answered after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const checks: ChapterCheck[] = [];
    const chapters = (process.env.LAB_TEST_CHAPTERS ?? "00-setup-and-data,02-quantization-primer,01-baseline").split(",").map((c) => `${c}.ipynb`);
    for (const chapter of chapters) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } }); // one page per chapter: nothing carried over
      const check = await runChapter(page, lab.url, chapter, outDir, 600_000).catch(async (e: unknown) => {
        await page.screenshot({ path: join(outDir, `${chapter.replace(/\.ipynb$/, "")}-failed.png`) }).catch(() => undefined);
        throw e;
      });
      await page.close();
      checks.push(check);
      console.log(
        `lab test: ${chapter}: ${check.cells} cells ran in ${check.seconds.toFixed(1)} s; ${check.tables} tables, ${check.images} figures, ${check.audio} audio players; ${check.screenshot}`,
      );
    }
    const need = (ok: boolean, what: string) => {
      if (!ok) throw new Error(`lab test: ${what}`);
    };
    const of = (stem: string) => checks.find((c) => c.chapter.startsWith(stem));
    need(!of("00") || of("00")!.audio >= 1, "chapter 00 shows no audio player");
    need(!of("02") || (of("02")!.images >= 1 && of("02")!.tables >= 1), "chapter 02 shows no figure or no table");
    need(!of("01") || of("01")!.tables >= 1, "chapter 01 shows no table");
    console.log(`lab test: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    await lab?.stop();
    await services.stop();
  }
}

const [command, arg] = process.argv.slice(2);
if (command === "serve") await serve();
else if (command === "test" && arg) await test(arg);
else {
  console.error("usage: node build/tools/lab/lab.js serve | test <out dir>");
  process.exit(2);
}
