import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/rng.js";
import { alphaSigma, cosineLogSnr, linearLogSnr, logSnrOf } from "./schedule.js";
import { guide, threshold, absPercentile } from "./guidance.js";
import { samplerByName, samplerNames, type Denoise } from "./samplers.js";

test("schedules: log-SNR falls with t, alpha/sigma agree with it and preserve variance", () => {
  for (const f of [cosineLogSnr, linearLogSnr]) {
    let prev = Infinity;
    for (let i = 0; i <= 100; i++) {
      const l = f(i / 100);
      assert.ok(l < prev || l === -20, `log-SNR must decrease (t=${i / 100})`);
      prev = l;
      const { alpha, sigma } = alphaSigma(l);
      assert.ok(Math.abs(alpha * alpha + sigma * sigma - 1) < 1e-12);
      assert.ok(Math.abs(Math.log((alpha * alpha) / (sigma * sigma)) - l) < 1e-9 * Math.max(1, Math.abs(l)));
    }
  }
  // cosine at t = 0.496: cos((0.504 / 1.008) * pi/2)^-2 - 1 = 1 / cos(pi/4)^2 - 1 = 1, so log-SNR 0
  assert.ok(Math.abs(cosineLogSnr(0.496)) < 1e-12, `cosine log-SNR at 0.496: ${cosineLogSnr(0.496)}`);
  assert.ok(Math.abs(linearLogSnr(0) - -Math.log(Math.expm1(1e-4))) < 1e-12);
  assert.throws(() => logSnrOf("cosine", 1.5), /t must lie in \[0, 1\]/);
  assert.throws(() => logSnrOf("quadratic" as never, 0.5), /expected one of cosine, linear/);
});

test("guidance: w = 1 is the conditional prediction; w blends linearly; bad w refused", () => {
  const c = Float32Array.from([1, 2, 3]), u = Float32Array.from([0, 0, 1]);
  assert.deepEqual(guide(c, u, 1), c);
  assert.deepEqual([...guide(c, u, 3)], [3, 6, 7]);
  assert.deepEqual([...guide(c, u, 0)], [...u]);
  assert.throws(() => guide(c, u, NaN), /finite number >= 0, got NaN/);
  assert.throws(() => guide(c, u, -1), /got -1/);
});

test("dynamic thresholding keeps x0 in [-1, 1] and leaves it untouched when |x0| <= 1", () => {
  const inside = Float32Array.from([0.5, -1, 0.99, 0, 0.2, -0.3]);
  assert.deepEqual(threshold(Float32Array.from(inside), 2, { kind: "dynamic" }), inside);
  const rng = new Rng(1);
  const wild = rng.normal(2000, 0, 3);
  const out = threshold(Float32Array.from(wild), 4, { kind: "dynamic", percentile: 99.5 });
  assert.ok(out.every((v) => v >= -1 && v <= 1));
  const s = absPercentile(wild.subarray(0, 500), 99.5);
  assert.ok(Math.abs(out[0] - Math.max(-s, Math.min(s, wild[0])) / s) < 1e-6);
  assert.deepEqual([...threshold(Float32Array.from([2, -3, 0.5]), 1, { kind: "static" })], [1, -1, 0.5]);
  assert.equal(absPercentile(Float32Array.from([1, 2, 3, 4, 5]), 50), 3);
  assert.throws(() => threshold(new Float32Array(3), 2, { kind: "static" }), /do not split into 2 samples/);
});

// Data x0 ~ N(mu, v^2) per coordinate: the exact denoiser is E[x0 | x_t] = mu + alpha v^2 (x_t - alpha mu) / (alpha^2 v^2 + sigma^2).
const mu = 0.3, v = 0.5;
const gaussianDenoiser = (schedule: "cosine" | "linear"): Denoise => async (x, t) => {
  const { alpha, sigma } = alphaSigma(logSnrOf(schedule, t));
  const k = (alpha * v * v) / (alpha * alpha * v * v + sigma * sigma);
  return Float32Array.from(x, (xi) => mu + k * (xi - alpha * mu));
};

for (const name of samplerNames) {
  test(`${name} turns noise into the data distribution under the exact denoiser`, async () => {
    const n = 4000;
    const x = new Rng(7).normal(n);
    const steps = name === "ancestral" ? 200 : name === "ddim" ? 50 : 20;
    const out = await samplerByName(name)(x, gaussianDenoiser("cosine"), { steps, schedule: "cosine", rng: new Rng(8) });
    const m = out.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(out.reduce((a, b) => a + (b - m) ** 2, 0) / n);
    assert.ok(Math.abs(m - mu) < 0.03 && Math.abs(sd - v) < 0.03, `${name}: mean ${m.toFixed(4)} std ${sd.toFixed(4)}`);
  });
}

test("deterministic samplers: DDIM eta=0 and DPM-Solver++ give identical bytes for any rng; golden sums", async () => {
  const x = new Rng(3).normal(64);
  const sums: Record<string, number> = {};
  for (const name of ["ddim", "dpmpp2m"]) {
    const a = await samplerByName(name)(x, gaussianDenoiser("linear"), { steps: 10, schedule: "linear", rng: new Rng(1) });
    const b = await samplerByName(name)(x, gaussianDenoiser("linear"), { steps: 10, schedule: "linear", rng: new Rng(2) });
    assert.deepEqual(a, b);
    sums[name] = a.reduce((s, y) => s + y, 0);
  }
  // The deterministic ODE maps x to mu + v * x exactly in the limit; with 10 steps both land close.
  const want = x.reduce((s, y) => s + mu + v * y, 0);
  for (const [name, s] of Object.entries(sums)) assert.ok(Math.abs(s - want) < 0.05 * 64, `${name}: sum ${s} vs ${want}`);
  const anc1 = await samplerByName("ancestral")(x, gaussianDenoiser("linear"), { steps: 10, schedule: "linear", rng: new Rng(1) });
  const anc2 = await samplerByName("ancestral")(x, gaussianDenoiser("linear"), { steps: 10, schedule: "linear", rng: new Rng(1) });
  assert.deepEqual(anc1, anc2, "same seed, same bytes");
});

test("bad sampler input is refused with the valid range", async () => {
  const d = gaussianDenoiser("cosine");
  await assert.rejects(() => samplerByName("ddim")(new Float32Array(4), d, { steps: 0, schedule: "cosine", rng: new Rng(0) }), /steps: expected an integer from 1 to 10000, got 0/);
  await assert.rejects(() => samplerByName("ddim")(new Float32Array(4), d, { steps: 5, schedule: "cosine", rng: new Rng(0), eta: 2 }), /0 <= eta <= 1/);
  assert.throws(() => samplerByName("euler"), /expected one of ancestral, ddim, dpmpp2m, got "euler"/);
});
