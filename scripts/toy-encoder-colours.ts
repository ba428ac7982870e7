// How well a text encoder lets a U-Net learn colours: the base half of test/cascade-e2e.test.ts (16 px toy
// scenes, held-out colour/shape pairs) trained with the given encoder, without min-SNR, then scored by the
// dominant colour of 24 held-out prompts' samples (chance 4/24).
// Usage: node --import tsx scripts/toy-encoder-colours.ts (word | T5 folder) [steps=300] [seed=1]
import { Rng } from "../src/util/rng.js";
import { UNet, type UNetConfig } from "../src/models/unet.js";
import { WordEncoder } from "../src/text/word-encoder.js";
import { T5TextEncoder } from "../src/text/t5-encoder.js";
import { dominantToyColor, renderToy, toyScene, type ToyShape } from "../src/data/toy-shapes.js";
import { trainStage, type CaptionedDataset } from "../src/train/stage-trainer.js";
import { Cascade } from "../src/pipeline/cascade.js";
const heldOut: [string, ToyShape][] = [["red", "circle"], ["blue", "triangle"], ["green", "square"], ["yellow", "circle"], ["purple", "square"], ["orange", "triangle"]];
const isHeldOut = (c: string, s: ToyShape) => heldOut.some(([hc, hs]) => hc === c && hs === s);
const data: CaptionedDataset = { item: (i) => { const s = toyScene(5, i, { exclude: isHeldOut }); return { caption: s.caption, image: (n) => renderToy(s, n) }; } };
const which = process.argv[2];
const steps = Number(process.argv[3] ?? 300);
const seed = Number(process.argv[4] ?? 1);
if (!which || !(Number.isInteger(steps) && steps > 0) || !Number.isInteger(seed)) throw new Error("usage: toy-encoder-colours.ts (word | T5 folder) [steps: a positive integer] [seed: an integer]");
const encoder = which === "word" ? new WordEncoder(32, 8) : await T5TextEncoder.load(which, { maxLength: 16 });
const base: UNetConfig = { imageSize: 16, inChannels: 3, outChannels: 3, channels: 32, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 32, textDim: encoder.dim, textAttention: "concat", selfAttention: true, textPooling: "both", efficient: false, lowResCond: false, dropout: 0 };
const net = new UNet(base, new Rng(seed));
const t0 = performance.now();
const b = await trainStage({ encoder, dataset: data, lr: 2e-3, warmupSteps: 20, lrDecay: "constant", parameterization: "v", unet: net, steps, batch: 16, seed });
b.trainer.dispose();
const cascade = new Cascade(encoder, [{ unet: net, parameterization: "v", schedule: "cosine" }]);
const templates = ["a {c} {s}", "a {s} that is {c}", "one {c} {s}", "a picture of a {c} {s}"];
const prompts = heldOut.flatMap(([c, sh]) => templates.map((t) => t.replace("{c}", c).replace("{s}", sh)));
const out = await cascade.sample({ prompts, seed: 6 + seed, steps: [20], guidance: [3] });
const per = 3 * 16 * 16;
const ok = prompts.filter((_, i) => dominantToyColor(out[0].images.subarray(i * per, (i + 1) * per), 16) === heldOut[Math.floor(i / templates.length)][0]).length;
console.log(`${which} steps ${steps} seed ${seed}: colour match ${ok}/${prompts.length} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
cascade.dispose();
