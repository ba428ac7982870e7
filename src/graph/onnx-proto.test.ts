// Tests for the ONNX protobuf encoder: hand-built models are run through onnxruntime-node and
// their outputs checked numerically.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import {
  OnnxDataType,
  encodeModel,
  tensorFromFloat32,
  tensorFromInt64,
  type OnnxGraph,
  type OnnxModelOptions,
} from "./onnx-proto.js";

async function session(graph: OnnxGraph, options?: OnnxModelOptions): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(encodeModel(graph, options));
}

function f32(data: readonly number[], dims: readonly number[]): ort.Tensor {
  return new ort.Tensor("float32", Float32Array.from(data), dims);
}

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

function floatData(t: ort.Tensor | undefined): Float32Array {
  assert.ok(t !== undefined, "missing output");
  assert.equal(t.type, "float32");
  return t.data as Float32Array;
}

test("Add with a broadcast initializer and a symbolic batch dim", async () => {
  const s = await session({
    name: "add",
    nodes: [{ opType: "Add", inputs: ["x", "bias"], outputs: ["y"], name: "add0" }],
    inputs: [{ name: "x", dataType: OnnxDataType.FLOAT, shape: ["B", 3] }],
    outputs: [{ name: "y", dataType: OnnxDataType.FLOAT, shape: ["B", 3] }],
    initializers: [tensorFromFloat32("bias", Float32Array.from([10, 20, 30]), [3])],
  });
  const one = await s.run({ x: f32([1, 2, 3], [1, 3]) });
  assert.deepEqual(one.y.dims, [1, 3]);
  assertClose(floatData(one.y), [11, 22, 33]);
  const four = await s.run({ x: f32([0, 0, 0, 1, 1, 1, 2, 2, 2, -3, -3, -3], [4, 3]) });
  assert.deepEqual(four.y.dims, [4, 3]);
  assertClose(floatData(four.y), [10, 20, 30, 11, 21, 31, 12, 22, 32, 7, 17, 27]);
});

test("Slice with negative ends/steps, Transpose perm, ReduceSum keepdims, Concat axis=-1", async () => {
  const s = await session({
    name: "slice",
    nodes: [
      // Reverse the last axis: start at -1, end before the beginning, step -1.
      { opType: "Slice", inputs: ["x", "starts", "ends", "axes", "steps"], outputs: ["rev"] },
      { opType: "Transpose", inputs: ["rev"], outputs: ["t"], attrs: { perm: { type: "ints", value: [1, 0] } } },
      {
        opType: "ReduceSum",
        inputs: ["t", "sumAxes"],
        outputs: ["sum"],
        attrs: { keepdims: { type: "int", value: 1 } },
      },
      { opType: "Concat", inputs: ["x", "x"], outputs: ["cat"], attrs: { axis: { type: "int", value: -1 } } },
    ],
    inputs: [{ name: "x", dataType: OnnxDataType.FLOAT, shape: [2, 5] }],
    outputs: [
      { name: "rev", dataType: OnnxDataType.FLOAT, shape: [2, 5] },
      { name: "t", dataType: OnnxDataType.FLOAT, shape: [5, 2] },
      { name: "sum", dataType: OnnxDataType.FLOAT, shape: [1, 2] },
      { name: "cat", dataType: OnnxDataType.FLOAT, shape: [2, 10] },
    ],
    initializers: [
      tensorFromInt64("starts", [-1], [1]),
      tensorFromInt64("ends", BigInt64Array.from([-(2n ** 63n)]), [1]), // INT64_MIN
      tensorFromInt64("axes", [-1], [1]),
      tensorFromInt64("steps", [-1], [1]),
      tensorFromInt64("sumAxes", [0], [1]),
    ],
  });
  const x = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const out = await s.run({ x: f32(x, [2, 5]) });
  assertClose(floatData(out.rev), [4, 3, 2, 1, 0, 9, 8, 7, 6, 5]);
  assert.deepEqual(out.t.dims, [5, 2]);
  assertClose(floatData(out.t), [4, 9, 3, 8, 2, 7, 1, 6, 0, 5]);
  assert.deepEqual(out.sum.dims, [1, 2]);
  assertClose(floatData(out.sum), [10, 35]);
  assertClose(floatData(out.cat), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9]);
});

test("Conv with pads/strides and Gemm with float attrs", async () => {
  const s = await session({
    name: "conv",
    nodes: [
      {
        opType: "Conv",
        inputs: ["img", "w", "b"],
        outputs: ["conv"],
        attrs: {
          pads: { type: "ints", value: [1, 1, 1, 1] },
          strides: { type: "ints", value: [2, 2] },
          kernel_shape: { type: "ints", value: [2, 2] },
        },
      },
      {
        opType: "Gemm",
        inputs: ["a", "gb", "gc"],
        outputs: ["gemm"],
        attrs: { alpha: { type: "float", value: 0.5 }, beta: { type: "float", value: 2 } },
      },
    ],
    inputs: [
      { name: "img", dataType: OnnxDataType.FLOAT, shape: [1, 1, 3, 3] },
      { name: "a", dataType: OnnxDataType.FLOAT, shape: [2, 3] },
    ],
    outputs: [
      { name: "conv", dataType: OnnxDataType.FLOAT, shape: [1, 1, 2, 2] },
      { name: "gemm", dataType: OnnxDataType.FLOAT, shape: [2, 2] },
    ],
    initializers: [
      tensorFromFloat32("w", Float32Array.from([1, 1, 1, 1]), [1, 1, 2, 2]),
      tensorFromFloat32("b", Float32Array.from([0.5]), [1]),
      tensorFromFloat32("gb", Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2]),
      tensorFromFloat32("gc", Float32Array.from([1, -1]), [2]),
    ],
  });
  const out = await s.run({
    img: f32([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]),
    a: f32([1, 2, 3, 4, 5, 6], [2, 3]),
  });
  // Padded 5x5 input, 2x2 windows at stride 2: {1}, {2,3}, {4,7}, {5,6,8,9}, each plus bias 0.5.
  assert.deepEqual(out.conv.dims, [1, 1, 2, 2]);
  assertClose(floatData(out.conv), [1.5, 5.5, 11.5, 28.5]);
  // a @ gb = [[4, 5], [10, 11]]; 0.5 * that + 2 * [1, -1].
  assertClose(floatData(out.gemm), [4, 0.5, 7, 3.5]);
});

test("Constant tensor/floats attrs, Cast to INT64, and Resize with an omitted optional input", async () => {
  const s = await session({
    name: "const",
    nodes: [
      {
        opType: "Constant",
        inputs: [],
        outputs: ["c"],
        attrs: { value: { type: "tensor", value: tensorFromFloat32("", Float32Array.from([1.7, -2.2, 3.9]), [3]) } },
      },
      { opType: "Constant", inputs: [], outputs: ["cf"], attrs: { value_floats: { type: "floats", value: [0.25, -8] } } },
      { opType: "Add", inputs: ["c", "x"], outputs: ["sum"] },
      { opType: "Cast", inputs: ["sum"], outputs: ["ints"], attrs: { to: { type: "int", value: OnnxDataType.INT64 } } },
      {
        opType: "Resize",
        inputs: ["img", "", "scales"],
        outputs: ["up"],
        attrs: { mode: { type: "string", value: "nearest" } },
      },
    ],
    inputs: [
      { name: "x", dataType: OnnxDataType.FLOAT, shape: [] },
      { name: "img", dataType: OnnxDataType.FLOAT, shape: [1, 1, 1, 2] },
    ],
    outputs: [
      { name: "ints", dataType: OnnxDataType.INT64, shape: [3] },
      { name: "cf", dataType: OnnxDataType.FLOAT, shape: [2] },
      { name: "up", dataType: OnnxDataType.FLOAT, shape: [1, 1, 2, 4] },
    ],
    initializers: [tensorFromFloat32("scales", Float32Array.from([1, 1, 2, 2]), [4])],
  });
  const out = await s.run({ x: f32([1], []), img: f32([3, 7], [1, 1, 1, 2]) });
  assert.equal(out.ints.type, "int64");
  assert.deepEqual(Array.from(out.ints.data as BigInt64Array), [2n, -1n, 4n]); // truncation toward zero
  assertClose(floatData(out.cf), [0.25, -8]);
  assertClose(floatData(out.up), [3, 3, 7, 7, 3, 3, 7, 7]);
});

test("opset 18 ReduceMean (axes input) and extra opsets encode and load", async () => {
  const s = await session(
    {
      name: "opset18",
      nodes: [{ opType: "ReduceMean", inputs: ["x", "axes"], outputs: ["y"], attrs: { keepdims: { type: "int", value: 0 } } }],
      inputs: [{ name: "x", dataType: OnnxDataType.FLOAT, shape: [2, 2] }],
      outputs: [{ name: "y", dataType: OnnxDataType.FLOAT, shape: [2] }],
      initializers: [tensorFromInt64("axes", [-1], [1])],
    },
    { opset: 18, producer: "test", extraOpsets: [{ domain: "com.microsoft", version: 1 }] },
  );
  const out = await s.run({ x: f32([1, 3, 10, 20], [2, 2]) });
  assertClose(floatData(out.y), [2, 15]);
});

test("a 64 MB initializer encodes quickly and loads", async () => {
  const n = 16 * 1024 * 1024;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (i % 1000) * 0.5;
  const graph: OnnxGraph = {
    name: "big",
    nodes: [
      { opType: "Slice", inputs: ["w", "starts", "ends"], outputs: ["head"] },
      { opType: "Add", inputs: ["head", "x"], outputs: ["y"] },
    ],
    inputs: [{ name: "x", dataType: OnnxDataType.FLOAT, shape: [4] }],
    outputs: [{ name: "y", dataType: OnnxDataType.FLOAT, shape: [4] }],
    initializers: [
      tensorFromFloat32("w", w, [n]),
      tensorFromInt64("starts", [n - 2002], [1]),
      tensorFromInt64("ends", [n - 1998], [1]),
    ],
  };
  const start = performance.now();
  const bytes = encodeModel(graph);
  const elapsedMs = performance.now() - start;
  assert.ok(elapsedMs < 5000, `encoding took ${elapsedMs.toFixed(0)} ms`);
  assert.ok(bytes.length > n * 4 && bytes.length < n * 4 + 1024, `size ${bytes.length}`);
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ x: f32([1, 1, 1, 1], [4]) });
  const first = n - 2002;
  const expected = [0, 1, 2, 3].map((k) => ((first + k) % 1000) * 0.5 + 1);
  assertClose(floatData(out.y), expected);
});

test("negative int attrs encode as 10-byte two's complement varints", () => {
  const bytes = encodeModel({
    name: "neg",
    nodes: [{ opType: "Concat", inputs: ["a"], outputs: ["b"], attrs: { axis: { type: "int", value: -1 } } }],
    inputs: [],
    outputs: [],
    initializers: [],
  });
  // Field 3 (i), wire type 0, then -1 as nine 0xff bytes and a final 0x01.
  const expected = Buffer.from([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.ok(Buffer.from(bytes).includes(expected));
});

test("bad tensors and values throw with a helpful message", () => {
  const graph = (raw: Uint8Array): OnnxGraph => ({
    name: "bad",
    nodes: [],
    inputs: [],
    outputs: [],
    initializers: [{ name: "t", dataType: OnnxDataType.FLOAT, dims: [2, 2], raw }],
  });
  assert.throws(() => encodeModel(graph(new Uint8Array(12))), /expected 16 raw bytes/);
  assert.doesNotThrow(() => encodeModel(graph(new Uint8Array(16))));
  assert.throws(() => tensorFromInt64("t", [1.5], [1]), /safe integer/);
  assert.throws(
    () =>
      encodeModel({
        name: "bad",
        nodes: [{ opType: "Foo", inputs: [], outputs: [], attrs: { n: { type: "ints", value: [2 ** 60] } } }],
        inputs: [],
        outputs: [],
        initializers: [],
      }),
    /safe integer/,
  );
});
