// The T5 encoder stack exactly as Hugging Face's T5EncoderModel computes it (Imagen section 2.1 uses the
// frozen T5-XXL encoder): shared embedding, pre-norm blocks with RMS norm, unscaled attention logits plus a
// relative position bias made in block 0 and shared by every block, ReLU or gated-ACT feed-forward, final norm.
// Module and parameter names follow HF's state dict, so checkpoints load by name.
import { attention, gelu, geluTanh, mergeHeads, rmsNorm, silu, splitHeads } from "../graph/composite.js";
import { add, gather, mul, relu, reshape, sigmoid, sub, tanh, transpose } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { Embedding, Linear } from "../nn/layers.js";
import { Module, Parameter } from "../nn/module.js";
import * as init from "../nn/init.js";
import { ZeroRng, type Rng } from "../util/rng.js";
import type { T5Activation, T5Config } from "./t5-config.js";

/** float32's most negative finite value: HF's additive mask, `(1 - mask) * finfo(float32).min`. */
export const float32Min = -3.4028234663852886e38;

const activations: Record<T5Activation, (x: Tensor) => Tensor> = {
  relu,
  gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: (x) => mul(mul(x, 0.5), add(tanh(mul(mul(x, 0.7978845608), add(mul(mul(x, x), 0.044715), 1))), 1)),
  quick_gelu: (x) => mul(x, sigmoid(mul(x, 1.702))),
  silu,
  swish: silu,
  tanh,
  sigmoid,
};

/** T5LayerNorm: weight * x / sqrt(mean(x^2) + eps), no centring and no bias. */
export class T5LayerNorm extends Module {
  readonly weight: Parameter;
  constructor(readonly dim: number, readonly eps: number) {
    super();
    this.weight = this.addParameter("weight", new Parameter(init.ones(dim), [dim], true, false));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight.t, this.eps);
  }
}

/** Self-attention with bias-free q/k/v/o; block 0 also owns the [buckets, heads] relative bias table. */
export class T5Attention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly relativeBias: Parameter | null;
  /**
   * The table is multiplied by this in the graph (1 at inference). Pretraining stores table / scale and uses a
   * large scale, so AdamW's absolute steps move these O(1) logits as fast as the rest (see pretrain.ts).
   */
  biasScale = 1;
  constructor(readonly config: T5Config, hasRelativeBias: boolean, rng: Rng) {
    super();
    const { dModel, innerDim, numBuckets, numHeads } = config;
    this.q = this.addModule("q", new Linear(dModel, innerDim, rng, { bias: false }));
    this.k = this.addModule("k", new Linear(dModel, innerDim, rng, { bias: false }));
    this.v = this.addModule("v", new Linear(dModel, innerDim, rng, { bias: false }));
    this.o = this.addModule("o", new Linear(innerDim, dModel, rng, { bias: false }));
    this.relativeBias = hasRelativeBias
      ? this.addParameter("relative_attention_bias.weight", new Parameter(rng.normal(numBuckets * numHeads, 0, 1), [numBuckets, numHeads], true, false))
      : null;
  }

  /** buckets int64 [L, L] (row = query) -> the position bias [1, H, L, L]. */
  positionBias(buckets: Tensor): Tensor {
    if (!this.relativeBias) throw new Error("T5Attention.positionBias: only block 0 has the relative bias table");
    const [l] = buckets.shape;
    const table = this.biasScale === 1 ? this.relativeBias.t : mul(this.relativeBias.t, this.biasScale);
    const perPair = gather(table, buckets); // [L, L, H]
    return reshape(transpose(perPair, [2, 0, 1]), [1, this.config.numHeads, l, l]);
  }

  /**
   * x [B, L, dModel]; bias [B|1, H, L, Lkv] holds the position bias and the key mask. `kv` [B, Lkv, dModel]
   * is the encoder output for a decoder's cross-attention (EncDecAttention); self-attention by default.
   */
  forward(x: Tensor, bias: Tensor, kv: Tensor = x): Tensor {
    const h = this.config.numHeads;
    const [q, k, v] = [this.q.call(x), this.k.call(kv), this.v.call(kv)].map((t) => splitHeads(t, h)); // [B, H, L, dKv]
    return this.o.call(mergeHeads(attention(q, k, v, bias, 1))); // no 1/sqrt(dKv): T5 folds it into the init
  }
}

export class T5LayerSelfAttention extends Module {
  readonly SelfAttention: T5Attention;
  readonly layerNorm: T5LayerNorm;
  constructor(config: T5Config, hasRelativeBias: boolean, rng: Rng) {
    super();
    this.SelfAttention = this.addModule("SelfAttention", new T5Attention(config, hasRelativeBias, rng));
    this.layerNorm = this.addModule("layer_norm", new T5LayerNorm(config.dModel, config.layerNormEpsilon));
  }

  forward(x: Tensor, bias: Tensor): Tensor {
    return add(x, this.SelfAttention.call(this.layerNorm.call(x), bias));
  }
}

/** "relu": wo(relu(wi x)); gated: wo(act(wi_0 x) * wi_1 x). */
export class T5DenseActDense extends Module {
  readonly wi: Linear[];
  readonly wo: Linear;
  constructor(readonly config: T5Config, rng: Rng) {
    super();
    const { dModel, dFf, isGatedAct } = config;
    this.wi = isGatedAct
      ? [this.addModule("wi_0", new Linear(dModel, dFf, rng, { bias: false })), this.addModule("wi_1", new Linear(dModel, dFf, rng, { bias: false }))]
      : [this.addModule("wi", new Linear(dModel, dFf, rng, { bias: false }))];
    this.wo = this.addModule("wo", new Linear(dFf, dModel, rng, { bias: false }));
  }

  forward(x: Tensor): Tensor {
    const act = activations[this.config.denseActFn];
    const hidden = act(this.wi[0].call(x)); // [B, L, dFf]
    return this.wo.call(this.wi.length === 2 ? mul(hidden, this.wi[1].call(x)) : hidden);
  }
}

export class T5LayerFF extends Module {
  readonly DenseReluDense: T5DenseActDense;
  readonly layerNorm: T5LayerNorm;
  constructor(config: T5Config, rng: Rng) {
    super();
    this.DenseReluDense = this.addModule("DenseReluDense", new T5DenseActDense(config, rng));
    this.layerNorm = this.addModule("layer_norm", new T5LayerNorm(config.dModel, config.layerNormEpsilon));
  }

  forward(x: Tensor): Tensor {
    return add(x, this.DenseReluDense.call(this.layerNorm.call(x)));
  }
}

export class T5Block extends Module {
  readonly attention: T5LayerSelfAttention;
  readonly ff: T5LayerFF;
  constructor(config: T5Config, hasRelativeBias: boolean, rng: Rng) {
    super();
    this.attention = this.addModule("layer.0", new T5LayerSelfAttention(config, hasRelativeBias, rng));
    this.ff = this.addModule("layer.1", new T5LayerFF(config, rng));
  }

  forward(x: Tensor, bias: Tensor): Tensor {
    return this.ff.call(this.attention.call(x, bias));
  }
}

export class T5Stack extends Module {
  readonly blocks: T5Block[];
  readonly finalLayerNorm: T5LayerNorm;
  constructor(readonly config: T5Config, rng: Rng) {
    super();
    this.blocks = Array.from({ length: config.numLayers }, (_, i) => this.addModule(`block.${i}`, new T5Block(config, i === 0, rng)));
    this.finalLayerNorm = this.addModule("final_layer_norm", new T5LayerNorm(config.dModel, config.layerNormEpsilon));
  }

  /** x [B, L, dModel]; mask [B, L] of 0/1 floats; buckets int64 [L, L]. */
  forward(x: Tensor, mask: Tensor, buckets: Tensor): Tensor {
    const [b, l] = mask.shape;
    const keyMask = reshape(mul(sub(1, mask), float32Min), [b, 1, 1, l]); // [B, 1, 1, L]
    const bias = add(this.blocks[0].attention.SelfAttention.positionBias(buckets), keyMask); // [B, H, L, L]
    let h = x;
    for (const block of this.blocks) h = block.call(h, bias);
    return this.finalLayerNorm.call(h);
  }
}

export interface T5Inputs {
  /** int64 [B, L] token ids. */
  ids: Tensor;
  /** float32 [B, L], 1 for tokens and 0 for padding. */
  mask: Tensor;
  /** int64 [L, L] relative position buckets (bucketTable). */
  buckets: Tensor;
}

/** The encoder half of T5 under HF's names: `shared.weight` and `encoder.*`. */
export class T5EncoderModel extends Module {
  readonly shared: Embedding;
  readonly encoder: T5Stack;
  /** Weights are zero until loaded unless an Rng is given (random models are for tests and benchmarks). */
  constructor(readonly config: T5Config, rng: Rng = new ZeroRng()) {
    super();
    this.shared = this.addModule("shared", new Embedding(config.vocabSize, config.dModel, rng));
    this.encoder = this.addModule("encoder", new T5Stack(config, rng));
  }

  /** The last hidden state [B, L, dModel], with padded positions zeroed. */
  forward(inputs: T5Inputs): Tensor {
    const [b, l] = inputs.mask.shape;
    const x = this.shared.call(inputs.ids); // [B, L, dModel]
    const h = this.encoder.call(x, inputs.mask, inputs.buckets);
    return mul(h, reshape(inputs.mask, [b, l, 1]));
  }
}
