// Trains one cascade stage (Imagen App. A): per step, sample captions and images, drop the condition 10%
// of the time, sample t and noise (and, for SR stages, the low-res partner with noise augmentation), run
// the compiled training step, log, and checkpoint crash-safely; resumes exactly from the newest checkpoint.
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { alphaSigma, logSnrOf, type ScheduleName } from "../diffusion/schedule.js";
import { augmentLowRes, downsampleArea, resizeBilinear } from "../diffusion/noise-aug.js";
import type { UNet } from "../models/unet.js";
import type { TextEncoder } from "../text/encoder.js";
import type { HostTensor } from "../runtime/host.js";
import { loadLatestCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { lrSchedule, type LrScheduleName } from "./lr.js";
import { diffusionLoss, groundingLoss, minSnrWeight, objectiveInputs, type Parameterization } from "./objective.js";
import { add, mul } from "../graph/ops-basic.js";
import type { Grounding } from "../data/scenes.js";
import { TrainStep } from "./step.js";

export interface CaptionedItem {
  caption: string;
  /** The image as CHW floats in [-1, 1] at `size` x `size`. */
  image(size: number): Float32Array;
  /** Which caption words name which things, and where they are (generated scenes know; see `sceneGrounding`). */
  grounding?: Grounding[];
}
export interface CaptionedDataset {
  item(index: number): CaptionedItem;
  /** The number of distinct items of a finite dataset (indices wrap); absent for generated ones. */
  readonly size?: number;
}

export interface StageTrainOptions {
  unet: UNet;
  encoder: TextEncoder;
  dataset: CaptionedDataset;
  /** Low-res input size for a super-resolution stage. */
  lowResSize?: number;
  steps: number;
  /** Return after this step (checkpointing there), as an interrupted run would; the schedules still span `steps`. */
  stopAt?: number;
  batch: number;
  lr: number;
  warmupSteps?: number;
  /** Learning-rate decay after warmup; default cosine (to 0 at `steps`). */
  lrDecay?: LrScheduleName;
  /** Warm restarts of the decay (see lr.ts): steps where it starts again, each peak restartScale x the last. */
  lrRestarts?: number[];
  lrRestartScale?: number;
  /**
   * Train on random cropSize x cropSize windows of the stage's images (the paper trains its SR stages on
   * crops; the U-Net is convolutional, so it samples at full size). The low-res input is the matching window.
   */
  cropSize?: number;
  /** Draw every step's images and captions from step 1's batch (noise and t still vary): a debugging mode. */
  overfitOneBatch?: boolean;
  schedule?: ScheduleName;
  parameterization?: Parameterization;
  condDrop?: number;
  /**
   * Weight of the grounding loss (`groundingLoss`): the U-Net's token placement learns to put each word that
   * names a thing where the scene has it. Needs a U-Net with token placement, an encoder with `wordTokens`
   * and items with `grounding`. 0 or absent: none.
   */
  grounding?: number;
  /** Draw this share of the diffusion times uniformly from [from, 1] instead of [0, 1] (see `drawTimes`). */
  highNoise?: HighNoise;
  minSnrGamma?: number;
  emaDecay?: number;
  clipNorm?: number;
  weightDecay?: number;
  /** Learning-rate factors by parameter-name pattern (AdamW `lrScales`). */
  lrScales?: Record<string, number>;
  seed?: number;
  checkpointDir?: string;
  checkpointEvery?: number;
  keep?: number;
  onLog?: (record: { step: number; loss: number; gradNorm: number; lr: number; imagesPerSecond: number }) => void;
  /** Awaited after every step (and its checkpoint): e.g. periodic sample grids. */
  onStep?: (step: number) => Promise<void>;
}

export interface StageTrainResult {
  losses: number[];
  trainer: TrainStep<Record<string, never>>;
}

/** Builds the batch of `step`: everything drawn from rng.split(step), so a resumed run sees the same data. */
async function makeBatch(o: StageTrainOptions, step: number, textCache: Map<string, { e: Float32Array; m: Float32Array; w?: number[][] }>) {
  const c = o.unet.config;
  const [B, full, L, D] = [o.batch, c.imageSize, o.encoder.maxLength, o.encoder.dim];
  const S = o.cropSize ?? full;
  const rng = new Rng(o.seed ?? 0).split(`batch:${step}`);
  const x0 = new Float32Array(B * 3 * S * S);
  const text = new Float32Array(B * L * D), mask = new Float32Array(B * L);
  const [alpha, sigma, t, weight] = [0, 0, 0, 0].map(() => new Float32Array(B));
  const captions: string[] = [];
  const groundings: (Grounding[] | undefined)[] = [];
  const indices = o.overfitOneBatch ? new Rng(o.seed ?? 0).split("batch:1").words(B) : rng.words(B);
  // Crop corners on the low-res grid, so the low-res window is exact.
  const factor = c.lowResCond ? full / (o.lowResSize as number) : 1;
  const corners = rng.words(2 * B);
  for (let b = 0; b < B; b++) {
    const item = o.dataset.item(indices[b]);
    captions.push(item.caption);
    groundings.push(item.grounding);
    const img = item.image(full);
    if (S === full) {
      x0.set(img, b * 3 * S * S);
      continue;
    }
    const cells = (full - S) / factor + 1;
    const [y0, x0c] = [(corners[2 * b] % cells) * factor, (corners[2 * b + 1] % cells) * factor];
    for (let ch = 0; ch < 3; ch++) {
      for (let y = 0; y < S; y++) {
        const src = (ch * full + y0 + y) * full + x0c;
        x0.set(img.subarray(src, src + S), ((b * 3 + ch) * S + y) * S);
      }
    }
  }
  const missing = [...new Set(captions.filter((cap) => !textCache.has(cap)))];
  if (missing.length > 0) {
    const enc = await o.encoder.encode(missing);
    missing.forEach((cap, i) => textCache.set(cap, { e: enc.embeddings.slice(i * L * D, (i + 1) * L * D), m: enc.mask.slice(i * L, (i + 1) * L) }));
  }
  const drops = rng.uniform(B), times = drawTimes(rng, B, o.highNoise);
  const G = o.grounding ? (o.unet.placement?.grid as number) : 0;
  const placeTarget = new Float32Array(o.grounding ? B * L * G * G : 0), placeWeight = new Float32Array(o.grounding ? B * L : 0);
  for (let b = 0; b < B; b++) {
    if (drops[b] >= (o.condDrop ?? 0.1)) {
      const cached = textCache.get(captions[b]) as { e: Float32Array; m: Float32Array; w?: number[][] };
      text.set(cached.e, b * L * D);
      mask.set(cached.m, b * L);
      if (o.grounding) {
        cached.w ??= (o.encoder.wordTokens as (p: string) => number[][])(captions[b]);
        const p = placeTargets(groundings[b] ?? [], cached.w, L, G);
        placeTarget.set(p.target, b * L * G * G);
        placeWeight.set(p.weight, b * L);
      }
    }
    const ls = logSnrOf(o.schedule ?? "cosine", times[b]);
    const as = alphaSigma(ls);
    [alpha[b], sigma[b], t[b], weight[b]] = [as.alpha, as.sigma, times[b], minSnrWeight(ls, o.minSnrGamma, o.parameterization ?? "eps")];
  }
  const feeds: Record<string, HostTensor> = {
    x0: { data: x0, shape: [B, 3, S, S] }, noise: { data: rng.normal(x0.length), shape: [B, 3, S, S] },
    alpha: { data: alpha, shape: [B] }, sigma: { data: sigma, shape: [B] }, t: { data: t, shape: [B] }, weight: { data: weight, shape: [B] },
    text: { data: text, shape: [B, L, D] }, mask: { data: mask, shape: [B, L] },
  };
  if (o.grounding) {
    feeds.placeTarget = { data: placeTarget, shape: [B, L, G * G] };
    feeds.placeWeight = { data: placeWeight, shape: [B, L] };
  }
  if (c.lowResCond) {
    const low = S / factor;
    const lowImgs = new Float32Array(B * 3 * low * low);
    for (let b = 0; b < B; b++) lowImgs.set(downsampleArea(x0.subarray(b * 3 * S * S, (b + 1) * 3 * S * S), 3, S, S / low), b * 3 * low * low);
    const levels = Array.from(rng.uniform(B));
    const up = augmentLowRes(resizeBilinear(lowImgs, B * 3, low, S), levels, rng);
    feeds.lowRes = { data: up, shape: [B, 3, S, S] };
    feeds.augLevel = { data: Float32Array.from(levels), shape: [B] };
  }
  return feeds;
}

export async function trainStage(o: StageTrainOptions): Promise<StageTrainResult> {
  const c = o.unet.config;
  if (c.lowResCond && !(o.lowResSize && c.imageSize % o.lowResSize === 0)) {
    throw new ValueError(`trainStage lowResSize: a super-resolution stage needs a size dividing ${c.imageSize}, got ${o.lowResSize}`);
  }
  if (o.cropSize !== undefined) {
    const factor = c.lowResCond ? c.imageSize / (o.lowResSize as number) : 1;
    if (!(Number.isInteger(o.cropSize) && o.cropSize >= 8 && o.cropSize <= c.imageSize && o.cropSize % factor === 0 && o.cropSize % 2 ** (c.channelMults.length - 1) === 0)) {
      throw new ValueError(`trainStage cropSize: expected an integer from 8 to ${c.imageSize} divisible by ${factor} and by ${2 ** (c.channelMults.length - 1)}, got ${o.cropSize}`);
    }
  }
  if (c.textDim !== o.encoder.dim) throw new ValueError(`trainStage: the U-Net expects text width ${c.textDim}, the encoder gives ${o.encoder.dim}`);
  if (o.grounding !== undefined && !(Number.isFinite(o.grounding) && o.grounding >= 0)) throw new ValueError(`trainStage grounding: expected a loss weight >= 0, got ${o.grounding}`);
  if (o.grounding && !o.unet.placement) throw new ValueError("trainStage grounding: the U-Net has no token placement to ground; add \"tokenPlacement\": 8 to its config or remove \"grounding\"");
  if (o.grounding && !o.encoder.wordTokens) throw new ValueError("trainStage grounding: the text encoder cannot say which tokens each word has (wordTokens); use a T5 encoder or remove \"grounding\"");
  const param = o.parameterization ?? "eps";
  const trainer = await TrainStep.create({
    model: o.unet, batch: objectiveInputs(o.unet, o.encoder.maxLength, o.cropSize, !!o.grounding),
    loss: (b) => {
      if (!o.grounding) return diffusionLoss(o.unet, b, param);
      const context = o.unet.contextText(b.text, b.mask); // the text path once, for both losses
      return add(diffusionLoss(o.unet, b, param, true, context), mul(groundingLoss(o.unet, b, context), o.grounding));
    },
    optimizer: { lr: o.lr, weightDecay: o.weightDecay ?? 0, clipNorm: o.clipNorm ?? 1, emaDecay: o.emaDecay, lrScales: o.lrScales },
    seed: o.seed,
  });
  const lrAt = lrSchedule({ lr: o.lr, warmupSteps: Math.min(o.warmupSteps ?? 0, o.steps), totalSteps: o.steps, schedule: o.lrDecay ?? "cosine",
    restarts: o.lrRestarts, restartScale: o.lrRestartScale });
  const losses: number[] = [];
  if (o.checkpointDir) {
    const found = await loadLatestCheckpoint(o.checkpointDir);
    if (found) {
      const st = found.data.state as { losses: number[] };
      o.unet.loadStateDict(found.data.tensors.model);
      const flat = (g: string) => new Map([...(found.data.tensors[g] ?? new Map()).entries()].map(([k, v]) => [k, v.data]));
      trainer.restore({ step: found.step, rng: (found.data.state as { rng: { key: [number, number]; counter: number } }).rng, m: flat("adam_m"), v: flat("adam_v"), ema: flat("ema") });
      losses.push(...st.losses);
    }
  }
  const textCache = new Map<string, { e: Float32Array; m: Float32Array; w?: number[][] }>();
  const last = Math.min(o.steps, o.stopAt ?? o.steps);
  while (trainer.stepCount < last) {
    const step = trainer.stepCount + 1;
    const t0 = performance.now();
    const feeds = await makeBatch(o, step, textCache);
    const r = await trainer.step(feeds as never, lrAt(step));
    losses.push(r.loss);
    o.onLog?.({ step, loss: r.loss, gradNorm: r.gradNorm, lr: lrAt(step), imagesPerSecond: o.batch / ((performance.now() - t0) / 1000) });
    if (o.checkpointDir && (step % (o.checkpointEvery ?? 100) === 0 || step === last)) {
      const st = trainer.state();
      const asGroup = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, { shape: [v.length], data: v }]));
      await saveCheckpoint(o.checkpointDir, step, {
        tensors: { model: o.unet.stateDict(), adam_m: asGroup(st.m), adam_v: asGroup(st.v), ema: asGroup(trainer.emaWeights()) },
        // emaWarmup: the EMA here used the warmed-up decay (older checkpoints' EMA started from the init weights).
        state: { step, rng: st.rng, losses, emaWarmup: true },
      }, { keep: o.keep ?? 3 });
    }
    await o.onStep?.(step);
  }
  return { losses, trainer: trainer as unknown as TrainStep<Record<string, never>> };
}

/** A share of training times drawn from the top of the noise range, [from, 1]. */
export interface HighNoise { share: number; from: number }

/**
 * A batch's diffusion times: uniform in [0, 1], or, with `high`, each one with probability `share` uniform in
 * [from, 1]. Where a layout is decided (at the top of the noise range, where x_t no longer shows where the
 * objects are: on 32 px scenes of flat shapes, t > ~0.95 of the cosine schedule) uniform times put only a few
 * percent of the samples; the rest of the range keeps its relative weights. Without `high` (or at share 0) the
 * draws are exactly those of earlier runs.
 */
export function drawTimes(rng: Rng, B: number, high?: HighNoise): Float32Array {
  const times = rng.uniform(B);
  if (!high || high.share === 0) return times;
  const pick = rng.uniform(B);
  for (let b = 0; b < B; b++) if (pick[b] < high.share) times[b] = high.from + (1 - high.from) * times[b];
  return times;
}

/**
 * One caption's grounding targets for a G x G token placement: for every token of a word that names a thing,
 * the share of the thing's squares (all its copies) that falls in each place, and weight 1; other tokens 0.
 */
export function placeTargets(groundings: readonly Grounding[], wordTokens: readonly number[][], L: number, G: number): { target: Float32Array; weight: Float32Array } {
  const target = new Float32Array(L * G * G), weight = new Float32Array(L);
  const overlap = (a0: number, a1: number, b0: number, b1: number) => Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
  for (const g of groundings) {
    const dist = new Float32Array(G * G);
    let total = 0;
    for (const box of g.boxes) {
      const [x0, x1, y0, y1] = [box.x - box.size / 2, box.x + box.size / 2, box.y - box.size / 2, box.y + box.size / 2];
      for (let gy = 0; gy < G; gy++) {
        for (let gx = 0; gx < G; gx++) {
          const a = overlap(x0, x1, gx / G, (gx + 1) / G) * overlap(y0, y1, gy / G, (gy + 1) / G);
          dist[gy * G + gx] += a;
          total += a;
        }
      }
    }
    if (!(total > 0)) continue;
    for (let i = 0; i < dist.length; i++) dist[i] /= total;
    for (const w of g.words) {
      for (const p of wordTokens[w] ?? []) {
        if (p >= L) continue;
        target.set(dist, p * G * G);
        weight[p] = 1;
      }
    }
  }
  return { target, weight };
}
