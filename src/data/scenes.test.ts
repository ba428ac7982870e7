import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultKindWeights, heldOutPairs, heldOutWords, kindShares, randomScene, renderScene, sceneGrounding, signWords, thingKey, type Scene, type Thing } from "./scenes.js";
import { downsampleArea } from "../diffusion/noise-aug.js";
import { glyphs } from "./pixel-font.js";
import { sceneDataset } from "./datasets.js";

test("scenes: the same (seed, index) gives the same caption and the same pixels", () => {
  for (const i of [0, 7, 123]) {
    const [a, b] = [randomScene(3, i), randomScene(3, i)];
    assert.equal(a.caption, b.caption);
    assert.deepEqual(renderScene(a, 64), renderScene(b, 64));
  }
  assert.notEqual(randomScene(3, 1).caption + randomScene(3, 2).caption, randomScene(4, 1).caption + randomScene(4, 2).caption);
});

test("scenes: low-res renders are the exact area average of the 128 px master", () => {
  for (let i = 0; i < 6; i++) {
    const s = randomScene(1, i);
    const hi = renderScene(s, 128);
    for (const n of [64, 32]) {
      const lo = renderScene(s, n), ref = downsampleArea(hi, 3, 128, 128 / n);
      let maxErr = 0;
      for (let k = 0; k < lo.length; k++) maxErr = Math.max(maxErr, Math.abs(lo[k] - ref[k]));
      assert.ok(maxErr < 1e-6, `scene ${i} at ${n}: max error ${maxErr}`);
    }
    const img = renderScene(s, 128);
    assert.ok(img.every((v) => v >= -1 && v <= 1), "values in [-1, 1]");
  }
});

test("scenes: every category appears, and held-out pairs and words never do in training", () => {
  const seen = new Set<string>();
  const held = (t: Thing) => t.kind === "shape" && heldOutPairs[t.color] === t.shape;
  for (let i = 0; i < 2000; i++) {
    const s = randomScene(0, i);
    seen.add(s.claim.category);
    assert.ok(!s.items.some((it) => held(it.thing)), `scene ${i} (${s.caption}) shows a held-out pair`);
    if (s.sign) {
      assert.ok(!heldOutWords.includes(s.sign.word), `scene ${i} shows held-out word ${s.sign.word}`);
      assert.ok([...s.sign.word].every((ch) => glyphs[ch]), s.sign.word);
    }
    assert.ok(s.caption.length > 0 && s.caption.length < 120, s.caption);
  }
  assert.deepEqual([...seen].sort(), ["colors", "counting", "objects", "positional", "sizes", "text"]);
  assert.ok(signWords.every((w) => !heldOutWords.includes(w)));
});

test("scenes: the counting caption's number matches the items drawn", () => {
  const words: Record<string, number> = { one: 1, two: 2, three: 3, four: 4, "1": 1, "2": 2, "3": 3, "4": 4 };
  for (let i = 0; i < 2000; i++) {
    const s = randomScene(5, i);
    if (s.claim.category !== "counting") continue;
    assert.equal(s.items.length, s.claim.count);
    const first = s.caption.replace(/^(a picture of|an image of|a drawing of) /, "").split(" ")[0];
    if (first in words) assert.equal(words[first], s.claim.count, s.caption);
  }
});

test("scenes: the dataset adapter renders the scene's caption at any stage size", () => {
  const d = sceneDataset(2);
  const it = d.item(10);
  assert.equal(it.caption, randomScene(2, 10).caption);
  assert.equal(it.image(32).length, 3 * 32 * 32);
  assert.equal(it.image(128).length, 3 * 128 * 128);
});

test("scenes: kind weights set the mix of scene kinds; the default mix is unchanged", () => {
  // Captions of the default mix (seed 0) as every shipped model was trained on them.
  const first = Array.from({ length: 6 }, (_, i) => randomScene(0, i).caption);
  assert.deepEqual(first, ["a drawing of a brown star on a black background", "four buses", "three orange stars on a black background",
    "a drawing of a mushroom under a bus", "four orange triangles", "a brown block below a brown star"]);
  for (let i = 0; i < 50; i++) assert.equal(randomScene(0, i, { kindWeights: { ...defaultKindWeights } }).caption, randomScene(0, i).caption);
  const counts: Record<string, number> = {};
  const n = 600;
  for (let i = 0; i < n; i++) {
    const c = randomScene(5, i, { kindWeights: { positional: 3, counting: 1 } }).claim.category;
    counts[c] = (counts[c] ?? 0) + 1;
  }
  assert.deepEqual(Object.keys(counts).sort(), ["counting", "positional"]);
  assert.ok(Math.abs(counts.positional / n - 0.75) < 0.06, `positional share ${counts.positional / n}, want ~0.75`);
  assert.deepEqual(kindShares({ text: 1, colors: 3 }), { colors: 0.75, counting: 0, positional: 0, sizes: 0, text: 0.25, objects: 0 });
  assert.throws(() => kindShares({ colour: 1 }), /unknown kind "colour"; expected some of colors, counting/);
  assert.throws(() => kindShares({ text: -1 }), /"text" must be a finite number >= 0, got -1/);
  assert.throws(() => kindShares({ text: 0 }), /at least one kind needs a weight > 0/);
  assert.throws(() => sceneDataset(0, { text: Number.NaN }), /"text" must be a finite number >= 0, got NaN/);
});

test("sceneGrounding: each thing's colour word and noun in the caption, with the squares of all its copies", () => {
  const at = (s: Scene) => sceneGrounding(s).map((g) => ({ words: g.words.map((i) => s.caption.split(" ")[i]).join(" "), boxes: g.boxes.length }));
  const shape = (color: string, sh: "circle" | "square" | "star"): Thing => ({ kind: "shape", shape: sh, color });
  const item = (thing: Thing, x: number) => ({ thing, x, y: 0.5, size: 0.3 });
  const scene = (caption: string, items: Scene["items"]): Scene => ({ background: "white", items, caption, claim: { category: "objects", things: items.map((i) => i.thing) } });
  // The same noun for two things: each goes with its own colour.
  const two = scene("a red ball to the left of a blue circle", [item(shape("blue", "circle"), 0.7), item(shape("red", "circle"), 0.3)]);
  assert.deepEqual(at(two), [{ words: "blue circle", boxes: 1 }, { words: "red ball", boxes: 1 }]);
  assert.deepEqual(sceneGrounding(two)[1], { words: [1, 2], boxes: [{ x: 0.3, y: 0.5, size: 0.3 }] });
  // Copies share one phrase (plural); an emoji without a colour word; a comma after a noun; a typo names nothing.
  const apples: Thing = { kind: "emoji", object: "apple" };
  assert.deepEqual(at(scene("three green stars and a cat", [item(shape("green", "star"), 0.2), item(shape("green", "star"), 0.5), item(shape("green", "star"), 0.8), item({ kind: "emoji", object: "cat" }, 0.5)])),
    [{ words: "green stars", boxes: 3 }, { words: "cat", boxes: 1 }]);
  assert.deepEqual(at(scene("a dog, a red apple and a green apple", [item({ kind: "emoji", object: "dog" }, 0.2), item(apples, 0.5), item({ kind: "emoji", object: "green apple" }, 0.8)])),
    [{ words: "dog,", boxes: 1 }, { words: "red apple", boxes: 1 }, { words: "green apple", boxes: 1 }]);
  assert.deepEqual(at(scene("a red squrae", [item(shape("red", "square"), 0.5)])), []);
  // Over generated scenes: every positional scene (without a typo) grounds both things, each by its colour and noun.
  let checked = 0;
  for (let i = 0; i < 2000; i++) {
    const s = randomScene(5, i);
    if (s.claim.category === "text") assert.deepEqual(sceneGrounding(s), [], "a sign is not a thing");
    if (s.claim.category !== "positional" || s.claim.a.kind !== "shape" || s.claim.b.kind !== "shape") continue;
    const g = sceneGrounding(s), words = s.caption.split(" ");
    for (const [k, thing] of [s.claim.a, s.claim.b].entries()) {
      const mine = g.find((x) => x.boxes[0].x === s.items[k].x && x.boxes[0].y === s.items[k].y);
      const { color } = thing as { color: string };
      if (!mine) {
        // Only a typo in its colour word leaves a shape ungrounded (a noun's typo: the noun check below).
        assert.ok(!words.includes(color) || !/(circle|ball|disc|dot|square|box|block|triangle|star|heart)s?$/.test(words[words.indexOf(color) + 1]), `${s.caption}: ${thingKey(thing)} not grounded`);
        continue;
      }
      assert.equal(words[mine.words[0]], color, s.caption);
      checked++;
    }
  }
  assert.ok(checked > 120, `only ${checked} grounded shapes in positional scenes`);
});
