// Captioned-image datasets for training: the toy shapes rendered on the fly, or a user's own images listed
// in a JSONL file ({"image": "relative/or/absolute.png", "caption": "..."} per line). Images are centre-
// cropped to a square and resized to each stage's size; a bad line or a corrupt image is an error naming
// the file, the line and the fix.
import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { ImagenError } from "../util/errors.js";
import { downsampleArea, resizeBilinear } from "../diffusion/noise-aug.js";
import type { CaptionedDataset } from "../train/stage-trainer.js";
import { pngToImage } from "./png.js";
import { renderToy, toyScene } from "./toy-shapes.js";
import { kindShares, randomScene, renderScene, sceneGrounding, type SceneKind } from "./scenes.js";

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
export function sceneDataset(seed: number, kindWeights?: Partial<Record<SceneKind, number>>): CaptionedDataset {
  if (kindWeights) kindShares(kindWeights); // fail at construction, not at the first batch
  return {
    item: (i) => {
      const s = randomScene(seed, i, { kindWeights });
      return { caption: s.caption, image: (n) => renderScene(s, n), grounding: sceneGrounding(s) };
    },
  };
}

/** One image and its caption; `where` names the line or file that listed it, for errors. */
interface Entry { image: string; caption: string; where: string; fix: string }

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
    entries.push({ image: isAbsolute(o.image) ? o.image : resolve(dirname(path), o.image), caption: o.caption, where, fix: "fix or remove that line" });
  });
  if (entries.length === 0) throw new DatasetError(`dataset ${path}: no entries; add lines like {"image": "cat.png", "caption": "a cat"}`);
  return imageListDataset(entries);
}

/**
 * A folder of PNG images, each captioned by the text file of the same name (`cat.png` + `cat.txt`), the
 * layout A1111 and kohya-style trainers use. An image without a caption file is an error naming both.
 */
export function folderDataset(dir: string): CaptionedDataset & { size: number } {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new DatasetError(`dataset folder ${dir}: cannot list it (${(e as Error).message}); give a folder of name.png + name.txt pairs`);
  }
  const entries: Entry[] = [];
  for (const name of names.filter((n) => /\.png$/i.test(n))) {
    const image = join(dir, name), captionFile = join(dir, name.replace(/\.png$/i, ".txt"));
    let caption: string;
    try {
      caption = readFileSync(captionFile, "utf8").trim();
    } catch {
      throw new DatasetError(`dataset folder ${dir}: ${name} has no caption file ${basename(captionFile)}; write its caption there or remove the image`);
    }
    if (caption === "") throw new DatasetError(`dataset folder ${dir}: ${basename(captionFile)} is empty; write the caption of ${name} in it`);
    entries.push({ image, caption, where: `dataset folder ${dir}`, fix: "fix or remove that file" });
  }
  if (entries.length === 0) throw new DatasetError(`dataset folder ${dir}: no PNG images; add name.png + name.txt pairs`);
  return imageListDataset(entries);
}

function imageListDataset(entries: Entry[]): CaptionedDataset & { size: number } {
  const cache = new Map<number, { x: Float32Array; size: number }>();
  const load = (k: number) => {
    let img = cache.get(k);
    if (!img) {
      const e = entries[k];
      let decoded;
      try {
        decoded = pngToImage(readFileSync(e.image));
      } catch (err) {
        throw new DatasetError(`${e.where}: image ${e.image} does not load (${(err as Error).message}); ${e.fix} (PNG only)`);
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
