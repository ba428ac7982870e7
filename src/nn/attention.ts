// Multi-head attention (self and cross) with an optional key padding mask, built on the composite
// scaled dot-product attention. Masks are [B, Lk] with 1 for real tokens and 0 for padding.
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { multiHeadAttention } from "../graph/composite.js";
import { mul, reshape, sub } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { Linear } from "./layers.js";
import { Module } from "./module.js";

/** The additive bias for a [B, Lk] 0/1 key mask: 0 where kept, -1e9 where masked; shape [B, 1, 1, Lk]. */
export function keyMaskBias(mask: Tensor): Tensor {
  const [b, lk] = mask.shape;
  return reshape(mul(sub(1, mask), -1e9), [b, 1, 1, lk]);
}

export interface AttentionOptions {
  heads: number;
  /** Width of the keys/values source when it differs from the queries' (cross-attention). */
  contextDim?: number;
  bias?: boolean;
}

export class MultiHeadAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  readonly heads: number;
  constructor(readonly dim: number, rng: Rng, options: AttentionOptions) {
    super();
    this.heads = options.heads;
    if (!Number.isInteger(this.heads) || this.heads < 1 || dim % this.heads !== 0) {
      throw new ValueError(`MultiHeadAttention heads: expected a divisor of dim ${dim}, got ${options.heads}`);
    }
    const ctx = options.contextDim ?? dim;
    const bias = { bias: options.bias ?? true };
    this.q = this.addModule("q", new Linear(dim, dim, rng, bias));
    this.k = this.addModule("k", new Linear(ctx, dim, rng, bias));
    this.v = this.addModule("v", new Linear(ctx, dim, rng, bias));
    this.out = this.addModule("out", new Linear(dim, dim, rng, bias));
  }

  /** x [B, Lq, dim]; context [B, Lk, contextDim] (defaults to x); mask [B, Lk] of 0/1 floats. */
  forward(x: Tensor, context?: Tensor, mask?: Tensor): Tensor {
    const src = context ?? x;
    const bias = mask ? keyMaskBias(mask) : undefined;
    const o = multiHeadAttention(this.q.call(x), this.k.call(src), this.v.call(src), this.heads, bias);
    return this.out.call(o);
  }
}
