// The cascade shipped in models/default: `imagen generate` uses it when no --model is given, the same seed
// gives the same bytes, and `imagen eval` scores it; the background it follows stays above a floor.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodePng } from "../src/data/png.js";
import { runGenerate, type GenerateFlags } from "../src/cli/generate.js";
import { defaultModelDir } from "../src/cli/default-model.js";
import { loadCascade } from "../src/pipeline/model-folder.js";
import { runEval, formatReport, type EvalFlags } from "../src/cli/eval.js";

const flags = (out: string, extra: Partial<GenerateFlags> = {}): GenerateFlags => ({
  out, guidance: "4", seed: "1", sampler: "dpmpp2m", thresholding: "dynamic", augLevel: "0.2", batch: "1", json: true, ...extra,
});

test("shipped model: a 32 px base and a 128 px super-resolution stage with the tiny T5, all fp16", async () => {
  const m = await loadCascade(defaultModelDir());
  assert.deepEqual(m.stages.map((s) => s.unet.config.imageSize), [32, 128]);
  assert.equal(m.encoder.maxLength, 32);
  const index = JSON.parse(await readFile(join(defaultModelDir(), "text_encoder", "config.json"), "utf8"));
  assert.equal(index.class, "T5TextEncoder");
});

test("shipped model: generate without --model writes a 128 px PNG, byte-identical for the same seed", async () => {
  const out = await mkdtemp(join(tmpdir(), "imagen-default-"));
  const prompt = "a red apple to the left of a blue ball";
  const [a] = await runGenerate(prompt, flags(join(out, "a")));
  const [b] = await runGenerate(prompt, flags(join(out, "b")));
  const [pa, pb] = [await readFile(a), await readFile(b)];
  assert.deepEqual(pa, pb);
  const png = decodePng(pa);
  assert.equal(png.width, 128);
  assert.equal(png.height, 128);
  assert.match(png.text.parameters, /Model: default/);
  await assert.rejects(runGenerate(prompt, flags(join(out, "c"), { guidance: "NaN" })), /--guidance/);
});

const evalFlags = (extra: Partial<EvalFlags> = {}): EvalFlags => ({ samples: "1", seed: "0", guidance: "4", json: true, ...extra });

test("imagen eval: per-category scores of the shipped model; --stage scores the base at 32 px", async () => {
  const r = await runEval(evalFlags({ limit: "2" })); // "a red triangle", "... on a white background"
  assert.equal(r.prompts, 2);
  assert.equal(r.stage, 1);
  assert.equal(r.size, 128);
  assert.deepEqual(Object.keys(r.categories).sort(), ["background", "colors"]);
  assert.equal(r.categories.colors.total, 4); // colour + object, per prompt
  assert.equal(r.categories.background.total, 1);
  assert.match(formatReport(r), /stage 1 \(128 px\): 2 held-out prompts x 1 samples, guidance 4, ancestral sampler \(100 steps\), static thresholding, aug level 0.2/, "the model's recommended sampler, steps and thresholding");
  assert.equal(r.augLevel, 0.2, "the same aug level as imagen generate by default");
  await assert.rejects(runEval(evalFlags({ stage: "2" })), /--stage: expected an integer from 0 to 1/);
  await assert.rejects(runEval(evalFlags({ samples: "0" })), /--samples/);
  await assert.rejects(runEval(evalFlags({ augLevel: "1.5" })), /--aug-level: expected a number from 0 to 1, got "1.5"/);
});

test("shipped model: its base follows the stated background colour (a floor; chance is 1 in 3)", async () => {
  // The first 16 held-out prompts are the colour prompts; 8 of them state a background. Measured: 6/8.
  const r = await runEval(evalFlags({ limit: "16", stage: "0" }));
  assert.equal(r.size, 32);
  assert.equal(r.categories.background.total, 8);
  assert.ok(r.categories.background.correct >= 5, `background right in ${r.categories.background.correct}/8`);
});
