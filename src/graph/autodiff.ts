// Reverse-mode automatic differentiation over the symbolic graph: grad(loss, wrt) returns gradient
// tensors that are themselves graph nodes, so forward, backward and an optimizer update form one graph.
import { ShapeError } from "../util/errors.js";
import { add, expand, mul } from "./ops-basic.js";
import { gradRules, type GradRule } from "./grad-rules.js";
import type { Op } from "./ops.js";
import { fmtShape, Tensor } from "./tensor.js";
import { lift } from "./build.js";

/** Nodes reachable from `roots`, inputs before users (iterative, so deep graphs do not overflow). */
export function topoSort(roots: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, number][] = roots.map((r) => [r, 0]);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i === 0 && seen.has(node.id)) {
      stack.pop();
      continue;
    }
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.inputs[i];
      if (!seen.has(child.id)) stack.push([child, 0]);
    } else {
      stack.pop();
      if (!seen.has(node.id)) {
        seen.add(node.id);
        order.push(node);
      }
    }
  }
  return order;
}

/**
 * Gradients of `output` with respect to each of `wrt`. `output` must be a scalar unless a cotangent
 * `seed` of its shape is given. Tensors that do not influence the output get a zero gradient.
 */
export function grad(output: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  if (!seed && output.rank !== 0) {
    throw new ShapeError(`grad: expected a scalar output, got ${fmtShape(output.shape)}; reduce it (sum, mean) or pass a seed cotangent`);
  }
  const order = topoSort([output]);
  const cot = new Map<number, Tensor>();
  cot.set(output.id, seed ?? lift(1));
  const needed = reachesTargets(order, wrt);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    const g = cot.get(node.id);
    if (!g || node.inputs.length === 0 || !needed.has(node.id)) continue;
    const rule = gradRules[node.op] as GradRule<Op>;
    const grads = rule(node, g);
    node.inputs.forEach((inp, j) => {
      const gi = grads[j];
      if (!gi || !needed.has(inp.id)) return;
      const prev = cot.get(inp.id);
      cot.set(inp.id, prev ? add(prev, gi) : gi);
    });
  }
  return wrt.map((t) => {
    const g = cot.get(t.id);
    if (!g) return expand(mul(lift(0), lift(0)), t.shape);
    return g.rank === t.rank && g.shape.every((d, i) => d === t.shape[i]) ? g : expand(g, t.shape);
  });
}

/** Ids of nodes from which some target is reachable (only those need cotangents). */
function reachesTargets(order: readonly Tensor[], targets: readonly Tensor[]): Set<number> {
  const needed = new Set(targets.map((t) => t.id));
  for (const node of order) {
    if (node.inputs.some((inp) => needed.has(inp.id))) needed.add(node.id);
  }
  return needed;
}
