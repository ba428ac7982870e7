// Counts the floating-point work of a graph: 2 x multiply-adds of every conv and matmul (the convention
// of shared/reference/torch_unet.py: norms, activations and softmax are not counted).
import { topoSort } from "./autodiff.js";
import type { Tensor } from "./tensor.js";

const size = (dims: readonly (number | string)[], symbol: number) =>
  dims.reduce<number>((p, d) => p * (typeof d === "number" ? d : symbol), 1);

/** FLOPs of the graph computing `outputs`, with every symbolic dimension taken as `symbolValue`. */
export function countFlops(outputs: readonly Tensor[], symbolValue = 1): number {
  let flops = 0;
  for (const n of topoSort(outputs)) {
    if (n.op === "conv") {
      const w = n.inputs[1].shape as number[];
      flops += 2 * size(n.shape, symbolValue) * w[1] * w[2] * w[3];
    } else if (n.op === "matmul") {
      const a = n.inputs[0].shape;
      flops += 2 * size(n.shape, symbolValue) * (a[a.length - 1] as number);
    }
  }
  return flops;
}
