// The training config of `imagen train --config FILE --stage N`: one JSON file describing the text
// encoder, the dataset and every stage of a cascade, validated up front with errors that name the field.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { ImagenError } from "../util/errors.js";
import { checkUNetConfig, type UNetConfig } from "../models/unet.js";
import { presetByName, presets } from "../models/presets.js";
import { parameterizations, type Parameterization } from "./objective.js";
import { scheduleNames, type ScheduleName } from "../diffusion/schedule.js";
import { lrSchedules, type LrScheduleName } from "./lr.js";
import type { HighNoise } from "./stage-trainer.js";
import { lrScaleOf } from "./adamw.js";
import { kindShares, type SceneKind } from "../data/scenes.js";
import { checkSampling, type SamplingDefaults } from "../pipeline/model-folder.js";

export class TrainConfigError extends ImagenError {}

export type EncoderSpec = { class: "WordEncoder"; dim: number; maxLength: number; seed: number } | { class: "T5TextEncoder"; path: string; maxLength: number; spellCapitals?: boolean };
export type DatasetSpec = { kind: "toy"; seed: number } | { kind: "scenes"; seed: number; kindWeights?: Partial<Record<SceneKind, number>> } | { kind: "jsonl"; path: string } | { kind: "folder"; path: string };

export interface StageTrainSpec {
  unet: UNetConfig; parameterization: Parameterization; schedule: ScheduleName;
  steps: number; batch: number; lr: number; warmupSteps: number; lrDecay: LrScheduleName;
  lrRestarts: number[]; lrRestartScale: number;
  /** Standardise the text embeddings by their per-channel statistics over this many training captions (UNet textStats). */
  textStandardize?: number;
  /**
   * Fine-tune: the weights the stage starts from instead of its random init (a .safetensors file, or a
   * model folder's stage folder holding model.safetensors). A resumed run starts from its checkpoint instead.
   */
  initFrom?: string;
  minSnrGamma?: number; emaDecay?: number; clipNorm: number; weightDecay: number; condDrop: number; cropSize?: number;
  /** Learning-rate factors by parameter-name pattern (AdamW `lrScales`), e.g. for weights new to a fine-tune. */
  lrScales?: Record<string, number>;
  /** A share of the training times drawn from the top of the noise range (stage-trainer `drawTimes`). */
  highNoise?: HighNoise;
  /** Weight of the grounding loss on the U-Net's token placement (stage-trainer `grounding`); needs the scenes dataset. */
  grounding?: number;
  checkpointEvery: number; keep: number; sampleEvery: number; sampleItems: number;
}

export interface TrainConfig {
  file: string; output: string; seed: number; textEncoder: EncoderSpec; dataset: DatasetSpec; stages: StageTrainSpec[];
  /** Sampling settings the trained model recommends (written to its model_index.json). */
  sampling: SamplingDefaults;
}

type Obj = Record<string, unknown>;

/** `where`: the file and field, for errors. */
function lrScalesOf(v: unknown, where: string): Record<string, number> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v)) throw new TrainConfigError(`train config ${where} must be an object of parameter-name patterns to learning-rate factors, e.g. {"text_pos": 10}, got ${JSON.stringify(v)}`);
  try {
    lrScaleOf(v as Record<string, number>);
  } catch (e) {
    throw new TrainConfigError(`train config ${where}: ${(e as Error).message}`);
  }
  return v as Record<string, number>;
}
function highNoiseOf(v: unknown, where: string): HighNoise | undefined {
  if (v === undefined) return undefined;
  const ok = isObj(v) && Object.keys(v).every((k) => k === "share" || k === "from")
    && typeof v.share === "number" && v.share >= 0 && v.share <= 1 && typeof v.from === "number" && v.from >= 0 && v.from < 1;
  if (!ok) throw new TrainConfigError(`train config ${where} must be {"share": a number in [0, 1], "from": a number in [0, 1)}, e.g. {"share": 0.4, "from": 0.9}, got ${JSON.stringify(v)}`);
  return { share: v.share as number, from: v.from as number };
}
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

export function parseTrainConfig(file: string): TrainConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new TrainConfigError(`train config ${file}: cannot read it as JSON (${(e as Error).message}); see README "Train your own" for an example`);
  }
  const bad = (field: string, want: string, got: unknown) =>
    new TrainConfigError(`train config ${file}: "${field}" expected ${want}, got ${JSON.stringify(got)}`);
  if (!isObj(raw)) throw bad("(top level)", "an object", raw);
  const base = dirname(resolve(file));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const num = (o: Obj, key: string, field: string, ok: (n: number) => boolean, want: string, dflt?: number): number => {
    const v = o[key] ?? dflt;
    if (typeof v !== "number" || !ok(v)) throw bad(field, want, o[key]);
    return v;
  };
  const int = (n: number) => Number.isInteger(n);
  const restartList = (o: Obj, key: string, field: string, warmupSteps: number, steps: number): number[] => {
    const v = o[key] ?? [];
    const want = `a list of increasing integer steps inside (warmupSteps = ${warmupSteps}, steps = ${steps})`;
    if (!Array.isArray(v) || !v.every((n, j) => typeof n === "number" && int(n) && n > warmupSteps && n < steps && (j === 0 || n > v[j - 1]))) {
      throw bad(field, want, o[key]);
    }
    return v as number[];
  };
  const str = (o: Obj, key: string, field: string, choices?: readonly string[], dflt?: string): string => {
    const v = o[key] ?? dflt;
    if (typeof v !== "string" || v === "" || (choices && !choices.includes(v))) throw bad(field, choices ? `one of ${choices.join(", ")}` : "a non-empty string", o[key]);
    return v;
  };
  if (typeof raw.output !== "string" || raw.output === "") throw bad("output", "a folder path", raw.output);
  const seed = num(raw, "seed", "seed", (n) => Number.isSafeInteger(n) && n >= 0, "a non-negative integer", 0);

  const te = raw.textEncoder;
  if (!isObj(te)) throw bad("textEncoder", `{"class": "WordEncoder", ...} or {"class": "T5TextEncoder", "path": ...}`, te);
  const cls = str(te, "class", "textEncoder.class", ["WordEncoder", "T5TextEncoder"]);
  const maxLength = num(te, "maxLength", "textEncoder.maxLength", (n) => int(n) && n >= 1 && n <= 512, "an integer from 1 to 512", cls === "WordEncoder" ? 16 : 128);
  const spelling = (o: Obj): { spellCapitals?: true } => {
    if (o.spellCapitals === undefined || o.spellCapitals === false) return {};
    if (o.spellCapitals !== true) throw bad("textEncoder.spellCapitals", "true or false", o.spellCapitals);
    return { spellCapitals: true };
  };
  const textEncoder: EncoderSpec = cls === "WordEncoder"
    ? { class: "WordEncoder", dim: num(te, "dim", "textEncoder.dim", (n) => int(n) && n >= 2 && n % 2 === 0, "an even integer >= 2", 64), maxLength, seed: num(te, "seed", "textEncoder.seed", (n) => int(n) && n >= 0, "an integer >= 0", 0) }
    : { class: "T5TextEncoder", path: path(str(te, "path", "textEncoder.path")), maxLength, ...spelling(te) };

  const ds = raw.dataset;
  if (!isObj(ds)) throw bad("dataset", `{"kind": "scenes", "seed": 0}, {"kind": "toy", "seed": 0}, {"kind": "jsonl", "path": "train.jsonl"} or {"kind": "folder", "path": "images/"}`, ds);
  const kind = str(ds, "kind", "dataset.kind", ["scenes", "toy", "jsonl", "folder"]);
  const seedOf = () => num(ds, "seed", "dataset.seed", (n) => int(n) && n >= 0, "an integer >= 0", 0);
  const pathOf = () => path(str(ds, "path", "dataset.path"));
  const kindWeightsOf = (): Partial<Record<SceneKind, number>> | undefined => {
    if (ds.kindWeights === undefined) return undefined;
    if (!isObj(ds.kindWeights)) throw bad("dataset.kindWeights", `an object of scene kind -> weight, e.g. {"positional": 0.3, "counting": 0.25, ...}`, ds.kindWeights);
    try {
      kindShares(ds.kindWeights as Record<string, number>);
    } catch (e) {
      throw new TrainConfigError(`train config ${file}: "dataset.kindWeights": ${(e as Error).message}`);
    }
    return ds.kindWeights as Partial<Record<SceneKind, number>>;
  };
  const sceneSpec = (): DatasetSpec => {
    const kindWeights = kindWeightsOf();
    return { kind: "scenes", seed: seedOf(), ...(kindWeights ? { kindWeights } : {}) };
  };
  const dataset: DatasetSpec = kind === "scenes" ? sceneSpec() : kind === "toy" ? { kind, seed: seedOf() }
    : kind === "folder" ? { kind, path: pathOf() } : { kind: "jsonl", path: pathOf() };

  if (!Array.isArray(raw.stages) || raw.stages.length === 0) throw bad("stages", "a non-empty list of stage objects", raw.stages);
  const stages = raw.stages.map((s: unknown, i: number): StageTrainSpec => {
    const f = (k: string) => `stages[${i}].${k}`;
    if (!isObj(s)) throw bad(`stages[${i}]`, "an object", s);
    let unet: UNetConfig;
    if (typeof s.unet === "string") {
      if (!presets[s.unet]) throw bad(f("unet"), `a preset (${Object.keys(presets).join(", ")}) or a U-Net config object`, s.unet);
      unet = presetByName(s.unet);
    } else if (isObj(s.unet)) {
      unet = s.unet as unknown as UNetConfig;
      try {
        checkUNetConfig(unet);
      } catch (e) {
        throw new TrainConfigError(`train config ${file}: "${f("unet")}": ${(e as Error).message}`);
      }
    } else throw bad(f("unet"), "a preset name or a U-Net config object", s.unet);
    if (isObj(s.unetOverrides)) unet = { ...unet, ...(s.unetOverrides as Partial<UNetConfig>) };
    if (unet.lowResCond !== (i > 0)) throw bad(f("unet"), i === 0 ? "a base U-Net (lowResCond false)" : "a super-resolution U-Net (lowResCond true)", unet.lowResCond);
    const steps = num(s, "steps", f("steps"), (n) => int(n) && n >= 1, "an integer >= 1");
    const warmupSteps = num(s, "warmupSteps", f("warmupSteps"), (n) => int(n) && n >= 0, "an integer >= 0", Math.min(1000, Math.floor(steps / 10)));
    return {
      unet,
      parameterization: str(s, "parameterization", f("parameterization"), parameterizations, "eps") as Parameterization,
      schedule: str(s, "schedule", f("schedule"), scheduleNames, "cosine") as ScheduleName,
      steps,
      batch: num(s, "batch", f("batch"), (n) => int(n) && n >= 1 && n <= 4096, "an integer from 1 to 4096", 8),
      lr: num(s, "lr", f("lr"), (n) => n > 0 && n < 1, "a number in (0, 1)", 1e-4),
      warmupSteps,
      lrDecay: str(s, "lrDecay", f("lrDecay"), lrSchedules, "cosine") as LrScheduleName,
      lrRestarts: restartList(s, "lrRestarts", f("lrRestarts"), Math.min(warmupSteps, steps), steps),
      lrRestartScale: num(s, "lrRestartScale", f("lrRestartScale"), (n) => n > 0 && n <= 1, "a number in (0, 1]", 1),
      textStandardize: s.textStandardize === undefined ? undefined
        : num(s, "textStandardize", f("textStandardize"), (n) => int(n) && n >= 1 && n <= 100000, "an integer from 1 to 100000 (training captions to take the statistics over), or no key"),
      initFrom: s.initFrom === undefined ? undefined : path(str(s, "initFrom", f("initFrom"))),
      minSnrGamma: s.minSnrGamma === undefined ? undefined : num(s, "minSnrGamma", f("minSnrGamma"), (n) => n > 0, "a number > 0"),
      emaDecay: s.emaDecay === undefined ? undefined : num(s, "emaDecay", f("emaDecay"), (n) => n > 0 && n < 1, "a number in (0, 1)"),
      clipNorm: num(s, "clipNorm", f("clipNorm"), (n) => n > 0, "a number > 0", 1),
      weightDecay: num(s, "weightDecay", f("weightDecay"), (n) => n >= 0 && n < 1, "a number in [0, 1)", 0),
      lrScales: lrScalesOf(s.lrScales, `${file}: "${f("lrScales")}"`),
      highNoise: highNoiseOf(s.highNoise, `${file}: "${f("highNoise")}"`),
      grounding: s.grounding === undefined ? undefined : num(s, "grounding", f("grounding"), (n) => n >= 0 && n <= 100, "a loss weight from 0 to 100 (e.g. 0.01), or no key"),
      condDrop: num(s, "condDrop", f("condDrop"), (n) => n >= 0 && n <= 1, "a number in [0, 1]", 0.1),
      cropSize: s.cropSize === undefined ? undefined : num(s, "cropSize", f("cropSize"), (n) => int(n) && n >= 8 && n <= unet.imageSize, `an integer from 8 to ${unet.imageSize}`),
      checkpointEvery: num(s, "checkpointEvery", f("checkpointEvery"), (n) => int(n) && n >= 1, "an integer >= 1", 500),
      keep: num(s, "keep", f("keep"), (n) => int(n) && n >= 1, "an integer >= 1", 3),
      sampleEvery: num(s, "sampleEvery", f("sampleEvery"), (n) => int(n) && n >= 0, "an integer >= 0 (0: never)", 0),
      sampleItems: num(s, "sampleItems", f("sampleItems"), (n) => int(n) && n >= 1 && n <= 64, "an integer from 1 to 64", 4),
    };
  });
  stages.forEach((s, i) => {
    if (s.grounding && !s.unet.tokenPlacement) throw bad(`stages[${i}].grounding`, 'no key unless the U-Net has token placement ("tokenPlacement": 8)', s.grounding);
    if (s.grounding && dataset.kind !== "scenes") throw bad(`stages[${i}].grounding`, "no key unless the dataset is the generated scenes (only they know where each named thing is)", s.grounding);
    if (i > 0 && s.unet.imageSize % stages[i - 1].unet.imageSize !== 0) {
      throw bad(`stages[${i}].unet.imageSize`, `a multiple of stage ${i - 1}'s ${stages[i - 1].unet.imageSize}`, s.unet.imageSize);
    }
  });
  let sampling: SamplingDefaults;
  try {
    sampling = checkSampling(raw.sampling, "sampling");
  } catch (e) {
    throw new TrainConfigError(`train config ${file}: ${(e as Error).message}`);
  }
  return { file, output: path(raw.output), seed, textEncoder, dataset, stages, sampling };
}
