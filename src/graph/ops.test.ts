// Every primitive and composite op through the one checker (test/helpers/op-check.ts): forward vs the
// float64 reference, gradients vs finite differences, ORT's gradient graph vs the reference; bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkOp, type OpCase } from "../../test/helpers/op-check.js";
import { allOps, type Op } from "./ops.js";
import * as g from "./ops-basic.js";
import * as c from "./composite.js";
import { make, int64 } from "./build.js";
import { input } from "./build.js";
import { withScope } from "./tensor.js";
import { ShapeError } from "../util/errors.js";
import { shapeRules } from "./shape-rules.js";
import { gradRules } from "./grad-rules.js";
import { lowerRules } from "./lower-rules.js";
import { evalRules, evaluate, nd } from "./interpret.js";
import { grad } from "./autodiff.js";

const x23 = { shape: [2, 3] };
const unary = (name: string, f: (x: import("./tensor.js").Tensor) => import("./tensor.js").Tensor, gen: OpCase["inputs"]["x"]["gen"] = "normal"): OpCase =>
  ({ name, inputs: { x: { ...x23, gen } }, build: ({ x }) => f(x) });

const cases: OpCase[] = [
  unary("neg", g.neg), unary("exp", g.exp), unary("log", g.log, "positive"), unary("sqrt", g.sqrt, "positive"),
  unary("reciprocal", g.reciprocal, "away"), unary("tanh", g.tanh), unary("sigmoid", g.sigmoid), unary("erf", g.erf),
  unary("sin", g.sin), unary("cos", g.cos), unary("abs", g.abs, "away"), unary("relu", g.relu, "away"),
  { name: "sign", inputs: { x: { ...x23, gen: "away" } }, build: ({ x }) => g.mul(g.sign(x), x) },
  { name: "add broadcast [2,3]+[3]", inputs: { a: x23, b: { shape: [3] } }, build: ({ a, b }) => g.add(a, b) },
  { name: "add broadcast [2,1]+[1,3]", inputs: { a: { shape: [2, 1] }, b: { shape: [1, 3] } }, build: ({ a, b }) => g.add(a, b) },
  { name: "add scalar", inputs: { a: x23, b: { shape: [] } }, build: ({ a, b }) => g.add(a, b) },
  { name: "sub broadcast", inputs: { a: { shape: [3] }, b: { shape: [2, 2, 3] } }, build: ({ a, b }) => g.sub(a, b) },
  { name: "mul broadcast", inputs: { a: { shape: [2, 1, 3] }, b: { shape: [4, 1] } }, build: ({ a, b }) => g.mul(a, b) },
  { name: "div", inputs: { a: x23, b: { shape: [3], gen: "away" } }, build: ({ a, b }) => g.div(a, b) },
  { name: "maximum", inputs: { a: x23, b: { shape: [2, 3] } }, build: ({ a, b }) => g.maximum(a, b) },
  { name: "minimum", inputs: { a: x23, b: { shape: [3] } }, build: ({ a, b }) => g.minimum(a, b) },
  {
    name: "less/greater/equal/where",
    inputs: { a: x23, b: x23 },
    build: ({ a, b }) => g.add(g.where(g.less(a, b), a, b), g.where(g.greater(a, 0), g.mul(b, 2), g.where(g.equal(a, a), 1, 0))),
  },
  { name: "cast bool->float", inputs: { a: x23 }, build: ({ a }) => g.mul(g.cast(g.greater(a, 0), "float32"), a) },
  { name: "cast int64->float", inputs: { i: { shape: [4], gen: { ints: 5 } } }, build: ({ i }) => g.cast(i, "float32") },
  { name: "matmul 2d", inputs: { a: { shape: [3, 4] }, b: { shape: [4, 2] } }, build: ({ a, b }) => g.matmul(a, b) },
  { name: "matmul batched, broadcast batch", inputs: { a: { shape: [2, 3, 4] }, b: { shape: [1, 4, 5] } }, build: ({ a, b }) => g.matmul(a, b) },
  { name: "matmul [B,L,K] x [K,N]", inputs: { a: { shape: [2, 3, 4], graphShape: ["B", 3, 4] }, b: { shape: [4, 2] } }, build: ({ a, b }) => g.matmul(a, b) },
  { name: "conv 3x3 pad 1 bias", inputs: { x: { shape: [2, 3, 5, 5] }, w: { shape: [4, 3, 3, 3] }, b: { shape: [4] } },
    build: ({ x, w, b }) => g.conv2d(x, w, b, { padding: 1 }) },
  { name: "conv 3x3 on 16x16 (per-tap weight-gradient lowering)", inputs: { x: { shape: [2, 2, 16, 16] }, w: { shape: [3, 2, 3, 3] } },
    build: ({ x, w }) => g.conv2d(x, w, undefined, { padding: 1 }) },
  { name: "conv stride 2 pad 1", inputs: { x: { shape: [1, 2, 6, 6] }, w: { shape: [3, 2, 3, 3] } }, build: ({ x, w }) => g.conv2d(x, w, undefined, { stride: 2, padding: 1 }) },
  { name: "conv stride 2 odd size, asymmetric pad", inputs: { x: { shape: [1, 2, 7, 6] }, w: { shape: [2, 2, 3, 2] } },
    build: ({ x, w }) => g.conv2d(x, w, undefined, { stride: 2, padding: [1, 0, 0, 1] }) },
  { name: "conv groups 2 dilation 2", inputs: { x: { shape: [1, 4, 7, 7] }, w: { shape: [6, 2, 3, 3] } },
    build: ({ x, w }) => g.conv2d(x, w, undefined, { groups: 2, dilation: 2, padding: 2 }) },
  { name: "conv 1x1 symbolic batch", inputs: { x: { shape: [3, 4, 3, 3], graphShape: ["B", 4, 3, 3] }, w: { shape: [2, 4, 1, 1] } },
    build: ({ x, w }) => g.conv2d(x, w) },
  { name: "reduceSum keepDims", inputs: { x: { shape: [2, 3, 4] } }, build: ({ x }) => g.sum(x, [0, 2], true) },
  { name: "reduceSum all", inputs: { x: x23 }, build: ({ x }) => g.sum(x) },
  { name: "reduceMax", inputs: { x: { shape: [3, 4] } }, build: ({ x }) => g.max(x, 1) },
  { name: "mean symbolic batch (dimSize)", inputs: { x: { shape: [3, 2], graphShape: ["B", 2] } }, build: ({ x }) => g.mean(x, [0, 1]) },
  { name: "reshape + transpose", inputs: { x: { shape: [2, 3, 4] } }, build: ({ x }) => g.transpose(g.reshape(x, [4, 6]), [1, 0]) },
  { name: "reshape symbolic flatten", inputs: { x: { shape: [2, 3, 4], graphShape: ["B", 3, 4] } }, build: ({ x }) => g.reshape(g.reshape(x, [-1, 4]), ["B", 12]) },
  { name: "expand", inputs: { x: { shape: [3, 1] } }, build: ({ x }) => g.expand(x, [2, 3, 4]) },
  { name: "expand symbolic", inputs: { x: { shape: [2, 1], graphShape: ["B", 1] } }, build: ({ x }) => g.expand(x, ["B", 3]) },
  { name: "slice + split", inputs: { x: { shape: [3, 5] } }, build: ({ x }) => g.mul(g.slice(x, 1, 1, 4), g.split(x, 1, [2, 3])[1]) },
  { name: "flip", inputs: { x: { shape: [2, 3, 4] } }, build: ({ x }) => g.flip(x, [0, 2]) },
  { name: "concat", inputs: { a: { shape: [2, 1] }, b: { shape: [2, 3] } }, build: ({ a, b }) => g.concat([a, b, a], 1) },
  { name: "pad", inputs: { x: x23 }, build: ({ x }) => g.pad(x, [1, 0, 0, 2]) },
  { name: "gather rows (embedding) + scatterAdd grad", inputs: { w: { shape: [5, 3] }, i: { shape: [2, 3], gen: { ints: 5 } } }, build: ({ w, i }) => g.gather(w, i) },
  { name: "scatterAdd", inputs: { i: { shape: [4], gen: { ints: 3 } }, u: { shape: [4, 2] } }, build: ({ i, u }) => make("scatterAdd", [i, u], { rows: 3 }) },
  { name: "softmax", inputs: { x: { shape: [2, 5] } }, build: ({ x }) => g.softmax(x, -1) },
  { name: "softmax axis 0", inputs: { x: { shape: [3, 2] } }, build: ({ x }) => g.softmax(x, 0) },
  // Finite differences see through stopGradient by design; its rule is checked in its own test below.
  { name: "stopGradient", inputs: { x: x23 }, build: ({ x }) => g.add(g.mul(g.stopGradient(x), x), x), wrt: [] },
  { name: "convTranspose (as an op)", inputs: { y: { shape: [1, 3, 3, 3] }, w: { shape: [3, 2, 3, 3] } },
    build: ({ y, w }) => make("convTranspose", [y, w], { stride: [2, 2], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, outSize: [6, 6] }) },
  { name: "convWeightGrad (as an op)", inputs: { x: { shape: [2, 2, 4, 4] }, y: { shape: [2, 3, 4, 4] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [1, 1], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  // 16 x 16 and larger outputs take the per-sample product lowering (FusedMatMul per tap, batch summed after).
  { name: "convWeightGrad (as an op), 16x16, symbolic batch", inputs: { x: { shape: [2, 2, 16, 16], graphShape: ["B", 2, 16, 16] }, y: { shape: [2, 3, 16, 16], graphShape: ["B", 3, 16, 16] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [1, 1], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  { name: "convWeightGrad (as an op), 16x16, fewer outputs than inputs (shifted dy), symbolic batch", inputs: { x: { shape: [2, 3, 16, 16], graphShape: ["B", 3, 16, 16] }, y: { shape: [2, 2, 16, 16], graphShape: ["B", 2, 16, 16] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [1, 1], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  { name: "convWeightGrad (as an op), 17x17, 2x2 kernel, uneven padding, shifted dy", inputs: { x: { shape: [1, 3, 17, 17] }, y: { shape: [1, 2, 17, 17] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [1, 1], pad: [1, 0, 0, 1], dilation: [1, 1], groups: 1, kernel: [2, 2] }) },
  { name: "convWeightGrad (as an op), 18x18, valid 3x3, shifted dy", inputs: { x: { shape: [1, 3, 18, 18] }, y: { shape: [1, 2, 16, 16] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [1, 1], pad: [0, 0, 0, 0], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  { name: "convWeightGrad (as an op), stride 2, 17x17 outputs (phases of the padded input), symbolic batch", inputs: { x: { shape: [2, 3, 34, 34], graphShape: ["B", 3, 34, 34] }, y: { shape: [2, 2, 17, 17], graphShape: ["B", 2, 17, 17] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [2, 2], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  { name: "convWeightGrad (as an op), stride 2, 3x2 kernel, uneven padding, odd sizes", inputs: { x: { shape: [1, 2, 33, 35] }, y: { shape: [1, 2, 16, 18] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [2, 2], pad: [1, 0, 0, 1], dilation: [1, 1], groups: 1, kernel: [3, 2] }) },
  { name: "convWeightGrad (as an op), stride 3, small (phases, one im2col product), symbolic batch", inputs: { x: { shape: [2, 3, 9, 10], graphShape: ["B", 3, 9, 10] }, y: { shape: [2, 2, 3, 4], graphShape: ["B", 2, 3, 4] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [3, 3], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  { name: "convWeightGrad (as an op), strides 2 and 3 (batch-swapped Conv)", inputs: { x: { shape: [2, 3, 9, 10] }, y: { shape: [2, 2, 5, 4] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [2, 3], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, kernel: [3, 3] }) },
  { name: "convWeightGrad (as an op), 17x17, 2x2 kernel, uneven padding", inputs: { x: { shape: [1, 2, 17, 17] }, y: { shape: [1, 2, 17, 17] } },
    build: ({ x, y }) => make("convWeightGrad", [x, y], { stride: [1, 1], pad: [1, 0, 0, 1], dilation: [1, 1], groups: 1, kernel: [2, 2] }) },
  { name: "sum over axis 0 (a product with a row of ones)", inputs: { x: { shape: [3, 2, 4] } }, build: ({ x }) => g.sum(x, 0) },
  { name: "sum over axes 0 and 1 (a product with a row of ones)", inputs: { x: { shape: [3, 2, 4] } }, build: ({ x }) => g.sum(x, [0, 1]) },
  // composites
  { name: "silu", inputs: { x: x23 }, build: ({ x }) => c.silu(x) },
  { name: "gelu exact", inputs: { x: x23 }, build: ({ x }) => c.gelu(x) },
  { name: "gelu tanh", inputs: { x: x23 }, build: ({ x }) => c.geluTanh(x) },
  { name: "logSoftmax", inputs: { x: { shape: [2, 4] } }, build: ({ x }) => c.logSoftmax(x) },
  { name: "layerNorm", inputs: { x: { shape: [2, 3, 4] }, w: { shape: [4] }, b: { shape: [4] } }, build: ({ x, w, b }) => c.layerNorm(x, w, b) },
  { name: "rmsNorm", inputs: { x: { shape: [2, 4] }, w: { shape: [4] } }, build: ({ x, w }) => c.rmsNorm(x, w, 1e-3) },
  { name: "groupNorm", inputs: { x: { shape: [2, 4, 2, 3], graphShape: ["B", 4, 2, 3] }, w: { shape: [4] }, b: { shape: [4] } },
    build: ({ x, w, b }) => c.groupNorm(x, 2, w, b) },
  { name: "upsampleNearest (Resize lowering), symbolic batch", inputs: { x: { shape: [2, 3, 3, 2], graphShape: ["B", 3, 3, 2] } },
    build: ({ x }) => make("upsampleNearest", [x], { factor: 2 }) },
  { name: "groupNorm with a per-sample affine (FiLM folded in), gamma and beta [B, C]",
    inputs: { x: { shape: [2, 4, 2, 3], graphShape: ["B", 4, 2, 3] }, w: { shape: [2, 4], graphShape: ["B", 4] }, b: { shape: [2, 4], graphShape: ["B", 4] } },
    build: ({ x, w, b }) => c.groupNorm(x, 2, w, b) },
  { name: "groupNorm, per-sample gamma [B, C] with a per-channel beta [C]",
    inputs: { x: { shape: [2, 4, 3], graphShape: ["B", 4, 3] }, w: { shape: [2, 4], graphShape: ["B", 4] }, b: { shape: [4] } },
    build: ({ x, w, b }) => c.groupNorm(x, 4, w, b) },
  { name: "groupNormalize (LayerNormalization lowering), 3-D input", inputs: { x: { shape: [2, 6, 5], graphShape: ["B", 6, 5] } },
    build: ({ x }) => make("groupNormalize", [x], { groups: 3, eps: 1e-3 }) },
  { name: "axpby (the optimizer's moment update, as an op)", inputs: { a: { shape: [2, 5] }, b: { shape: [2, 5] }, al: { shape: [] }, be: { shape: [] } },
    build: ({ a, b, al, be }) => make("axpby", [a, b, al, be], {}) },
  { name: "adamwParam (AdamW's parameter update, as an op)",
    inputs: { p: { shape: [7] }, m: { shape: [7] }, v: { shape: [7], gen: "positive" }, st: { shape: [] }, ep: { shape: [], gen: "positive" }, de: { shape: [] } },
    build: ({ p, m, v, st, ep, de }) => make("adamwParam", [p, m, v, st, ep, de], {}) },
  { name: "siluGrad (as an op)", inputs: { s: { shape: [2, 3, 4] }, y: { shape: [2, 3, 4] }, g: { shape: [2, 3, 4] } },
    build: ({ s, y, g }) => make("siluGrad", [s, y, g], {}) },
  { name: "groupNormStats (GroupNorm backward, part 1, as an op)",
    inputs: { x: { shape: [2, 4, 2, 3], graphShape: ["B", 4, 2, 3] }, g: { shape: [2, 4, 2, 3], graphShape: ["B", 4, 2, 3] } },
    build: ({ x, g }) => make("groupNormStats", [x, g], { groups: 2, eps: 1e-3 }) },
  { name: "groupNormInputGrad (GroupNorm backward, part 2, as an op), gamma [C]",
    inputs: { x: { shape: [2, 4, 3] }, g: { shape: [2, 4, 3] }, s: { shape: [2, 4, 4], gen: "positive" }, w: { shape: [4] } },
    build: ({ x, g, s, w }) => make("groupNormInputGrad", [x, g, s, w], { groups: 2 }) },
  { name: "groupNormInputGrad, per-sample gamma [B, C]",
    inputs: { x: { shape: [2, 4, 3], graphShape: ["B", 4, 3] }, g: { shape: [2, 4, 3], graphShape: ["B", 4, 3] }, s: { shape: [2, 4, 4], graphShape: ["B", 4, 4] }, w: { shape: [2, 4], graphShape: ["B", 4] } },
    build: ({ x, g, s, w }) => make("groupNormInputGrad", [x, g, s, w], { groups: 4 }) },
  { name: "attention with additive mask", inputs: { q: { shape: [2, 3, 4] }, k: { shape: [2, 5, 4] }, v: { shape: [2, 5, 3] }, m: { shape: [2, 1, 5] } },
    build: ({ q, k, v, m }) => c.attention(q, k, v, m) },
  { name: "multi-head attention", inputs: { q: { shape: [1, 3, 4] }, k: { shape: [1, 2, 4] }, v: { shape: [1, 2, 4] } },
    build: ({ q, k, v }) => c.multiHeadAttention(q, k, v, 2) },
  { name: "upsample nearest", inputs: { x: { shape: [1, 2, 2, 3] } }, build: ({ x }) => c.upsampleNearest(x, 2) },
  { name: "avg pool", inputs: { x: { shape: [1, 2, 4, 4] } }, build: ({ x }) => c.avgPool(x, 2) },
];

const covered = new Set<Op>();
for (const oc of cases) {
  test(`op: ${oc.name}`, async () => {
    (await checkOp(oc)).forEach((o) => covered.add(o));
  });
}

test("every primitive has a shape rule, a gradient rule, a lowering, a reference and a checked case", () => {
  for (const op of allOps) {
    for (const [what, table] of [["shape rule", shapeRules], ["gradient rule", gradRules], ["lowering", lowerRules], ["reference", evalRules]] as const) {
      assert.equal(typeof (table as Record<string, unknown>)[op], "function", `${op} has no ${what}`);
    }
  }
  const missing = allOps.filter((op) => !covered.has(op));
  assert.deepEqual(missing, [], `ops without a checked case: ${missing.join(", ")}`);
});

test("bad input throws at graph-build time naming the op, the module path and both shapes", () => {
  const a = input("a", [2, 3]);
  const b = input("b", [4, 5]);
  const expectShape = (fn: () => unknown, ...parts: string[]) =>
    assert.throws(fn, (e: unknown) => e instanceof ShapeError && parts.every((p) => e.message.includes(p)) || assert.fail(String(e)));
  expectShape(() => withScope("down.0.res.1", () => g.add(a, b)), "add", "down.0.res.1", "[2, 3]", "[4, 5]");
  expectShape(() => g.matmul(a, b), "matmul", "inner dimensions", "[2, 3]", "[4, 5]");
  expectShape(() => g.matmul(input("v", [3]), b), "matmul", "rank");
  expectShape(() => g.conv2d(input("x", [1, 3, 8, 8]), input("w", [4, 2, 3, 3])), "conv", "channels");
  expectShape(() => g.conv2d(input("x3", [3, 8, 8]), input("w", [4, 3, 3, 3])), "conv");
  expectShape(() => g.reshape(a, [5]), "reshape", "[2, 3]");
  expectShape(() => g.transpose(a, [0, 0]), "transpose", "perm");
  expectShape(() => g.concat([a, b], 0), "concat");
  expectShape(() => g.sum(a, 2), "axis 2 out of range");
  expectShape(() => g.where(a, a, a), "where", "bool");
  expectShape(() => g.gather(a, a), "gather", "int64");
  expectShape(() => g.expand(a, [3, 3]), "expand");
  expectShape(() => g.add(input("s", ["B", 3]), input("t", ["C", 3])), "add", "[B, 3]", "[C, 3]");
  expectShape(() => g.exp(int64([1, 2])), "float32");
  expectShape(() => c.groupNorm(input("gn", [1, 6, 2, 2]), 4), "groupNorm");
  const gnx = input("gnx", ["B", 4, 2, 2]);
  expectShape(() => c.groupNorm(gnx, 2, input("gw", ["C", 4]), input("gb", [4])), "groupNormalize", "[4] or [B, 4]", "[C, 4]");
  expectShape(() => c.groupNorm(gnx, 2, input("gw3", ["B", 4, 1]), input("gb", [4])), "groupNormalize", "[B, 4, 1]");
});

test("stopGradient: the gradient treats its output as a constant", async () => {
  const x = input("x", [3]);
  const [gx] = grad(g.sum(g.mul(g.stopGradient(x), x)), [x]);
  const [v] = evaluate([gx], { x: nd([3], [1, -2, 5]) });
  assert.deepEqual([...v.data], [1, -2, 5]);
});
