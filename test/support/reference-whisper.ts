/**
 * An independent Whisper forward pass in plain TypeScript loops, straight from Hugging Face's
 * modeling_whisper.py: no ONNX, no code shared with src/model/whisper-graphs.ts. Slow, so only
 * for toy sizes. The graphs are checked against it.
 */
import type { WhisperConfig } from "../../src/model/config.js";
import type { SafetensorsFile } from "../../src/model/safetensors.js";

/** erfc by the Chebyshev fit of Numerical Recipes (erfccheb), relative error below 1.2e-7. */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc : erfc - 1;
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

type Mat = { rows: number; cols: number; data: Float64Array };

function mat(rows: number, cols: number): Mat {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

export class ReferenceWhisper {
  constructor(
    readonly config: WhisperConfig,
    readonly weights: SafetensorsFile,
  ) {}

  private w(name: string): Float32Array {
    return this.weights.float32(name);
  }

  /** y = x W^T + b, W in Hugging Face layout [out, in]. */
  private linear(x: Mat, prefix: string): Mat {
    const W = this.w(`${prefix}.weight`);
    const out = W.length / x.cols;
    const b = this.weights.has(`${prefix}.bias`) ? this.w(`${prefix}.bias`) : null;
    const y = mat(x.rows, out);
    for (let r = 0; r < x.rows; r++) {
      for (let o = 0; o < out; o++) {
        let acc = b ? b[o]! : 0;
        for (let i = 0; i < x.cols; i++) acc += x.data[r * x.cols + i]! * W[o * x.cols + i]!;
        y.data[r * out + o] = acc;
      }
    }
    return y;
  }

  private layerNorm(x: Mat, prefix: string): Mat {
    const g = this.w(`${prefix}.weight`);
    const b = this.w(`${prefix}.bias`);
    const y = mat(x.rows, x.cols);
    for (let r = 0; r < x.rows; r++) {
      let mean = 0;
      for (let i = 0; i < x.cols; i++) mean += x.data[r * x.cols + i]!;
      mean /= x.cols;
      let variance = 0;
      for (let i = 0; i < x.cols; i++) variance += (x.data[r * x.cols + i]! - mean) ** 2;
      variance /= x.cols;
      const inv = 1 / Math.sqrt(variance + 1e-5);
      for (let i = 0; i < x.cols; i++) y.data[r * x.cols + i] = (x.data[r * x.cols + i]! - mean) * inv * g[i]! + b[i]!;
    }
    return y;
  }

  private add(a: Mat, b: Mat): Mat {
    const y = mat(a.rows, a.cols);
    for (let i = 0; i < y.data.length; i++) y.data[i] = a.data[i]! + b.data[i]!;
    return y;
  }

  /** Multi-head attention; q [T, d] (unscaled), k and v [S, d]; query t sees keys <= offset + t when causal. */
  private attention(q: Mat, k: Mat, v: Mat, heads: number, causal: boolean): Mat {
    const d = q.cols;
    const dh = d / heads;
    const scale = dh ** -0.5;
    const y = mat(q.rows, d);
    const scores = new Float64Array(k.rows);
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < q.rows; t++) {
        const visible = causal ? t + 1 : k.rows;
        let max = -Infinity;
        for (let s = 0; s < visible; s++) {
          let acc = 0;
          for (let i = 0; i < dh; i++) acc += q.data[t * d + h * dh + i]! * scale * k.data[s * d + h * dh + i]!;
          scores[s] = acc;
          if (acc > max) max = acc;
        }
        let sum = 0;
        for (let s = 0; s < visible; s++) sum += scores[s] = Math.exp(scores[s]! - max);
        for (let i = 0; i < dh; i++) {
          let acc = 0;
          for (let s = 0; s < visible; s++) acc += scores[s]! * v.data[s * d + h * dh + i]!;
          y.data[t * d + h * dh + i] = acc / sum;
        }
      }
    }
    return y;
  }

  private selfAttention(x: Mat, prefix: string, heads: number, causal: boolean): Mat {
    const q = this.linear(x, `${prefix}.q_proj`);
    const k = this.linear(x, `${prefix}.k_proj`);
    const v = this.linear(x, `${prefix}.v_proj`);
    return this.linear(this.attention(q, k, v, heads, causal), `${prefix}.out_proj`);
  }

  private ffn(x: Mat, prefix: string): Mat {
    const h = this.linear(this.layerNorm(x, `${prefix}.final_layer_norm`), `${prefix}.fc1`);
    for (let i = 0; i < h.data.length; i++) h.data[i] = gelu(h.data[i]!);
    return this.add(x, this.linear(h, `${prefix}.fc2`));
  }

  private conv1d(x: Mat /* [channels, time] */, prefix: string, stride: number): Mat {
    const W = this.w(`${prefix}.weight`); // [out, in, 3]
    const b = this.w(`${prefix}.bias`);
    const out = b.length;
    const tOut = Math.floor((x.cols + 2 - 3) / stride) + 1;
    const y = mat(out, tOut);
    for (let o = 0; o < out; o++) {
      for (let t = 0; t < tOut; t++) {
        let acc = b[o]!;
        for (let c = 0; c < x.rows; c++) {
          for (let k = 0; k < 3; k++) {
            const src = t * stride + k - 1;
            if (src >= 0 && src < x.cols) acc += W[(o * x.rows + c) * 3 + k]! * x.data[c * x.cols + src]!;
          }
        }
        y.data[o * tOut + t] = gelu(acc);
      }
    }
    return y;
  }

  /** last_hidden_state [1500, d] for one [n_mels, 3000] input. */
  encode(mel: Float32Array): Float64Array {
    const c = this.config;
    const input: Mat = { rows: c.numMelBins, cols: mel.length / c.numMelBins, data: Float64Array.from(mel) };
    const conv = this.conv1d(this.conv1d(input, "model.encoder.conv1", 1), "model.encoder.conv2", 2); // [d, 1500]
    let x = mat(conv.cols, conv.rows);
    const pos = this.w("model.encoder.embed_positions.weight");
    for (let t = 0; t < conv.cols; t++) for (let i = 0; i < conv.rows; i++) x.data[t * conv.rows + i] = conv.data[i * conv.cols + t]! + pos[t * conv.rows + i]!;
    for (let l = 0; l < c.encoderLayers; l++) {
      const p = `model.encoder.layers.${l}`;
      x = this.add(x, this.selfAttention(this.layerNorm(x, `${p}.self_attn_layer_norm`), `${p}.self_attn`, c.encoderHeads, false));
      x = this.ffn(x, p);
    }
    return this.layerNorm(x, "model.encoder.layer_norm").data;
  }

  /** logits [T, vocab] for the whole token sequence, no cache. */
  decode(ids: number[], encoderHidden: Float64Array): Float64Array {
    const c = this.config;
    const d = c.dModel;
    const E = this.w("model.decoder.embed_tokens.weight");
    const P = this.w("model.decoder.embed_positions.weight");
    let x = mat(ids.length, d);
    for (let t = 0; t < ids.length; t++) for (let i = 0; i < d; i++) x.data[t * d + i] = E[ids[t]! * d + i]! + P[t * d + i]!;
    const enc: Mat = { rows: encoderHidden.length / d, cols: d, data: encoderHidden };
    for (let l = 0; l < c.decoderLayers; l++) {
      const p = `model.decoder.layers.${l}`;
      x = this.add(x, this.selfAttention(this.layerNorm(x, `${p}.self_attn_layer_norm`), `${p}.self_attn`, c.decoderHeads, true));
      const q = this.linear(this.layerNorm(x, `${p}.encoder_attn_layer_norm`), `${p}.encoder_attn.q_proj`);
      const k = this.linear(enc, `${p}.encoder_attn.k_proj`);
      const v = this.linear(enc, `${p}.encoder_attn.v_proj`);
      x = this.add(x, this.linear(this.attention(q, k, v, c.decoderHeads, false), `${p}.encoder_attn.out_proj`));
      x = this.ffn(x, p);
    }
    x = this.layerNorm(x, "model.decoder.layer_norm");
    const logits = new Float64Array(ids.length * c.vocabSize);
    for (let t = 0; t < ids.length; t++) {
      for (let v = 0; v < c.vocabSize; v++) {
        let acc = 0;
        for (let i = 0; i < d; i++) acc += x.data[t * d + i]! * E[v * d + i]!;
        logits[t * c.vocabSize + v] = acc;
      }
    }
    return logits;
  }
}

/** max |a - b| / max |b|: the relative error of a whole tensor. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
