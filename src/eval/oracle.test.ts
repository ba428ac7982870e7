import { test } from "node:test";
import assert from "node:assert/strict";
import { heldOutPairs, heldOutWords, randomScene, renderScene, signWords, type Relation, type Scene } from "../data/scenes.js";
import { judge, readSign } from "./oracle.js";
import { evalPrompts } from "./prompts.js";

test("oracle: at least 95% per attribute on ground-truth 128 px renders", () => {
  const acc: Record<string, [number, number]> = {};
  for (let i = 0; i < 240; i++) {
    const s = randomScene(11, i, { allowHeldOut: true });
    for (const r of judge(renderScene(s, 128), 128, s, { background: true })) {
      const k = `${s.claim.category}.${r.attribute}`;
      acc[k] ??= [0, 0];
      acc[k][1]++;
      if (r.ok) acc[k][0]++;
    }
  }
  for (const k of ["colors.color", "colors.object", "counting.count", "positional.relation", "sizes.size", "text.text", "objects.object", "colors.background"]) {
    assert.ok(acc[k] && acc[k][1] >= 10, `${k}: too few checks (${acc[k]?.[1]})`);
  }
  for (const [k, [ok, n]] of Object.entries(acc)) assert.ok(ok / n >= 0.95, `${k}: ${ok}/${n}`);
});

test("oracle: rejects images that contradict the claim", () => {
  const flip: Record<Relation, Relation> = { "left of": "right of", "right of": "left of", above: "below", below: "above" };
  let checked = 0, rejected = 0;
  for (let i = 0; i < 300 && checked < 30; i++) {
    const s = randomScene(12, i, { allowHeldOut: true });
    const img = renderScene(s, 128);
    let wrong: Scene["claim"] | undefined;
    if (s.claim.category === "positional") wrong = { ...s.claim, relation: flip[s.claim.relation] };
    else if (s.claim.category === "counting") wrong = { ...s.claim, count: (s.claim.count % 4) + 1 };
    else if (s.claim.category === "text") wrong = { ...s.claim, word: s.claim.word === "CAT" ? "COT" : "CAT" };
    else if (s.claim.category === "colors" && s.claim.thing.kind === "shape") wrong = { ...s.claim, thing: { ...s.claim.thing, color: s.claim.thing.color === "red" ? "blue" : "red" } };
    if (!wrong) continue;
    checked++;
    if (judge(img, 128, { claim: wrong, background: s.background === "white" ? "black" : "white" }, { background: true }).every((r) => !r.ok)) rejected++;
  }
  assert.ok(checked >= 30, `only ${checked} scenes checked`);
  assert.ok(rejected / checked >= 0.95, `${rejected}/${checked} contradicting claims rejected`);
});

test("oracle: reads sign words back, and finds no sign in a blank image", () => {
  const blank = new Float32Array(3 * 64 * 64).fill(0.9);
  assert.equal(readSign(blank, 64), null);
  const s = randomScene(0, 0);
  s.items = [];
  s.sign = { word: "QUIZ", x: 0.5, y: 0.5, cell: 4 };
  assert.equal(readSign(renderScene(s, 128), 128), "QUIZ");
  assert.throws(() => judge(new Float32Array(10), 128, s), /3x128x128/);
});

test("eval prompts: fixed, unique, and covering the four scored categories", () => {
  const ps = evalPrompts();
  assert.equal(new Set(ps.map((p) => p.prompt)).size, ps.length);
  const cats = new Set(ps.map((p) => p.scene.claim.category));
  for (const c of ["colors", "counting", "positional", "text"]) assert.ok(cats.has(c as never), c);
  assert.deepEqual(evalPrompts(), ps);
  // Written as training captions are: "an orange circle", not "a orange circle".
  assert.ok(ps.some((p) => p.prompt === "an orange circle") && ps.some((p) => / to the \w+ of an orange circle$/.test(p.prompt)));
  assert.ok(!ps.some((p) => /\ba [aeiou]/.test(p.prompt)), "an article before a vowel");
});

test("eval prompts: the seen set asks the same templates of pairs and words training shows", () => {
  const [held, seen] = [evalPrompts("heldout"), evalPrompts("seen")];
  assert.deepEqual(evalPrompts(), held);
  assert.equal(seen.length, held.length);
  assert.deepEqual(seen.map((p) => p.scene.claim.category), held.map((p) => p.scene.claim.category));
  assert.equal(new Set(seen.map((p) => p.prompt)).size, seen.length);
  const things = (c: Scene["claim"]) => (c.category === "positional" ? [c.a, c.b] : "thing" in c ? [c.thing] : []);
  let shapes = 0;
  for (const p of seen) {
    for (const t of things(p.scene.claim)) {
      if (t.kind !== "shape") continue;
      shapes++;
      assert.notEqual(heldOutPairs[t.color], t.shape, `${p.prompt}: ${t.color} ${t.shape} is held out`);
    }
    if (p.scene.claim.category === "text") {
      assert.ok(signWords.includes(p.scene.claim.word) && !heldOutWords.includes(p.scene.claim.word), p.prompt);
    }
  }
  assert.ok(shapes >= 48, `${shapes} shape things`);
  // The held-out set is what it says.
  for (const p of held) for (const t of things(p.scene.claim)) if (t.kind === "shape") assert.equal(heldOutPairs[t.color], t.shape, p.prompt);
  assert.throws(() => evalPrompts("train" as never), /prompt set: expected one of heldout, seen, got "train"/);
});
