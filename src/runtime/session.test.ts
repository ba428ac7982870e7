import { test } from "node:test";
import assert from "node:assert/strict";
import { compile, nchwcBlockSize, providerAvailable } from "./session.js";
import { grad } from "../graph/autodiff.js";
import type { Tensor } from "../graph/tensor.js";
import { Rng } from "../util/rng.js";
import * as g from "../graph/ops-basic.js";
import { ValueError } from "../util/errors.js";

const f32 = (v: number[]) => Float32Array.from(v);

test("compile runs one graph for any batch size through a symbolic dimension", async () => {
  const f = await compile(({ x, w }) => g.sum(g.matmul(x, w), -1), { x: { shape: ["B", 2] }, w: { shape: [2, 3] } });
  const w = { data: f32([1, 2, 3, 4, 5, 6]), shape: [2, 3] };
  const r1 = await f.run({ x: { data: f32([1, 1]), shape: [1, 2] }, w });
  assert.deepEqual([...r1.data], [21]);
  const r3 = await f.run({ x: { data: f32([1, 0, 0, 1, 2, 2]), shape: [3, 2] }, w });
  assert.deepEqual([...r3.data], [6, 15, 42]);
  f.dispose();
  await assert.rejects(() => f.run({ x: { data: f32([1, 1]), shape: [1, 2] }, w }), /disposed/);
});

test("bad feeds get clear errors naming the input and both shapes", async () => {
  const f = await compile(({ x, y }) => g.add(x, y), { x: { shape: ["B", 2] }, y: { shape: ["B", 2] } });
  const two = { data: f32([1, 2]), shape: [1, 2] };
  await assert.rejects(() => f.run({ x: two } as never), (e: Error) => e instanceof ValueError && /missing input "y"/.test(e.message));
  await assert.rejects(() => f.run({ x: { data: f32([1, 2, 3]), shape: [1, 3] }, y: two }), /input "x" has size 3 on axis 1; expected \[B, 2\]/);
  await assert.rejects(() => f.run({ x: two, y: { data: f32([1, 2, 3, 4]), shape: [2, 2] } }), /"B" = 2, but another input gave 1/);
  await assert.rejects(() => f.run({ x: two, y: { data: new BigInt64Array(2), shape: [1, 2] } }), /wrong dtype/);
  await assert.rejects(() => f.run({ x: two, y: two, z: two } as never), /unknown input "z"/);
  f.dispose();
});

test("identical graphs share one cached session; bad options are refused", async () => {
  const build = () => compile(({ x }) => g.exp(x), { x: { shape: [2] } });
  const [a, b] = [await build(), await build()];
  assert.deepEqual([...(await b.run({ x: { data: f32([0, 1]), shape: [2] } })).data].map((v) => +Number(v).toFixed(5)), [1, 2.71828]);
  a.dispose();
  assert.equal((await b.run({ x: { data: f32([0, 0]), shape: [2] } })).data[0], 1, "disposing one user keeps the shared session alive");
  b.dispose();
  await assert.rejects(() => compile(({ x }) => x, { x: { shape: [1] } }, { threads: 0 }), /threads: expected an integer >= 1/);
  assert.equal(providerAvailable("cpu"), true);
});

test("an execution provider that cannot start gives an error that names it and the fix", async (t) => {
  if (!providerAvailable("webgpu")) return t.skip("this onnxruntime-node build has no WebGPU provider");
  try {
    const f = await compile(({ x }) => g.exp(x), { x: { shape: [2] } }, { provider: "webgpu" });
    const r = await f.run({ x: { data: f32([0, 1]), shape: [2] } });
    assert.ok(Math.abs(Number(r.data[1]) - Math.E) < 1e-5, "WebGPU computes the same values");
    f.dispose();
  } catch (e) {
    assert.ok(e instanceof ValueError && /execution provider "webgpu" could not start/.test(e.message) && /use provider "cpu"/.test(e.message), String(e));
  }
});

test("convs with computed weights use ORT's NCHWc kernels where the CPU has them, with the plain Conv's values", async () => {
  const block = await nchwcBlockSize();
  // 32 -> 48 channels: two and three blocks of 16 (or more of 8), so a wrong filter reorder shows.
  const specs = { x: { shape: [2, 32, 32, 32] }, w: { shape: [48, 32, 3, 3] }, b: { shape: [48] }, r: { shape: [2, 48, 32, 32] } };
  const fn = ({ x, w, b, r }: Record<string, Tensor>) => {
    const y = g.conv2d(x, w, b, { padding: 1 });
    const [dx] = grad(g.sum(g.mul(y, r)), [x]); // the input gradient: a Conv with flipped, transposed weights
    return { y, dx };
  };
  const rng = new Rng(3);
  const draw = (shape: number[]) => ({ data: rng.normal(shape.reduce((a, d) => a * d, 1)), shape });
  const feeds = { x: draw(specs.x.shape), w: draw(specs.w.shape), b: draw(specs.b.shape), r: draw(specs.r.shape) };
  // (winograd: false: these convs would otherwise run as Winograd products, see native.test.ts)
  const blocked = await compile(fn, specs, { nchwc: true, winograd: false });
  const plain = await compile(fn, specs, { nchwc: false, winograd: false });
  const ops = (m: typeof blocked) => new TextDecoder("latin1").decode(m.model.bytes);
  assert.ok(!ops(plain).includes("ReorderInput"));
  const reorders = new Set(ops(blocked).match(/ReorderInput_\d+/g) ?? []).size;
  if (block > 0) assert.equal(reorders, 2, "both the conv and its input gradient are blocked");
  const [a, p] = [await blocked.run(feeds), await plain.run(feeds)];
  for (const k of ["y", "dx"] as const) {
    let err = 0;
    let scale = 0;
    for (let i = 0; i < p[k].data.length; i++) {
      err = Math.max(err, Math.abs((a[k].data[i] as number) - (p[k].data[i] as number)));
      scale = Math.max(scale, Math.abs(p[k].data[i] as number));
    }
    assert.ok(err <= 1e-5 * scale, `${k}: blocked and plain convs differ by ${err} (scale ${scale})`);
  }
  blocked.dispose();
  plain.dispose();
});
