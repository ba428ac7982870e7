import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/rng.js";
import { compile } from "../runtime/session.js";
import { bindParameters, Module } from "./module.js";
import { Conv2d, Dropout, Embedding, GroupNorm, LayerNorm, Linear, RMSNorm } from "./layers.js";
import { MultiHeadAttention } from "./attention.js";
import { collectRandomInputs, fillRandomInputs } from "./random.js";
import type { Tensor } from "../graph/tensor.js";
import { ShapeError, ValueError } from "../util/errors.js";

class Net extends Module {
  fc = this.addModule("fc", new Linear(3, 2, new Rng(1)));
  blocks = [0, 1].map((i) => this.addModule(`blocks.${i}`, new Linear(2, 2, new Rng(2 + i), { bias: i === 0 })));
  forward(x: Tensor): Tensor { return this.blocks[1].call(this.blocks[0].call(this.fc.call(x))); }
}

async function runModule<M extends Module>(m: M, f: (x: Tensor) => Tensor, x: Float32Array, shape: number[]) {
  const bound = bindParameters(m, "constant");
  try {
    const c = await compile(({ x }) => f(x), { x: { shape } });
    const out = await c.run({ x: { data: x, shape } });
    c.dispose();
    return out;
  } finally {
    bound.release();
  }
}

test("modules name parameters by path; state dicts round-trip and are checked", () => {
  const net = new Net();
  assert.deepEqual([...net.namedParameters()].map(([n]) => n), ["fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight"]);
  assert.equal(net.parameterCount(), 6 + 2 + 4 + 2 + 4);
  assert.equal(net.blocks[1].path, "blocks.1");
  const other = new Net();
  other.fc.weight.data.fill(0);
  other.loadStateDict(net.stateDict());
  assert.deepEqual(other.fc.weight.data, net.fc.weight.data);
  const sd = net.stateDict();
  sd.delete("fc.bias");
  assert.throws(() => other.loadStateDict(sd), /missing \[fc.bias\]/);
  sd.set("fc.bias", { shape: [3], data: new Float32Array(3) });
  assert.throws(() => other.loadStateDict(sd), (e: Error) => e instanceof ValueError && /"fc.bias" has shape \[3\], the module expects \[2\]/.test(e.message));
  assert.throws(() => net.fc.weight.t, /not bound/);
});

test("Linear computes x W^T + b with PyTorch's layout", async () => {
  const lin = new Linear(3, 2, new Rng(0));
  lin.weight.data.set([1, 2, 3, 4, 5, 6]);
  lin.bias!.data.set([0.5, -1]);
  const out = await runModule(lin, (x) => lin.call(x), Float32Array.from([1, 0, -1, 2, 1, 0]), [2, 3]);
  assert.deepEqual([...out.data], [-1.5, -3, 4.5, 12]);
});

test("layer initialisation follows PyTorch's bounds and is seeded", () => {
  const conv = new Conv2d(4, 8, 3, new Rng(5), { padding: 1 });
  const bound = 1 / Math.sqrt(4 * 9);
  assert.ok(conv.weight.data.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...conv.weight.data) > 0.9 * bound);
  assert.deepEqual(new Conv2d(4, 8, 3, new Rng(5)).weight.data, conv.weight.data);
  assert.throws(() => new Conv2d(3, 8, 3, new Rng(0), { groups: 2 }), /groups: 2 must divide/);
  assert.throws(() => new Linear(0, 2, new Rng(0)), /positive integer, got 0/);
});

test("norm layers: GroupNorm, LayerNorm, RMSNorm normalise with their eps", async () => {
  const x = Float32Array.from({ length: 16 }, (_, i) => i * 0.5 - 3);
  const gn = new GroupNorm(2, 4);
  const y = await runModule(gn, (t) => gn.call(t), x, [1, 4, 2, 2]);
  const first = [...y.data.slice(0, 8)] as number[];
  assert.ok(Math.abs(first.reduce((a, b) => a + b) / 8) < 1e-6);
  assert.ok(Math.abs(first.reduce((a, b) => a + b * b, 0) / 8 - 1) < 1e-3);
  const ln = new LayerNorm(4, 1e-5);
  const l = await runModule(ln, (t) => ln.call(t), Float32Array.from([1, 2, 3, 4]), [1, 4]);
  const want = [-1.3416, -0.4472, 0.4472, 1.3416];
  l.data.forEach((v, i) => assert.ok(Math.abs(Number(v) - want[i]) < 1e-3));
  const rms = new RMSNorm(2, 0);
  const r = await runModule(rms, (t) => rms.call(t), Float32Array.from([3, 4]), [1, 2]);
  const s = Math.sqrt(12.5);
  assert.ok(Math.abs(Number(r.data[0]) - 3 / s) < 1e-6 && Math.abs(Number(r.data[1]) - 4 / s) < 1e-6);
});

test("Embedding gathers rows by int64 id", async () => {
  const emb = new Embedding(4, 2, new Rng(0));
  emb.weight.data.set([0, 1, 10, 11, 20, 21, 30, 31]);
  const bound = bindParameters(emb, "constant");
  const c = await compile(({ ids }) => emb.call(ids), { ids: { shape: [3], dtype: "int64" } });
  bound.release();
  const out = await c.run({ ids: { data: BigInt64Array.from([3n, 0n, 2n]), shape: [3] } });
  assert.deepEqual([...out.data], [30, 31, 0, 1, 20, 21]);
  c.dispose();
});

test("attention masks padded keys: a masked key changes nothing", async () => {
  const attn = new MultiHeadAttention(4, new Rng(3), { heads: 2, contextDim: 3 });
  const bound = bindParameters(attn, "constant");
  const c = await compile(({ x, ctx, mask }) => attn.call(x, ctx, mask), { x: { shape: [1, 2, 4] }, ctx: { shape: [1, 3, 3] }, mask: { shape: [1, 3] } });
  bound.release();
  const x = { data: Float32Array.from([1, 0, -1, 2, 0.5, 0.5, 0, 1]), shape: [1, 2, 4] };
  const mask = { data: Float32Array.from([1, 1, 0]), shape: [1, 3] };
  const ctxA = { data: Float32Array.from([1, 2, 3, -1, 0, 1, 5, 5, 5]), shape: [1, 3, 3] };
  const ctxB = { data: Float32Array.from([1, 2, 3, -1, 0, 1, -9, 7, 0]), shape: [1, 3, 3] };
  const a = await c.run({ x, ctx: ctxA, mask });
  const b = await c.run({ x, ctx: ctxB, mask });
  a.data.forEach((v, i) => assert.ok(Math.abs(Number(v) - Number(b.data[i])) < 1e-6));
  const unmasked = await c.run({ x, ctx: ctxB, mask: { data: Float32Array.from([1, 1, 1]), shape: [1, 3] } });
  assert.ok(unmasked.data.some((v, i) => Math.abs(Number(v) - Number(b.data[i])) > 1e-3));
  c.dispose();
  assert.throws(() => new MultiHeadAttention(6, new Rng(0), { heads: 4 }), /divisor of dim 6/);
});

test("Dropout is seeded: same seed same mask, identity at inference, scaled by 1/(1-p)", async () => {
  const drop = new Dropout(0.5);
  const { result, randomInputs } = collectRandomInputs(() => drop.call(input4(), true));
  assert.equal(randomInputs.length, 1);
  const c = await compile(() => result, {});
  const feedsA = fillRandomInputs(randomInputs, new Rng(9), new Map());
  const feedsB = fillRandomInputs(randomInputs, new Rng(9), new Map());
  assert.deepEqual(feedsA, feedsB);
  c.dispose();
  assert.equal(drop.call(input4(), false).op, "constant");
  assert.throws(() => new Dropout(1), /0 <= p < 1/);
});

import { constant } from "../graph/build.js";
function input4(): Tensor { return constant(Float32Array.from([1, 2, 3, 4]), [4]); }

test("shape errors inside a module name its path", () => {
  const net = new Net();
  const bound = bindParameters(net, "input");
  try {
    assert.throws(() => net.call(constant(new Float32Array(8), [2, 4])), (e: Error) => e instanceof ShapeError && /at fc:/.test(e.message) && /\[2, 4\]/.test(e.message));
  } finally {
    bound.release();
  }
});
