// Composite ops written from primitives: activations, normalisations, attention, resampling.
// Their gradients come from the primitives' rules; tests check values and gradients like any op.
import { ShapeError } from "../util/errors.js";
import {
  add, erf, exp, log, matmul, max, mean, mT, mul, reciprocal, reshape, softmax, sqrt, square,
  stopGradient, sub, sum, tanh, transpose,
} from "./ops-basic.js";
import { type Tensor, fmtShape } from "./tensor.js";
import { make } from "./build.js";

/** SiLU (swish), x * sigmoid(x): the silu primitive. */
export const silu = (x: Tensor) => make("silu", [x], {});

/** Exact GELU: x * Phi(x). */
export const gelu = (x: Tensor) => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));

/** GELU, tanh approximation (T5's "gelu_new"). */
export function geluTanh(x: Tensor): Tensor {
  const inner = mul(add(x, mul(mul(square(x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, 0.5), add(tanh(inner), 1));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const shifted = sub(x, stopGradient(max(x, axis, true)));
  return sub(shifted, log(sum(exp(shifted), axis, true)));
}

const rsqrtEps = (v: Tensor, eps: number) => reciprocal(sqrt(add(v, eps)));

/** Normalises over `axes` with biased variance; mean subtraction optional (RMS norm skips it). */
function normalize(x: Tensor, axes: number[], eps: number, center: boolean): Tensor {
  const xc = center ? sub(x, mean(x, axes, true)) : x;
  return mul(xc, rsqrtEps(mean(square(xc), axes, true), eps));
}

/** LayerNorm over the last axis, with optional affine gamma/beta of shape [D]. */
export function layerNorm(x: Tensor, gamma?: Tensor, beta?: Tensor, eps = 1e-5): Tensor {
  let y = normalize(x, [x.rank - 1], eps, true);
  if (gamma) y = mul(y, gamma);
  if (beta) y = add(y, beta);
  return y;
}

/** RMS norm over the last axis (T5LayerNorm): weight * x / sqrt(mean(x^2) + eps), no centring, no bias. */
export function rmsNorm(x: Tensor, weight?: Tensor, eps = 1e-6): Tensor {
  const y = normalize(x, [x.rank - 1], eps, false);
  return weight ? mul(y, weight) : y;
}

/** GroupNorm on [B, C, ...spatial]: contiguous channel groups, biased variance; gamma/beta [C], or [B, C] when both are given. */
export function groupNorm(x: Tensor, groups: number, gamma?: Tensor, beta?: Tensor, eps = 1e-5): Tensor {
  const c = x.shape[1];
  if (typeof c !== "number" || c % groups !== 0) {
    throw new ShapeError(`groupNorm: channels ${c} of ${fmtShape(x.shape)} must be a static multiple of groups ${groups}`);
  }
  if (gamma && beta) return make("groupNormalize", [x, gamma, beta], { groups, eps });
  let y = make("groupNormalize", [x], { groups, eps }) as Tensor;
  const affineShape = [c, ...x.shape.slice(2).map(() => 1)];
  if (gamma) y = mul(y, reshape(gamma, affineShape));
  if (beta) y = add(y, reshape(beta, affineShape));
  return y;
}

/**
 * Scaled dot-product attention: softmax(q k^T * scale + mask) v over the last two axes.
 * q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv]; mask broadcasts to [..., Lq, Lk] and is added.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, mask?: Tensor, scale?: number): Tensor {
  const d = q.shape[q.rank - 1];
  if (typeof d !== "number") throw new ShapeError(`attention: head dim of q ${fmtShape(q.shape)} must be static`);
  const s = scale ?? 1 / Math.sqrt(d);
  let scores: Tensor = matmul(s === 1 ? q : mul(q, s), mT(k)); // [..., Lq, Lk]
  if (mask) scores = add(scores, mask);
  return matmul(softmax(scores, -1), v);
}

/** Splits [B, L, H*D] into heads [B, H, L, D]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, l, hd] = x.shape;
  if (typeof hd !== "number" || hd % heads !== 0) throw new ShapeError(`splitHeads: width ${hd} not divisible by ${heads} heads`);
  return transposeHeads(reshape(x, [b, l, heads, hd / heads]));
}

/** Merges heads [B, H, L, D] back to [B, L, H*D]. */
export function mergeHeads(x: Tensor): Tensor {
  const [b, h, l, d] = x.shape;
  return reshape(transposeHeads(x), [b, l, (h as number) * (d as number)]);
}

/** [B, L, H, D] <-> [B, H, L, D]. */
function transposeHeads(x: Tensor): Tensor {
  return transpose(x, [0, 2, 1, 3]);
}

/** Multi-head attention over [B, L, H*D] projections; mask is additive, broadcast to [B, H, Lq, Lk]. */
export function multiHeadAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, mask?: Tensor): Tensor {
  return mergeHeads(attention(splitHeads(q, heads), splitHeads(k, heads), splitHeads(v, heads), mask));
}

/** Nearest-neighbour x`factor` upsampling of [B, C, H, W] (the upsampleNearest primitive). */
export function upsampleNearest(x: Tensor, factor = 2): Tensor {
  return make("upsampleNearest", [x], { factor });
}

/** Average pooling with a `factor` x `factor` window and the same stride, on [B, C, H, W]. */
export function avgPool(x: Tensor, factor = 2): Tensor {
  const [b, c, h, w] = x.shape;
  if (typeof h !== "number" || typeof w !== "number" || h % factor !== 0 || w % factor !== 0) {
    throw new ShapeError(`avgPool: H, W of ${fmtShape(x.shape)} must be static multiples of ${factor}`);
  }
  return mean(reshape(x, [b, c, h / factor, factor, w / factor, factor]), [3, 5]);
}
