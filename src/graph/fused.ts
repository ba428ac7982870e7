// Primitives that lower to imagen-ts' fused kernels where the native binding runs the graph
// (native/ort_run.cc), each spelled out below in other primitives: their lowering elsewhere (onnxruntime-node)
// and their own gradients (by differentiating the spelled-out form).
// - axpby(a, b, alpha, beta) = alpha * a + beta * b: the optimizer's moment and EMA updates;
//   adamwParam(p, m, v, step, eps, decay) = p * decay - step * m / (sqrt(v) + eps): AdamW's parameter update
//   (step and eps pre-scaled by the bias corrections, src/train/adamw.ts); scalars as 0-D tensors.
// - siluGrad(s, y, g) = g * (s + y * (1 - s)): SiLU's backward from its sigmoid s and output y.
// - GroupNorm's backward (~20 full passes of elementwise ops as ORT ops; 2 kernels here):
//   groupNormStats(x, g) [B, C, ...] x2 -> [B, 4, C]: per sample and channel p = sum of g * xhat, q = sum of g,
//     and the channel's group mean and reciprocal std (xhat = (x - mean) * rstd, biased variance);
//   groupNormInputGrad(x, g, stats, gamma) -> dx = rstd * (gamma * g - m1 - xhat * m2), m1 and m2 the group
//     means of gamma * q and gamma * p; gamma is [C] or per sample [B, C].
import { lift, make } from "./build.js";
import { div, add, concat, expand, mean, mul, reciprocal, reshape, slice, sqrt, square, sub, sum, unsqueeze } from "./ops-basic.js";
import type { Tensor } from "./tensor.js";

/** alpha * a + beta * b: one pass on the native binding. */
export function axpby(a: Tensor, b: Tensor, alpha: Tensor | number, beta: Tensor | number): Tensor {
  return make("axpby", [a, b, lift(alpha), lift(beta)], {});
}

export function axpbyDecomposed(a: Tensor, b: Tensor, alpha: Tensor, beta: Tensor): Tensor {
  return add(mul(a, alpha), mul(b, beta));
}

/** AdamW's parameter update, p * decay - step * m / (sqrt(v) + eps): one pass on the native binding. */
export function adamwParam(p: Tensor, m: Tensor, v: Tensor, step: Tensor, eps: Tensor, decay: Tensor | number): Tensor {
  return make("adamwParam", [p, m, v, step, eps, lift(decay)], {});
}

export function adamwParamDecomposed(p: Tensor, m: Tensor, v: Tensor, step: Tensor, eps: Tensor, decay: Tensor): Tensor {
  return sub(mul(p, decay), div(mul(m, step), add(sqrt(v), eps)));
}

export function siluGradDecomposed(s: Tensor, y: Tensor, g: Tensor): Tensor {
  return mul(g, add(s, mul(y, sub(1, s))));
}

function dims(x: Tensor, groups: number) {
  const [b, c] = [x.shape[0], x.shape[1] as number];
  return { b, c, groups, per: c / groups };
}

export function groupNormStatsDecomposed(x: Tensor, g: Tensor, groups: number, eps: number): Tensor {
  const { b, c, per } = dims(x, groups);
  const xr = reshape(x, [b, groups, -1]);
  const mu = mean(xr, 2, true); // [B, G, 1]
  const xc = sub(xr, mu);
  const rstd = reciprocal(sqrt(add(mean(square(xc), 2, true), eps)));
  const perChannel = (t: Tensor) => reshape(expand(t, [b, groups, per]), [b, c]); // [B, G, 1] -> [B, C]
  const gc = reshape(g, [b, c, -1]);
  const p = mul(sum(mul(gc, reshape(xc, [b, c, -1])), 2), perChannel(rstd));
  const q = sum(gc, 2);
  return concat([p, q, perChannel(mu), perChannel(rstd)].map((t) => unsqueeze(t, 1)), 1);
}

export function groupNormInputGradDecomposed(x: Tensor, g: Tensor, stats: Tensor, gamma: Tensor, groups: number): Tensor {
  const { b, c, per } = dims(x, groups);
  const row = (i: number) => reshape(slice(stats, 1, i, i + 1), [b, c]); // [B, C]
  const [p, q] = [row(0), row(1)];
  const firstOfGroup = (t: Tensor) => slice(reshape(t, [b, groups, per]), 2, 0, 1); // [B, G, 1]
  const [mu, rstd] = [firstOfGroup(row(2)), firstOfGroup(row(3))];
  const len = (x.shape.slice(1) as number[]).reduce((n, d) => n * d, 1) / groups;
  const groupMean = (t: Tensor) => mul(sum(reshape(t, [b, groups, per]), 2, true), 1 / len); // [B, G, 1]
  const [m1, m2] = [groupMean(mul(q, gamma)), groupMean(mul(p, gamma))];
  const xhat = mul(sub(reshape(x, [b, groups, -1]), mu), rstd);
  const scaled = reshape(mul(reshape(g, [b, c, -1]), reshape(gamma, gamma.rank === 2 ? [b, c, 1] : [c, 1])), [b, groups, -1]);
  return reshape(mul(rstd, sub(sub(scaled, m1), mul(xhat, m2))), x.shape);
}
