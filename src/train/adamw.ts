// AdamW (Loshchilov & Hutter) as a graph piece: bias-corrected moments, decoupled weight decay, the
// same arithmetic as torch.optim.AdamW. Plus gradient clipping by global norm and an EMA of weights.
import { ValueError } from "../util/errors.js";
import { add, div, exp, minimum, mul, sqrt, square, sub, sum } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { adamwParam, axpby } from "../graph/fused.js";

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Clip gradients to this global L2 norm (torch.nn.utils.clip_grad_norm_); off when undefined. */
  clipNorm?: number;
  /** Keep an exponential moving average of the weights with this decay; off when undefined. */
  emaDecay?: number;
  /**
   * Learning-rate factors by parameter name: regular expression source -> factor (the first pattern that
   * matches a name wins; other parameters get 1). For weights added to a trained network, which start at
   * zero and would otherwise move at the rate tuned for the rest.
   */
  lrScales?: Record<string, number>;
}

/** The learning-rate factor of each named parameter under `lrScales`; the error names a bad pattern or factor. */
export function lrScaleOf(lrScales: Record<string, number> | undefined): (name: string) => number {
  const rules = Object.entries(lrScales ?? {}).map(([src, f]) => {
    let re: RegExp;
    try {
      re = new RegExp(src);
    } catch (e) {
      throw new ValueError(`AdamW lrScales: "${src}" is not a valid regular expression (${(e as Error).message})`);
    }
    if (typeof f !== "number" || !(f > 0 && Number.isFinite(f))) throw new ValueError(`AdamW lrScales["${src}"]: expected a finite number > 0, got ${String(f)}`);
    return { re, f };
  });
  return (name) => rules.find((r) => r.re.test(name))?.f ?? 1;
}

export const adamwDefaults = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

export function checkAdamW(c: AdamWConfig): Required<Omit<AdamWConfig, "clipNorm" | "emaDecay" | "lrScales">> & AdamWConfig {
  const cfg = { ...adamwDefaults, ...c };
  const bad = (what: string, v: number, range: string) => new ValueError(`AdamW ${what}: expected ${range}, got ${v}`);
  if (!(cfg.lr >= 0 && Number.isFinite(cfg.lr))) throw bad("lr", cfg.lr, "a finite number >= 0");
  if (!(cfg.beta1 >= 0 && cfg.beta1 < 1)) throw bad("beta1", cfg.beta1, "0 <= beta1 < 1");
  if (!(cfg.beta2 >= 0 && cfg.beta2 < 1)) throw bad("beta2", cfg.beta2, "0 <= beta2 < 1");
  if (!(cfg.eps > 0)) throw bad("eps", cfg.eps, "> 0");
  if (!(cfg.weightDecay >= 0)) throw bad("weightDecay", cfg.weightDecay, ">= 0");
  if (cfg.clipNorm !== undefined && !(cfg.clipNorm > 0)) throw bad("clipNorm", cfg.clipNorm, "> 0");
  if (cfg.emaDecay !== undefined && !(cfg.emaDecay >= 0 && cfg.emaDecay < 1)) throw bad("emaDecay", cfg.emaDecay, "0 <= emaDecay < 1");
  lrScaleOf(cfg.lrScales);
  return cfg;
}

/** Global L2 norm of a list of gradients, as a scalar tensor (`squares`: their g * g, when already built). */
export function globalNorm(grads: readonly Tensor[], squares?: readonly Tensor[]): Tensor {
  let total: Tensor | null = null;
  for (const [i, g] of grads.entries()) {
    const s = sum(squares?.[i] ?? square(g));
    total = total ? add(total, s) : s;
  }
  return sqrt(total ?? sum(square(grads[0])));
}

/** The factor clipping scales every gradient by so their global norm is at most maxNorm: min(1, maxNorm / (norm + 1e-6)). */
export function clipCoefficient(norm: Tensor, maxNorm: number): Tensor {
  return minimum(div(maxNorm, add(norm, 1e-6)), 1);
}

export interface AdamWScalars {
  lr: Tensor; // scalar learning rate for this step
  step: Tensor; // scalar step number t >= 1
  /** The clipping factor of every gradient (clipCoefficient), folded into the moment updates; none without clipping. */
  clip?: Tensor;
}

/** Per-step scalars shared by every parameter's update (built once per graph, not once per tensor). */
export interface AdamWShared {
  /** eps * sqrt(1 - beta2^t): torch's denominator sqrt(v) / sqrt(bc2) + eps, multiplied through by sqrt(bc2). */
  epsScaled: Tensor;
  /** lr * sqrt(1 - beta2^t) / (1 - beta1^t), the step size once the denominator is so scaled. */
  stepScaled: Tensor;
  decayFactor: Tensor; // 1 - lr * weightDecay
  /** The weights of g and of g * g in the moment updates: (1 - beta1) * clip and (1 - beta2) * clip^2. */
  gWeight: Tensor | number;
  g2Weight: Tensor | number;
}

export function adamwShared(s: AdamWScalars, cfg: ReturnType<typeof checkAdamW>): AdamWShared {
  const bc1 = sub(1, exp(mul(s.step, Math.log(cfg.beta1 || 1e-30))));
  const bc2Sqrt = sqrt(sub(1, exp(mul(s.step, Math.log(cfg.beta2 || 1e-30)))));
  return {
    epsScaled: mul(bc2Sqrt, cfg.eps), stepScaled: div(mul(s.lr, bc2Sqrt), bc1), decayFactor: sub(1, mul(s.lr, cfg.weightDecay)),
    gWeight: s.clip ? mul(s.clip, 1 - cfg.beta1) : 1 - cfg.beta1,
    g2Weight: s.clip ? mul(square(s.clip), 1 - cfg.beta2) : 1 - cfg.beta2,
  };
}

/**
 * One AdamW update of parameter p with gradient g (before clipping: the shared clip factor scales the moment
 * updates' gradient terms, so clipping costs no pass of its own) and moments m, v: torch.optim.AdamW's arithmetic,
 * with the per-step scalars folded together so each parameter costs fewer full passes (the graph has one per op).
 * `gSquared` may pass g * g when the graph already has it (the global norm computes it).
 */
export function adamwUpdate(
  p: Tensor, g: Tensor, m: Tensor, v: Tensor, sh: AdamWShared, cfg: ReturnType<typeof checkAdamW>, decay: boolean, gSquared?: Tensor,
  lrScale = 1,
): { p: Tensor; m: Tensor; v: Tensor } {
  // One pass each where the native binding runs the graph (src/graph/fused.ts), ORT's ops elsewhere.
  const m1 = axpby(m, g, cfg.beta1, sh.gWeight);
  const v1 = axpby(v, gSquared ?? square(g), cfg.beta2, sh.g2Weight);
  const [stepScaled, decayFactor] = lrScale === 1 ? [sh.stepScaled, sh.decayFactor]
    : [mul(sh.stepScaled, lrScale), add(mul(sh.decayFactor, lrScale), 1 - lrScale)]; // 1 - scale * lr * wd
  return { p: adamwParam(p, m1, v1, stepScaled, sh.epsScaled, decay && cfg.weightDecay > 0 ? decayFactor : 1), m: m1, v: v1 };
}

/** One EMA step, decay * ema + (1 - decay) * p, with the decay a scalar graph input (it warms up). */
export function emaUpdate(ema: Tensor, p: Tensor, decay: Tensor): Tensor {
  return axpby(ema, p, decay, sub(1, decay));
}

/**
 * The EMA decay at step t: min(decay, (1 + t) / (10 + t)), as TensorFlow's ExponentialMovingAverage does
 * with num_updates. The average starts from the initial weights; without the warmup a 0.999 average still
 * holds 0.999^t of them (25% after 1,400 steps), with it under 1% after a few hundred steps.
 */
export function emaDecayAt(decay: number, t: number): number {
  return Math.min(decay, (1 + t) / (10 + t));
}
