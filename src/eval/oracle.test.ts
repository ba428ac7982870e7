import { test } from "node:test";
import assert from "node:assert/strict";
import { heldOutPairs, heldOutWords, randomScene, renderScene, signWords, type Relation, type Scene } from "../data/scenes.js";
import { judge, readSign } from "./oracle.js";
import { evalPrompts } from "./prompts.js";
import { Rng } from "../util/rng.js";

/** A 128 px render box-blurred (3x3), scaled towards black by `tint` and given Gaussian noise: a generated image's flaws. */
function degrade(img: Float32Array, S: number, tint: number, noise: number, rng: Rng): Float32Array {
  const n = S * S, out = new Float32Array(img.length), z = rng.normal(img.length);
  for (let c = 0; c < 3; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    let acc = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) acc += img[c * n + Math.min(S - 1, Math.max(0, y + dy)) * S + Math.min(S - 1, Math.max(0, x + dx))];
    out[c * n + y * S + x] = (acc / 9 + 1) * tint - 1 + noise * z[c * n + y * S + x];
  }
  return out;
}

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

test("oracle: reads every sign word through blur, a darker tint and noise, and does not read words into random marks", () => {
  const rng = new Rng(5), S = 128;
  const words = [...signWords, ...heldOutWords];
  const sceneOf = (word: string, i: number) => {
    const s = randomScene(0, i);
    s.items = [];
    const [hw, hh] = [((word.length * 6 - 1 + 4) * 4) / (2 * S), (11 * 4) / (2 * S)]; // half the sign's size, as a share of the image
    s.sign = { word, x: hw + 0.01 + (1 - 2 * hw - 0.02) * (((i * 7) % 10) / 9), y: hh + 0.01 + (1 - 2 * hh - 0.02) * (((i * 3) % 10) / 9), cell: 4 };
    return s;
  };
  for (const [tint, noise] of [[1, 0], [0.9, 0], [0.92, 0.05]]) {
    const misread = words.filter((w, i) => readSign(degrade(renderScene(sceneOf(w, i), S), S, tint, noise, rng), S) !== w);
    assert.ok(misread.length <= 1, `tint ${tint}, noise ${noise}: misread ${misread.join(", ")}`);
  }
  // A sign of random marks: never read as the word asked for.
  let hits = 0;
  for (let i = 0; i < 40; i++) {
    const s = sceneOf("ZZZ", i), img = renderScene(s, S), n = S * S;
    const cx = Math.round(s.sign!.x * S), cy = Math.round(s.sign!.y * S);
    for (let y = cy - 14; y < cy + 14; y++) for (let x = cx - 34; x < cx + 34; x++) {
      const v = rng.uniform(1)[0] < 0.4 ? -0.9 : 0.9;
      for (let c = 0; c < 3; c++) img[c * n + y * S + x] = v;
    }
    if (readSign(img, S) === heldOutWords[i % heldOutWords.length]) hits++;
  }
  assert.equal(hits, 0);
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
