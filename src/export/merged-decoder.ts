/**
 * The kit's two graphs rewritten into the layout transformers.js runs (optimum's "merged" Whisper):
 *
 *   encoder_model.onnx         input_features [batch_size, n_mels, 3000] -> last_hidden_state
 *   decoder_model_merged.onnx  input_ids, encoder_hidden_states, past_key_values.{l}.decoder|encoder.key|value,
 *                              use_cache_branch bool[1]
 *                              -> logits, present.{l}.decoder.key|value, present.{l}.encoder.key|value
 *
 * The kit computes the cross-attention keys and values in its encoder; here those nodes move,
 * unchanged (quantized as the recipe made them), into the else branch of an If on use_cache_branch:
 * the first step computes them from encoder_hidden_states, later steps pass the cached ones through.
 * The cache layout stays the kit's (cross keys pre-transposed [B, H, Dh, S]); transformers.js
 * treats it as opaque. No arithmetic changes: the same nodes run on the same values.
 */
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema } from "onnx-buf";
import type { WhisperConfig } from "../model/config.js";
import { inputFrames } from "../model/config.js";
import { DataType, type Dim, GraphBuilder, graphAttribute, type NodeProto, valueInfo } from "../model/onnx.js";

export const HIDDEN = "last_hidden_state";
const BATCH = "batch_size"; // the one symbol transformers.js fills with the batch when it shapes empty caches

const crossKey = (l: number) => `cross_key.${l}`;
const crossValue = (l: number) => `cross_value.${l}`;

/** Indices of the nodes that `targets` depend on, stopping at `stopAt` (values treated as given). */
export function backwardCone(nodes: readonly NodeProto[], targets: readonly string[], stopAt: ReadonlySet<string> = new Set()): Set<number> {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output) producer.set(o, i);
  });
  const cone = new Set<number>();
  const stack = targets.filter((t) => !stopAt.has(t));
  while (stack.length > 0) {
    const i = producer.get(stack.pop()!);
    if (i === undefined || cone.has(i)) continue;
    cone.add(i);
    for (const input of nodes[i]!.input) if (input && !stopAt.has(input)) stack.push(input);
  }
  return cone;
}

/** A copy of `node` with its input and output names mapped (names not in the map stay). */
function renamed(node: NodeProto, map: ReadonlyMap<string, string>): NodeProto {
  const r = (n: string) => map.get(n) ?? n;
  return create(NodeProtoSchema, { ...node, input: node.input.map(r), output: node.output.map(r) });
}

function usedNames(nodes: readonly NodeProto[]): Set<string> {
  const used = new Set<string>();
  for (const n of nodes) {
    for (const i of n.input) used.add(i);
    for (const a of n.attribute) if (a.g) for (const name of usedNames(a.g.node)) used.add(name);
  }
  return used;
}

/** Copy the initializers `nodes` read from `from` into `to`, renamed by `rename`. */
function copyInitializers(from: GraphBuilder, to: GraphBuilder, nodes: readonly NodeProto[], rename: (name: string) => string): void {
  for (const name of usedNames(nodes)) {
    const init = from.initializers.get(name);
    if (init) to.initializers.set(rename(name), { ...init, name: rename(name) });
  }
}

export interface TransformersJsGraphs {
  encoder: GraphBuilder;
  decoder: GraphBuilder;
}

/** Rewrite the kit's encoder and decoder (fp32 or quantized) into transformers.js's two graphs. */
export function toTransformersJsGraphs(encoder: GraphBuilder, decoder: GraphBuilder, config: WhisperConfig): TransformersJsGraphs {
  const L = config.decoderLayers;
  const H = config.decoderHeads;
  const Dh = config.dModel / H;
  const S = config.maxSourcePositions;
  // Per decoder layer, the cross key (pre-transposed) and value: the kit's name, transformers.js's cache names,
  // the shape, and the cache input's shape (a symbol where the empty first-step cache has length 0).
  const E = "encoder_sequence_length_out";
  const cross = Array.from({ length: L }, (_, l) => [
    {
      name: crossKey(l),
      cached: `past_key_values.${l}.encoder.key`,
      present: `present.${l}.encoder.key`,
      dims: [BATCH, H, Dh, S],
      cachedDims: [BATCH, H, Dh, E],
    },
    {
      name: crossValue(l),
      cached: `past_key_values.${l}.encoder.value`,
      present: `present.${l}.encoder.value`,
      dims: [BATCH, H, S, Dh],
      cachedDims: [BATCH, H, E, Dh],
    },
  ]).flat() as Array<{ name: string; cached: string; present: string; dims: Dim[]; cachedDims: Dim[] }>;
  const crossNames = cross.map((c) => c.name);

  // 1. Split the encoder: what last_hidden_state needs stays; the cross projections move.
  const kept = backwardCone(encoder.nodes, [HIDDEN]);
  const moved = [...backwardCone(encoder.nodes, crossNames, new Set([HIDDEN]))].filter((i) => !kept.has(i)).sort((a, b) => a - b);
  const keptNodes = encoder.nodes.filter((_, i) => kept.has(i));
  const movedNodes = moved.map((i) => encoder.nodes[i]!);
  const movedOutputs = new Set(movedNodes.flatMap((n) => n.output));
  for (const n of movedNodes) {
    for (const input of n.input) {
      if (input && input !== HIDDEN && !movedOutputs.has(input) && !encoder.initializers.has(input)) {
        throw new Error(`export: cross-attention node ${n.name} reads ${input}, an encoder value other than ${HIDDEN}`);
      }
    }
  }

  const enc = new GraphBuilder("whisper_encoder");
  enc.nodes.push(...keptNodes);
  copyInitializers(encoder, enc, keptNodes, (n) => n);
  enc.input("input_features", DataType.FLOAT, [BATCH, config.numMelBins, inputFrames(config)]);
  enc.output(HIDDEN, DataType.FLOAT, [BATCH, S, config.dModel]);

  // 2. The decoder: the kit's nodes with transformers.js's cache names, and the If in front.
  const dec = new GraphBuilder("whisper_decoder_merged");
  const names = new Map<string, string>([[HIDDEN, "encoder_hidden_states"]]);
  for (let l = 0; l < L; l++) {
    names.set(`past_key.${l}`, `past_key_values.${l}.decoder.key`);
    names.set(`past_value.${l}`, `past_key_values.${l}.decoder.value`);
    names.set(`present_key.${l}`, `present.${l}.decoder.key`);
    names.set(`present_value.${l}`, `present.${l}.decoder.value`);
  }
  // Initializer names stay apart from the encoder's (transformers.js loads both into one runtime).
  const decoderInit = (n: string) => (enc.initializers.has(n) ? `decoder/${n}` : n);
  const crossInit = (n: string) => `cross_kv/${n}`;
  for (const name of decoder.initializers.keys()) if (decoderInit(name) !== name) names.set(name, decoderInit(name));
  const decoderNodes = decoder.nodes.map((n) => renamed(n, names));
  copyInitializers(decoder, dec, decoder.nodes, decoderInit);

  const fresh = new Map<string, string>([[HIDDEN, "encoder_hidden_states"]]);
  for (const name of usedNames(movedNodes)) if (encoder.initializers.has(name)) fresh.set(name, crossInit(name));
  for (const name of crossNames) fresh.set(name, `computed/${name}`);
  const elseNodes = movedNodes.map((n) => renamed(n, fresh));
  copyInitializers(encoder, dec, movedNodes, crossInit);

  const thenNodes = cross.map((c) =>
    create(NodeProtoSchema, { opType: "Identity", name: `reuse/${c.name}`, domain: "", input: [c.cached], output: [`reused/${c.name}`] }),
  );
  const ifNode = create(NodeProtoSchema, {
    opType: "If",
    name: "use_cache_branch/If",
    domain: "",
    input: ["use_cache_branch"],
    output: crossNames,
    attribute: [
      graphAttribute(
        "then_branch",
        "reuse_cross_kv",
        thenNodes,
        cross.map((c) => valueInfo(`reused/${c.name}`, DataType.FLOAT, c.dims)),
      ),
      graphAttribute(
        "else_branch",
        "compute_cross_kv",
        elseNodes,
        cross.map((c) => valueInfo(`computed/${c.name}`, DataType.FLOAT, c.dims)),
      ),
    ],
  });
  dec.nodes.push(ifNode, ...decoderNodes);

  dec.input("input_ids", DataType.INT64, [BATCH, "decoder_sequence_length"]);
  dec.input("encoder_hidden_states", DataType.FLOAT, [BATCH, S, config.dModel]);
  for (let l = 0; l < L; l++) {
    dec.input(`past_key_values.${l}.decoder.key`, DataType.FLOAT, [BATCH, H, "past_decoder_sequence_length", Dh]);
    dec.input(`past_key_values.${l}.decoder.value`, DataType.FLOAT, [BATCH, H, "past_decoder_sequence_length", Dh]);
    for (const c of cross.slice(2 * l, 2 * l + 2)) {
      dec.input(c.cached, DataType.FLOAT, c.cachedDims);
    }
  }
  dec.input("use_cache_branch", DataType.BOOL, [1]);

  dec.output("logits", DataType.FLOAT, [BATCH, "decoder_sequence_length", config.vocabSize]);
  for (let l = 0; l < L; l++) {
    dec.output(`present.${l}.decoder.key`, DataType.FLOAT, [BATCH, H, "present_decoder_sequence_length", Dh]);
    dec.output(`present.${l}.decoder.value`, DataType.FLOAT, [BATCH, H, "present_decoder_sequence_length", Dh]);
    for (const c of cross.slice(2 * l, 2 * l + 2)) {
      dec.node("Identity", [c.name], {}, { name: `${c.present}/Identity`, outputs: [c.present] });
      dec.output(c.present, DataType.FLOAT, c.dims);
    }
  }
  return { encoder: enc, decoder: dec };
}
