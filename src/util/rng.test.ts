import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng, philox } from "./rng.js";

test("philox matches the Random123 known-answer vectors", () => {
  // Philox2x32-10 known-answer tests from Random123 (kat_vectors).
  assert.deepEqual(philox(0, 0, 0), [0xff1dae59, 0x6cd10df2]);
  assert.deepEqual(philox(0xffffffff, 0xffffffff, 0xffffffff), [0x2c3f628b, 0xab4fd7ad]);
  assert.deepEqual(philox(0x243f6a88, 0x85a308d3, 0x13198a2e), [0xdd7ce038, 0xf62a4c12]);
});

test("same seed gives the same stream; different seeds and splits differ", () => {
  assert.deepEqual(new Rng(7).normal(10), new Rng(7).normal(10));
  assert.notDeepEqual(new Rng(7).uniform(4), new Rng(8).uniform(4));
  const r = new Rng(3);
  assert.notDeepEqual(r.split("a").uniform(4), r.split("b").uniform(4));
  assert.deepEqual(r.split("a").uniform(4), new Rng(3).split("a").uniform(4));
});

test("resuming from a saved state continues the stream exactly", () => {
  const r = new Rng(11);
  r.uniform(5);
  const saved = r.state();
  const next = r.uniform(6);
  assert.deepEqual(new Rng(saved).uniform(6), next);
});

test("uniform and normal have the right moments", () => {
  const u = new Rng(1).uniform(100000);
  const mu = u.reduce((a, b) => a + b, 0) / u.length;
  assert.ok(Math.abs(mu - 0.5) < 0.01 && u.every((v) => v >= 0 && v < 1));
  const n = new Rng(2).normal(100000);
  const m = n.reduce((a, b) => a + b, 0) / n.length;
  const v = n.reduce((a, b) => a + (b - m) ** 2, 0) / n.length;
  assert.ok(Math.abs(m) < 0.02 && Math.abs(v - 1) < 0.02, `mean ${m} var ${v}`);
});

test("bad seeds are refused", () => {
  assert.throws(() => new Rng(-1), /non-negative integer/);
  assert.throws(() => new Rng(1.5), /non-negative integer/);
});
