/**
 * Writes a CTranslate2 WhisperSpec model.bin from Hugging Face weights, as ct2-transformers-converter
 * lays it out (fused [q;k;v] and [k;v] projections with zero key biases), for the importer's tests.
 */
import type { WhisperConfig } from "../../src/model/config.js";
import { float32ToFloat16, type SafetensorsFile } from "../../src/model/safetensors.js";

type Var = { dtype: number; dims: number[]; bytes: Uint8Array };

const str = (s: string) => {
  const b = new TextEncoder().encode(`${s}\0`);
  const out = new Uint8Array(2 + b.length);
  new DataView(out.buffer).setUint16(0, b.length, true);
  out.set(b, 2);
  return out;
};

function f16(data: Float32Array): Var {
  const bytes = new Uint8Array(data.length * 2);
  const view = new DataView(bytes.buffer);
  data.forEach((v, i) => {
    view.setUint16(i * 2, float32ToFloat16(v), true);
  });
  return { dtype: 4, dims: [], bytes };
}

/** Per-row symmetric int8, as CTranslate2's int8 quantization stores it (weight * scale = codes). */
function int8Rows(data: Float32Array, rows: number): { codes: Var; scale: Var } {
  const cols = data.length / rows;
  const codes = new Uint8Array(data.length);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(data[r * cols + c]!));
    const scale = amax === 0 ? 1 : 127 / amax;
    scales[r] = scale;
    for (let c = 0; c < cols; c++) codes[r * cols + c] = Math.round(data[r * cols + c]! * scale) & 0xff;
  }
  return { codes: { dtype: 1, dims: [rows, cols], bytes: codes }, scale: { dtype: 0, dims: [rows], bytes: new Uint8Array(scales.buffer) } };
}

export function writeCt2Whisper(weights: SafetensorsFile, config: WhisperConfig, options: { int8?: boolean } = {}): Uint8Array {
  const vars = new Map<string, Var>();
  const put = (name: string, data: Float32Array, dims: number[]) => {
    if (options.int8 && name.endsWith("/weight") && dims.length === 2 && !name.includes("embeddings")) {
      const { codes, scale } = int8Rows(data, dims[0]!);
      vars.set(name, codes);
      vars.set(name.replace(/weight$/, "weight_scale"), scale);
      return;
    }
    vars.set(name, { ...f16(data), dims });
  };
  const w = (n: string) => weights.float32(n);
  const dims = (n: string) => weights.entry(n).shape;
  const cat = (...xs: Float32Array[]) => {
    const out = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of xs) {
      out.set(x, at);
      at += x.length;
    }
    return out;
  };
  const d = config.dModel;
  const linear = (hf: string, ct2: string) => {
    put(`${ct2}/weight`, w(`${hf}.weight`), dims(`${hf}.weight`));
    put(`${ct2}/bias`, w(`${hf}.bias`), dims(`${hf}.bias`));
  };
  const norm = (hf: string, ct2: string) => {
    put(`${ct2}/gamma`, w(`${hf}.weight`), [d]);
    put(`${ct2}/beta`, w(`${hf}.bias`), [d]);
  };
  const block = (hf: string, ct2: string, cross: boolean) => {
    norm(`${hf}.self_attn_layer_norm`, `${ct2}/self_attention/layer_norm`);
    const a = `${hf}.self_attn`;
    put(`${ct2}/self_attention/linear_0/weight`, cat(w(`${a}.q_proj.weight`), w(`${a}.k_proj.weight`), w(`${a}.v_proj.weight`)), [3 * d, d]);
    put(`${ct2}/self_attention/linear_0/bias`, cat(w(`${a}.q_proj.bias`), new Float32Array(d), w(`${a}.v_proj.bias`)), [3 * d]);
    linear(`${a}.out_proj`, `${ct2}/self_attention/linear_1`);
    if (cross) {
      const c = `${hf}.encoder_attn`;
      norm(`${hf}.encoder_attn_layer_norm`, `${ct2}/attention/layer_norm`);
      linear(`${c}.q_proj`, `${ct2}/attention/linear_0`);
      put(`${ct2}/attention/linear_1/weight`, cat(w(`${c}.k_proj.weight`), w(`${c}.v_proj.weight`)), [2 * d, d]);
      put(`${ct2}/attention/linear_1/bias`, cat(new Float32Array(d), w(`${c}.v_proj.bias`)), [2 * d]);
      linear(`${c}.out_proj`, `${ct2}/attention/linear_2`);
    }
    norm(`${hf}.final_layer_norm`, `${ct2}/ffn/layer_norm`);
    linear(`${hf}.fc1`, `${ct2}/ffn/linear_0`);
    linear(`${hf}.fc2`, `${ct2}/ffn/linear_1`);
  };
  linear("model.encoder.conv1", "encoder/conv1");
  linear("model.encoder.conv2", "encoder/conv2");
  put("encoder/position_encodings/encodings", w("model.encoder.embed_positions.weight"), dims("model.encoder.embed_positions.weight"));
  for (let l = 0; l < config.encoderLayers; l++) block(`model.encoder.layers.${l}`, `encoder/layer_${l}`, false);
  norm("model.encoder.layer_norm", "encoder/layer_norm");
  put("decoder/embeddings/weight", w("model.decoder.embed_tokens.weight"), dims("model.decoder.embed_tokens.weight"));
  put("decoder/position_encodings/encodings", w("model.decoder.embed_positions.weight"), dims("model.decoder.embed_positions.weight"));
  for (let l = 0; l < config.decoderLayers; l++) block(`model.decoder.layers.${l}`, `decoder/layer_${l}`, true);
  norm("model.decoder.layer_norm", "decoder/layer_norm");
  vars.set("encoder/num_heads", { dtype: 2, dims: [], bytes: new Uint8Array(new Int16Array([config.encoderHeads]).buffer) });
  vars.set("decoder/num_heads", { dtype: 2, dims: [], bytes: new Uint8Array(new Int16Array([config.decoderHeads]).buffer) });

  const chunks: Uint8Array[] = [];
  const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
  chunks.push(u32(6), str("WhisperSpec"), u32(3), u32(vars.size));
  for (const [name, v] of [...vars].sort(([a], [b]) => (a < b ? -1 : 1))) {
    chunks.push(str(name), Uint8Array.of(v.dims.length), ...v.dims.map(u32), Uint8Array.of(v.dtype), u32(v.bytes.length), v.bytes);
  }
  chunks.push(u32(1), str("decoder/projection/weight"), str("decoder/embeddings/weight"));
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
