// The fixed evaluation prompt sets of the shipped cascade: DrawBench-style categories. The "heldout" set
// (the scored one) uses new combinations of known words: every colour/shape pair is one of `heldOutPairs`
// and every sign word one of `heldOutWords`, so no prompt's combination was seen in training (the words
// themselves were). The "seen" set asks the same templates of pairs and words that training scenes show,
// to tell how well the model draws what it was taught apart from how well it generalises.
import { ValueError } from "../util/errors.js";
import { article, heldOutPairs, heldOutWords, shapeNames, signWords, type Claim, type Relation, type Scene, type ShapeName, type Thing } from "../data/scenes.js";

export interface EvalPrompt { prompt: string; scene: Pick<Scene, "claim" | "background">; checkBackground: boolean }
export type PromptSet = "heldout" | "seen";
export const promptSets: readonly PromptSet[] = ["heldout", "seen"];

/** Colour/shape pairs training shows: each held-out colour with the next shape after its held-out one. */
const seenPairs = Object.fromEntries(
  Object.entries(heldOutPairs).map(([color, shape]) => [color, shapeNames[(shapeNames.indexOf(shape) + 1) % shapeNames.length]]),
) as Record<string, ShapeName>;
/** Three-letter training sign words, as many as there are held-out words. */
const seenWords = signWords.filter((w) => w.length === 3).slice(0, heldOutWords.length);

const numberWords = ["one", "two", "three", "four"];
const plural = (s: ShapeName) => `${s}s`;

export function evalPrompts(set: PromptSet = "heldout"): EvalPrompt[] {
  if (!promptSets.includes(set)) throw new ValueError(`prompt set: expected one of ${promptSets.join(", ")}, got "${String(set)}"`);
  const pairs: Thing[] = Object.entries(set === "heldout" ? heldOutPairs : seenPairs).map(([color, shape]) => ({ kind: "shape", shape, color }));
  const name = (t: Thing) => (t.kind === "shape" ? `${t.color} ${t.shape}` : t.object);
  const out: EvalPrompt[] = [];
  const add = (prompt: string, claim: Claim, background = "white", checkBackground = false) => out.push({ prompt, scene: { claim, background }, checkBackground });
  const bgs = ["white", "black", "gray"];
  pairs.forEach((t, i) => {
    add(article(name(t)), { category: "colors", thing: t });
    add(`${article(name(t))} on a ${bgs[i % 3]} background`, { category: "colors", thing: t }, bgs[i % 3], true);
  });
  pairs.forEach((t, i) => {
    if (t.kind !== "shape") return;
    for (const n of [1 + (i % 4), 1 + ((i + 2) % 4)]) add(`${numberWords[n - 1]} ${n === 1 ? name(t) : `${t.color} ${plural(t.shape)}`}`, { category: "counting", thing: t, count: n });
  });
  const relations: Relation[] = ["left of", "right of", "above", "below"];
  const phrase = (r: Relation) => (r === "left of" || r === "right of" ? `to the ${r}` : r);
  pairs.forEach((a, i) => {
    for (const k of [1, 3]) {
      const b = pairs[(i + k) % pairs.length];
      const r = relations[(i + k) % 4];
      add(`${article(name(a))} ${phrase(r)} ${article(name(b))}`, { category: "positional", a, b, relation: r });
    }
  });
  (set === "heldout" ? heldOutWords : seenWords).forEach((w) => add(`a sign that says ${w}`, { category: "text", word: w }));
  return out;
}
