// Learning-rate schedules: linear warmup from 0, then constant, cosine or linear decay to `minLr` at
// `totalSteps`. Steps count from 1 (the first optimizer update); the trainer feeds lrAt(step) to TrainStep.

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
}

const defaults = { minLr: 0 };

/** Throws a ValueError naming the first bad option; returns the options with defaults filled in. */
export function checkLrOptions(options: LrOptions): Required<LrOptions> {
  const { lr, warmupSteps, totalSteps, schedule } = options;
  const minLr = options.minLr ?? defaults.minLr;
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
  return { lr, warmupSteps, totalSteps, schedule, minLr };
}

/** Learning rate for `step` (>= 0; step 0, before any update, is 0 under warmup). */
export function lrAt(step: number, options: LrOptions): number {
  return lrSchedule(options)(step);
}

/** Validates once and returns step -> learning rate, for use inside a training loop. */
export function lrSchedule(options: LrOptions): (step: number) => number {
  const { lr, warmupSteps, totalSteps, schedule, minLr } = checkLrOptions(options);
  return (step) => {
    if (typeof step !== "number" || !Number.isFinite(step) || step < 0) {
      throw new ValueError(`lrAt: step: expected a finite number >= 0, got ${String(step)}; steps count from 1`);
    }
    if (step < warmupSteps) return (lr * step) / warmupSteps;
    if (schedule === "constant") return lr;
    const decaySteps = totalSteps - warmupSteps;
    const progress = decaySteps === 0 ? (step > warmupSteps ? 1 : 0)
      : Math.min(1, (step - warmupSteps) / decaySteps);
    if (schedule === "linear") return lr * (1 - progress) + minLr * progress;
    return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}
