// The user-facing primitive functions: elementwise math, reductions and shape manipulation.
// Numbers are accepted wherever a float tensor is, and broadcast as scalars.
import { ShapeError } from "../util/errors.js";
import { lift, make } from "./build.js";
import type { Conv2dGeometry } from "./ops.js";
import { normAxis } from "./shape-rules.js";
import { type DType, type Dim, type Shape, Tensor, divideDim, fmtShape, productDim } from "./tensor.js";

type T = Tensor | number;

export const neg = (x: Tensor) => make("neg", [x], {});
export const exp = (x: Tensor) => make("exp", [x], {});
export const log = (x: Tensor) => make("log", [x], {});
export const sqrt = (x: Tensor) => make("sqrt", [x], {});
export const reciprocal = (x: Tensor) => make("reciprocal", [x], {});
export const tanh = (x: Tensor) => make("tanh", [x], {});
export const sigmoid = (x: Tensor) => make("sigmoid", [x], {});
export const erf = (x: Tensor) => make("erf", [x], {});
export const sin = (x: Tensor) => make("sin", [x], {});
export const cos = (x: Tensor) => make("cos", [x], {});
export const abs = (x: Tensor) => make("abs", [x], {});
export const relu = (x: Tensor) => make("relu", [x], {});
export const sign = (x: Tensor) => make("sign", [x], {});

export const add = (a: T, b: T) => make("add", [lift(a), lift(b)], {});
export const sub = (a: T, b: T) => make("sub", [lift(a), lift(b)], {});
export const mul = (a: T, b: T) => make("mul", [lift(a), lift(b)], {});
export const div = (a: T, b: T) => make("div", [lift(a), lift(b)], {});
export const maximum = (a: T, b: T) => make("maximum", [lift(a), lift(b)], {});
export const minimum = (a: T, b: T) => make("minimum", [lift(a), lift(b)], {});
export const less = (a: T, b: T) => make("less", [lift(a), lift(b)], {});
export const greater = (a: T, b: T) => make("greater", [lift(a), lift(b)], {});
export const equal = (a: T, b: T) => make("equal", [lift(a), lift(b)], {});
export const where = (c: Tensor, a: T, b: T) => make("where", [c, lift(a), lift(b)], {});
export const cast = (x: Tensor, to: DType) => (x.dtype === to ? x : make("cast", [x], { to }));
export const square = (x: Tensor) => mul(x, x);
export const stopGradient = (x: Tensor) => make("stopGradient", [x], {});

export const matmul = (a: Tensor, b: Tensor) => make("matmul", [a, b], {});

function axesOf(x: Tensor, axes: number | readonly number[] | undefined, op: string): number[] {
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === "number" ? [axes] : axes;
  return list.map((a) => normAxis(a, x.rank, op, [x])).sort((p, q) => p - q);
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = axesOf(x, axes, "sum");
  return ax.length === 0 ? x : make("reduceSum", [x], { axes: ax, keepDims });
}

export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = axesOf(x, axes, "max");
  return ax.length === 0 ? x : make("reduceMax", [x], { axes: ax, keepDims });
}

/** Product of the sizes of `axes` as a float32 scalar tensor (a constant when the sizes are static). */
export function countOf(x: Tensor, axes: readonly number[]): Tensor {
  let n = 1;
  for (const a of axes) {
    const d = x.shape[a];
    if (typeof d !== "number") return make("dimSize", [x], { axes });
    n *= d;
  }
  return lift(n);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = axesOf(x, axes, "mean");
  return div(sum(x, ax, keepDims), countOf(x, ax));
}

/** Reshape; one entry may be -1 (inferred from the static sizes), 0 copies the input's dimension. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const dims: Dim[] = shape.map((d, i) => (d === 0 ? x.shape[i] : d));
  const infer = dims.indexOf(-1);
  if (infer >= 0) {
    const known = productDim(dims.filter((_, i) => i !== infer));
    const rest = divideDim(productDim(x.shape), known);
    if (rest === null) throw new ShapeError(`reshape: cannot infer -1 in ${fmtShape(shape)} from ${fmtShape(x.shape)}`);
    dims[infer] = rest;
  }
  if (dims.length === x.rank && dims.every((d, i) => d === x.shape[i])) return x;
  return make("reshape", [x], { shape: dims });
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  return p.every((v, i) => v === i) ? x : make("transpose", [x], { perm: p });
}

/** Swaps the last two axes. */
export function mT(x: Tensor): Tensor {
  const p = x.shape.map((_, i) => i);
  [p[x.rank - 2], p[x.rank - 1]] = [p[x.rank - 1], p[x.rank - 2]];
  return transpose(x, p);
}

export function expand(x: Tensor, shape: Shape): Tensor {
  if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return x;
  return make("expand", [x], { shape: [...shape] });
}

/** Slices [start, end) along `axis` (negative values count from the end, like Python). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis(axis, x.rank, "slice", [x]);
  const d = x.shape[a];
  if (typeof d !== "number") throw new ShapeError(`slice: axis ${axis} of ${fmtShape(x.shape)} is symbolic`);
  const s = Math.max(0, Math.min(d, start < 0 ? start + d : start));
  const e = Math.max(0, Math.min(d, end === undefined ? d : end < 0 ? end + d : end));
  if (s === 0 && e === d) return x;
  return make("slice", [x], { axes: [a], starts: [s], ends: [e] });
}

/** Splits `x` along `axis` into pieces of the given sizes. */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  let at = 0;
  return sizes.map((n) => slice(x, axis, at, (at += n)));
}

export const flip = (x: Tensor, axes: readonly number[]) => make("flip", [x], { axes: axes.map((a) => normAxis(a, x.rank, "flip", [x])) });

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 1) return xs[0];
  return make("concat", xs, { axis: normAxis(axis, xs[0].rank, "concat", xs) });
}

/** Zero padding with ONNX's layout: [begin per axis..., end per axis...]. */
export const pad = (x: Tensor, pads: readonly number[]) => (pads.every((p) => p === 0) ? x : make("pad", [x], { pads }));

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank + 1 : axis;
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

export const gather = (data: Tensor, indices: Tensor) => make("gather", [data, indices], {});
export const softmax = (x: Tensor, axis = -1) => make("softmax", [x], { axis: normAxis(axis, x.rank, "softmax", [x]) });

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  /** One number, [h, w], or [top, left, bottom, right]. */
  padding?: number | readonly number[];
  dilation?: number | readonly [number, number];
  groups?: number;
}

export function convGeometry(o: Conv2dOptions = {}): Conv2dGeometry {
  const pair = (v: number | readonly number[] | undefined, dflt: number): [number, number] =>
    v === undefined ? [dflt, dflt] : typeof v === "number" ? [v, v] : [v[0], v[1]];
  const p = o.padding;
  const pad: [number, number, number, number] = p === undefined ? [0, 0, 0, 0] : typeof p === "number" ? [p, p, p, p]
    : p.length === 2 ? [p[0], p[1], p[0], p[1]] : [p[0], p[1], p[2], p[3]];
  return { stride: pair(o.stride, 1), pad, dilation: pair(o.dilation, 1), groups: o.groups ?? 1 };
}

/** 2-D cross-correlation, PyTorch semantics: x [N, C, H, W], w [O, C/groups, kh, kw], bias [O]. */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor, options: Conv2dOptions = {}): Tensor {
  return make("conv", bias ? [x, w, bias] : [x, w], convGeometry(options));
}
