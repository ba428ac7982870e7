// A cascade on disk (DESIGN.md section 3): `model_index.json` naming its parts, and one sub-folder per
// part with `config.json` (class name, version, every hyper-parameter) and `model.safetensors`.
import { mkdir, readFile, writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { ImagenError, ValueError } from "../util/errors.js";
import { ZeroRng } from "../util/rng.js";
import { fromFloat32, loadSafetensors, saveSafetensors, toFloat32 } from "../runtime/safetensors.js";
import { UNet, checkUNetConfig, type UNetConfig } from "../models/unet.js";
import { WordEncoder } from "../text/word-encoder.js";
import type { TextEncoder } from "../text/encoder.js";
import { parameterizations, type Parameterization } from "../train/objective.js";
import { scheduleNames, type ScheduleName } from "../diffusion/schedule.js";
import type { StageSpec } from "./stage-denoiser.js";

export class ModelFolderError extends ImagenError {}

const FORMAT_VERSION = 1;

export interface EncoderConfig { class: "WordEncoder"; dim: number; maxLength: number; seed: number }
export interface StageConfig { class: "UNet"; version: number; unet: UNetConfig; parameterization: Parameterization; schedule: ScheduleName }

async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + "\n");
  await rename(tmp, path);
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

/** Saves the encoder config and every stage (weights as fp32 or fp16). */
export async function saveCascade(dir: string, encoder: EncoderConfig, stages: StageSpec[], dtype: "F32" | "F16" = "F32"): Promise<void> {
  await mkdir(dir, { recursive: true });
  await mkdir(join(dir, "text_encoder"), { recursive: true });
  await writeJson(join(dir, "text_encoder", "config.json"), encoder);
  const names = stages.map((_, i) => `stage_${i}`);
  for (const [i, s] of stages.entries()) {
    const sub = join(dir, names[i]);
    await mkdir(sub, { recursive: true });
    const cfg: StageConfig = { class: "UNet", version: FORMAT_VERSION, unet: s.unet.config, parameterization: s.parameterization, schedule: s.schedule };
    await writeJson(join(sub, "config.json"), cfg);
    const tensors = new Map([...s.unet.namedParameters()].map(([n, p]) => [n, { dtype, shape: [...p.shape], data: fromFloat32(p.data, dtype) }]));
    await saveSafetensors(join(sub, "model.safetensors"), tensors, { format: "imagen-ts", class: "UNet" });
  }
  await writeJson(join(dir, "model_index.json"), { _class_name: "ImagenCascade", version: FORMAT_VERSION, text_encoder: "text_encoder", stages: names });
}

function field<T>(obj: Record<string, unknown>, key: string, ok: (v: unknown) => v is T, what: string, want: string): T {
  const v = obj[key];
  if (!ok(v)) throw new ModelFolderError(`${what}: field "${key}" expected ${want}, got ${JSON.stringify(v)}`);
  return v;
}
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isStrArr = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string" && /^[\w.-]+$/.test(s));

export interface LoadedCascade { encoder: TextEncoder; stages: StageSpec[] }

/** Loads and validates a model folder; every problem names the file, the field and the valid choices. */
export async function loadCascade(dir: string): Promise<LoadedCascade> {
  const index = await readJson(join(dir, "model_index.json"), "model folder");
  const version = field(index, "version", isNum, "model_index.json", "a number");
  if (version > FORMAT_VERSION) throw new ModelFolderError(`model_index.json: version ${version} is newer than this imagen-ts (${FORMAT_VERSION}); upgrade imagen-ts`);
  const stageNames = field(index, "stages", isStrArr, "model_index.json", "a list of sub-folder names");
  const encName = field(index, "text_encoder", (v): v is string => typeof v === "string" && /^[\w.-]+$/.test(v), "model_index.json", "a sub-folder name");
  const enc = await readJson(join(dir, encName, "config.json"), "text encoder");
  if (enc.class !== "WordEncoder") throw new ModelFolderError(`text encoder config: class expected "WordEncoder", got ${JSON.stringify(enc.class)}`);
  const encoder = new WordEncoder(field(enc, "dim", isNum, "text encoder config", "a number"), field(enc, "maxLength", isNum, "text encoder config", "a number"), field(enc, "seed", isNum, "text encoder config", "a number"));
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
  return { encoder, stages };
}
