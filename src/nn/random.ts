// Randomness inside graphs: a graph never draws numbers itself. Ops that need noise (dropout) declare a
// uniform-noise input here; whoever runs the graph fills it from a seeded Rng (fillRandomInputs).
import { input } from "../graph/build.js";
import { cast, div, greater } from "../graph/ops-basic.js";
import type { Shape, Tensor } from "../graph/tensor.js";
import type { Rng } from "../util/rng.js";
import type { HostTensor } from "../runtime/host.js";

const declared: Tensor<"input">[] = [];

/** A keep-mask scaled by 1/(1-p): 1/(1-p) where a fresh uniform value is >= p, else 0. */
export function lessRandom(shape: Shape, p: number, label: string): Tensor {
  const u = input(`random.${declared.length}.${label || "dropout"}`, shape);
  declared.push(u);
  return div(cast(greater(u, p), "float32"), 1 - p);
}

/** Starts collecting the noise inputs declared while a graph is built; returns them when `fn` is done. */
export function collectRandomInputs<T>(fn: () => T): { result: T; randomInputs: Tensor<"input">[] } {
  const start = declared.length;
  const result = fn();
  const randomInputs = declared.splice(start);
  return { result, randomInputs };
}

/** Uniform [0, 1) values for each noise input, with symbolic dims taken from `dims`. */
export function fillRandomInputs(inputs: readonly Tensor<"input">[], rng: Rng, dims: ReadonlyMap<string, number>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const t of inputs) {
    const shape = t.shape.map((d) => (typeof d === "number" ? d : (dims.get(d) ?? 0)));
    out[t.attrs.name] = { data: rng.uniform(shape.reduce((a, b) => a * b, 1)), shape };
  }
  return out;
}
