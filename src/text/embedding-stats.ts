// Per-channel statistics of a frozen text encoder's output over a set of captions: the mean and standard
// deviation of each embedding channel over every valid (unpadded) token. A U-Net with `textStats` subtracts the
// mean and divides by the deviation before its text LayerNorm, which removes the component all tokens share
// (tiny-t5 v3's colour tokens have cosine 0.981 with one another before it; see models/text/tiny-t5/README.md).
import { ValueError } from "../util/errors.js";
import type { TextEncoder } from "./encoder.js";

export interface TextStats { mean: number[]; std: number[] }

/** Mean and deviation (population, floored at 1e-6) of each channel over the valid tokens of `captions`. */
export async function embeddingStats(encoder: TextEncoder, captions: readonly string[], batch = 64): Promise<TextStats> {
  if (captions.length === 0) throw new ValueError("embeddingStats: no captions; pass at least one training caption");
  const d = encoder.dim, sum = new Float64Array(d), sq = new Float64Array(d);
  let n = 0;
  for (let i = 0; i < captions.length; i += batch) {
    const e = await encoder.encode(captions.slice(i, i + batch));
    for (let t = 0; t < e.batch * e.length; t++) {
      if (!e.mask[t]) continue;
      n++;
      for (let c = 0; c < d; c++) {
        const v = e.embeddings[t * d + c];
        sum[c] += v;
        sq[c] += v * v;
      }
    }
  }
  if (n === 0) throw new ValueError("embeddingStats: the captions encode to no valid tokens");
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(sq, (s, c) => Math.max(Math.sqrt(Math.max(s / n - mean[c] ** 2, 0)), 1e-6));
  return { mean, std };
}

/** Throws unless `s` holds `dim` finite means and `dim` finite deviations > 0; `what` names the field. */
export function checkTextStats(s: unknown, dim: number, what: string): asserts s is TextStats {
  const ok = (v: unknown, pos: boolean) => Array.isArray(v) && v.length === dim && v.every((x) => typeof x === "number" && Number.isFinite(x) && (!pos || x > 0));
  const o = s as Partial<TextStats> | null;
  if (typeof s !== "object" || o === null || !ok(o.mean, false) || !ok(o.std, true)) {
    throw new ValueError(`${what}: expected {"mean": [${dim} numbers], "std": [${dim} numbers > 0]} (the text encoder's dim is ${dim}); delete it to recompute it from the training captions`);
  }
}
