// Vector-Jacobian products, one per primitive (micrograd style: each backward written from its forward).
// A rule gets the node and the cotangent of its output and returns one cotangent (or null) per input.
import type { Op } from "./ops.js";
import { binaryOps, unaryOps } from "./ops.js";
import { constant, make } from "./build.js";
import { grad } from "./autodiff.js";
import { adamwParamDecomposed, groupNormInputGradDecomposed, groupNormStatsDecomposed, siluGradDecomposed } from "./fused.js";
import {
  add, cos, div, mean, reciprocal, sqrt, equal, exp, expand, flip, gather, less, mT, matmul, mul, neg, pad, reshape, sign, sin,
  sigmoid, slice, square, sub, sum, transpose, where,
} from "./ops-basic.js";
import { type Shape, Tensor } from "./tensor.js";

/** The vector-Jacobian product of a node through an equivalent expression in other primitives. */
function viaDecomposition(n: Tensor, g: Tensor, expr: (inputs: readonly Tensor[]) => Tensor): Tensor[] {
  return grad(sum(mul(expr(n.inputs), g)), n.inputs);
}

export type GradRule<K extends Op> = (node: Tensor<K>, g: Tensor) => (Tensor | null)[];

/** Sums `g` over the axes that broadcasting added, so it takes `shape` again. */
export function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reshape(sum(g, axes, false), shape);
}

const zeroGrad = (n: Tensor) => n.inputs.map(() => null);

type UnaryRules = { [K in (typeof unaryOps)[number]]: GradRule<K> };
const unaryRules: UnaryRules = {
  neg: (_, g) => [neg(g)],
  exp: (n, g) => [mul(g, n)],
  log: (n, g) => [div(g, n.inputs[0])],
  sqrt: (n, g) => [div(mul(g, 0.5), n)],
  reciprocal: (n, g) => [neg(mul(g, square(n)))],
  tanh: (n, g) => [mul(g, sub(1, square(n)))],
  sigmoid: (n, g) => [mul(g, mul(n, sub(1, n)))],
  erf: (n, g) => [mul(g, mul(2 / Math.sqrt(Math.PI), exp(neg(square(n.inputs[0])))))],
  sin: (n, g) => [mul(g, cos(n.inputs[0]))],
  cos: (n, g) => [neg(mul(g, sin(n.inputs[0])))],
  abs: (n, g) => [mul(g, sign(n.inputs[0]))],
  relu: (n, g) => [where(less(n.inputs[0], 0), 0, where(equal(n.inputs[0], 0), 0, g))],
  sign: zeroGrad,
};

type BinaryRules = { [K in (typeof binaryOps)[number]]: GradRule<K> };
const binaryRules: BinaryRules = {
  add: (n, g) => [unbroadcast(g, n.inputs[0].shape), unbroadcast(g, n.inputs[1].shape)],
  sub: (n, g) => [unbroadcast(g, n.inputs[0].shape), unbroadcast(neg(g), n.inputs[1].shape)],
  mul: (n, g) => [unbroadcast(mul(g, n.inputs[1]), n.inputs[0].shape), unbroadcast(mul(g, n.inputs[0]), n.inputs[1].shape)],
  div: (n, g) => {
    const [a, b] = n.inputs;
    const ga = div(g, b);
    return [unbroadcast(ga, a.shape), unbroadcast(neg(mul(ga, n)), b.shape)];
  },
  // Ties send the whole gradient to the first operand.
  maximum: (n, g) => {
    const [a, b] = n.inputs;
    const bWins = less(a, b);
    return [unbroadcast(where(bWins, 0, g), a.shape), unbroadcast(where(bWins, g, 0), b.shape)];
  },
  minimum: (n, g) => {
    const [a, b] = n.inputs;
    const bWins = less(b, a);
    return [unbroadcast(where(bWins, 0, g), a.shape), unbroadcast(where(bWins, g, 0), b.shape)];
  },
  less: zeroGrad,
  greater: zeroGrad,
  equal: zeroGrad,
};

export const gradRules: { [K in Op]: GradRule<K> } = {
  input: zeroGrad,
  constant: zeroGrad,
  ...unaryRules,
  ...binaryRules,
  where: (n, g) => {
    const [c, a, b] = n.inputs;
    return [null, unbroadcast(where(c, g, 0), a.shape), unbroadcast(where(c, 0, g), b.shape)];
  },
  // One fused pass where the native binding runs the graph (siluGrad); the Sigmoid is shared with the forward's.
  silu: (n, g) => [make("siluGrad", [sigmoid(n.inputs[0]), n, g], {})],
  axpby: (n, g) => {
    const [a, b, alpha, beta] = n.inputs;
    return [mul(g, alpha), mul(g, beta), sum(mul(g, a)), sum(mul(g, b))];
  },
  adamwParam: (n, g) => viaDecomposition(n, g, ([p, m, v, step, eps, decay]) => adamwParamDecomposed(p, m, v, step, eps, decay)),
  siluGrad: (n, g) => viaDecomposition(n, g, ([s, y, gy]) => siluGradDecomposed(s, y, gy)),
  cast: (n, g) => [n.inputs[0].dtype === "float32" && n.dtype === "float32" ? g : null],
  matmul: (n, g) => {
    const [a, b] = n.inputs;
    // A shared 2-D weight: flatten the batch into rows so its gradient is one GEMM, not a batched sum.
    const gb = b.rank === 2 && a.rank > 2
      ? matmul(mT(reshape(a, [-1, a.shape[a.rank - 1]])), reshape(g, [-1, g.shape[g.rank - 1]]))
      : unbroadcast(matmul(mT(a), g), b.shape);
    return [unbroadcast(matmul(g, mT(b)), a.shape), gb];
  },
  conv: (n, g) => {
    const [x, w, bias] = n.inputs;
    const geo = n.attrs;
    const gx = make("convTranspose", [g, w], { ...geo, outSize: [x.shape[2] as number, x.shape[3] as number] });
    const gw = make("convWeightGrad", [x, g], { ...geo, kernel: [w.shape[2] as number, w.shape[3] as number] });
    return bias ? [gx, gw, sum(g, [0, 2, 3])] : [gx, gw];
  },
  convTranspose: (n, g) => {
    const [dy, w] = n.inputs;
    const { outSize: _outSize, ...geo } = n.attrs;
    const gdy = make("conv", [g, w], geo);
    const gw = make("convWeightGrad", [g, dy], { ...geo, kernel: [w.shape[2] as number, w.shape[3] as number] });
    return [gdy, gw];
  },
  convWeightGrad: (n, g) => {
    const [x, dy] = n.inputs;
    const { kernel: _kernel, ...geo } = n.attrs;
    const gx = make("convTranspose", [dy, g], { ...geo, outSize: [x.shape[2] as number, x.shape[3] as number] });
    const gdy = make("conv", [x, g], geo);
    return [gx, gdy];
  },
  reduceSum: (n, g) => {
    const x = n.inputs[0];
    const kept = x.shape.map((d, i) => (n.attrs.axes.includes(i) ? 1 : d));
    return [expand(reshape(g, kept), x.shape)];
  },
  reduceMax: (n, g) => {
    const x = n.inputs[0];
    const kept = x.shape.map((d, i) => (n.attrs.axes.includes(i) ? 1 : d));
    const hit = equal(x, reshape(n, kept));
    return [where(hit, reshape(g, kept), 0)];
  },
  reshape: (n, g) => [reshape(g, n.inputs[0].shape)],
  transpose: (n, g) => {
    const inv: number[] = [];
    n.attrs.perm.forEach((p, i) => (inv[p] = i));
    return [transpose(g, inv)];
  },
  expand: (n, g) => [unbroadcast(g, n.inputs[0].shape)],
  slice: (n, g) => {
    const x = n.inputs[0];
    const pads = new Array<number>(2 * x.rank).fill(0);
    n.attrs.axes.forEach((a, i) => {
      pads[a] = n.attrs.starts[i];
      pads[a + x.rank] = (x.shape[a] as number) - n.attrs.ends[i];
    });
    return [pad(g, pads)];
  },
  flip: (n, g) => [flip(g, n.attrs.axes)],
  concat: (n, g) => {
    let at = 0;
    return n.inputs.map((t) => {
      const size = t.shape[n.attrs.axis] as number;
      return slice(g, n.attrs.axis, at, (at += size));
    });
  },
  pad: (n, g) => {
    const x = n.inputs[0];
    let out = g;
    x.shape.forEach((d, a) => {
      const begin = n.attrs.pads[a];
      if (begin !== 0 || n.attrs.pads[a + x.rank] !== 0) out = slice(out, a, begin, begin + (d as number));
    });
    return [out];
  },
  gather: (n, g) => {
    const [data, idx] = n.inputs;
    return [make("scatterAdd", [idx, g], { rows: data.shape[0] }), null];
  },
  scatterAdd: (n, g) => [null, gather(g, n.inputs[0])],
  softmax: (n, g) => {
    const gy = mul(g, n);
    return [sub(gy, mul(n, sum(gy, n.attrs.axis, true)))];
  },
  // GroupNorm's backward in two fused primitives (src/graph/fused.ts): per-channel sums of g and g * xhat
  // (which are dbeta and dgamma per sample) with the group statistics, then dx from them in one pass.
  groupNormalize: (n, g) => {
    const [x, gamma, beta] = n.inputs;
    const { groups, eps } = n.attrs;
    const stats = make("groupNormStats", [x, g], { groups, eps });
    const ones = gamma ?? constant(new Float32Array(x.shape[1] as number).fill(1), [x.shape[1] as number]);
    const gx = make("groupNormInputGrad", [x, g, stats, ones], { groups });
    if (!gamma) return [gx];
    const row = (i: number) => reshape(slice(stats, 1, i, i + 1), [x.shape[0], x.shape[1]]); // [B, C]
    const [p, q] = [row(0), row(1)];
    return [gx, gamma.rank === 2 ? p : sum(p, 0), beta.rank === 2 ? q : sum(q, 0)];
  },
  groupNormStats: (n, g) => viaDecomposition(n, g, ([x, gy]) => groupNormStatsDecomposed(x, gy, n.attrs.groups, n.attrs.eps)),
  groupNormInputGrad: (n, g) => viaDecomposition(n, g, ([x, gy, st, gamma]) => groupNormInputGradDecomposed(x, gy, st, gamma, n.attrs.groups)),
  upsampleNearest: (n, g) => {
    const [b, c, h, w] = n.inputs[0].shape;
    const f = n.attrs.factor;
    return [sum(reshape(g, [b, c, h, f, w, f]), [3, 5])];
  },
  stopGradient: zeroGrad,
  dimSize: zeroGrad,
};
