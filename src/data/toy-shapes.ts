// A toy captioned dataset rendered on the fly: one coloured shape (square, circle, triangle) on a light
// or dark background, with template captions. Deterministic from (seed, index); low- and high-res pairs
// come from the same scene (the low-res image is the area average of the high-res one).
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
export { downsampleArea } from "../diffusion/noise-aug.js";

export const toyColors: Record<string, [number, number, number]> = {
  red: [0.9, 0.1, 0.1], green: [0.1, 0.75, 0.2], blue: [0.15, 0.25, 0.95], yellow: [0.95, 0.85, 0.1],
  purple: [0.6, 0.2, 0.8], orange: [1.0, 0.55, 0.05],
};
export const toyShapes = ["square", "circle", "triangle"] as const;
export type ToyShape = (typeof toyShapes)[number];

export interface ToyScene {
  color: string;
  shape: ToyShape;
  cx: number; cy: number; r: number; // in [0, 1] image units
  background: [number, number, number];
  caption: string;
}

const templates = ["a {c} {s}", "a {s} that is {c}", "one {c} {s}", "a picture of a {c} {s}"];

export function toyScene(seed: number, index: number, options: { exclude?: (c: string, s: ToyShape) => boolean } = {}): ToyScene {
  const rng = new Rng(seed).split(index);
  const colors = Object.keys(toyColors);
  for (let attempt = 0; ; attempt++) {
    const color = colors[rng.int(colors.length)];
    const shape = toyShapes[rng.int(toyShapes.length)];
    if (options.exclude?.(color, shape) && attempt < 1000) continue;
    const r = 0.22 + 0.12 * rng.uniform(1)[0];
    const [cx, cy] = [r + (1 - 2 * r) * rng.uniform(1)[0], r + (1 - 2 * r) * rng.uniform(1)[0]];
    const g = rng.uniform(1)[0] < 0.5 ? 0.92 : 0.12;
    const caption = templates[rng.int(templates.length)].replace("{c}", color).replace("{s}", shape);
    return { color, shape, cx, cy, r, background: [g, g, g], caption };
  }
}

function inside(s: ToyScene, x: number, y: number): boolean {
  const [dx, dy] = [x - s.cx, y - s.cy];
  if (s.shape === "square") return Math.abs(dx) <= s.r * 0.85 && Math.abs(dy) <= s.r * 0.85;
  if (s.shape === "circle") return dx * dx + dy * dy <= s.r * s.r;
  // upward triangle inscribed in the radius
  return dy <= s.r * 0.7 && dy >= -s.r && Math.abs(dx) <= ((dy + s.r) / 1.7) * 1.0;
}

/** Renders a scene as CHW floats in [-1, 1], 4x4 supersampled. */
export function renderToy(s: ToyScene, size: number): Float32Array {
  if (!Number.isInteger(size) || size < 4) throw new ValueError(`renderToy size: expected an integer >= 4, got ${size}`);
  const out = new Float32Array(3 * size * size);
  const fg = toyColors[s.color];
  const ss = 4;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let cover = 0;
      for (let a = 0; a < ss; a++) for (let b = 0; b < ss; b++) if (inside(s, (j + (b + 0.5) / ss) / size, (i + (a + 0.5) / ss) / size)) cover++;
      const f = cover / (ss * ss);
      for (let c = 0; c < 3; c++) out[(c * size + i) * size + j] = 2 * (f * fg[c] + (1 - f) * s.background[c]) - 1;
    }
  }
  return out;
}

/** The named toy colour nearest to an image's dominant non-background colour. */
export function dominantToyColor(x: Float32Array, size: number): string {
  const n = size * size;
  const px = (k: number): [number, number, number] => [0, 1, 2].map((c) => (x[c * n + k] + 1) / 2) as [number, number, number];
  const acc = [0, 0, 0];
  let count = 0;
  for (let k = 0; k < n; k++) {
    const [r, g, b] = px(k);
    const sat = Math.max(r, g, b) - Math.min(r, g, b);
    if (sat < 0.3) continue; // grey background
    acc[0] += r; acc[1] += g; acc[2] += b; count++;
  }
  if (count === 0) return "none";
  const mean = acc.map((v) => v / count);
  let best = "none", bestD = Infinity;
  for (const [name, rgb] of Object.entries(toyColors)) {
    const d = rgb.reduce((s, v, i) => s + (v - mean[i]) ** 2, 0);
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}
