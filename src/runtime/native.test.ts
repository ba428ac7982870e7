import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compile } from "./session.js";
import { nativeBinding, nativeStatus } from "./native.js";
import * as g from "../graph/ops-basic.js";
import * as c from "../graph/composite.js";
import { grad } from "../graph/autodiff.js";
import type { Tensor } from "../graph/tensor.js";
import { Rng } from "../util/rng.js";
import { ValueError } from "../util/errors.js";

const hasCompiler = spawnSync(process.env.CXX || "g++", ["--version"]).status === 0;

test("the native binding is built and loaded wherever a C++ compiler was there at install (Linux)", (t) => {
  if (process.env.IMAGEN_NATIVE === "0" || process.platform !== "linux" || !hasCompiler) return t.skip("no compiler, not Linux, or IMAGEN_NATIVE=0");
  const s = nativeStatus();
  assert.ok(s.active, `native binding inactive: ${s.detail}`);
  assert.match(s.detail, /ONNX Runtime 1\.\d+/);
});

test("the install script keeps a build made from the same sources, flags, Node and CPU (npx's first run reruns it)", (t) => {
  const out = fileURLToPath(new URL("../../native/build/ort_run.node", import.meta.url));
  if (process.platform !== "linux" || !hasCompiler || !existsSync(`${out}.build`)) return t.skip("no build stamp (no compiler, not Linux, or built before the stamp)");
  const before = statSync(out);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL("../../scripts/build-native.mjs", import.meta.url))], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const after = statSync(out);
  assert.equal(after.ino, before.ino, "the binding was rebuilt (a new file)");
  assert.equal(after.mtimeMs, before.mtimeMs, "the binding was rewritten");
});

test("native and onnxruntime-node sessions compute the same outputs, of every dtype", async (t) => {
  if (!nativeBinding()) return t.skip(nativeStatus().detail);
  const fn = ({ x, i }: { x: Tensor; i: Tensor }) => ({ y: g.matmul(x, g.transpose(x, [1, 0])), s: g.sum(x, -1), n: g.add(i, i), b: g.greater(x, 0) });
  const specs = { x: { shape: ["B", 5] }, i: { shape: [3], dtype: "int64" as const } };
  const [nat, ort] = [await compile(fn as never, specs, { native: true }), await compile(fn as never, specs, { native: false })];
  assert.equal(nat.writesInPlace, true);
  assert.equal(ort.writesInPlace, false);
  const feeds = { x: { data: new Rng(1).normal(15), shape: [3, 5] }, i: { data: BigInt64Array.from([1n, -2n, 3n]), shape: [3] } };
  const [a, b] = [await nat.run(feeds as never), await ort.run(feeds as never)] as Record<string, { data: Iterable<unknown>; shape: readonly number[] }>[];
  for (const k of ["y", "s", "n", "b"]) {
    assert.deepEqual(a[k].shape, b[k].shape, k);
    assert.equal(a[k].data.constructor, b[k].data.constructor, k);
    assert.deepEqual([...a[k].data], [...b[k].data], k);
  }
  nat.dispose();
  ort.dispose();
});

test("outputs are written into the arrays given, with clear errors for the wrong array", async (t) => {
  if (!nativeBinding()) return t.skip(nativeStatus().detail);
  const f = await compile(({ x }) => ({ y: g.mul(x, 2), s: g.sum(x) }), { x: { shape: ["B", 4] } });
  const x = { data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), shape: [2, 4] };
  const into = new Float32Array(8).fill(-1);
  const r = await f.run({ x }, { y: into });
  assert.equal(r.y.data, into, "the result is the array handed in");
  assert.deepEqual([...into], [2, 4, 6, 8, 10, 12, 14, 16]);
  assert.deepEqual(r.y.shape, [2, 4]);
  assert.equal(r.s.data[0], 36, "outputs not handed in come back as new arrays");
  await assert.rejects(() => f.run({ x }, { y: new Float32Array(4) }), (e: Error) => e instanceof ValueError && /output "y" holds 4 float32 values; the output is \[B, 4\] float32 \(8 values\)/.test(e.message));
  await assert.rejects(() => f.run({ x }, { y: x.data }), /shares memory with an input/);
  await assert.rejects(() => f.run({ x }, { z: into } as never), /"z", which is not an output/);
  f.dispose();
});

test("a session released while a run is in flight finishes that run, then refuses", async (t) => {
  const binding = nativeBinding();
  if (!binding) return t.skip(nativeStatus().detail);
  const f = await compile(({ x }) => g.matmul(x, x), { x: { shape: [256, 256] } });
  const x = { data: new Rng(2).normal(256 * 256), shape: [256, 256] };
  const pending = f.run({ x });
  f.dispose();
  const r = await pending;
  assert.equal(r.data.length, 256 * 256);
  await assert.rejects(() => f.run({ x }), /disposed/);
  await assert.rejects(() => binding.createSession(new Uint8Array([1, 2, 3]), { threads: 1, optimization: 99, memPattern: true, config: [] }), /protobuf|parse|model/i);
});

test("the fused kernels (GroupNorm forward and backward, SiLU backward, spatial pads, row shifts) match their decomposed lowerings at full vector widths", async (t) => {
  if (!nativeBinding()) return t.skip(nativeStatus().detail);
  // 17x17 = 289 values per plane: eighteen 16-lane vectors and a remainder; 8 groups of 3 channels; a 3x3
  // "same" conv, whose weight gradient crops and pads columns and rows; a pad of the spatial axes.
  const specs = { x: { shape: [2, 24, 17, 17] }, r: { shape: [2, 8, 17, 17] }, w: { shape: [24] }, b: { shape: [24] }, k: { shape: [8, 24, 3, 3] }, q: { shape: [2, 24, 20, 18] } };
  const fn = ({ x, r, w, b, k, q }: Record<string, Tensor>) => {
    const y = c.silu(c.groupNorm(x, 8, w, b));
    const padded = g.pad(y, [0, 0, 2, 0, 0, 0, 1, 1]); // [2, 24, 20, 18]
    const loss = g.add(g.sum(g.mul(g.conv2d(y, k, undefined, { padding: 1 }), r)), g.sum(g.mul(padded, q)));
    const [dx, dw, db, dk] = grad(loss, [x, w, b, k]);
    return { y, dx, dw, db, dk, padded };
  };
  const [fused, plain] = [await compile(fn, specs, { native: true }), await compile(fn, specs, { native: false })];
  const text = new TextDecoder("latin1").decode(fused.model.bytes);
  for (const op of ["GroupNorm", "GroupNormStats", "GroupNormInputGrad", "SiluGrad", "PadHW", "RowShifts"]) assert.ok(text.includes(op), `the native graph uses ${op}`);
  assert.ok(!new TextDecoder("latin1").decode(plain.model.bytes).includes("ai.imagen_ts"), "onnxruntime-node's graph has no imagen-ts kernels");
  const rng = new Rng(4);
  const draw = (shape: number[], offset = 0) => ({ data: rng.normal(shape.reduce((a, d) => a * d, 1)).map((v) => 2 * v + offset), shape });
  // x far off centre (mean 30, std 2): a one-pass variance without a shift would lose digits to cancellation.
  const feeds = Object.fromEntries(Object.entries(specs).map(([k, s]) => [k, draw(s.shape, k === "x" ? 30 : 0)]));
  const [a, p] = [await fused.run(feeds as never), await plain.run(feeds as never)] as Record<string, { data: Float32Array }>[];
  for (const k of ["y", "dx", "dw", "db", "dk", "padded"]) {
    let [err, scale] = [0, 0];
    p[k].data.forEach((v, i) => {
      err = Math.max(err, Math.abs(v - a[k].data[i]));
      scale = Math.max(scale, Math.abs(v));
    });
    assert.ok(err <= 2e-5 * scale, `${k}: fused and decomposed differ by ${err} (scale ${scale})`);
  }
  fused.dispose();
  plain.dispose();
});

test("Winograd F(2x2, 3x3) and F(4x4, 3x3) convs (forward with and without bias, input and weight gradients) match the direct lowering", async (t) => {
  if (!nativeBinding()) return t.skip(nativeStatus().detail);
  // F(2x2) under 16x16, F(4x4) from there: tile rows of 4 (the unrolled kernels) and of 5 and 6 (the general
  // ones), a symbolic batch; x far from zero mean so that the transforms' cancellations show.
  const cases = [
    { x: [2, 32, 8, 8], o: 40, bias: true, batch: 2 as number | string },
    { x: [3, 48, 12, 10], o: 32, bias: false, batch: 3 as number | string },
    { x: [2, 32, 16, 16], o: 32, bias: true, batch: "B" as number | string },
    { x: [1, 32, 16, 24], o: 48, bias: true, batch: 1 as number | string },
  ];
  for (const cs of cases) {
    const [n, ch, h, w] = cs.x;
    const specs = { x: { shape: [cs.batch, ch, h, w] }, k: { shape: [cs.o, ch, 3, 3] }, b: { shape: [cs.o] }, r: { shape: [cs.batch, cs.o, h, w] } };
    const fn = ({ x, k, b, r }: Record<string, Tensor>) => {
      const y = g.conv2d(x, k, cs.bias ? b : undefined, { padding: 1 });
      const [dx, dk] = grad(g.sum(g.mul(y, r)), [x, k]);
      return { y, dx, dk };
    };
    const [wino, direct] = [await compile(fn, specs, { native: true }), await compile(fn, specs, { native: true, winograd: false })];
    const text = new TextDecoder("latin1").decode(wino.model.bytes);
    for (const op of ["WinogradInput", "WinogradOutput", "WinogradOutputGrad"]) assert.ok(text.includes(op), `${cs.x}: the graph uses ${op}`);
    assert.ok(!new TextDecoder("latin1").decode(direct.model.bytes).includes("Winograd"), "winograd: false keeps the direct convs");
    const rng = new Rng(7);
    const draw = (shape: number[], offset = 0) => ({ data: rng.normal(shape.reduce((a, d) => a * d, 1)).map((v) => v + offset), shape });
    const feeds = { x: draw([n, ch, h, w], 3), k: draw([cs.o, ch, 3, 3]), b: draw([cs.o]), r: draw([n, cs.o, h, w]) };
    const [a, p] = [await wino.run(feeds as never), await direct.run(feeds as never)] as Record<string, { data: Float32Array }>[];
    for (const key of ["y", "dx", "dk"]) {
      let [num, den] = [0, 0];
      p[key].data.forEach((v, i) => {
        num += (v - a[key].data[i]) ** 2;
        den += v * v;
      });
      t.diagnostic(`${cs.x} ${key}: relative L2 ${Math.sqrt(num / den).toExponential(2)}`);
      assert.ok(Math.sqrt(num / den) < 4e-6, `${cs.x} ${key}: Winograd and direct differ by ${Math.sqrt(num / den)} (relative L2)`);
    }
    wino.dispose();
    direct.dispose();
  }
});
