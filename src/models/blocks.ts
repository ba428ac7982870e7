// U-Net building blocks (Imagen App. F / B.1): the ResNet block with scale-shift conditioning, the
// attention block whose keys and values also see the text tokens, and resampling convolutions.
import { ZeroRng, type Rng } from "../util/rng.js";
import { constant } from "../graph/build.js";
import { multiHeadAttention, silu, upsampleNearest } from "../graph/composite.js";
import { add, concat, expand, mul, reshape, split, transpose } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { keyMaskBias } from "../nn/attention.js";
import { Conv2d, Dropout, GroupNorm, LayerNorm, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";

export const groupsFor = (ch: number) => (ch % 32 === 0 ? 32 : ch % 8 === 0 ? 8 : 1);

export class ResBlock extends Module {
  readonly norm1: GroupNorm; readonly conv1: Conv2d; readonly film: Linear;
  readonly norm2: GroupNorm; readonly drop: Dropout; readonly conv2: Conv2d; readonly skip: Conv2d | null;
  constructor(readonly cin: number, readonly cout: number, condDim: number, rng: Rng, dropout = 0) {
    super();
    this.norm1 = this.addModule("norm1", new GroupNorm(groupsFor(cin), cin));
    this.conv1 = this.addModule("conv1", new Conv2d(cin, cout, 3, rng, { padding: 1 }));
    this.film = this.addModule("film", new Linear(condDim, 2 * cout, rng));
    this.norm2 = this.addModule("norm2", new GroupNorm(groupsFor(cout), cout));
    this.drop = this.addModule("drop", new Dropout(dropout));
    this.conv2 = this.addModule("conv2", new Conv2d(cout, cout, 3, rng, { padding: 1 }));
    this.skip = cin !== cout ? this.addModule("skip", new Conv2d(cin, cout, 1, rng)) : null;
  }

  /** x [B, cin, H, W], cond [B, condDim] -> [B, cout, H, W]. */
  forward(x: Tensor, cond: Tensor, training: boolean): Tensor {
    let h = this.conv1.call(silu(this.norm1.call(x)));
    const [scale, shift] = split(this.film.call(silu(cond)), 1, [this.cout, this.cout]); // [B, cout] each
    h = this.norm2.call(h, { scale, shift }); // norm2(h) * (1 + scale) + shift
    h = this.conv2.call(this.drop.call(silu(h), training));
    return add(this.skip ? this.skip.call(x) : x, h);
  }
}

export type TextAttention = "concat" | "cross" | "none";

export interface AttnBlockOptions {
  heads: number;
  textDim: number;
  /** "concat": text tokens join the self-attention keys/values (the paper); "cross": separate layer. */
  text: TextAttention;
  /** Self-attention over the image tokens; off for the last SR stage, which keeps text cross-attention only. */
  selfAttention: boolean;
  /**
   * Add a learned projection of each image token's fixed 2-D position features (`positionFeatures`) to the
   * attention inputs (queries, keys, values of the image tokens), so that a token knows where in the image it
   * is; the projection starts at zero (the block then computes exactly what it does without it).
   */
  positions?: boolean;
}

/** Sine/cosine features per axis of each image token's centre, u in (-1, 1), at these frequencies (x pi). */
const positionFrequencies = [0.5, 1, 2, 4];
export const positionFeatureCount = 4 * positionFrequencies.length;

/** [h * w, positionFeatureCount] position features of an h x w grid, row-major (y then x). */
export function positionFeatures(h: number, w: number): Float32Array {
  const out = new Float32Array(h * w * positionFeatureCount);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const base = (y * w + x) * positionFeatureCount;
      const [uy, ux] = [(2 * (y + 0.5)) / h - 1, (2 * (x + 0.5)) / w - 1];
      positionFrequencies.forEach((f, k) => {
        out[base + 4 * k] = Math.sin(Math.PI * f * uy);
        out[base + 4 * k + 1] = Math.cos(Math.PI * f * uy);
        out[base + 4 * k + 2] = Math.sin(Math.PI * f * ux);
        out[base + 4 * k + 3] = Math.cos(Math.PI * f * ux);
      });
    }
  }
  return out;
}

export class AttnBlock extends Module {
  readonly norm: GroupNorm | null; readonly qkv: Linear | null; readonly textKv: Linear | null; readonly out: Linear | null;
  readonly crossNorm: LayerNorm | null; readonly crossQ: Linear | null; readonly crossKv: Linear | null; readonly crossOut: Linear | null;
  readonly pos: Linear | null;
  constructor(readonly ch: number, rng: Rng, readonly o: AttnBlockOptions) {
    super();
    const self = o.selfAttention;
    const concatText = self && o.text === "concat";
    const cross = o.text === "cross" || (!self && o.text !== "none");
    this.norm = self ? this.addModule("norm", new GroupNorm(groupsFor(ch), ch)) : null;
    this.qkv = self ? this.addModule("qkv", new Linear(ch, 3 * ch, rng)) : null;
    this.textKv = concatText ? this.addModule("text_kv", new Linear(o.textDim, 2 * ch, rng)) : null;
    this.out = self ? this.addModule("out", new Linear(ch, ch, rng)) : null;
    this.crossNorm = cross ? this.addModule("cross_norm", new LayerNorm(ch)) : null;
    this.crossQ = cross ? this.addModule("cross_q", new Linear(ch, ch, rng)) : null;
    this.crossKv = cross ? this.addModule("cross_kv", new Linear(o.textDim, 2 * ch, rng)) : null;
    this.crossOut = cross ? this.addModule("cross_out", new Linear(ch, ch, rng)) : null;
    // Zero weights drawn from no stream: blocks without positions initialise exactly as before.
    this.pos = o.positions ? this.addModule("pos", new Linear(positionFeatureCount, ch, new ZeroRng(), { bias: false })) : null;
    this.pos?.weight.data.fill(0);
  }

  /** x [B, C, H, W]; text [B, L, Dt] layer-normed; mask [B, L] 0/1. */
  forward(x: Tensor, text: Tensor, mask: Tensor): Tensor {
    const [b, c, h, w] = x.shape;
    const n = (h as number) * (w as number);
    const tokens = (t: Tensor) => transpose(reshape(t, [b, c, n]), [0, 2, 1]); // [B, N, C]
    let a = tokens(x);
    const where = this.pos ? this.pos.call(constant(positionFeatures(h as number, w as number), [1, n, positionFeatureCount])) : null; // [1, N, C]
    const placed = (t: Tensor) => (where ? add(t, where) : t);
    if (this.norm && this.qkv && this.out) {
      let [q, k, v] = split(this.qkv.call(placed(tokens(this.norm.call(x)))), 2, [this.ch, this.ch, this.ch]);
      let bias: Tensor | undefined;
      if (this.textKv) {
        const [kt, vt] = split(this.textKv.call(text), 2, [this.ch, this.ch]); // [B, L, C]
        k = concat([k, kt], 1);
        v = concat([v, vt], 1);
        const imageKeys = expand(constant(new Float32Array(n), [1, 1, 1, n]), [b, 1, 1, n]);
        bias = concat([imageKeys, keyMaskBias(mask)], 3); // [B, 1, 1, N + L]
      }
      a = add(a, this.out.call(multiHeadAttention(q, k, v, this.o.heads, bias)));
    }
    if (this.crossNorm && this.crossQ && this.crossKv && this.crossOut) {
      const [k, v] = split(this.crossKv.call(text), 2, [this.ch, this.ch]);
      const q = this.crossQ.call(placed(this.crossNorm.call(a)));
      a = add(a, this.crossOut.call(multiHeadAttention(q, k, v, this.o.heads, keyMaskBias(mask))));
    }
    return reshape(transpose(a, [0, 2, 1]), [b, c, h, w]);
  }
}

export class Downsample extends Module {
  readonly conv: Conv2d;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.conv = this.addModule("conv", new Conv2d(cin, cout, 3, rng, { stride: 2, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return this.conv.call(x);
  }
}

export class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.conv = this.addModule("conv", new Conv2d(cin, cout, 3, rng, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return this.conv.call(upsampleNearest(x, 2));
  }
}
