// Captioned-image datasets for training: the toy shapes rendered on the fly, or a user's own images listed
// in a JSONL file ({"image": "relative/or/absolute.png", "caption": "..."} per line). Images are centre-
// cropped to a square and resized to each stage's size; a bad line or a corrupt image is an error naming
// the file, the line and the fix.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { ImagenError } from "../util/errors.js";
import { downsampleArea, resizeBilinear } from "../diffusion/noise-aug.js";
import type { CaptionedDataset } from "../train/stage-trainer.js";
import { pngToImage } from "./png.js";
import { renderToy, toyScene } from "./toy-shapes.js";
import { randomScene, renderScene } from "./scenes.js";

export class DatasetError extends ImagenError {}

export function toyDataset(seed: number): CaptionedDataset {
  return {
    item: (i) => {
      const s = toyScene(seed, i);
      return { caption: s.caption, image: (n) => renderToy(s, n) };
    },
  };
}

/** Procedural captioned scenes (src/data/scenes.ts); held-out evaluation combinations never appear. */
export function sceneDataset(seed: number): CaptionedDataset {
  return {
    item: (i) => {
      const s = randomScene(seed, i);
      return { caption: s.caption, image: (n) => renderScene(s, n) };
    },
  };
}

interface Entry { image: string; caption: string; line: number }

/** Centre square crop of a CHW image. */
function centreSquare(x: Float32Array, h: number, w: number): { x: Float32Array; size: number } {
  if (h === w) return { x, size: h };
  const s = Math.min(h, w);
  const [y0, x0] = [Math.floor((h - s) / 2), Math.floor((w - s) / 2)];
  const out = new Float32Array(3 * s * s);
  for (let c = 0; c < 3; c++) for (let y = 0; y < s; y++) out.set(x.subarray((c * h + y0 + y) * w + x0, (c * h + y0 + y) * w + x0 + s), (c * s + y) * s);
  return { x: out, size: s };
}

/** Resizes a square CHW image: area averaging for whole-number shrink factors, else bilinear. */
export function resizeSquare(x: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return x;
  if (from > to && from % to === 0) return downsampleArea(x, 3, from, from / to);
  return resizeBilinear(x, 3, from, to);
}

export function jsonlDataset(path: string): CaptionedDataset & { size: number } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new DatasetError(`dataset ${path}: cannot read it (${(e as Error).message}); give a JSONL file with one {"image", "caption"} per line`);
  }
  const entries: Entry[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = `${path} line ${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new DatasetError(`${where}: not JSON (${(e as Error).message}); each line must be {"image": "file.png", "caption": "..."}`);
    }
    const o = v as Record<string, unknown>;
    if (typeof o !== "object" || o === null || typeof o.image !== "string" || typeof o.caption !== "string" || o.caption.trim() === "") {
      throw new DatasetError(`${where}: expected {"image": "file.png", "caption": "non-empty text"}, got ${raw.slice(0, 120)}`);
    }
    entries.push({ image: isAbsolute(o.image) ? o.image : resolve(dirname(path), o.image), caption: o.caption, line: i + 1 });
  });
  if (entries.length === 0) throw new DatasetError(`dataset ${path}: no entries; add lines like {"image": "cat.png", "caption": "a cat"}`);
  const cache = new Map<number, { x: Float32Array; size: number }>();
  const load = (k: number) => {
    let img = cache.get(k);
    if (!img) {
      const e = entries[k];
      let decoded;
      try {
        decoded = pngToImage(readFileSync(e.image));
      } catch (err) {
        throw new DatasetError(`${path} line ${e.line}: image ${e.image} does not load (${(err as Error).message}); fix or remove that line (PNG only)`);
      }
      img = centreSquare(decoded.x, decoded.height, decoded.width);
      cache.set(k, img);
    }
    return img;
  };
  return {
    size: entries.length,
    item: (i) => {
      const k = i % entries.length;
      return { caption: entries[k].caption, image: (n) => { const img = load(k); return resizeSquare(img.x, img.size, n); } };
    },
  };
}
