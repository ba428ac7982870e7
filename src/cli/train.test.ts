import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTrain, trainingWarnings } from "./train.js";
import { runGenerate } from "./generate.js";
import { TrainConfigError } from "../train/train-config.js";
import { DatasetError, folderDataset, jsonlDataset } from "../data/datasets.js";
import { imageToPng } from "../data/png.js";
import { loadSafetensors, toFloat32 } from "../runtime/safetensors.js";

const unet = {
  imageSize: 8, inChannels: 3, outChannels: 3, channels: 8, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 8, textDim: 8, textAttention: "concat", selfAttention: true, textPooling: "attention", efficient: false, lowResCond: false, dropout: 0,
};
const config = (output: string, extra: Record<string, unknown> = {}) => ({
  output, seed: 1, textEncoder: { class: "WordEncoder", dim: 8, maxLength: 6 }, dataset: { kind: "toy", seed: 2 },
  stages: [
    { unet, steps: 4, batch: 2, lr: 1e-3, checkpointEvery: 2, sampleEvery: 2, sampleItems: 2, emaDecay: 0.9 },
    { unet: { ...unet, imageSize: 16, efficient: true, lowResCond: true }, parameterization: "v", steps: 2, batch: 2, lr: 1e-3, cropSize: 8 },
  ],
  ...extra,
});

test("imagen train: each stage resumes from its checkpoint, logs JSON lines, writes sample grids, then assembles a model generate loads", async () => {
  const root = await mkdtemp(join(tmpdir(), "imagen-train-"));
  const file = join(root, "train.json");
  await writeFile(file, JSON.stringify(config("run")));
  const part = await runTrain({ config: file, stage: "0", json: true, stopAt: "2" });
  assert.equal(part.losses.length, 2);
  assert.equal(part.modelDir, null);
  const whole = await runTrain({ config: file, stage: "0", json: true });
  assert.equal(whole.losses.length, 4, "resumed from step 2");
  assert.equal(whole.modelDir, null, "stage 1 is not trained yet");
  const log = (await readFile(join(root, "run", "stage_0", "train.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(log.map((r) => r.step), [1, 2, 3, 4]);
  assert.ok(log.every((r) => Number.isFinite(r.loss) && r.etaSeconds >= 0));
  assert.deepEqual(await readdir(join(root, "run", "stage_0", "samples")), ["step_0000002.png", "step_0000004.png"]);
  assert.ok((await readdir(join(root, "run", "text-cache"))).length > 0, "text embeddings cached on disk");
  const sr = await runTrain({ config: file, stage: "1", json: true });
  assert.equal(sr.modelDir, join(root, "run", "model"));
  const out = await runGenerate("a red square", {
    model: sr.modelDir as string, out: join(root, "out"), guidance: "2", seed: "1", sampler: "ddim", thresholding: "dynamic", augLevel: "0.1", batch: "1", steps: "2", json: true, textCache: join(root, "run", "text-cache"),
  });
  assert.equal(out.length, 1);
  assert.ok(existsSync(join(sr.modelDir as string, "stage_0", "training.json")));
  await rm(root, { recursive: true });
});

test("textStandardize: the text statistics are computed once from the training captions, kept beside the stage, and shipped in the model", async () => {
  const root = await mkdtemp(join(tmpdir(), "imagen-textstd-"));
  const file = join(root, "train.json");
  const base = config("run").stages[0];
  await writeFile(file, JSON.stringify(config("run", { stages: [{ ...base, steps: 2, sampleEvery: 0, textStandardize: 16 }] })));
  await runTrain({ config: file, stage: "0", json: true, stopAt: "1" });
  const statsFile = join(root, "run", "stage_0", "text_stats.json");
  const stats = JSON.parse(await readFile(statsFile, "utf8"));
  assert.equal(stats.mean.length, 8);
  assert.ok(stats.std.every((s: number) => s > 0.01), "a real spread per channel");
  // Resuming reads the file back (an edited file shows up in the model), and a broken one is refused by name.
  const edited = { mean: stats.mean.map((v: number) => v + 0.5), std: stats.std };
  await writeFile(statsFile, "{ not json");
  await assert.rejects(() => runTrain({ config: file, stage: "0", json: true }), /text_stats\.json: not JSON .*delete it to recompute it/);
  await writeFile(statsFile, JSON.stringify(edited));
  const done = await runTrain({ config: file, stage: "0", json: true });
  const shipped = JSON.parse(await readFile(join(done.modelDir as string, "stage_0", "config.json"), "utf8"));
  assert.deepEqual(shipped.unet.textStats, edited);
  const out = await runGenerate("a red square", {
    model: done.modelDir as string, out: join(root, "out"), guidance: "2", seed: "1", sampler: "ddim", thresholding: "dynamic", augLevel: "0.1", batch: "1", steps: "2", json: true, textCache: join(root, "run", "text-cache"),
  });
  assert.equal(out.length, 1);
  await rm(root, { recursive: true });
});

test("initFrom: a stage fine-tunes from a trained stage's weights (file or model-folder stage), and refuses missing or mismatched ones", async () => {
  const root = await mkdtemp(join(tmpdir(), "imagen-init-"));
  const [fileA, fileB] = [join(root, "a.json"), join(root, "b.json")];
  const stage0 = { ...config("a").stages[0], sampleEvery: 0 };
  await writeFile(fileA, JSON.stringify(config("a", { stages: [stage0] })));
  const a = await runTrain({ config: fileA, stage: "0", json: true });
  const weightsOf = async (f: string) => new Map([...(await loadSafetensors(f)).tensors].map(([k, t]) => [k, toFloat32(t)]));
  const trained = await weightsOf(join(root, "a", "stage_0", "final.safetensors"));
  // One step at a negligible lr from the trained weights ends where it started; from scratch it does not.
  const maxDiff = (x: Map<string, Float32Array>, y: Map<string, Float32Array>) =>
    Math.max(...[...x].map(([k, v]) => Math.max(...v.map((e, i) => Math.abs(e - (y.get(k) as Float32Array)[i])))));
  for (const from of [join(root, "a", "stage_0", "final.safetensors"), join(a.modelDir as string, "stage_0")]) {
    await rm(join(root, "b"), { recursive: true, force: true });
    await writeFile(fileB, JSON.stringify(config("b", { seed: 9, stages: [{ ...stage0, steps: 1, lr: 1e-9, initFrom: from }] })));
    await runTrain({ config: fileB, stage: "0", json: true });
    const tuned = await weightsOf(join(root, "b", "stage_0", "final.safetensors"));
    assert.ok(maxDiff(tuned, trained) < 2e-3, `${from}: starts from the trained weights (fp16 in the model folder)`);
  }
  await rm(join(root, "b"), { recursive: true, force: true });
  await writeFile(fileB, JSON.stringify(config("b", { seed: 9, stages: [{ ...stage0, steps: 1, lr: 1e-9 }] })));
  await runTrain({ config: fileB, stage: "0", json: true });
  assert.ok(maxDiff(await weightsOf(join(root, "b", "stage_0", "final.safetensors")), trained) > 0.05, "without initFrom the stage starts from its random init");
  await writeFile(fileB, JSON.stringify(config("c", { stages: [{ ...stage0, initFrom: "nowhere.safetensors" }] })));
  await assert.rejects(() => runTrain({ config: fileB, stage: "0", json: true }), /stages\[0\]\.initFrom: .*nowhere\.safetensors does not exist; give a \.safetensors file or a model folder's stage folder/);
  await writeFile(fileB, JSON.stringify(config("c", { stages: [{ ...stage0, unet: { ...unet, channels: 16 }, initFrom: join(root, "a", "stage_0", "final.safetensors") }] })));
  await assert.rejects(() => runTrain({ config: fileB, stage: "0", json: true }), /stages\[0\]\.initFrom: .*final\.safetensors does not fit the stage's U-Net config \(loadStateDict: .* has shape/);
  await writeFile(fileB, JSON.stringify(config("c", { stages: [{ ...stage0, initFrom: 7 }] })));
  await assert.rejects(() => runTrain({ config: fileB, stage: "0", json: true }), /"stages\[0\]\.initFrom" expected a non-empty string, got 7/);
  await rm(root, { recursive: true });
});

test("a model whose training loss never dropped gets a warning at generation", async () => {
  const dir = await mkdtemp(join(tmpdir(), "imagen-warn-"));
  await mkdir(join(dir, "stage_0"));
  await mkdir(join(dir, "stage_1"));
  await writeFile(join(dir, "stage_0", "training.json"), JSON.stringify({ steps: 100, lossStart: 1, lossEnd: 0.2 }));
  await writeFile(join(dir, "stage_1", "training.json"), JSON.stringify({ steps: 100, lossStart: 1, lossEnd: 0.98 }));
  const w = await trainingWarnings(dir);
  assert.equal(w.length, 1);
  assert.match(w[0], /stage 1 .* loss never dropped \(1\.0000 -> 0\.9800\)/);
  await rm(dir, { recursive: true });
});

test("bad training configs and datasets are refused with the field and the fix", async () => {
  const root = await mkdtemp(join(tmpdir(), "imagen-badcfg-"));
  const file = join(root, "c.json");
  const expectBad = async (cfg: unknown, re: RegExp, stage = "0") => {
    await writeFile(file, typeof cfg === "string" ? cfg : JSON.stringify(cfg));
    await assert.rejects(() => runTrain({ config: file, stage, json: true }), (e: Error) => re.test(e.message) || assert.fail(e.message));
  };
  await expectBad("{ not json", /cannot read it as JSON/);
  await expectBad({ ...config("r"), output: 3 }, /"output" expected a folder path/);
  await expectBad({ ...config("r"), stages: [{ unet: "imagen-xl", steps: 1 }] }, /"stages\[0\]\.unet" expected a preset \(imagen-base-64/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 0 }] }, /"stages\[0\]\.steps" expected an integer >= 1, got 0/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1, lr: "fast" }] }, /"stages\[0\]\.lr" expected a number in \(0, 1\)/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 100, lrRestarts: [60, 40] }] }, /"stages\[0\]\.lrRestarts" expected a list of increasing integer steps inside \(warmupSteps = 10, steps = 100\), got \[60,40\]/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 100, warmupSteps: 20, lrRestarts: [20] }] }, /"stages\[0\]\.lrRestarts" expected a list of increasing integer steps inside \(warmupSteps = 20, steps = 100\), got \[20\]/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 100, lrRestarts: [50], lrRestartScale: 2 }] }, /"stages\[0\]\.lrRestartScale" expected a number in \(0, 1\], got 2/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1, textStandardize: 0.5 }] }, /"stages\[0\]\.textStandardize" expected an integer from 1 to 100000 \(training captions/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1 }, { unet, steps: 1 }] }, /"stages\[1\]\.unet" expected a super-resolution U-Net/);
  await expectBad(config("r"), /--stage: expected an integer from 0 to 1, got "5"/, "5");
  await expectBad({ ...config("r"), textEncoder: { class: "T5TextEncoder", path: "t5", maxLength: 8, spellCapitals: "yes" } }, /"textEncoder\.spellCapitals" expected true or false, got "yes"/);
  await expectBad({ ...config("r"), stages: [{ unet: { ...unet, textLayers: 1.5 }, steps: 1 }] }, /"stages\[0\]\.unet": UNet textLayers: expected an integer from 0 to 8/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1, lrScales: [10] }] }, /"stages\[0\]\.lrScales" must be an object of parameter-name patterns to learning-rate factors/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1, lrScales: { "text_pos[": 10 } }] }, /"stages\[0\]\.lrScales": AdamW lrScales: "text_pos\[" is not a valid regular expression/);
  await expectBad({ ...config("r"), stages: [{ unet: { ...unet, textPositions: 1 }, steps: 1 }] }, /"stages\[0\]\.unet": UNet textPositions: expected true, false or no key/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1, highNoise: { share: 0.4, from: 1 } }] }, /"stages\[0\]\.highNoise" must be \{"share": a number in \[0, 1\], "from": a number in \[0, 1\)\}, e\.g\. \{"share": 0\.4, "from": 0\.9\}, got \{"share":0\.4,"from":1\}/);
  await expectBad({ ...config("r"), stages: [{ unet, steps: 1, highNoise: { share: 0.4, form: 0.9 } }] }, /"stages\[0\]\.highNoise" must be \{"share"/);
  await expectBad({ ...config("r"), stages: [{ unet: { ...unet, layoutMap: 5 }, steps: 1 }] }, /"stages\[0\]\.unet": UNet layoutMap: a 5x5 map does not fit the 8x8 level/);
  await expectBad({ ...config("r"), dataset: { kind: "scenes", seed: 0 }, stages: [{ unet, steps: 1, grounding: 0.01 }] }, /"stages\[0\]\.grounding" expected no key unless the U-Net has token placement \("tokenPlacement": 8\), got 0\.01/);
  await expectBad({ ...config("r"), stages: [{ unet: { ...unet, tokenPlacement: 4 }, steps: 1, grounding: 0.01 }] }, /"stages\[0\]\.grounding" expected no key unless the dataset is the generated scenes/);
  await expectBad({ ...config("r"), dataset: { kind: "scenes", seed: 0 }, stages: [{ unet: { ...unet, tokenPlacement: 4 }, steps: 1, grounding: -1 }] }, /"stages\[0\]\.grounding" expected a loss weight from 0 to 100/);
  await expectBad({ ...config("r"), sampling: { sampler: "euler" } }, /sampling\.sampler: expected one of ancestral, ddim, dpmpp2m, got "euler"/);
  await expectBad({ ...config("r"), sampling: { thresholding: "soft" } }, /sampling\.thresholding: expected none, static, dynamic or dynamic:P \(e\.g\. dynamic:99\.5\), got "soft"/);
  await expectBad({ ...config("r"), dataset: { kind: "imagenet" } }, /"dataset\.kind" expected one of scenes, toy, jsonl, folder/);
  await expectBad({ ...config("r"), dataset: { kind: "scenes", seed: 0, kindWeights: [1, 2] } }, /"dataset\.kindWeights" expected an object of scene kind -> weight/);
  await expectBad({ ...config("r"), dataset: { kind: "scenes", seed: 0, kindWeights: { position: 1 } } }, /"dataset\.kindWeights": scene kind weights: unknown kind "position"/);
  await assert.rejects(() => runTrain({ config: file, stage: "0", json: true }), TrainConfigError);
  // A user's JSONL dataset: a corrupt image or a bad line names the file, the line and the fix.
  const good = imageToPng(new Float32Array(3 * 4 * 6).fill(0.5), 4, 6);
  await writeFile(join(root, "a.png"), good);
  await writeFile(join(root, "bad.png"), good.slice(0, 30));
  await writeFile(join(root, "d.jsonl"), `{"image": "a.png", "caption": "a grey thing"}\n\n{"image": "bad.png", "caption": "broken"}\n`);
  const ds = jsonlDataset(join(root, "d.jsonl"));
  assert.equal(ds.size, 2);
  assert.equal(ds.item(0).image(4).length, 3 * 4 * 4);
  assert.throws(() => ds.item(1).image(4), (e: Error) => e instanceof DatasetError && /d\.jsonl line 3: image .*bad\.png does not load/.test(e.message));
  await writeFile(join(root, "e.jsonl"), `{"image": "a.png"}\n`);
  assert.throws(() => jsonlDataset(join(root, "e.jsonl")), /e\.jsonl line 1: expected \{"image": "file\.png", "caption": "non-empty text"\}/);
  // A folder of name.png + name.txt pairs; an image without its caption file is named.
  const folder = join(root, "imgs");
  await mkdir(folder);
  await writeFile(join(folder, "a.png"), good);
  await writeFile(join(folder, "a.txt"), "a grey thing\n");
  const fd = folderDataset(folder);
  assert.equal(fd.size, 1);
  assert.equal(fd.item(0).caption, "a grey thing");
  assert.equal(fd.item(3).image(4).length, 3 * 4 * 4);
  await writeFile(join(folder, "b.png"), good);
  assert.throws(() => folderDataset(folder), /imgs: b\.png has no caption file b\.txt/);
  await rm(root, { recursive: true });
});

test("the default cascade's config is valid: 32 px base, 128 px SR on the scenes with the tiny T5", async () => {
  const { parseTrainConfig } = await import("../train/train-config.js");
  const cfg = parseTrainConfig(fileURLToPath(new URL("../../examples/default-cascade.json", import.meta.url)));
  assert.deepEqual(cfg.stages.map((s) => s.unet.imageSize), [32, 128]);
  assert.equal(cfg.dataset.kind, "scenes");
  assert.equal(cfg.textEncoder.class, "T5TextEncoder");
  // The shipped cascade is a chain of fine-tunes, each starting both stages from the previous config's final
  // weights; npm run train:default runs every link in order and ships the last one.
  const chain = ["default-cascade", "default-finetune", "default-finetune-2", "default-finetune-3", "default-finetune-4", "default-finetune-5", "default-finetune-6", "default-finetune-7", "grounding-finetune"];
  let prev = cfg;
  for (const name of chain.slice(1)) {
    const ft = parseTrainConfig(fileURLToPath(new URL(`../../examples/${name}.json`, import.meta.url)));
    assert.deepEqual(ft.stages.map((s) => s.initFrom), prev.stages.map((_, i) => join(prev.output, `stage_${i}`, "final.safetensors")), name);
    // Links may add text layers, attention or text positions, a layout map or token placement to a U-Net (zero-initialised,
    // so the previous weights load unchanged) and spell capitalised words in the captions; nothing else of the U-Nets or the encoder changes.
    const { textLayers: _, attnPositions: ___, textPositions: ____, layoutMap: _____, tokenPlacement: ______, ...unet } = ft.stages[0].unet;
    assert.deepEqual([unet, ...ft.stages.slice(1).map((s) => s.unet)], cfg.stages.map((s) => s.unet), name);
    const { spellCapitals: __, ...encoder } = ft.textEncoder as { spellCapitals?: boolean };
    assert.deepEqual(encoder, cfg.textEncoder, name);
    prev = ft;
  }
  const pkg = JSON.parse(await readFile(fileURLToPath(new URL("../../package.json", import.meta.url)), "utf8")) as { scripts: Record<string, string> };
  const runs = [...pkg.scripts["train:default"].matchAll(/--config examples\/([\w-]+)\.json --stage (\d)/g)].map((m) => `${m[1]}:${m[2]}`);
  assert.deepEqual(runs, chain.flatMap((c) => [`${c}:0`, `${c}:1`]));
  assert.match(pkg.scripts["train:default"], new RegExp(`ship-default\\.ts --config examples/${chain[chain.length - 1]}\\.json$`));
});

test("the README's example config is valid", async () => {
  const { parseTrainConfig } = await import("../train/train-config.js");
  const cfg = parseTrainConfig(fileURLToPath(new URL("../../examples/train-toy.json", import.meta.url)));
  assert.equal(cfg.stages.length, 2);
  assert.equal(cfg.stages[1].unet.imageSize, 32);
  assert.match(cfg.output, /runs[\\/]toy$/);
  // The layout-map experiment (session 23, not shipped) fine-tunes the shipped cascade's final run.
  const lay = parseTrainConfig(fileURLToPath(new URL("../../examples/layout-finetune.json", import.meta.url)));
  assert.equal(lay.stages[0].unet.layoutMap, 8);
  assert.deepEqual(lay.stages[0].highNoise, { share: 0.4, from: 0.9 });
  assert.match(lay.stages[0].initFrom ?? "", /runs[\\/]default-ft8[\\/]stage_0[\\/]final\.safetensors$/);
  // The shipped cascade's last link (session 24): the same run with token placement and the grounding loss instead of the layout map.
  const ground = parseTrainConfig(fileURLToPath(new URL("../../examples/grounding-finetune.json", import.meta.url)));
  const { tokenPlacement, ...groundUnet } = ground.stages[0].unet;
  const { layoutMap: _, ...layUnet } = lay.stages[0].unet;
  assert.equal(tokenPlacement, 8);
  assert.deepEqual(groundUnet, layUnet);
  assert.equal(ground.stages[0].grounding, 0.01);
  assert.deepEqual(ground.stages[0].lrScales, { "^place\\.": 5 });
});
