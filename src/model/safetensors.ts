import { open, readFile } from "node:fs/promises";
import { KitError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { float16ToFloat32, float32ToFloat16 } from "../util/half.js";

export { float16ToFloat32, float32ToFloat16 };

/**
 * safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}} (offsets relative to the end of the header),
 * then the raw little-endian tensor bytes. Spec: huggingface/safetensors README.
 */
export type SafetensorsDtype = "F32" | "F16" | "BF16" | "I8" | "U8" | "I32" | "I64";

export interface TensorEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range [begin, end) of the data, relative to the start of the data section. */
  offsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  dataStart: number; // absolute byte offset of the data section
}

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I32: 4, I64: 8 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the format's own limit

/** Parse and validate the header of a safetensors file already in memory (or its first bytes). */
export function parseSafetensorsHeader(bytes: Uint8Array, file: string, fileSize: number = bytes.byteLength): SafetensorsHeader {
  const fix = "the file is corrupt or truncated; delete it and fetch the model again";
  if (fileSize < 8) throw new KitError(`${file} is too short to be a safetensors file (${fileSize} bytes)`, { file, fix });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength === 0 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > fileSize) {
    throw new KitError(`${file} has an invalid safetensors header length (${headerLength} bytes in a ${fileSize}-byte file)`, {
      file,
      field: "header length",
      fix,
    });
  }
  if (8 + headerLength > bytes.byteLength) throw new Error("parseSafetensorsHeader: header not fully in buffer");
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (err) {
    throw new KitError(`${file} has a safetensors header that is not JSON: ${(err as Error).message}`, { file, field: "header", fix });
  }
  const dataStart = 8 + headerLength;
  const dataBytes = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!entry || typeof entry.dtype !== "string" || !(entry.dtype in DTYPE_BYTES)) {
      throw new KitError(`tensor '${name}' has unsupported dtype ${JSON.stringify(entry?.dtype)}`, {
        file,
        field: `${name}.dtype`,
        fix: "the kit reads F32, F16, BF16, I8, U8, I32 and I64 tensors",
      });
    }
    if (!Array.isArray(entry.shape) || !Array.isArray(entry.data_offsets) || entry.data_offsets.length !== 2) {
      throw new KitError(`tensor '${name}' lacks shape or data_offsets`, { file, field: name, fix });
    }
    const dtype = entry.dtype as SafetensorsDtype;
    const [begin, end] = entry.data_offsets;
    const expected = entry.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new KitError(`tensor '${name}' spans ${end - begin} bytes but its shape [${entry.shape}] needs ${expected}`, {
        file,
        field: `${name}.data_offsets`,
        fix,
      });
    }
    if (end > dataBytes) {
      throw new KitError(`tensor '${name}' ends at byte ${end} of the data section, which has only ${dataBytes} bytes: the file is truncated`, {
        file,
        field: `${name}.data_offsets`,
        fix,
      });
    }
    tensors.set(name, { dtype, shape: entry.shape, offsets: [begin, end] });
  }
  return { tensors, metadata, dataStart };
}

/** Read only the header of a safetensors file (cheap, even for a 1 GB checkpoint). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await open(file, "r").catch((err) => {
    throw new KitError(`cannot open ${file}`, { file, fix: "check the path" }, err);
  });
  try {
    const { size } = await handle.stat();
    const head = new Uint8Array(Math.min(size, 8));
    await handle.read(head, 0, head.length, 0);
    if (size < 8) return parseSafetensorsHeader(head, file, size);
    const headerLength = Number(new DataView(head.buffer).getBigUint64(0, true));
    const length = Math.min(size, 8 + Math.min(headerLength, MAX_HEADER_BYTES + 1));
    const buf = new Uint8Array(length);
    await handle.read(buf, 0, length, 0);
    return parseSafetensorsHeader(buf, file, size);
  } finally {
    await handle.close();
  }
}

/** A whole safetensors file loaded, with every floating tensor available as fp32. */
export class SafetensorsFile {
  private constructor(
    readonly file: string,
    readonly header: SafetensorsHeader,
    private readonly bytes: Uint8Array,
  ) {}

  static async load(file: string): Promise<SafetensorsFile> {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw new KitError(`cannot read ${file}`, { file, fix: "check that the model directory holds model.safetensors" }, err);
    }
    const header = parseSafetensorsHeader(bytes, file);
    return new SafetensorsFile(file, header, bytes);
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.header.tensors.get(name);
    if (!entry) {
      throw new KitError(`tensor '${name}' is missing from the checkpoint`, {
        file: this.file,
        field: name,
        fix: "the weights do not match config.json; fetch the model again",
      });
    }
    return entry;
  }

  /** The tensor converted to fp32 (F16 and BF16 widen exactly). */
  float32(name: string): Float32Array {
    const entry = this.entry(name);
    const start = this.header.dataStart + entry.offsets[0];
    const raw = this.bytes.subarray(start, this.header.dataStart + entry.offsets[1]);
    const count = entry.shape.reduce((a, b) => a * b, 1);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out = new Float32Array(count);
    switch (entry.dtype) {
      case "F32":
        // Fast path: an aligned little-endian view copies at memory speed (x86 and Arm are LE).
        if (raw.byteOffset % 4 === 0) out.set(new Float32Array(raw.buffer, raw.byteOffset, count));
        else for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
        return out;
      case "F16":
        for (let i = 0; i < count; i++) out[i] = float16ToFloat32(view.getUint16(i * 2, true));
        return out;
      case "BF16": {
        const u32 = new Uint32Array(out.buffer);
        for (let i = 0; i < count; i++) u32[i] = view.getUint16(i * 2, true) << 16;
        return out;
      }
      default:
        throw new KitError(`tensor '${name}' is ${entry.dtype}, not a floating tensor`, {
          file: this.file,
          field: name,
          fix: "this tensor is quantized; import the model as floating point first",
        });
    }
  }
}

export interface TensorToWrite {
  dtype: "F32" | "F16" | "BF16";
  shape: number[];
  data: Float32Array;
}

/** Serialize tensors to safetensors bytes (names sorted, 8-byte aligned header as the library does). */
export function encodeSafetensors(tensors: Map<string, TensorToWrite>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = t.data.length * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerText = JSON.stringify(header);
  while ((8 + Buffer.byteLength(headerText)) % 8 !== 0) headerText += " ";
  const headerBytes = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i]!;
      if (t.dtype === "F32") {
        view.setFloat32(pos, v, true);
        pos += 4;
      } else if (t.dtype === "F16") {
        view.setUint16(pos, float32ToFloat16(v), true);
        pos += 2;
      } else {
        // bf16 by round-to-nearest-even on the upper 16 bits
        const u = new Uint32Array(new Float32Array([v]).buffer)[0]!;
        view.setUint16(pos, (u + 0x7fff + ((u >>> 16) & 1)) >>> 16, true);
        pos += 2;
      }
    }
  }
  return out;
}

export async function writeSafetensors(file: string, tensors: Map<string, TensorToWrite>, metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
