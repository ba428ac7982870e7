// Captioned scenes rendered on the fly, deterministically from (seed, index): coloured shapes, emoji objects
// (Microsoft Fluent Emoji Flat, MIT, via @iconify-json/fluent-emoji-flat) and signs with block-letter words,
// on plain backgrounds, with counts, positions, relations and sizes, and captions from a small grammar with
// paraphrases, synonyms and occasional misspellings. Scenes are drawn at a 128 px master resolution and
// area-averaged to smaller sizes, so every stage's low/high-res pair is exact.
import { createRequire } from "node:module";
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { downsampleArea } from "../diffusion/noise-aug.js";
import { glyphHeight, glyphs, glyphWidth, wordCells } from "./pixel-font.js";

export type RGB = [number, number, number];
export const objectColors: Record<string, RGB> = {
  red: [0.86, 0.1, 0.1], orange: [1.0, 0.55, 0.0], yellow: [0.98, 0.86, 0.08], green: [0.1, 0.68, 0.18],
  blue: [0.12, 0.3, 0.95], purple: [0.55, 0.18, 0.78], pink: [1.0, 0.45, 0.75], brown: [0.5, 0.3, 0.12],
};
export const backgroundColors: Record<string, RGB> = { white: [0.97, 0.97, 0.97], gray: [0.55, 0.55, 0.55], black: [0.06, 0.06, 0.06] };
export const signColor: RGB = [0.97, 0.92, 0.72];
export const inkColor: RGB = [0.05, 0.05, 0.05];

export const shapeNames = ["circle", "square", "triangle", "star", "heart"] as const;
export type ShapeName = (typeof shapeNames)[number];
const shapeSynonyms: Record<ShapeName, string[]> = {
  circle: ["circle", "ball", "disc", "dot"], square: ["square", "box", "block"], triangle: ["triangle"], star: ["star"], heart: ["heart"],
};

/** Emoji objects: the word(s) a caption uses, the Fluent icon, and the colour adjective the art carries. */
export interface EmojiObject { name: string; icon: string; words: string[]; color?: string }
export const emojiObjects: EmojiObject[] = [
  { name: "apple", icon: "red-apple", words: ["apple"], color: "red" },
  { name: "green apple", icon: "green-apple", words: ["apple"], color: "green" },
  { name: "banana", icon: "banana", words: ["banana"], color: "yellow" },
  { name: "strawberry", icon: "strawberry", words: ["strawberry"], color: "red" },
  { name: "carrot", icon: "carrot", words: ["carrot"], color: "orange" },
  { name: "cat", icon: "cat-face", words: ["cat", "kitten"] },
  { name: "dog", icon: "dog-face", words: ["dog", "puppy"] },
  { name: "pig", icon: "pig-face", words: ["pig"] },
  { name: "frog", icon: "frog", words: ["frog"] },
  { name: "fish", icon: "tropical-fish", words: ["fish"] },
  { name: "bird", icon: "bird", words: ["bird"] },
  { name: "duck", icon: "duck", words: ["duck"] },
  { name: "turtle", icon: "turtle", words: ["turtle", "tortoise"] },
  { name: "octopus", icon: "octopus", words: ["octopus"] },
  { name: "llama", icon: "llama", words: ["llama"] },
  { name: "car", icon: "automobile", words: ["car", "automobile"], color: "red" },
  { name: "bus", icon: "bus", words: ["bus"] },
  { name: "rocket", icon: "rocket", words: ["rocket"] },
  { name: "boat", icon: "sailboat", words: ["sailboat", "boat"] },
  { name: "tree", icon: "deciduous-tree", words: ["tree"], color: "green" },
  { name: "cactus", icon: "cactus", words: ["cactus"], color: "green" },
  { name: "sunflower", icon: "sunflower", words: ["sunflower", "flower"] },
  { name: "mushroom", icon: "mushroom", words: ["mushroom"] },
  { name: "house", icon: "house", words: ["house"] },
  { name: "umbrella", icon: "umbrella", words: ["umbrella"] },
  { name: "cake", icon: "birthday-cake", words: ["cake"] },
  { name: "pretzel", icon: "pretzel", words: ["pretzel"] },
  { name: "sun", icon: "sun", words: ["sun"], color: "yellow" },
];
export const emojiByName: Record<string, EmojiObject> = Object.fromEntries(emojiObjects.map((e) => [e.name, e]));

/** Words a sign shows during training; `heldOutWords` never appear in training and are used to evaluate. */
export const signWords = [
  "CAT", "DOG", "SUN", "HAT", "BOX", "RED", "BIG", "YES", "NO", "HI", "GO", "UP", "OK", "ZOO", "MAP", "CAR", "BUS", "PIG", "FOX", "OWL",
  "ART", "SKY", "TOY", "JAM", "KEY", "WET", "EGG", "ICE", "VAN", "LOVE", "STOP", "OPEN", "HELP", "CAKE", "BIRD", "FISH", "TREE", "WAVE", "JUMP", "QUIZ",
];
export const heldOutWords = ["BAT", "COW", "HEN", "RUN", "SIT", "TEN", "MIX", "BED", "NET", "POD", "MUD", "LID"];

/** Colour/shape pairs that never appear in training scenes: evaluation uses them as new combinations. */
export const heldOutPairs: Record<string, ShapeName> = {
  red: "triangle", orange: "circle", yellow: "square", green: "heart", blue: "star", purple: "triangle", pink: "square", brown: "circle",
};

export type Thing = { kind: "shape"; shape: ShapeName; color: string } | { kind: "emoji"; object: string };
export interface SceneItem { thing: Thing; x: number; y: number; size: number }
export interface Sign { word: string; x: number; y: number; cell: number }
export type Relation = "left of" | "right of" | "above" | "below";
/** What a caption claims, for the oracle to check. */
export type Claim =
  | { category: "colors"; thing: Thing }
  | { category: "counting"; thing: Thing; count: number }
  | { category: "positional"; a: Thing; b: Thing; relation: Relation }
  | { category: "sizes"; big: Thing; small: Thing }
  | { category: "text"; word: string }
  | { category: "objects"; things: Thing[] };
export interface Scene { background: string; items: SceneItem[]; sign?: Sign; caption: string; claim: Claim }

export const sizeOf = { small: 0.2, normal: 0.32, big: 0.5 };
const numberWords = ["zero", "one", "two", "three", "four"];

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];
const coin = (rng: Rng, p: number) => rng.uniform(1)[0] < p;
const sameThing = (a: Thing, b: Thing) => thingKey(a) === thingKey(b);
export function thingKey(t: Thing): string {
  return t.kind === "shape" ? `${t.color} ${t.shape}` : t.object;
}

function thingPhrase(rng: Rng, t: Thing, plural = false): string {
  if (t.kind === "shape") {
    const w = pick(rng, shapeSynonyms[t.shape]);
    return `${t.color} ${plural ? (w === "box" ? "boxes" : `${w}s`) : w}`;
  }
  const e = emojiByName[t.object];
  let w = pick(rng, e.words);
  if (plural) w = pluralOf(w);
  // An object whose name needs its colour ("green apple") always says it; others sometimes do.
  const needsColor = e.name !== e.words[0] || emojiObjects.some((o) => o !== e && o.words.includes(e.words[0]));
  return e.color && (needsColor || coin(rng, 0.3)) ? `${e.color} ${w}` : w;
}
function pluralOf(word: string): string {
  if (word === "fish") return word;
  if (/(s|sh|x)$/.test(word)) return `${word}es`;
  if (word.endsWith("y") && !word.endsWith("ey")) return `${word.slice(0, -1)}ies`;
  return `${word}s`;
}
/** "a" or "an" before a phrase, as the captions write it. */
export const article = (phrase: string) => (/^[aeiou]/.test(phrase) ? `an ${phrase}` : `a ${phrase}`);

function randomThing(rng: Rng, options: SceneOptions, shapeShare = 0.55): Thing {
  if (coin(rng, shapeShare)) {
    for (;;) {
      const color = pick(rng, Object.keys(objectColors)), shape = pick(rng, shapeNames);
      if (options.allowHeldOut || heldOutPairs[color] !== shape) return { kind: "shape", shape, color };
    }
  }
  return { kind: "emoji", object: pick(rng, emojiObjects).name };
}

export interface SceneOptions {
  allowHeldOut?: boolean;
  /** Relative weights of the scene kinds (any positive scale; missing kinds weigh 0); default `defaultKindWeights`. */
  kindWeights?: Partial<Record<SceneKind, number>>;
}

/** Places items of the given sizes without overlap; positions are centres in [0, 1]. */
function place(rng: Rng, sizes: number[], constrain?: (pos: { x: number; y: number }[]) => boolean): { x: number; y: number }[] {
  for (let attempt = 0; attempt < 2000; attempt++) {
    const pos = sizes.map((s) => ({ x: s / 2 + 0.03 + (1 - s - 0.06) * rng.uniform(1)[0], y: s / 2 + 0.03 + (1 - s - 0.06) * rng.uniform(1)[0] }));
    let ok = true;
    for (let i = 0; i < pos.length && ok; i++) {
      for (let j = i + 1; j < pos.length && ok; j++) {
        const gap = (sizes[i] + sizes[j]) / 2 + 0.05;
        if (Math.abs(pos[i].x - pos[j].x) < gap && Math.abs(pos[i].y - pos[j].y) < gap) ok = false;
      }
    }
    if (ok && (!constrain || constrain(pos))) return pos;
  }
  throw new ValueError(`scene placement: could not place ${sizes.length} items of sizes ${sizes.join(", ")}`);
}

function typo(rng: Rng, caption: string): string {
  const words = caption.split(" ");
  const k = words.map((w, i) => (w.length >= 4 && /^[a-z]+$/.test(w) ? i : -1)).filter((i) => i >= 0);
  if (k.length === 0) return caption;
  const i = pick(rng, k), w = words[i], p = rng.int(w.length - 1);
  words[i] = coin(rng, 0.5) ? w.slice(0, p) + w[p + 1] + w[p] + w.slice(p + 2) : w.slice(0, p) + w.slice(p + 1);
  return words.join(" ");
}

export const sceneKinds = ["colors", "counting", "positional", "sizes", "text", "objects"] as const;
export type SceneKind = (typeof sceneKinds)[number];
export const defaultKindWeights: Readonly<Record<SceneKind, number>> = { colors: 0.2, counting: 0.2, positional: 0.25, sizes: 0.1, text: 0.17, objects: 0.08 };

/** Checks a scene-kind mix and returns it as shares summing to 1; the error names the bad entry. */
export function kindShares(weights: Partial<Record<string, number>>): Record<SceneKind, number> {
  const out = {} as Record<SceneKind, number>;
  let total = 0;
  for (const [k, w] of Object.entries(weights)) {
    if (!(sceneKinds as readonly string[]).includes(k)) throw new ValueError(`scene kind weights: unknown kind "${k}"; expected some of ${sceneKinds.join(", ")}`);
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0) throw new ValueError(`scene kind weights: "${k}" must be a finite number >= 0, got ${String(w)}`);
    total += w;
  }
  if (!(total > 0)) throw new ValueError("scene kind weights: at least one kind needs a weight > 0");
  for (const k of sceneKinds) out[k] = (weights[k] ?? 0) / total;
  return out;
}

/** Normalised shares per weights object: a dataset draws every scene with the same one. */
const sharesCache = new WeakMap<object, Record<SceneKind, number>>();
function sharesOf(weights: Partial<Record<SceneKind, number>>): Record<SceneKind, number> {
  let shares = sharesCache.get(weights);
  if (!shares) sharesCache.set(weights, (shares = kindShares(weights)));
  return shares;
}

/** The scene of one training index. */
export function randomScene(seed: number, index: number, options: SceneOptions = {}): Scene {
  const rng = new Rng(seed).split(`scene:${index}`);
  const shares = options.kindWeights ? sharesOf(options.kindWeights) : defaultKindWeights;
  let u = rng.uniform(1)[0], kind: SceneKind = "colors";
  for (const k of sceneKinds) {
    if (shares[k] === 0) continue;
    kind = k;
    if ((u -= shares[k]) < 0) break;
  }
  const scene = sceneOfKind(rng, kind, options);
  if (coin(rng, 0.05)) scene.caption = typo(rng, scene.caption);
  return scene;
}

function sceneOfKind(rng: Rng, kind: SceneKind, options: SceneOptions): Scene {
  const background = pick(rng, Object.keys(backgroundColors));
  const bgPhrase = coin(rng, 0.5) ? ` on a ${background} background` : "";
  const intro = coin(rng, 0.15) ? pick(rng, ["a picture of ", "an image of ", "a drawing of "]) : "";
  const withIntro = (c: string) => (intro ? `${intro}${c}` : c) + bgPhrase;
  switch (kind) {
    case "colors": {
      const thing = randomThing(rng, options);
      const size = pick(rng, [sizeOf.normal, sizeOf.normal, sizeOf.big]);
      const [p] = place(rng, [size]);
      return { background, items: [{ thing, ...p, size }], caption: withIntro(article(thingPhrase(rng, thing))), claim: { category: "colors", thing } };
    }
    case "counting": {
      const thing = randomThing(rng, options, 0.5), count = 1 + rng.int(4);
      const size = count <= 2 ? sizeOf.normal : sizeOf.small * 1.1;
      const pos = place(rng, Array(count).fill(size));
      const n = coin(rng, 0.8) ? numberWords[count] : String(count);
      const phrase = count === 1 && coin(rng, 0.5) ? article(thingPhrase(rng, thing)) : `${n} ${thingPhrase(rng, thing, count > 1)}`;
      return { background, items: pos.map((p) => ({ thing, ...p, size })), caption: withIntro(phrase), claim: { category: "counting", thing, count } };
    }
    case "positional": {
      const a = randomThing(rng, options);
      let b = randomThing(rng, options);
      while (sameThing(a, b)) b = randomThing(rng, options);
      const relation = pick(rng, ["left of", "right of", "above", "below"] as const);
      const s = sizeOf.normal;
      const [pa, pb] = place(rng, [s, s], ([p, q]) => {
        const [dx, dy] = [q.x - p.x, q.y - p.y]; // b relative to a
        const along = relation === "left of" ? dx : relation === "right of" ? -dx : relation === "above" ? dy : -dy;
        const across = relation === "left of" || relation === "right of" ? Math.abs(dy) : Math.abs(dx);
        return along > 0.3 && across < along * 0.6;
      });
      const [A, B] = [article(thingPhrase(rng, a)), article(thingPhrase(rng, b))];
      const inverse: Record<Relation, Relation> = { "left of": "right of", "right of": "left of", above: "below", below: "above" };
      const say = (r: Relation, x: string, y: string) => {
        if (r === "left of" || r === "right of") return pick(rng, [`${x} to the ${r} ${y}`, `${x} on the ${r.split(" ")[0]} of ${y}`]);
        if (r === "above") return pick(rng, [`${x} above ${y}`, `${x} over ${y}`]);
        return pick(rng, [`${x} below ${y}`, `${x} under ${y}`]);
      };
      const caption = coin(rng, 0.75) ? say(relation, A, B) : say(inverse[relation], B, A);
      return { background, items: [{ thing: a, ...pa, size: s }, { thing: b, ...pb, size: s }], caption: withIntro(caption), claim: { category: "positional", a, b, relation } };
    }
    case "sizes": {
      const a = randomThing(rng, options);
      let b = randomThing(rng, options);
      while (sameThing(a, b)) b = randomThing(rng, options);
      const [pa, pb] = place(rng, [sizeOf.big, sizeOf.small]);
      const [big, small] = [pick(rng, ["big", "large"]), pick(rng, ["small", "tiny", "little"])];
      const caption = coin(rng, 0.5)
        ? `${article(`${big} ${thingPhrase(rng, a)}`)} and ${article(`${small} ${thingPhrase(rng, b)}`)}`
        : `${article(`${small} ${thingPhrase(rng, b)}`)} next to ${article(`${big} ${thingPhrase(rng, a)}`)}`;
      return { background, items: [{ thing: a, ...pa, size: sizeOf.big }, { thing: b, ...pb, size: sizeOf.small }], caption: withIntro(caption), claim: { category: "sizes", big: a, small: b } };
    }
    case "text": {
      const word = coin(rng, 0.7) ? pick(rng, signWords) : randomWord(rng, options);
      const cell = 4; // master pixels per font cell: one pixel per cell at 32 px
      const w = (wordCells(word) + 4) * cell, h = (glyphHeight + 4) * cell;
      const x = (w / 2 + 4 + rng.int(Math.max(1, 128 - w - 8))) / 128, y = (h / 2 + 4 + rng.int(128 - h - 8)) / 128;
      const caption = pick(rng, [`a sign that says ${word}`, `a sign with the word ${word}`, `the word ${word} on a sign`, `a sign reading ${word}`]);
      return { background, items: [], sign: { word, x, y, cell }, caption: caption + bgPhrase, claim: { category: "text", word } };
    }
    case "objects": {
      const n = 2 + rng.int(2);
      const things: Thing[] = [];
      while (things.length < n) {
        const t = randomThing(rng, options, 0.3);
        if (!things.some((o) => sameThing(o, t))) things.push(t);
      }
      const pos = place(rng, Array(n).fill(sizeOf.normal * 0.9));
      const phrases = things.map((t) => article(thingPhrase(rng, t)));
      const caption = phrases.length === 2 ? `${phrases[0]} and ${phrases[1]}` : `${phrases.slice(0, -1).join(", ")} and ${phrases[n - 1]}`;
      return { background, items: things.map((thing, i) => ({ thing, ...pos[i], size: sizeOf.normal * 0.9 })), caption: withIntro(caption), claim: { category: "objects", things } };
    }
  }
}

function randomWord(rng: Rng, options: SceneOptions): string {
  for (;;) {
    const n = 2 + rng.int(3);
    let w = "";
    for (let i = 0; i < n; i++) w += String.fromCharCode(65 + rng.int(26));
    if (options.allowHeldOut || !heldOutWords.includes(w)) return w;
  }
}

// --- rendering -------------------------------------------------------------------------------------------

const requireCjs = createRequire(import.meta.url);
interface IconSet { icons: Record<string, { body: string; width?: number; height?: number }>; width?: number; height?: number }
let iconSet: IconSet | undefined;
const spriteCache = new Map<string, Uint8Array>();

/** An emoji sprite as straight-alpha RGBA at `px` x `px`, rendered once by resvg and cached. */
export function emojiSprite(icon: string, px: number): Uint8Array {
  const key = `${icon}:${px}`;
  let s = spriteCache.get(key);
  if (s) return s;
  iconSet ??= requireCjs("@iconify-json/fluent-emoji-flat/icons.json") as IconSet;
  const ic = iconSet.icons[icon];
  if (!ic) throw new ValueError(`emoji icon "${icon}" is not in @iconify-json/fluent-emoji-flat`);
  const [w, h] = [ic.width ?? iconSet.width ?? 32, ic.height ?? iconSet.height ?? 32];
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${ic.body}</svg>`;
  const { Resvg } = requireCjs("@resvg/resvg-js") as typeof import("@resvg/resvg-js");
  const img = new Resvg(svg, { fitTo: { mode: "width", value: px } }).render();
  s = new Uint8Array(px * px * 4);
  s.set(img.pixels.subarray(0, Math.min(img.pixels.length, s.length)));
  spriteCache.set(key, s);
  return s;
}

/** Whether a point (unit radius around the centre, y down) is inside a shape. */
export function insideShape(shape: ShapeName, x: number, y: number): boolean {
  switch (shape) {
    case "circle": return x * x + y * y <= 0.92;
    case "square": return Math.abs(x) <= 0.82 && Math.abs(y) <= 0.82;
    case "triangle": return y <= 0.75 && y >= -0.95 && Math.abs(x) <= (y + 0.95) * 0.58;
    case "heart": {
      const [u, v] = [x * 1.15, -y * 1.15 + 0.2];
      const q = u * u + v * v - 1;
      return q * q * q - u * u * v * v * v <= 0;
    }
    case "star": {
      const r = Math.hypot(x, y);
      if (r > 1) return false;
      const a = Math.atan2(x, -y), k = (2 * Math.PI) / 5;
      const t = Math.abs(((a % k) + k) % k - k / 2) / (k / 2); // 0 at a spike, 1 between spikes
      return r <= 1 / (1 + (1 - t) * 1.4);
    }
  }
}

function fill(img: Float32Array, size: number, rgb: RGB) {
  const n = size * size;
  for (let c = 0; c < 3; c++) img.fill(rgb[c], c * n, (c + 1) * n);
}

function blend(img: Float32Array, size: number, i: number, j: number, rgb: RGB | [number, number, number], a: number) {
  if (i < 0 || j < 0 || i >= size || j >= size || a <= 0) return;
  const n = size * size, k = i * size + j;
  for (let c = 0; c < 3; c++) img[c * n + k] = a * rgb[c] + (1 - a) * img[c * n + k];
}

function drawShape(img: Float32Array, size: number, item: SceneItem & { thing: { kind: "shape" } }) {
  const r = (item.size * size) / 2, [cx, cy] = [item.x * size, item.y * size], ss = 4;
  const rgb = objectColors[item.thing.color];
  for (let i = Math.floor(cy - r); i <= Math.ceil(cy + r); i++) {
    for (let j = Math.floor(cx - r); j <= Math.ceil(cx + r); j++) {
      let cover = 0;
      for (let a = 0; a < ss; a++) for (let b = 0; b < ss; b++) if (insideShape(item.thing.shape, (j + (b + 0.5) / ss - cx) / r, (i + (a + 0.5) / ss - cy) / r)) cover++;
      blend(img, size, i, j, rgb, cover / (ss * ss));
    }
  }
}

function drawEmoji(img: Float32Array, size: number, item: SceneItem & { thing: { kind: "emoji" } }) {
  const px = Math.max(2, Math.round(item.size * size));
  const sprite = emojiSprite(emojiByName[item.thing.object].icon, px);
  const [i0, j0] = [Math.round(item.y * size - px / 2), Math.round(item.x * size - px / 2)];
  for (let i = 0; i < px; i++) {
    for (let j = 0; j < px; j++) {
      const k = (i * px + j) * 4;
      blend(img, size, i0 + i, j0 + j, [sprite[k] / 255, sprite[k + 1] / 255, sprite[k + 2] / 255], sprite[k + 3] / 255);
    }
  }
}

function drawSign(img: Float32Array, size: number, sign: Sign) {
  const cell = (sign.cell * size) / 128;
  const [w, h] = [(wordCells(sign.word) + 4) * cell, (glyphHeight + 4) * cell];
  const [x0, y0] = [Math.round(sign.x * size - w / 2), Math.round(sign.y * size - h / 2)];
  const box = (x: number, y: number, bw: number, bh: number, rgb: RGB) => {
    for (let i = Math.floor(y); i < Math.floor(y + bh); i++) for (let j = Math.floor(x); j < Math.floor(x + bw); j++) blend(img, size, i, j, rgb, 1);
  };
  box(x0, y0, w, h, signColor);
  [...sign.word].forEach((ch, l) => {
    const g = glyphs[ch];
    if (!g) throw new ValueError(`sign word "${sign.word}": the block font has no "${ch}"; use letters A-Z`);
    for (let r = 0; r < glyphHeight; r++) {
      for (let c = 0; c < glyphWidth; c++) if (g[r * glyphWidth + c]) box(x0 + (2 + l * (glyphWidth + 1) + c) * cell, y0 + (2 + r) * cell, cell, cell, inkColor);
    }
  });
}

export const masterSize = 128;

/** Renders a scene as CHW floats in [-1, 1] at `size` px (area-averaged from the 128 px master below it). */
export function renderScene(scene: Scene, size: number): Float32Array {
  if (!Number.isInteger(size) || size < 4) throw new ValueError(`renderScene size: expected an integer >= 4, got ${size}`);
  const direct = size >= masterSize || masterSize % size !== 0;
  const s = direct ? size : masterSize;
  const img = new Float32Array(3 * s * s);
  fill(img, s, backgroundColors[scene.background]);
  for (const it of scene.items) {
    if (it.thing.kind === "shape") drawShape(img, s, it as SceneItem & { thing: { kind: "shape" } });
    else drawEmoji(img, s, it as SceneItem & { thing: { kind: "emoji" } });
  }
  if (scene.sign) drawSign(img, s, scene.sign);
  for (let k = 0; k < img.length; k++) img[k] = 2 * img[k] - 1;
  return direct ? img : downsampleArea(img, 3, s, s / size);
}

// --- grounding -------------------------------------------------------------------------------------------

/** Caption words (indices into `caption.split(" ")`) that name one thing of a scene, and where its copies are. */
export interface Grounding { words: number[]; boxes: { x: number; y: number; size: number }[] }

/**
 * Which caption words name which of the scene's things: each thing's noun (any synonym, singular or plural)
 * with the colour word before it when that is the thing's colour, and the squares its copies cover. A shape's
 * noun counts only after its own colour ("a red circle and a blue circle"); an emoji's only when no other
 * colour stands before it. Words a typo changed name nothing; signs are not things.
 */
export function sceneGrounding(scene: Scene): Grounding[] {
  const words = scene.caption.split(" ").map((w) => w.replace(/[^a-z]/gi, "").toLowerCase());
  const groups = new Map<string, { thing: Thing; boxes: Grounding["boxes"] }>();
  for (const it of scene.items) {
    const key = thingKey(it.thing);
    const g = groups.get(key) ?? { thing: it.thing, boxes: [] };
    g.boxes.push({ x: it.x, y: it.y, size: it.size });
    groups.set(key, g);
  }
  const used = new Set<number>();
  const out: Grounding[] = [];
  for (const { thing, boxes } of groups.values()) {
    const [nouns, color] = thing.kind === "shape"
      ? [shapeSynonyms[thing.shape].flatMap((w) => [w, w === "box" ? "boxes" : `${w}s`]), thing.color]
      : [emojiByName[thing.object].words.flatMap((w) => [w, pluralOf(w)]), emojiByName[thing.object].color];
    const at = words.findIndex((w, i) => {
      if (used.has(i) || !nouns.includes(w)) return false;
      const before = words[i - 1];
      return thing.kind === "shape" ? before === color : !(before in objectColors) || before === color;
    });
    if (at < 0) continue;
    const found = at > 0 && words[at - 1] === color ? [at - 1, at] : [at];
    found.forEach((i) => used.add(i));
    out.push({ words: found, boxes });
  }
  return out;
}
