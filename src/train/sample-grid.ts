// Periodic sample grids while a stage trains: the stage's current weights sample a few fixed prompts (an SR
// stage upsamples the dataset's own low-res images of them), written as one PNG row per prompt: for SR
// stages the bilinear low-res input beside the output.
import { writeFile } from "node:fs/promises";
import { Rng } from "../util/rng.js";
import { augmentLowRes, resizeBilinear } from "../diffusion/noise-aug.js";
import { samplerByName } from "../diffusion/samplers.js";
import { imageToPng } from "../data/png.js";
import { StageDenoiser, type StageSpec } from "../pipeline/stage-denoiser.js";
import type { TextEncoder } from "../text/encoder.js";
import type { CaptionedDataset } from "./stage-trainer.js";

export interface GridOptions {
  spec: StageSpec; encoder: TextEncoder; dataset: CaptionedDataset; lowResSize?: number;
  /** Dataset items to show (their captions, and for SR their low-res images). */
  items: number[]; steps?: number; guidance?: number; augLevel?: number; seed?: number;
}

/** Samples the grid and returns its PNG bytes ([rows = items] x [low-res input |] output). */
export async function sampleGrid(o: GridOptions): Promise<Uint8Array> {
  const S = o.spec.unet.config.imageSize;
  const B = o.items.length;
  const items = o.items.map((i) => o.dataset.item(i));
  const cond = await o.encoder.encode(items.map((it) => it.caption));
  let lowRes: Float32Array | undefined;
  const rng = new Rng(o.seed ?? 0);
  if (o.lowResSize) {
    const low = new Float32Array(B * 3 * o.lowResSize ** 2);
    items.forEach((it, b) => low.set(it.image(o.lowResSize as number), b * 3 * (o.lowResSize as number) ** 2));
    lowRes = resizeBilinear(low, 3 * B, o.lowResSize, S);
  }
  const denoiser = await StageDenoiser.create(o.spec, o.encoder.maxLength);
  try {
    const augLevel = o.augLevel ?? 0.1;
    const denoise = denoiser.denoiser({
      batch: B, cond: { text: cond.embeddings, mask: cond.mask }, uncond: { text: new Float32Array(cond.embeddings.length), mask: new Float32Array(cond.mask.length) },
      textLen: o.encoder.maxLength, guidance: o.guidance ?? 3, thresholding: { kind: "dynamic", percentile: 99.5 },
      lowRes: lowRes && augmentLowRes(lowRes.slice(), Array(B).fill(augLevel), rng.split("aug")), augLevel,
    });
    const out = await samplerByName("dpmpp2m")(rng.split("init").normal(B * 3 * S * S), denoise, { steps: o.steps ?? 20, schedule: o.spec.schedule, rng: rng.split("sampler") });
    const cols = lowRes ? 2 : 1;
    const [H, W] = [B * S, cols * S];
    const grid = new Float32Array(3 * H * W);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < S; y++) {
          const row = (c * H + b * S + y) * W;
          const src = ((b * 3 + c) * S + y) * S;
          if (lowRes) grid.set(lowRes.subarray(src, src + S), row);
          for (let x = 0; x < S; x++) grid[row + (cols - 1) * S + x] = Math.max(-1, Math.min(1, out[src + x]));
        }
      }
    }
    return imageToPng(grid, H, W, { captions: items.map((it) => it.caption).join("\n") });
  } finally {
    denoiser.dispose();
  }
}

export async function writeSampleGrid(path: string, o: GridOptions): Promise<void> {
  await writeFile(path, await sampleGrid(o));
}
