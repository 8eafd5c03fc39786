/**
 * Transcription time in a real browser: headless Chromium (Debian's) loads the demo page, which
 * runs an exported folder's variant through transformers.js's browser build (onnxruntime-web, WASM)
 * on each given audio file; prints one line per file and the median.
 *
 *   node build/bench/browser.js <exported folder> <recipe> <threads> <audio root> <file>...
 *
 * Files are paths under <audio root> (served at /audio/). The first file also pays the model's load.
 */
import { relative, resolve } from "node:path";
import { launchChromium, openDemoPage, startDemoServer } from "../tools/demo/serve.js";

async function main(): Promise<void> {
  const [folder, recipe, threads, audioRoot, ...files] = process.argv.slice(2);
  if (!folder || !recipe || !threads || !audioRoot || files.length === 0) {
    console.error("usage: node build/bench/browser.js <exported folder> <recipe> <threads> <audio root> <file>...");
    process.exit(2);
  }
  const server = await startDemoServer(folder, { audioDir: audioRoot });
  const browser = await launchChromium();
  try {
    const page = await openDemoPage(browser, server);
    await page.select(recipe, Number(threads));
    const times: number[] = [];
    for (const file of files) {
      const url = `/audio/${relative(resolve(audioRoot), resolve(file))}`;
      const r = await page.transcribe(url);
      times.push(r.ms);
      console.log(
        `${file}\t${(r.ms / 1000).toFixed(2)} s\t${r.audioSeconds.toFixed(1)} s audio\tRTFx ${(r.audioSeconds / (r.ms / 1000)).toFixed(2)}\tload ${(r.loadMs / 1000).toFixed(1)} s\t${r.text}`,
      );
    }
    const sorted = [...times].sort((a, b) => a - b);
    console.log(`${recipe}, ${threads} thread(s): median ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s per utterance over ${files.length}`);
  } finally {
    await browser.close();
    await server.close();
  }
}

await main();
