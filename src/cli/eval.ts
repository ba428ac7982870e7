// `imagen eval [--model DIR]`: samples the fixed evaluation prompt set (src/eval/prompts.ts) with the
// cascade and scores every final image with the scene oracle, per DrawBench-style category.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { ValueError } from "../util/errors.js";
import { imageToPng } from "../data/png.js";
import { Cascade } from "../pipeline/cascade.js";
import { loadCascade } from "../pipeline/model-folder.js";
import { judge, type AttributeResult } from "../eval/oracle.js";
import { evalPrompts, promptSets, type PromptSet } from "../eval/prompts.js";
import { progressReporter } from "./progress.js";
import { defaultAugLevel, defaultModelDir } from "./default-model.js";
import { guidanceFor, parseSampler, samplerFor, stepsFor, thresholdingFor } from "./generate.js";
import { parseThresholding } from "../diffusion/guidance.js";
import { defaultSteps, samplerNames, type SamplerName } from "../diffusion/samplers.js";

export interface EvalFlags { model?: string; samples: string; seed: string; guidance?: string; steps?: string; out?: string; json?: boolean; limit?: string; stage?: string; augLevel?: string; prompts?: string; sampler?: string; thresholding?: string; category?: string }
export interface EvalReport {
  model: string; samples: number; seed: number; guidance: number; augLevel: number; sampler: SamplerName; steps: number; thresholding: string; promptSet: PromptSet; prompts: number; stage: number; size: number;
  /** Share of attributes judged right, per category (background checks reported on their own). */
  categories: Record<string, { correct: number; total: number; accuracy: number }>;
  items: { prompt: string; sample: number; results: AttributeResult[] }[];
}

const positiveInt = (name: string, v: string, max: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ValueError(`--${name}: expected an integer from 1 to ${max}, got "${v}"`);
  return n;
};

export async function runEval(f: EvalFlags): Promise<EvalReport> {
  const model = f.model ?? defaultModelDir();
  const samples = positiveInt("samples", f.samples, 64);
  const seed = Number(f.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new ValueError(`--seed: expected a non-negative integer, got "${f.seed}"`);
  guidanceFor(f.guidance, {}); // a bad flag fails before the model loads
  const stepsFlag = f.steps === undefined ? undefined : positiveInt("steps", f.steps, 1000);
  const augLevel = Number(f.augLevel ?? defaultAugLevel);
  if (!(augLevel >= 0 && augLevel <= 1) || f.augLevel?.trim() === "") throw new ValueError(`--aug-level: expected a number from 0 to 1, got "${f.augLevel}"`);
  if (f.sampler !== undefined) parseSampler(f.sampler); // a bad flag fails before the model loads
  if (f.thresholding !== undefined) parseThresholding(f.thresholding); // a bad flag fails before the model loads
  const promptSet = (f.prompts ?? "heldout") as PromptSet;
  if (!promptSets.includes(promptSet)) throw new ValueError(`--prompts: expected one of ${promptSets.join(", ")}, got "${f.prompts}"`);
  // Each prompt keeps its index in the whole set, which picks its seed: a category scored alone gets the
  // same images as in a run over every prompt.
  let prompts = evalPrompts(promptSet).map((p, index) => ({ ...p, index }));
  if (f.category !== undefined) {
    const cats = [...new Set(prompts.map((p) => p.scene.claim.category))];
    if (!cats.includes(f.category as (typeof cats)[number])) throw new ValueError(`--category: expected one of ${cats.join(", ")}, got "${f.category}"`);
    prompts = prompts.filter((p) => p.scene.claim.category === f.category);
  }
  if (f.limit !== undefined) prompts = prompts.slice(0, positiveInt("limit", f.limit, prompts.length));
  const loaded = await loadCascade(model);
  const thresholdingText = thresholdingFor(f.thresholding, loaded.sampling);
  const thresholding = parseThresholding(thresholdingText);
  const guidance = guidanceFor(f.guidance, loaded.sampling);
  const sampler = samplerFor(f.sampler, loaded.sampling);
  const steps = stepsFor(stepsFlag, sampler, loaded.sampling);
  const stage = f.stage === undefined ? loaded.stages.length - 1 : f.stage.trim() === "" ? NaN : Number(f.stage);
  if (!Number.isInteger(stage) || stage < 0 || stage >= loaded.stages.length) {
    throw new ValueError(`--stage: expected an integer from 0 to ${loaded.stages.length - 1} (the model has ${loaded.stages.length} stages), got "${f.stage}"`);
  }
  const cascade = new Cascade(loaded.encoder, loaded.stages);
  const progress = progressReporter(f.json === true);
  const report: EvalReport = { model, samples, seed, guidance, augLevel, sampler, steps: steps ?? defaultSteps[sampler], thresholding: thresholdingText, promptSet, prompts: prompts.length, stage, size: loaded.stages[stage].unet.config.imageSize, categories: {}, items: [] };
  if (f.out) await mkdir(f.out, { recursive: true });
  try {
    for (const [n, p] of prompts.entries()) {
      const k = p.index;
      const out = await cascade.sample({ prompts: Array(samples).fill(p.prompt), seed: seed + k, guidance, augLevel, steps, sampler, thresholding, stopAtStage: stage });
      const last = out[out.length - 1], S = last.size, per = 3 * S * S;
      for (let s = 0; s < samples; s++) {
        const img = last.images.subarray(s * per, (s + 1) * per);
        const results = judge(img, S, p.scene, { background: p.checkBackground });
        report.items.push({ prompt: p.prompt, sample: s, results });
        for (const r of results) {
          const cat = r.attribute === "background" ? "background" : p.scene.claim.category;
          const c = (report.categories[cat] ??= { correct: 0, total: 0, accuracy: 0 });
          c.total++;
          if (r.ok) c.correct++;
          c.accuracy = c.correct / c.total;
        }
        if (f.out) await writeFile(join(f.out, `${String(k).padStart(3, "0")}-${s}.png`), imageToPng(img, S, S, { parameters: p.prompt }));
      }
      progress({ stage: 0, step: n + 1, steps: prompts.length });
    }
  } finally {
    cascade.dispose();
  }
  return report;
}

export function formatReport(r: EvalReport): string {
  const rows = Object.entries(r.categories).map(([c, v]) => `${c.padEnd(12)} ${(100 * v.accuracy).toFixed(1).padStart(5)}%  (${v.correct}/${v.total})`);
  return [`oracle-scored alignment of stage ${r.stage} (${r.size} px): ${r.prompts} ${r.promptSet === "seen" ? "seen-in-training" : "held-out"} prompts x ${r.samples} samples, guidance ${r.guidance}, ${r.sampler} sampler (${r.steps} steps), ${r.thresholding} thresholding, aug level ${r.augLevel}, seed ${r.seed}`, ...rows].join("\n");
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("score a cascade on the fixed held-out prompt set with the scene oracle, per category")
    .option("--model <dir>", "model folder (default: the shipped model)")
    .option("--samples <n>", "images per prompt", "2")
    .option("--seed <n>", "first seed (prompt k uses seed + k)", "0")
    .option("--guidance <w>", "classifier-free guidance weight (as imagen generate; default: the model's recommendation, else 4)")
    .option("--steps <n>", "sampler steps per stage (default: the model's recommendation for the sampler, else the sampler's)")
    .option("--sampler <name>", `one of ${samplerNames.join(", ")} (default: the model's recommendation, else dpmpp2m)`)
    .option("--thresholding <kind>", "none, static, dynamic or dynamic:P (as imagen generate; default: the model's recommendation, else dynamic)")
    .option("--aug-level <a>", "noise-augmentation level for super-resolution stages (as imagen generate)", String(defaultAugLevel))
    .option("--prompts <set>", `prompt set: heldout (new colour/shape pairs and sign words; the scored one) or seen (pairs and words training shows)`, "heldout")
    .option("--category <name>", "only this category's prompts (colors, counting, positional or text), each with the seed it has in the whole set")
    .option("--limit <n>", "only the first n prompts")
    .option("--stage <n>", "score this stage's output (0: the base) instead of the final image; the oracle is less reliable below 128 px")
    .option("--out <dir>", "also write every image here")
    .option("--report <file>", "write the full report (JSON) here")
    .option("--json", "JSON-lines progress")
    .action(async (flags: EvalFlags & { report?: string }) => {
      const r = await runEval(flags);
      if (flags.report) await writeFile(flags.report, JSON.stringify(r, null, 1) + "\n");
      console.log(formatReport(r));
    });
}
