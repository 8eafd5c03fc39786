/**
 * Whisper as two ONNX graphs, written from the Hugging Face weights. The whole architecture is
 * on this page (cf. modeling_whisper.py in transformers and whisper.cpp's whisper_build_graph_*).
 *
 *   encoder.onnx  input_features [B, n_mels, 3000]
 *                 -> last_hidden_state [B, 1500, d]
 *                 -> cross_key.{l} [B, H, Dh, 1500]   (pre-transposed: q @ k^T needs no copy per step)
 *                 -> cross_value.{l} [B, H, 1500, Dh] (computed once per utterance, for every decoder layer)
 *   decoder.onnx  input_ids [B, T] + past_key.{l}/past_value.{l} [B, H, P, Dh] + cross_*
 *                 -> logits [B, T, vocab], present_key.{l}/present_value.{l} [B, H, P+T, Dh]
 *
 * P = 0 (empty past) runs the decoder without a cache. Every linear layer is MatMul(x, W) (+ Add b)
 * whose weight initializer carries the Hugging Face parameter name and holds W = weight^T, shape
 * [in, out]; recipes select layers by those names. The output projection is a Gemm with transB on
 * the token embedding itself, so the tied matrix is stored once.
 */
import { DataType, f, GraphBuilder } from "./onnx.js";
import type { WhisperConfig } from "./config.js";
import { inputFrames } from "./config.js";

export interface WeightSource {
  /** The parameter as fp32, in Hugging Face layout (linear weights [out, in]). */
  float32(name: string): Float32Array;
  has(name: string): boolean;
}

export const LAYER_NORM_EPS = 1e-5; // torch.nn.LayerNorm's default, which Whisper uses
export const OPSET = 21;
/** The name the logits projection reads: Hugging Face ties proj_out to the token embedding. */
export const TOKEN_EMBEDDING = "model.decoder.embed_tokens.weight";

/** [out, in] row-major -> [in, out] row-major. */
export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c]!;
  }
  return out;
}

/** The pieces of a transformer block, shared by the encoder and decoder builders. */
class WhisperOps {
  constructor(
    readonly g: GraphBuilder,
    readonly weights: WeightSource,
  ) {}

  /** y = x W^T + b, the weight stored transposed under its Hugging Face name. */
  linear(x: string, prefix: string, inFeatures: number, outFeatures: number): string {
    const wName = `${prefix}.weight`;
    if (!this.g.initializers.has(wName)) {
      this.g.initializer(wName, transpose2d(this.weights.float32(wName), outFeatures, inFeatures), [inFeatures, outFeatures]);
    }
    const y = this.g.op("MatMul", [x, wName], {}, { name: `${prefix}/MatMul` });
    const bName = `${prefix}.bias`;
    if (!this.weights.has(bName)) return y; // k_proj has no bias in Whisper
    if (!this.g.initializers.has(bName)) this.g.initializer(bName, this.weights.float32(bName), [outFeatures]);
    return this.g.op("Add", [y, bName], {}, { name: `${prefix}/Add` });
  }

  param(name: string, dims: number[]): string {
    if (!this.g.initializers.has(name)) this.g.initializer(name, this.weights.float32(name), dims);
    return name;
  }

  layerNorm(x: string, prefix: string, d: number): string {
    return this.g.op(
      "LayerNormalization",
      [x, this.param(`${prefix}.weight`, [d]), this.param(`${prefix}.bias`, [d])],
      { axis: -1, epsilon: f(LAYER_NORM_EPS) },
      { name: `${prefix}/LayerNorm` },
    );
  }

  gelu(x: string, name: string): string {
    return this.g.op("Gelu", [x], {}, { name: `${name}/Gelu` }); // exact (erf) GELU, opset 20
  }

  /** [B, T, d] -> [B, H, T, Dh], or [B, H, Dh, T] when `keyTransposed`. */
  splitHeads(x: string, heads: number, headDim: number, name: string, keyTransposed = false): string {
    const shaped = this.g.op("Reshape", [x, this.g.constant([0, 0, heads, headDim])], {}, { name: `${name}/Reshape` });
    return this.g.op("Transpose", [shaped], { perm: keyTransposed ? [0, 2, 3, 1] : [0, 2, 1, 3] }, { name: `${name}/Transpose` });
  }

  /** [B, H, T, Dh] -> [B, T, d] */
  mergeHeads(x: string, d: number, name: string): string {
    const t = this.g.op("Transpose", [x], { perm: [0, 2, 1, 3] }, { name: `${name}/Transpose` });
    return this.g.op("Reshape", [t, this.g.constant([0, 0, d])], {}, { name: `${name}/Reshape` });
  }

  /** softmax(q k^T + mask) v with q [B,H,T,Dh] (already scaled), kT [B,H,Dh,S], v [B,H,S,Dh]. */
  attend(q: string, kT: string, v: string, mask: string | null, name: string): string {
    let scores = this.g.op("MatMul", [q, kT], {}, { name: `${name}/QK` });
    if (mask) scores = this.g.op("Add", [scores, mask], {}, { name: `${name}/Mask` });
    const probs = this.g.op("Softmax", [scores], { axis: -1 }, { name: `${name}/Softmax` });
    return this.g.op("MatMul", [probs, v], {}, { name: `${name}/PV` });
  }

  /** q projection scaled by Dh^-0.5 after the bias, as Hugging Face's WhisperAttention does. */
  scaledQuery(x: string, prefix: string, d: number, headDim: number): string {
    const q = this.linear(x, `${prefix}.q_proj`, d, d);
    return this.g.op("Mul", [q, this.g.scalar(headDim ** -0.5)], {}, { name: `${prefix}.q_proj/Scale` });
  }

  feedForward(x: string, prefix: string, d: number, ffn: number): string {
    const h = this.layerNorm(x, `${prefix}.final_layer_norm`, d);
    const up = this.gelu(this.linear(h, `${prefix}.fc1`, d, ffn), `${prefix}.fc1`);
    const down = this.linear(up, `${prefix}.fc2`, ffn, d);
    return this.g.op("Add", [x, down], {}, { name: `${prefix}/FfnResidual` });
  }
}

export function buildEncoderGraph(config: WhisperConfig, weights: WeightSource): GraphBuilder {
  const g = new GraphBuilder("whisper_encoder");
  const ops = new WhisperOps(g, weights);
  const d = config.dModel;
  const H = config.encoderHeads;
  const Dh = d / H;
  const features = g.input("input_features", DataType.FLOAT, ["batch", config.numMelBins, inputFrames(config)]);

  // Two 1-D convolutions (kernel 3, padding 1; the second with stride 2), each followed by GELU.
  const conv = (x: string, prefix: string, inCh: number, stride: number) =>
    ops.gelu(
      g.op(
        "Conv",
        [x, ops.param(`${prefix}.weight`, [d, inCh, 3]), ops.param(`${prefix}.bias`, [d])],
        { kernel_shape: [3], pads: [1, 1], strides: [stride] },
        { name: `${prefix}/Conv` },
      ),
      prefix,
    );
  const c2 = conv(conv(features, "model.encoder.conv1", config.numMelBins, 1), "model.encoder.conv2", d, 2);
  let x = g.op("Transpose", [c2], { perm: [0, 2, 1] }, { name: "model.encoder/Transpose" }); // [B, 1500, d]
  x = g.op("Add", [x, ops.param("model.encoder.embed_positions.weight", [config.maxSourcePositions, d])], {}, { name: "model.encoder/AddPositions" });

  for (let l = 0; l < config.encoderLayers; l++) {
    const p = `model.encoder.layers.${l}`;
    const h = ops.layerNorm(x, `${p}.self_attn_layer_norm`, d);
    const q = ops.splitHeads(ops.scaledQuery(h, `${p}.self_attn`, d, Dh), H, Dh, `${p}.self_attn.q`);
    const kT = ops.splitHeads(ops.linear(h, `${p}.self_attn.k_proj`, d, d), H, Dh, `${p}.self_attn.k`, true);
    const v = ops.splitHeads(ops.linear(h, `${p}.self_attn.v_proj`, d, d), H, Dh, `${p}.self_attn.v`);
    const ctx = ops.mergeHeads(ops.attend(q, kT, v, null, `${p}.self_attn`), d, `${p}.self_attn.ctx`);
    x = g.op("Add", [x, ops.linear(ctx, `${p}.self_attn.out_proj`, d, d)], {}, { name: `${p}/AttnResidual` });
    x = ops.feedForward(x, p, d, config.encoderFfnDim);
  }
  const hidden = g.op(
    "LayerNormalization",
    [x, ops.param("model.encoder.layer_norm.weight", [d]), ops.param("model.encoder.layer_norm.bias", [d])],
    { axis: -1, epsilon: f(LAYER_NORM_EPS) },
    { name: "model.encoder.layer_norm/LayerNorm", output: "last_hidden_state" },
  );
  g.output(hidden, DataType.FLOAT, ["batch", config.maxSourcePositions, d]);

  // Cross-attention keys and values depend only on the audio: compute them here, once.
  const Hd = config.decoderHeads;
  const Dhd = d / Hd;
  for (let l = 0; l < config.decoderLayers; l++) {
    const p = `model.decoder.layers.${l}.encoder_attn`;
    const k = ops.linear(hidden, `${p}.k_proj`, d, d);
    const v = ops.linear(hidden, `${p}.v_proj`, d, d);
    const kShaped = g.op("Reshape", [k, g.constant([0, 0, Hd, Dhd])], {}, { name: `${p}.k/Reshape` });
    g.op("Transpose", [kShaped], { perm: [0, 2, 3, 1] }, { name: `${p}.k/Transpose`, output: `cross_key.${l}` });
    const vShaped = g.op("Reshape", [v, g.constant([0, 0, Hd, Dhd])], {}, { name: `${p}.v/Reshape` });
    g.op("Transpose", [vShaped], { perm: [0, 2, 1, 3] }, { name: `${p}.v/Transpose`, output: `cross_value.${l}` });
    g.output(`cross_key.${l}`, DataType.FLOAT, ["batch", Hd, Dhd, config.maxSourcePositions]);
    g.output(`cross_value.${l}`, DataType.FLOAT, ["batch", Hd, config.maxSourcePositions, Dhd]);
  }
  return g;
}

export function buildDecoderGraph(config: WhisperConfig, weights: WeightSource): GraphBuilder {
  const g = new GraphBuilder("whisper_decoder");
  const ops = new WhisperOps(g, weights);
  const d = config.dModel;
  const H = config.decoderHeads;
  const Dh = d / H;
  const S = config.maxSourcePositions;
  const ids = g.input("input_ids", DataType.INT64, ["batch", "tokens"]);
  for (let l = 0; l < config.decoderLayers; l++) {
    g.input(`past_key.${l}`, DataType.FLOAT, ["batch", H, "past", Dh]);
    g.input(`past_value.${l}`, DataType.FLOAT, ["batch", H, "past", Dh]);
  }
  for (let l = 0; l < config.decoderLayers; l++) {
    g.input(`cross_key.${l}`, DataType.FLOAT, ["batch", H, Dh, S]);
    g.input(`cross_value.${l}`, DataType.FLOAT, ["batch", H, S, Dh]);
  }

  // Positions P .. P+T-1, where P is the cached length and T the new tokens.
  const squeeze0 = (x: string, name: string) => g.op("Squeeze", [x, g.constant([0])], {}, { name });
  const past = squeeze0(g.op("Shape", ["past_key.0"], { start: 2, end: 3 }, { name: "past_length/Shape" }), "past_length");
  const tokens = squeeze0(g.op("Shape", [ids], { start: 1, end: 2 }, { name: "new_tokens/Shape" }), "new_tokens");
  const total = g.op("Add", [past, tokens], {}, { name: "total_length" });
  const one = g.scalar(1, DataType.INT64);
  const positions = g.op("Range", [past, total, one], {}, { name: "positions" });

  const embedTokens = ops.param(TOKEN_EMBEDDING, [config.vocabSize, d]);
  let x = g.op("Gather", [embedTokens, ids], { axis: 0 }, { name: "model.decoder.embed_tokens/Gather" });
  if (config.scaleEmbedding) x = g.op("Mul", [x, g.scalar(Math.sqrt(d))], {}, { name: "model.decoder/EmbedScale" });
  const pos = g.op(
    "Gather",
    [ops.param("model.decoder.embed_positions.weight", [config.maxTargetPositions, d]), positions],
    { axis: 0 },
    { name: "model.decoder.embed_positions/Gather" },
  );
  x = g.op("Add", [x, pos], {}, { name: "model.decoder/AddPositions" });

  // Causal mask [T, P+T]: query i (at position P+i) sees keys 0 .. P+i. torch.finfo(float32).min, as Hugging Face masks.
  const keyPositions = g.op("Range", [g.scalar(0, DataType.INT64), total, one], {}, { name: "key_positions" });
  const queryColumn = g.op("Unsqueeze", [positions, g.constant([1])], {}, { name: "query_positions" });
  const future = g.op("Less", [queryColumn, keyPositions], {}, { name: "causal/Less" });
  const mask = g.op("Where", [future, g.scalar(-3.4028234663852886e38), g.scalar(0)], {}, { name: "causal_mask" });

  for (let l = 0; l < config.decoderLayers; l++) {
    const p = `model.decoder.layers.${l}`;
    // Self-attention over the cache plus the new tokens.
    let h = ops.layerNorm(x, `${p}.self_attn_layer_norm`, d);
    const q = ops.splitHeads(ops.scaledQuery(h, `${p}.self_attn`, d, Dh), H, Dh, `${p}.self_attn.q`);
    const kNew = ops.splitHeads(ops.linear(h, `${p}.self_attn.k_proj`, d, d), H, Dh, `${p}.self_attn.k`);
    const vNew = ops.splitHeads(ops.linear(h, `${p}.self_attn.v_proj`, d, d), H, Dh, `${p}.self_attn.v`);
    const key = g.op("Concat", [`past_key.${l}`, kNew], { axis: 2 }, { name: `${p}.self_attn/CacheKey`, output: `present_key.${l}` });
    const value = g.op("Concat", [`past_value.${l}`, vNew], { axis: 2 }, { name: `${p}.self_attn/CacheValue`, output: `present_value.${l}` });
    const kT = g.op("Transpose", [key], { perm: [0, 1, 3, 2] }, { name: `${p}.self_attn.k/TransposeCache` });
    let ctx = ops.mergeHeads(ops.attend(q, kT, value, mask, `${p}.self_attn`), d, `${p}.self_attn.ctx`);
    x = g.op("Add", [x, ops.linear(ctx, `${p}.self_attn.out_proj`, d, d)], {}, { name: `${p}/SelfAttnResidual` });

    // Cross-attention over the encoder's precomputed keys and values.
    h = ops.layerNorm(x, `${p}.encoder_attn_layer_norm`, d);
    const cq = ops.splitHeads(ops.scaledQuery(h, `${p}.encoder_attn`, d, Dh), H, Dh, `${p}.encoder_attn.q`);
    ctx = ops.mergeHeads(ops.attend(cq, `cross_key.${l}`, `cross_value.${l}`, null, `${p}.encoder_attn`), d, `${p}.encoder_attn.ctx`);
    x = g.op("Add", [x, ops.linear(ctx, `${p}.encoder_attn.out_proj`, d, d)], {}, { name: `${p}/CrossAttnResidual` });

    x = ops.feedForward(x, p, d, config.decoderFfnDim);
    g.output(`present_key.${l}`, DataType.FLOAT, ["batch", H, "total", Dh]);
    g.output(`present_value.${l}`, DataType.FLOAT, ["batch", H, "total", Dh]);
  }
  x = ops.layerNorm(x, "model.decoder.layer_norm", d);

  // logits = x E^T through the tied embedding: Gemm(transB) on [B*T, d] reads E without a copy.
  const flat = g.op("Reshape", [x, g.constant([-1, d])], {}, { name: "proj_out/Flatten" });
  const logits2d = g.op("Gemm", [flat, embedTokens], { transB: 1 }, { name: "proj_out/Gemm" });
  const outShape = g.op(
    "Concat",
    [g.op("Shape", [ids], {}, { name: "proj_out/Shape" }), g.constant([config.vocabSize])],
    { axis: 0 },
    { name: "proj_out/OutShape" },
  );
  g.op("Reshape", [logits2d, outShape], {}, { name: "proj_out/Reshape", output: "logits" });
  g.output("logits", DataType.FLOAT, ["batch", "tokens", config.vocabSize]);
  return g;
}

/** The Hugging Face names of every linear layer (what PTQ recipes act on), in graph order. */
export function linearLayerNames(config: WhisperConfig): string[] {
  const names: string[] = [];
  const attn = (p: string) => ["q_proj", "k_proj", "v_proj", "out_proj"].map((n) => `${p}.${n}`);
  for (let l = 0; l < config.encoderLayers; l++) {
    const p = `model.encoder.layers.${l}`;
    names.push(...attn(`${p}.self_attn`), `${p}.fc1`, `${p}.fc2`);
  }
  for (let l = 0; l < config.decoderLayers; l++) {
    const p = `model.decoder.layers.${l}`;
    names.push(...attn(`${p}.self_attn`), ...attn(`${p}.encoder_attn`), `${p}.fc1`, `${p}.fc2`);
  }
  return names;
}

/** Every parameter name and shape of a Whisper checkpoint with this config (proj_out is tied, not stored). */
export function parameterShapes(c: WhisperConfig): Map<string, number[]> {
  const d = c.dModel;
  const shapes = new Map<string, number[]>([
    ["model.encoder.conv1.weight", [d, c.numMelBins, 3]],
    ["model.encoder.conv1.bias", [d]],
    ["model.encoder.conv2.weight", [d, d, 3]],
    ["model.encoder.conv2.bias", [d]],
    ["model.encoder.embed_positions.weight", [c.maxSourcePositions, d]],
    ["model.encoder.layer_norm.weight", [d]],
    ["model.encoder.layer_norm.bias", [d]],
    [TOKEN_EMBEDDING, [c.vocabSize, d]],
    ["model.decoder.embed_positions.weight", [c.maxTargetPositions, d]],
    ["model.decoder.layer_norm.weight", [d]],
    ["model.decoder.layer_norm.bias", [d]],
  ]);
  for (const linear of linearLayerNames(c)) {
    const isFc1 = linear.endsWith(".fc1");
    const isFc2 = linear.endsWith(".fc2");
    const ffn = linear.startsWith("model.encoder") ? c.encoderFfnDim : c.decoderFfnDim;
    shapes.set(`${linear}.weight`, isFc1 ? [ffn, d] : isFc2 ? [d, ffn] : [d, d]);
    if (!linear.endsWith("k_proj")) shapes.set(`${linear}.bias`, [isFc1 ? ffn : d]);
  }
  const norms = (prefix: string, names: string[]) => {
    for (const n of names) {
      shapes.set(`${prefix}.${n}.weight`, [d]);
      shapes.set(`${prefix}.${n}.bias`, [d]);
    }
  };
  for (let l = 0; l < c.encoderLayers; l++) norms(`model.encoder.layers.${l}`, ["self_attn_layer_norm", "final_layer_norm"]);
  for (let l = 0; l < c.decoderLayers; l++) norms(`model.decoder.layers.${l}`, ["self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"]);
  return shapes;
}
