// The README's sample grid: the shipped cascade (models/default) on a fixed list of prompts, one 128 px
// image each, written as docs/default-grid.png (4 per row) with the prompts in docs/default-grid.md.
// Usage: node --import tsx scripts/readme-grid.ts [--seed 1] [--guidance W] (guidance, thresholding, sampler
// and steps: the model's recommendations, as imagen generate samples it, unless --guidance is given)
import { mkdir, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { loadCascade } from "../src/pipeline/model-folder.js";
import { Cascade } from "../src/pipeline/cascade.js";
import { imageToPng } from "../src/data/png.js";
import { defaultModelDir } from "../src/cli/default-model.js";
import { guidanceFor, samplerFor, stepsFor, thresholdingFor } from "../src/cli/generate.js";
import { defaultSteps } from "../src/diffusion/samplers.js";
import { parseThresholding } from "../src/diffusion/guidance.js";

export const gridPrompts = [
  "a red apple to the left of a blue ball", "a yellow star on a black background", "three green circles", "a sign that says CAT",
  "a cat above a dog", "two bananas", "a big blue square and a small pink heart", "a rocket on a white background",
  "a purple heart to the right of a frog", "a sign that says SUN", "four orange stars", "a llama below a green triangle",
];
const { values } = parseArgs({ options: { seed: { type: "string", default: "1" }, guidance: { type: "string" } } });
const m = await loadCascade(defaultModelDir());
const cascade = new Cascade(m.encoder, m.stages);
const guidance = guidanceFor(values.guidance, m.sampling), thresholding = thresholdingFor(undefined, m.sampling);
const sampler = samplerFor(undefined, m.sampling), steps = stepsFor(undefined, sampler, m.sampling) ?? defaultSteps[sampler];
const out = await cascade.sample({ prompts: gridPrompts, seed: Number(values.seed), guidance, thresholding: parseThresholding(thresholding), sampler, steps });
cascade.dispose();
const samplerTitles = { ancestral: "ancestral (DDPM) sampling", ddim: "DDIM", dpmpp2m: "DPM-Solver++(2M)" };
const last = out[out.length - 1], S = last.size, cols = 4, rows = Math.ceil(gridPrompts.length / cols);
const pad = 4, W = cols * (S + pad) + pad, H = rows * (S + pad) + pad;
const grid = new Float32Array(3 * W * H).fill(1);
gridPrompts.forEach((_, k) => {
  const [oy, ox] = [pad + Math.floor(k / cols) * (S + pad), pad + (k % cols) * (S + pad)];
  for (let c = 0; c < 3; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) grid[(c * H + oy + y) * W + ox + x] = last.images[((k * 3 + c) * S + y) * S + x];
});
await mkdir("docs", { recursive: true });
await writeFile("docs/default-grid.png", imageToPng(grid, H, W, { prompts: gridPrompts.join("\n") }));
const table = gridPrompts.map((p, k) => `${k % cols === 0 ? "\n| " : ""}${p} |`).join(" ");
await writeFile("docs/default-grid.md", `Prompts, row by row (seed ${values.seed}, guidance ${guidance}, ${thresholding} thresholding, ${samplerTitles[sampler]}, ${steps} steps per stage):\n${table}\n`);
console.log("wrote docs/default-grid.png and docs/default-grid.md");
