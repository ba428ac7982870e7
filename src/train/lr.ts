// Learning-rate schedules: linear warmup from 0, then constant, cosine or linear decay to `minLr` at
// `totalSteps`, optionally with warm restarts (SGDR, Loshchilov & Hutter 2017): at each restart step the
// decay starts again from a peak scaled by `restartScale` per restart. Steps count from 1 (the first
// optimizer update); the trainer feeds lrAt(step) to TrainStep.

import { ValueError } from "../util/errors.js";

export const lrSchedules = ["constant", "cosine", "linear"] as const;
export type LrScheduleName = (typeof lrSchedules)[number];

export interface LrOptions {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Steps of linear warmup from 0: step k <= warmupSteps gets lr * k / warmupSteps. 0 = no warmup. */
  warmupSteps: number;
  /** Step at which the decay reaches minLr; later steps stay at minLr. */
  totalSteps: number;
  schedule: LrScheduleName;
  /** Floor of the cosine and linear decays; default 0; ignored by "constant". */
  minLr?: number;
  /**
   * Warm restarts: strictly increasing steps after the warmup and before totalSteps. The first decay ends
   * at restarts[0] (exactly as a run with totalSteps = restarts[0]); the k-th restart decays again from
   * lr * restartScale^k, with no warmup, to the next restart or totalSteps. Default none.
   */
  restarts?: number[];
  /** Peak of each restart relative to the previous one's, in (0, 1]; default 1. */
  restartScale?: number;
}

const defaults = { minLr: 0, restarts: [] as number[], restartScale: 1 };

/** Throws a ValueError naming the first bad option; returns the options with defaults filled in. */
export function checkLrOptions(options: LrOptions): Required<LrOptions> {
  const { lr, warmupSteps, totalSteps, schedule } = options;
  const minLr = options.minLr ?? defaults.minLr;
  const restarts = options.restarts ?? defaults.restarts;
  const restartScale = options.restartScale ?? defaults.restartScale;
  const bad = (name: string, expected: string, got: unknown, fix: string): ValueError =>
    new ValueError(`lr schedule: ${name}: expected ${expected}, got ${String(got)}; ${fix}`);
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) {
    throw bad("lr", "a finite number >= 0", lr, "pass the peak learning rate, e.g. 1e-4");
  }
  if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 0) {
    throw bad("warmupSteps", "an integer >= 0", warmupSteps, "pass 0 for no warmup");
  }
  if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) {
    throw bad("totalSteps", "an integer >= 1", totalSteps, "pass the number of training steps");
  }
  if (warmupSteps > totalSteps) {
    throw bad("warmupSteps", `at most totalSteps (${totalSteps})`, warmupSteps,
      "shorten the warmup or train for longer");
  }
  if (!(lrSchedules as readonly string[]).includes(schedule)) {
    throw bad("schedule", `one of ${lrSchedules.join(", ")}`, JSON.stringify(schedule), "pick one of those");
  }
  if (typeof minLr !== "number" || !Number.isFinite(minLr) || minLr < 0 || minLr > lr) {
    throw bad("minLr", `a finite number in [0, lr = ${lr}]`, minLr, "pass a floor at most the peak lr");
  }
  if (!Array.isArray(restarts)) throw bad("restarts", "an array of steps", JSON.stringify(restarts), "pass [] for none");
  restarts.forEach((r, i) => {
    const lo = i === 0 ? warmupSteps : restarts[i - 1];
    if (!Number.isSafeInteger(r) || r <= lo || r >= totalSteps) {
      throw bad(`restarts[${i}]`, `an integer in (${lo}, ${totalSteps}) (after the warmup or the previous restart, before totalSteps)`,
        r, "list restart steps in increasing order inside the run");
    }
  });
  if (typeof restartScale !== "number" || !(restartScale > 0 && restartScale <= 1)) {
    throw bad("restartScale", "a number in (0, 1]", restartScale, "pass 1 to restart at the full peak");
  }
  return { lr, warmupSteps, totalSteps, schedule, minLr, restarts: [...restarts], restartScale };
}

/** Learning rate for `step` (>= 0; step 0, before any update, is 0 under warmup). */
export function lrAt(step: number, options: LrOptions): number {
  return lrSchedule(options)(step);
}

/** Validates once and returns step -> learning rate, for use inside a training loop. */
export function lrSchedule(options: LrOptions): (step: number) => number {
  const { lr, warmupSteps, totalSteps, schedule, minLr, restarts, restartScale } = checkLrOptions(options);
  const ends = [...restarts, totalSteps];
  return (step) => {
    if (typeof step !== "number" || !Number.isFinite(step) || step < 0) {
      throw new ValueError(`lrAt: step: expected a finite number >= 0, got ${String(step)}; steps count from 1`);
    }
    if (step < warmupSteps) return (lr * step) / warmupSteps;
    // Segment k runs over (start, ends[k]]: the first from the end of warmup, the others from a restart.
    let k = 0;
    while (k < restarts.length && step > restarts[k]) k++;
    const start = k === 0 ? warmupSteps : restarts[k - 1];
    const peak = lr * restartScale ** k;
    if (schedule === "constant") return peak;
    const decaySteps = ends[k] - start;
    const progress = decaySteps === 0 ? (step > start ? 1 : 0) : Math.min(1, (step - start) / decaySteps);
    const floor = Math.min(minLr, peak);
    if (schedule === "linear") return peak * (1 - progress) + floor * progress;
    return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}
