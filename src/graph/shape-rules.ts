// Shape and dtype inference, one rule per primitive. A rule throws ShapeError while the graph is built,
// naming the op, the module path and the shapes, so ONNX Runtime never meets a malformed graph.
import { ShapeError } from "../util/errors.js";
import type { Conv2dGeometry, Op, OpAttrs } from "./ops.js";
import { binaryOps, comparisonOps, unaryOps } from "./ops.js";
import { currentScope, fmtShape, productDim, type DType, type Dim, type Shape, type Tensor } from "./tensor.js";

export type ShapeRule<K extends Op> = (inputs: readonly Tensor[], attrs: OpAttrs[K]) => { shape: Shape; dtype: DType };

export function shapeError(op: string, message: string, inputs: readonly Tensor[]): ShapeError {
  const scope = currentScope() || "(top level)";
  const shapes = inputs.map((t) => `${fmtShape(t.shape)} ${t.dtype}`).join(" and ");
  return new ShapeError(`${op} at ${scope}: ${message}; input shapes ${shapes}`);
}

function check(cond: boolean, op: string, inputs: readonly Tensor[], message: () => string): asserts cond {
  if (!cond) throw shapeError(op, message(), inputs);
}

/** Numpy broadcasting of two shapes; symbols broadcast only against 1 or the same symbol. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | null {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else return null;
  }
  return out;
}

export function normAxis(axis: number, rank: number, op: string, inputs: readonly Tensor[]): number {
  const a = axis < 0 ? axis + rank : axis;
  check(Number.isInteger(a) && a >= 0 && a < rank, op, inputs, () => `axis ${axis} out of range for rank ${rank}`);
  return a;
}

function sameDims(a: { shape: Shape }, b: { shape: Shape }): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** x [B, C, ...] with C and the axes after it static, C divisible by `groups`. */
function checkGroupedInput(op: string, inputs: readonly Tensor[], groups: number): void {
  const x = inputs[0];
  const c = x.shape[1];
  check(x.rank >= 3 && typeof c === "number" && Number.isInteger(groups) && groups >= 1 && c % groups === 0
    && x.shape.slice(1).every((d) => typeof d === "number"), op, inputs, () => `expected [B, C, ...] with static C divisible by groups ${groups} and static axes 1..`);
}

/** `n` float tensors of one shape, then 0-D float scalars: the shape of the first. */
function scalarsAfter(op: string, inputs: readonly Tensor[], n: number): { shape: Shape; dtype: DType } {
  floatOnly(op, inputs);
  check(inputs.slice(0, n).every((t) => sameDims(t, inputs[0])) && inputs.slice(n).every((t) => t.rank === 0),
    op, inputs, () => `expected ${n} tensors of one shape, then scalars`);
  return { shape: inputs[0].shape, dtype: "float32" };
}

function floatOnly(op: string, inputs: readonly Tensor[]): void {
  for (const t of inputs) check(t.dtype === "float32", op, inputs, () => `expected float32 inputs, got ${t.dtype}`);
}

const unary: ShapeRule<Op> = (inputs) => {
  floatOnly("unary", inputs);
  return { shape: inputs[0].shape, dtype: "float32" };
};

function binaryRule(op: Op): ShapeRule<Op> {
  return (inputs) => {
    const [a, b] = inputs;
    check(a.dtype === b.dtype, op, inputs, () => `dtypes differ (${a.dtype} vs ${b.dtype})`);
    const shape = broadcastShapes(a.shape, b.shape);
    check(shape !== null, op, inputs, () => "shapes do not broadcast");
    return { shape, dtype: comparisonOps.has(op) ? "bool" : a.dtype };
  };
}

function convOut(size: number, k: number, stride: number, padA: number, padB: number, dil: number): number {
  return Math.floor((size + padA + padB - dil * (k - 1) - 1) / stride) + 1;
}

function checkGeometry(op: string, inputs: readonly Tensor[], g: Conv2dGeometry): void {
  const ok = [...g.stride, ...g.dilation, g.groups].every((v) => Number.isInteger(v) && v >= 1)
    && g.pad.every((v) => Number.isInteger(v) && v >= 0);
  check(ok, op, inputs, () => `invalid geometry ${JSON.stringify(g)}: strides, dilations, groups >= 1, pads >= 0`);
}

function staticDims(op: string, inputs: readonly Tensor[], t: Tensor, from: number): number[] {
  const dims = t.shape.slice(from);
  check(dims.every((d) => typeof d === "number"), op, inputs, () => `axes ${from}.. must be static`);
  return dims as number[];
}

function reduceRule(op: Op): ShapeRule<"reduceSum" | "reduceMax"> {
  return (inputs, attrs) => {
    const x = inputs[0];
    const axes = attrs.axes.map((a) => normAxis(a, x.rank, op, inputs));
    check(new Set(axes).size === axes.length, op, inputs, () => `repeated axes ${attrs.axes}`);
    const shape = x.shape.flatMap((d, i) => (axes.includes(i) ? (attrs.keepDims ? [1] : []) : [d]));
    return { shape, dtype: x.dtype };
  };
}

export const shapeRules: { [K in Op]: ShapeRule<K> } = {
  input: () => {
    throw new ShapeError("input: leaves are made by input(), not by the op table");
  },
  constant: () => {
    throw new ShapeError("constant: leaves are made by constant(), not by the op table");
  },
  ...(Object.fromEntries(unaryOps.map((k) => [k, unary])) as { [K in (typeof unaryOps)[number]]: ShapeRule<K> }),
  ...(Object.fromEntries(binaryOps.map((k) => [k, binaryRule(k)])) as { [K in (typeof binaryOps)[number]]: ShapeRule<K> }),
  where: (inputs) => {
    const [c, a, b] = inputs;
    check(c.dtype === "bool", "where", inputs, () => `condition must be bool, got ${c.dtype}`);
    check(a.dtype === b.dtype, "where", inputs, () => `branch dtypes differ (${a.dtype} vs ${b.dtype})`);
    const ab = broadcastShapes(a.shape, b.shape);
    const shape = ab && broadcastShapes(c.shape, ab);
    check(shape !== null, "where", inputs, () => "shapes do not broadcast");
    return { shape, dtype: a.dtype };
  },
  silu: unary,
  cast: (inputs, attrs) => ({ shape: inputs[0].shape, dtype: attrs.to }),
  matmul: (inputs) => {
    const [a, b] = inputs;
    floatOnly("matmul", inputs);
    check(a.rank >= 2 && b.rank >= 2, "matmul", inputs, () => "both operands need rank >= 2");
    const k1 = a.shape[a.rank - 1];
    const k2 = b.shape[b.rank - 2];
    check(k1 === k2, "matmul", inputs, () => `inner dimensions differ (${k1} vs ${k2})`);
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    check(batch !== null, "matmul", inputs, () => "batch dimensions do not broadcast");
    return { shape: [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]], dtype: "float32" };
  },
  conv: (inputs, g) => {
    const [x, w, bias] = inputs;
    floatOnly("conv", inputs);
    check(x.rank === 4 && w.rank === 4, "conv", inputs, () => "expected x [N, C, H, W] and w [O, C/groups, kh, kw]");
    checkGeometry("conv", inputs, g);
    const [c, h, wd] = staticDims("conv", inputs, x, 1);
    const [o, cg, kh, kw] = staticDims("conv", inputs, w, 0);
    check(c === cg * g.groups && o % g.groups === 0, "conv", inputs, () => `channels ${c} != ${cg} x groups ${g.groups}`);
    check(!bias || (bias.rank === 1 && bias.shape[0] === o), "conv", inputs, () => `bias must be [${o}]`);
    const ho = convOut(h, kh, g.stride[0], g.pad[0], g.pad[2], g.dilation[0]);
    const wo = convOut(wd, kw, g.stride[1], g.pad[1], g.pad[3], g.dilation[1]);
    check(ho >= 1 && wo >= 1, "conv", inputs, () => `kernel larger than the padded input (output ${ho}x${wo})`);
    return { shape: [x.shape[0], o, ho, wo], dtype: "float32" };
  },
  convTranspose: (inputs, g) => {
    const [dy, w] = inputs;
    floatOnly("convTranspose", inputs);
    check(dy.rank === 4 && w.rank === 4, "convTranspose", inputs, () => "expected dy [N, O, Ho, Wo] and w [O, C/groups, kh, kw]");
    checkGeometry("convTranspose", inputs, g);
    const [o, ho, wo] = staticDims("convTranspose", inputs, dy, 1);
    const [ow, cg, kh, kw] = staticDims("convTranspose", inputs, w, 0);
    check(o === ow, "convTranspose", inputs, () => `channels ${o} != weight rows ${ow}`);
    const [h, wd] = g.outSize;
    const okH = convOut(h, kh, g.stride[0], g.pad[0], g.pad[2], g.dilation[0]) === ho;
    const okW = convOut(wd, kw, g.stride[1], g.pad[1], g.pad[3], g.dilation[1]) === wo;
    check(okH && okW, "convTranspose", inputs, () => `outSize ${h}x${wd} does not map to ${ho}x${wo}`);
    return { shape: [dy.shape[0], cg * g.groups, h, wd], dtype: "float32" };
  },
  convWeightGrad: (inputs, g) => {
    const [x, dy] = inputs;
    floatOnly("convWeightGrad", inputs);
    check(x.rank === 4 && dy.rank === 4, "convWeightGrad", inputs, () => "expected x [N, C, H, W] and dy [N, O, Ho, Wo]");
    checkGeometry("convWeightGrad", inputs, g);
    const [c, h, wd] = staticDims("convWeightGrad", inputs, x, 1);
    const [o, ho, wo] = staticDims("convWeightGrad", inputs, dy, 1);
    const [kh, kw] = g.kernel;
    const okH = convOut(h, kh, g.stride[0], g.pad[0], g.pad[2], g.dilation[0]) === ho;
    const okW = convOut(wd, kw, g.stride[1], g.pad[1], g.pad[3], g.dilation[1]) === wo;
    check(okH && okW && c % g.groups === 0 && o % g.groups === 0, "convWeightGrad", inputs,
      () => `dy size ${ho}x${wo} does not match a ${kh}x${kw} conv of ${h}x${wd}`);
    return { shape: [o, c / g.groups, kh, kw], dtype: "float32" };
  },
  reduceSum: reduceRule("reduceSum"),
  reduceMax: reduceRule("reduceMax"),
  reshape: (inputs, attrs) => {
    const x = inputs[0];
    const ok = productDim(x.shape) === productDim(attrs.shape)
      && attrs.shape.every((d) => typeof d === "string" || (Number.isInteger(d) && d >= 0));
    check(ok, "reshape", inputs, () => `cannot reshape to ${fmtShape(attrs.shape)}`);
    return { shape: attrs.shape, dtype: x.dtype };
  },
  transpose: (inputs, attrs) => {
    const x = inputs[0];
    const ok = attrs.perm.length === x.rank && [...attrs.perm].sort((p, q) => p - q).every((p, i) => p === i);
    check(ok, "transpose", inputs, () => `perm ${fmtShape(attrs.perm)} is not a permutation of ${x.rank} axes`);
    return { shape: attrs.perm.map((p) => x.shape[p]), dtype: x.dtype };
  },
  expand: (inputs, attrs) => {
    const x = inputs[0];
    const out = broadcastShapes(x.shape, attrs.shape);
    const ok = out !== null && out.length === attrs.shape.length && out.every((d, i) => d === attrs.shape[i]);
    check(ok, "expand", inputs, () => `cannot broadcast to ${fmtShape(attrs.shape)}`);
    return { shape: attrs.shape, dtype: x.dtype };
  },
  slice: (inputs, attrs) => {
    const x = inputs[0];
    const shape = [...x.shape];
    attrs.axes.forEach((a, i) => {
      const d = x.shape[a];
      const [s, e] = [attrs.starts[i], attrs.ends[i]];
      check(typeof d === "number" && Number.isInteger(s) && Number.isInteger(e) && 0 <= s && s < e && e <= d,
        "slice", inputs, () => `range ${s}:${e} invalid on axis ${a} of size ${d}`);
      shape[a] = e - s;
    });
    return { shape, dtype: x.dtype };
  },
  flip: (inputs, attrs) => {
    attrs.axes.forEach((a) => normAxis(a, inputs[0].rank, "flip", inputs));
    return { shape: inputs[0].shape, dtype: inputs[0].dtype };
  },
  concat: (inputs, attrs) => {
    const first = inputs[0];
    const axis = normAxis(attrs.axis, first.rank, "concat", inputs);
    let total = 0;
    for (const t of inputs) {
      const ok = t.rank === first.rank && t.dtype === first.dtype && t.shape.every((d, i) => i === axis || d === first.shape[i]);
      check(ok && typeof t.shape[axis] === "number", "concat", inputs, () => `shapes disagree off axis ${axis}`);
      total += t.shape[axis] as number;
    }
    return { shape: first.shape.map((d, i) => (i === axis ? total : d)), dtype: first.dtype };
  },
  pad: (inputs, attrs) => {
    const x = inputs[0];
    check(attrs.pads.length === 2 * x.rank && attrs.pads.every((p) => Number.isInteger(p) && p >= 0), "pad", inputs,
      () => `pads must be ${2 * x.rank} non-negative integers, got ${fmtShape(attrs.pads)}`);
    const shape = x.shape.map((d, i) => {
      const extra = attrs.pads[i] + attrs.pads[i + x.rank];
      check(extra === 0 || typeof d === "number", "pad", inputs, () => `cannot pad symbolic axis ${i}`);
      return extra === 0 ? d : (d as number) + extra;
    });
    return { shape, dtype: x.dtype };
  },
  gather: (inputs) => {
    const [data, idx] = inputs;
    check(idx.dtype === "int64" && data.rank >= 1, "gather", inputs, () => "expected data [R, ...] and int64 indices");
    return { shape: [...idx.shape, ...data.shape.slice(1)], dtype: data.dtype };
  },
  scatterAdd: (inputs, attrs) => {
    const [idx, upd] = inputs;
    const ok = idx.dtype === "int64" && upd.rank >= idx.rank && idx.shape.every((d, i) => d === upd.shape[i]);
    check(ok, "scatterAdd", inputs, () => "updates must be [...indices shape, ...row shape]");
    return { shape: [attrs.rows, ...upd.shape.slice(idx.rank)], dtype: upd.dtype };
  },
  softmax: (inputs, attrs) => {
    floatOnly("softmax", inputs);
    normAxis(attrs.axis, inputs[0].rank, "softmax", inputs);
    return { shape: inputs[0].shape, dtype: "float32" };
  },
  groupNormalize: (inputs, attrs) => {
    const x = inputs[0];
    floatOnly("groupNormalize", inputs);
    const c = x.shape[1];
    check(x.rank >= 3 && typeof c === "number" && Number.isInteger(attrs.groups) && attrs.groups >= 1 && c % attrs.groups === 0,
      "groupNormalize", inputs, () => `expected [B, C, ...] with static C divisible by groups ${attrs.groups}`);
    check(x.shape.slice(1).every((d) => typeof d === "number") && attrs.eps >= 0, "groupNormalize", inputs, () => "axes 1.. must be static and eps >= 0");
    // The affine is per channel ([C]) or per sample and channel ([B, C], e.g. with a FiLM modulation folded in).
    const affine = (t: Tensor) => t.dtype === "float32" && t.shape[t.rank - 1] === c && (t.rank === 1 || (t.rank === 2 && t.shape[0] === x.shape[0]));
    check(inputs.length === 1 || (inputs.length === 3 && inputs.slice(1).every(affine)),
      "groupNormalize", inputs, () => `expected x alone or x, gamma and beta each [${c}] or [${String(x.shape[0])}, ${c}]`);
    return { shape: x.shape, dtype: "float32" };
  },
  axpby: (inputs) => scalarsAfter("axpby", inputs, 2),
  adamwParam: (inputs) => scalarsAfter("adamwParam", inputs, 3),
  siluGrad: (inputs) => {
    floatOnly("siluGrad", inputs);
    check(inputs.length === 3 && inputs.every((t) => sameDims(t, inputs[0])), "siluGrad", inputs, () => "expected s, y and g of one shape");
    return { shape: inputs[0].shape, dtype: "float32" };
  },
  groupNormStats: (inputs, attrs) => {
    const [x, g] = inputs;
    floatOnly("groupNormStats", inputs);
    checkGroupedInput("groupNormStats", inputs, attrs.groups);
    check(inputs.length === 2 && sameDims(g, x) && attrs.eps >= 0, "groupNormStats", inputs, () => "expected x and a cotangent g of the same shape, and eps >= 0");
    return { shape: [x.shape[0], 4, x.shape[1]], dtype: "float32" };
  },
  groupNormInputGrad: (inputs, attrs) => {
    const [x, g, stats, gamma] = inputs;
    floatOnly("groupNormInputGrad", inputs);
    checkGroupedInput("groupNormInputGrad", inputs, attrs.groups);
    const c = x.shape[1];
    const ok = inputs.length === 4 && sameDims(g, x) && sameDims(stats, { shape: [x.shape[0], 4, c] })
      && gamma.shape[gamma.rank - 1] === c && (gamma.rank === 1 || (gamma.rank === 2 && gamma.shape[0] === x.shape[0]));
    check(ok, "groupNormInputGrad", inputs, () => `expected x, g [B, ${String(c)}, ...], stats [B, 4, ${String(c)}] and gamma [${String(c)}] or [B, ${String(c)}]`);
    return { shape: x.shape, dtype: "float32" };
  },
  upsampleNearest: (inputs, attrs) => {
    const x = inputs[0];
    floatOnly("upsampleNearest", inputs);
    const [h, w] = [x.shape[2], x.shape[3]];
    check(x.rank === 4 && typeof h === "number" && typeof w === "number" && Number.isInteger(attrs.factor) && attrs.factor >= 1,
      "upsampleNearest", inputs, () => `expected [B, C, H, W] with static H, W and an integer factor >= 1 (got ${attrs.factor})`);
    return { shape: [x.shape[0], x.shape[1], (h as number) * attrs.factor, (w as number) * attrs.factor], dtype: "float32" };
  },
  stopGradient: (inputs) => ({ shape: inputs[0].shape, dtype: inputs[0].dtype }),
  dimSize: (inputs, attrs) => {
    attrs.axes.forEach((a) => normAxis(a, inputs[0].rank, "dimSize", inputs));
    return { shape: [], dtype: "float32" };
  },
};

export { check as checkShape };
