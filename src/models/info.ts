// Size and cost of a U-Net configuration without allocating its weights: the parameter count (with a
// breakdown by part) and the forward FLOPs per image, for `imagen info --preset` and the benchmarks.
import { input } from "../graph/build.js";
import { countFlops } from "../graph/flops.js";
import { bindParameters, shapeOnly } from "../nn/module.js";
import { ShapeOnlyRng } from "../util/rng.js";
import { UNet, type UNetConfig } from "./unet.js";

export interface UNetInfo {
  params: number;
  /** Forward GFLOP per image (2 x multiply-adds of convs and matmuls) at `textLength` tokens. */
  gflopPerImage: number;
  textLength: number;
  /** Parameters per part: time/text embeddings, each down level, the middle, each up level, the output. */
  paramsByPart: Record<string, number>;
}

function partOf(name: string): string {
  const [head, level] = name.split(".");
  if (head === "down" || head === "up") return `${head}.${level}`;
  if (head === "mid") return "mid";
  if (["time_emb", "aug_emb", "text_norm", "text_proj", "text_pool"].includes(head)) return "conditioning";
  return "in/out";
}

export function unetInfo(config: UNetConfig, textLength = 128): UNetInfo {
  const unet = shapeOnly(() => new UNet(config, new ShapeOnlyRng()));
  const paramsByPart: Record<string, number> = {};
  for (const [name, p] of unet.namedParameters()) paramsByPart[partOf(name)] = (paramsByPart[partOf(name)] ?? 0) + p.size;
  const bound = bindParameters(unet, "input", "info.");
  try {
    const s = config.imageSize;
    const out = unet.forward({
      x: input("x", [1, config.inChannels, s, s]), t: input("t", [1]),
      text: input("text", [1, textLength, config.textDim]), mask: input("mask", [1, textLength]),
      ...(config.lowResCond ? { lowRes: input("lowRes", [1, config.inChannels, s, s]), augLevel: input("augLevel", [1]) } : {}),
    });
    return { params: unet.parameterCount(), gflopPerImage: countFlops([out]) / 1e9, textLength, paramsByPart };
  } finally {
    bound.release();
  }
}
