// Symbolic tensors: a Tensor is a node of a graph (op, inputs, attributes, shape, dtype). Nothing runs
// when one is built; compile() in src/runtime lowers the graph to ONNX (DESIGN.md section 2).
import type { Op, OpAttrs } from "./ops.js";

/** A dimension: a number, or a symbol such as "B" that is fixed only when the graph runs. */
export type Dim = number | string;
export type Shape = readonly Dim[];
export type DType = "float32" | "int64" | "bool";

let nextId = 0;
const scopeStack: string[] = [];

/** Runs `fn` with `path` (a module path such as "down.0.res.1") as the scope that errors report. */
export function withScope<T>(path: string, fn: () => T): T {
  scopeStack.push(path);
  try {
    return fn();
  } finally {
    scopeStack.pop();
  }
}

export function currentScope(): string {
  return scopeStack.length > 0 ? scopeStack[scopeStack.length - 1] : "";
}

export class Tensor<K extends Op = Op> {
  readonly id = nextId++;
  readonly scope = currentScope();
  constructor(
    readonly op: K,
    readonly inputs: readonly Tensor[],
    readonly attrs: OpAttrs[K],
    readonly shape: Shape,
    readonly dtype: DType,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** The static size of axis `axis` (negative counts from the end); throws if it is symbolic. */
  dim(axis: number): number {
    const d = this.shape[axis < 0 ? this.shape.length + axis : axis];
    if (typeof d !== "number") {
      throw new Error(`Tensor.dim: axis ${axis} of ${fmtShape(this.shape)} is symbolic; a static size is needed`);
    }
    return d;
  }

  toString(): string {
    return `Tensor(${this.op}, ${fmtShape(this.shape)}, ${this.dtype})`;
  }
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Number of elements, or null when a dimension is symbolic. */
export function staticSize(shape: Shape): number | null {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") return null;
    n *= d;
  }
  return n;
}

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === "number");
}

/** A dimension as a numeric factor times a sorted list of symbols ("B*12" -> 12 x [B]). */
export function parseDim(d: Dim): { coeff: number; atoms: string[] } {
  if (typeof d === "number") return { coeff: d, atoms: [] };
  let coeff = 1;
  const atoms: string[] = [];
  for (const part of d.split("*")) {
    if (/^\d+$/.test(part)) coeff *= Number(part);
    else atoms.push(part);
  }
  return { coeff, atoms: atoms.sort() };
}

function formatDim(coeff: number, atoms: readonly string[]): Dim {
  if (atoms.length === 0) return coeff;
  return coeff === 1 ? atoms.join("*") : [...atoms, String(coeff)].join("*");
}

/** The product of dimensions, symbolic when any of them is ("B" x 12 -> "B*12"). */
export function productDim(dims: readonly Dim[]): Dim {
  let coeff = 1;
  const atoms: string[] = [];
  for (const d of dims) {
    const p = parseDim(d);
    coeff *= p.coeff;
    atoms.push(...p.atoms);
  }
  return formatDim(coeff, atoms.sort());
}

/** total / divisor for canonical dims, or null when it does not divide exactly. */
export function divideDim(total: Dim, divisor: Dim): Dim | null {
  const t = parseDim(total);
  const d = parseDim(divisor);
  if (d.coeff === 0 || t.coeff % d.coeff !== 0) return null;
  const atoms = [...t.atoms];
  for (const a of d.atoms) {
    const i = atoms.indexOf(a);
    if (i < 0) return null;
    atoms.splice(i, 1);
  }
  return formatDim(t.coeff / d.coeff, atoms);
}
