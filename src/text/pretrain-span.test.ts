import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { bindParameters } from "../nn/module.js";
import { compile } from "../runtime/session.js";
import { loadSafetensors } from "../runtime/safetensors.js";
import type { HostTensor } from "../runtime/host.js";
import { corruptSpans, spanBatch, spanTargetLength } from "./pretrain-span.js";
import { spanNoise } from "./pretrain-objective.js";
import { bucketTable } from "./t5-buckets.js";
import { resolveT5Config } from "./t5-config.js";
import { T5DecoderStack } from "./t5-decoder.js";
import { pretrainText, type PretrainEvent } from "./pretrain.js";
import { assertTinyEncoderLoads, tinyCorpus, tinyRun } from "./pretrain-fixture.js";

const sentinels = [99, 98, 97, 96, 95, 94, 93, 92];

test("span corruption: each noise span becomes one sentinel, and the target lists the spans behind their sentinels", () => {
  const row = [10, 11, 12, 13, 14, 15, 16, 1];
  const noise = [false, true, true, false, false, true, false];
  assert.deepEqual(corruptSpans(row, noise, sentinels, 1), { input: [10, 99, 13, 14, 98, 16, 1], target: [99, 11, 12, 98, 15, 1] });
  assert.deepEqual(corruptSpans(row, [true, false, false, false, false, false, true], sentinels, 1), { input: [99, 11, 12, 13, 14, 15, 98, 1], target: [99, 10, 98, 16, 1] });
  // Random rows: putting each span back behind its sentinel rebuilds the row exactly.
  const rng = new Rng(4);
  for (let r = 0; r < 50; r++) {
    const n = 5 + rng.int(40);
    const row2 = [...Array.from({ length: n }, () => 3 + rng.int(80)), 1];
    const { input, target } = corruptSpans(row2, spanNoise(n, rng, { noiseDensity: 0.15, meanSpanLength: 3 }), [...sentinels, ...sentinels.map((s) => s - 8)], 1);
    const spans = new Map<number, number[]>();
    let cur: number[] = [];
    for (const id of target.slice(0, -1)) {
      if (id >= 83) spans.set(id, (cur = []));
      else cur.push(id);
    }
    assert.deepEqual(input.flatMap((id) => spans.get(id) ?? [id]), row2);
  }
  assert.throws(() => corruptSpans(row, [true, false, true, false, true, false, true], sentinels.slice(0, 3), 1), /more than 3 spans/);
});

test("a span batch feeds the decoder its targets shifted right behind the start token, padding weighted 0", () => {
  const o = { noiseDensity: 0.15, meanSpanLength: 3 };
  const rows = [[...Array.from({ length: 30 }, (_, i) => 10 + i), 1], [20, 21, 22, 1]];
  const V = 100, L = 32, T = spanTargetLength(L, o);
  assert.equal(T, 2 * 5 + 1);
  const b = spanBatch(rows, L, V, sentinels, 1, new Rng(2), o);
  assert.deepEqual(b.decIds.shape, [2, T]);
  const dec = b.decIds.data as BigInt64Array, tg = b.targets.data as BigInt64Array, w = b.weights.data as Float32Array;
  for (let r = 0; r < 2; r++) {
    const target: number[] = [];
    for (let t = 0; t < T && w[r * T + t] === 1; t++) target.push(Number(tg[r * T + t]) - (r * T + t) * V);
    assert.equal(target[0], 99);
    assert.equal(target[target.length - 1], 1);
    assert.equal(Number(dec[r * T]), 0);
    for (let t = 1; t < target.length; t++) assert.equal(Number(dec[r * T + t]), target[t - 1]);
    for (let t = target.length; t < T; t++) assert.equal(w[r * T + t], 0);
  }
  // The mask covers each input up to and including its </s>.
  const ids = b.ids.data as BigInt64Array, mask = b.mask.data as Float32Array;
  for (let r = 0; r < 2; r++) {
    const eos = ids.slice(r * L, (r + 1) * L).indexOf(1n);
    assert.deepEqual(Array.from(mask.slice(r * L, (r + 1) * L)), Array.from({ length: L }, (_, t) => (t <= eos ? 1 : 0)));
  }
});

test("the T5 decoder is causal and reads the encoder only through unmasked positions", async () => {
  const config = resolveT5Config({ vocab_size: 50, d_model: 16, d_kv: 8, d_ff: 32, num_layers: 2, num_heads: 2, feed_forward_proj: "gated-gelu" }, "test");
  const dec = new T5DecoderStack(config, new Rng(5));
  const [T, L] = [5, 4];
  const bound = bindParameters(dec, "constant");
  const c = await compile(({ x, buckets, enc, encMask }) => dec.call(x, buckets, enc, encMask), {
    x: { shape: [1, T, 16] }, buckets: { shape: [T, T], dtype: "int64" }, enc: { shape: [1, L, 16] }, encMask: { shape: [1, L] },
  });
  bound.release();
  const rng = new Rng(6);
  const x = { data: rng.normal(T * 16, 0, 1), shape: [1, T, 16] };
  const enc = { data: rng.normal(L * 16, 0, 1), shape: [1, L, 16] };
  const buckets = { data: bucketTable(T, config.numBuckets, config.maxDistance, false), shape: [T, T] };
  const encMask = { data: Float32Array.from([1, 1, 1, 0]), shape: [1, L] };
  const run = async (xx: HostTensor, ee: HostTensor, mm: HostTensor = encMask) => (await c.run({ x: xx, buckets, enc: ee, encMask: mm })).data as Float32Array;
  const base = await run(x, enc);
  const maxDiff = (a: Float32Array, b: Float32Array, from: number, to: number) => Math.max(...Array.from(a.slice(from, to), (v, i) => Math.abs(v - b[from + i])));
  // Changing decoder position 3 leaves positions 0-2 as they were and changes 3-4.
  const x2 = new Float32Array(x.data as Float32Array);
  for (let d = 0; d < 16; d++) x2[3 * 16 + d] += 1;
  const moved = await run({ data: x2, shape: x.shape }, enc);
  assert.ok(maxDiff(base, moved, 0, 3 * 16) < 1e-6, "a later decoder token changed an earlier output");
  assert.ok(maxDiff(base, moved, 3 * 16, 5 * 16) > 1e-3);
  // The padded encoder position is ignored; an unmasked one is read.
  const e2 = new Float32Array(enc.data as Float32Array);
  for (let d = 0; d < 16; d++) e2[3 * 16 + d] += 5;
  assert.ok(maxDiff(base, await run(x, { data: e2, shape: enc.shape }), 0, T * 16) < 1e-6, "a padded encoder position changed the output");
  assert.ok(maxDiff(base, await run(x, { data: e2, shape: enc.shape }, { data: Float32Array.from([1, 1, 1, 1]), shape: [1, L] }), 0, T * 16) > 1e-3);
  c.dispose();
});

test("span-corruption pretraining lowers held-out loss and saves a T5ForConditionalGeneration folder whose encoder loads", async () => {
  const lines = ["a red circle to the left of a blue square", "the green triangle is above the yellow star", "three small cats sat on the mat", "two purple hearts and a dog"];
  const corpus = tinyCorpus(lines);
  const out = await mkdtemp(join(tmpdir(), "imagen-span-"));
  const events: PretrainEvent[] = [];
  try {
    await pretrainText({ ...tinyRun, outDir: out, corpus, objective: "span-corruption" }, (e) => events.push(e));
    const evals = events.filter((e) => e.event === "eval");
    assert.equal(evals.length, 3);
    assert.ok(evals[2].heldOutLoss < evals[0].heldOutLoss - 0.5, `held-out loss ${evals.map((e) => e.heldOutLoss.toFixed(3)).join(" -> ")}`);
    const cfg = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    assert.equal(cfg.is_encoder_decoder, true);
    assert.equal(cfg.num_decoder_layers, 1);
    assert.match(cfg.imagen_pretrain.objective, /span corruption/);
    const names = [...(await loadSafetensors(join(out, "model.safetensors"))).tensors.keys()];
    assert.ok(names.includes("decoder.block.0.layer.1.EncDecAttention.q.weight") && names.includes("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"), names.join(" "));
    await assertTinyEncoderLoads(out);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
  await assert.rejects(pretrainText({ outDir: out, corpus, objective: "span-corruption", keepProb: 0.1, steps: 1 }), /masked-span objective only/);
  await assert.rejects(pretrainText({ outDir: out, corpus, objective: "bert" as never, steps: 1 }), /objective: expected one of masked-span, span-corruption/);
});
