// Classifier-free guidance and x0 thresholding (Imagen sections 2.2-2.3). Pure math on flat arrays of
// B samples, each `x.length / B` values long.
import { ValueError } from "../util/errors.js";

/** eps = w * eps(c) + (1 - w) * eps(null); w = 1 is the conditional prediction unchanged. */
export function guide(cond: Float32Array, uncond: Float32Array, w: number): Float32Array {
  if (!Number.isFinite(w) || w < 0) throw new ValueError(`guidance: expected a finite number >= 0, got ${w}`);
  if (cond.length !== uncond.length) throw new ValueError(`guidance: predictions differ in size (${cond.length} vs ${uncond.length})`);
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = w * cond[i] + (1 - w) * uncond[i];
  return out;
}

export type Thresholding = { kind: "none" } | { kind: "static" } | { kind: "dynamic"; percentile?: number };

/** Parses "none", "static", "dynamic" or "dynamic:P"; `what` names the setting in the error. */
export function parseThresholding(v: string, what = "--thresholding"): Thresholding {
  if (v === "none" || v === "static") return { kind: v };
  const m = /^dynamic(?::(\d+(?:\.\d+)?))?$/.exec(v);
  if (m) return { kind: "dynamic", percentile: m[1] ? Number(m[1]) : 99.5 };
  throw new ValueError(`${what}: expected none, static, dynamic or dynamic:P (e.g. dynamic:99.5), got ${JSON.stringify(v)}`);
}

/** Per-sample percentile of |x| (linear interpolation between order statistics, as numpy's default). */
export function absPercentile(values: Float32Array, p: number): number {
  const a = Float64Array.from(values, Math.abs).sort();
  const pos = (p / 100) * (a.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, a.length - 1);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}

/**
 * Applies thresholding to the predicted x0 of `batch` samples in place. Static clips to [-1, 1]; dynamic
 * (the paper's) takes s = max(1, percentile(|x0|, p)) per sample, clips to [-s, s] and divides by s.
 */
export function threshold(x0: Float32Array, batch: number, t: Thresholding): Float32Array {
  if (t.kind === "none") return x0;
  const n = x0.length / batch;
  if (!Number.isInteger(n)) throw new ValueError(`threshold: ${x0.length} values do not split into ${batch} samples`);
  const p = t.kind === "dynamic" ? (t.percentile ?? 99.5) : 0;
  if (t.kind === "dynamic" && !(p > 0 && p <= 100)) throw new ValueError(`dynamic thresholding percentile: expected 0 < p <= 100, got ${p}`);
  for (let b = 0; b < batch; b++) {
    const view = x0.subarray(b * n, (b + 1) * n);
    const s = t.kind === "static" ? 1 : Math.max(1, absPercentile(view, p));
    for (let i = 0; i < n; i++) view[i] = Math.min(s, Math.max(-s, view[i])) / s;
  }
  return x0;
}
