// Graph construction: leaves (inputs, constants) and the checked constructor of every primitive node.
import { ShapeError } from "../util/errors.js";
import type { Op, OpAttrs } from "./ops.js";
import { shapeRules } from "./shape-rules.js";
import { Tensor, fmtShape, isStatic, type DType, type Shape } from "./tensor.js";

/** Creates a primitive node after running its shape rule (which throws on bad input). */
export function make<K extends Op>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K]): Tensor<K> {
  const rule = shapeRules[op] as (i: readonly Tensor[], a: OpAttrs[K]) => { shape: Shape; dtype: DType };
  const { shape, dtype } = rule(inputs, attrs);
  return new Tensor(op, inputs, attrs, shape, dtype);
}

/** A named graph input (a placeholder fed when the compiled function runs). */
export function input(name: string, shape: Shape, dtype: DType = "float32"): Tensor<"input"> {
  if (!/^[A-Za-z_][\w.:/-]*$/.test(name)) {
    throw new ShapeError(`input: name ${JSON.stringify(name)} is not valid; use letters, digits, _ . : / -`);
  }
  return new Tensor("input", [], { name }, [...shape], dtype);
}

export type ConstData = Float32Array | BigInt64Array | Uint8Array | number | readonly number[];

/** A constant tensor. Numbers become float32 scalars; number arrays become float32 vectors. */
export function constant(data: ConstData, shape?: readonly number[], dtype?: DType): Tensor<"constant"> {
  let arr: Float32Array | BigInt64Array | Uint8Array;
  if (typeof data === "number") arr = new Float32Array([data]);
  else if (Array.isArray(data)) arr = Float32Array.from(data as readonly number[]);
  else arr = data as Float32Array | BigInt64Array | Uint8Array;
  const dt: DType = dtype ?? (arr instanceof BigInt64Array ? "int64" : arr instanceof Uint8Array ? "bool" : "float32");
  const sh = shape ?? (typeof data === "number" ? [] : [arr.length]);
  const n = sh.reduce((p, d) => p * d, 1);
  if (n !== arr.length) {
    throw new ShapeError(`constant: expected ${n} values for shape ${fmtShape(sh)}, got ${arr.length}`);
  }
  return new Tensor("constant", [], { data: arr }, [...sh], dt);
}

/** Promotes a number to a float32 scalar constant. */
export function lift(x: Tensor | number): Tensor {
  return typeof x === "number" ? constant(x) : x;
}

export function int64(values: readonly number[], shape?: readonly number[]): Tensor<"constant"> {
  return constant(BigInt64Array.from(values.map((v) => BigInt(v))), shape ?? [values.length], "int64");
}

/** The tensor's shape as static numbers; throws naming `what` when a dimension is symbolic. */
export function staticShape(t: Tensor, what: string): number[] {
  if (!isStatic(t.shape)) throw new ShapeError(`${what}: needs a static shape, got ${fmtShape(t.shape)}`);
  return [...t.shape];
}
