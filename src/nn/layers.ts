// Basic layers with PyTorch's parameter layout and default initialisation: Linear, Conv2d, norms,
// Embedding, Dropout. Each takes an explicit Rng for its initial values.
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { add, conv2d, gather, matmul, mT, mul, type Conv2dOptions } from "../graph/ops-basic.js";
import { groupNorm, layerNorm, rmsNorm } from "../graph/composite.js";
import type { Tensor } from "../graph/tensor.js";
import { lessRandom } from "./random.js";
import { Module, Parameter } from "./module.js";
import * as init from "./init.js";

function positiveInt(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new ValueError(`${what}: expected a positive integer, got ${v}`);
}

export class Linear extends Module {
  readonly weight: Parameter; // [out, in], y = x W^T + b
  readonly bias: Parameter | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, options: { bias?: boolean } = {}) {
    super();
    positiveInt("Linear inFeatures", inFeatures);
    positiveInt("Linear outFeatures", outFeatures);
    this.weight = this.addParameter("weight", new Parameter(init.torchDefault(rng, inFeatures * outFeatures, inFeatures), [outFeatures, inFeatures]));
    this.bias = options.bias === false ? null
      : this.addParameter("bias", new Parameter(init.torchDefault(rng, outFeatures, inFeatures), [outFeatures], true, false));
  }

  forward(x: Tensor): Tensor {
    const y = matmul(x, mT(this.weight.t)); // [..., out]
    return this.bias ? add(y, this.bias.t) : y;
  }
}

export interface Conv2dConfig extends Conv2dOptions {
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Parameter; // [out, in/groups, k, k]
  readonly bias: Parameter | null;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, rng: Rng, readonly config: Conv2dConfig = {}) {
    super();
    const groups = config.groups ?? 1;
    positiveInt("Conv2d inChannels", inChannels);
    positiveInt("Conv2d outChannels", outChannels);
    positiveInt("Conv2d kernel", kernel);
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new ValueError(`Conv2d groups: ${groups} must divide inChannels ${inChannels} and outChannels ${outChannels}`);
    }
    const fanIn = (inChannels / groups) * kernel * kernel;
    const n = outChannels * fanIn;
    this.weight = this.addParameter("weight", new Parameter(init.torchDefault(rng, n, fanIn), [outChannels, inChannels / groups, kernel, kernel]));
    this.bias = config.bias === false ? null
      : this.addParameter("bias", new Parameter(init.torchDefault(rng, outChannels, fanIn), [outChannels], true, false));
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight.t, this.bias?.t, this.config);
  }
}

export class GroupNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    if (channels % groups !== 0) throw new ValueError(`GroupNorm: groups ${groups} must divide channels ${channels}`);
    this.weight = this.addParameter("weight", new Parameter(init.ones(channels), [channels], true, false));
    this.bias = this.addParameter("bias", new Parameter(init.zeros(channels), [channels], true, false));
  }

  /**
   * GroupNorm(x), or with `film` ([B, C] each) GroupNorm(x) * (1 + scale) + shift, computed as one GroupNorm whose
   * per-sample affine is gamma * (1 + scale) and beta * (1 + scale) + shift: the same values, two fewer full passes
   * over x forward and three backward.
   */
  forward(x: Tensor, film?: { scale: Tensor; shift: Tensor }): Tensor {
    if (!film) return groupNorm(x, this.groups, this.weight.t, this.bias.t, this.eps);
    const s1 = add(film.scale, 1);
    return groupNorm(x, this.groups, mul(this.weight.t, s1), add(mul(this.bias.t, s1), film.shift), this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  constructor(readonly dim: number, readonly eps = 1e-5, options: { affine?: boolean; bias?: boolean } = {}) {
    super();
    const affine = options.affine !== false;
    this.weight = affine ? this.addParameter("weight", new Parameter(init.ones(dim), [dim], true, false)) : null;
    this.bias = affine && options.bias !== false ? this.addParameter("bias", new Parameter(init.zeros(dim), [dim], true, false)) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight?.t, this.bias?.t, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly weight: Parameter;
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.weight = this.addParameter("weight", new Parameter(init.ones(dim), [dim], true, false));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight.t, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: Parameter; // [vocab, dim]
  constructor(readonly vocab: number, readonly dim: number, rng: Rng, std = 1) {
    super();
    positiveInt("Embedding vocab", vocab);
    positiveInt("Embedding dim", dim);
    this.weight = this.addParameter("weight", new Parameter(init.normal(rng, vocab * dim, std), [vocab, dim], true, false));
  }

  /** ids: int64 [...] -> [..., dim]. */
  forward(ids: Tensor): Tensor {
    return gather(this.weight.t, ids);
  }
}

/**
 * Inverted dropout. In training graphs it reads a uniform-noise input that the step runner fills from its
 * seeded Rng every step (see random.ts); in inference graphs it is the identity.
 */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new ValueError(`Dropout p: expected 0 <= p < 1, got ${p}`);
  }

  forward(x: Tensor, training: boolean): Tensor {
    if (!training || this.p === 0) return x;
    return mul(lessRandom(x.shape, this.p, this.path), x);
  }
}
