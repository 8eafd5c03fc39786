/**
 * The browser demo: a loopback server for an exported model folder, transformers.js's browser
 * build and onnxruntime-web's WASM files, with the headers WASM threads need (cross-origin
 * isolation). `make demo EXPORT=<folder>` (or node build/tools/demo/serve.js <folder> [port]).
 *
 *   /                       index.html (pick a file, transcribe it, see the time)
 *   /transformers/...       @huggingface/transformers/dist
 *   /ort/...                onnxruntime-web/dist (the asyncify build transformers.js loads)
 *   /models/<name>/...      the exported folder, under its own name
 *   /audio/...              optional: a folder of audio files (tests)
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, extname, join, normalize, resolve, sep } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { repoRoot } from "../../src/util/fs.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".onnx": "application/octet-stream",
  ".onnx_data": "application/octet-stream",
  ".flac": "audio/flac",
  ".wav": "audio/wav",
  ".txt": "text/plain; charset=utf-8",
};

export interface DemoServer {
  url: string;
  modelName: string;
  server: Server;
  close(): Promise<void>;
}

/** Serve `exportDir` (and `audioDir`, if given) on 127.0.0.1; port 0 picks a free one. */
export async function startDemoServer(exportDir: string, options: { port?: number; audioDir?: string } = {}): Promise<DemoServer> {
  const root = repoRoot();
  const modelName = basename(resolve(exportDir));
  const mounts: Array<[string, string]> = [
    ["/transformers/", join(root, "node_modules", "@huggingface", "transformers", "dist")],
    ["/ort/", join(root, "node_modules", "onnxruntime-web", "dist")],
    [`/models/${modelName}/`, resolve(exportDir)],
    ...(options.audioDir ? ([["/audio/", resolve(options.audioDir)]] as Array<[string, string]>) : []),
  ];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const file = path === "/" ? join(root, "tools", "demo", "index.html") : locate(mounts, path);
    const headers = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp", "Cache-Control": "no-store" };
    const info = file ? await stat(file).catch(() => null) : null;
    if (!file || !info?.isFile()) {
      res.writeHead(404, headers).end(`not found: ${path}`);
      return;
    }
    const ext = file.endsWith(".onnx_data") ? ".onnx_data" : extname(file);
    res.writeHead(200, { ...headers, "Content-Type": TYPES[ext] ?? "application/octet-stream", "Content-Length": String(info.size) });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(options.port ?? 0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    modelName,
    server,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

/** What the page's transcribeUrl returns. */
export interface BrowserTranscript {
  text: string;
  ms: number; // transcription time, model load excluded
  audioSeconds: number;
  loadMs: number; // the variant's load, on its first use
}

/** The demo page in a browser tab, driven as a user would (tests and bench/browser.js). */
export interface DemoPage {
  crossOriginIsolated(): Promise<boolean>;
  select(recipe: string, threads?: number): Promise<void>;
  transcribe(url: string): Promise<BrowserTranscript>;
  errors: string[]; // uncaught page errors
}

/** Debian's Chromium, headless (CHROMIUM_PATH to use another). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
}

type PageGlobals = {
  crossOriginIsolated: boolean;
  selectVariant(recipe: string): void;
  transcribeUrl(url: string): Promise<BrowserTranscript>;
  document: { getElementById(id: string): { value: string } };
};

export async function openDemoPage(browser: Browser, server: DemoServer): Promise<DemoPage> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.url}?model=${encodeURIComponent(server.modelName)}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
  return {
    errors,
    crossOriginIsolated: () => page.evaluate(() => (globalThis as unknown as PageGlobals).crossOriginIsolated),
    select: (recipe, threads = 1) =>
      page.evaluate(
        ([r, t]) => {
          const g = globalThis as unknown as PageGlobals;
          g.selectVariant(r!);
          g.document.getElementById("threads").value = t!;
        },
        [recipe, String(threads)],
      ),
    transcribe: (url) => page.evaluate((u) => (globalThis as unknown as PageGlobals).transcribeUrl(u), url),
  };
}

/** The file a URL path names under one of the mounts, never outside it. */
function locate(mounts: ReadonlyArray<[string, string]>, path: string): string | null {
  for (const [prefix, dir] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const file = normalize(join(dir, path.slice(prefix.length)));
    return file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

async function main(): Promise<void> {
  const [exportDir, port] = process.argv.slice(2);
  if (!exportDir) {
    console.error("usage: node build/tools/demo/serve.js <exported model folder> [port]");
    process.exit(2);
  }
  const s = await startDemoServer(exportDir, { port: port ? Number(port) : 8321 });
  console.log(`demo: open ${s.url}?model=${encodeURIComponent(s.modelName)} (Ctrl-C stops it)`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(repoRoot(), "build", "tools", "demo", "serve.js")) await main();
