// The fixed evaluation prompt set of the shipped cascade: DrawBench-style categories over new combinations
// of known words. Every colour/shape pair here is one of `heldOutPairs` and every sign word one of
// `heldOutWords`, so no prompt's combination was seen in training (the words themselves were).
import { heldOutPairs, heldOutWords, type Claim, type Relation, type Scene, type ShapeName, type Thing } from "../data/scenes.js";

export interface EvalPrompt { prompt: string; scene: Pick<Scene, "claim" | "background">; checkBackground: boolean }

const numberWords = ["one", "two", "three", "four"];
const plural = (s: ShapeName) => `${s}s`;

export function evalPrompts(): EvalPrompt[] {
  const pairs: Thing[] = Object.entries(heldOutPairs).map(([color, shape]) => ({ kind: "shape", shape, color }));
  const name = (t: Thing) => (t.kind === "shape" ? `${t.color} ${t.shape}` : t.object);
  const out: EvalPrompt[] = [];
  const add = (prompt: string, claim: Claim, background = "white", checkBackground = false) => out.push({ prompt, scene: { claim, background }, checkBackground });
  const bgs = ["white", "black", "gray"];
  pairs.forEach((t, i) => {
    add(`a ${name(t)}`, { category: "colors", thing: t });
    add(`a ${name(t)} on a ${bgs[i % 3]} background`, { category: "colors", thing: t }, bgs[i % 3], true);
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
      add(`a ${name(a)} ${phrase(r)} a ${name(b)}`, { category: "positional", a, b, relation: r });
    }
  });
  heldOutWords.forEach((w) => add(`a sign that says ${w}`, { category: "text", word: w }));
  return out;
}
