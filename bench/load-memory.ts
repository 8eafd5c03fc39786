/**
 * Peak resident memory of loading a model's graphs in onnxruntime, per recipe (what "dequantized
 * at load" costs). Each recipe is measured in a fresh child process (VmHWM), after the quantized
 * model exists. Run: node build/bench/load-memory.js <model dir> <recipe>...
 */
import { execFileSync } from "node:child_process";
import { ensureQuantizedModel } from "../src/recipes/quantize-model.js";

async function main(): Promise<void> {
  const [model, ...recipes] = process.argv.slice(2);
  if (!model || recipes.length === 0) throw new Error("usage: node build/bench/load-memory.js <model dir> <recipe>...");
  console.log("| recipe | load peak MB |\n|---|---|");
  for (const recipe of recipes) {
    const { dir } = await ensureQuantizedModel(model, recipe);
    const script = `
      const ort = await import("onnxruntime-node");
      await ort.InferenceSession.create(${JSON.stringify(`${dir}/encoder.onnx`)});
      await ort.InferenceSession.create(${JSON.stringify(`${dir}/decoder.onnx`)});
      const hwm = /VmHWM:\\s+(\\d+)/.exec((await import("node:fs")).readFileSync("/proc/self/status", "utf8"))[1];
      console.log((Number(hwm) / 1024).toFixed(0));`;
    const peak = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", cwd: process.cwd() }).trim();
    console.log(`| ${recipe} | ${peak} |`);
  }
}

await main();
