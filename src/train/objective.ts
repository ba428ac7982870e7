// The diffusion training objective of one cascade stage (Imagen App. A) as a graph: noise the clean image
// with per-sample alpha/sigma, predict with the U-Net, regress the parameterisation's target, optionally
// weighted per sample (min-SNR). Host-side sampling of t, noise and condition dropping is in batch.ts.
import { ValueError } from "../util/errors.js";
import { add, div, maximum, mean, mul, neg, reshape, square, sub, sum } from "../graph/ops-basic.js";
import { logSoftmax } from "../graph/composite.js";
import type { Tensor } from "../graph/tensor.js";
import type { InputSpec } from "../runtime/session.js";
import type { UNet } from "../models/unet.js";

export type Parameterization = "eps" | "v" | "x0";
export const parameterizations: readonly Parameterization[] = ["eps", "v", "x0"];

/**
 * The batch inputs of a stage's training graph, with a symbolic batch "B"; `size` for training on crops;
 * `grounding` adds each token's target place distribution and weight (see `groundingLoss`).
 */
export function objectiveInputs(unet: UNet, textLen: number, size = unet.config.imageSize, grounding = false): Record<string, InputSpec> {
  const c = unet.config;
  const img = { shape: ["B", c.inChannels, size, size] };
  const specs: Record<string, InputSpec> = {
    x0: img, noise: img, alpha: { shape: ["B"] }, sigma: { shape: ["B"] }, t: { shape: ["B"] }, weight: { shape: ["B"] },
    text: { shape: ["B", textLen, c.textDim] }, mask: { shape: ["B", textLen] },
  };
  if (c.lowResCond) {
    specs.lowRes = img;
    specs.augLevel = { shape: ["B"] };
  }
  if (grounding) {
    if (!unet.placement) throw new ValueError("grounding loss: the U-Net has no token placement; add \"tokenPlacement\": 8 to its config");
    specs.placeTarget = { shape: ["B", textLen, unet.placement.grid ** 2] };
    specs.placeWeight = { shape: ["B", textLen] };
  }
  return specs;
}

/**
 * The grounding loss: over the tokens that name a thing of the scene (placeWeight 1), the cross-entropy
 * between where the image has that thing (placeTarget, a distribution over the G x G places) and where the
 * U-Net's token placement puts the token; 0 for a batch without such tokens.
 */
export function groundingLoss(unet: UNet, b: Record<string, Tensor>, context = unet.contextText(b.text, b.mask)): Tensor {
  if (!unet.placement) throw new ValueError("grounding loss: the U-Net has no token placement");
  const logits = unet.placement.placeLogits(context, b.mask); // [B, L, G*G]
  const ce = neg(sum(mul(b.placeTarget, logSoftmax(logits, -1)), 2)); // [B, L]
  return div(sum(mul(ce, b.placeWeight)), maximum(sum(b.placeWeight), 1));
}

const perSample = (v: Tensor) => reshape(v, [v.shape[0], 1, 1, 1]);

/** The scalar loss: mean over the batch of weight_b * mean((prediction - target)^2). */
export function diffusionLoss(unet: UNet, b: Record<string, Tensor>, param: Parameterization, training = true, context?: Tensor): Tensor {
  if (!parameterizations.includes(param)) throw new ValueError(`parameterization: expected one of ${parameterizations.join(", ")}, got "${param}"`);
  const [alpha, sigma] = [perSample(b.alpha), perSample(b.sigma)];
  const xt = add(mul(alpha, b.x0), mul(sigma, b.noise)); // [B, C, S, S]
  const pred = unet.call({ x: xt, t: b.t, text: b.text, mask: b.mask, lowRes: b.lowRes, augLevel: b.augLevel, context }, training);
  const target = param === "eps" ? b.noise : param === "x0" ? b.x0 : sub(mul(alpha, b.noise), mul(sigma, b.x0));
  const perSampleLoss = mean(square(sub(pred, target)), [1, 2, 3]); // [B]
  return mean(mul(perSampleLoss, b.weight));
}

/** Min-SNR-gamma loss weights (Hang et al. 2023) for a given log-SNR, by parameterisation. */
export function minSnrWeight(logSnr: number, gamma: number | undefined, param: Parameterization): number {
  if (gamma === undefined) return 1;
  const snr = Math.exp(logSnr);
  const clipped = Math.min(snr, gamma);
  return param === "eps" ? clipped / snr : param === "v" ? clipped / (snr + 1) : clipped;
}

/** Converts a model output to the x0 prediction at (alpha, sigma) for a single value. */
export function toX0(out: number, x: number, alpha: number, sigma: number, param: Parameterization): number {
  return param === "eps" ? (x - sigma * out) / alpha : param === "v" ? alpha * x - sigma * out : out;
}
