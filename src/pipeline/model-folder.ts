// A cascade on disk (DESIGN.md section 3): `model_index.json` naming its parts, and one sub-folder per
// part with `config.json` (class name, version, every hyper-parameter) and `model.safetensors`. The text encoder
// is the WordEncoder stand-in or a Hugging Face T5 folder, embedded as `text_encoder/t5/` or referenced by path.
import { copyFile, mkdir, readdir, readFile } from "node:fs/promises";
import { writeTextAtomic } from "../util/fs.js";
import { isAbsolute, join, relative, resolve } from "node:path";
import { ImagenError, ValueError } from "../util/errors.js";
import { ZeroRng } from "../util/rng.js";
import { fromFloat32, loadSafetensors, saveSafetensors, toFloat32 } from "../runtime/safetensors.js";
import { UNet, checkUNetConfig, type UNetConfig } from "../models/unet.js";
import { WordEncoder } from "../text/word-encoder.js";
import { T5TextEncoder } from "../text/t5-encoder.js";
import type { TextEncoder } from "../text/encoder.js";
import { parameterizations, type Parameterization } from "../train/objective.js";
import { scheduleNames, type ScheduleName } from "../diffusion/schedule.js";
import type { StageSpec } from "./stage-denoiser.js";
import { parseThresholding } from "../diffusion/guidance.js";
import { samplerNames, type SamplerName } from "../diffusion/samplers.js";

export class ModelFolderError extends ImagenError {}

const FORMAT_VERSION = 1;

export interface WordEncoderConfig { class: "WordEncoder"; dim: number; maxLength: number; seed: number }
/**
 * A T5 encoder from a Hugging Face folder. `path` is absolute or relative to the `text_encoder` folder; saving
 * with `embed: true` copies the folder to `text_encoder/t5/` so the model folder is self-contained.
 */
export interface T5EncoderFolderConfig { class: "T5TextEncoder"; type: "t5"; path: string; maxLength: number; embed?: boolean; spellCapitals?: boolean }
export type EncoderConfig = WordEncoderConfig | T5EncoderFolderConfig;
/** The files of a Hugging Face T5 folder that an encoder needs (shards are matched by name). */
const t5FolderFile = /^(config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json)$/;
export interface StageConfig { class: "UNet"; version: number; unet: UNetConfig; parameterization: Parameterization; schedule: ScheduleName }

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new ModelFolderError(`${what}: ${path} is missing; a model folder needs model_index.json and one folder per part (see README)`);
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ModelFolderError(`${what}: ${path} is not a JSON object (${(e as Error).message}); restore it from the original model`);
  }
}

/**
 * Sampling settings a model folder recommends (model_index.json "sampling"): what generate and eval use
 * where no flag says otherwise. `steps` belongs to the recommended sampler (dpmpp2m if none is named) and
 * applies only when that sampler is the one in use.
 */
export interface SamplingDefaults { thresholding?: string; guidance?: number; sampler?: SamplerName; steps?: number }

/** Saves the encoder config, every stage (weights as fp32 or fp16) and the recommended sampling settings. */
export async function saveCascade(dir: string, encoder: EncoderConfig, stages: StageSpec[], dtype: "F32" | "F16" = "F32", sampling: SamplingDefaults = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await mkdir(join(dir, "text_encoder"), { recursive: true });
  await writeJson(join(dir, "text_encoder", "config.json"), await placeEncoder(join(dir, "text_encoder"), encoder));
  const names = stages.map((_, i) => `stage_${i}`);
  for (const [i, s] of stages.entries()) {
    const sub = join(dir, names[i]);
    await mkdir(sub, { recursive: true });
    const cfg: StageConfig = { class: "UNet", version: FORMAT_VERSION, unet: s.unet.config, parameterization: s.parameterization, schedule: s.schedule };
    await writeJson(join(sub, "config.json"), cfg);
    const tensors = new Map([...s.unet.namedParameters()].map(([n, p]) => [n, { dtype, shape: [...p.shape], data: fromFloat32(p.data, dtype) }]));
    await saveSafetensors(join(sub, "model.safetensors"), tensors, { format: "imagen-ts", class: "UNet" });
  }
  const index = { _class_name: "ImagenCascade", version: FORMAT_VERSION, text_encoder: "text_encoder", stages: names };
  await writeJson(join(dir, "model_index.json"), Object.keys(sampling).length ? { ...index, sampling } : index);
}

/** Embeds (copies) or re-points a T5 folder for a cascade's text_encoder folder; returns the config to write. */
async function placeEncoder(encDir: string, encoder: EncoderConfig): Promise<EncoderConfig> {
  if (encoder.class !== "T5TextEncoder") return encoder;
  const { embed, ...cfg } = encoder;
  const source = resolve(encoder.path);
  if (!embed) return { ...cfg, path: isAbsolute(encoder.path) ? encoder.path : relative(encDir, source) };
  const target = join(encDir, "t5");
  await mkdir(target, { recursive: true });
  const files = (await readdir(source)).filter((f) => t5FolderFile.test(f));
  if (!files.includes("config.json")) throw new ModelFolderError(`text encoder: ${source} has no config.json; embed a Hugging Face T5 folder (config.json, model.safetensors, tokenizer.json)`);
  for (const f of files) await copyFile(join(source, f), join(target, f));
  return { ...cfg, path: "t5" };
}

/** The cascade's text encoder from its config.json (WordEncoder, or a T5 folder loaded with T5TextEncoder). */
async function loadEncoder(encDir: string, enc: Record<string, unknown>): Promise<TextEncoder> {
  const what = "text encoder config";
  if (enc.class === "WordEncoder") {
    return new WordEncoder(field(enc, "dim", isNum, what, "a number"), field(enc, "maxLength", isNum, what, "a number"), field(enc, "seed", isNum, what, "a number"));
  }
  if (enc.class !== "T5TextEncoder") throw new ModelFolderError(`${what}: class expected "WordEncoder" or "T5TextEncoder", got ${JSON.stringify(enc.class)}`);
  if (enc.type !== "t5") throw new ModelFolderError(`${what}: field "type" expected "t5", got ${JSON.stringify(enc.type)}`);
  const path = field(enc, "path", (v): v is string => typeof v === "string" && v !== "", what, "a folder path (absolute, or relative to the text_encoder folder)");
  const maxLength = field(enc, "maxLength", isNum, what, "a number");
  if (enc.spellCapitals !== undefined && typeof enc.spellCapitals !== "boolean") {
    throw new ModelFolderError(`${what}: field "spellCapitals" expected true or false (or no key), got ${JSON.stringify(enc.spellCapitals)}`);
  }
  try {
    return await T5TextEncoder.load(resolve(encDir, path), { maxLength, spellCapitals: enc.spellCapitals === true });
  } catch (e) {
    throw new ModelFolderError(`${what}: the T5 folder ${resolve(encDir, path)} does not load: ${(e as Error).message}`);
  }
}

function field<T>(obj: Record<string, unknown>, key: string, ok: (v: unknown) => v is T, what: string, want: string): T {
  const v = obj[key];
  if (!ok(v)) throw new ModelFolderError(`${what}: field "${key}" expected ${want}, got ${JSON.stringify(v)}`);
  return v;
}
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isStrArr = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string" && /^[\w.-]+$/.test(s));

export interface LoadedCascade { encoder: TextEncoder; stages: StageSpec[]; sampling: SamplingDefaults }

/** model_index.json's optional "sampling" block, checked. */
export function checkSampling(v: unknown, what: string): SamplingDefaults {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ModelFolderError(`${what}: expected an object like {"thresholding": "static", "guidance": 2}, got ${JSON.stringify(v)}`);
  const { thresholding, guidance, sampler, steps, ...rest } = v as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new ModelFolderError(`${what}: unknown setting ${JSON.stringify(unknown[0])}; the settings are: thresholding, guidance, sampler, steps`);
  const out: SamplingDefaults = {};
  if (thresholding !== undefined) {
    if (typeof thresholding !== "string") throw new ModelFolderError(`${what}.thresholding: expected none, static, dynamic or dynamic:P, got ${JSON.stringify(thresholding)}`);
    try {
      parseThresholding(thresholding, `${what}.thresholding`);
    } catch (e) {
      throw new ModelFolderError((e as Error).message);
    }
    out.thresholding = thresholding;
  }
  if (guidance !== undefined) {
    if (typeof guidance !== "number" || !Number.isFinite(guidance) || guidance < 0 || guidance > 100) {
      throw new ModelFolderError(`${what}.guidance: expected a classifier-free guidance weight from 0 to 100, got ${JSON.stringify(guidance)}`);
    }
    out.guidance = guidance;
  }
  if (sampler !== undefined) {
    if (typeof sampler !== "string" || !(samplerNames as readonly string[]).includes(sampler)) {
      throw new ModelFolderError(`${what}.sampler: expected one of ${samplerNames.join(", ")}, got ${JSON.stringify(sampler)}`);
    }
    out.sampler = sampler as SamplerName;
  }
  if (steps !== undefined) {
    if (typeof steps !== "number" || !Number.isInteger(steps) || steps < 1 || steps > 10000) {
      throw new ModelFolderError(`${what}.steps: expected an integer from 1 to 10000 (the recommended sampler's steps per stage), got ${JSON.stringify(steps)}`);
    }
    out.steps = steps;
  }
  return out;
}

/** Loads and validates a model folder; every problem names the file, the field and the valid choices. */
export async function loadCascade(dir: string): Promise<LoadedCascade> {
  const index = await readJson(join(dir, "model_index.json"), "model folder");
  const version = field(index, "version", isNum, "model_index.json", "a number");
  if (version > FORMAT_VERSION) throw new ModelFolderError(`model_index.json: version ${version} is newer than this imagen-ts (${FORMAT_VERSION}); upgrade imagen-ts`);
  const stageNames = field(index, "stages", isStrArr, "model_index.json", "a list of sub-folder names");
  const encName = field(index, "text_encoder", (v): v is string => typeof v === "string" && /^[\w.-]+$/.test(v), "model_index.json", "a sub-folder name");
  const sampling = checkSampling(index.sampling, "model_index.json sampling");
  const enc = await readJson(join(dir, encName, "config.json"), "text encoder");
  const encoder = await loadEncoder(join(dir, encName), enc);
  const stages: StageSpec[] = [];
  for (const name of stageNames) {
    const what = `${name}/config.json`;
    const cfg = await readJson(join(dir, name, "config.json"), name);
    if (cfg.class !== "UNet") throw new ModelFolderError(`${what}: class expected "UNet", got ${JSON.stringify(cfg.class)}`);
    const param = field(cfg, "parameterization", (v): v is Parameterization => parameterizations.includes(v as Parameterization), what, `one of ${parameterizations.join(", ")}`);
    const schedule = field(cfg, "schedule", (v): v is ScheduleName => scheduleNames.includes(v as ScheduleName), what, `one of ${scheduleNames.join(", ")}`);
    const unetCfg = field(cfg, "unet", (v): v is UNetConfig => typeof v === "object" && v !== null, what, "an object");
    try {
      checkUNetConfig(unetCfg);
    } catch (e) {
      throw new ModelFolderError(`${what}: ${(e as Error).message}`);
    }
    const unet = new UNet(unetCfg, new ZeroRng());
    const file = await loadSafetensors(join(dir, name, "model.safetensors"));
    const state = new Map([...file.tensors].map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }]));
    try {
      unet.loadStateDict(state);
    } catch (e) {
      throw new ModelFolderError(`${name}/model.safetensors does not match ${what}: ${(e as Error).message}`);
    }
    stages.push({ unet, parameterization: param, schedule });
  }
  if (stages.length === 0) throw new ValueError("model_index.json: stages is empty; a cascade needs at least a base stage");
  return { encoder, stages, sampling };
}
