import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/rng.js";
import { Conv2d, GroupNorm, Linear } from "../nn/layers.js";
import { Module, Parameter } from "../nn/module.js";
import { silu, logSoftmax } from "../graph/composite.js";
import { add, concat, mean, mul, neg, sum, square, sub, matmul, mT } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { TrainStep } from "./step.js";

class ShapeNet extends Module {
  c1: Conv2d; c2: Conv2d; norm: GroupNorm; head: Linear;
  constructor(rng: Rng) {
    super();
    this.c1 = this.addModule("c1", new Conv2d(3, 16, 3, rng, { padding: 1 }));
    this.c2 = this.addModule("c2", new Conv2d(16, 16, 3, rng, { stride: 2, padding: 1 }));
    this.norm = this.addModule("norm", new GroupNorm(4, 16));
    this.head = this.addModule("head", new Linear(16, 2, rng));
  }
  forward(x: Tensor): Tensor {
    const h = silu(this.norm.call(this.c2.call(silu(this.c1.call(x))))); // [B, 16, 4, 4]
    return this.head.call(mean(h, [2, 3])); // [B, 2]
  }
}

/** A random coloured square (label 0) or circle (label 1) on a random background, 16x16. */
function renderBatch(rng: Rng, n: number): { x: Float32Array; y: Float32Array } {
  const s = 16;
  const x = new Float32Array(n * 3 * s * s);
  const y = new Float32Array(n * 2);
  for (let b = 0; b < n; b++) {
    const [label, cx, cy, r] = [rng.int(2), 6 + rng.int(4), 6 + rng.int(4), 4 + rng.int(2)];
    const fg = rng.uniform(3).map((v) => 0.5 + 0.5 * v), bg = rng.uniform(3).map((v) => 0.4 * v);
    y[b * 2 + label] = 1;
    for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) {
      const inside = label === 0 ? Math.abs(i - cy) <= r && Math.abs(j - cx) <= r : (i - cy) ** 2 + (j - cx) ** 2 <= r * r;
      for (let c = 0; c < 3; c++) x[((b * 3 + c) * s + i) * s + j] = (inside ? fg[c] : bg[c]) * 2 - 1;
    }
  }
  return { x, y };
}

test("a small conv net trained through the compiled training-step graph cuts its loss by 10x", async () => {
  const rng = new Rng(0);
  const model = new ShapeNet(rng.split("init"));
  const B = 32;
  const trainer = await TrainStep.create({
    model,
    batch: { x: { shape: ["B", 3, 16, 16] }, y: { shape: ["B", 2] } },
    loss: ({ x, y }) => neg(mean(sum(mul(logSoftmax(model.call(x), -1), y), -1))),
    optimizer: { lr: 3e-3, weightDecay: 0, clipNorm: 5, emaDecay: 0.99 },
  });
  // The optimizer state is fed flat (ORT's elementwise kernels crawl on shapes ending in size-1 dims);
  // the parameters keep their shapes for the forward pass.
  // Small parameters (all of this net's) are updated in bundles, one per (decay, lr scale).
  const state = trainer.graph.model.inputs.filter((i) => /^(adam_m|adam_v|ema)\./.test(i.name));
  assert.ok(state.every((i) => i.shape.length === 1), "optimizer state inputs are 1-D");
  const moments = state.filter((i) => i.name.startsWith("adam_m."));
  assert.deepEqual(moments.map((i) => i.name), ["adam_m.small:0", "adam_m.small:1"]);
  assert.equal(moments.reduce((n, i) => n + (i.shape[0] as number), 0), [...model.namedParameters()].reduce((n, [, p]) => n + p.size, 0));
  assert.ok(trainer.graph.model.inputs.some((i) => i.name.startsWith("param.") && i.shape.length === 4), "conv weights keep their 4-D shape");
  const data = rng.split("data");
  const losses: number[] = [];
  for (let i = 0; i < 300; i++) {
    const { x, y } = renderBatch(data, B);
    const r = await trainer.step({ x: { data: x, shape: [B, 3, 16, 16] }, y: { data: y, shape: [B, 2] } });
    losses.push(r.loss);
  }
  trainer.dispose();
  const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
  const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
  console.log(`loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  assert.ok(first / last >= 10, `loss went from ${first.toFixed(4)} to ${last.toFixed(4)} (${(first / last).toFixed(1)}x)`);
});

/** A parameter vector p = [a, b], loss = 0.5 * sum((A p - t)^2): AdamW's update checked against plain arithmetic. */
class Quad extends Module {
  a = this.addParameter("a", new Parameter(Float32Array.from([0.5, -1]), [2]));
  b = this.addParameter("b", new Parameter(Float32Array.from([2]), [1]));
  get p(): Tensor { return concat([this.a.t, this.b.t], 0); }
  data(): number[] { return [...this.a.data, ...this.b.data]; }
}

test("AdamW with decay, clipping and warmed-up EMA matches a float64 reference for 5 steps", async () => {
  const model = new Quad();
  const A = [[1, 2, 0], [0, 1, -1], [3, 0, 1]], target = [1, 0, -2];
  const cfg = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1, clipNorm: 2, emaDecay: 0.9 };
  const trainer = await TrainStep.create({
    model,
    batch: { a: { shape: [3, 3] }, t: { shape: [3] } },
    loss: ({ a, t }) => mul(sum(square(sub(sum(mul(a, model.p), -1), t))), 0.5),
    optimizer: cfg,
  });
  let p = [0.5, -1, 2], m = [0, 0, 0], v = [0, 0, 0], ema = [...p];
  for (let step = 1; step <= 5; step++) {
    const r = A.map((row, i) => row.reduce((s, a, j) => s + a * p[j], 0) - target[i]);
    let g = p.map((_, j) => A.reduce((s, row, i) => s + row[j] * r[i], 0));
    const norm = Math.hypot(...g);
    g = g.map((x) => x * Math.min(1, cfg.clipNorm / (norm + 1e-6)));
    m = m.map((mi, i) => cfg.beta1 * mi + (1 - cfg.beta1) * g[i]);
    v = v.map((vi, i) => cfg.beta2 * vi + (1 - cfg.beta2) * g[i] * g[i]);
    const bc1 = 1 - cfg.beta1 ** step, bc2 = 1 - cfg.beta2 ** step;
    p = p.map((pi, i) => pi * (1 - cfg.lr * cfg.weightDecay) - (cfg.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + cfg.eps));
    const d = Math.min(cfg.emaDecay, (1 + step) / (10 + step)); // warmup: 0.18, 0.25, 0.31, 0.36, 0.4
    ema = ema.map((e, i) => d * e + (1 - d) * p[i]);
    const res = await trainer.step({
      a: { data: Float32Array.from(A.flat()), shape: [3, 3] }, t: { data: Float32Array.from(target), shape: [3] },
    });
    assert.ok(Math.abs(res.gradNorm - norm) < 1e-4 * norm, `grad norm ${res.gradNorm} vs ${norm}`);
    model.data().forEach((x, i) => assert.ok(Math.abs(x - p[i]) < 1e-5, `step ${step} p[${i}] ${x} vs ${p[i]}`));
    const emaNow = [...trainer.emaWeights().get("a")!, ...trainer.emaWeights().get("b")!];
    emaNow.forEach((x, i) => assert.ok(Math.abs(x - ema[i]) < 1e-5, `ema[${i}] ${x} vs ${ema[i]}`));
  }
  // a and b share one bundle; state() and restore() still speak per parameter.
  assert.deepEqual(trainer.graph.model.inputs.filter((i) => i.name.startsWith("adam_m.")).map((i) => i.name), ["adam_m.small:0"]);
  const st = trainer.state();
  [...st.m.get("a")!, ...st.m.get("b")!].forEach((x, i) => assert.ok(Math.abs(x - m[i]) < 1e-5, `m[${i}] ${x} vs ${m[i]}`));
  [...st.v.get("a")!, ...st.v.get("b")!].forEach((x, i) => assert.ok(Math.abs(x - v[i]) < 1e-5, `v[${i}] ${x} vs ${v[i]}`));
  trainer.restore({ ...st, m: new Map([["a", Float32Array.of(1, 2)], ["b", Float32Array.of(3)]]), v: new Map([["a", Float32Array.of(4, 5)], ["b", Float32Array.of(6)]]) });
  assert.deepEqual([...trainer.state().m.get("b")!, ...trainer.state().v.get("a")!], [3, 4, 5]);
  trainer.dispose();
});

class Pair extends Module {
  p = this.addParameter("p", new Parameter(Float32Array.from([1, -2]), [2]));
  q = this.addParameter("q", new Parameter(Float32Array.from([1, -2]), [2]));
  r = this.addParameter("r", new Parameter(Float32Array.from([1, -2]), [2])); // bundled with p (same decay and scale)
  forward(): Tensor { return this.p.t; }
}

test("lrScales: a parameter matched by a pattern moves by its factor times the learning rate, decay included", async () => {
  const model = new Pair();
  const cfg = { lr: 0.01, weightDecay: 0.5, lrScales: { "^q$": 3 } };
  const trainer = await TrainStep.create({
    model, batch: { t: { shape: [2] } }, optimizer: cfg,
    loss: ({ t }) => add(add(sum(square(sub(model.p.t, t))), sum(square(sub(model.q.t, t)))), sum(square(sub(model.r.t, t)))),
  });
  await trainer.step({ t: { data: Float32Array.from([0, 0]), shape: [2] } });
  // Adam's first step is lr * sign(g) (m / sqrt(v) = g / |g|); decoupled decay multiplies by 1 - lr * wd first.
  const expected = (p0: number, s: number) => p0 * (1 - s * cfg.lr * cfg.weightDecay) - s * cfg.lr * Math.sign(p0);
  [1, -2].forEach((p0, i) => {
    assert.ok(Math.abs(model.p.data[i] - expected(p0, 1)) < 1e-6, `p[${i}] ${model.p.data[i]} vs ${expected(p0, 1)}`);
    assert.ok(Math.abs(model.q.data[i] - expected(p0, 3)) < 1e-6, `q[${i}] ${model.q.data[i]} vs ${expected(p0, 3)}`);
    assert.ok(Math.abs(model.r.data[i] - expected(p0, 1)) < 1e-6, `r[${i}] ${model.r.data[i]} vs ${expected(p0, 1)}`);
  });
  trainer.dispose();
  await assert.rejects(TrainStep.create({ model, batch: { t: { shape: [2] } }, optimizer: { lr: 0.1, lrScales: { "(": 2 } }, loss: () => sum(model.p.t) }),
    /AdamW lrScales: "\(" is not a valid regular expression/);
  await assert.rejects(TrainStep.create({ model, batch: { t: { shape: [2] } }, optimizer: { lr: 0.1, lrScales: { q: 0 } }, loss: () => sum(model.p.t) }),
    /AdamW lrScales\["q"\]: expected a finite number > 0, got 0/);
});

/** Linear -> SiLU -> Linear, for the binding and kernel comparisons below. */
class TwoLayer extends Module {
  a: Linear; b: Linear;
  constructor(inputs: number, hidden: number, outputs: number, rng: Rng) {
    super();
    this.a = this.addModule("a", new Linear(inputs, hidden, rng));
    this.b = this.addModule("b", new Linear(hidden, outputs, rng));
  }
  forward(x: Tensor): Tensor {
    return this.b.call(silu(this.a.call(x)));
  }
}

test("training with outputs written in place (native binding) matches onnxruntime-node's new arrays step for step", async (t) => {
  const make = async (native: boolean) => {
    // a.weight, 8192 values: updated on its own; b (small): bundled with the biases.
    const model = new TwoLayer(32, 256, 4, new Rng(5));
    const step = await TrainStep.create({
      model, batch: { x: { shape: [8, 32] }, y: { shape: [8, 4] } },
      loss: ({ x, y }) => mean(square(sub(model.call(x), y))),
      // Without the fused kernels, both run the same ORT ops: equal to the last bit.
      optimizer: { lr: 1e-2, weightDecay: 0.1, clipNorm: 1, emaDecay: 0.9 }, session: { native, fusedKernels: false },
    });
    return { model, step };
  };
  const [inPlace, copied] = [await make(true), await make(false)];
  if (!inPlace.step.graph.writesInPlace) return t.skip("the native binding is not built here");
  assert.equal(copied.step.graph.writesInPlace, false);
  const rng = new Rng(9);
  const weights: Float32Array[] = [];
  for (let k = 0; k < 4; k++) {
    const batch = { x: { data: rng.normal(8 * 32), shape: [8, 32] }, y: { data: rng.normal(8 * 4), shape: [8, 4] } };
    const [ra, rb] = [await inPlace.step.step(batch), await copied.step.step(batch)];
    assert.equal(ra.loss, rb.loss, `step ${k + 1}: loss`);
    assert.equal(ra.gradNorm, rb.gradNorm, `step ${k + 1}: gradient norm`);
    const [pa, pb] = [new Map(inPlace.model.namedParameters()), new Map(copied.model.namedParameters())];
    const [sa, sb] = [inPlace.step.state(), copied.step.state()];
    const [ea, eb] = [inPlace.step.emaWeights(), copied.step.emaWeights()];
    for (const [name, p] of pa) {
      assert.deepEqual(p.data, pb.get(name)?.data, `step ${k + 1}: ${name}`);
      assert.deepEqual(sa.m.get(name), sb.m.get(name), `step ${k + 1}: m of ${name}`);
      assert.deepEqual(sa.v.get(name), sb.v.get(name), `step ${k + 1}: v of ${name}`);
      assert.deepEqual(ea.get(name), eb.get(name), `step ${k + 1}: EMA of ${name}`);
    }
    weights.push(pa.get("a.weight")?.data as Float32Array);
  }
  // Two sets of arrays taken in turn: step 3 writes over step 1's, step 4 over step 2's.
  assert.equal(weights[2], weights[0]);
  assert.equal(weights[3], weights[1]);
  assert.notEqual(weights[1], weights[0]);
  inPlace.step.dispose();
  copied.step.dispose();
});

test("the fused optimizer kernels (native binding) match ORT's own ops over several steps", async (t) => {
  const make = async (fusedKernels: boolean) => {
    const model = new TwoLayer(64, 600, 3, new Rng(6)); // a.weight: 38,400 values, three blocks of the kernels' 16,384
    const step = await TrainStep.create({
      model, batch: { x: { shape: [4, 64] }, y: { shape: [4, 3] } },
      loss: ({ x, y }) => mean(square(sub(model.call(x), y))),
      optimizer: { lr: 3e-3, weightDecay: 0.1, clipNorm: 0.5, emaDecay: 0.8, lrScales: { "^b\\.": 2 } }, session: { fusedKernels },
    });
    return { model, step };
  };
  const [fused, plain] = [await make(true), await make(false)];
  if (!new TextDecoder("latin1").decode(fused.step.graph.model.bytes).includes("AdamwParam")) return t.skip("the native binding is not built here");
  const rng = new Rng(10);
  for (let k = 0; k < 5; k++) {
    const batch = { x: { data: rng.normal(4 * 64), shape: [4, 64] }, y: { data: rng.normal(4 * 3), shape: [4, 3] } };
    const [ra, rb] = [await fused.step.step(batch), await plain.step.step(batch)];
    assert.ok(Math.abs(ra.loss - rb.loss) <= 1e-5 * Math.abs(rb.loss), `step ${k + 1}: loss ${ra.loss} vs ${rb.loss}`);
  }
  const close = (a: Float32Array, b: Float32Array, what: string) => {
    let [err, scale] = [0, 0];
    b.forEach((v, i) => ((err = Math.max(err, Math.abs(v - a[i]))), (scale = Math.max(scale, Math.abs(v)))));
    assert.ok(err <= 1e-5 * scale, `${what}: differ by ${err} (scale ${scale})`);
  };
  const [pb, sa, sb, ea, eb] = [new Map(plain.model.namedParameters()), fused.step.state(), plain.step.state(), fused.step.emaWeights(), plain.step.emaWeights()];
  for (const [name, p] of fused.model.namedParameters()) {
    close(p.data, pb.get(name)?.data as Float32Array, name);
    close(sa.m.get(name) as Float32Array, sb.m.get(name) as Float32Array, `m of ${name}`);
    close(sa.v.get(name) as Float32Array, sb.v.get(name) as Float32Array, `v of ${name}`);
    close(ea.get(name) as Float32Array, eb.get(name) as Float32Array, `EMA of ${name}`);
  }
  fused.step.dispose();
  plain.step.dispose();
});
