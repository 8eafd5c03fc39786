import { readFile } from "node:fs/promises";
import { inflateRawSync } from "node:zlib";
import { KitError } from "./errors.js";
import { ownedCopy } from "./fs.js";

/** A numpy array read from .npy bytes: little-endian float32/float64/int arrays, C order. */
export interface NpyArray {
  dtype: string; // numpy descr, e.g. "<f4"
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;
}

export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const fix = "the file is not a numpy .npy array; regenerate it";
  if (bytes[0] !== 0x93 || new TextDecoder("latin1").decode(bytes.subarray(1, 6)) !== "NUMPY") {
    throw new KitError(`${file} lacks the .npy magic`, { file, fix });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6]!;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new KitError(`${file} has an unreadable .npy header`, { file, field: "header", fix });
  if (fortran === "True") throw new KitError(`${file} is in Fortran order`, { file, field: "fortran_order", fix: "save it with np.ascontiguousarray" });
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const start = headerStart + headerLength;
  const body = ownedCopy(bytes.subarray(start)).buffer;
  const count = shape.reduce((a, b) => a * b, 1);
  const make = {
    "<f4": () => new Float32Array(body, 0, count),
    "<f8": () => new Float64Array(body, 0, count),
    "<i4": () => new Int32Array(body, 0, count),
    "|i1": () => new Int8Array(body, 0, count),
    "|u1": () => new Uint8Array(body, 0, count),
  }[descr];
  if (!make) throw new KitError(`${file} has unsupported dtype ${descr}`, { file, field: "descr", fix: "save as float32, float64, int32, int8 or uint8" });
  return { dtype: descr, shape, data: make() };
}

/** The arrays of an .npz (a zip of .npy files, stored or deflated). */
export async function readNpz(file: string): Promise<Map<string, NpyArray>> {
  const bytes = await readFile(file).catch((err) => {
    throw new KitError(`cannot read ${file}`, { file, fix: "check the path" }, err);
  });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The central directory is authoritative (local headers may defer sizes to a data descriptor).
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new KitError(`${file} is not a zip/npz archive`, { file, fix: "regenerate the file with numpy.savez" });
  const entries = view.getUint16(eocd + 10, true);
  let pos = view.getUint32(eocd + 16, true);
  const out = new Map<string, NpyArray>();
  for (let e = 0; e < entries; e++) {
    if (view.getUint32(pos, true) !== 0x02014b50) throw new KitError(`${file}: damaged zip directory`, { file, fix: "regenerate the file" });
    const method = view.getUint16(pos + 10, true);
    const compressed = view.getUint32(pos + 20, true);
    const nameLength = view.getUint16(pos + 28, true);
    const extraLength = view.getUint16(pos + 30, true);
    const commentLength = view.getUint16(pos + 32, true);
    const local = view.getUint32(pos + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(pos + 46, pos + 46 + nameLength));
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = bytes.subarray(dataStart, dataStart + compressed);
    const content = method === 0 ? raw : method === 8 ? inflateRawSync(raw) : null;
    if (!content)
      throw new KitError(`${file}: entry ${name} uses zip method ${method}`, { file, field: name, fix: "save with numpy.savez or savez_compressed" });
    out.set(name.replace(/\.npy$/, ""), parseNpy(content, `${file}:${name}`));
    pos += 46 + nameLength + extraLength + commentLength;
  }
  return out;
}
