// The encoder-only masked-span objective the tiny T5 is pretrained with: T5's span corruption noise (15% of
// tokens in spans of mean length 3), but each corrupted token is replaced by one mask sentinel and predicted
// in place through the tied embedding plus an output bias (as BERT's head has), so no decoder is needed.
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { logSoftmax } from "../graph/composite.js";
import { add, div, gather, matmul, mT, mul, neg, reshape, sum } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import type { HostTensor } from "../runtime/host.js";
import { Module, Parameter } from "../nn/module.js";
import type { T5EncoderModel } from "./t5.js";
import { defaultSentinels } from "./unigram-trainer.js";

/** The encoder plus the pretraining head's output bias [V] (not part of the saved HF folder). */
export class MaskedSpanModel extends Module {
  readonly encoder: T5EncoderModel;
  readonly bias: Parameter;
  /** `logFreq`: initial bias, e.g. log unigram frequencies, so training starts at the unigram loss. */
  constructor(encoder: T5EncoderModel, logFreq: Float32Array) {
    super();
    this.encoder = this.addModule("encoder", encoder);
    this.bias = this.addParameter("lm_bias", new Parameter(logFreq, [encoder.config.vocabSize], true, false));
  }

  forward(): never {
    throw new Error("MaskedSpanModel: use maskedSpanLoss");
  }
}

export interface SpanMaskOptions {
  noiseDensity: number;
  meanSpanLength: number;
  /**
   * BERT's 80/10/10 rule: the share of corrupted tokens left as they are, and the share replaced by a
   * random piece, instead of the mask sentinel (default 0 and 0). Both are still predicted, so the output
   * at an uncorrupted-looking position must carry that token's identity, which a frozen encoder feeding
   * cross-attention needs.
   */
  keepProb?: number;
  randomProb?: number;
}
export const spanMaskDefaults: SpanMaskOptions = { noiseDensity: 0.15, meanSpanLength: 3 };

/** Checks BERT's keep/random shares; `what` names them in the error. */
export function checkMaskShares(keep: number, random: number, what: string): void {
  if (!(keep >= 0 && random >= 0 && keep + random <= 1)) throw new ValueError(`${what} keepProb ${keep} and randomProb ${random}: expected shares >= 0 adding up to at most 1`);
}

/** Packs tokenised lines (no </s>) greedily into rows of at most `length` tokens, each ending in </s>. */
export function packRows(lines: Iterable<number[]>, length: number, eosId: number): number[][] {
  const rows: number[][] = [];
  let cur: number[] = [];
  for (const ids of lines) {
    const piece = ids.slice(0, length - 1);
    if (cur.length + piece.length > length - 1 && cur.length > 0) {
      rows.push([...cur, eosId]);
      cur = [];
    }
    cur.push(...piece);
  }
  if (cur.length > 0) rows.push([...cur, eosId]);
  return rows;
}

/** Noise positions of a row of n text tokens: round(n * density) of them, in spans of 1..2*mean-1 tokens. */
export function spanNoise(n: number, rng: Rng, o: SpanMaskOptions = spanMaskDefaults): boolean[] {
  const noise = new Array<boolean>(n).fill(false);
  const want = Math.min(n - (n > 1 ? 1 : 0), Math.max(1, Math.round(n * o.noiseDensity)));
  let have = 0;
  for (let tries = 0; have < want && tries < 100 * n; tries++) {
    const len = 1 + rng.int(Math.max(1, Math.round(2 * o.meanSpanLength - 1)));
    const start = rng.int(n);
    for (let i = start; i < Math.min(n, start + len) && have < want; i++) {
      if (!noise[i]) {
        noise[i] = true;
        have++;
      }
    }
  }
  return noise;
}

export interface MaskedBatch {
  ids: HostTensor; // int64 [B, L], corrupted
  mask: HostTensor; // [B, L]
  positions: HostTensor; // int64 [N]: flat b * L + t of each corrupted token (padded with 0)
  targets: HostTensor; // int64 [N]: flat n * V + original id, indexing the [N * V] log-probabilities
  weights: HostTensor; // [N]: 1 for real targets, 0 for padding
}

/** Max corrupted tokens in a [B, L] batch: the fixed N of the training graph. */
export function maxTargets(batch: number, length: number, o: SpanMaskOptions = spanMaskDefaults): number {
  return batch * Math.max(1, Math.round((length - 1) * o.noiseDensity));
}

/** Corrupts rows (each ending in </s>) for one batch: noise tokens become `maskId` and are the targets. */
export function maskBatch(rows: readonly number[][], length: number, vocabSize: number, maskId: number, rng: Rng, o: SpanMaskOptions = spanMaskDefaults): MaskedBatch {
  const B = rows.length;
  const N = maxTargets(B, length, o);
  const ids = new BigInt64Array(B * length);
  const mask = new Float32Array(B * length);
  const positions = new BigInt64Array(N);
  const targets = new BigInt64Array(N);
  const weights = new Float32Array(N);
  const [keep, random] = [o.keepProb ?? 0, o.randomProb ?? 0];
  checkMaskShares(keep, random, "maskBatch:");
  // Random replacements come from the ordinary pieces: after <pad>, </s>, <unk> and before the sentinels.
  const [firstPiece, pieceCount] = [3, vocabSize - 3 - defaultSentinels];
  let k = 0;
  rows.forEach((row, b) => {
    if (row.length > length) throw new ValueError(`maskBatch: row ${b} has ${row.length} tokens, more than the length ${length}`);
    const noise = spanNoise(row.length - 1, rng, o); // </s> is never corrupted
    row.forEach((id, t) => {
      const corrupt = t < noise.length && noise[t] && k < N;
      let shown = id;
      if (corrupt) {
        const u = keep + random > 0 ? rng.uniform(1)[0] : 1;
        shown = u < keep ? id : u < keep + random ? firstPiece + rng.int(pieceCount) : maskId;
      }
      ids[b * length + t] = BigInt(shown);
      mask[b * length + t] = 1;
      if (corrupt) {
        positions[k] = BigInt(b * length + t);
        targets[k] = BigInt(k * vocabSize + id);
        weights[k++] = 1;
      }
    });
  });
  for (let j = k; j < N; j++) targets[j] = BigInt(j * vocabSize);
  return {
    ids: { data: ids, shape: [B, length] }, mask: { data: mask, shape: [B, length] },
    positions: { data: positions, shape: [N] }, targets: { data: targets, shape: [N] }, weights: { data: weights, shape: [N] },
  };
}

export interface MaskedLossInputs {
  ids: Tensor;
  mask: Tensor;
  buckets: Tensor;
  positions: Tensor;
  targets: Tensor;
  weights: Tensor;
}

/**
 * Mean cross-entropy of the corrupted tokens, predicted from the encoder output through the tied embedding.
 * `headScale` multiplies the hidden state first (T5's tied LM head uses d_model^-0.5 with its std-1 embedding).
 */
export function maskedSpanLoss(m: MaskedSpanModel, x: MaskedLossInputs, headScale = 1): { loss: Tensor; logProbs: Tensor } {
  const model = m.encoder;
  const [b, l] = x.ids.shape as number[];
  const { dModel, vocabSize } = model.config;
  const [n] = x.positions.shape as number[];
  const h = model.call({ ids: x.ids, mask: x.mask, buckets: x.buckets }); // [B, L, D]
  const picked = gather(reshape(h, [b * l, dModel]), x.positions); // [N, D]
  const logits = add(matmul(headScale === 1 ? picked : mul(picked, headScale), mT(model.shared.weight.t)), m.bias.t); // [N, V]
  const logProbs = logSoftmax(logits, -1); // [N, V]
  const lp = gather(reshape(logProbs, [n * vocabSize]), x.targets); // [N]
  return { loss: div(neg(sum(mul(lp, x.weights))), sum(x.weights)), logProbs };
}
