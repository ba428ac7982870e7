import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/rng.js";
import { input } from "../graph/build.js";
import { grad } from "../graph/autodiff.js";
import { mul, sum } from "../graph/ops-basic.js";
import { evaluate, nd, type NDArray } from "../graph/interpret.js";
import { compileGraph } from "../runtime/session.js";
import type { HostTensor } from "../runtime/host.js";
import { bindParameters } from "../nn/module.js";
import { UNet, type UNetConfig } from "./unet.js";
import { AttnBlock, positionFeatureCount, positionFeatures } from "./blocks.js";
import { LayoutMap, TokenPlacement } from "./layout-map.js";
import { presetByName } from "./presets.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveSafetensors } from "../runtime/safetensors.js";
import { loadInitWeights } from "../cli/train.js";

const tinyBase: UNetConfig = {
  imageSize: 8, inChannels: 3, outChannels: 3, channels: 8, channelMults: [1, 2], numResBlocks: [1, 1], attnLevels: [1],
  headDim: 8, textDim: 6, textAttention: "concat", selfAttention: true, textPooling: "both", efficient: false, lowResCond: false, dropout: 0,
};
const tinySr: UNetConfig = { ...tinyBase, efficient: true, lowResCond: true, numResBlocks: [1, 2], textPooling: "attention", textAttention: "cross" };

/** Gradient of a scalar through the whole U-Net: float64 reference vs finite differences on sampled weights, and ORT vs reference. */
async function gradCheck(cfg: UNetConfig, prepare?: (m: UNet) => void) {
  const rng = new Rng(1);
  const model = new UNet(cfg, rng.split("init"));
  prepare?.(model);
  const B = 2, S = cfg.imageSize, L = 3;
  const feeds: Record<string, NDArray> = {
    x: nd([B, 3, S, S], rng.normal(B * 3 * S * S)), t: nd([B], [0.3, 0.8]), text: nd([B, L, cfg.textDim], rng.normal(B * L * cfg.textDim)),
    mask: nd([B, L], [1, 1, 0, 1, 0, 0]), r: nd([B, 3, S, S], rng.normal(B * 3 * S * S)),
  };
  if (cfg.lowResCond) {
    feeds.lowRes = nd([B, 3, S, S], rng.normal(B * 3 * S * S));
    feeds.augLevel = nd([B], [0.1, 0.5]);
  }
  const ins = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, input(k, v.shape)]));
  const bound = bindParameters(model, "input");
  const params = [...model.namedParameters()];
  for (const [name, p] of params) feeds[name] = nd([...p.shape], p.data);
  const out = model.call({ x: ins.x, t: ins.t, text: ins.text, mask: ins.mask, lowRes: ins.lowRes, augLevel: ins.augLevel });
  const loss = sum(mul(out, ins.r));
  const picked = params.filter((_, i) => i % 3 === 0);
  const grads = grad(loss, [ins.x, ...picked.map(([, p]) => p.t)]);
  const allInputs = [...Object.values(ins), ...bound.inputs];
  bound.release();
  const refGrads = evaluate(grads, feeds);
  // finite differences on a few elements of each picked tensor and of x
  const targets: [string, number][] = [["x", 0], ["x", 77], ...picked.map(([n], i) => [n, (i * 7) % feeds[n].data.length] as [string, number])];
  for (const [name, idx] of targets) {
    const arr = feeds[name].data;
    const h = 1e-6, orig = arr[idx];
    arr[idx] = orig + h; const lp = evaluate([loss], feeds)[0].data[0];
    arr[idx] = orig - h; const lm = evaluate([loss], feeds)[0].data[0];
    arr[idx] = orig;
    const fd = (lp - lm) / (2 * h);
    const gi = name === "x" ? 0 : 1 + picked.findIndex(([n]) => n === name);
    const an = refGrads[gi].data[idx];
    assert.ok(Math.abs(fd - an) <= 1e-5 * Math.max(1, Math.abs(fd)), `${name}[${idx}]: analytic ${an} vs finite difference ${fd}`);
  }
  const compiled = await compileGraph({ ...Object.fromEntries(grads.map((g, i) => [`g${i}`, g])) }, allInputs);
  const host: Record<string, HostTensor> = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, { data: Float32Array.from(v.data), shape: v.shape }]));
  const got = (await compiled.run(host as never)) as Record<string, HostTensor>;
  compiled.dispose();
  refGrads.forEach((r, i) => {
    let scale = 1e-3, err = 0;
    r.data.forEach((v, k) => { scale = Math.max(scale, Math.abs(v)); err = Math.max(err, Math.abs(v - Number(got[`g${i}`].data[k]))); });
    // float32 through a whole U-Net vs float64: a few 1e-4 typical
    assert.ok(err / scale < 5e-3, `ORT gradient ${i} off by ${(err / scale).toExponential(2)}`);
  });
}

/** The U-Net's output for one batch (B = 2, t = 0.3 and 0.8), by the float64 reference evaluator. */
function forward(model: UNet, x: ArrayLike<number>, text: ArrayLike<number>, mask: number[], L: number): Float64Array | Float32Array {
  const B = 2, S = model.config.imageSize, D = model.config.textDim;
  const ins = { x: input("x", [B, 3, S, S]), t: input("t", [B]), text: input("text", [B, L, D]), mask: input("mask", [B, L]) };
  const bound = bindParameters(model, "input");
  const feeds: Record<string, NDArray> = { x: nd([B, 3, S, S], x), t: nd([B], [0.3, 0.8]), text: nd([B, L, D], text), mask: nd([B, L], mask) };
  for (const [name, p] of model.namedParameters()) feeds[name] = nd([...p.shape], p.data);
  const out = model.call(ins);
  bound.release();
  return evaluate([out], feeds)[0].data;
}

/** The largest absolute difference of two arrays. */
const maxDiff = (a: ArrayLike<number>, c: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - c[i])), 0);

/** Text [B, L, D] with tokens i and j of every caption swapped: the same words in another order. */
function swapTokens(text: Float32Array, B: number, L: number, D: number, i: number, j: number): Float32Array {
  const out = Float32Array.from(text);
  for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) [out[(b * L + i) * D + d], out[(b * L + j) * D + d]] = [text[(b * L + j) * D + d], text[(b * L + i) * D + d]];
  return out;
}

const B2 = 2, L4 = 4;

/** A tiny base U-Net with `extra` settings started (loadInitWeights) from the weights of one without them, saved in `dir`. */
async function startedFromPlain(extra: Partial<UNetConfig>, dir: string): Promise<{ plain: UNet; loaded: UNet; file: string }> {
  const plain = new UNet(tinyBase, new Rng(6));
  const file = join(dir, "plain.safetensors");
  await saveSafetensors(file, new Map([...plain.stateDict()].map(([k, v]) => [k, { dtype: "F32" as const, shape: [...v.shape], data: v.data }])));
  const loaded = new UNet({ ...tinyBase, ...extra }, new Rng(7));
  await loadInitWeights(loaded, file, "stages[0].initFrom");
  return { plain, loaded, file };
}

/** A batch of 2 images and 4-token captions (the first caption's last token padded), and the captions with tokens 0 and 2 swapped. */
function orderInputs(): { x: Float32Array; text: Float32Array; swapped: Float32Array; mask: number[] } {
  const rng = new Rng(5);
  const [D, S] = [tinyBase.textDim, tinyBase.imageSize];
  const x = rng.normal(B2 * 3 * S * S), text = rng.normal(B2 * L4 * D);
  return { x, text, swapped: swapTokens(text, B2, L4, D, 0, 2), mask: [1, 1, 1, 0, 1, 1, 1, 1] };
}

/**
 * An order-aware addition (`extra`) loaded onto weights without it: the same output as the plain U-Net, blind
 * to word order like it, until `wake` gives its zero-initialised weights values; then word order matters.
 */
async function checkOrderAddition(extra: Partial<UNetConfig>, wake: (m: UNet) => void, what: string, dir: string): Promise<UNet> {
  const { plain, loaded } = await startedFromPlain(extra, dir);
  const { x, text, swapped, mask } = orderInputs();
  const p = forward(plain, x, text, mask, L4);
  assert.ok(maxDiff(forward(loaded, x, text, mask, L4), p) < 1e-9, `zero-initialised ${what} change the output`);
  assert.ok(maxDiff(forward(loaded, x, swapped, mask, L4), p) < 1e-9, `before training, ${what} leave the U-Net blind to word order`);
  wake(loaded);
  assert.ok(maxDiff(forward(loaded, x, swapped, mask, L4), forward(loaded, x, text, mask, L4)) > 1e-3, `with ${what}, word order changes the output`);
  return plain;
}

/** Gives the text layers' zero-initialised output projections random values, so every text-layer weight gets a gradient. */
function wakeTextLayers(model: UNet, seed = 9): void {
  const rng = new Rng(seed);
  for (const [name, p] of model.namedParameters()) if (/^text_layers\.\d+\.(attn\.out|fc2)\./.test(name)) p.data = rng.normal(p.data.length).map((v) => v * 0.3);
}

test("base U-Net: gradients agree with finite differences and ORT", () => gradCheck(tinyBase));
test("Efficient SR U-Net (cross-attention text): gradients agree with finite differences and ORT", () => gradCheck(tinySr));

test("text layers: gradients through them agree with finite differences and ORT", () =>
  gradCheck({ ...tinyBase, textLayers: 2 }, (m) => wakeTextLayers(m)));

test("text layers start as the identity (weights without them load unchanged) and make the U-Net see word order", async () => {
  const dir = await mkdtemp(join(tmpdir(), "imagen-textlayers-"));
  try {
    const plain = await checkOrderAddition({ textLayers: 2 }, (m) => wakeTextLayers(m), "text layers", dir);
    // A file that lacks more than the text layers is still refused, naming the field.
    const partial = join(dir, "partial.safetensors");
    await saveSafetensors(partial, new Map([...plain.stateDict()].filter(([k]) => k !== "conv_out.bias").map(([k, v]) => [k, { dtype: "F32" as const, shape: [...v.shape], data: v.data }])));
    await assert.rejects(loadInitWeights(new UNet({ ...tinyBase, textLayers: 1 }, new Rng(7)), partial, "stages[0].initFrom"), /stages\[0\]\.initFrom: .*missing \[conv_out\.bias\]/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => new UNet({ ...tinyBase, textLayers: 9 }, new Rng(0)), /UNet textLayers: expected an integer from 0 to 8/);
});

/** Gives the attention blocks' zero-initialised position projections random values. */
function wakePositions(model: UNet, seed = 11): void {
  const rng = new Rng(seed);
  for (const [name, p] of model.namedParameters()) if (/attn(\.\d+)?\.pos\.weight$/.test(name)) p.data = rng.normal(p.data.length).map((v) => v * 0.5);
}

test("attention positions: gradients through them agree with finite differences and ORT (self and cross attention)", async () => {
  await gradCheck({ ...tinyBase, attnPositions: true }, (m) => wakePositions(m));
  await gradCheck({ ...tinySr, attnPositions: true }, (m) => wakePositions(m));
});

test("attention positions start at zero (weights without them load unchanged) and tell image tokens apart by place", async () => {
  const L = L4;
  const plain = new UNet(tinyBase, new Rng(6));
  const placed = new UNet({ ...tinyBase, attnPositions: true }, new Rng(6));
  // Same stream as without positions: every other weight initialises identically.
  for (const [k, v] of plain.stateDict()) assert.deepEqual(placed.stateDict().get(k)?.data, v.data, k);
  const dir = await mkdtemp(join(tmpdir(), "imagen-positions-"));
  try {
    const { loaded } = await startedFromPlain({ attnPositions: true }, dir);
    const { x, text, mask } = orderInputs();
    const p = forward(plain, x, text, mask, L);
    assert.ok(maxDiff(forward(loaded, x, text, mask, L), p) < 1e-9, "zero-initialised positions change the output");
    wakePositions(loaded);
    assert.ok(maxDiff(forward(loaded, x, text, mask, L), p) > 1e-3, "awake positions leave the output unchanged");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => new UNet({ ...tinyBase, attnPositions: 1 as unknown as boolean }, new Rng(0)), /UNet attnPositions: expected true, false or no key/);
});

/** Gives the text-position projection random values. */
function wakeTextPositions(model: UNet, seed = 13): void {
  const p = model.textPos;
  if (p) p.weight.data = new Rng(seed).normal(p.weight.data.length).map((v) => v * 0.5);
}

test("text positions: gradients through them agree with finite differences and ORT", () =>
  gradCheck({ ...tinyBase, textPositions: true }, (m) => wakeTextPositions(m)));

test("text positions start at zero (weights without them load unchanged) and make the U-Net see which word comes first", async () => {
  const plain = new UNet(tinyBase, new Rng(6));
  const indexed = new UNet({ ...tinyBase, textPositions: true }, new Rng(6));
  for (const [k, v] of plain.stateDict()) assert.deepEqual(indexed.stateDict().get(k)?.data, v.data, k);
  assert.deepEqual([...indexed.stateDict().keys()].filter((k) => !plain.stateDict().has(k)), ["text_pos.weight"]);
  const dir = await mkdtemp(join(tmpdir(), "imagen-textpos-"));
  try {
    await checkOrderAddition({ textPositions: true }, (m) => wakeTextPositions(m), "text positions", dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => new UNet({ ...tinyBase, textPositions: "yes" as unknown as boolean }, new Rng(0)), /UNet textPositions: expected true, false or no key/);
});

test("an attention block over a uniform image: the same output at every place without positions, different with them", () => {
  const [B, C, H, W, L, D] = [1, 8, 4, 4, 3, 6];
  const outputs = (positions: boolean) => {
    const block = new AttnBlock(C, new Rng(3), { heads: 2, textDim: D, text: "concat", selfAttention: true, positions });
    if (positions) block.pos?.weight.data.set(new Rng(4).normal(C * positionFeatureCount));
    const ins = { x: input("x", [B, C, H, W]), text: input("text", [B, L, D]), mask: input("mask", [B, L]) };
    const bound = bindParameters(block, "input");
    const feeds: Record<string, NDArray> = {
      x: nd([B, C, H, W], Array.from({ length: B * C * H * W }, (_, i) => 0.3 * (Math.floor(i / (H * W)) % 3) - 0.2)), // constant per channel
      text: nd([B, L, D], new Rng(5).normal(B * L * D)), mask: nd([B, L], [1, 1, 1]),
    };
    for (const [name, p] of block.namedParameters()) feeds[name] = nd([...p.shape], p.data);
    const out = block.call(ins.x, ins.text, ins.mask);
    bound.release();
    return evaluate([out], feeds)[0].data;
  };
  const spread = (y: ArrayLike<number>) => { // largest difference between two places, over channels
    let m = 0;
    for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) m = Math.max(m, Math.abs(y[c * H * W + i] - y[c * H * W]));
    return m;
  };
  assert.ok(spread(outputs(false)) < 1e-12, "without positions every place attends alike");
  assert.ok(spread(outputs(true)) > 1e-3, "with positions, places differ");
  // The features themselves: left and right (and top and bottom) halves are told apart by the lowest frequency.
  const f = positionFeatures(2, 2);
  assert.equal(f.length, 4 * positionFeatureCount);
  assert.ok(f[2] < 0 && f[positionFeatureCount + 2] > 0, "sin(pi x / 2) is negative on the left, positive on the right");
  assert.ok(f[0] < 0 && f[2 * positionFeatureCount] > 0, "sin(pi y / 2) is negative at the top, positive at the bottom");
});

test("U-Net configs are validated with the field and the valid range", () => {
  assert.throws(() => new UNet({ ...tinyBase, numResBlocks: [1] }, new Rng(0)), /numResBlocks: expected 2 integers >= 1/);
  assert.throws(() => new UNet({ ...tinyBase, imageSize: 9 }, new Rng(0)), /imageSize: expected a multiple of 2/);
  assert.throws(() => new UNet({ ...tinyBase, attnLevels: [2] }, new Rng(0)), /attnLevels: expected levels in 0..1/);
  assert.throws(() => presetByName("huge"), /unknown "huge"; choose one of/);
});

test("textStats: the U-Net standardises each text channel (padded tokens stay zero) before its text LayerNorm", () => {
  const rng = new Rng(3);
  const D = tinyBase.textDim, B = 2, L = 3, S = tinyBase.imageSize;
  const stats = { mean: Array.from({ length: D }, (_, c) => 0.5 * c - 1), std: Array.from({ length: D }, (_, c) => 0.25 + 0.5 * c) };
  const withStats = new UNet({ ...tinyBase, textStats: stats }, new Rng(4));
  const plain = new UNet(tinyBase, new Rng(4));
  const text = rng.normal(B * L * D).map((v, i) => v * 3 + stats.mean[i % D]);
  const mask = [1, 1, 0, 1, 0, 0];
  const manual = text.map((v, i) => (mask[Math.floor(i / D)] ? (v - stats.mean[i % D]) / stats.std[i % D] : 0));
  const x = rng.normal(B * 3 * S * S);
  const run = (model: UNet, t: ArrayLike<number>) => forward(model, x, t, mask, L);
  const a = run(withStats, text), b = run(plain, manual), c = run(plain, text);
  let err = 0, diff = 0;
  a.forEach((v, i) => { err = Math.max(err, Math.abs(v - b[i])); diff = Math.max(diff, Math.abs(v - c[i])); });
  assert.ok(err < 1e-5, `standardised inside vs outside differ by ${err}`);
  assert.ok(diff > 1e-3, "the statistics change the output");
  assert.throws(() => new UNet({ ...tinyBase, textStats: { mean: stats.mean.slice(1), std: stats.std } }, new Rng(0)), /UNet textStats: expected \{"mean": \[6 numbers\]/);
  assert.throws(() => new UNet({ ...tinyBase, textStats: { mean: stats.mean, std: stats.std.map((s, c) => (c === 2 ? 0 : s)) } }, new Rng(0)), /"std": \[6 numbers > 0\]/);
});

/**
 * A map added to every ResBlock (`extra`), loaded onto the weights of `plain`: the same output until `wake` gives
 * its zero-initialised weights values; then what it adds depends on the caption and differs between places
 * (another caption changes the output by different amounts on the left and the right half of the image).
 */
async function checkMapAddition(plain: UNet, extra: Partial<UNetConfig>, wake: (m: UNet) => void, what: string, dir: string): Promise<void> {
  const { loaded } = await startedFromPlain(extra, dir);
  const { x, text, mask } = orderInputs();
  const p = forward(plain, x, text, mask, L4);
  assert.ok(maxDiff(forward(loaded, x, text, mask, L4), p) < 1e-9, `a zero-initialised ${what} changes the output`);
  wake(loaded);
  const woken = forward(loaded, x, text, mask, L4);
  assert.ok(maxDiff(woken, p) > 1e-3, `an awake ${what} leaves the output unchanged`);
  const other = forward(loaded, x, text.map((v) => -v), mask, L4);
  const S = tinyBase.imageSize;
  const half = (right: boolean) => {
    let m = 0;
    for (let i = 0; i < woken.length; i++) if ((i % S >= S / 2) === right) m += Math.abs(woken[i] - other[i]);
    return m;
  };
  assert.ok(Math.abs(half(true) - half(false)) > 1e-3 * (half(true) + half(false)), `the caption changes both halves alike (${what})`);
}

/** Gives the layout map's zero-initialised output layer random values. */
function wakeLayout(model: UNet, seed = 15): void {
  const rng = new Rng(seed);
  for (const [name, p] of model.namedParameters()) if (/^layout\.fc2\./.test(name)) p.data = rng.normal(p.data.length).map((v) => v * 0.2);
}

test("layout map: gradients through it agree with finite differences and ORT (upsampled, exact and pooled to each level)", async () => {
  await gradCheck({ ...tinyBase, layoutMap: 4 }, (m) => wakeLayout(m));
  await gradCheck({ ...tinySr, layoutMap: 8 }, (m) => wakeLayout(m));
});

test("a layout map starts at zero (weights without it load unchanged), then puts the caption's content in places", async () => {
  const plain = new UNet(tinyBase, new Rng(6));
  const mapped = new UNet({ ...tinyBase, layoutMap: 2 }, new Rng(6));
  for (const [k, v] of plain.stateDict()) assert.deepEqual(mapped.stateDict().get(k)?.data, v.data, k);
  const added = [...mapped.stateDict().keys()].filter((k) => !plain.stateDict().has(k));
  assert.ok(added.length > 0 && added.every((k) => k.startsWith("layout.")), `added keys: ${added.join(", ")}`);
  // One projection per ResBlock: 1 + 1 down, 2 in the middle, 2 + 2 up.
  assert.equal(added.filter((k) => /^layout\.proj\.\d+\.weight$/.test(k)).length, 8);
  const dir = await mkdtemp(join(tmpdir(), "imagen-layout-"));
  try {
    await checkMapAddition(plain, { layoutMap: 2 }, (m) => wakeLayout(m), "layout map", dir);
    // It reads the words in order: the same words in another order give another output (no text positions here).
    await checkOrderAddition({ layoutMap: 2 }, (m) => wakeLayout(m), "a layout map", dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => new UNet({ ...tinyBase, layoutMap: 3 }, new Rng(0)), /UNet layoutMap: a 3x3 map does not fit the 8x8 level/);
  assert.throws(() => new UNet({ ...tinyBase, layoutMap: 1.5 }, new Rng(0)), /UNet layoutMap: expected an integer grid size from 1 to 32/);
});

test("the layout map reads the caption's first 32 tokens in order, padding at zero, and ignores later ones", () => {
  const D = 6, B = 2, cond = 5;
  const layout = new LayoutMap(D, cond, 2, [4], new Rng(3));
  layout.fc2.weight.data = new Rng(4).normal(layout.fc2.weight.data.length);
  const run = (text: Float32Array, L: number, mask: number[]) => {
    const ins = { text: input("text", [B, L, D]), mask: input("mask", [B, L]), cond: input("cond", [B, cond]) };
    const bound = bindParameters(layout, "input");
    const feeds: Record<string, NDArray> = { text: nd([B, L, D], text), mask: nd([B, L], mask), cond: nd([B, cond], new Rng(5).normal(B * cond)) };
    for (const [name, p] of layout.namedParameters()) feeds[name] = nd([...p.shape], p.data);
    const out = layout.call(ins.text, ins.mask, ins.cond);
    bound.release();
    return evaluate([out], feeds)[0].data;
  };
  const L = 40, text = new Rng(6).normal(B * L * D), ones = Array(B * L).fill(1);
  const changed = (t: number) => {
    const out = Float32Array.from(text);
    for (let d = 0; d < D; d++) out[t * D + d] += 1;
    return out;
  };
  const base = run(text, L, ones);
  assert.ok(maxDiff(run(changed(35), L, ones), base) < 1e-12, "token 35 changes the map");
  assert.ok(maxDiff(run(changed(31), L, ones), base) > 1e-3, "token 31 does not change the map");
  assert.ok(maxDiff(run(swapTokens(text, B, L, D, 0, 2), L, ones), base) > 1e-3, "word order does not change the map");
  // A 3-token caption reads as the same caption padded to 40 tokens with masked padding.
  const short = new Float32Array(B * 3 * D);
  for (let b = 0; b < B; b++) short.set(text.subarray(b * L * D, (b * L + 3) * D), b * 3 * D);
  const padMask = Array.from({ length: B * L }, (_, i) => (i % L < 3 ? 1 : 0));
  assert.ok(maxDiff(run(short, 3, Array(B * 3).fill(1)), run(text, L, padMask)) < 1e-12, "padding differs from a shorter caption");
});

/** Gives the token placement's zero-initialised content projection and caption gate random values. */
function wakePlacement(model: UNet, seed = 16): void {
  const rng = new Rng(seed);
  for (const [name, p] of model.namedParameters()) if (/^place\.(value|context)\./.test(name)) p.data = rng.normal(p.data.length).map((v) => v * (name.includes("value") ? 0.5 : 0.1));
}

test("token placement: gradients through it agree with finite differences and ORT (upsampled, exact and pooled to each level)", async () => {
  await gradCheck({ ...tinyBase, tokenPlacement: 4 }, (m) => wakePlacement(m));
  await gradCheck({ ...tinySr, tokenPlacement: 8 }, (m) => wakePlacement(m));
});

test("token placement starts at zero (weights without it load unchanged), then puts the caption's content in places", async () => {
  const plain = new UNet(tinyBase, new Rng(6));
  const placed = new UNet({ ...tinyBase, tokenPlacement: 2 }, new Rng(6));
  for (const [k, v] of plain.stateDict()) assert.deepEqual(placed.stateDict().get(k)?.data, v.data, k);
  const added = [...placed.stateDict().keys()].filter((k) => !plain.stateDict().has(k));
  assert.deepEqual(added.filter((k) => !/^place\.proj\.\d+\.weight$/.test(k)).sort(), ["place.context.bias", "place.context.weight", "place.value.bias", "place.value.weight", "place.where.bias", "place.where.weight"]);
  assert.equal(added.length - 6, 8, "one projection per ResBlock");
  const dir = await mkdtemp(join(tmpdir(), "imagen-place-"));
  try {
    await checkMapAddition(plain, { tokenPlacement: 2 }, (m) => wakePlacement(m), "token placement", dir);
    // With text positions, word order reaches the places (without them each token places itself alone: below).
    await checkOrderAddition({ tokenPlacement: 2, textPositions: true }, (m) => {
      wakePlacement(m);
      for (const [name, q] of m.namedParameters()) if (name === "text_pos.weight") q.data = new Rng(17).normal(q.data.length);
    }, "token placement with text positions", dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => new UNet({ ...tinyBase, tokenPlacement: 3 }, new Rng(0)), /UNet tokenPlacement: a 3x3 map does not fit the 8x8 level/);
  assert.throws(() => new UNet({ ...tinyBase, tokenPlacement: -1 }, new Rng(0)), /UNet tokenPlacement: expected an integer grid size from 1 to 32/);
});

test("token placement: each token puts its own content where its vector, gated by the caption, says", () => {
  const D = 6, B = 1, G = 2, K = 32;
  const place = new TokenPlacement(D, G, [4], new Rng(3));
  place.value.weight.data = new Rng(4).normal(place.value.weight.data.length);
  const run = (text: Float32Array, L: number, mask: number[]) => {
    const ins = { text: input("text", [B, L, D]), mask: input("mask", [B, L]) };
    const bound = bindParameters(place, "input");
    const feeds: Record<string, NDArray> = { text: nd([B, L, D], text), mask: nd([B, L], mask) };
    for (const [name, p] of place.namedParameters()) feeds[name] = nd([...p.shape], p.data);
    const out = place.call(ins.text, ins.mask);
    bound.release();
    return evaluate([out], feeds)[0].data;
  };
  const L = 3, text = new Rng(6).normal(B * L * D);
  const all = run(text, L, [1, 1, 1]);
  assert.equal(all.length, K * G * G);
  // As initialised (the caption's gate at zero) the map is the sum of each token's own part: tokens alone (the
  // others masked) add up to the whole, and a token's part does not depend on its neighbours.
  const alone = [0, 1, 2].map((k) => run(text, L, [0, 1, 2].map((j) => (j === k ? 1 : 0))));
  assert.ok(maxDiff(all, alone[0].map((v, i) => v + alone[1][i] + alone[2][i])) < 1e-5, "the map is not the sum of the tokens' parts");
  const changedOthers = Float32Array.from(text);
  for (let i = D; i < L * D; i++) changedOthers[i] += 1;
  assert.ok(maxDiff(run(changedOthers, L, [1, 0, 0]), alone[0]) < 1e-12, "a token's part depends on the other tokens");
  assert.ok(Math.max(...run(text, L, [0, 0, 0]).map(Math.abs)) === 0, "padding puts content in the map");
  // With the gate awake, the other words move a token's place but not its content: summed over the places, the
  // map is each token's own content, whatever the caption.
  place.context.weight.data = new Rng(8).normal(place.context.weight.data.length);
  const overPlaces = (map: ArrayLike<number>) => Float32Array.from({ length: K }, (_, k) => Array.from({ length: G * G }, (__, g) => map[k * G * G + g]).reduce((a, v) => a + v, 0));
  const gatedAll = run(text, L, [1, 1, 1]);
  assert.ok(maxDiff(gatedAll, all) > 1e-3, "the caption's gate moves no token");
  assert.ok(maxDiff(overPlaces(gatedAll), overPlaces(all)) < 1e-5, "the caption's gate changes what the tokens put in the map");
  place.context.weight.data.fill(0);
  // Its content goes where its place logits point: a large logit for place 3 puts (nearly) all of it there.
  place.where.weight.data.fill(0);
  place.where.bias!.data = Float32Array.from([0, 0, 0, 30]);
  const one = run(text, L, [1, 0, 0]);
  for (let k = 0; k < K; k++) {
    for (let g = 0; g < 3; g++) assert.ok(Math.abs(one[k * G * G + g]) < 1e-6 * (1 + Math.abs(one[k * G * G + 3])), `content ${k} at place ${g}`);
  }
  assert.ok(Math.max(...one.map(Math.abs)) > 1e-3, "the token placed nothing");
});
