import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { UNet, type UNetConfig } from "../models/unet.js";
import { WordEncoder } from "../text/word-encoder.js";
import { renderToy, toyScene } from "../data/toy-shapes.js";
import { drawTimes, trainStage, type CaptionedDataset } from "./stage-trainer.js";

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
