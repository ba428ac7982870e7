import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { UNet, type UNetConfig } from "../models/unet.js";
import { WordEncoder } from "../text/word-encoder.js";
import { renderToy, toyScene } from "../data/toy-shapes.js";
import { drawTimes, placeTargets, trainStage, type CaptionedDataset } from "./stage-trainer.js";
import { input } from "../graph/build.js";
import { evaluate, nd, type NDArray } from "../graph/interpret.js";
import { bindParameters } from "../nn/module.js";

const cfg: UNetConfig = {
  imageSize: 16, inChannels: 3, outChannels: 3, channels: 16, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 16, textDim: 32, textAttention: "concat", selfAttention: true, textPooling: "attention", efficient: false, lowResCond: false, dropout: 0,
};
const toy: CaptionedDataset = { item: (i) => { const s = toyScene(1, i); return { caption: s.caption, image: (size) => renderToy(s, size) }; } };

test("resuming from a checkpoint gives the same losses as an uninterrupted run (base and SR)", async () => {
  for (const sr of [false, true]) {
    const c = sr ? { ...cfg, efficient: true, lowResCond: true } : cfg;
    const dir = await mkdtemp(join(tmpdir(), "imagen-resume-"));
    const common = { encoder: new WordEncoder(32, 6), dataset: toy, batch: 4, lr: 1e-3, seed: 3, lowResSize: sr ? 8 : undefined, emaDecay: 0.9 };
    const full = await trainStage({ ...common, unet: new UNet(c, new Rng(0)), steps: 6 });
    full.trainer.dispose();
    const first = await trainStage({ ...common, unet: new UNet(c, new Rng(0)), steps: 6, stopAt: 3, checkpointDir: dir, checkpointEvery: 3 });
    first.trainer.dispose();
    const resumed = await trainStage({ ...common, unet: new UNet(c, new Rng(99)), steps: 6, checkpointDir: dir, checkpointEvery: 3 });
    resumed.trainer.dispose();
    assert.deepEqual(resumed.losses, full.losses, `${sr ? "SR" : "base"}: losses after resume differ`);
    await rm(dir, { recursive: true });
  }
});

test("drawTimes: uniform as before without highNoise; with it, that share of the times from [from, 1]", () => {
  assert.deepEqual(drawTimes(new Rng(3), 64), new Rng(3).uniform(64), "the same draws as earlier runs");
  assert.deepEqual(drawTimes(new Rng(3), 64, { share: 0, from: 0.9 }), new Rng(3).uniform(64));
  const n = 20000, t = drawTimes(new Rng(4), n, { share: 0.4, from: 0.9 });
  assert.deepEqual(t, drawTimes(new Rng(4), n, { share: 0.4, from: 0.9 }), "seeded");
  assert.ok(t.every((v) => v >= 0 && v < 1));
  const high = t.filter((v) => v >= 0.9).length / n, low = t.filter((v) => v < 0.45).length / n;
  assert.ok(Math.abs(high - (0.4 + 0.6 * 0.1)) < 0.015, `share at t >= 0.9: ${high}`); // 0.46
  assert.ok(Math.abs(low - 0.6 * 0.45) < 0.015, `share below 0.45: ${low}`); // 0.27, still uniform there
});

test("placeTargets: each grounded word's tokens get the share of its thing's squares in each place", () => {
  const G = 4, L = 6;
  // Words 1-2 (tokens 1, 2-3) name a thing in the left half's top two rows; word 4 (token 5) two copies.
  const wordTokens = [[0], [1], [2, 3], [4], [5]];
  const { target, weight } = placeTargets([
    { words: [1, 2], boxes: [{ x: 0.25, y: 0.25, size: 0.5 }] },
    { words: [4], boxes: [{ x: 0.125, y: 0.875, size: 0.25 }, { x: 0.875, y: 0.875, size: 0.25 }] },
  ], wordTokens, L, G);
  assert.deepEqual([...weight], [0, 1, 1, 1, 0, 1]);
  const row = (p: number) => [...target.subarray(p * G * G, (p + 1) * G * G)];
  const quarter = [0.25, 0.25, 0, 0, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  for (const p of [1, 2, 3]) assert.deepEqual(row(p), quarter);
  assert.deepEqual(row(5), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0, 0, 0.5]);
  assert.ok(row(0).every((v) => v === 0) && row(4).every((v) => v === 0));
  // A square between places splits by area; tokens past L are dropped.
  const half = placeTargets([{ words: [0], boxes: [{ x: 0.5, y: 0.125, size: 0.25 }] }], [[0, 7]], L, G);
  assert.deepEqual(Array.from(half.target.subarray(0, G)).map((v) => Math.round(v * 1000) / 1000), [0, 0.5, 0.5, 0]);
  assert.deepEqual([...half.weight], [1, 0, 0, 0, 0, 0]);
});

test("grounding loss: training puts a colour word where the scene has its thing, by the caption's relation word", async () => {
  // "red left" has a red square on the left, "red right" on the right: only the relation word (the other token)
  // tells the red token's place apart, through the caption's gate.
  const pc: UNetConfig = { ...cfg, tokenPlacement: 4 };
  const encoder = new WordEncoder(32, 4, 2);
  const data: CaptionedDataset = {
    item: (i) => {
      const right = i % 2 === 1, x = right ? 0.75 : 0.25;
      return {
        caption: `red ${right ? "right" : "left"}`,
        image: (n) => { const img = new Float32Array(3 * n * n).fill(-1); for (let y = 0; y < n; y++) for (let c = 0; c < n / 2; c++) img[y * n + c + (right ? n / 2 : 0)] = 1; return img; },
        grounding: [{ words: [0], boxes: [{ x, y: 0.5, size: 0.5 }] }],
      };
    },
  };
  const unet = new UNet(pc, new Rng(0));
  const placeOf = async (caption: string) => {
    const e = await encoder.encode([caption]);
    const ins = { text: input("text", [1, 4, 32]), mask: input("mask", [1, 4]) };
    const bound = bindParameters(unet, "input");
    const logits = unet.placement!.placeLogits(unet.contextText(ins.text, ins.mask), ins.mask);
    bound.release();
    const feeds: Record<string, NDArray> = { text: nd([1, 4, 32], e.embeddings), mask: nd([1, 4], e.mask) };
    for (const [n, p] of unet.namedParameters()) feeds[n] = nd([...p.shape], p.data);
    const l = evaluate([logits], feeds)[0].data.slice(0, 16); // the red token
    const w = l.map((v) => Math.exp(v)), z = w.reduce((a, b) => a + b, 0);
    return w.reduce((s, v, g) => s + (v / z) * ((g % 4) + 0.5) / 4, 0); // its place's mean x
  };
  const before = [await placeOf("red left"), await placeOf("red right")];
  const r = await trainStage({ unet, encoder, dataset: data, batch: 8, lr: 3e-3, steps: 60, seed: 1, condDrop: 0, grounding: 1 });
  r.trainer.dispose();
  const [left, right] = [await placeOf("red left"), await placeOf("red right")];
  assert.ok(left < 0.35 && right > 0.65, `red's place (mean x): left ${left.toFixed(3)}, right ${right.toFixed(3)} (before ${before.map((v) => v.toFixed(3))})`);
  await assert.rejects(trainStage({ unet: new UNet(cfg, new Rng(0)), encoder, dataset: data, batch: 2, lr: 1e-3, steps: 1, grounding: 1 }), /no token placement to ground/);
  await assert.rejects(trainStage({ unet, encoder: { ...encoder, id: "x", dim: 32, maxLength: 4, encode: (p: readonly string[]) => encoder.encode(p) }, dataset: data, batch: 2, lr: 1e-3, steps: 1, grounding: 1 }), /cannot say which tokens each word has/);
});
