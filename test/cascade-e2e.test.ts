// End to end: a tiny cascade (16 px base -> 32 px SR) trains on toy captions, then generates images for
// held-out colour/shape combinations whose dominant colour must match the prompt in >= 80% of samples.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.js";
import { UNet, type UNetConfig } from "../src/models/unet.js";
import { WordEncoder } from "../src/text/word-encoder.js";
import { dominantToyColor, renderToy, toyScene, type ToyShape } from "../src/data/toy-shapes.js";
import { trainStage, type CaptionedDataset } from "../src/train/stage-trainer.js";
import { Cascade } from "../src/pipeline/cascade.js";

const heldOut: [string, ToyShape][] = [["red", "circle"], ["blue", "triangle"], ["green", "square"], ["yellow", "circle"], ["purple", "square"], ["orange", "triangle"]];
const isHeldOut = (c: string, s: ToyShape) => heldOut.some(([hc, hs]) => hc === c && hs === s);
const data: CaptionedDataset = { item: (i) => { const s = toyScene(5, i, { exclude: isHeldOut }); return { caption: s.caption, image: (n) => renderToy(s, n) }; } };

const base: UNetConfig = {
  imageSize: 16, inChannels: 3, outChannels: 3, channels: 32, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 32, textDim: 32, textAttention: "concat", selfAttention: true, textPooling: "attention", efficient: false, lowResCond: false, dropout: 0,
};
const sr: UNetConfig = { ...base, imageSize: 32, channels: 16, efficient: true, lowResCond: true, headDim: 16 };

test("a tiny cascade learns colours from captions and renders held-out combinations", async () => {
  const encoder = new WordEncoder(32, 8);
  const t0 = performance.now();
  const baseNet = new UNet(base, new Rng(1));
  const b = await trainStage({ unet: baseNet, encoder, dataset: data, steps: Number(process.env.E2E_BASE_STEPS ?? 400), batch: 16, lr: 2e-3, warmupSteps: 20, seed: 1 });
  b.trainer.dispose();
  const srNet = new UNet(sr, new Rng(2));
  const s = await trainStage({ unet: srNet, encoder, dataset: data, steps: Number(process.env.E2E_SR_STEPS ?? 150), batch: 8, lr: 2e-3, warmupSteps: 20, seed: 2, lowResSize: 16 });
  s.trainer.dispose();
  const trainSeconds = (performance.now() - t0) / 1000;
  const cascade = new Cascade(encoder, [
    { unet: baseNet, parameterization: "eps", schedule: "cosine" }, { unet: srNet, parameterization: "eps", schedule: "cosine" },
  ]);
  const prompts = heldOut.flatMap(([c, sh]) => [`a ${c} ${sh}`, `a ${sh} that is ${c}`]);
  const out = await cascade.sample({ prompts, seed: 7, steps: [20, 10], guidance: [3, 1], augLevel: 0.1 });
  const again = await cascade.sample({ prompts, seed: 7, steps: [20, 10], guidance: [3, 1], augLevel: 0.1 });
  cascade.dispose();
  const final = out[1];
  const per = 3 * 32 * 32;
  const hits = prompts.map((p, i) => dominantToyColor(final.images.subarray(i * per, (i + 1) * per), 32) === heldOut[Math.floor(i / 2)][0]);
  const rate = hits.filter(Boolean).length / hits.length;
  console.log(`trained in ${trainSeconds.toFixed(0)} s; base loss ${avg(b.losses.slice(0, 20)).toFixed(3)} -> ${avg(b.losses.slice(-20)).toFixed(3)}; colour match ${(rate * 100).toFixed(0)}%`);
  assert.ok(rate >= 0.8, `dominant colour matched the prompt in ${(rate * 100).toFixed(0)}% of held-out samples (need 80%)`);
  assert.deepEqual(again[1].images, final.images, "same seed and prompts give the same bytes");
});

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
