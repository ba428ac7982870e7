// One cascade stage at sampling time: the U-Net compiled with its weights as constants, wrapped as the
// samplers' `denoise(x, t)` contract with classifier-free guidance (cond and uncond in one batched call)
// and x0 thresholding.
import { alphaSigma, logSnrOf, type ScheduleName } from "../diffusion/schedule.js";
import { guide, threshold, type Thresholding } from "../diffusion/guidance.js";
import type { Denoise } from "../diffusion/samplers.js";
import { bindParameters } from "../nn/module.js";
import type { UNet } from "../models/unet.js";
import { compile, type CompiledGraph, type SessionOptions } from "../runtime/session.js";
import type { HostTensor } from "../runtime/host.js";
import { toX0, type Parameterization } from "../train/objective.js";
import type { Tensor } from "../graph/tensor.js";

export interface StageSpec {
  unet: UNet;
  parameterization: Parameterization;
  schedule: ScheduleName;
}

export class StageDenoiser {
  private constructor(private readonly graph: CompiledGraph, readonly spec: StageSpec) {}

  static async create(spec: StageSpec, textLen: number, session?: SessionOptions): Promise<StageDenoiser> {
    const c = spec.unet.config;
    const img = { shape: ["B", c.inChannels, c.imageSize, c.imageSize] };
    const specs: Record<string, { shape: (number | string)[] }> = {
      x: img, t: { shape: ["B"] }, text: { shape: ["B", textLen, c.textDim] }, mask: { shape: ["B", textLen] },
      ...(c.lowResCond ? { lowRes: img, augLevel: { shape: ["B"] } } : {}),
    };
    const bound = bindParameters(spec.unet, "constant");
    try {
      const graph = await compile((i: Record<string, Tensor>) =>
        spec.unet.call({ x: i.x, t: i.t, text: i.text, mask: i.mask, lowRes: i.lowRes, augLevel: i.augLevel }), specs, session);
      return new StageDenoiser(graph as unknown as CompiledGraph, spec);
    } finally {
      bound.release();
    }
  }

  /**
   * The denoiser for one batch of B samples. `cond`/`uncond` are [B, L, D] embeddings with masks;
   * the uncond half is skipped when guidance is 1.
   */
  denoiser(o: {
    batch: number; cond: { text: Float32Array; mask: Float32Array }; uncond: { text: Float32Array; mask: Float32Array };
    textLen: number; guidance: number; thresholding: Thresholding; lowRes?: Float32Array; augLevel?: number;
  }): Denoise {
    const c = this.spec.unet.config;
    const [B, L, D, S] = [o.batch, o.textLen, c.textDim, c.imageSize];
    const guided = o.guidance !== 1;
    const n = guided ? 2 * B : B;
    const text = new Float32Array(n * L * D), mask = new Float32Array(n * L);
    text.set(o.cond.text);
    mask.set(o.cond.mask);
    if (guided) {
      text.set(o.uncond.text, B * L * D);
      mask.set(o.uncond.mask, B * L);
    }
    const per = 3 * S * S;
    return async (x, t) => {
      const xs = new Float32Array(n * per);
      xs.set(x);
      if (guided) xs.set(x, B * per);
      const feeds: Record<string, HostTensor> = {
        x: { data: xs, shape: [n, 3, S, S] }, t: { data: new Float32Array(n).fill(t), shape: [n] },
        text: { data: text, shape: [n, L, D] }, mask: { data: mask, shape: [n, L] },
      };
      if (c.lowResCond && o.lowRes) {
        const lr = new Float32Array(n * per);
        lr.set(o.lowRes);
        if (guided) lr.set(o.lowRes, B * per);
        feeds.lowRes = { data: lr, shape: [n, 3, S, S] };
        feeds.augLevel = { data: new Float32Array(n).fill(o.augLevel ?? 0), shape: [n] };
      }
      const out = (await this.graph.run(feeds as never)) as unknown as HostTensor;
      const pred = out.data as Float32Array;
      const { alpha, sigma } = alphaSigma(logSnrOf(this.spec.schedule, t));
      const x0 = new Float32Array(n * per);
      for (let k = 0; k < n * per; k++) x0[k] = toX0(pred[k], xs[k], alpha, sigma, this.spec.parameterization);
      const combined = guided ? guide(x0.subarray(0, B * per), x0.subarray(B * per), o.guidance) : x0;
      return threshold(combined, B, o.thresholding);
    };
  }

  dispose(): void {
    this.graph.dispose();
  }
}
