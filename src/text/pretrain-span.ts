// T5's own pretraining objective (Raffel et al. 2020, section 3.1.4), for comparison with the encoder-only
// masked-span objective of pretrain-objective.ts: each noise span of the input is replaced by one sentinel
// (<extra_id_0>, <extra_id_1>, ...), and a decoder, cross-attending to the encoder, writes the dropped spans
// behind their sentinels: "<extra_id_0> span0 <extra_id_1> span1 ... </s>". Only the encoder is used downstream.
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { logSoftmax } from "../graph/composite.js";
import { add, div, gather, matmul, mT, mul, neg, reshape, sum } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import type { HostTensor } from "../runtime/host.js";
import { Module, Parameter } from "../nn/module.js";
import type { T5EncoderModel } from "./t5.js";
import { T5DecoderStack } from "./t5-decoder.js";
import { spanNoise, type SpanMaskOptions } from "./pretrain-objective.js";

/** The encoder, a decoder of the same shape and the LM head's output bias [V] (not saved). */
export class SpanCorruptionModel extends Module {
  readonly encoder: T5EncoderModel;
  readonly decoder: T5DecoderStack;
  readonly bias: Parameter;
  constructor(encoder: T5EncoderModel, decoder: T5DecoderStack, logFreq: Float32Array) {
    super();
    this.encoder = this.addModule("model", encoder);
    this.decoder = this.addModule("decoder", decoder);
    this.bias = this.addParameter("lm_bias", new Parameter(logFreq, [encoder.config.vocabSize], true, false));
  }

  forward(): never {
    throw new Error("SpanCorruptionModel: use spanCorruptionLoss");
  }
}

/** Noise tokens of the longest row: the most target tokens (and spans) a [B, length] batch can have. */
function maxNoise(length: number, o: SpanMaskOptions): number {
  return Math.max(1, Math.round((length - 1) * o.noiseDensity));
}

/** The decoder length T of a batch of rows of at most `length` tokens: a sentinel per span, the spans, </s>. */
export function spanTargetLength(length: number, o: SpanMaskOptions): number {
  return 2 * maxNoise(length, o) + 1;
}

/** Checks that the rows' spans fit the tokenizer's sentinels (one per span, at most one per noise token). */
export function checkSentinels(length: number, o: SpanMaskOptions, sentinels: number): void {
  if (maxNoise(length, o) > sentinels) {
    throw new ValueError(`span corruption: rows of ${length} tokens at noise density ${o.noiseDensity} can have ${maxNoise(length, o)} spans, `
      + `more than the tokenizer's ${sentinels} sentinels; lower --noise-density or --length`);
  }
}

/** One row's encoder input and decoder target (both ending in </s>) from its noise mask. */
export function corruptSpans(row: readonly number[], noise: readonly boolean[], sentinelIds: readonly number[], eosId: number): { input: number[]; target: number[] } {
  const input: number[] = [];
  const target: number[] = [];
  let spans = 0;
  row.forEach((id, t) => {
    if (t < noise.length && noise[t]) {
      if (t === 0 || !noise[t - 1]) {
        if (spans >= sentinelIds.length) throw new ValueError(`corruptSpans: more than ${sentinelIds.length} spans in one row`);
        input.push(sentinelIds[spans]);
        target.push(sentinelIds[spans++]);
      }
      target.push(id);
    } else input.push(id);
  });
  target.push(eosId);
  return { input, target };
}

export interface SpanBatch {
  ids: HostTensor; // int64 [B, L]: inputs with each span as one sentinel, padded with 0
  mask: HostTensor; // [B, L]
  decIds: HostTensor; // int64 [B, T]: the decoder start token (0) then the targets shifted right
  targets: HostTensor; // int64 [B * T]: flat (b * T + t) * V + target id, indexing the [B * T * V] log-probabilities
  weights: HostTensor; // [B * T]: 1 for real targets, 0 for padding
}

/** Corrupts rows (each ending in </s>) for one batch. `sentinelIds[k]` is <extra_id_k>'s id. */
export function spanBatch(rows: readonly number[][], length: number, vocabSize: number, sentinelIds: readonly number[], eosId: number, rng: Rng, o: SpanMaskOptions): SpanBatch {
  const B = rows.length;
  const T = spanTargetLength(length, o);
  const ids = new BigInt64Array(B * length);
  const mask = new Float32Array(B * length);
  const decIds = new BigInt64Array(B * T);
  const targets = new BigInt64Array(B * T);
  const weights = new Float32Array(B * T);
  rows.forEach((row, b) => {
    if (row.length > length) throw new ValueError(`spanBatch: row ${b} has ${row.length} tokens, more than the length ${length}`);
    const { input, target } = corruptSpans(row, spanNoise(row.length - 1, rng, o), sentinelIds, eosId); // </s> is never corrupted
    input.forEach((id, t) => {
      ids[b * length + t] = BigInt(id);
      mask[b * length + t] = 1;
    });
    for (let t = 0; t < T; t++) {
      const k = b * T + t;
      if (t < target.length) {
        decIds[k] = BigInt(t === 0 ? 0 : target[t - 1]);
        targets[k] = BigInt(k * vocabSize + target[t]);
        weights[k] = 1;
      } else targets[k] = BigInt(k * vocabSize);
    }
  });
  return {
    ids: { data: ids, shape: [B, length] }, mask: { data: mask, shape: [B, length] }, decIds: { data: decIds, shape: [B, T] },
    targets: { data: targets, shape: [B * T] }, weights: { data: weights, shape: [B * T] },
  };
}

export interface SpanLossInputs {
  ids: Tensor;
  mask: Tensor;
  buckets: Tensor; // int64 [L, L], bidirectional
  decIds: Tensor;
  decBuckets: Tensor; // int64 [T, T], unidirectional
  targets: Tensor;
  weights: Tensor;
}

/**
 * Mean cross-entropy of the target tokens: the decoder's output through the tied embedding (times
 * `headScale`, as in maskedSpanLoss) plus the output bias. Returns the [B * T, V] log-probabilities too.
 */
export function spanCorruptionLoss(m: SpanCorruptionModel, x: SpanLossInputs, headScale = 1): { loss: Tensor; logProbs: Tensor } {
  const t5 = m.encoder;
  const { dModel, vocabSize } = t5.config;
  const [b, t] = x.decIds.shape as number[];
  const enc = t5.call({ ids: x.ids, mask: x.mask, buckets: x.buckets }); // [B, L, D], padding zeroed
  const h = m.decoder.call(t5.shared.call(x.decIds), x.decBuckets, enc, x.mask); // [B, T, D]
  const flat = reshape(h, [b * t, dModel]);
  const logits = add(matmul(headScale === 1 ? flat : mul(flat, headScale), mT(t5.shared.weight.t)), m.bias.t); // [B*T, V]
  const logProbs = logSoftmax(logits, -1);
  const lp = gather(reshape(logProbs, [b * t * vocabSize]), x.targets);
  return { loss: div(neg(sum(mul(lp, x.weights))), sum(x.weights)), logProbs };
}
