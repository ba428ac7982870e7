// Emits a symbolic graph as an ONNX model (opset 17): walks the nodes in topological order and applies
// each op's lowering rule. Symbolic dimensions become dim_params, resolved at run time through Shape.
import { ShapeError } from "../util/errors.js";
import { topoSort } from "./autodiff.js";
import { lowerRules, type LowerRule } from "./lower-rules.js";
import {
  OnnxDataType, encodeModel, tensorFromFloat32, tensorFromInt64, type OnnxAttr, type OnnxNode, type OnnxTensor, type OnnxValueInfo,
} from "./onnx-proto.js";
import type { Op } from "./ops.js";
import { fmtShape, parseDim, type DType, type Dim, type Shape, type Tensor } from "./tensor.js";

export const OPSET = 17;
/** ORT's blocked-layout CPU kernels (ReorderInput, Conv, ReorderOutput); see lower-rules' convMaybeNchwc. */
export const nchwcDomain = "com.microsoft.nchwc";
/** ONNX Runtime's contrib operators (FusedMatMul). */
export const msDomain = "com.microsoft";

/** imagen-ts' own kernels, registered by the native binding (native/ort_run.cc). */
export const imagenDomain = "ai.imagen_ts";

export interface EmitOptions {
  /** ORT's NCHWc channel block size on this CPU (8 or 16); 0 keeps every Conv plain. */
  nchwcBlock?: number;
  /** Lower the ops that have fused kernels in imagenDomain to them (only where the native binding runs the graph). */
  fusedOps?: boolean;
  /** With fusedOps, lower the 3x3 "same" convs that suit it (and their gradients) to Winograd F(2x2 or 4x4, 3x3). */
  winograd?: boolean;
}

const onnxTypes: Record<DType, OnnxDataType> = { float32: OnnxDataType.FLOAT, int64: OnnxDataType.INT64, bool: OnnxDataType.BOOL };

export class EmitContext {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  private counter = 0;
  private readonly f32Cache = new Map<string, string>();
  private readonly i64Cache = new Map<string, string>();
  private readonly shapeCache = new Map<string, string>();
  private readonly smallConstants = new Map<string, string>();
  private readonly reused = new Map<string, string>();
  /** Where each symbolic dimension can be read at run time: an input name and an axis. */
  readonly symbols = new Map<string, { input: string; axis: number }>();
  readonly domains = new Set<string>();

  constructor(readonly nchwcBlock = 0, readonly fusedOps = false, readonly winograd = false) {}

  /**
   * Lowers the graph computing `root` where the values of `bound` (tensor id -> ONNX name) are already there:
   * a lowering rule can spell its op out in other primitives this way.
   */
  lowerGraph(root: Tensor, bound: ReadonlyMap<number, string>): string {
    const names = new Map(bound);
    const visit = (t: Tensor): string => {
      let name = names.get(t.id);
      if (name === undefined) {
        const ins = t.inputs.map(visit);
        name = (lowerRules[t.op] as LowerRule<Op>)(this, t, ins);
        names.set(t.id, name);
      }
      return name;
    };
    return visit(root);
  }

  /** The value `make` emits, made once per `key` in this graph (e.g. one transform of a value that two lowerings read). */
  once(key: string, make: () => string): string {
    let name = this.reused.get(key);
    if (name === undefined) this.reused.set(key, (name = make()));
    return name;
  }

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  onnxType(dtype: DType): OnnxDataType {
    return onnxTypes[dtype];
  }

  op(opType: string, inputs: readonly string[], attrs?: Record<string, OnnxAttr>, domain?: string): string {
    const out = this.fresh(opType);
    if (domain) this.domains.add(domain);
    this.nodes.push({ opType, inputs, outputs: [out], name: out, attrs, domain });
    return out;
  }

  constI64(values: readonly number[]): string {
    const key = values.join(",");
    let name = this.i64Cache.get(key);
    if (!name) {
      name = this.fresh("i64");
      this.initializers.push(tensorFromInt64(name, values, [values.length]));
      this.i64Cache.set(key, name);
    }
    return name;
  }

  /** An int64 initializer of the given shape (not shared). */
  constI64Shaped(values: readonly number[], dims: readonly number[]): string {
    const name = this.fresh("i64");
    this.initializers.push(tensorFromInt64(name, values, [...dims]));
    return name;
  }

  /** A float32 initializer (1-D unless `dims` is given); small ones (up to 1024 values) are shared by value. */
  constF32s(values: Float32Array, dims: readonly number[] = [values.length]): string {
    const key = values.length <= 1024 ? `${dims.join("x")}:${values.join(",")}` : undefined;
    const cached = key === undefined ? undefined : this.f32Cache.get(key);
    if (cached) return cached;
    const name = this.fresh("f32");
    this.initializers.push({ name, dataType: OnnxDataType.FLOAT, dims: [...dims], raw: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    if (key !== undefined) this.f32Cache.set(key, name);
    return name;
  }

  /** A float32 [n] initializer holding `value` everywhere, shared per (value, n). */
  filled(value: number, n: number): string {
    const key = `fill:${value}:${n}`;
    let name = this.f32Cache.get(key);
    if (!name) {
      name = this.constF32s(new Float32Array(n).fill(value));
      this.f32Cache.set(key, name);
    }
    return name;
  }

  /** A float32 [1, n] row of ones (n may be symbolic), shared per n. */
  onesRow(n: Dim): string {
    const key = `ones:${n}`;
    let name = this.f32Cache.get(key);
    if (!name) {
      name = typeof n === "number" ? this.constF32s(new Float32Array(n).fill(1), [1, n])
        : this.op("ConstantOfShape", [this.shapeOf([1, n])], { value: { type: "tensor", value: tensorFromFloat32(this.fresh("one"), Float32Array.of(1), [1]) } });
      this.f32Cache.set(key, name);
    }
    return name;
  }

  constantOf(node: Tensor<"constant">): string {
    const d = node.attrs.data;
    const raw = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    const key = raw.length <= 64 ? `${node.dtype}|${node.shape.join(",")}|${raw.join(",")}` : null;
    const cached = key === null ? undefined : this.smallConstants.get(key);
    if (cached) return cached;
    const name = this.fresh("const");
    this.initializers.push({ name, dataType: onnxTypes[node.dtype], dims: node.shape as number[], raw });
    if (key !== null) this.smallConstants.set(key, name);
    return name;
  }

  staticDim(t: Tensor, axis: number, what: string): number {
    const d = t.shape[axis];
    if (typeof d !== "number") throw new ShapeError(`${what}: axis ${axis} of ${fmtShape(t.shape)} must be static`);
    return d;
  }

  /** A 1-element int64 value holding a symbolic dimension such as "B" or "B*12", read from the inputs. */
  private symbolicDim(d: string): string {
    const { coeff, atoms } = parseDim(d);
    let out = "";
    for (const atom of atoms) {
      const src = this.symbols.get(atom);
      if (!src) throw new ShapeError(`emit: symbolic dimension "${atom}" does not occur in any graph input`);
      const v = this.op("Shape", [src.input], { start: { type: "int", value: src.axis }, end: { type: "int", value: src.axis + 1 } });
      out = out ? this.op("Mul", [out, v]) : v;
    }
    return coeff === 1 ? out : this.op("Mul", [out, this.constI64([coeff])]);
  }

  /** A 1-D int64 value holding `dims`, reading symbolic ones from the inputs that carry them. */
  shapeOf(dims: readonly Dim[]): string {
    if (dims.every((d) => typeof d === "number")) return this.constI64(dims as number[]);
    const key = dims.join(",");
    const cached = this.shapeCache.get(key);
    if (cached) return cached;
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length > 0) parts.push(this.constI64(run));
      run = [];
    };
    for (const d of dims) {
      if (typeof d === "number") {
        run.push(d);
        continue;
      }
      flush();
      parts.push(this.symbolicDim(d));
    }
    flush();
    const out = this.op("Concat", parts, { axis: { type: "int", value: 0 } });
    this.shapeCache.set(key, out);
    return out;
  }
}

export interface EmittedModel {
  bytes: Uint8Array;
  inputs: { name: string; shape: Shape; dtype: DType }[];
  outputs: { name: string; shape: Shape; dtype: DType }[];
  nodeCount: number;
}

function valueInfo(name: string, t: { shape: Shape; dtype: DType }): OnnxValueInfo {
  return { name, dataType: onnxTypes[t.dtype], shape: t.shape };
}

/** Lowers the graph computing `outputs` (named by the keys) to ONNX; `declaredInputs` are kept even if unused. */
export function emitModel(
  outputs: Record<string, Tensor>, declaredInputs: readonly Tensor<"input">[] = [], options: EmitOptions = {},
): EmittedModel {
  const ctx = new EmitContext(options.nchwcBlock ?? 0, options.fusedOps ?? false, (options.fusedOps ?? false) && (options.winograd ?? false));
  const order = topoSort(Object.values(outputs));
  const inputNodes = [...declaredInputs, ...order.filter((n): n is Tensor<"input"> => n.op === "input")];
  const byName = new Map<string, Tensor<"input">>();
  for (const n of inputNodes) {
    const prev = byName.get(n.attrs.name);
    if (prev && prev !== n) throw new ShapeError(`emit: two different inputs are named "${n.attrs.name}"; input names must be unique`);
    byName.set(n.attrs.name, n);
    n.shape.forEach((d, axis) => {
      if (typeof d === "string" && !ctx.symbols.has(d)) ctx.symbols.set(d, { input: n.attrs.name, axis });
    });
  }
  const names = new Map<number, string>();
  for (const node of order) {
    const ins = node.inputs.map((t) => names.get(t.id) as string);
    const rule = lowerRules[node.op] as LowerRule<Op>;
    names.set(node.id, rule(ctx, node, ins));
  }
  // An output computed by a node takes the output's name directly (renamed where it is consumed too); an
  // Identity (a copy in ORT) is left only for inputs, initializers and a value that two outputs share.
  const producedBy = new Map<string, OnnxNode>();
  for (const node of ctx.nodes) for (const o of node.outputs) producedBy.set(o, node);
  const renamed = new Map<string, string>();
  const outInfos = Object.entries(outputs).map(([name, t]) => {
    const value = names.get(t.id) as string;
    if (producedBy.has(value) && !renamed.has(value) && !byName.has(value)) renamed.set(value, name);
    else ctx.nodes.push({ opType: "Identity", inputs: [renamed.get(value) ?? value], outputs: [name], name: `out_${name}` });
    return { name, shape: t.shape, dtype: t.dtype };
  });
  if (renamed.size > 0) {
    const rename = (v: string) => renamed.get(v) ?? v;
    ctx.nodes.forEach((node, i) => {
      ctx.nodes[i] = { ...node, inputs: node.inputs.map(rename), outputs: node.outputs.map(rename) };
    });
  }
  const inInfos = [...byName.values()].map((n) => ({ name: n.attrs.name, shape: n.shape, dtype: n.dtype }));
  const bytes = encodeModel(
    {
      name: "imagen_ts",
      nodes: ctx.nodes,
      inputs: inInfos.map((i) => valueInfo(i.name, i)),
      outputs: outInfos.map((o) => valueInfo(o.name, o)),
      initializers: ctx.initializers,
    },
    { opset: OPSET, producer: "imagen-ts", extraOpsets: [...ctx.domains].map((domain) => ({ domain, version: 1 })) },
  );
  return { bytes, inputs: inInfos, outputs: outInfos, nodeCount: ctx.nodes.length };
}
