import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { evalPrompts } from "../eval/prompts.js";
import { formatReport, runEval } from "./eval.js";
import { loadCascade } from "../pipeline/model-folder.js";
import { defaultModelDir } from "./default-model.js";

const flags = { samples: "1", seed: "0", guidance: "4" };

test("imagen eval --prompts seen scores the seen-in-training set; a bad set is refused before loading", async () => {
  const r = await runEval({ ...flags, prompts: "seen", limit: "2", stage: "0", steps: "4" });
  assert.equal(r.promptSet, "seen");
  assert.deepEqual(r.items.map((i) => i.prompt), evalPrompts("seen").slice(0, 2).map((p) => p.prompt));
  assert.ok(r.items.every((i) => i.results.length > 0));
  assert.match(formatReport(r), /2 seen-in-training prompts x 1 samples/);
  await assert.rejects(runEval({ ...flags, prompts: "train", model: "/nonexistent" }), /--prompts: expected one of heldout, seen, got "train"/);
});

test("imagen eval --sampler/--thresholding: the report names them and the images follow them; bad values are refused before loading", async () => {
  const dir = await mkdtemp(join(tmpdir(), "imagen-eval-"));
  const base = { ...flags, limit: "1", stage: "0", steps: "3" };
  const a = await runEval({ ...base, out: join(dir, "a") });
  const b = await runEval({ ...base, sampler: "ancestral", thresholding: "none", out: join(dir, "b") });
  const c = await runEval({ ...base, sampler: "ancestral", thresholding: "none", out: join(dir, "c") });
  assert.equal(a.sampler, (await loadCascade(defaultModelDir())).sampling.sampler ?? "dpmpp2m", "the model's recommended sampler");
  assert.equal(a.steps, 3);
  assert.equal(a.thresholding, (await loadCascade(defaultModelDir())).sampling.thresholding ?? "dynamic", "the model's recommendation");
  const { guidance: _, ...noGuidance } = base;
  assert.equal((await runEval({ ...noGuidance, limit: "1", stage: "0", steps: "1" })).guidance, (await loadCascade(defaultModelDir())).sampling.guidance ?? 4, "the model's guidance");
  assert.equal(b.sampler, "ancestral");
  assert.match(formatReport(b), /ancestral sampler \(3 steps\), none thresholding/);
  const png = (d: string) => readFile(join(dir, d, "000-0.png"));
  assert.notDeepEqual(await png("a"), await png("b"));
  assert.deepEqual(await png("b"), await png("c"));
  await assert.rejects(runEval({ ...flags, sampler: "euler", model: "/nonexistent" }), /--sampler: expected one of ancestral, ddim, dpmpp2m, got "euler"/);
  await assert.rejects(runEval({ ...flags, thresholding: "dynamic:x", model: "/nonexistent" }), /--thresholding: expected none, static, dynamic or dynamic:P/);
  await assert.rejects(runEval({ ...flags, guidance: "NaN", model: "/nonexistent" }), /--guidance: expected a finite number >= 0, got "NaN"/);
  await rm(dir, { recursive: true, force: true });
});

test("imagen eval --category scores one category, each prompt with the seed it has in the whole set; a bad one is refused before loading", async () => {
  const dir = await mkdtemp(join(tmpdir(), "imagen-eval-cat-"));
  try {
    const first = evalPrompts().findIndex((p) => p.scene.claim.category === "positional");
    const base = { ...flags, stage: "0", steps: "2" };
    const one = await runEval({ ...base, category: "positional", limit: "1", out: join(dir, "one") });
    assert.deepEqual(Object.keys(one.categories).filter((c) => c !== "background"), ["positional"]);
    assert.equal(one.items[0].prompt, evalPrompts()[first].prompt);
    await runEval({ ...base, limit: String(first + 1), out: join(dir, "all") });
    const name = `${String(first).padStart(3, "0")}-0.png`;
    assert.deepEqual(await readFile(join(dir, "one", name)), await readFile(join(dir, "all", name)), "the same image as in the whole set");
    assert.equal((await runEval({ ...base, category: "text" })).prompts, evalPrompts().filter((p) => p.scene.claim.category === "text").length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await assert.rejects(runEval({ ...flags, category: "shapes", model: "/nonexistent" }), /--category: expected one of colors, counting, positional, text, got "shapes"/);
});
