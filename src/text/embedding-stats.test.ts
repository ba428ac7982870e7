import { test } from "node:test";
import assert from "node:assert/strict";
import { checkTextStats, embeddingStats } from "./embedding-stats.js";
import type { EncodedText, TextEncoder } from "./encoder.js";

// A fake encoder: prompt "k" has k tokens (k = 1..3, length 3, dim 2); token j of "k" is [k + j, 10 * j], padding 99 (must be ignored).
const fake: TextEncoder = {
  id: "fake", dim: 2, maxLength: 3,
  encode: async (prompts): Promise<EncodedText> => {
    const B = prompts.length, L = 3, D = 2;
    const embeddings = new Float32Array(B * L * D).fill(99), mask = new Float32Array(B * L);
    prompts.forEach((p, b) => {
      for (let j = 0; j < Number(p); j++) {
        mask[b * L + j] = 1;
        embeddings.set([Number(p) + j, 10 * j], (b * L + j) * D);
      }
    });
    return { embeddings, mask, batch: B, length: L, dim: D, truncated: prompts.map(() => false) };
  },
};

test("embeddingStats: per-channel mean and deviation over the valid tokens only, whatever the batch size", async () => {
  // tokens: "1" -> [1,0]; "2" -> [2,0],[3,10]; "3" -> [3,0],[4,10],[5,20]
  const xs = [1, 2, 3, 3, 4, 5], ys = [0, 0, 10, 0, 10, 20];
  const m = (v: number[]) => v.reduce((a, b) => a + b) / v.length;
  const sd = (v: number[]) => Math.sqrt(m(v.map((x) => (x - m(v)) ** 2)));
  for (const batch of [1, 2, 64]) {
    const s = await embeddingStats(fake, ["1", "2", "3"], batch);
    assert.ok(Math.abs(s.mean[0] - m(xs)) < 1e-9 && Math.abs(s.mean[1] - m(ys)) < 1e-9, `batch ${batch}: mean ${s.mean}`);
    assert.ok(Math.abs(s.std[0] - sd(xs)) < 1e-9 && Math.abs(s.std[1] - sd(ys)) < 1e-9, `batch ${batch}: std ${s.std}`);
  }
  const flat = await embeddingStats(fake, ["1", "1"]);
  assert.deepEqual(flat.std, [1e-6, 1e-6], "a constant channel gets the floor, not a division by zero");
  await assert.rejects(() => embeddingStats(fake, []), /no captions/);
  await assert.rejects(() => embeddingStats(fake, ["0"]), /no valid tokens/);
});

test("checkTextStats names the field and the expected form", () => {
  checkTextStats({ mean: [0, 1], std: [1, 2] }, 2, "s");
  for (const bad of [null, { mean: [0], std: [1, 2] }, { mean: [0, 1], std: [1, -2] }, { mean: [0, NaN], std: [1, 2] }, { mean: [0, 1] }]) {
    assert.throws(() => checkTextStats(bad, 2, "stats.json"), /stats\.json: expected \{"mean": \[2 numbers\], "std": \[2 numbers > 0\]\}/);
  }
});
