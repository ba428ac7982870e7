// Samplers as free functions over one contract (k-diffusion style): `denoise(x, t)` returns the predicted
// x0 for the batch x at time t (guidance and thresholding already applied). Time runs from 1 to 0 on a
// uniform grid of `steps` steps. Ancestral (Imagen App. A), DDIM (eta) and DPM-Solver++(2M).
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { alphaSigma, logSnrOf, type ScheduleName } from "./schedule.js";

export type Denoise = (x: Float32Array, t: number) => Promise<Float32Array>;
export type SamplerName = "ancestral" | "ddim" | "dpmpp2m";
export const samplerNames: readonly SamplerName[] = ["ancestral", "ddim", "dpmpp2m"];
export const defaultSteps: Record<SamplerName, number> = { ancestral: 250, ddim: 50, dpmpp2m: 25 };

export interface SamplerOptions {
  steps: number;
  schedule: ScheduleName;
  /** Noise source for stochastic steps (ancestral, DDIM with eta > 0). */
  rng: Rng;
  /** DDIM: 0 is deterministic, 1 matches the ancestral posterior variance. */
  eta?: number;
  /** Ancestral: variance (posterior)^(1-gamma) * (forward)^gamma, the paper's interpolation; 0 = posterior. */
  gamma?: number;
  onStep?: (step: number, total: number) => void;
}

export function checkSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > 10000) {
    throw new ValueError(`steps: expected an integer from 1 to 10000, got ${steps}`);
  }
}

function grid(steps: number): number[] {
  return Array.from({ length: steps + 1 }, (_, i) => 1 - i / steps);
}

function addNoise(x: Float32Array, std: number, rng: Rng): void {
  if (std <= 0) return;
  const z = rng.normal(x.length);
  for (let i = 0; i < x.length; i++) x[i] += std * z[i];
}

/** Ancestral sampling: x_s ~ q(x_s | x_t, x0_pred) with the interpolated variance. */
export async function sampleAncestral(x: Float32Array, denoise: Denoise, o: SamplerOptions): Promise<Float32Array> {
  checkSteps(o.steps);
  const ts = grid(o.steps);
  const gamma = o.gamma ?? 0;
  let cur = x;
  for (let i = 0; i < o.steps; i++) {
    const [lt, ls] = [logSnrOf(o.schedule, ts[i]), logSnrOf(o.schedule, ts[i + 1])];
    const t = alphaSigma(lt), s = alphaSigma(ls);
    const x0 = await denoise(cur, ts[i]);
    const c = -Math.expm1(lt - ls); // 1 - SNR(t)/SNR(s)
    const next = new Float32Array(cur.length);
    for (let k = 0; k < cur.length; k++) next[k] = s.alpha * ((cur[k] * (1 - c)) / t.alpha + c * x0[k]);
    if (i < o.steps - 1) {
      const logVar = (1 - gamma) * Math.log(c * s.sigma * s.sigma) + gamma * Math.log(c * t.sigma * t.sigma);
      addNoise(next, Math.exp(0.5 * logVar), o.rng);
    }
    cur = next;
    o.onStep?.(i + 1, o.steps);
  }
  return cur;
}

/** DDIM (Song et al.): deterministic for eta = 0. */
export async function sampleDdim(x: Float32Array, denoise: Denoise, o: SamplerOptions): Promise<Float32Array> {
  checkSteps(o.steps);
  const eta = o.eta ?? 0;
  if (!(eta >= 0 && eta <= 1)) throw new ValueError(`eta: expected 0 <= eta <= 1, got ${eta}`);
  const ts = grid(o.steps);
  let cur = x;
  for (let i = 0; i < o.steps; i++) {
    const t = alphaSigma(logSnrOf(o.schedule, ts[i])), s = alphaSigma(logSnrOf(o.schedule, ts[i + 1]));
    const x0 = await denoise(cur, ts[i]);
    const last = i === o.steps - 1;
    const sd = last ? 0 : eta * Math.sqrt((s.sigma ** 2 / t.sigma ** 2) * (1 - (t.alpha ** 2) / (s.alpha ** 2)));
    const dir = Math.sqrt(Math.max(0, s.sigma ** 2 - sd * sd));
    const next = new Float32Array(cur.length);
    for (let k = 0; k < cur.length; k++) {
      const eps = (cur[k] - t.alpha * x0[k]) / t.sigma;
      next[k] = s.alpha * x0[k] + dir * eps;
    }
    addNoise(next, sd, o.rng);
    cur = next;
    o.onStep?.(i + 1, o.steps);
  }
  return cur;
}

/** DPM-Solver++(2M) (Lu et al. 2022), data prediction, multistep second order; first step first order. */
export async function sampleDpmpp2m(x: Float32Array, denoise: Denoise, o: SamplerOptions): Promise<Float32Array> {
  checkSteps(o.steps);
  const ts = grid(o.steps);
  const lam = ts.map((t) => logSnrOf(o.schedule, t) / 2); // log(alpha / sigma)
  let cur = x;
  let prevX0: Float32Array | null = null;
  for (let i = 0; i < o.steps; i++) {
    const t = alphaSigma(2 * lam[i]), s = alphaSigma(2 * lam[i + 1]);
    const x0 = await denoise(cur, ts[i]);
    const h = lam[i + 1] - lam[i];
    const coef = s.alpha * -Math.expm1(-h); // alpha_s (1 - e^{-h})
    const next = new Float32Array(cur.length);
    if (prevX0 === null) {
      for (let k = 0; k < cur.length; k++) next[k] = (s.sigma / t.sigma) * cur[k] + coef * x0[k];
    } else {
      const r = (lam[i] - lam[i - 1]) / h;
      const a = 1 + 1 / (2 * r), b = 1 / (2 * r);
      for (let k = 0; k < cur.length; k++) next[k] = (s.sigma / t.sigma) * cur[k] + coef * (a * x0[k] - b * prevX0[k]);
    }
    prevX0 = x0;
    cur = next;
    o.onStep?.(i + 1, o.steps);
  }
  return cur;
}

export const samplers: Record<SamplerName, (x: Float32Array, d: Denoise, o: SamplerOptions) => Promise<Float32Array>> = {
  ancestral: sampleAncestral,
  ddim: sampleDdim,
  dpmpp2m: sampleDpmpp2m,
};

export function samplerByName(name: string): (x: Float32Array, d: Denoise, o: SamplerOptions) => Promise<Float32Array> {
  if (!(samplerNames as readonly string[]).includes(name)) {
    throw new ValueError(`sampler: expected one of ${samplerNames.join(", ")}, got "${name}"`);
  }
  return samplers[name as SamplerName];
}
