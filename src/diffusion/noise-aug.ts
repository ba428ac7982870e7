// Noise-conditioning augmentation for super-resolution stages (Imagen section 2.5): the low-res image is
// upsampled bilinearly and noised to a level in [0, 1] (cosine schedule); the level is given to the U-Net.
import { ValueError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import { alphaSigma, logSnrOf } from "./schedule.js";

/** Bilinear resize of a batch of CHW images (half-pixel centres, edge clamp: PyTorch align_corners=False). */
export function resizeBilinear(x: Float32Array, planes: number, from: number, to: number): Float32Array {
  if (x.length !== planes * from * from) throw new ValueError(`resizeBilinear: expected ${planes * from * from} values, got ${x.length}`);
  const out = new Float32Array(planes * to * to);
  const scale = from / to;
  const coord = (i: number) => {
    const s = Math.min(from - 1, Math.max(0, (i + 0.5) * scale - 0.5));
    const i0 = Math.floor(s);
    return [i0, Math.min(from - 1, i0 + 1), s - i0] as const;
  };
  const cols = Array.from({ length: to }, (_, j) => coord(j));
  for (let p = 0; p < planes; p++) {
    const src = p * from * from;
    for (let i = 0; i < to; i++) {
      const [y0, y1, fy] = coord(i);
      for (let j = 0; j < to; j++) {
        const [x0, x1, fx] = cols[j];
        const top = x[src + y0 * from + x0] * (1 - fx) + x[src + y0 * from + x1] * fx;
        const bot = x[src + y1 * from + x0] * (1 - fx) + x[src + y1 * from + x1] * fx;
        out[(p * to + i) * to + j] = top * (1 - fy) + bot * fy;
      }
    }
  }
  return out;
}

/** Area-average downsampling of CHW images by an integer factor (exact low-res partners). */
export function downsampleArea(x: Float32Array, channels: number, size: number, factor: number): Float32Array {
  if (size % factor !== 0) throw new ValueError(`downsampleArea: size ${size} is not a multiple of ${factor}`);
  const s = size / factor;
  const out = new Float32Array(channels * s * s);
  for (let c = 0; c < channels; c++) for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) {
    let acc = 0;
    for (let a = 0; a < factor; a++) for (let b = 0; b < factor; b++) acc += x[(c * size + i * factor + a) * size + j * factor + b];
    out[(c * s + i) * s + j] = acc / (factor * factor);
  }
  return out;
}

/** Noises `x` (one sample per `x.length / levels.length` values) to each sample's level, in place. */
export function augmentLowRes(x: Float32Array, levels: readonly number[], rng: Rng): Float32Array {
  const n = x.length / levels.length;
  const z = rng.normal(x.length);
  levels.forEach((level, b) => {
    if (!(level >= 0 && level <= 1)) throw new ValueError(`augmentation level: expected 0 <= level <= 1, got ${level}`);
    if (level === 0) return;
    const { alpha, sigma } = alphaSigma(logSnrOf("cosine", level));
    for (let i = b * n; i < (b + 1) * n; i++) x[i] = alpha * x[i] + sigma * z[i];
  });
  return x;
}
