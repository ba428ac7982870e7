// `imagen generate "prompt" --model DIR`: samples the cascade and writes one PNG per image, each carrying
// its generation parameters (A1111-style text in a `parameters` tEXt chunk) so it can be made again.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { ValueError } from "../util/errors.js";
import { imageToPng } from "../data/png.js";
import { defaultSteps, samplerNames, type SamplerName } from "../diffusion/samplers.js";
import { parseThresholding } from "../diffusion/guidance.js";
import { Cascade } from "../pipeline/cascade.js";
import { loadCascade, type SamplingDefaults } from "../pipeline/model-folder.js";
import { progressReporter } from "./progress.js";
import { trainingWarnings } from "./train.js";
import { cachedEncoder } from "../text/embedding-cache.js";
import { defaultAugLevel, defaultModelDir } from "./default-model.js";

export interface GenerateFlags {
  /** Model folder; default: the shipped cascade (models/default). */
  model?: string; steps?: string; guidance?: string; seed: string; negative?: string; sampler?: string;
  thresholding?: string; augLevel: string; batch: string; out: string; json?: boolean;
  /** A folder for the on-disk text-embedding cache (shared with `imagen train`'s). */
  textCache?: string;
}

function num(name: string, v: string, check: (n: number) => boolean, range: string): number {
  const n = Number(v);
  if (v.trim() === "" || !check(n)) throw new ValueError(`--${name}: expected ${range}, got "${v}"`);
  return n;
}

export function parseSampler(v: string): SamplerName {
  if (!(samplerNames as readonly string[]).includes(v)) throw new ValueError(`--sampler: expected one of ${samplerNames.join(", ")}, got "${v}"`);
  return v as SamplerName;
}

/** The sampler a run uses: the flag (checked), else the model folder's recommendation, else dpmpp2m. */
export function samplerFor(flag: string | undefined, sampling: SamplingDefaults): SamplerName {
  return flag !== undefined ? parseSampler(flag) : sampling.sampler ?? "dpmpp2m";
}

/** Steps per stage: the flag, else the model's recommendation when its sampler is the one in use, else the sampler's default (undefined). */
export function stepsFor(flag: number | undefined, sampler: SamplerName, sampling: SamplingDefaults): number | undefined {
  return flag ?? (sampling.steps !== undefined && sampler === (sampling.sampler ?? "dpmpp2m") ? sampling.steps : undefined);
}

/** The thresholding a run uses: the flag, else the model folder's recommendation, else Imagen's dynamic. */
export const thresholdingFor = (flag: string | undefined, sampling: SamplingDefaults) => flag ?? sampling.thresholding ?? "dynamic";

/** Imagen's guidance weight where neither the flag nor the model folder gives one. */
export const defaultGuidance = 4;

/** The guidance weight a run uses: the flag (checked), else the model folder's recommendation, else 4. */
export function guidanceFor(flag: string | undefined, sampling: SamplingDefaults): number {
  if (flag === undefined) return sampling.guidance ?? defaultGuidance;
  const n = Number(flag);
  if (flag.trim() === "" || !Number.isFinite(n) || n < 0) throw new ValueError(`--guidance: expected a finite number >= 0, got "${flag}"`);
  return n;
}

/** A1111-style parameters text: prompt, negative prompt, then "Key: value" pairs. */
export function parametersText(prompt: string, p: Record<string, string | number>, negative?: string): string {
  const pairs = Object.entries(p).map(([k, v]) => `${k}: ${v}`).join(", ");
  return `${prompt}\n${negative ? `Negative prompt: ${negative}\n` : ""}${pairs}`;
}

export async function runGenerate(prompt: string, f: GenerateFlags): Promise<string[]> {
  if (prompt.length > 10000) throw new ValueError(`prompt: ${prompt.length} characters is too long (at most 10000); shorten it`);
  if (f.sampler !== undefined) parseSampler(f.sampler); // a bad flag fails before the model loads
  const seed = num("seed", f.seed, (n) => Number.isSafeInteger(n) && n >= 0, "a non-negative integer");
  guidanceFor(f.guidance, {}); // a bad flag fails before the model loads
  const batch = num("batch", f.batch, (n) => Number.isInteger(n) && n >= 1 && n <= 64, "an integer from 1 to 64");
  const augLevel = num("aug-level", f.augLevel, (n) => n >= 0 && n <= 1, "a number from 0 to 1");
  const stepsFlag = f.steps === undefined ? undefined : num("steps", f.steps, (n) => Number.isInteger(n) && n >= 1 && n <= 10000, "an integer from 1 to 10000");
  if (f.thresholding !== undefined) parseThresholding(f.thresholding); // a bad flag fails before the model loads
  const model = f.model ?? defaultModelDir();
  const loaded = await loadCascade(model);
  const thresholdingText = thresholdingFor(f.thresholding, loaded.sampling);
  const thresholding = parseThresholding(thresholdingText);
  const guidance = guidanceFor(f.guidance, loaded.sampling);
  const sampler = samplerFor(f.sampler, loaded.sampling);
  const steps = stepsFor(stepsFlag, sampler, loaded.sampling);
  const stages = loaded.stages;
  const encoder = f.textCache ? cachedEncoder(loaded.encoder, f.textCache, (m) => process.stderr.write(`warning: ${m}\n`)) : loaded.encoder;
  for (const w of await trainingWarnings(model)) process.stderr.write(`warning: ${w}\n`);
  const cascade = new Cascade(encoder, stages);
  const progress = progressReporter(f.json === true);
  try {
    const truncated = (await encoder.encode([prompt])).truncated[0];
    if (truncated) process.stderr.write(`warning: the prompt is longer than the encoder's ${encoder.maxLength} tokens; the rest is ignored\n`);
    const out = await cascade.sample({
      prompts: Array(batch).fill(prompt), seed, steps, guidance, negativePrompt: f.negative, sampler, thresholding, augLevel,
      onProgress: (p) => progress({ stage: p.stage, step: p.step, steps: p.steps }),
    });
    const last = out[out.length - 1];
    const S = last.size, per = 3 * S * S;
    await mkdir(f.out, { recursive: true });
    const files: string[] = [];
    for (let i = 0; i < batch; i++) {
      const text = parametersText(prompt, {
        Steps: steps ?? defaultSteps[sampler], Sampler: sampler, "CFG scale": guidance, Seed: seed, "Batch index": i, Size: `${S}x${S}`,
        Thresholding: thresholdingText, "Aug level": augLevel, Model: f.model ?? "default",
      }, f.negative);
      const file = join(f.out, `${seed}-${i}.png`);
      await writeFile(file, imageToPng(last.images.subarray(i * per, (i + 1) * per), S, S, { parameters: text }));
      files.push(file);
    }
    return files;
  } finally {
    cascade.dispose();
  }
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("generate images from a text prompt")
    .argument("<prompt>", "what to draw")
    .option("--model <dir>", "model folder (model_index.json + one folder per part); default: the shipped cascade")
    .option("--steps <n>", "sampler steps per stage (default: the model's recommendation for the sampler, else the sampler's)")
    .option("--guidance <w>", "classifier-free guidance weight (default: the model's recommendation, else 4)")
    .option("--seed <n>", "random seed; the same seed gives the same bytes", "0")
    .option("--negative <text>", "negative prompt (replaces the empty condition in guidance)")
    .option("--sampler <name>", `one of ${samplerNames.join(", ")} (default: the model's recommendation, else dpmpp2m)`)
    .option("--thresholding <kind>", "none, static, dynamic or dynamic:P (default: the model's recommendation, else dynamic)")
    .option("--aug-level <a>", "noise-augmentation level for super-resolution stages", String(defaultAugLevel))
    .option("--batch <n>", "images to make", "1")
    .option("--out <dir>", "output folder", "outputs")
    .option("--text-cache <dir>", "cache prompt embeddings on disk in this folder")
    .option("--json", "JSON-lines progress")
    .action(async (prompt: string, flags: GenerateFlags) => {
      const files = await runGenerate(prompt, flags);
      for (const f of files) console.log(f);
    });
}
