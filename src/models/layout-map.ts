// A text-to-layout pathway for small U-Nets: each of the caption's first tokens (after the text layers and text
// positions) projected to a few features, kept in order and flattened, with the conditioning vector, through
// an MLP to a coarse spatial feature map ([B, K, G, G]) that every ResBlock's output receives through its own
// 1x1 projection.
//
// Why: in a U-Net, text reaches a place in the image only through attention, where an image token's query
// (knowing where it is) must meet a text key that knows which object the caption puts on which side. Both
// start near zero and each one's gradient needs the other (a saddle): a small model trained on hundreds of
// thousands of "a red circle to the left of a blue square" scenes still drew the two objects on whichever
// sides the noise picked. The FiLM conditioning is the same at every pixel, and pooled text hardly depends on
// word order. Here the MLP sees which word stands where in the caption, and its map reaches every place: a
// one-hop path from word order to layout. Its output layer starts at zero (the U-Net computes exactly what it
// computes without it, so trained weights load unchanged) and its first gradient is already a useful one.
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { avgPool, silu, upsampleNearest } from "../graph/composite.js";
import { constant } from "../graph/build.js";
import { add, concat, div, expand, matmul, maximum, mul, reshape, slice, softmax, sum, transpose, unsqueeze } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { Conv2d, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";

/** Tokens the map reads (later ones are ignored, shorter captions padded), features per token, MLP width, map channels. */
export const layoutTokens = 32;
export const layoutTokenFeatures = 32;
export const layoutHidden = 256;
export const layoutChannels = 32;
/** Parameter-name prefix of the layout map in a U-Net's state dict. */
export const layoutPrefix = "layout.";

/** Parameter-name prefix of the token placement in a U-Net's state dict. */
export const placementPrefix = "place.";

/** Checks that a map of `grid` x `grid` fits every resolution `sizes` of a U-Net (each a multiple or divisor). */
export function checkLayoutGrid(grid: unknown, sizes: number[], key = "layoutMap"): void {
  if (!(typeof grid === "number" && Number.isInteger(grid) && grid >= 1 && grid <= 32)) {
    throw new ValueError(`UNet ${key}: expected an integer grid size from 1 to 32 (e.g. 8), 0 or no key; got ${JSON.stringify(grid)}`);
  }
  for (const s of sizes) {
    if (s % grid !== 0 && grid % s !== 0) throw new ValueError(`UNet ${key}: a ${grid}x${grid} map does not fit the ${s}x${s} level; use a grid that divides or is divided by every level's size`);
  }
}

/** A coarse [B, K, G, G] map that every ResBlock's output receives through its own bias-free 1x1 projection. */
abstract class ResBlockMap extends Module {
  readonly proj: Conv2d[] = [];

  constructor(readonly grid: number) {
    super();
  }

  /** widths: the output channels of each ResBlock that receives the map, in the order the forward pass runs them. */
  protected addProjections(widths: number[], rng: Rng): void {
    widths.forEach((w, i) => this.proj.push(this.addModule(`proj.${i}`, new Conv2d(layoutChannels, w, 1, rng, { bias: false }))));
  }

  /** h [B, C, S, S] plus the i-th projection of the map at S x S. */
  addTo(i: number, h: Tensor, map: Tensor): Tensor {
    const s = h.shape[2] as number;
    const resized = s === this.grid ? map : s > this.grid ? upsampleNearest(map, s / this.grid) : avgPool(map, this.grid / s);
    return add(h, this.proj[i].call(resized));
  }
}

export class LayoutMap extends ResBlockMap {
  readonly token: Linear; // per-token features
  readonly fc1: Linear;
  readonly fc2: Linear; // zero-initialised: the map starts at zero

  /** widths: the output channels of each ResBlock that receives the map, in the order the forward pass runs them. */
  constructor(readonly textDim: number, condDim: number, grid: number, widths: number[], rng: Rng) {
    super(grid);
    this.token = this.addModule("token", new Linear(textDim, layoutTokenFeatures, rng));
    this.fc1 = this.addModule("fc1", new Linear(layoutTokens * layoutTokenFeatures + condDim, layoutHidden, rng));
    this.fc2 = this.addModule("fc2", new Linear(layoutHidden, layoutChannels * grid * grid, rng));
    for (const p of [this.fc2.weight, this.fc2.bias]) p?.data.fill(0);
    this.addProjections(widths, rng);
  }

  /** text [B, L, D], mask [B, L] 0/1, cond [B, condDim] -> the map [B, K, G, G]. */
  forward(text: Tensor, mask: Tensor, cond: Tensor): Tensor {
    const [b, l] = text.shape;
    if (typeof l !== "number") throw new ValueError(`UNet layout map: the caption length must be static, got ${String(l)}`);
    let tokens: Tensor = mul(this.token.call(text), unsqueeze(mask, 2)); // [B, L, F], padding at zero
    if (l > layoutTokens) tokens = slice(tokens, 1, 0, layoutTokens);
    if (l < layoutTokens) tokens = concat([tokens, expand(constant(new Float32Array(layoutTokenFeatures), [1, 1, layoutTokenFeatures]), [b, layoutTokens - l, layoutTokenFeatures])], 1);
    const h = silu(this.fc1.call(concat([reshape(tokens, [b, layoutTokens * layoutTokenFeatures]), cond], 1)));
    return reshape(this.fc2.call(h), [b, layoutChannels, this.grid, this.grid]);
  }
}

/**
 * Token placement: every caption token (after the text layers and text positions) says where it goes, as a
 * softmax over the G x G places, and what it puts there (its own projection to K features, zero-initialised);
 * the map sums each token's content over its places. Unlike the layout map's MLP over the whole caption, a
 * token's place is a linear read of its own contextual vector (gated by the caption, below), so what decides it
 * is what the token carries about its role (first or second object, which relation), and a colour or shape word
 * places the same way whichever words it is paired with: a pair never trained can still go to the named side.
 * Padding puts nothing anywhere.
 *
 * Where a token goes depends on its role and on the relation ("first-named, and the caption says left of"), a
 * conjunction that a token's own vector hardly holds: over held-out pairs, a linear read of the colour token's
 * vector (after v14's text layers and positions) told left from right in 60% of cases. So the place logits read
 * the token's vector gated by the caption's mean vector, W (c_k * (1 + M mean(c))), M zero-initialised: the
 * products of the token's features (its position) with the caption's (its relation word) are there to read.
 */
export class TokenPlacement extends ResBlockMap {
  readonly where: Linear; // place logits
  readonly context: Linear; // zero-initialised: the caption's gate on each token's features
  readonly value: Linear; // zero-initialised: the map starts at zero

  constructor(readonly textDim: number, grid: number, widths: number[], rng: Rng) {
    super(grid);
    this.where = this.addModule("where", new Linear(textDim, grid * grid, rng));
    this.context = this.addModule("context", new Linear(textDim, textDim, rng));
    this.value = this.addModule("value", new Linear(textDim, layoutChannels, rng));
    for (const p of [this.context.weight, this.context.bias, this.value.weight, this.value.bias]) p?.data.fill(0);
    this.addProjections(widths, rng);
  }

  /** text [B, L, D], mask [B, L] 0/1 -> each token's place logits [B, L, G*G]. */
  placeLogits(text: Tensor, mask: Tensor): Tensor {
    const m = unsqueeze(mask, 2); // [B, L, 1]
    const mean = div(sum(mul(text, m), 1, true), maximum(sum(m, 1, true), 1)); // [B, 1, D], a dropped caption's at zero
    return this.where.call(mul(text, add(this.context.call(mean), 1)));
  }

  /** text [B, L, D], mask [B, L] 0/1 -> the map [B, K, G, G]. */
  forward(text: Tensor, mask: Tensor): Tensor {
    const b = text.shape[0];
    const places = softmax(this.placeLogits(text, mask), -1); // [B, L, G*G]
    const values = mul(this.value.call(text), unsqueeze(mask, 2)); // [B, L, K], padding at zero
    const map = matmul(transpose(places, [0, 2, 1]), values); // [B, G*G, K]
    return reshape(transpose(map, [0, 2, 1]), [b, layoutChannels, this.grid, this.grid]);
  }
}
