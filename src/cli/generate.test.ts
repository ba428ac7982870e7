import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { UNet, type UNetConfig } from "../models/unet.js";
import { saveCascade, loadCascade, ModelFolderError, type SamplingDefaults } from "../pipeline/model-folder.js";
import { decodePng } from "../data/png.js";
import { runGenerate, type GenerateFlags } from "./generate.js";

const base: UNetConfig = {
  imageSize: 8, inChannels: 3, outChannels: 3, channels: 8, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 8, textDim: 8, textAttention: "concat", selfAttention: true, textPooling: "attention", efficient: false, lowResCond: false, dropout: 0,
};

async function tinyModel(sampling: SamplingDefaults = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "imagen-model-"));
  await saveCascade(dir, { class: "WordEncoder", dim: 8, maxLength: 6, seed: 0 }, [
    { unet: new UNet(base, new Rng(1)), parameterization: "eps", schedule: "cosine" },
    { unet: new UNet({ ...base, imageSize: 16, efficient: true, lowResCond: true }, new Rng(2)), parameterization: "v", schedule: "linear" },
  ], "F16", sampling);
  return dir;
}

const flags = (model: string, out: string, extra: Partial<GenerateFlags> = {}): GenerateFlags => ({
  model, out, guidance: "3", seed: "5", sampler: "ddim", thresholding: "dynamic", augLevel: "0.2", batch: "2", steps: "3", json: true, ...extra,
});

test("generate writes PNGs with A1111-style parameters; the same seed gives the same bytes", async () => {
  const model = await tinyModel();
  const out = await mkdtemp(join(tmpdir(), "imagen-out-"));
  const a = await runGenerate("a red square", flags(model, join(out, "a")));
  const b = await runGenerate("a red square", flags(model, join(out, "b")));
  assert.equal(a.length, 2);
  const [pa, pb] = [await readFile(a[0]), await readFile(b[0])];
  assert.deepEqual(pa, pb);
  const png = decodePng(pa);
  assert.equal(png.width, 16);
  assert.match(png.text.parameters, /^a red square\nSteps: 3, Sampler: ddim, CFG scale: 3, Seed: 5/);
  const c = await runGenerate("a red square", flags(model, join(out, "c"), { seed: "6" }));
  assert.notDeepEqual(await readFile(c[0]), pa);
  await rm(out, { recursive: true });
  await rm(model, { recursive: true });
});

test("a model folder's recommended thresholding applies when --thresholding is not given; the flag overrides it", async () => {
  const model = await tinyModel({ thresholding: "static" });
  const out = await mkdtemp(join(tmpdir(), "imagen-out-"));
  try {
    assert.deepEqual((await loadCascade(model)).sampling, { thresholding: "static" });
    const text = async (dir: string, extra: Partial<GenerateFlags>) => decodePng(await readFile((await runGenerate("a red square", flags(model, join(out, dir), extra)))[0])).text.parameters;
    const [byModel, asked, explicitStatic] = [await text("m", { thresholding: undefined }), await text("d", { thresholding: "dynamic" }), await text("s", { thresholding: "static" })];
    assert.match(byModel, /Thresholding: static/);
    assert.match(asked, /Thresholding: dynamic/);
    assert.equal(byModel, explicitStatic);
    assert.deepEqual(await readFile(join(out, "m", "5-0.png")), await readFile(join(out, "s", "5-0.png")));
    assert.notDeepEqual(await readFile(join(out, "m", "5-0.png")), await readFile(join(out, "d", "5-0.png")));
    // Without a recommendation, Imagen's dynamic thresholding.
    const plain = await tinyModel();
    assert.match(decodePng(await readFile((await runGenerate("a red square", flags(plain, join(out, "p"), { thresholding: undefined })))[0])).text.parameters, /Thresholding: dynamic/);
    assert.deepEqual((await loadCascade(plain)).sampling, {});
    await rm(plain, { recursive: true });
    // A bad recommendation is refused naming the file and field.
    const index = JSON.parse(await readFile(join(model, "model_index.json"), "utf8"));
    await writeFile(join(model, "model_index.json"), JSON.stringify({ ...index, sampling: { thresholding: "hard" } }));
    await assert.rejects(loadCascade(model), (e: Error) => e instanceof ModelFolderError && /model_index\.json sampling\.thresholding: expected none, static, dynamic or dynamic:P .*got "hard"/.test(e.message));
    await writeFile(join(model, "model_index.json"), JSON.stringify({ ...index, sampling: { eta: 1 } }));
    await assert.rejects(loadCascade(model), /model_index\.json sampling: unknown setting "eta"; the settings are: thresholding, guidance, sampler, steps/);
  } finally {
    await rm(out, { recursive: true, force: true });
    await rm(model, { recursive: true, force: true });
  }
});

test("a model folder's recommended sampler and steps apply when the flags are not given; its steps only go with its sampler", async () => {
  const model = await tinyModel({ sampler: "ancestral", steps: 4 });
  const out = await mkdtemp(join(tmpdir(), "imagen-out-"));
  try {
    assert.deepEqual((await loadCascade(model)).sampling, { sampler: "ancestral", steps: 4 });
    const run = async (dir: string, extra: Partial<GenerateFlags>) => {
      const file = (await runGenerate("a red square", flags(model, join(out, dir), extra)))[0];
      return { text: decodePng(await readFile(file)).text.parameters, bytes: await readFile(file) };
    };
    const byModel = await run("m", { sampler: undefined, steps: undefined });
    assert.match(byModel.text, /Steps: 4, Sampler: ancestral,/);
    assert.deepEqual(byModel.bytes, (await run("s", { sampler: "ancestral", steps: "4" })).bytes, "the same as asking for it");
    assert.match((await run("d", { sampler: "ddim", steps: undefined })).text, /Steps: 50, Sampler: ddim,/, "another sampler: its own default steps");
    assert.match((await run("k", { sampler: undefined, steps: "2" })).text, /Steps: 2, Sampler: ancestral,/, "--steps overrides");
    // Steps without a sampler belong to dpmpp2m; no recommendation: dpmpp2m at its 25 steps.
    const stepsOnly = await tinyModel({ steps: 3 });
    assert.match(decodePng(await readFile((await runGenerate("a red square", flags(stepsOnly, join(out, "o"), { sampler: undefined, steps: undefined })))[0])).text.parameters, /Steps: 3, Sampler: dpmpp2m,/);
    const plain = await tinyModel();
    assert.match(decodePng(await readFile((await runGenerate("a red square", flags(plain, join(out, "p"), { sampler: undefined, steps: undefined })))[0])).text.parameters, /Steps: 25, Sampler: dpmpp2m,/);
    await Promise.all([rm(stepsOnly, { recursive: true }), rm(plain, { recursive: true })]);
    const index = JSON.parse(await readFile(join(model, "model_index.json"), "utf8"));
    await writeFile(join(model, "model_index.json"), JSON.stringify({ ...index, sampling: { sampler: "euler" } }));
    await assert.rejects(loadCascade(model), (e: Error) => e instanceof ModelFolderError && /model_index\.json sampling\.sampler: expected one of ancestral, ddim, dpmpp2m, got "euler"/.test(e.message));
    for (const bad of [0, 2.5, "10", 20000]) {
      await writeFile(join(model, "model_index.json"), JSON.stringify({ ...index, sampling: { steps: bad } }));
      await assert.rejects(loadCascade(model), (e: Error) => e instanceof ModelFolderError && /model_index\.json sampling\.steps: expected an integer from 1 to 10000/.test(e.message));
    }
  } finally {
    await rm(out, { recursive: true, force: true });
    await rm(model, { recursive: true, force: true });
  }
});

test("a model folder's recommended guidance applies when --guidance is not given; the flag overrides it; a bad one is refused", async () => {
  const model = await tinyModel({ guidance: 1.5 });
  const out = await mkdtemp(join(tmpdir(), "imagen-out-"));
  try {
    assert.deepEqual((await loadCascade(model)).sampling, { guidance: 1.5 });
    const run = async (dir: string, extra: Partial<GenerateFlags>) => {
      const file = (await runGenerate("a red square", flags(model, join(out, dir), extra)))[0];
      return { text: decodePng(await readFile(file)).text.parameters, bytes: await readFile(file) };
    };
    const [byModel, same, asked] = [await run("m", { guidance: undefined }), await run("s", { guidance: "1.5" }), await run("a", { guidance: "4" })];
    assert.match(byModel.text, /CFG scale: 1\.5,/);
    assert.deepEqual(byModel.bytes, same.bytes);
    assert.notDeepEqual(byModel.bytes, asked.bytes);
    const plain = await tinyModel();
    assert.match(decodePng(await readFile((await runGenerate("a red square", flags(plain, join(out, "p"), { guidance: undefined })))[0])).text.parameters, /CFG scale: 4,/);
    await rm(plain, { recursive: true });
    const index = JSON.parse(await readFile(join(model, "model_index.json"), "utf8"));
    for (const bad of [-1, "2", 1e9]) {
      await writeFile(join(model, "model_index.json"), JSON.stringify({ ...index, sampling: { guidance: bad } }));
      await assert.rejects(loadCascade(model), (e: Error) => e instanceof ModelFolderError && /model_index\.json sampling\.guidance: expected a classifier-free guidance weight from 0 to 100/.test(e.message));
    }
  } finally {
    await rm(out, { recursive: true, force: true });
    await rm(model, { recursive: true, force: true });
  }
});

test("generate refuses bad input with the flag and the valid range", async () => {
  const model = await tinyModel();
  const out = join(tmpdir(), "imagen-never");
  await assert.rejects(() => runGenerate("x", flags(model, out, { steps: "0" })), /--steps: expected an integer from 1 to 10000, got "0"/);
  await assert.rejects(() => runGenerate("x", flags(model, out, { guidance: "NaN" })), /--guidance: expected a finite number >= 0/);
  await assert.rejects(() => runGenerate("x", flags(model, out, { guidance: "-1" })), /--guidance/);
  await assert.rejects(() => runGenerate("x", flags(model, out, { sampler: "euler" })), /--sampler: expected one of ancestral, ddim, dpmpp2m/);
  await assert.rejects(() => runGenerate("x", flags(model, out, { thresholding: "dynamic:abc" })), /--thresholding/);
  await assert.rejects(() => runGenerate("y".repeat(10001), flags(model, out)), /10001 characters is too long/);
  await rm(model, { recursive: true });
});

test("a corrupt model folder is refused naming the file and field", async () => {
  const model = await tinyModel();
  await assert.rejects(() => loadCascade(join(model, "nope")), (e: Error) => e instanceof ModelFolderError && /model_index.json is missing/.test(e.message));
  const cfgPath = join(model, "stage_1", "config.json");
  const cfg = JSON.parse(await readFile(cfgPath, "utf8"));
  await writeFile(cfgPath, JSON.stringify({ ...cfg, schedule: "quadratic" }));
  await assert.rejects(() => loadCascade(model), /stage_1\/config.json: field "schedule" expected one of cosine, linear, got "quadratic"/);
  await writeFile(cfgPath, JSON.stringify({ ...cfg, unet: { ...cfg.unet, channels: 16 } }));
  await assert.rejects(() => loadCascade(model), /stage_1\/model.safetensors does not match stage_1\/config.json/);
  await writeFile(cfgPath, "{ not json");
  await assert.rejects(() => loadCascade(model), /stage_1\/config.json is not a JSON object/);
  await writeFile(join(model, "stage_0", "model.safetensors"), new Uint8Array([0x80, 0x02, 1, 2, 3, 4, 5, 6, 7, 8]));
  await rm(model, { recursive: true });
});
