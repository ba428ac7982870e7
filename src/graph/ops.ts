// The closed set of primitive ops and their attributes. Every op here must have a shape rule
// (shape-rules.ts), a gradient rule (grad-rules.ts), an ONNX lowering (lower-rules.ts) and a reference
// evaluation (interpret.ts); the tables are typed `{ [K in Op]: ... }`, so a missing rule fails to compile.
import type { DType, Dim } from "./tensor.js";

export type Conv2dGeometry = {
  stride: readonly [number, number];
  /** [top, left, bottom, right], as ONNX orders pads. */
  pad: readonly [number, number, number, number];
  dilation: readonly [number, number];
  groups: number;
};

export type Empty = Record<string, never>;

export interface OpAttrs {
  input: { name: string };
  constant: { data: Float32Array | BigInt64Array | Uint8Array };
  // unary elementwise (float)
  neg: Empty; exp: Empty; log: Empty; sqrt: Empty; reciprocal: Empty; tanh: Empty; sigmoid: Empty;
  erf: Empty; sin: Empty; cos: Empty; abs: Empty; relu: Empty; sign: Empty;
  // binary elementwise with numpy broadcasting
  add: Empty; sub: Empty; mul: Empty; div: Empty; maximum: Empty; minimum: Empty;
  less: Empty; greater: Empty; equal: Empty;
  where: Empty;
  /**
   * SiLU, x * sigmoid(x). A primitive so its gradient is one short expression, g * (s + y * (1 - s)) with
   * s = sigmoid(x), instead of the product rule over mul and sigmoid (two fewer full passes in training).
   */
  silu: Empty;
  /** alpha * a + beta * b: a and b of one shape, alpha and beta 0-D (inputs 2 and 3). src/graph/fused.ts */
  axpby: Empty;
  /** AdamW's parameter update (p, m, v of one shape; step, eps, decay 0-D): p * decay - step * m / (sqrt(v) + eps). */
  adamwParam: Empty;
  /** SiLU's backward from its sigmoid s, its output y and the cotangent g (one shape): g * (s + y * (1 - s)). */
  siluGrad: Empty;
  cast: { to: DType };
  /** Batched matrix product [..., M, K] x [..., K, N], batch dims broadcast. */
  matmul: Empty;
  /** x [N, C, H, W], w [O, C/groups, kh, kw] (optional bias [O]) -> [N, O, Ho, Wo]. */
  conv: Conv2dGeometry;
  /** The adjoint of conv: dy [N, O, Ho, Wo], w [O, C/groups, kh, kw] -> [N, C, H, W]. */
  convTranspose: Conv2dGeometry & { outSize: readonly [number, number] };
  /** The weight gradient of conv: x [N, C, H, W], dy [N, O, Ho, Wo] -> [O, C/groups, kh, kw]. */
  convWeightGrad: Conv2dGeometry & { kernel: readonly [number, number] };
  reduceSum: { axes: readonly number[]; keepDims: boolean };
  reduceMax: { axes: readonly number[]; keepDims: boolean };
  reshape: { shape: readonly Dim[] };
  transpose: { perm: readonly number[] };
  expand: { shape: readonly Dim[] };
  /** Step-1 slice along static axes; ends are exclusive and already clamped. */
  slice: { axes: readonly number[]; starts: readonly number[]; ends: readonly number[] };
  flip: { axes: readonly number[] };
  concat: { axis: number };
  /** Zero padding; [begin per axis..., end per axis...] as ONNX orders pads. */
  pad: { pads: readonly number[] };
  /** Rows of data [R, ...] picked by int64 indices [...I] -> [...I, ...]. */
  gather: Empty;
  /** Adjoint of gather: indices [...I], updates [...I, ...D] -> zeros [rows, ...D] with rows added in. */
  scatterAdd: { rows: Dim };
  softmax: { axis: number };
  /**
   * GroupNorm: x [B, C, ...] normalised per sample over each of `groups` contiguous channel blocks (biased
   * variance), then, when gamma [C] and beta [C] are given as inputs 2 and 3, scaled and shifted per channel.
   * A primitive so it can lower to one ORT normalisation kernel (LayerNormalization over the groups), and so
   * its gradient (written from primitives) can fold the affine's into the normalisation's: fewer full passes
   * than the chain rule over both.
   */
  groupNormalize: { groups: number; eps: number };
  /**
   * GroupNorm's backward, part 1 (src/graph/fused.ts): x and the cotangent g, both [B, C, ...] -> [B, 4, C]
   * rows p (sum of g * xhat), q (sum of g), the group mean and the reciprocal std, per sample and channel.
   */
  groupNormStats: { groups: number; eps: number };
  /** GroupNorm's backward, part 2: (x, g, stats [B, 4, C], gamma [C] or [B, C]) -> dx. */
  groupNormInputGrad: { groups: number };
  /**
   * Nearest-neighbour upsampling of x [B, C, H, W] by an integer factor. A primitive so it lowers to ORT's
   * Resize (which its NCHWc rewrite keeps blocked) instead of a 6-D Expand; the gradient sums each block.
   */
  upsampleNearest: { factor: number };
  /** Identity whose gradient is zero. */
  stopGradient: Empty;
  /** float32 scalar: the product of the input's sizes at `axes` (works for symbolic dims). */
  dimSize: { axes: readonly number[] };
}

export type Op = keyof OpAttrs;

export const unaryOps = [
  "neg", "exp", "log", "sqrt", "reciprocal", "tanh", "sigmoid", "erf", "sin", "cos", "abs", "relu", "sign",
] as const satisfies readonly Op[];
export type UnaryOp = (typeof unaryOps)[number];

export const binaryOps = [
  "add", "sub", "mul", "div", "maximum", "minimum", "less", "greater", "equal",
] as const satisfies readonly Op[];
export type BinaryOp = (typeof binaryOps)[number];

export const comparisonOps: ReadonlySet<Op> = new Set<Op>(["less", "greater", "equal"]);

/** Every op, listed once; tests walk this list to prove each op has every rule and a check. */
export const allOps: readonly Op[] = [
  "input", "constant", ...unaryOps, ...binaryOps, "where", "silu", "siluGrad", "axpby", "adamwParam", "cast", "matmul", "conv", "convTranspose",
  "convWeightGrad", "reduceSum", "reduceMax", "reshape", "transpose", "expand", "slice", "flip", "concat",
  "pad", "gather", "scatterAdd", "softmax", "groupNormalize", "groupNormStats", "groupNormInputGrad", "upsampleNearest", "stopGradient", "dimSize",
];
