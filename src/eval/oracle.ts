// The scene oracle: given an image and the scene its caption describes, decide per attribute whether the
// image shows it (background colour; each object's identity, colour and count; left/right/above/below;
// big/small; the word on a sign). It segments the image against the border colour into connected blobs,
// names each blob by template matching against the scene vocabulary (shapes in every colour, the emoji
// art), and reads sign words by sampling the block font's 5x7 cells.
import { ValueError } from "../util/errors.js";
import {
  backgroundColors, emojiByName, emojiObjects, emojiSprite, insideShape, objectColors, shapeNames, signColor, thingKey,
  type Claim, type RGB, type Scene, type ShapeName, type Thing,
} from "../data/scenes.js";
import { fontLetters, glyphHeight, glyphs, glyphWidth } from "../data/pixel-font.js";

export interface Blob {
  area: number; cx: number; cy: number; x0: number; y0: number; x1: number; y1: number;
  /** Median colour of the blob's pixels, in [0, 1]. */
  color: RGB;
  /** Best-matching vocabulary thing and its template distance. */
  thing: Thing; distance: number;
  isSign: boolean;
}

export interface Analysis { size: number; background: string; backgroundRgb: RGB; blobs: Blob[] }
export type Attribute = "background" | "color" | "object" | "count" | "relation" | "size" | "text";
export interface AttributeResult { attribute: Attribute; ok: boolean; detail: string }

const T = 16; // template side
const dist2 = (a: RGB, b: RGB) => (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2;
const nearest = (rgb: RGB, table: Record<string, RGB>) => Object.entries(table).reduce((best, [n, c]) => (dist2(rgb, c) < dist2(rgb, table[best]) ? n : best), Object.keys(table)[0]);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};

/** Nearest named object colour to an RGB value. */
export const colorName = (rgb: RGB) => nearest(rgb, objectColors);

/** An emoji template: the sprite cropped to its ink, resized to T x T, as RGB and alpha. */
interface Template { rgb: Float32Array; alpha: Float32Array }
const emojiTemplates = new Map<string, Template>();
function emojiTemplate(name: string): Template {
  let t = emojiTemplates.get(name);
  if (t) return t;
  const px = 64, s = emojiSprite(emojiByName[name].icon, px);
  let [x0, y0, x1, y1] = [px, px, -1, -1];
  for (let i = 0; i < px; i++) for (let j = 0; j < px; j++) if (s[(i * px + j) * 4 + 3] > 64) [x0, y0, x1, y1] = [Math.min(x0, j), Math.min(y0, i), Math.max(x1, j), Math.max(y1, i)];
  const rgb = new Float32Array(3 * T * T), alpha = new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      let [r, g, b, a, n] = [0, 0, 0, 0, 0];
      for (let u = 0; u < 4; u++) for (let v = 0; v < 4; v++) {
        const y = Math.min(y1, Math.floor(y0 + ((i + (u + 0.5) / 4) * (y1 - y0 + 1)) / T));
        const x = Math.min(x1, Math.floor(x0 + ((j + (v + 0.5) / 4) * (x1 - x0 + 1)) / T));
        const k = (y * px + x) * 4, al = s[k + 3] / 255;
        r += (al * s[k]) / 255; g += (al * s[k + 1]) / 255; b += (al * s[k + 2]) / 255; a += al; n++;
      }
      rgb[i * T + j] = r / n; rgb[T * T + i * T + j] = g / n; rgb[2 * T * T + i * T + j] = b / n; alpha[i * T + j] = a / n;
    }
  }
  t = { rgb, alpha };
  emojiTemplates.set(name, t);
  return t;
}

const shapeMasks = new Map<ShapeName, Float32Array>();
function shapeMask(shape: ShapeName): Float32Array {
  let m = shapeMasks.get(shape);
  if (m) return m;
  // The shape's ink bbox, sampled on a T x T grid with 4x4 supersampling.
  const hi = 256;
  let [x0, y0, x1, y1] = [1, 1, -1, -1];
  for (let i = 0; i < hi; i++) for (let j = 0; j < hi; j++) {
    const [x, y] = [(2 * (j + 0.5)) / hi - 1, (2 * (i + 0.5)) / hi - 1];
    if (insideShape(shape, x, y)) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  }
  m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
    let c = 0;
    for (let u = 0; u < 4; u++) for (let v = 0; v < 4; v++) if (insideShape(shape, x0 + ((j + (v + 0.5) / 4) / T) * (x1 - x0), y0 + ((i + (u + 0.5) / 4) / T) * (y1 - y0))) c++;
    m[i * T + j] = c / 16;
  }
  shapeMasks.set(shape, m);
  return m;
}

/** Crops [x0, x1] x [y0, y1] (inclusive) of an HWC-less RGB image to T x T by box sampling. */
function cropResize(rgb: Float32Array[], size: number, b: { x0: number; y0: number; x1: number; y1: number }): Float32Array {
  const out = new Float32Array(3 * T * T);
  const [w, h] = [b.x1 - b.x0 + 1, b.y1 - b.y0 + 1];
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
    for (let c = 0; c < 3; c++) {
      let acc = 0;
      for (let u = 0; u < 3; u++) for (let v = 0; v < 3; v++) {
        const y = Math.min(size - 1, Math.floor(b.y0 + ((i + (u + 0.5) / 3) * h) / T)), x = Math.min(size - 1, Math.floor(b.x0 + ((j + (v + 0.5) / 3) * w) / T));
        acc += rgb[c][y * size + x];
      }
      out[c * T * T + i * T + j] = acc / 9;
    }
  }
  return out;
}

function classify(patch: Float32Array, color: RGB, bg: RGB, aspect: number): { thing: Thing; distance: number } {
  let best: { thing: Thing; distance: number } = { thing: { kind: "shape", shape: "circle", color: colorName(color) }, distance: Infinity };
  const score = (tpl: (c: number, k: number) => number, tplAspect: number) => {
    let d = 0;
    for (let c = 0; c < 3; c++) for (let k = 0; k < T * T; k++) d += (patch[c * T * T + k] - tpl(c, k)) ** 2;
    return d / (3 * T * T) + 0.05 * Math.log(aspect / tplAspect) ** 2;
  };
  const cname = colorName(color), ccol = objectColors[cname];
  for (const shape of shapeNames) {
    const m = shapeMask(shape);
    const d = score((c, k) => m[k] * ccol[c] + (1 - m[k]) * bg[c], shape === "triangle" ? 1 / 0.98 : 1);
    if (d < best.distance) best = { thing: { kind: "shape", shape, color: cname }, distance: d };
  }
  for (const e of emojiObjects) {
    const t = emojiTemplate(e.name);
    const d = score((c, k) => t.rgb[c * T * T + k] + (1 - t.alpha[k]) * bg[c], 1);
    if (d < best.distance) best = { thing: { kind: "emoji", object: e.name }, distance: d };
  }
  return best;
}

/** Segments an image (CHW in [-1, 1], square) into blobs against its border colour and names each blob. */
export function analyze(image: Float32Array, size: number): Analysis {
  if (image.length !== 3 * size * size) throw new ValueError(`oracle: expected a 3x${size}x${size} image (${3 * size * size} values), got ${image.length}`);
  const n = size * size;
  const rgb = [0, 1, 2].map((c) => Float32Array.from(image.subarray(c * n, (c + 1) * n), (v) => Math.min(1, Math.max(0, (v + 1) / 2))));
  const px = (k: number): RGB => [rgb[0][k], rgb[1][k], rgb[2][k]];
  const border: number[] = [];
  for (let i = 0; i < size; i++) border.push(i, (size - 1) * size + i, i * size, i * size + size - 1);
  const bgRgb: RGB = [0, 1, 2].map((c) => median(border.map((k) => rgb[c][k]))) as RGB;
  const fg = new Uint8Array(n);
  for (let k = 0; k < n; k++) fg[k] = dist2(px(k), bgRgb) > 0.03 ? 1 : 0;
  // Dilate so the parts of one emoji (an apple's leaf) join, then label 8-connected components.
  const r = Math.max(1, Math.round(size / 64));
  const dil = new Uint8Array(n);
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) {
    if (!fg[i * size + j]) continue;
    for (let a = Math.max(0, i - r); a <= Math.min(size - 1, i + r); a++) for (let b = Math.max(0, j - r); b <= Math.min(size - 1, j + r); b++) dil[a * size + b] = 1;
  }
  const label = new Int32Array(n).fill(-1);
  const blobs: Blob[] = [];
  const minArea = Math.max(3, Math.round(n * 0.004));
  for (let start = 0; start < n; start++) {
    if (!dil[start] || label[start] >= 0) continue;
    const id = blobs.length, stack = [start], members: number[] = [];
    label[start] = id;
    while (stack.length) {
      const k = stack.pop() as number;
      if (fg[k]) members.push(k);
      const [i, j] = [Math.floor(k / size), k % size];
      for (let a = -1; a <= 1; a++) for (let b = -1; b <= 1; b++) {
        const [y, x] = [i + a, j + b];
        if (y < 0 || x < 0 || y >= size || x >= size) continue;
        const q = y * size + x;
        if (dil[q] && label[q] < 0) {
          label[q] = id;
          stack.push(q);
        }
      }
    }
    blobs.push(blobFrom(members, size, rgb, bgRgb));
  }
  return { size, background: nearest(bgRgb, backgroundColors), backgroundRgb: bgRgb, blobs: blobs.filter((b) => b.area >= minArea) };
}

function blobFrom(members: number[], size: number, rgb: Float32Array[], bg: RGB): Blob {
  let [x0, y0, x1, y1, sx, sy] = [size, size, -1, -1, 0, 0];
  for (const k of members) {
    const [i, j] = [Math.floor(k / size), k % size];
    [x0, y0, x1, y1] = [Math.min(x0, j), Math.min(y0, i), Math.max(x1, j), Math.max(y1, i)];
    sx += j + 0.5; sy += i + 0.5;
  }
  // Median colour of the pixels that differ most from the background (the blob's interior, not its edges).
  const far = members.filter((k) => dist2([rgb[0][k], rgb[1][k], rgb[2][k]], bg) > 0.1);
  const use = far.length >= 3 ? far : members;
  const color = [0, 1, 2].map((c) => median(use.map((k) => rgb[c][k]))) as RGB;
  const area = members.length, box = { x0, y0, x1, y1 };
  // A sign: wider than tall, and mostly sign-coloured (within a tint, so a generated sign counts).
  const signLike = members.filter((k) => dist2([rgb[0][k], rgb[1][k], rgb[2][k]], signColor) < 0.05).length;
  const isSign = signLike > 0.35 * (x1 - x0 + 1) * (y1 - y0 + 1) && x1 - x0 > y1 - y0;
  const aspect = (x1 - x0 + 1) / (y1 - y0 + 1);
  const { thing, distance } = members.length ? classify(cropResize(rgb, size, box), color, bg, aspect) : { thing: { kind: "shape", shape: "circle", color: "red" } as Thing, distance: Infinity };
  return { area, cx: sx / Math.max(1, area) / size, cy: sy / Math.max(1, area) / size, x0, y0, x1, y1, color, thing, distance, isSign };
}

/**
 * Reads the block-letter word on the largest sign blob, or null when there is no sign. Every glyph of the
 * font spans all 5 x 7 of its cells, so the ink's bounding box is exactly the word's: its height gives the
 * cell size and its width the letter count. Locating the word by its ink rather than by the sign's edges
 * keeps the reading right when a generated sign is blurred, haloed or a pixel off; the ink threshold sits
 * half-way between the sign's own brightness and black, so a tinted sign reads as well as a clean one.
 */
export function readSign(image: Float32Array, size: number, analysis = analyze(image, size)): string | null {
  const signs = analysis.blobs.filter((b) => b.isSign).sort((a, b) => b.area - a.area);
  if (signs.length === 0) return null;
  const s = signs[0], n = size * size;
  const luma = (k: number) => (0.3 * (image[k] + 1) + 0.59 * (image[n + k] + 1) + 0.11 * (image[2 * n + k] + 1)) / 2;
  // The sign is glyphHeight + 4 cells tall; look for ink a cell inside its edges, away from any dark rim.
  const edge = Math.max(1, Math.round((s.y1 - s.y0 + 1) / (glyphHeight + 4)));
  const [bx0, by0, bx1, by1] = [s.x0 + edge, s.y0 + edge, s.x1 - edge, s.y1 - edge];
  if (bx1 - bx0 < glyphWidth || by1 - by0 < glyphHeight) return null;
  const inside: number[] = [];
  for (let y = by0; y <= by1; y++) for (let x = bx0; x <= bx1; x++) inside.push(luma(y * size + x));
  const paper = median(inside.filter((v) => v >= median(inside)));
  const thr = paper / 2;
  const ink = (x: number, y: number) => (x >= 0 && y >= 0 && x < size && y < size && luma(y * size + x) < thr ? 1 : 0);
  // Rows and columns holding at least half a cell of ink bound the word (a stray dark pixel does not).
  const minInk = Math.max(1, edge / 2);
  const rows: number[] = [], cols: number[] = [];
  for (let y = by0; y <= by1; y++) {
    let c = 0;
    for (let x = bx0; x <= bx1; x++) c += ink(x, y);
    if (c >= minInk) rows.push(y);
  }
  for (let x = bx0; x <= bx1; x++) {
    let c = 0;
    for (let y = by0; y <= by1; y++) c += ink(x, y);
    if (c >= minInk) cols.push(x);
  }
  if (rows.length === 0 || cols.length === 0) return "";
  const [ix0, ix1, iy0, iy1] = [cols[0], cols[cols.length - 1], rows[0], rows[rows.length - 1]];
  // Blur widens the ink box by up to a pixel a side: read with each trim and keep the best-fitting reading.
  let best = { word: "", distance: Infinity };
  for (const tx of [0, 1]) for (const ty of [0, 1]) {
    const [x0, x1, y0, y1] = [ix0 + tx, ix1 - tx, iy0 + ty, iy1 - ty];
    const cellY = (y1 - y0 + 1) / glyphHeight;
    const letters = Math.max(1, Math.round(((x1 - x0 + 1) / cellY + 1) / (glyphWidth + 1)));
    const cellX = (x1 - x0 + 1) / (letters * (glyphWidth + 1) - 1);
    let word = "", distance = 0;
    for (let l = 0; l < letters; l++) {
      const cells = new Uint8Array(glyphWidth * glyphHeight);
      for (let r = 0; r < glyphHeight; r++) for (let c = 0; c < glyphWidth; c++) {
        const [cx, cy] = [x0 + (l * (glyphWidth + 1) + c + 0.5) * cellX, y0 + (r + 0.5) * cellY];
        const [hx, hy] = [Math.max(0, Math.floor(cellX / 4)), Math.max(0, Math.floor(cellY / 4))];
        let inked = 0, cnt = 0;
        for (let y = Math.floor(cy) - hy; y <= Math.floor(cy) + hy; y++) for (let x = Math.floor(cx) - hx; x <= Math.floor(cx) + hx; x++) {
          inked += ink(x, y);
          cnt++;
        }
        cells[r * glyphWidth + c] = inked * 2 > cnt ? 1 : 0;
      }
      let ch = "?", d = Infinity;
      for (const f of fontLetters) {
        let e = 0;
        for (let k = 0; k < cells.length; k++) e += cells[k] !== glyphs[f][k] ? 1 : 0;
        if (e < d) [ch, d] = [f, e];
      }
      word += ch;
      distance += d;
    }
    if (distance / letters < best.distance) best = { word, distance: distance / letters };
  }
  return best.word;
}

const matches = (blob: Blob, t: Thing) =>
  t.kind === "emoji" ? blob.thing.kind === "emoji" && blob.thing.object === t.object : blob.thing.kind === "shape" && colorName(blob.color) === t.color;

/** The blobs that show a thing: emoji by identity, shapes by colour (their outline is checked separately). */
function blobsOf(a: Analysis, t: Thing): Blob[] {
  const shaped = (b: Blob) => (t.kind === "shape" && b.thing.kind === "shape" && b.thing.shape === t.shape ? 1 : 0);
  return a.blobs.filter((b) => !b.isSign && matches(b, t)).sort((x, y) => shaped(y) - shaped(x) || y.area - x.area);
}

/** Checks each attribute a scene's caption claims. `background`: also check the background colour. */
export function judge(image: Float32Array, size: number, scene: Pick<Scene, "claim" | "background">, options: { background?: boolean } = {}): AttributeResult[] {
  const a = analyze(image, size);
  const out: AttributeResult[] = [];
  if (options.background) out.push({ attribute: "background", ok: a.background === scene.background, detail: `background ${a.background}, want ${scene.background}` });
  const c: Claim = scene.claim;
  const identity = (t: Thing): AttributeResult => {
    const found = blobsOf(a, t);
    if (t.kind === "emoji") return { attribute: "object", ok: found.length > 0, detail: `${t.object}: ${found.length ? "found" : "missing"}` };
    const shaped = found.filter((b) => b.thing.kind === "shape" && b.thing.shape === t.shape);
    return { attribute: "object", ok: shaped.length > 0, detail: `${thingKey(t)}: ${found.length} blob(s) of that colour, ${shaped.length} of that shape` };
  };
  switch (c.category) {
    case "colors": {
      if (c.thing.kind === "shape") {
        const biggest = a.blobs.filter((b) => !b.isSign).sort((x, y) => y.area - x.area)[0];
        const got = biggest ? colorName(biggest.color) : "none";
        out.push({ attribute: "color", ok: got === c.thing.color, detail: `largest object ${got}, want ${c.thing.color}` });
      }
      out.push(identity(c.thing));
      break;
    }
    case "counting": {
      const n = blobsOf(a, c.thing).length;
      out.push({ attribute: "count", ok: n === c.count, detail: `${n} x ${thingKey(c.thing)}, want ${c.count}` });
      break;
    }
    case "positional": {
      const [ba, bb] = [blobsOf(a, c.a)[0], blobsOf(a, c.b)[0]];
      if (!ba || !bb) {
        out.push({ attribute: "relation", ok: false, detail: `${!ba ? thingKey(c.a) : thingKey(c.b)} not found` });
        break;
      }
      const [dx, dy] = [bb.cx - ba.cx, bb.cy - ba.cy];
      const along = c.relation === "left of" ? dx : c.relation === "right of" ? -dx : c.relation === "above" ? dy : -dy;
      out.push({ attribute: "relation", ok: along > 0.05, detail: `${thingKey(c.a)} ${c.relation} ${thingKey(c.b)}: offset ${along.toFixed(2)}` });
      break;
    }
    case "sizes": {
      const [bb, bs] = [blobsOf(a, c.big)[0], blobsOf(a, c.small)[0]];
      const ok = !!bb && !!bs && bb !== bs && bb.area > 1.5 * bs.area;
      out.push({ attribute: "size", ok, detail: bb && bs ? `areas ${bb.area} vs ${bs.area}` : "an object is missing" });
      break;
    }
    case "text": {
      const word = readSign(image, size, a);
      out.push({ attribute: "text", ok: word === c.word, detail: `read ${word ?? "no sign"}, want ${c.word}` });
      break;
    }
    case "objects":
      for (const t of c.things) out.push(identity(t));
      break;
  }
  return out;
}
