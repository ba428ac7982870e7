// How well a text encoder lets a U-Net learn colours: the base half of test/cascade-e2e.test.ts (16 px toy
// scenes, held-out colour/shape pairs) trained with the given encoder, without min-SNR, then scored by the
// dominant colour of 24 held-out prompts' samples (chance 4/24).
// Usage: node --import tsx scripts/toy-encoder-colours.ts (word | T5 folder) [steps=300] [seed=1] [raw | std]
import { Rng } from "../src/util/rng.js";
import { UNet, type UNetConfig } from "../src/models/unet.js";
import { WordEncoder } from "../src/text/word-encoder.js";
import { T5TextEncoder } from "../src/text/t5-encoder.js";
import type { TextEncoder } from "../src/text/encoder.js";
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
const rawEncoder: TextEncoder = which === "word" ? new WordEncoder(32, 8) : await T5TextEncoder.load(which, { maxLength: 16 });
// "std": each embedding channel standardised by its mean and deviation over the valid tokens of 512 training
// captions (a fixed affine map of the frozen encoder's output; padded positions stay zero).
const mode = process.argv[5] ?? "raw";
if (mode !== "raw" && mode !== "std") throw new Error(`mode: expected raw or std, got ${mode}`);
const encoder: TextEncoder = mode === "raw" ? rawEncoder : await standardised(rawEncoder);
async function standardised(enc: TextEncoder): Promise<TextEncoder> {
  const e = await enc.encode(Array.from({ length: 512 }, (_, i) => data.item(i).caption));
  const d = e.dim, sum = new Float64Array(d), sq = new Float64Array(d);
  let n = 0;
  for (let t = 0; t < e.batch * e.length; t++) {
    if (!e.mask[t]) continue;
    n++;
    for (let c = 0; c < d; c++) { const v = e.embeddings[t * d + c]; sum[c] += v; sq[c] += v * v; }
  }
  const mean = sum.map((v) => v / n), inv = sq.map((v, c) => 1 / Math.sqrt(Math.max(v / n - mean[c] ** 2, 1e-12)));
  return { id: `${enc.id}:std`, dim: enc.dim, maxLength: enc.maxLength, encode: async (prompts) => {
    const r = await enc.encode(prompts);
    for (let t = 0; t < r.batch * r.length; t++) if (r.mask[t]) for (let c = 0; c < d; c++) r.embeddings[t * d + c] = (r.embeddings[t * d + c] - mean[c]) * inv[c];
    return r;
  } };
}
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
console.log(`${which} ${mode} steps ${steps} seed ${seed}: colour match ${ok}/${prompts.length} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
cascade.dispose();
