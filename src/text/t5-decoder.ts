// T5's decoder stack under Hugging Face's names (`decoder.block.N.layer.0` causal self-attention,
// `layer.1` EncDecAttention, `layer.2` feed-forward, `decoder.final_layer_norm`), for pretraining the tiny T5
// with T5's own encoder-decoder span corruption. As in HF: the self-attention's relative position bias is
// unidirectional (every later key falls in bucket 0 and is masked), made in block 0 and shared; the
// cross-attention has no position bias, only the encoder's key mask; logits are unscaled.
import { add, mul, reshape, sub } from "../graph/ops-basic.js";
import { constant } from "../graph/build.js";
import type { Tensor } from "../graph/tensor.js";
import { Module } from "../nn/module.js";
import { ZeroRng, type Rng } from "../util/rng.js";
import type { T5Config } from "./t5-config.js";
import { float32Min, T5Attention, T5LayerFF, T5LayerNorm, T5LayerSelfAttention } from "./t5.js";

export class T5LayerCrossAttention extends Module {
  readonly EncDecAttention: T5Attention;
  readonly layerNorm: T5LayerNorm;
  constructor(config: T5Config, rng: Rng) {
    super();
    this.EncDecAttention = this.addModule("EncDecAttention", new T5Attention(config, false, rng));
    this.layerNorm = this.addModule("layer_norm", new T5LayerNorm(config.dModel, config.layerNormEpsilon));
  }

  /** x [B, T, D]; enc [B, L, D]; bias [B, 1, 1, L] (the encoder's key mask). */
  forward(x: Tensor, enc: Tensor, bias: Tensor): Tensor {
    return add(x, this.EncDecAttention.call(this.layerNorm.call(x), bias, enc));
  }
}

export class T5DecoderBlock extends Module {
  readonly attention: T5LayerSelfAttention;
  readonly cross: T5LayerCrossAttention;
  readonly ff: T5LayerFF;
  constructor(config: T5Config, hasRelativeBias: boolean, rng: Rng) {
    super();
    this.attention = this.addModule("layer.0", new T5LayerSelfAttention(config, hasRelativeBias, rng));
    this.cross = this.addModule("layer.1", new T5LayerCrossAttention(config, rng));
    this.ff = this.addModule("layer.2", new T5LayerFF(config, rng));
  }

  forward(x: Tensor, selfBias: Tensor, enc: Tensor, crossBias: Tensor): Tensor {
    return this.ff.call(this.cross.call(this.attention.call(x, selfBias), enc, crossBias));
  }
}

/** The [T, T] additive causal mask: 0 on and below the diagonal, float32's minimum above it. */
export function causalMask(t: number): Float32Array {
  const m = new Float32Array(t * t);
  for (let q = 0; q < t; q++) for (let k = q + 1; k < t; k++) m[q * t + k] = float32Min;
  return m;
}

/** `decoder.*`: numLayers blocks (HF's num_decoder_layers defaults to num_layers) and a final norm. */
export class T5DecoderStack extends Module {
  readonly blocks: T5DecoderBlock[];
  readonly finalLayerNorm: T5LayerNorm;
  constructor(readonly config: T5Config, rng: Rng = new ZeroRng(), numLayers = config.numLayers) {
    super();
    this.blocks = Array.from({ length: numLayers }, (_, i) => this.addModule(`block.${i}`, new T5DecoderBlock(config, i === 0, rng)));
    this.finalLayerNorm = this.addModule("final_layer_norm", new T5LayerNorm(config.dModel, config.layerNormEpsilon));
  }

  /**
   * x [B, T, D]: the embedded decoder inputs (the targets shifted right behind the start token);
   * buckets int64 [T, T] from `bucketTable(T, ..., false)`; enc [B, L, D]; encMask [B, L] of 0/1.
   * Returns the normed hidden state [B, T, D].
   */
  forward(x: Tensor, buckets: Tensor, enc: Tensor, encMask: Tensor): Tensor {
    const [b, l] = encMask.shape;
    const t = x.shape[1];
    if (typeof t !== "number") throw new Error(`T5DecoderStack: the decoder length must be static, got ${String(t)}`);
    const causal = constant(causalMask(t), [1, 1, t, t]);
    const selfBias = add(this.blocks[0].attention.SelfAttention.positionBias(buckets), causal); // [1, H, T, T]
    const crossBias = reshape(mul(sub(1, encMask), float32Min), [b, 1, 1, l]);
    let h = x;
    for (const block of this.blocks) h = block.call(h, selfBias, enc, crossBias);
    return this.finalLayerNorm.call(h);
  }
}
