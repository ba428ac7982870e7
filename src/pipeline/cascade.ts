// The Imagen cascade (DESIGN.md section 3), read as numbered steps: 1. encode the prompts (and the negative
// prompt or the empty condition), 2. sample the base stage from noise, 3. for each SR stage, upsample the
// previous images, noise-augment them at the chosen level and sample conditioned on them.
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { Thresholding } from "../diffusion/guidance.js";
import { augmentLowRes, resizeBilinear } from "../diffusion/noise-aug.js";
import { checkSteps, defaultSteps, samplerByName, type SamplerName } from "../diffusion/samplers.js";
import type { TextEncoder } from "../text/encoder.js";
import type { SessionOptions } from "../runtime/session.js";
import { StageDenoiser, type StageSpec } from "./stage-denoiser.js";

type PerStage<T> = T | T[];

export interface SampleOptions {
  prompts: string[];
  seed: number;
  steps?: PerStage<number>;
  guidance?: PerStage<number>;
  negativePrompt?: string;
  sampler?: SamplerName;
  thresholding?: Thresholding;
  /** Noise-augmentation level of each SR stage's low-res input, 0..1 (the paper likes 0.1-0.3 to look at). */
  augLevel?: PerStage<number>;
  /** Last stage to run (0-based, inclusive); default: all. */
  stopAtStage?: number;
  /** First stage to run; stages before it are skipped and `initImages` feed it. */
  startAtStage?: number;
  /** Images [B, 3, s, s] in [-1, 1] at the size the start stage conditions on. */
  initImages?: Float32Array;
  onProgress?: (p: { stage: number; step: number; steps: number }) => void;
}

export interface StageImages {
  stage: number;
  size: number;
  images: Float32Array; // [B, 3, size, size] in [-1, 1]
}

const pick = <T>(v: PerStage<T> | undefined, i: number, dflt: T): T => (v === undefined ? dflt : Array.isArray(v) ? (v[i] ?? v[v.length - 1]) : v);

export class Cascade {
  private denoisers: (StageDenoiser | null)[];
  constructor(readonly encoder: TextEncoder, readonly stages: StageSpec[], private readonly session?: SessionOptions) {
    if (stages.length === 0) throw new ValueError("Cascade: expected at least one stage");
    stages.forEach((s, i) => {
      if (s.unet.config.textDim !== encoder.dim) throw new ValueError(`Cascade stage ${i}: text width ${s.unet.config.textDim} != encoder width ${encoder.dim}`);
      if (i > 0 && s.unet.config.imageSize % stages[i - 1].unet.config.imageSize !== 0) {
        throw new ValueError(`Cascade stage ${i}: size ${s.unet.config.imageSize} is not a multiple of stage ${i - 1}'s ${stages[i - 1].unet.config.imageSize}`);
      }
      if ((i > 0) !== s.unet.config.lowResCond) throw new ValueError(`Cascade stage ${i}: ${i > 0 ? "super-resolution stages need lowResCond" : "the base stage must not take a low-res image"}`);
    });
    this.denoisers = stages.map(() => null);
  }

  private async denoiserFor(i: number): Promise<StageDenoiser> {
    this.denoisers[i] ??= await StageDenoiser.create(this.stages[i], this.encoder.maxLength, this.session);
    return this.denoisers[i] as StageDenoiser;
  }

  private check(o: SampleOptions): { start: number; stop: number } {
    if (!Array.isArray(o.prompts) || o.prompts.length === 0) throw new ValueError("sample prompts: expected at least one prompt");
    if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new ValueError(`sample seed: expected a non-negative integer, got ${o.seed}`);
    const start = o.startAtStage ?? 0, stop = o.stopAtStage ?? this.stages.length - 1;
    if (!(Number.isInteger(start) && Number.isInteger(stop) && 0 <= start && start <= stop && stop < this.stages.length)) {
      throw new ValueError(`sample stages: expected 0 <= startAtStage <= stopAtStage <= ${this.stages.length - 1}, got ${start}..${stop}`);
    }
    for (let i = start; i <= stop; i++) {
      checkSteps(pick(o.steps, i, 1));
      const w = pick(o.guidance, i, 1);
      if (!Number.isFinite(w) || w < 0) throw new ValueError(`guidance (stage ${i}): expected a finite number >= 0, got ${w}`);
      const a = pick(o.augLevel, i, 0);
      if (!(a >= 0 && a <= 1)) throw new ValueError(`augLevel (stage ${i}): expected 0 <= level <= 1, got ${a}`);
    }
    if (start > 0) {
      const s = this.stages[start - 1].unet.config.imageSize;
      if (!o.initImages || o.initImages.length !== o.prompts.length * 3 * s * s) {
        throw new ValueError(`sample initImages: starting at stage ${start} needs ${o.prompts.length} images of 3x${s}x${s}`);
      }
    }
    samplerByName(o.sampler ?? "dpmpp2m");
    return { start, stop };
  }

  async sample(o: SampleOptions): Promise<StageImages[]> {
    const { start, stop } = this.check(o);
    const B = o.prompts.length;
    // 1. Text: the prompts, and the unconditional input (the negative prompt, or an empty caption with a cleared mask).
    const cond = await this.encoder.encode(o.prompts);
    const neg = o.negativePrompt ? await this.encoder.encode(o.prompts.map(() => o.negativePrompt as string)) : null;
    const uncond = neg ? { text: neg.embeddings, mask: neg.mask } : { text: new Float32Array(cond.embeddings.length), mask: new Float32Array(cond.mask.length) };
    const rng = new Rng(o.seed);
    const samplerName = o.sampler ?? "dpmpp2m";
    const out: StageImages[] = [];
    let prev = o.initImages ?? null;
    for (let i = start; i <= stop; i++) {
      const spec = this.stages[i];
      const S = spec.unet.config.imageSize;
      const stageRng = rng.split(`stage:${i}`);
      // 2./3. The low-res condition for SR stages: bilinear upsampling, then noise augmentation.
      let lowRes: Float32Array | undefined;
      const augLevel = pick(o.augLevel, i, 0);
      if (i > 0 && prev) {
        const from = Math.round(Math.sqrt(prev.length / (3 * B)));
        lowRes = augmentLowRes(resizeBilinear(prev, 3 * B, from, S), Array(B).fill(augLevel), stageRng.split("aug"));
      }
      const steps = pick(o.steps, i, defaultSteps[samplerName]);
      const denoise = (await this.denoiserFor(i)).denoiser({
        batch: B, cond: { text: cond.embeddings, mask: cond.mask }, uncond, textLen: this.encoder.maxLength,
        guidance: pick(o.guidance, i, 1), thresholding: o.thresholding ?? { kind: "dynamic", percentile: 99.5 }, lowRes, augLevel,
      });
      const x = stageRng.split("init").normal(B * 3 * S * S);
      const images = await samplerByName(samplerName)(x, denoise, {
        steps, schedule: spec.schedule, rng: stageRng.split("sampler"),
        onStep: (step, total) => o.onProgress?.({ stage: i, step, steps: total }),
      });
      for (let k = 0; k < images.length; k++) images[k] = Math.max(-1, Math.min(1, images[k]));
      out.push({ stage: i, size: S, images });
      prev = images;
    }
    return out;
  }

  dispose(): void {
    this.denoisers.forEach((d) => d?.dispose());
    this.denoisers = this.stages.map(() => null);
  }
}
