import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { open, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from "onnx-buf";
import { KitError } from "../util/errors.js";
import { ownedCopy } from "../util/fs.js";

export { TensorProto_DataType as DataType };
export type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto };

/** A float attribute (plain numbers are ints, as in most ONNX attributes). */
export interface FloatAttr {
  float: number;
}
export const f = (value: number): FloatAttr => ({ float: value });
export type AttrValue = number | number[] | string | FloatAttr | FloatAttr[];

/** Typed arrays that an initializer may hold, with their ONNX element types. */
export type InitializerData = Float32Array | Uint8Array | Int8Array | Int32Array | BigInt64Array | Uint16Array;

export interface Initializer {
  name: string;
  dataType: TensorProto_DataType;
  dims: number[];
  data: InitializerData;
}

/** A dimension is a number, or a string naming a symbolic (dynamic) dimension. */
export type Dim = number | string;

/**
 * A small builder for ONNX graphs: nodes get unique output names, constants become
 * initializers, and large initializers are written as external data by `writeOnnxModel`.
 */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers = new Map<string, Initializer>();
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  counter = 0;

  constructor(readonly name: string) {}

  /** Open a model for rewriting: nodes, inputs and outputs as they are, initializers loaded (external data too). */
  static async fromFile(file: string): Promise<{ builder: GraphBuilder; opset: number; domains: Record<string, number> }> {
    const model = await readOnnxModel(file);
    const graph = model.graph!;
    const builder = new GraphBuilder(graph.name);
    builder.nodes.push(...graph.node);
    builder.inputs.push(...graph.input);
    builder.outputs.push(...graph.output);
    for (const t of graph.initializer) {
      const bytes = await readInitializerBytes(file, t);
      builder.initializers.set(t.name, { name: t.name, dataType: t.dataType, dims: t.dims.map(Number), data: typedView(bytes, t.dataType) });
    }
    const domains: Record<string, number> = {};
    let opset = 0;
    for (const o of model.opsetImport) {
      if (o.domain === "" || o.domain === "ai.onnx") opset = Number(o.version);
      else domains[o.domain] = Number(o.version);
    }
    builder.counter = graph.node.length + graph.initializer.length; // fresh names for new nodes
    return { builder, opset, domains };
  }

  /** Remove an initializer no node reads any more. */
  dropUnusedInitializer(name: string): void {
    if (!this.nodes.some((n) => n.input.includes(name))) this.initializers.delete(name);
  }

  /** Add a named initializer (a weight); returns its name. */
  initializer(name: string, data: InitializerData, dims: number[], dataType: TensorProto_DataType = defaultType(data)): string {
    if (this.initializers.has(name)) throw new Error(`duplicate initializer ${name}`);
    const count = dims.reduce((a, b) => a * b, 1);
    if (packedElementCount(dataType, count) !== data.length) {
      throw new Error(`initializer ${name}: ${data.length} elements for dims [${dims}]`);
    }
    this.initializers.set(name, { name, dataType, dims, data });
    return name;
  }

  /** An anonymous constant: int64 by default for shapes and axes, float for Float32Array. */
  constant(values: number[] | Float32Array, dims: number[] = [values.length], dataType = TensorProto_DataType.INT64): string {
    const name = `const_${this.counter++}`;
    if (values instanceof Float32Array) return this.initializer(name, values, dims, TensorProto_DataType.FLOAT);
    if (dataType === TensorProto_DataType.FLOAT) return this.initializer(name, Float32Array.from(values), dims, dataType);
    if (dataType === TensorProto_DataType.INT32) return this.initializer(name, Int32Array.from(values), dims, dataType);
    return this.initializer(name, BigInt64Array.from(values.map((v) => BigInt(v))), dims, TensorProto_DataType.INT64);
  }

  scalar(value: number, dataType = TensorProto_DataType.FLOAT): string {
    return this.constant([value], [], dataType);
  }

  input(name: string, elemType: TensorProto_DataType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: TensorProto_DataType, dims: Dim[] | null): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /**
   * Add a node; returns its output names. `outputs` may name them (graph outputs must), else
   * they are derived from the node name so that a graph reads well in Netron.
   */
  node(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    options: { name?: string; outputs?: string[] | number; domain?: string } = {},
  ): string[] {
    const nodeName = options.name ?? `${opType}_${this.counter++}`;
    const outputs = typeof options.outputs === "object" ? options.outputs : Array.from({ length: options.outputs ?? 1 }, (_, i) => `${nodeName}/out${i}`);
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        name: nodeName,
        domain: options.domain ?? "",
        input: inputs,
        output: outputs,
        attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
      }),
    );
    return outputs;
  }

  /** The single-output form of `node`. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, options: { name?: string; output?: string; domain?: string } = {}): string {
    const opts: { name?: string; outputs?: string[]; domain?: string } = {};
    if (options.name !== undefined) opts.name = options.name;
    if (options.output !== undefined) opts.outputs = [options.output];
    if (options.domain !== undefined) opts.domain = options.domain;
    return this.node(opType, inputs, attrs, opts)[0]!;
  }
}

/** A graph-valued attribute (If's then_branch / else_branch): nodes that read outer-scope names freely. */
export function graphAttribute(name: string, graphName: string, nodes: NodeProto[], outputs: ValueInfoProto[]): AttributeProto {
  const g = create(GraphProtoSchema, { name: graphName, node: nodes, output: outputs });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g });
}

/** A typed array over raw initializer bytes (copied, so that it is aligned). */
function typedView(bytes: Uint8Array, dataType: TensorProto_DataType): InitializerData {
  const copy = ownedCopy(bytes).buffer;
  switch (dataType) {
    case TensorProto_DataType.FLOAT:
      return new Float32Array(copy);
    case TensorProto_DataType.INT8:
      return new Int8Array(copy);
    case TensorProto_DataType.INT32:
      return new Int32Array(copy);
    case TensorProto_DataType.INT64:
      return new BigInt64Array(copy);
    case TensorProto_DataType.FLOAT16:
      return new Uint16Array(copy);
    default:
      return new Uint8Array(copy);
  }
}

function defaultType(data: InitializerData): TensorProto_DataType {
  if (data instanceof Float32Array) return TensorProto_DataType.FLOAT;
  if (data instanceof Int8Array) return TensorProto_DataType.INT8;
  if (data instanceof Int32Array) return TensorProto_DataType.INT32;
  if (data instanceof BigInt64Array) return TensorProto_DataType.INT64;
  if (data instanceof Uint16Array) return TensorProto_DataType.FLOAT16;
  return TensorProto_DataType.UINT8;
}

/** Elements of the backing array for `count` logical elements (4- and 2-bit types pack into bytes). */
function packedElementCount(dataType: TensorProto_DataType, count: number): number {
  switch (dataType) {
    case TensorProto_DataType.INT4:
    case TensorProto_DataType.UINT4:
      return Math.ceil(count / 2);
    default:
      return count;
  }
}

function attribute(name: string, value: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof value === "number") return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(value) });
  if (typeof value === "string") return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(value) });
  if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] === "object") {
      return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: (value as FloatAttr[]).map((v) => v.float) });
    }
    return create(AttributeProtoSchema, { name, type: T.INTS, ints: (value as number[]).map((v) => BigInt(v)) });
  }
  return create(AttributeProtoSchema, { name, type: T.FLOAT, f: value.float });
}

/** A typed value; `dims` null leaves the shape unknown (rank included). */
export function valueInfo(name: string, elemType: TensorProto_DataType, dims: Dim[] | null): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType,
          ...(dims === null
            ? {}
            : {
                shape: create(TensorShapeProtoSchema, {
                  dim: dims.map((d) =>
                    create(TensorShapeProto_DimensionSchema, {
                      value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d },
                    }),
                  ),
                }),
              }),
        }),
      },
    }),
  });
}

export interface OnnxWriteOptions {
  opset: number;
  /** Extra operator domains, e.g. { "com.microsoft": 1 }. */
  domains?: Record<string, number>;
  /** Initializers at least this large (bytes) go to the external data file. */
  externalThreshold?: number;
  /** The external data file's name, beside `file` (default `<file>.data`). */
  dataFileName?: string;
  producer?: string;
  metadata?: Record<string, string>;
}

export interface WrittenModel {
  file: string;
  dataFile: string | null;
  graphBytes: number; // the .onnx protobuf alone
  dataBytes: number; // the external data file
}

const EXTERNAL_ALIGN = 64; // keeps every external tensor aligned for SIMD loads

/**
 * Serialize a builder to `file`, large initializers appended to `file.data` (ORT resolves the
 * location relative to the model's folder). Writes go straight to the target paths: callers
 * build inside a temporary directory that is renamed into place when complete.
 */
export async function writeOnnxModel(builder: GraphBuilder, file: string, options: OnnxWriteOptions): Promise<WrittenModel> {
  const threshold = options.externalThreshold ?? 1024;
  const dataFile = options.dataFileName ? join(dirname(file), options.dataFileName) : `${file}.data`;
  const dataName = basename(dataFile);
  const initializers: TensorProto[] = [];
  let dataHandle: Awaited<ReturnType<typeof open>> | null = null;
  let offset = 0;
  try {
    for (const init of builder.initializers.values()) {
      const bytes = new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength);
      const tensor = create(TensorProtoSchema, {
        name: init.name,
        dataType: init.dataType,
        dims: init.dims.map((d) => BigInt(d)),
      });
      if (bytes.byteLength >= threshold) {
        dataHandle ??= await open(dataFile, "w");
        const pad = (EXTERNAL_ALIGN - (offset % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
        if (pad) await dataHandle.write(new Uint8Array(pad));
        offset += pad;
        await dataHandle.write(bytes);
        tensor.dataLocation = TensorProto_DataLocation.EXTERNAL;
        tensor.externalData = [
          create(StringStringEntryProtoSchema, { key: "location", value: dataName }),
          create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: "length", value: String(bytes.byteLength) }),
        ];
        offset += bytes.byteLength;
      } else {
        tensor.rawData = bytes.slice() as Uint8Array<ArrayBuffer>;
      }
      initializers.push(tensor);
    }
    if (dataHandle) await dataHandle.sync();
  } finally {
    await dataHandle?.close();
  }
  const model = create(ModelProtoSchema, {
    irVersion: 10n,
    producerName: options.producer ?? "whisper-ptq-kit",
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(options.opset) }),
      ...Object.entries(options.domains ?? {}).map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
    ],
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    graph: create(GraphProtoSchema, {
      name: builder.name,
      node: builder.nodes,
      initializer: initializers,
      input: builder.inputs,
      output: builder.outputs,
    }),
  });
  const bytes = toBinary(ModelProtoSchema, model);
  const handle = await open(file, "w");
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { file, dataFile: dataHandle ? dataFile : null, graphBytes: bytes.byteLength, dataBytes: offset };
}

/** Decode an .onnx file (external data stays where it is; see `readInitializer`). */
export async function readOnnxModel(file: string): Promise<ModelProto> {
  const bytes = await readFile(file).catch((err) => {
    throw new KitError(`cannot read ONNX model ${file}`, { file, fix: "build the model again (ptq build)" }, err);
  });
  try {
    return fromBinary(ModelProtoSchema, bytes);
  } catch (err) {
    throw new KitError(`${file} is not a valid ONNX model: ${(err as Error).message}`, { file, fix: "delete it and build again" });
  }
}

/** The raw bytes of an initializer, inline or external. */
export async function readInitializerBytes(modelFile: string, tensor: TensorProto): Promise<Uint8Array> {
  if (tensor.dataLocation !== TensorProto_DataLocation.EXTERNAL) return tensor.rawData;
  const entry = (key: string) => tensor.externalData.find((e) => e.key === key)?.value;
  const location = entry("location");
  if (!location) throw new KitError(`initializer ${tensor.name} has external data without a location`, { file: modelFile, field: tensor.name });
  const offset = Number(entry("offset") ?? 0);
  const length = Number(entry("length"));
  const handle = await open(join(dirname(modelFile), location), "r");
  try {
    const out = new Uint8Array(length);
    const { bytesRead } = await handle.read(out, 0, length, offset);
    if (bytesRead !== length) {
      throw new KitError(`external data for ${tensor.name} is truncated`, { file: join(dirname(modelFile), location), fix: "build the model again" });
    }
    return out;
  } finally {
    await handle.close();
  }
}
