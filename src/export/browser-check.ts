/**
 * What a browser can run. transformers.js's browser build runs onnxruntime-web's "asyncify" WASM
 * build, a reduced one: no float64/int16/uint16 kernels (so no Cast to or from double) and no
 * GatherBlockQuantized; 8-bit MatMulNBits takes no float zero points in any web build. The kit
 * checks both ways: the graph against these known gaps (instant, with the alternative to name),
 * then by loading the written graphs into that very build in Node, which catches anything else.
 */
import { createRequire } from "node:module";
import { basename } from "node:path";
import { readFile } from "node:fs/promises";
import { DataType, type NodeProto } from "../model/onnx.js";
import { KitError, messageOf } from "../util/errors.js";

export const WEB_BUILD = "onnxruntime-web's asyncify WASM build (the one transformers.js's browser build loads)";

export interface BrowserBlocker {
  node: string;
  operator: string;
  reason: string;
  alternative: string;
}

const DOUBLE = DataType.DOUBLE;
const FLOAT8 = new Set<number>([DataType.FLOAT8E4M3FN, DataType.FLOAT8E4M3FNUZ, DataType.FLOAT8E5M2, DataType.FLOAT8E5M2FNUZ]);
const FLOAT8_BLOCKER = {
  operator: "float8 tensors",
  reason: "onnxruntime-web registers no float8 type",
  alternative: "quanto/w8a8 or quanto/w4a8 (int8 activations)",
};

/** The known gaps of the web build in `nodes` (first per operator form). */
export function browserBlockers(nodes: readonly NodeProto[], valueTypes: ReadonlyMap<string, number> = new Map()): BrowserBlocker[] {
  const found = new Map<string, BrowserBlocker>();
  const add = (b: BrowserBlocker) => {
    if (!found.has(b.operator)) found.set(b.operator, b);
  };
  for (const [name, type] of valueTypes) {
    if (FLOAT8.has(type)) {
      add({ node: name, ...FLOAT8_BLOCKER });
    }
  }
  for (const n of nodes) {
    if (n.opType === "Cast") {
      const to = Number(n.attribute.find((a) => a.name === "to")?.i ?? 0);
      if (FLOAT8.has(to)) add({ node: n.name, ...FLOAT8_BLOCKER });
      if (to === DOUBLE || valueTypes.get(n.input[0]!) === DOUBLE) {
        add({
          node: n.name,
          operator: "Cast to/from double",
          reason: "the web build has no float64 kernels",
          alternative: "a weight-only recipe (quanto/w8, hqq/4, bnb/nf4) or bnb/llm-int8, whose activation quantization runs in float",
        });
      }
    }
    if (n.opType === "GatherBlockQuantized") {
      add({ node: n.name, operator: "GatherBlockQuantized", reason: "not in the web build", alternative: "leave the embedding in float" });
    }
    if (
      n.opType === "MatMulNBits" &&
      Number(n.attribute.find((a) => a.name === "bits")?.i ?? 4) === 8 &&
      n.input[3] &&
      valueTypes.get(n.input[3]) === DataType.FLOAT
    ) {
      add({
        node: n.name,
        operator: "MatMulNBits (8 bits, float zero points)",
        reason: "the web kernels take float zero points only for 2 and 4 bits",
        alternative: "quanto/w8 (symmetric 8-bit MatMulNBits) or hqq/4",
      });
    }
  }
  return [...found.values()];
}

/** "Could not find an implementation for Cast(21) node with name 'x'" -> operator and node. */
export function missingKernel(message: string): { operator: string; node: string } | null {
  const m = /implementation for (\w+)\((\d+)\) node with name '([^']*)'/.exec(message);
  return m ? { operator: `${m[1]} (opset ${m[2]})`, node: m[3]! } : null;
}

/** The parts of onnxruntime-web used here and in its tests (its own types pull in the DOM library). */
export interface WebSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>>;
  release(): Promise<void>;
}
export interface WebRuntime {
  env: { wasm: { numThreads: number }; logLevel?: string };
  Tensor: new (type: string, data: ArrayLike<unknown>, dims: number[]) => unknown;
  InferenceSession: { create(model: Uint8Array, options: unknown): Promise<WebSession> };
}

let webRuntime: WebRuntime | null = null;
/** onnxruntime-web in this process, one thread, errors only. */
export function loadWebRuntime(): WebRuntime {
  if (!webRuntime) {
    // The webgpu entry point is the one transformers.js imports; on the wasm provider it runs the asyncify build.
    webRuntime = createRequire(import.meta.url)("onnxruntime-web/webgpu") as WebRuntime;
    webRuntime.env.wasm.numThreads = 1;
    webRuntime.env.logLevel = "error";
  }
  return webRuntime;
}

/** Load `modelFile` (its external data beside it) into the web build; a KitError if it cannot. */
export async function loadInWebRuntime(modelFile: string, dataFile: string | null, recipe: string): Promise<void> {
  const ort = loadWebRuntime();
  const model = await readFile(modelFile);
  const externalData = dataFile ? [{ path: basename(dataFile), data: await readFile(dataFile) }] : [];
  let session: WebSession;
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], externalData, graphOptimizationLevel: "all" });
  } catch (err) {
    const missing = missingKernel(messageOf(err));
    throw new KitError(
      missing
        ? `${recipe} cannot run in a browser: ${WEB_BUILD} has no kernel for ${missing.operator} (node ${missing.node})`
        : `${recipe}: ${WEB_BUILD} cannot load ${basename(modelFile)}: ${messageOf(err)}`,
      { file: modelFile, field: "--recipe", fix: "export a weight-only recipe (fp32, quanto/w8, quanto/w4, hqq/4, bnb/nf4) instead" },
    );
  }
  await session.release();
}
