// `imagen train --config FILE --stage N`: trains one stage of the cascade the config describes, resuming
// from its newest checkpoint; logs JSON lines to <output>/stage_N/train.jsonl, shows progress (loss,
// images/s, ETA), writes periodic sample grids, and once every stage is trained assembles the model folder
// <output>/model that `imagen generate --model` loads.
import { appendFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { ValueError } from "../util/errors.js";
import { Rng, ZeroRng } from "../util/rng.js";
import { UNet, type UNetConfig } from "../models/unet.js";
import { textLayersPrefix } from "../models/text-layers.js";
import { layoutPrefix, placementPrefix } from "../models/layout-map.js";
import { checkTextStats, embeddingStats, type TextStats } from "../text/embedding-stats.js";
import { writeTextAtomic } from "../util/fs.js";
import { WordEncoder } from "../text/word-encoder.js";
import { T5TextEncoder } from "../text/t5-encoder.js";
import { cachedEncoder } from "../text/embedding-cache.js";
import type { TextEncoder } from "../text/encoder.js";
import { folderDataset, jsonlDataset, sceneDataset, toyDataset } from "../data/datasets.js";
import { trainStage, type CaptionedDataset } from "../train/stage-trainer.js";
import { parseTrainConfig, type TrainConfig } from "../train/train-config.js";
import { writeSampleGrid } from "../train/sample-grid.js";
import { loadSafetensors, saveSafetensors, toFloat32 } from "../runtime/safetensors.js";
import { saveCascade, type EncoderConfig } from "../pipeline/model-folder.js";
import type { StageSpec } from "../pipeline/stage-denoiser.js";

export interface TrainFlags { config: string; stage: string; json?: boolean; overfitOneBatch?: boolean; stopAt?: string }

/** The loss summary stored beside a trained stage; `imagen generate` warns when the loss never dropped. */
export interface TrainingSummary { steps: number; lossStart: number; lossEnd: number }

export function summarize(losses: readonly number[]): TrainingSummary {
  const k = Math.max(1, Math.floor(losses.length / 10));
  const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { steps: losses.length, lossStart: avg(losses.slice(0, k)), lossEnd: avg(losses.slice(-k)) };
}

export function lossNeverDropped(s: TrainingSummary): boolean {
  return !(s.lossEnd < 0.9 * s.lossStart);
}

/** Warnings for a model folder whose stages' training loss never dropped (read from stage_N/training.json). */
export async function trainingWarnings(modelDir: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; existsSync(join(modelDir, `stage_${i}`)); i++) {
    const file = join(modelDir, `stage_${i}`, "training.json");
    if (!existsSync(file)) continue;
    try {
      const s = JSON.parse(await readFile(file, "utf8")) as TrainingSummary;
      if (lossNeverDropped(s)) {
        out.push(`stage ${i} was trained for ${s.steps} steps but its loss never dropped (${s.lossStart.toFixed(4)} -> ${s.lossEnd.toFixed(4)}); expect noise, not images`);
      }
    } catch {
      out.push(`stage ${i}: ${file} is not a training summary; ignoring it`);
    }
  }
  return out;
}

async function buildEncoder(cfg: TrainConfig): Promise<TextEncoder> {
  const e = cfg.textEncoder;
  return e.class === "WordEncoder" ? new WordEncoder(e.dim, e.maxLength, e.seed) : T5TextEncoder.load(e.path, { maxLength: e.maxLength, spellCapitals: e.spellCapitals });
}

function encoderConfig(cfg: TrainConfig): EncoderConfig {
  const e = cfg.textEncoder;
  return e.class === "WordEncoder" ? e : { class: "T5TextEncoder", type: "t5", path: e.path, maxLength: e.maxLength, embed: true, ...(e.spellCapitals ? { spellCapitals: true } : {}) };
}

function buildDataset(cfg: TrainConfig): CaptionedDataset {
  const d = cfg.dataset;
  if (d.kind === "jsonl") return jsonlDataset(d.path);
  if (d.kind === "folder") return folderDataset(d.path);
  return d.kind === "toy" ? toyDataset(d.seed) : sceneDataset(d.seed, d.kindWeights);
}

const fmtTime = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)}h` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.round(s)}s`);

export async function runTrain(f: TrainFlags): Promise<{ losses: number[]; modelDir: string | null }> {
  const cfg = parseTrainConfig(f.config);
  const n = Number(f.stage);
  if (!Number.isInteger(n) || n < 0 || n >= cfg.stages.length) throw new ValueError(`--stage: expected an integer from 0 to ${cfg.stages.length - 1}, got "${f.stage}"`);
  const stopAt = f.stopAt === undefined ? undefined : Number(f.stopAt);
  if (stopAt !== undefined && !(Number.isInteger(stopAt) && stopAt >= 1)) throw new ValueError(`--stop-at: expected an integer >= 1, got "${f.stopAt}"`);
  const st = cfg.stages[n];
  const dir = join(cfg.output, `stage_${n}`);
  await mkdir(join(dir, "samples"), { recursive: true });
  const encoder = cachedEncoder(await buildEncoder(cfg), join(cfg.output, "text-cache"), (m) => process.stderr.write(`warning: ${m}\n`));
  const dataset = buildDataset(cfg);
  const unet = new UNet(await stageUNetConfig(cfg, n, { encoder, dataset }), new Rng(cfg.seed).split(`stage:${n}`));
  // Loaded before the trainer is built, so the EMA starts from these weights too; a checkpoint overrides them.
  if (st.initFrom !== undefined) await loadInitWeights(unet, st.initFrom, `stages[${n}].initFrom`);
  const lowResSize = n > 0 ? cfg.stages[n - 1].unet.imageSize : undefined;
  const tty = process.stderr.isTTY && !f.json;
  const logFile = join(dir, "train.jsonl");
  const t0 = performance.now();
  let firstStep = 0;
  const spec: StageSpec = { unet, parameterization: st.parameterization, schedule: st.schedule };
  const result = await trainStage({
    unet, encoder, dataset, lowResSize, steps: st.steps, stopAt, batch: st.batch, lr: st.lr, warmupSteps: st.warmupSteps, lrDecay: st.lrDecay,
    lrRestarts: st.lrRestarts, lrRestartScale: st.lrRestartScale,
    schedule: st.schedule, parameterization: st.parameterization, condDrop: st.condDrop, highNoise: st.highNoise, grounding: st.grounding, minSnrGamma: st.minSnrGamma, emaDecay: st.emaDecay,
    clipNorm: st.clipNorm, weightDecay: st.weightDecay, lrScales: st.lrScales, cropSize: st.cropSize, seed: cfg.seed + 1000 * n, overfitOneBatch: f.overfitOneBatch,
    checkpointDir: join(dir, "checkpoints"), checkpointEvery: st.checkpointEvery, keep: st.keep,
    onLog: (r) => {
      firstStep ||= r.step;
      const elapsed = (performance.now() - t0) / 1000;
      const eta = ((st.steps - r.step) * elapsed) / (r.step - firstStep + 1);
      const record = { event: "step", stage: n, ...r, steps: st.steps, etaSeconds: Math.round(eta) };
      void appendFile(logFile, JSON.stringify(record) + "\n");
      if (!tty) return process.stderr.write(JSON.stringify(record) + "\n");
      const width = 24, filled = Math.round((width * r.step) / st.steps);
      process.stderr.write(`\rstage ${n} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${r.step}/${st.steps} loss ${r.loss.toFixed(4)} `
        + `${r.imagesPerSecond.toFixed(1)} img/s ETA ${fmtTime(eta)}   ${r.step === st.steps ? "\n" : ""}`);
    },
    onStep: async (step) => {
      if (!(st.sampleEvery > 0 && (step % st.sampleEvery === 0 || step === st.steps))) return;
      const items = Array.from({ length: st.sampleItems }, (_, i) => i);
      await writeSampleGrid(join(dir, "samples", `step_${String(step).padStart(7, "0")}.png`), { spec, encoder, dataset, lowResSize, items, seed: cfg.seed });
    },
  });
  const ema = st.emaDecay !== undefined ? result.trainer.emaWeights() : null;
  result.trainer.dispose();
  if (tty) process.stderr.write("\n");
  if (result.losses.length < st.steps) return { losses: result.losses, modelDir: null }; // stopped early; resume later
  // The finished stage: its weights (EMA where kept) and loss summary, then the model folder once all stages are done.
  const weights = new Map([...unet.stateDict()].map(([k, t]) => [k, { dtype: "F32" as const, shape: [...t.shape], data: ema?.get(k) ?? t.data }]));
  await saveSafetensors(join(dir, "final.safetensors"), weights);
  const summary = summarize(result.losses);
  await writeFile(join(dir, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  if (lossNeverDropped(summary)) process.stderr.write(`warning: stage ${n}'s loss never dropped (${summary.lossStart.toFixed(4)} -> ${summary.lossEnd.toFixed(4)}); check the lr and the data\n`);
  return { losses: result.losses, modelDir: await assembleModel(cfg) };
}

/**
 * A stage's U-Net config: the config file's, plus its text statistics where the stage standardises the
 * text. These are computed once, from the first `textStandardize` training captions, and kept in
 * <output>/stage_N/text_stats.json, which resuming and assembling read back.
 */
export async function stageUNetConfig(cfg: TrainConfig, n: number, from?: { encoder: TextEncoder; dataset: CaptionedDataset }): Promise<UNetConfig> {
  const st = cfg.stages[n];
  if (st.textStandardize === undefined) return st.unet;
  const file = join(cfg.output, `stage_${n}`, "text_stats.json");
  let stats: unknown;
  if (existsSync(file)) {
    try {
      stats = JSON.parse(await readFile(file, "utf8"));
    } catch (e) {
      throw new ValueError(`${file}: not JSON (${(e as Error).message}); delete it to recompute it from the training captions`);
    }
    checkTextStats(stats, st.unet.textDim, file);
  } else {
    if (!from) throw new ValueError(`${file} is missing; train stage ${n} again to recompute it`);
    const count = Math.min(st.textStandardize, from.dataset.size ?? Infinity);
    stats = await embeddingStats(from.encoder, Array.from({ length: count }, (_, i) => from.dataset.item(i).caption));
    await writeTextAtomic(file, JSON.stringify(stats) + "\n");
  }
  return { ...st.unet, textStats: stats as TextStats };
}

/** An attention block's position projection (src/models/blocks.ts), e.g. down.1.attn.0.pos.weight. */
const attnPositionKey = /(^|\.)attn(\.\d+)?\.pos\.weight$/;

/**
 * Fine-tuning's starting point: a .safetensors file (e.g. a stage's final.safetensors) or a model folder's
 * stage folder (its model.safetensors), any float dtype, whose tensors must match the stage's U-Net exactly,
 * except text layers, attention or text positions or a layout map the file has none of, which keep their identity initialisation.
 */
export async function loadInitWeights(unet: UNet, from: string, field: string): Promise<void> {
  let file = from;
  if (existsSync(from) && (await stat(from)).isDirectory()) file = join(from, "model.safetensors");
  if (!existsSync(file)) {
    throw new ValueError(`${field}: ${file} does not exist; give a .safetensors file or a model folder's stage folder (with model.safetensors), or remove the key to train from scratch`);
  }
  const weights = await float32StateDict(file);
  // Weights trained without text layers (or attention or text positions, a layout map or token placement) start a U-Net with them: the additions
  // keep their initialisation, whose zero output projections leave the loaded network's function unchanged.
  const additions: ((k: string) => boolean)[] = [];
  if (unet.textLayers !== null) additions.push((k) => k.startsWith(textLayersPrefix));
  if (unet.config.attnPositions) additions.push((k) => attnPositionKey.test(k));
  if (unet.textPos !== null) additions.push((k) => k === "text_pos.weight");
  if (unet.layout !== null) additions.push((k) => k.startsWith(layoutPrefix));
  if (unet.placement !== null) additions.push((k) => k.startsWith(placementPrefix));
  for (const isAddition of additions) {
    if ([...weights.keys()].some(isAddition)) continue;
    for (const [k, v] of unet.stateDict()) if (isAddition(k)) weights.set(k, v);
  }
  try {
    unet.loadStateDict(weights);
  } catch (e) {
    throw new ValueError(`${field}: ${file} does not fit the stage's U-Net config (${(e as Error).message}); start from weights trained with the same "unet" settings`);
  }
}

/** A safetensors file's tensors as a state dict of fp32 arrays (any float dtype on disk). */
async function float32StateDict(file: string): Promise<Map<string, { shape: readonly number[]; data: Float32Array }>> {
  return new Map([...(await loadSafetensors(file)).tensors].map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }]));
}

/** Writes <output>/model when every stage has final weights; returns its path, or null while some are missing. */
async function assembleModel(cfg: TrainConfig): Promise<string | null> {
  const stages: StageSpec[] = [];
  for (const [i, st] of cfg.stages.entries()) {
    const file = join(cfg.output, `stage_${i}`, "final.safetensors");
    if (!existsSync(file)) return null;
    const unet = new UNet(await stageUNetConfig(cfg, i), new ZeroRng());
    unet.loadStateDict(await float32StateDict(file));
    stages.push({ unet, parameterization: st.parameterization, schedule: st.schedule });
  }
  const modelDir = join(cfg.output, "model");
  await saveCascade(modelDir, encoderConfig(cfg), stages, "F16", cfg.sampling);
  for (const i of cfg.stages.keys()) {
    await writeFile(join(modelDir, `stage_${i}`, "training.json"), await readFile(join(cfg.output, `stage_${i}`, "summary.json")));
  }
  return modelDir;
}

export function registerTrain(program: Command): void {
  program
    .command("train")
    .description("train one stage of a cascade described by a JSON config (resumes from its newest checkpoint)")
    .requiredOption("--config <file>", "training config (JSON): output, textEncoder, dataset, stages")
    .requiredOption("--stage <n>", "the stage to train: 0 is the base model, 1.. the super-resolution stages")
    .option("--stop-at <step>", "stop after this step (checkpointing there); run again to resume")
    .option("--overfit-one-batch", "train on step 1's batch only (noise and t still vary): a debugging mode")
    .option("--json", "JSON lines on stderr instead of a progress bar")
    .action(async (flags: TrainFlags) => {
      const r = await runTrain(flags);
      console.log(r.modelDir ? `model folder: ${r.modelDir}` : `stage ${flags.stage}: ${r.losses.length} steps so far; train the remaining stages to assemble the model folder`);
    });
}
