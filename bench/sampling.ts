// `npm run bench -- --only sampling`: the cascade's sampling and training throughput on small presets.
// Sampling: a 64 px base model (tiny-base-64), 25 DPM-Solver++(2M) steps with classifier-free guidance,
// as U-Net evaluations/s and images/s, against the same model's bare batched evaluations/s measured in this
// run (the ratio is the sampler loop's efficiency); time to a finished image for every sampler at its
// default step count; training images/s of a base and an SR stage (the SR stage on 64 px crops).
import { Rng } from "../src/util/rng.js";
import { UNet } from "../src/models/unet.js";
import { presetByName } from "../src/models/presets.js";
import { WordEncoder } from "../src/text/word-encoder.js";
import { Cascade } from "../src/pipeline/cascade.js";
import { StageDenoiser } from "../src/pipeline/stage-denoiser.js";
import { defaultSteps, samplerNames } from "../src/diffusion/samplers.js";
import { trainStage } from "../src/train/stage-trainer.js";
import { toyDataset } from "../src/data/datasets.js";
import type { BenchResult } from "./result.js";


const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
}

export async function benchSampling(o: { rounds: number; log: (s: string) => void }): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const encoder = new WordEncoder(128, 16);
  const spec = { unet: new UNet(presetByName("tiny-base-64"), new Rng(0)), parameterization: "eps" as const, schedule: "cosine" as const };
  const prompts = ["a red square", "a blue circle", "a green triangle", "a yellow circle"];
  const B = prompts.length, steps = 25, guidance = 3;

  // The bare U-Net: batched evaluations at the batch sampling uses (2B with guidance), host-side x0 included.
  const den = await StageDenoiser.create(spec, encoder.maxLength);
  const text = await encoder.encode([...prompts, ...prompts]);
  const bare = den.denoiser({
    batch: 2 * B, cond: { text: text.embeddings, mask: text.mask }, uncond: { text: text.embeddings, mask: text.mask },
    textLen: encoder.maxLength, guidance: 1, thresholding: { kind: "none" },
  });
  const x = new Rng(1).normal(2 * B * 3 * 64 * 64);
  await bare(x, 0.5);
  const bareRuns: number[] = [];
  for (let r = 0; r < Math.max(3, o.rounds); r++) bareRuns.push(await timed(async () => { for (let i = 0; i < 5; i++) await bare(x, 0.5); }));
  const bareEvalsPerSec = (5 * 2 * B) / median(bareRuns);
  den.dispose();

  const cascade = new Cascade(encoder, [spec]);
  await cascade.sample({ prompts, seed: 0, steps: 2, guidance });
  const runs: number[] = [];
  for (let r = 0; r < o.rounds; r++) runs.push(await timed(() => cascade.sample({ prompts, seed: r, steps, guidance, sampler: "dpmpp2m" })));
  const s = median(runs);
  const evalsPerSec = (steps * 2 * B) / s;
  o.log(`sampling tiny-base-64 (${B} images, ${steps} DPM-Solver++(2M) steps, guidance ${guidance}): ${s.toFixed(2)} s per batch; `
    + `${evalsPerSec.toFixed(1)} U-Net evals/s vs ${bareEvalsPerSec.toFixed(1)} bare (${(100 * evalsPerSec / bareEvalsPerSec).toFixed(0)}%)`);
  results.push({ name: "sampling.unetEvalsPerSec", unit: "evals/s", value: evalsPerSec, baseline: bareEvalsPerSec, ratio: evalsPerSec / bareEvalsPerSec, against: "bare U-Net" });
  results.push({ name: "sampling.imagesPerSec", unit: "img/s", value: B / s });

  for (const name of samplerNames) {
    const t = median(await Promise.all([0]).then(async () => {
      const ts: number[] = [];
      for (let r = 0; r < Math.max(1, Math.min(3, o.rounds)); r++) ts.push(await timed(() => cascade.sample({ prompts: [prompts[0]], seed: r, guidance, sampler: name })));
      return ts;
    }));
    o.log(`  ${name}: ${t.toFixed(2)} s to one finished image at its default ${defaultSteps[name]} steps`);
    results.push({ name: `sampling.secondsToImage.${name}`, unit: "s", value: t });
  }
  cascade.dispose();

  for (const [stage, preset, batch, crop] of [["base", "tiny-base-32", 16, undefined], ["sr", "tiny-sr-128", 8, 64]] as const) {
    const unet = new UNet(presetByName(preset), new Rng(0));
    const rates: number[] = [];
    const warm = 2, timedSteps = 3 * Math.max(1, o.rounds);
    const r = await trainStage({
      unet, encoder, dataset: toyDataset(0), steps: warm + timedSteps, batch, lr: 1e-4, seed: 0, lowResSize: stage === "sr" ? 32 : undefined, cropSize: crop,
      onLog: (l) => { if (l.step > warm) rates.push(l.imagesPerSecond); },
    });
    r.trainer.dispose();
    const ips = median(rates);
    o.log(`training ${stage} stage (${preset}${crop ? `, ${crop} px crops` : ""}, batch ${batch}): ${ips.toFixed(1)} img/s (median of ${rates.length} steps, data included)`);
    results.push({ name: `train.${stage}StageImagesPerSec`, unit: "img/s", value: ips });
  }
  return results;
}
