// Trainable text layers inside the U-Net: a few pre-norm transformer layers over the frozen encoder's
// (layer-normed) output, with learned positions, run once per caption before pooling and attention.
// Imagen relies on T5-XXL to bind words together ("a red cube left of a blue ball": which colour goes
// with which shape, which object goes where); a small frozen encoder does not, and the U-Net's attention
// sees its tokens as an unordered set. These layers let the diffusion model learn that binding itself.
// Each layer's output projections start at zero, so a U-Net with them computes exactly what it computed
// without them: weights trained without text layers load unchanged (`initFromWithoutTextLayers`).
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { gelu } from "../graph/composite.js";
import { add, slice } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { MultiHeadAttention } from "../nn/attention.js";
import { LayerNorm, Linear } from "../nn/layers.js";
import { Module, Parameter } from "../nn/module.js";

/** Longest caption (in tokens) the learned position table covers. */
export const textLayerPositions = 128;
/** Parameter-name prefix of the text layers in a U-Net's state dict. */
export const textLayersPrefix = "text_layers.";

/** Token-index frequencies (radians per token) of `tokenPositionFeatures`: periods of 2.8 to 32 tokens. */
const tokenFrequencies = Array.from({ length: 8 }, (_, k) => Math.PI * 2 ** (-(k + 1) / 2));
export const tokenPositionFeatureCount = 2 * tokenFrequencies.length;

/** [length, tokenPositionFeatureCount]: sin and cos of each token index at each frequency. */
export function tokenPositionFeatures(length: number): Float32Array {
  const out = new Float32Array(length * tokenPositionFeatureCount);
  for (let t = 0; t < length; t++) {
    tokenFrequencies.forEach((f, k) => {
      out[t * tokenPositionFeatureCount + 2 * k] = Math.sin(f * t);
      out[t * tokenPositionFeatureCount + 2 * k + 1] = Math.cos(f * t);
    });
  }
  return out;
}

/** Heads of width 64 where the width allows, else 32, else one head. */
export const textLayerHeads = (dim: number) => (dim % 64 === 0 ? dim / 64 : dim % 32 === 0 ? dim / 32 : 1);

class TextLayer extends Module {
  readonly norm1: LayerNorm; readonly attn: MultiHeadAttention; readonly norm2: LayerNorm; readonly fc1: Linear; readonly fc2: Linear;
  constructor(dim: number, rng: Rng) {
    super();
    this.norm1 = this.addModule("norm1", new LayerNorm(dim));
    this.attn = this.addModule("attn", new MultiHeadAttention(dim, rng, { heads: textLayerHeads(dim) }));
    this.norm2 = this.addModule("norm2", new LayerNorm(dim));
    this.fc1 = this.addModule("fc1", new Linear(dim, 2 * dim, rng));
    this.fc2 = this.addModule("fc2", new Linear(2 * dim, dim, rng));
    for (const p of [this.attn.out.weight, this.attn.out.bias, this.fc2.weight, this.fc2.bias]) if (p) p.data.fill(0);
  }

  /** x [B, L, D], positions [L, D], mask [B, L] of 0/1. */
  forward(x: Tensor, positions: Tensor, mask: Tensor): Tensor {
    const h = add(x, this.attn.call(add(this.norm1.call(x), positions), undefined, mask));
    return add(h, this.fc2.call(gelu(this.fc1.call(this.norm2.call(h)))));
  }
}

export class TextLayers extends Module {
  readonly positions: Parameter; // [textLayerPositions, D], initialised to a sinusoidal table
  readonly layers: TextLayer[] = [];
  constructor(readonly dim: number, count: number, rng: Rng) {
    super();
    if (!Number.isInteger(count) || count < 1) throw new ValueError(`TextLayers count: expected an integer >= 1, got ${count}`);
    const table = new Float32Array(textLayerPositions * dim), half = Math.floor(dim / 2);
    for (let p = 0; p < textLayerPositions; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * Math.exp((-Math.log(10000) * i) / half);
        table[p * dim + i] = Math.sin(a);
        table[p * dim + half + i] = Math.cos(a);
      }
    }
    this.positions = this.addParameter("positions", new Parameter(table, [textLayerPositions, dim], true, false));
    for (let i = 0; i < count; i++) this.layers.push(this.addModule(`${i}`, new TextLayer(dim, rng.split(i))));
  }

  /** text [B, L, D] (layer-normed encoder output), mask [B, L] -> [B, L, D]. */
  forward(text: Tensor, mask: Tensor): Tensor {
    const L = text.shape[1];
    if (typeof L !== "number" || L > textLayerPositions) {
      throw new ValueError(`UNet text layers: captions of up to ${textLayerPositions} tokens, got ${String(L)}; lower the text encoder's maxLength`);
    }
    const pos = slice(this.positions.t, 0, 0, L);
    return this.layers.reduce((x, layer) => layer.call(x, pos, mask), text);
  }
}
