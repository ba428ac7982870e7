// The committed tiny T5 (models/text/tiny-t5): linear probes from its frozen pooled embeddings recover the
// colour, count and relation words of held-out captions (nouns unseen by the probe) above chance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Rng } from "../util/rng.js";
import { LogisticRegression, probeCaptions, runProbes } from "./probe.js";
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
    // Chance: colour 1/8, count 1/4, relation 1/4. The committed model reaches about 0.36 / 0.38 / 0.69 (seed 0,
    // 400 / 200 captions; see models/text/tiny-t5/README.md): above chance, but below its own random init.
    assert.ok(acc.colour >= 2 * 0.125, `colour ${acc.colour}`);
    assert.ok(acc.count >= 0.25 + 0.05, `count ${acc.count}`);
    assert.ok(acc.relation >= 2 * 0.25, `relation ${acc.relation}`);
  } finally {
    enc.dispose();
  }
});
