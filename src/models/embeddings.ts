// Conditioning embeddings of the Imagen U-Net (App. F): a sinusoidal embedding of the diffusion time
// (and of the SR noise-augmentation level) through an MLP, and the text pooled into one vector.
import type { Rng } from "../util/rng.js";
import { constant } from "../graph/build.js";
import { attention, silu } from "../graph/composite.js";
import { add, concat, cos, div, expand, maximum, mul, reshape, sin, sum, unsqueeze } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { keyMaskBias } from "../nn/attention.js";
import { Linear } from "../nn/layers.js";
import { Module, Parameter } from "../nn/module.js";
import * as init from "../nn/init.js";

/** [B] -> [B, dim]: cos(s * f_i), sin(s * f_i) with f_i = 10000^(-i / half), s = scale * value. */
export function sinusoidal(value: Tensor, dim: number, scale = 1000): Tensor {
  const half = dim / 2;
  const freqs = Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half) * scale);
  const args = mul(unsqueeze(value, 1), constant(freqs, [1, half])); // [B, half]
  return concat([cos(args), sin(args)], 1);
}

/** Sinusoidal embedding followed by Linear -> SiLU -> Linear. */
export class TimeEmbedding extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly dim: number, readonly outDim: number, rng: Rng) {
    super();
    this.fc1 = this.addModule("fc1", new Linear(dim, outDim, rng));
    this.fc2 = this.addModule("fc2", new Linear(outDim, outDim, rng));
  }

  forward(value: Tensor): Tensor {
    return this.fc2.call(silu(this.fc1.call(sinusoidal(value, this.dim))));
  }
}

export type TextPooling = "attention" | "mean" | "both";

/**
 * Pools the layer-normed text sequence into the conditioning vector: attention pooling (a learned query
 * attending over the tokens), masked mean pooling, or both summed (the paper's ablation options).
 */
export class TextPool extends Module {
  readonly query: Parameter | null;
  readonly attnProj: Linear | null;
  readonly meanProj: Linear | null;
  constructor(readonly textDim: number, outDim: number, readonly mode: TextPooling, rng: Rng) {
    super();
    const att = mode !== "mean";
    this.query = att ? this.addParameter("query", new Parameter(init.normal(rng, textDim, 0.02), [1, 1, textDim])) : null;
    this.attnProj = att ? this.addModule("attn_proj", new Linear(textDim, outDim, rng)) : null;
    this.meanProj = mode !== "attention" ? this.addModule("mean_proj", new Linear(textDim, outDim, rng)) : null;
  }

  /** text [B, L, D] (already layer-normed), mask [B, L] of 0/1 -> [B, outDim]. */
  forward(text: Tensor, mask: Tensor): Tensor {
    const parts: Tensor[] = [];
    if (this.query && this.attnProj) {
      const q = expand(this.query.t, [text.shape[0], 1, this.textDim]); // [B, 1, D]
      const pooled = attention(q, text, text, reshape(keyMaskBias(mask), [text.shape[0], 1, text.shape[1]]));
      parts.push(this.attnProj.call(reshape(pooled, [text.shape[0], this.textDim])));
    }
    if (this.meanProj) {
      const m = unsqueeze(mask, 2); // [B, L, 1]
      const mean = div(sum(mul(text, m), 1), add1(sum(m, 1)));
      parts.push(this.meanProj.call(mean));
    }
    return parts.length === 1 ? parts[0] : addAll(parts);
  }
}

/** Token count, at least 1: an all-masked (dropped) caption pools to zero, not NaN. */
const add1 = (count: Tensor) => maximum(count, 1);
const addAll = (xs: Tensor[]) => xs.reduce((a, b) => add(a, b));
