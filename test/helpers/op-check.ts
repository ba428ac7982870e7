// The one helper that checks an op: forward through ONNX Runtime against the float64 reference
// interpreter, the gradient rules against central finite differences (float64, in the interpreter), and
// the lowered gradient graph through ONNX Runtime against the interpreter's gradients.
import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.js";
import { input } from "../../src/graph/build.js";
import { grad } from "../../src/graph/autodiff.js";
import { mul, sum } from "../../src/graph/ops-basic.js";
import type { Op } from "../../src/graph/ops.js";
import { topoSort } from "../../src/graph/autodiff.js";
import type { DType, Shape, Tensor } from "../../src/graph/tensor.js";
import { evaluate, nd, type NDArray } from "../../src/graph/interpret.js";
import { compileGraph } from "../../src/runtime/session.js";
import type { HostTensor } from "../../src/runtime/host.js";

/** How to draw an input's values: normal, positive (0.5..2), away from 0 (|x| in 0.2..1.5), ints in [0, n), bools. */
export type Gen = "normal" | "positive" | "away" | { ints: number } | "bool";

export interface InputDef {
  shape: number[];
  dtype?: DType;
  gen?: Gen;
  /** The shape the graph sees (e.g. ["B", 3]); defaults to `shape`. */
  graphShape?: Shape;
}

export interface OpCase {
  name: string;
  inputs: Record<string, InputDef>;
  build: (x: Record<string, Tensor>) => Tensor;
  /** Inputs to differentiate with respect to; default: every float32 input. [] skips the gradient checks. */
  wrt?: string[];
  fwdTol?: number;
  gradTol?: number;
}

function draw(rng: Rng, def: InputDef): NDArray {
  const n = def.shape.reduce((a, b) => a * b, 1);
  const gen = def.gen ?? "normal";
  const vals = new Float64Array(n);
  const u = rng.uniform(n);
  const g = rng.normal(n);
  for (let i = 0; i < n; i++) {
    if (gen === "normal") vals[i] = g[i];
    else if (gen === "positive") vals[i] = 0.5 + 1.5 * u[i];
    else if (gen === "away") vals[i] = (g[i] < 0 ? -1 : 1) * (0.2 + 1.3 * u[i]);
    else if (gen === "bool") vals[i] = u[i] < 0.5 ? 1 : 0;
    else vals[i] = Math.floor(u[i] * gen.ints);
  }
  // Round float inputs to float32 so both engines see identical values.
  const dtype = def.dtype ?? (gen === "bool" ? "bool" : typeof gen === "object" ? "int64" : "float32");
  if (dtype === "float32") for (let i = 0; i < n; i++) vals[i] = Math.fround(vals[i]);
  return nd(def.shape, vals, dtype);
}

function toHost(a: NDArray): HostTensor {
  const data = a.dtype === "float32" ? Float32Array.from(a.data)
    : a.dtype === "int64" ? BigInt64Array.from(Array.from(a.data, (v) => BigInt(v))) : Uint8Array.from(a.data);
  return { data, shape: a.shape };
}

function maxRelErr(got: ArrayLike<number | bigint>, want: ArrayLike<number>): number {
  let scale = 1e-3;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    const g = Number(got[i]);
    if (Number.isNaN(g) !== Number.isNaN(want[i])) return Infinity;
    if (!Number.isNaN(g)) err = Math.max(err, Math.abs(g - want[i]));
  }
  return err / scale;
}

/** The primitive ops a graph uses (for the coverage test). */
export function opsUsed(out: Tensor): Set<Op> {
  return new Set(topoSort([out]).map((n) => n.op));
}

/** Runs every check on one case; returns the primitive ops it exercised, including gradient graphs. */
export async function checkOp(c: OpCase, seed = 0): Promise<Set<Op>> {
  const rng = new Rng(seed).split(c.name);
  const values = Object.fromEntries(Object.entries(c.inputs).map(([k, d]) => [k, draw(rng, d)]));
  const graphInputs = Object.fromEntries(Object.entries(c.inputs).map(([k, d]) =>
    [k, input(k, d.graphShape ?? d.shape, values[k].dtype)]));
  const out = c.build(graphInputs);
  const used = opsUsed(out);
  const feeds = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, toHost(v)]));
  const inputList = Object.values(graphInputs) as Tensor<"input">[];

  // 1. Forward: ORT (float32) against the interpreter (float64).
  const [ref] = evaluate([out], values);
  const fwd = await compileGraph<Record<string, never>, Record<string, Tensor>>({ out }, inputList);
  const got = ((await fwd.run(feeds as never)) as Record<string, HostTensor>).out;
  fwd.dispose();
  assert.deepEqual([...got.shape], ref.shape, `${c.name}: ORT output shape ${got.shape} vs reference ${ref.shape}`);
  const fErr = maxRelErr(got.data as ArrayLike<number>, ref.data);
  assert.ok(fErr <= (c.fwdTol ?? 1e-5), `${c.name}: forward error ${fErr.toExponential(2)} (ORT vs float64 reference)`);

  const wrt = c.wrt ?? Object.keys(c.inputs).filter((k) => values[k].dtype === "float32");
  if (wrt.length === 0 || out.dtype !== "float32") return used;

  // 2. Gradient rules (float64 interpreter) against central finite differences of L = sum(out * r).
  // The cotangent weights enter as an input shaped like the output, so symbolic dims stay symbolic.
  const r = draw(rng, { shape: ref.shape });
  const rIn = input("cotangent", out.shape);
  values.cotangent = r;
  feeds.cotangent = toHost(r);
  inputList.push(rIn);
  const loss = sum(mul(out, rIn));
  const grads = grad(loss, wrt.map((k) => graphInputs[k]));
  grads.forEach((g) => opsUsed(g).forEach((o) => used.add(o)));
  const refGrads = evaluate(grads, values);
  const lossAt = (vals: Record<string, NDArray>) => evaluate([loss], vals)[0].data[0];
  wrt.forEach((k, gi) => {
    const x = values[k];
    const h = 1e-6 * Math.max(1, ...Array.from(x.data, Math.abs));
    const fd = new Float64Array(x.data.length);
    for (let i = 0; i < x.data.length; i++) {
      const orig = x.data[i];
      x.data[i] = orig + h;
      const lp = lossAt(values);
      x.data[i] = orig - h;
      const lm = lossAt(values);
      x.data[i] = orig;
      fd[i] = (lp - lm) / (2 * h);
    }
    const gErr = maxRelErr(refGrads[gi].data, fd);
    assert.ok(gErr <= (c.gradTol ?? 1e-5), `${c.name}: gradient rule for "${k}" is off by ${gErr.toExponential(2)} vs finite differences`);
  });

  // 3. The lowered gradient graph through ORT against the interpreter's gradients.
  const outs = Object.fromEntries(grads.map((g, i) => [`g${i}`, g]));
  const bwd = await compileGraph<Record<string, never>, Record<string, Tensor>>(outs, inputList);
  const res = (await bwd.run(feeds as never)) as Record<string, HostTensor>;
  bwd.dispose();
  grads.forEach((_, i) => {
    const err = maxRelErr(res[`g${i}`].data as ArrayLike<number>, refGrads[i].data);
    assert.ok(err <= 1e-4, `${c.name}: ORT gradient for "${wrt[i]}" is off by ${err.toExponential(2)} vs the reference`);
  });
  return used;
}
