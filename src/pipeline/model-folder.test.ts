import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../util/rng.js";
import { UNet, type UNetConfig } from "../models/unet.js";
import { T5TextEncoder } from "../text/t5-encoder.js";
import { WordEncoder } from "../text/word-encoder.js";
import { loadCascade, ModelFolderError, saveCascade, type EncoderConfig } from "./model-folder.js";

const tinyT5 = fileURLToPath(new URL("../../models/text/tiny-t5", import.meta.url));
const dModel = (JSON.parse(readFileSync(join(tinyT5, "config.json"), "utf8")) as { d_model: number }).d_model;
const unet = (textDim: number): UNetConfig => ({
  imageSize: 8, inChannels: 3, outChannels: 3, channels: 8, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 8, textDim, textAttention: "concat", selfAttention: true, textPooling: "attention", efficient: false, lowResCond: false, dropout: 0,
});

async function save(encoder: EncoderConfig, textDim: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "imagen-folder-"));
  await saveCascade(dir, encoder, [{ unet: new UNet(unet(textDim), new Rng(1)), parameterization: "eps", schedule: "cosine" }], "F16");
  return dir;
}

const exists = (p: string) => access(p).then(() => true, () => false);

test("a cascade with an embedded T5 folder saves and loads; it encodes exactly as the source folder does", async () => {
  const dir = await save({ class: "T5TextEncoder", type: "t5", path: tinyT5, maxLength: 16, embed: true }, dModel);
  try {
    assert.ok(await exists(join(dir, "text_encoder", "t5", "model.safetensors")));
    assert.ok(await exists(join(dir, "text_encoder", "t5", "tokenizer.json")));
    const cfg = JSON.parse(await readFile(join(dir, "text_encoder", "config.json"), "utf8"));
    assert.deepEqual(cfg, { class: "T5TextEncoder", type: "t5", path: "t5", maxLength: 16 });
    const { encoder, stages } = await loadCascade(dir);
    assert.ok(encoder instanceof T5TextEncoder);
    assert.equal(stages.length, 1);
    const direct = await T5TextEncoder.load(tinyT5, { maxLength: 16 });
    const [a, b] = [await encoder.encode(["three red circles"]), await direct.encode(["three red circles"])];
    assert.equal(encoder.id, direct.id);
    assert.deepEqual([a.batch, a.length, a.dim], [1, 16, dModel]);
    assert.deepEqual(a.embeddings, b.embeddings);
    assert.deepEqual(a.mask, b.mask);
    encoder.dispose();
    direct.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a cascade whose encoder spells capitals keeps that setting through save and load", async () => {
  const dir = await save({ class: "T5TextEncoder", type: "t5", path: tinyT5, maxLength: 16, embed: true, spellCapitals: true }, dModel);
  try {
    const { encoder } = await loadCascade(dir);
    const direct = await T5TextEncoder.load(tinyT5, { maxLength: 16, spellCapitals: true });
    assert.equal(encoder.id, direct.id);
    assert.notEqual(encoder.id, (await T5TextEncoder.load(tinyT5, { maxLength: 16 })).id);
    (encoder as T5TextEncoder).dispose();
    direct.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a cascade can reference a T5 folder by path (stored relative to text_encoder/)", async () => {
  const dir = await save({ class: "T5TextEncoder", type: "t5", path: tinyT5, maxLength: 8 }, dModel);
  try {
    assert.ok(!(await exists(join(dir, "text_encoder", "t5"))));
    const { encoder } = await loadCascade(dir);
    assert.ok(encoder instanceof T5TextEncoder);
    assert.equal(encoder.maxLength, 8);
    encoder.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the WordEncoder stand-in still round-trips", async () => {
  const dir = await save({ class: "WordEncoder", dim: 8, maxLength: 6, seed: 3 }, 8);
  try {
    const { encoder } = await loadCascade(dir);
    assert.ok(encoder instanceof WordEncoder);
    assert.equal(encoder.id, new WordEncoder(8, 6, 3).id);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("bad text encoder configs are refused naming the field", async () => {
  const dir = await save({ class: "WordEncoder", dim: 8, maxLength: 6, seed: 0 }, 8);
  const put = (v: unknown) => writeFile(join(dir, "text_encoder", "config.json"), JSON.stringify(v));
  try {
    await put({ class: "CLIP" });
    await assert.rejects(() => loadCascade(dir), (e: Error) => e instanceof ModelFolderError && /class expected "WordEncoder" or "T5TextEncoder", got "CLIP"/.test(e.message));
    await put({ class: "T5TextEncoder", type: "bert", path: "t5", maxLength: 8 });
    await assert.rejects(() => loadCascade(dir), /field "type" expected "t5", got "bert"/);
    await put({ class: "T5TextEncoder", type: "t5", maxLength: 8 });
    await assert.rejects(() => loadCascade(dir), /field "path" expected a folder path/);
    await put({ class: "T5TextEncoder", type: "t5", path: "t5", maxLength: 8, spellCapitals: 1 });
    await assert.rejects(() => loadCascade(dir), /field "spellCapitals" expected true or false \(or no key\), got 1/);
    await put({ class: "T5TextEncoder", type: "t5", path: "nowhere", maxLength: 8 });
    await assert.rejects(() => loadCascade(dir), (e: Error) => e instanceof ModelFolderError && /T5 folder .*nowhere does not load: .*config.json is missing/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
