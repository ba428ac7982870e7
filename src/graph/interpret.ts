// Reference interpreter: evaluates any graph of primitives in float64 with plain loops. It is the ground
// truth of the tests: the ONNX lowering's forward values and the finite-difference gradient checks use it.
import { ImagenError, ValueError } from "../util/errors.js";
import {
  broadcastMap, broadcastNum, convForward, convTransposeRef, convWeightGradRef, erf, matmulRef, sizeOf, strideMap, stridesOf,
} from "./interpret-conv.js";
import type { Op, OpAttrs } from "./ops.js";
import { type DType, type Dim, type Shape, type Tensor, fmtShape, parseDim } from "./tensor.js";

/** A dense array; int64 and bool values are stored as numbers in `data` too. */
export interface NDArray {
  shape: number[];
  data: Float64Array;
  dtype: DType;
}

export function nd(shape: number[], data: ArrayLike<number>, dtype: DType = "float32"): NDArray {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ValueError(`nd: expected non-negative integer dims, got ${fmtShape(shape)}`);
  }
  const n = sizeOf(shape);
  if (data.length !== n) throw new ValueError(`nd: expected ${n} values for shape ${fmtShape(shape)}, got ${data.length}`);
  return { shape: [...shape], data: Float64Array.from(data), dtype };
}

// ---------------------------------------------------------------------------------------------------------
// Symbols: values such as B = 2 are learned from the fed shapes (and checked on every node evaluated).

type Env = Map<string, number>;

function resolveDim(env: Env, d: Dim): number | null {
  if (typeof d === "number") return d;
  const { coeff, atoms } = parseDim(d);
  let v = coeff;
  for (const a of atoms) {
    const x = env.get(a);
    if (x === undefined) return null;
    v *= x;
  }
  return v;
}

/** Checks `actual` against the symbolic `shape`, learning any symbol that is the one unknown of its dim. */
function unify(env: Env, shape: Shape, actual: readonly number[], what: () => string): void {
  const fail = (): never => {
    const known = [...env].map(([k, v]) => `${k}=${v}`).join(", ") || "none";
    throw new ValueError(`${what()}: expected shape ${fmtShape(shape)}, got ${fmtShape(actual)} (symbols: ${known})`);
  };
  if (shape.length !== actual.length) fail();
  shape.forEach((d, i) => {
    if (typeof d === "number") {
      if (d !== actual[i]) fail();
      return;
    }
    const { coeff, atoms } = parseDim(d);
    let known = coeff;
    const unknown: string[] = [];
    for (const a of atoms) {
      const v = env.get(a);
      if (v === undefined) unknown.push(a);
      else known *= v;
    }
    if (unknown.length === 0 && known !== actual[i]) fail();
    if (unknown.length === 1 && known !== 0) {
      const v = actual[i] / known;
      if (!Number.isInteger(v)) fail();
      env.set(unknown[0], v);
    }
  });
}

/** Resolves a target shape; one dim left unknown is inferred from `total` elements when given. */
function resolveShape(env: Env, shape: Shape, what: string, total?: number): number[] {
  const dims = shape.map((d) => resolveDim(env, d));
  const open = dims.flatMap((d, i) => (d === null ? [i] : []));
  if (open.length === 1 && total !== undefined) {
    const rest = sizeOf(dims.filter((d): d is number => d !== null));
    if (rest > 0 && total % rest === 0) dims[open[0]] = total / rest;
  }
  if (dims.some((d) => d === null)) {
    throw new ValueError(`${what}: cannot resolve ${fmtShape(shape)}; feed an input whose shape fixes its symbols`);
  }
  return dims as number[];
}

/** What evaluate() is running: symbols learned so far and the feeds. Rules called outside it see none. */
interface EvalContext {
  env: Env;
  feeds: Record<string, NDArray>;
}
let active: EvalContext | null = null;

const envNow = (): Env => active?.env ?? new Map<string, number>();

const normAx = (a: number, rank: number): number => (a < 0 ? a + rank : a);

// ---------------------------------------------------------------------------------------------------------
// Elementwise math.

const sigmoid = (v: number): number => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

type EvalRule<K extends Op> = (inputs: NDArray[], attrs: OpAttrs[K], node: Tensor<K>) => NDArray;

function unary(f: (v: number) => number): EvalRule<Op> {
  return ([x], _, node) => ({ shape: [...x.shape], data: x.data.map(f), dtype: node.dtype });
}

function binary(f: (a: number, b: number) => number, truncInt = false): EvalRule<Op> {
  return ([a, b], _, node) => {
    const shape = broadcastNum(node.op, [a.shape, b.shape]);
    const ma = broadcastMap(shape, a.shape);
    const mb = broadcastMap(shape, b.shape);
    const data = new Float64Array(ma.length);
    const trunc = truncInt && a.dtype === "int64";
    for (let i = 0; i < data.length; i++) {
      const v = f(a.data[ma[i]], b.data[mb[i]]);
      data[i] = trunc ? Math.trunc(v) : v;
    }
    return { shape, data, dtype: node.dtype };
  };
}

// ---------------------------------------------------------------------------------------------------------
// Structured ops.

function readFeed(name: string, node: Tensor): NDArray {
  if (!active) throw new ImagenError(`input "${name}": evaluated outside evaluate(); pass feeds to evaluate()`);
  const { feeds, env } = active;
  if (!Object.hasOwn(feeds, name)) {
    const have = Object.keys(feeds).join(", ") || "none";
    throw new ValueError(`evaluate: expected a feed for input "${name}" ${fmtShape(node.shape)}, got feeds: ${have}`);
  }
  const v = feeds[name];
  if (v.dtype !== node.dtype) throw new ValueError(`evaluate: input "${name}" expected dtype ${node.dtype}, got ${v.dtype}`);
  if (v.data.length !== sizeOf(v.shape)) {
    throw new ValueError(`evaluate: input "${name}" has ${v.data.length} values for shape ${fmtShape(v.shape)}`);
  }
  unify(env, node.shape, v.shape, () => `evaluate: input "${name}"`);
  return { shape: [...v.shape], data: Float64Array.from(v.data), dtype: v.dtype };
}

function constantValue(data: Float32Array | BigInt64Array | Uint8Array, node: Tensor): NDArray {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return { shape: resolveShape(new Map(), node.shape, "constant"), data: out, dtype: node.dtype };
}

function reduce(x: NDArray, axes: readonly number[], keepDims: boolean, isMax: boolean, dtype: DType): NDArray {
  const ax = axes.map((a) => normAx(a, x.shape.length));
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const map = broadcastMap(x.shape, kept);
  const out = new Float64Array(sizeOf(kept)).fill(isMax ? -Infinity : 0);
  for (let i = 0; i < map.length; i++) {
    const v = x.data[i];
    const o = map[i];
    if (!isMax) out[o] += v;
    else if (v > out[o] || Number.isNaN(v)) out[o] = v;
  }
  return { shape: keepDims ? kept : x.shape.filter((_, i) => !ax.includes(i)), data: out, dtype };
}

function take(x: NDArray, shape: number[], map: Int32Array): NDArray {
  const data = new Float64Array(map.length);
  for (let i = 0; i < map.length; i++) data[i] = x.data[map[i]];
  return { shape, data, dtype: x.dtype };
}

/** Writes `x` into `out` (strides `st`) at offset `base`: the inverse walk used by pad and concat. */
function place(out: Float64Array, st: readonly number[], x: NDArray, base: number): void {
  const map = strideMap(x.shape, st, base);
  for (let i = 0; i < map.length; i++) out[map[i]] = x.data[i];
}

function rowIndex(v: number, rows: number, op: string): number {
  const r = v < 0 ? v + rows : v;
  if (!Number.isInteger(r) || r < 0 || r >= rows) {
    throw new ValueError(`${op}: expected indices in [${-rows}, ${rows}), got ${v}`);
  }
  return r;
}

function softmax(x: NDArray, axis: number): NDArray {
  const a = normAx(axis, x.shape.length);
  const len = x.shape[a];
  const inner = sizeOf(x.shape.slice(a + 1));
  const outer = sizeOf(x.shape.slice(0, a));
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let q = 0; q < inner; q++) {
      const at = (i: number): number => (o * len + i) * inner + q;
      let mx = -Infinity;
      for (let i = 0; i < len; i++) mx = Math.max(mx, x.data[at(i)]);
      let s = 0;
      for (let i = 0; i < len; i++) s += out[at(i)] = Math.exp(x.data[at(i)] - mx);
      for (let i = 0; i < len; i++) out[at(i)] /= s;
    }
  }
  return { shape: [...x.shape], data: out, dtype: x.dtype };
}

export const evalRules: { [K in Op]: EvalRule<K> } = {
  input: (_, { name }, node) => readFeed(name, node),
  constant: (_, { data }, node) => constantValue(data, node),
  neg: unary((v) => -v),
  exp: unary(Math.exp),
  log: unary(Math.log),
  sqrt: unary(Math.sqrt),
  reciprocal: unary((v) => 1 / v),
  tanh: unary(Math.tanh),
  sigmoid: unary(sigmoid),
  silu: unary((v) => v * sigmoid(v)),
  erf: unary(erf),
  sin: unary(Math.sin),
  cos: unary(Math.cos),
  abs: unary(Math.abs),
  relu: unary((v) => (v > 0 || Number.isNaN(v) ? v : 0)),
  sign: unary((v) => (v > 0 ? 1 : v < 0 ? -1 : v === 0 ? 0 : NaN)),
  add: binary((a, b) => a + b),
  sub: binary((a, b) => a - b),
  mul: binary((a, b) => a * b),
  div: binary((a, b) => a / b, true),
  maximum: binary(Math.max),
  minimum: binary(Math.min),
  less: binary((a, b) => (a < b ? 1 : 0)),
  greater: binary((a, b) => (a > b ? 1 : 0)),
  equal: binary((a, b) => (a === b ? 1 : 0)),
  where: ([c, a, b], _, node) => {
    const shape = broadcastNum("where", [c.shape, a.shape, b.shape]);
    const [mc, ma, mb] = [c, a, b].map((t) => broadcastMap(shape, t.shape));
    const data = new Float64Array(mc.length);
    for (let i = 0; i < data.length; i++) data[i] = c.data[mc[i]] !== 0 ? a.data[ma[i]] : b.data[mb[i]];
    return { shape, data, dtype: node.dtype };
  },
  cast: ([x], { to }) => {
    const f = to === "int64" ? Math.trunc : to === "bool" ? (v: number) => (v !== 0 ? 1 : 0) : (v: number) => v;
    return { shape: [...x.shape], data: x.data.map(f), dtype: to };
  },
  matmul: ([a, b]) => matmulRef(a, b),
  conv: ([x, w, bias], g) => convForward(x, w, bias, g),
  convTranspose: ([dy, w], g) => convTransposeRef(dy, w, g),
  convWeightGrad: ([x, dy], g) => convWeightGradRef(x, dy, g),
  reduceSum: ([x], { axes, keepDims }, node) => reduce(x, axes, keepDims, false, node.dtype),
  reduceMax: ([x], { axes, keepDims }, node) => reduce(x, axes, keepDims, true, node.dtype),
  reshape: ([x], { shape }) => {
    const dims = resolveShape(envNow(), shape, "reshape", x.data.length);
    if (sizeOf(dims) !== x.data.length) {
      throw new ValueError(`reshape: cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)} = ${fmtShape(dims)}`);
    }
    return { shape: dims, data: x.data.slice(), dtype: x.dtype };
  },
  transpose: ([x], { perm }) => {
    const st = stridesOf(x.shape);
    return take(x, perm.map((p) => x.shape[p]), strideMap(perm.map((p) => x.shape[p]), perm.map((p) => st[p])));
  },
  expand: ([x], { shape }) => {
    const dims = resolveShape(envNow(), shape, "expand");
    const out = broadcastNum("expand", [x.shape, dims]);
    return take(x, out, broadcastMap(out, x.shape));
  },
  slice: ([x], { axes, starts, ends }) => {
    const st = stridesOf(x.shape);
    const shape = [...x.shape];
    let base = 0;
    axes.forEach((a0, i) => {
      const a = normAx(a0, shape.length);
      shape[a] = ends[i] - starts[i];
      base += starts[i] * st[a];
    });
    return take(x, shape, strideMap(shape, st, base));
  },
  flip: ([x], { axes }) => {
    const st = stridesOf(x.shape);
    let base = 0;
    for (const a0 of axes) {
      const a = normAx(a0, x.shape.length);
      base += (x.shape[a] - 1) * st[a];
      st[a] = -st[a];
    }
    return take(x, [...x.shape], strideMap(x.shape, st, base));
  },
  concat: (xs, { axis }) => {
    const a = normAx(axis, xs[0].shape.length);
    const shape = [...xs[0].shape];
    shape[a] = xs.reduce((s, t) => s + t.shape[a], 0);
    const st = stridesOf(shape);
    const data = new Float64Array(sizeOf(shape));
    let at = 0;
    for (const t of xs) {
      place(data, st, t, at * st[a]);
      at += t.shape[a];
    }
    return { shape, data, dtype: xs[0].dtype };
  },
  pad: ([x], { pads }) => {
    const r = x.shape.length;
    const shape = x.shape.map((d, i) => d + pads[i] + pads[i + r]);
    const st = stridesOf(shape);
    const data = new Float64Array(sizeOf(shape));
    place(data, st, x, x.shape.reduce((s, _, i) => s + pads[i] * st[i], 0));
    return { shape, data, dtype: x.dtype };
  },
  gather: ([data, idx]) => {
    const rows = data.shape[0];
    const row = sizeOf(data.shape.slice(1));
    const out = new Float64Array(idx.data.length * row);
    idx.data.forEach((v, i) => {
      const r = rowIndex(v, rows, "gather") * row;
      out.set(data.data.subarray(r, r + row), i * row);
    });
    return { shape: [...idx.shape, ...data.shape.slice(1)], data: out, dtype: data.dtype };
  },
  scatterAdd: ([idx, upd], { rows }) => {
    const nRows = resolveShape(envNow(), [rows], "scatterAdd rows")[0];
    const rowShape = upd.shape.slice(idx.shape.length);
    const row = sizeOf(rowShape);
    const out = new Float64Array(nRows * row);
    idx.data.forEach((v, i) => {
      const r = rowIndex(v, nRows, "scatterAdd") * row;
      for (let j = 0; j < row; j++) out[r + j] += upd.data[i * row + j];
    });
    return { shape: [nRows, ...rowShape], data: out, dtype: upd.dtype };
  },
  softmax: ([x], { axis }) => softmax(x, axis),
  groupNormalize: ([x, gamma, beta], { groups, eps }) => {
    const [b, c] = x.shape;
    const per = x.data.length / (b * groups);
    const spatial = x.data.length / (b * c);
    const out = new Float64Array(x.data.length);
    for (let k = 0; k < b * groups; k++) {
      const seg = x.data.subarray(k * per, (k + 1) * per);
      const mu = seg.reduce((s, v) => s + v, 0) / per;
      const vr = seg.reduce((s, v) => s + (v - mu) ** 2, 0) / per;
      const r = 1 / Math.sqrt(vr + eps);
      for (let i = 0; i < per; i++) {
        const ch = Math.floor((k * per + i) / spatial) % c;
        const bi = Math.floor(k / groups);
        const at = (t: NDArray) => t.data[t.shape.length === 2 ? bi * c + ch : ch];
        out[k * per + i] = gamma ? (seg[i] - mu) * r * at(gamma) + at(beta) : (seg[i] - mu) * r;
      }
    }
    return { shape: [...x.shape], data: out, dtype: "float32" };
  },
  axpby: ([a, b, alpha, beta]) => ({ shape: [...a.shape], data: a.data.map((v, i) => alpha.data[0] * v + beta.data[0] * b.data[i]), dtype: "float32" }),
  adamwParam: ([p, m, v, step, eps, decay]) => ({
    shape: [...p.shape], data: p.data.map((pv, i) => pv * decay.data[0] - (step.data[0] * m.data[i]) / (Math.sqrt(v.data[i]) + eps.data[0])), dtype: "float32",
  }),
  siluGrad: ([s, y, g]) => ({ shape: [...s.shape], data: s.data.map((sv, i) => g.data[i] * (sv + y.data[i] * (1 - sv))), dtype: "float32" }),
  groupNormStats: ([x, g], { groups, eps }) => {
    const [b, c] = x.shape;
    const [per, spatial] = [c / groups, x.data.length / (b * c)];
    const out = new Float64Array(b * 4 * c);
    for (let bi = 0; bi < b; bi++) {
      for (let grp = 0; grp < groups; grp++) {
        const seg = x.data.subarray((bi * c + grp * per) * spatial, (bi * c + (grp + 1) * per) * spatial);
        const mu = seg.reduce((s, v) => s + v, 0) / seg.length;
        const r = 1 / Math.sqrt(seg.reduce((s, v) => s + (v - mu) ** 2, 0) / seg.length + eps);
        for (let ch = grp * per; ch < (grp + 1) * per; ch++) {
          let [pSum, qSum] = [0, 0];
          for (let i = 0; i < spatial; i++) {
            const at = (bi * c + ch) * spatial + i;
            pSum += g.data[at] * (x.data[at] - mu) * r;
            qSum += g.data[at];
          }
          [pSum, qSum, mu, r].forEach((v, row) => (out[(bi * 4 + row) * c + ch] = v));
        }
      }
    }
    return { shape: [b, 4, c], data: out, dtype: "float32" };
  },
  groupNormInputGrad: ([x, g, stats, gamma], { groups }) => {
    const [b, c] = x.shape;
    const [per, spatial] = [c / groups, x.data.length / (b * c)];
    const out = new Float64Array(x.data.length);
    const st = (bi: number, row: number, ch: number) => stats.data[(bi * 4 + row) * c + ch];
    for (let bi = 0; bi < b; bi++) {
      const gm = (ch: number) => gamma.data[gamma.shape.length === 2 ? bi * c + ch : ch];
      for (let grp = 0; grp < groups; grp++) {
        const chans = Array.from({ length: per }, (_, k) => grp * per + k);
        const m1 = chans.reduce((s, ch) => s + gm(ch) * st(bi, 1, ch), 0) / (per * spatial);
        const m2 = chans.reduce((s, ch) => s + gm(ch) * st(bi, 0, ch), 0) / (per * spatial);
        const [mu, r] = [st(bi, 2, grp * per), st(bi, 3, grp * per)];
        for (const ch of chans) {
          for (let i = 0; i < spatial; i++) {
            const at = (bi * c + ch) * spatial + i;
            out[at] = r * (gm(ch) * g.data[at] - m1 - (x.data[at] - mu) * r * m2);
          }
        }
      }
    }
    return { shape: [...x.shape], data: out, dtype: "float32" };
  },
  upsampleNearest: ([x], { factor }) => {
    const [b, c, h, w] = x.shape;
    const [H, W] = [h * factor, w * factor];
    const out = new Float64Array(b * c * H * W);
    for (let p = 0; p < b * c; p++) {
      for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) out[(p * H + i) * W + j] = x.data[(p * h + Math.floor(i / factor)) * w + Math.floor(j / factor)];
    }
    return { shape: [b, c, H, W], data: out, dtype: "float32" };
  },
  stopGradient: ([x]) => ({ shape: [...x.shape], data: x.data.slice(), dtype: x.dtype }),
  dimSize: ([x], { axes }) => ({ shape: [], data: Float64Array.of(sizeOf(axes.map((a) => x.shape[normAx(a, x.shape.length)]))), dtype: "float32" }),
};

// ---------------------------------------------------------------------------------------------------------
// Graph walk.

/** Nodes reachable from `outputs`, each after its inputs; iterative, so deep graphs do not overflow. */
export function topoOrder(outputs: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: { node: Tensor; next: number }[] = [];
  for (const root of outputs) {
    if (seen.has(root)) continue;
    seen.add(root);
    stack.push({ node: root, next: 0 });
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next < top.node.inputs.length) {
        const child = top.node.inputs[top.next++];
        if (!seen.has(child)) {
          seen.add(child);
          stack.push({ node: child, next: 0 });
        }
      } else {
        stack.pop();
        order.push(top.node);
      }
    }
  }
  return order;
}

function evalNode(node: Tensor, inputs: NDArray[], env: Env): NDArray {
  const rule = evalRules[node.op] as EvalRule<Op>;
  const out = rule(inputs, node.attrs, node);
  const where = () => `evaluate: ${node.op} at ${node.scope || "(top level)"}`;
  unify(env, node.shape, out.shape, where);
  if (out.data.length !== sizeOf(out.shape)) throw new ImagenError(`${where()}: ${out.data.length} values for ${fmtShape(out.shape)}`);
  return out;
}

/** Evaluates `outputs` given values for the graph's input nodes, by input name. Symbolic dims resolve from the fed shapes. */
export function evaluate(outputs: readonly Tensor[], feeds: Record<string, NDArray>): NDArray[] {
  const order = topoOrder(outputs);
  const ctx: EvalContext = { env: new Map(), feeds };
  // Count consumers so that intermediate arrays are dropped once their last consumer has run.
  const uses = new Map<Tensor, number>();
  for (const n of order) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const o of outputs) uses.set(o, Infinity);
  const values = new Map<Tensor, NDArray>();
  const valueOf = (t: Tensor): NDArray => {
    const v = values.get(t);
    if (!v) throw new ImagenError(`evaluate: ${t} has no value (internal error)`);
    return v;
  };
  const prev = active;
  active = ctx;
  try {
    // Inputs first: every symbol the feeds fix is then known before a reshape, expand or scatterAdd needs it.
    for (const n of order) if (n.op === "input") values.set(n, evalNode(n, [], ctx.env));
    for (const n of order) {
      if (n.op === "input") continue;
      values.set(n, evalNode(n, n.inputs.map(valueOf), ctx.env));
      for (const i of n.inputs) {
        const left = (uses.get(i) ?? 0) - 1;
        uses.set(i, left);
        if (left === 0) values.delete(i);
      }
    }
    return outputs.map(valueOf);
  } finally {
    active = prev;
  }
}
