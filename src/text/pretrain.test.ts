import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { parseBrown, parseWordNet } from "./pretrain-corpus.js";
import { assertTinyEncoderLoads, tinyCorpus, tinyRun } from "./pretrain-fixture.js";
import { countWords, trainUnigramPieces, unigramTokenizerJson } from "./unigram-trainer.js";
import { UnigramTokenizer } from "./unigram.js";
import { maskBatch, maxTargets, packRows, spanNoise } from "./pretrain-objective.js";
import { pretrainText, type PretrainEvent } from "./pretrain.js";
import { T5TextEncoder } from "./t5-encoder.js";

test("WordNet and Brown lines parse to plain sentences", () => {
  const wn = "  1 This software and database is being provided\n"
    + "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 023 @ 02083346 n 0000 | a member of the genus Canis; \"the dog barked all night\"  \n";
  assert.deepEqual(parseWordNet(wn), ["dog: a member of the genus Canis.", "the dog barked all night"]);
  const brown = "\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ,/, he/pps said/vbd ./.\n";
  assert.deepEqual(parseBrown(brown), ["The jury said \"no evidence\" was found, he said."]);
});

const lines = [
  "a red circle to the left of a blue square", "the green triangle is above the yellow star", "three small cats sat on the mat",
  "dogs and cats are animals that people keep", "the sun rises in the east and sets in the west", "a picture of two purple hearts",
];

function tinyTokenizer(): UnigramTokenizer {
  const words = countWords(Array.from({ length: 20 }, () => lines).flat());
  const pieces = trainUnigramPieces(words, { vocabSize: 3 + 256 + 8 + 100, sentinels: 8, requiredWords: ["orange", "below"], minCharCount: 1 });
  return UnigramTokenizer.fromJson(JSON.stringify(unigramTokenizerJson(pieces, 8)), "trained");
}

test("the Unigram trainer writes a tokenizer.json our loader reads: required words whole, </s> appended, any Unicode round-trips", () => {
  const tok = tinyTokenizer();
  assert.ok(tok.vocabSize <= 367 && tok.vocabSize > 3 + 256 + 8 + 20, `vocab ${tok.vocabSize}`); // a tiny corpus has fewer useful pieces
  assert.deepEqual(tok.tokens(tok.encode("Orange below")), ["\u2581orange", "\u2581below", "</s>"]);
  const ids = tok.encode("a red circle");
  assert.equal(ids[ids.length - 1], tok.eosId);
  for (const s of ["a red circle", "naïve café 日本 😀 ü", "Zebra QUIZ"]) assert.equal(tok.decode(tok.encode(s)), s.toLowerCase());
  assert.deepEqual(tok.tokens(tok.encode("<extra_id_0> cat")).slice(0, 1), ["<extra_id_0>"]);
});

test("rows pack whole lines and end in </s>; span noise corrupts about 15% and never </s>", () => {
  const rows = packRows([[5, 6, 7], [8, 9], [10, 11, 12, 13]], 6, 1);
  assert.deepEqual(rows, [[5, 6, 7, 8, 9, 1], [10, 11, 12, 13, 1]]);
  const noise = spanNoise(100, new Rng(0));
  assert.equal(noise.filter(Boolean).length, 15);
  const V = 50;
  const mb = maskBatch([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1], [20, 21, 22, 1]], 16, V, 49, new Rng(1));
  const N = maxTargets(2, 16);
  assert.equal(mb.positions.shape[0], N);
  const ids = mb.ids.data as BigInt64Array, pos = mb.positions.data as BigInt64Array, tg = mb.targets.data as BigInt64Array, w = mb.weights.data as Float32Array;
  const originals = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1, 20, 21, 22, 1];
  const flat = [...originals.slice(0, 16), ...originals.slice(16), ...new Array(12).fill(0)];
  for (let k = 0; k < N; k++) {
    if (w[k] === 0) continue;
    const p = Number(pos[k]);
    assert.equal(Number(ids[p]), 49);
    assert.equal(Number(tg[k]) - k * V, flat[p]);
    assert.notEqual(flat[p], 1);
  }
  assert.equal(w.reduce((a, b) => a + b, 0), 2 + 1);
  assert.deepEqual(Array.from(mb.mask.data as Float32Array).slice(16, 32), [1, 1, 1, 1, ...new Array(12).fill(0)]);
});

test("BERT's rule: corrupted tokens are shown as the mask, unchanged or a random piece, and all are predicted", () => {
  const V = 400, maskId = V - 1, row = [...Array.from({ length: 63 }, (_, i) => 100 + i), 1];
  const shown = { mask: 0, kept: 0, random: 0 };
  for (let r = 0; r < 40; r++) {
    const mb = maskBatch([row], 64, V, maskId, new Rng(r), { noiseDensity: 0.4, meanSpanLength: 1, keepProb: 0.1, randomProb: 0.1 });
    const ids = mb.ids.data as BigInt64Array, pos = mb.positions.data as BigInt64Array, tg = mb.targets.data as BigInt64Array, w = mb.weights.data as Float32Array;
    for (let k = 0; k < w.length; k++) {
      if (w[k] === 0) continue;
      const p = Number(pos[k]), id = Number(ids[p]);
      assert.equal(Number(tg[k]) - k * V, row[p]); // the target is always the original token
      if (id === maskId) shown.mask++;
      else if (id === row[p]) shown.kept++;
      else {
        assert.ok(id >= 3 && id < V - 32, `random piece ${id} outside the ordinary pieces`);
        shown.random++;
      }
    }
  }
  const total = shown.mask + shown.kept + shown.random; // 40 rows x 25 corrupted tokens
  assert.equal(total, 1000);
  assert.ok(Math.abs(shown.kept / total - 0.1) < 0.04 && Math.abs(shown.random / total - 0.1) < 0.04, JSON.stringify(shown));
  assert.throws(() => maskBatch([row], 64, V, maskId, new Rng(0), { noiseDensity: 0.4, meanSpanLength: 1, keepProb: 0.7, randomProb: 0.5 }), /keepProb/);
});

test("a tiny pretraining run lowers held-out loss and saves a folder T5TextEncoder loads", async () => {
  const corpus = tinyCorpus(lines);
  const out = await mkdtemp(join(tmpdir(), "imagen-pretrain-"));
  const events: PretrainEvent[] = [];
  try {
    // A file the user keeps in the output folder (a log, notes) survives every save.
    await mkdir(join(out, "t5"));
    await writeFile(join(out, "t5", "notes.txt"), "mine");
    await pretrainText({ ...tinyRun, outDir: join(out, "t5"), corpus }, (e) => events.push(e));
    const evals = events.filter((e) => e.event === "eval");
    assert.equal(evals.length, 3);
    assert.ok(evals[2].heldOutLoss < evals[0].heldOutLoss - 0.3, // step 0 already sits at the unigram loss (bias init)
      `held-out loss ${evals.map((e) => e.heldOutLoss.toFixed(3)).join(" -> ")}`);
    const cfg = JSON.parse(await readFile(join(out, "t5", "config.json"), "utf8"));
    assert.equal(cfg.d_model, 32);
    assert.equal(cfg.imagen_pretrain.steps, 60);
    assert.equal(await readFile(join(out, "t5", "notes.txt"), "utf8"), "mine");
    assert.deepEqual((await readdir(join(out, "t5"))).sort(), ["config.json", "model.safetensors", "notes.txt", "tokenizer.json"]);
    await assertTinyEncoderLoads(join(out, "t5"));
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
