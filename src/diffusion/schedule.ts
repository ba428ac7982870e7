// Continuous-time noise schedules as log-SNR functions of t in [0, 1] (Imagen App. A; Kingma et al. 2021):
// x_t = alpha_t x0 + sigma_t eps with alpha^2 = sigmoid(logSnr), sigma^2 = sigmoid(-logSnr).
import { ValueError } from "../util/errors.js";

export type ScheduleName = "cosine" | "linear";
export const scheduleNames: readonly ScheduleName[] = ["cosine", "linear"];

/** Log-SNR is kept in [-20, 20]: at t = 1 the cosine schedule would reach -75, where x0 = (x - sigma eps) / alpha overflows. */
export const logSnrRange = [-20, 20] as const;
const clampLogSnr = (l: number) => Math.min(logSnrRange[1], Math.max(logSnrRange[0], l));

/** Cosine schedule (Nichol & Dhariwal) in continuous time, offset s = 0.008. */
export function cosineLogSnr(t: number, s = 0.008): number {
  const c = Math.cos(((t + s) / (1 + s)) * Math.PI * 0.5);
  return clampLogSnr(-Math.log(Math.max(1 / (c * c) - 1, 1e-9)));
}

/** The continuous limit of the linear beta schedule (beta 1e-4 .. 0.02 over 1000 steps). */
export function linearLogSnr(t: number): number {
  return clampLogSnr(-Math.log(Math.expm1(1e-4 + 10 * t * t)));
}

export function logSnrOf(schedule: ScheduleName, t: number): number {
  if (!(t >= 0 && t <= 1)) throw new ValueError(`logSnr: t must lie in [0, 1], got ${t}`);
  switch (schedule) {
    case "cosine": return cosineLogSnr(t);
    case "linear": return linearLogSnr(t);
    default: throw new ValueError(`schedule: expected one of ${scheduleNames.join(", ")}, got ${String(schedule)}`);
  }
}

const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** alpha_t and sigma_t from the log-SNR; alpha^2 + sigma^2 = 1 (variance preserving). */
export function alphaSigma(logSnr: number): { alpha: number; sigma: number } {
  return { alpha: Math.sqrt(sigmoid(logSnr)), sigma: Math.sqrt(sigmoid(-logSnr)) };
}
