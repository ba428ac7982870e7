// Tests for learning-rate schedules: warmup, each decay at known points, monotonicity, and option errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { type LrOptions, checkLrOptions, lrAt, lrSchedule } from "./lr.js";
import { ValueError } from "../util/errors.js";

const base: LrOptions = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, schedule: "cosine", minLr: 1e-5 };

function close(actual: number, expected: number, message?: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-15 + 1e-12 * Math.abs(expected),
    `${message ?? ""} expected ${expected}, got ${actual}`);
}

test("warmup rises linearly from 0, reaching lr at warmupSteps (steps count from 1)", () => {
  for (const schedule of ["constant", "cosine", "linear"] as const) {
    const opts = { ...base, schedule };
    assert.equal(lrAt(0, opts), 0);
    close(lrAt(1, opts), 1e-4, schedule);
    close(lrAt(5, opts), 5e-4, schedule);
    assert.equal(lrAt(10, opts), 1e-3, schedule);
  }
});

test("constant stays at lr forever, ignoring minLr", () => {
  const opts: LrOptions = { ...base, schedule: "constant" };
  for (const step of [10, 11, 60, 110, 1000]) assert.equal(lrAt(step, opts), 1e-3);
});

test("cosine decays from lr to minLr at totalSteps, half way at the midpoint, then stays", () => {
  assert.equal(lrAt(10, base), 1e-3);
  close(lrAt(60, base), (1e-3 + 1e-5) / 2);
  close(lrAt(35, base), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.cos(Math.PI / 4)));
  assert.equal(lrAt(110, base), 1e-5);
  assert.equal(lrAt(500, base), 1e-5);
});

test("linear decays from lr to minLr at totalSteps, then stays", () => {
  const opts: LrOptions = { ...base, schedule: "linear" };
  close(lrAt(60, opts), (1e-3 + 1e-5) / 2);
  close(lrAt(35, opts), 1e-3 * 0.75 + 1e-5 * 0.25);
  assert.equal(lrAt(110, opts), 1e-5);
  assert.equal(lrAt(111, opts), 1e-5);
});

test("minLr defaults to 0, and no warmup starts at lr", () => {
  const opts: LrOptions = { lr: 0.5, warmupSteps: 0, totalSteps: 4, schedule: "linear" };
  assert.deepEqual([1, 2, 3, 4, 5].map((s) => lrSchedule(opts)(s)), [0.375, 0.25, 0.125, 0, 0]);
  assert.equal(lrAt(0, opts), 0.5);
  assert.equal(checkLrOptions(opts).minLr, 0);
});

test("warmup as long as training: lr at the last step, minLr after", () => {
  const opts: LrOptions = { lr: 1, warmupSteps: 4, totalSteps: 4, schedule: "cosine", minLr: 0.1 };
  assert.deepEqual([1, 2, 3, 4, 5].map((s) => lrAt(s, opts)), [0.25, 0.5, 0.75, 1, 0.1]);
});

test("decays are monotone and stay within [minLr, lr] after warmup", () => {
  for (const schedule of ["cosine", "linear"] as const) {
    const lrFor = lrSchedule({ ...base, schedule });
    let previous = Infinity;
    for (let step = 10; step <= 200; step++) {
      const value = lrFor(step);
      assert.ok(value <= previous && value >= 1e-5 && value <= 1e-3, `${schedule} step ${step}: ${value}`);
      previous = value;
    }
  }
});

test("bad options and steps throw ValueErrors naming the option", () => {
  const cases: Array<[Partial<LrOptions> | Record<string, unknown>, RegExp]> = [
    [{ lr: -1 }, /lr: expected a finite number >= 0, got -1/],
    [{ lr: NaN }, /lr: expected a finite number >= 0, got NaN/],
    [{ lr: Infinity }, /lr: expected a finite number >= 0, got Infinity/],
    [{ warmupSteps: -5 }, /warmupSteps: expected an integer >= 0, got -5/],
    [{ warmupSteps: NaN }, /warmupSteps: expected an integer >= 0, got NaN/],
    [{ warmupSteps: 2.5 }, /warmupSteps: expected an integer >= 0, got 2.5/],
    [{ totalSteps: 0 }, /totalSteps: expected an integer >= 1, got 0/],
    [{ totalSteps: NaN }, /totalSteps: expected an integer >= 1, got NaN/],
    [{ warmupSteps: 200 }, /warmupSteps: expected at most totalSteps \(110\), got 200; shorten the warmup/],
    [{ schedule: "step" }, /schedule: expected one of constant, cosine, linear, got "step"/],
    [{ minLr: -1e-6 }, /minLr: expected a finite number in \[0, lr = 0.001\], got -0.000001/],
    [{ minLr: 1 }, /minLr: expected a finite number in \[0, lr = 0.001\], got 1/],
    [{ minLr: NaN }, /minLr: .* got NaN/],
  ];
  for (const [change, message] of cases) {
    const opts = { ...base, ...change } as LrOptions;
    assert.throws(() => lrAt(20, opts), (err: Error) => err instanceof ValueError && message.test(err.message),
      JSON.stringify(change));
  }
  for (const step of [-1, NaN, Infinity]) {
    assert.throws(() => lrAt(step, base), /lrAt: step: expected a finite number >= 0/);
  }
});

test("warm restarts: steps up to the first restart match a run that ends there; each restart decays again from a scaled peak", () => {
  for (const schedule of ["cosine", "linear", "constant"] as const) {
    const short = lrSchedule({ ...base, schedule, totalSteps: 60 });
    const long = lrSchedule({ ...base, schedule, totalSteps: 160, restarts: [60, 110], restartScale: 0.5 });
    for (let step = 0; step <= 60; step++) assert.equal(long(step), short(step), `${schedule} step ${step}`);
    if (schedule === "constant") {
      assert.deepEqual([61, 110, 111, 160, 500].map(long), [5e-4, 5e-4, 2.5e-4, 2.5e-4, 2.5e-4]);
      continue;
    }
    // Just after a restart the lr jumps to the scaled peak's first decay step, then falls to minLr at the next.
    const first = schedule === "cosine" ? 1e-5 + (5e-4 - 1e-5) * 0.5 * (1 + Math.cos(Math.PI / 50)) : 5e-4 * 0.98 + 1e-5 * 0.02;
    close(long(61), first, `${schedule} step 61`);
    close(long(85), (5e-4 + 1e-5) / 2, `${schedule} half way through the first restart`);
    assert.equal(long(110), 1e-5);
    close(long(135), (2.5e-4 + 1e-5) / 2, `${schedule} half way through the second restart`);
    assert.equal(long(160), 1e-5);
    assert.equal(long(1000), 1e-5);
  }
});

test("restart options are checked: increasing steps after the warmup and before the end, scale in (0, 1]", () => {
  const cases: Array<[Partial<LrOptions>, RegExp]> = [
    [{ restarts: [10] }, /restarts\[0\]: expected an integer in \(10, 110\)/],
    [{ restarts: [110] }, /restarts\[0\]: expected an integer in \(10, 110\)/],
    [{ restarts: [50, 40] }, /restarts\[1\]: expected an integer in \(50, 110\)/],
    [{ restarts: [50.5] }, /restarts\[0\]: .* got 50.5/],
    [{ restarts: [50], restartScale: 0 }, /restartScale: expected a number in \(0, 1\], got 0/],
    [{ restarts: [50], restartScale: 1.5 }, /restartScale: expected a number in \(0, 1\], got 1.5/],
    [{ restarts: [50], restartScale: NaN }, /restartScale: .* got NaN/],
  ];
  for (const [change, message] of cases) {
    assert.throws(() => lrSchedule({ ...base, ...change }), (err: Error) => err instanceof ValueError && message.test(err.message),
      JSON.stringify(change));
  }
});
