// The committed tiny T5 (models/text/tiny-t5): linear probes from its frozen pooled embeddings recover the
// colour, count and relation words of held-out captions (nouns unseen by the probe) above chance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Rng } from "../util/rng.js";
import { LogisticRegression, probeCaptions, runProbes, standardizedCosine, tokenDistinctness } from "./probe.js";
import { WordEncoder } from "./word-encoder.js";
import type { EncodedText, TextEncoder } from "./encoder.js";
import { T5TextEncoder } from "./t5-encoder.js";

const tinyT5 = fileURLToPath(new URL("../../models/text/tiny-t5", import.meta.url));

test("logistic regression separates two Gaussian blobs", () => {
  const rng = new Rng(0);
  const x: Float32Array[] = [], y: number[] = [];
  for (let i = 0; i < 200; i++) {
    const k = i % 2;
    x.push(rng.normal(4).map((v, d) => v + (d === 0 ? 3 * k : 0)));
    y.push(k);
  }
  const m = LogisticRegression.fit(x, y, 2);
  assert.ok(x.filter((v, i) => m.predict(v) === y[i]).length / x.length > 0.9);
});

test("probe captions: subject colour and count differ from the second object's", () => {
  for (const c of probeCaptions(50, "test", new Rng(1))) {
    const words = c.text.split(" ");
    assert.equal(words.filter((w) => ["red", "green", "blue", "yellow", "purple", "orange", "pink", "black"].includes(w)).length, 2);
    assert.notEqual(words[0], words[words.length - 3]);
  }
});

test("the committed tiny T5: linear probes on held-out captions beat chance", async () => {
  const enc = await T5TextEncoder.load(tinyT5, { maxLength: 32 });
  try {
    const results = await runProbes(enc, { nTrain: 400, nTest: 200, seed: 0 });
    const acc = Object.fromEntries(results.map((r) => [r.task, r.testAccuracy]));
    console.log(JSON.stringify(acc));
    // Chance: colour 1/8, count 1/4, relation 1/4. The committed model (v3) reaches 0.745 / 0.915 / 0.99 (seed 0,
    // 400 / 200 captions; see models/text/tiny-t5/README.md); v2 reached 0.54 / 0.62 / 0.91, v1 (masks only)
    // 0.36 / 0.38 / 0.69, the untrained network 0.52 / 0.46 / 1.0. The colour and count floors sit above
    // v2 and the random init; relation is easy for any encoder that keeps word order.
    assert.ok(acc.colour >= 0.6, `colour ${acc.colour}`);
    assert.ok(acc.count >= 0.8, `count ${acc.count}`);
    assert.ok(acc.relation >= 0.9, `relation ${acc.relation}`);
    // Predicting their own visible token keeps every position's identity: the tokens of one caption stay
    // apart (v3 0.09; v2 0.19; v1, masks only, 0.55; 1 = indistinguishable).
    const d = await tokenDistinctness(enc);
    assert.ok(d.withinCaption < 0.2, JSON.stringify(d));
  } finally {
    enc.dispose();
  }
});

test("token distinctness: 1 for an encoder that maps every token alike, low for distinct word vectors", async () => {
  assert.ok(Math.abs(standardizedCosine(Float32Array.of(1, 2, 3), Float32Array.of(11, 12, 13)) - 1) < 1e-9); // shift-invariant
  assert.ok(Math.abs(standardizedCosine(Float32Array.of(1, 2, 3), Float32Array.of(3, 2, 1)) + 1) < 1e-9);
  const word = new WordEncoder(64, 8, 0);
  const d = await tokenDistinctness(word);
  assert.ok(d.colourToken < 0.5 && d.withinCaption < 0.5, JSON.stringify(d));
  // Collapsed: every valid token gets the same vector (plus a little per-prompt noise).
  const collapsed: TextEncoder = {
    id: "collapsed", dim: 16, maxLength: 8,
    encode: async (prompts): Promise<EncodedText> => {
      const w = await word.encode(prompts);
      const embeddings = new Float32Array(prompts.length * 8 * 16);
      for (let i = 0; i < embeddings.length; i++) embeddings[i] = w.mask[Math.floor(i / 16)] * (Math.sin(i % 16) + 1e-3 * w.embeddings[i % w.embeddings.length]);
      return { embeddings, mask: w.mask, batch: prompts.length, length: 8, dim: 16, truncated: w.truncated };
    },
  };
  const c = await tokenDistinctness(collapsed);
  assert.ok(c.colourToken > 0.99 && c.withinCaption > 0.99, JSON.stringify(c));
});
