// The float64 reference interpreter on hand-computed cases, against naive loops written differently,
// and through adjoint identities (<A x, y> == <x, A^T y>) for the conv and gather families.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/rng.js";
import { constant, input, int64, make } from "./build.js";
import { evalRules, evaluate, nd, type NDArray } from "./interpret.js";
import { erf as erfRef } from "./interpret-conv.js";
import { allOps, type Conv2dGeometry } from "./ops.js";
import * as g from "./ops-basic.js";
import type { Tensor } from "./tensor.js";

const rng = new Rng(7);
const randn = (shape: number[]): NDArray => nd(shape, rng.normal(shape.reduce((a, b) => a * b, 1)));
const dot = (a: NDArray, b: NDArray): number => a.data.reduce((s, v, i) => s + v * b.data[i], 0);
const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-12): void => {
  assert.equal(got.length, want.length, "lengths differ");
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])), `at ${i}: ${got[i]} vs ${want[i]}`);
  }
};
/** Evaluates one output of a graph whose inputs are named after the keys of `feeds`. */
const run1 = (out: Tensor, feeds: Record<string, NDArray>): NDArray => evaluate([out], feeds)[0];

test("every primitive has a reference rule", () => {
  for (const op of allOps) assert.equal(typeof evalRules[op], "function", op);
});

test("broadcasting add, comparisons to bool, where, cast", () => {
  const a = input("a", [2, 1]);
  const b = input("b", [1, 3]);
  const feeds = { a: nd([2, 1], [1, 2]), b: nd([1, 3], [10, 20, 30]) };
  const s = run1(g.add(a, b), feeds);
  assert.deepEqual(s.shape, [2, 3]);
  assert.deepEqual([...s.data], [11, 21, 31, 12, 22, 32]);
  const lt = run1(g.less(g.mul(a, 15), b), feeds);
  assert.equal(lt.dtype, "bool");
  assert.deepEqual([...lt.data], [0, 1, 1, 0, 0, 0]);
  assert.deepEqual([...run1(g.where(g.greater(b, 15), a, 0), feeds).data], [0, 1, 1, 0, 2, 2]);
  const x = input("x", [5]);
  const xs = { x: nd([5], [-2.7, -0.5, 0, 0.5, 2.7]) };
  assert.deepEqual([...run1(g.cast(x, "int64"), xs).data], [-2, -0, 0, 0, 2]);
  assert.deepEqual([...run1(g.cast(x, "bool"), xs).data], [1, 1, 0, 1, 1]);
  assert.deepEqual([...run1(g.sign(x), xs).data], [-1, -1, 0, 1, 1]);
  assert.deepEqual([...run1(g.relu(x), xs).data], [0, 0, 0, 0.5, 2.7]);
});

test("matmul with broadcast batch dims", () => {
  const [av, bv] = [randn([2, 1, 2, 3]), randn([3, 3, 4])];
  const out = run1(g.matmul(input("a", [2, 1, 2, 3]), input("b", [3, 3, 4])), { a: av, b: bv });
  assert.deepEqual(out.shape, [2, 3, 2, 4]);
  const want: number[] = [];
  for (let p = 0; p < 2; p++) for (let q = 0; q < 3; q++) for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) {
    let s = 0;
    for (let k = 0; k < 3; k++) s += av.data[(p * 2 + i) * 3 + k] * bv.data[(q * 3 + k) * 4 + j];
    want.push(s);
  }
  close(out.data, want);
  // Hand-computed: [[1, 2], [3, 4]] x [[5], [6]] = [[17], [39]].
  const m = run1(g.matmul(constant([1, 2, 3, 4], [2, 2]), constant([5, 6], [2, 1])), {});
  assert.deepEqual([...m.data], [17, 39]);
});

/** conv by first materialising the zero-padded input, then reading it with dilated kernel offsets. */
function naiveConv(x: NDArray, w: NDArray, bias: NDArray | null, geo: Conv2dGeometry): number[] {
  const [n, c, h, wd] = x.shape;
  const [o, cg, kh, kw] = w.shape;
  const [pt, pl, pb, pr] = geo.pad;
  const hp = h + pt + pb, wp = wd + pl + pr;
  const padded = (b: number, ch: number, r: number, s: number): number => {
    const rr = r - pt, ss = s - pl;
    return rr < 0 || ss < 0 || rr >= h || ss >= wd ? 0 : x.data[((b * c + ch) * h + rr) * wd + ss];
  };
  const ho = Math.floor((hp - geo.dilation[0] * (kh - 1) - 1) / geo.stride[0]) + 1;
  const wo = Math.floor((wp - geo.dilation[1] * (kw - 1) - 1) / geo.stride[1]) + 1;
  const out: number[] = [];
  const perGroup = o / geo.groups;
  for (let b = 0; b < n; b++) for (let oc = 0; oc < o; oc++) for (let r = 0; r < ho; r++) for (let s = 0; s < wo; s++) {
    let acc = bias ? bias.data[oc] : 0;
    const group = Math.trunc(oc / perGroup);
    for (let ci = 0; ci < cg; ci++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const wv = w.data[((oc * cg + ci) * kh + i) * kw + j];
      acc += wv * padded(b, group * cg + ci, r * geo.stride[0] + i * geo.dilation[0], s * geo.stride[1] + j * geo.dilation[1]);
    }
    out.push(acc);
  }
  return out;
}

test("conv: stride 2, asymmetric pad, groups 2, dilation 2, bias vs a naive loop", () => {
  const xs = [2, 4, 9, 8], ws = [6, 2, 3, 2];
  const x = input("x", xs), w = input("w", ws), b = input("b", [6]);
  const feeds = { x: randn(xs), w: randn(ws), b: randn([6]) };
  const opts = { stride: 2, padding: [2, 1, 0, 3], dilation: 2, groups: 2 } as const;
  const out = run1(g.conv2d(x, w, b, opts), feeds);
  assert.deepEqual(out.shape, [2, 6, 4, 5]);
  close(out.data, naiveConv(feeds.x, feeds.w, feeds.b, g.convGeometry(opts)));
  // Hand-computed 1x1 channel, 2x2 kernel, no padding: a 2x2 window sum weighted by w.
  const hand = run1(g.conv2d(constant([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]), constant([1, 0, 0, -1], [1, 1, 2, 2])), {});
  assert.deepEqual([...hand.data], [-4, -4, -4, -4]);
});

const geometries: (Conv2dGeometry & { name: string; c: number; o: number; k: [number, number]; hw: [number, number] })[] = [
  { name: "stride 2 pad 1", stride: [2, 2], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, c: 3, o: 2, k: [3, 3], hw: [7, 6] },
  { name: "groups 2 dilation 2 asymmetric pad", stride: [1, 2], pad: [2, 0, 1, 3], dilation: [2, 2], groups: 2, c: 4, o: 6, k: [3, 2], hw: [8, 7] },
  { name: "stride 3 unused border", stride: [3, 3], pad: [0, 0, 0, 0], dilation: [1, 1], groups: 1, c: 2, o: 2, k: [2, 2], hw: [8, 8] },
];

for (const geo of geometries) {
  test(`convTranspose and convWeightGrad are the adjoints of conv (${geo.name})`, () => {
    const xs = [2, geo.c, ...geo.hw], ws = [geo.o, geo.c / geo.groups, ...geo.k];
    const x = input("x", xs), w = input("w", ws);
    const y = make("conv", [x, w], geo);
    const ys = y.shape as number[];
    const feeds = { x: randn(xs), w: randn(ws), y: randn(ys) };
    const yIn = input("y", ys);
    const cx = run1(y, feeds);
    const dx = run1(make("convTranspose", [yIn, w], { ...geo, outSize: geo.hw }), feeds);
    const dw = run1(make("convWeightGrad", [x, yIn], { ...geo, kernel: geo.k }), feeds);
    assert.deepEqual(dx.shape, xs);
    assert.deepEqual(dw.shape, ws);
    const lhs = dot(cx, feeds.y);
    assert.ok(Math.abs(lhs - dot(feeds.x, dx)) < 1e-11 * Math.max(1, Math.abs(lhs)), "<conv(x,w), y> vs <x, convTranspose(y,w)>");
    assert.ok(Math.abs(lhs - dot(feeds.w, dw)) < 1e-11 * Math.max(1, Math.abs(lhs)), "<conv(x,w), y> vs <w, convWeightGrad(x,y)>");
  });
}

test("gather and scatterAdd: hand case and adjoint pair", () => {
  const data = input("d", [4, 2]);
  const idx = int64([3, 0, 3, -1, 1, 2], [2, 3]);
  const feeds = { d: nd([4, 2], [0, 1, 10, 11, 20, 21, 30, 31]), u: randn([2, 3, 2]) };
  const gv = run1(g.gather(data, idx), feeds);
  assert.deepEqual(gv.shape, [2, 3, 2]);
  assert.deepEqual([...gv.data], [30, 31, 0, 1, 30, 31, 30, 31, 10, 11, 20, 21]);
  const sv = run1(make("scatterAdd", [idx, input("u", [2, 3, 2])], { rows: 4 }), feeds);
  assert.deepEqual(sv.shape, [4, 2]);
  const u = feeds.u.data;
  close(sv.data.slice(6, 8), [u[0] + u[4] + u[6], u[1] + u[5] + u[7]]);
  assert.ok(Math.abs(dot(gv, feeds.u) - dot(feeds.d, sv)) < 1e-12);
  assert.throws(() => run1(g.gather(data, int64([4])), feeds), /indices in \[-4, 4\)/);
});

test("scatterAdd with symbolic rows resolves them from the feeds", () => {
  const table = input("t", ["V", 3]);
  const i = input("i", [5], "int64");
  const out = make("scatterAdd", [i, g.gather(table, i)], { rows: "V" });
  const r = run1(out, { t: randn([4, 3]), i: nd([5], [0, 0, 1, 3, 3], "int64") });
  assert.deepEqual(r.shape, [4, 3]);
});

test("softmax: rows sum to 1, stable for large logits, along any axis", () => {
  const x = input("x", [3, 4]);
  const xv = nd([3, 4], [1, 2, 3, 4, 1000, 1000, 999, -1000, -5, 0, 5, 0]);
  const s = run1(g.softmax(x, -1), { x: xv });
  for (let r = 0; r < 3; r++) assert.ok(Math.abs(s.data.slice(r * 4, r * 4 + 4).reduce((a, b) => a + b, 0) - 1) < 1e-15);
  const e = [1, 2, 3, 4].map(Math.exp);
  close(s.data.slice(0, 4), e.map((v) => v / (e[0] + e[1] + e[2] + e[3])));
  assert.ok(s.data.every((v) => Number.isFinite(v)));
  const s0 = run1(g.softmax(x, 0), { x: xv });
  for (let c = 0; c < 4; c++) assert.ok(Math.abs(s0.data[c] + s0.data[4 + c] + s0.data[8 + c] - 1) < 1e-15);
});

test("symbolic dims: reshape, expand and dimSize resolve B from the fed shape", () => {
  const x = input("x", ["B", 3, 4]);
  const flat = g.reshape(g.reshape(x, [-1, 4]), ["B", 12]);
  assert.deepEqual(flat.shape, ["B", 12]);
  const xv = randn([2, 3, 4]);
  const [r, m, e] = evaluate([flat, g.mean(x, [0, 1]), g.expand(input("c", [1, 1]), ["B", 5])], { x: xv, c: nd([1, 1], [7]) });
  assert.deepEqual(r.shape, [2, 12]);
  assert.deepEqual([...r.data], [...xv.data]);
  assert.deepEqual(m.shape, [4]);
  close([m.data[0]], [[0, 4, 8, 12, 16, 20].reduce((s, i) => s + xv.data[i], 0) / 6]);
  assert.deepEqual(e.shape, [2, 5]);
  const two = g.reshape(input("y", ["B*T", 4]), ["B", "T", 4]);
  const y = evaluate([two, x], { y: randn([6, 4]), x: xv })[0];
  assert.deepEqual(y.shape, [2, 3, 4]);
});

test("reductions, transpose, slice, flip, concat, pad on a hand-made array", () => {
  const x = input("x", [2, 3]);
  const feeds = { x: nd([2, 3], [1, 5, 3, 4, 2, 6]) };
  const v = (t: Tensor): number[] => [...run1(t, feeds).data];
  assert.deepEqual(v(g.sum(x, 1)), [9, 12]);
  assert.deepEqual(run1(g.sum(x, 0, true), feeds).shape, [1, 3]);
  assert.deepEqual(v(g.max(x, 0)), [4, 5, 6]);
  assert.deepEqual(v(g.sum(x)), [21]);
  assert.deepEqual(v(g.transpose(x)), [1, 4, 5, 2, 3, 6]);
  assert.deepEqual(v(g.slice(x, 1, 1, 3)), [5, 3, 2, 6]);
  assert.deepEqual(v(g.flip(x, [0, 1])), [6, 2, 4, 3, 5, 1]);
  assert.deepEqual(v(g.concat([x, g.slice(x, 1, 0, 1)], 1)), [1, 5, 3, 1, 4, 2, 6, 4]);
  assert.deepEqual(v(g.pad(x, [1, 0, 0, 1])), [0, 0, 0, 0, 1, 5, 3, 0, 4, 2, 6, 0]);
  assert.deepEqual(v(g.stopGradient(x)), [1, 5, 3, 4, 2, 6]);
  const y = input("y", [2, 3, 4]);
  const yv = randn([2, 3, 4]);
  const t = run1(g.transpose(y, [2, 0, 1]), { y: yv });
  assert.deepEqual(t.shape, [4, 2, 3]);
  assert.equal(t.data[(3 * 2 + 1) * 3 + 2], yv.data[(1 * 3 + 2) * 4 + 3]);
});

test("erf matches known values to 1e-14", () => {
  const known: [number, number][] = [
    [0, 0], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [-2, -0.9953222650189527], [3, 0.9999779095030014],
    [0.1, 0.1124629160182849], [1.5, 0.9661051464753108], [-0.25, -0.2763263901682369],
  ];
  for (const [x, want] of known) assert.ok(Math.abs(erfRef(x) - want) < 1e-14, `erf(${x}) = ${erfRef(x)}, want ${want}`);
  assert.equal(erfRef(10), 1);
  assert.equal(erfRef(-Infinity), -1);
  const out = run1(g.erf(input("x", [2])), { x: nd([2], [0.5, 1]) });
  close(out.data, [0.5204998778130465, 0.8427007929497149], 1e-15);
});

test("feeds: a missing input, a wrong shape, a wrong dtype and an inconsistent symbol throw clearly", () => {
  const a = input("a", ["B", 3]);
  const b = input("b", ["B"]);
  const out = g.add(a, g.reshape(b, ["B", 1]));
  assert.throws(() => evaluate([out], { a: randn([2, 3]) }), /expected a feed for input "b"/);
  assert.throws(() => evaluate([out], { a: randn([2, 4]), b: randn([2]) }), /input "a": expected shape \[B, 3\], got \[2, 4\]/);
  assert.throws(() => evaluate([out], { a: randn([2, 3]), b: randn([3]) }), /input "b": expected shape \[B\], got \[3\]/);
  assert.throws(() => evaluate([out], { a: randn([2, 3]), b: nd([2], [0, 1], "int64") }), /dtype float32, got int64/);
  assert.deepEqual(evaluate([out], { a: randn([2, 3]), b: randn([2]) })[0].shape, [2, 3]);
});

test("a deep chain of thousands of nodes evaluates without recursion", () => {
  const x = input("x", [2]);
  let y: Tensor = x;
  for (let i = 0; i < 20000; i++) y = g.add(y, 1);
  const [r, xr] = evaluate([y, x], { x: nd([2], [0.5, -1]) });
  assert.deepEqual([...r.data], [20000.5, 19999]);
  assert.deepEqual([...xr.data], [0.5, -1]);
});
