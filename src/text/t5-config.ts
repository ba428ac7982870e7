// T5 encoder hyper-parameters read from a Hugging Face config.json, with T5Config's defaults for missing
// keys and its derivation of dense_act_fn / is_gated_act from feed_forward_proj (explicit keys win).
import { ImagenError } from "../util/errors.js";

/** A config.json or checkpoint that cannot be used as it is; the message names the field and the fix. */
export class T5ConfigError extends ImagenError {}

/** Activations a T5 feed-forward may use (transformers' ACT2FN names). */
export const t5Activations = [
  "relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "silu", "swish", "tanh", "sigmoid",
] as const;
export type T5Activation = (typeof t5Activations)[number];

export interface T5Config {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  numBuckets: number;
  maxDistance: number;
  layerNormEpsilon: number;
  denseActFn: T5Activation;
  isGatedAct: boolean;
  /** numHeads * dKv: the width of q/k/v, which may differ from dModel (e.g. byt5-small). */
  innerDim: number;
}

/** T5Config's defaults (transformers configuration_t5.py), under their config.json names. */
export const t5Defaults = {
  vocab_size: 32128, d_model: 512, d_kv: 64, d_ff: 2048, num_layers: 6, num_heads: 8,
  relative_attention_num_buckets: 32, relative_attention_max_distance: 128, layer_norm_epsilon: 1e-6,
  feed_forward_proj: "relu",
} as const;

/** Model types whose encoder is exactly T5's (mT5 is T5 v1.1 with another vocabulary). */
const encoderCompatible = ["t5", "mt5"];

type Json = Record<string, unknown>;

function positiveInt(cfg: Json, key: keyof typeof t5Defaults, where: string): number {
  const v = cfg[key] ?? t5Defaults[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new T5ConfigError(`${where}: field "${key}" expected a positive integer, got ${JSON.stringify(v)}; `
      + `fix config.json (or delete the key to use the default ${t5Defaults[key]})`);
  }
  return v;
}

/** Splits feed_forward_proj ("relu", "gated-gelu", "gated-silu", ...) as T5Config does. */
function deriveActivation(proj: unknown, where: string): { act: string; gated: boolean } {
  const parts = typeof proj === "string" ? proj.split("-") : [];
  if (typeof proj !== "string" || (parts.length > 1 && parts[0] !== "gated") || parts.length > 2 || parts[parts.length - 1] === "") {
    throw new T5ConfigError(`${where}: field "feed_forward_proj" expected "ACT" or "gated-ACT" (e.g. "relu", "gated-gelu"), `
      + `got ${JSON.stringify(proj)}; fix config.json`);
  }
  // transformers maps the legacy name "gated-gelu" to the tanh approximation, for backwards compatibility.
  const act = proj === "gated-gelu" ? "gelu_new" : parts[parts.length - 1];
  return { act, gated: parts[0] === "gated" };
}

function isActivation(v: unknown): v is T5Activation {
  return typeof v === "string" && (t5Activations as readonly string[]).includes(v);
}

/** Resolves a parsed config.json into a T5Config, throwing T5ConfigError naming the bad field. */
export function resolveT5Config(cfg: Json, where = "config.json"): T5Config {
  const type = cfg.model_type;
  if (type !== undefined && !encoderCompatible.includes(String(type))) {
    throw new T5ConfigError(`${where}: field "model_type" expected one of ${encoderCompatible.join(", ")}, got ${JSON.stringify(type)}; `
      + "this loader reads T5-family encoders only (umT5 and others differ in architecture)");
  }
  const derived = deriveActivation(cfg.feed_forward_proj ?? t5Defaults.feed_forward_proj, where);
  const act = cfg.dense_act_fn ?? derived.act;
  if (!isActivation(act)) {
    const key = cfg.dense_act_fn === undefined ? "feed_forward_proj" : "dense_act_fn";
    throw new T5ConfigError(`${where}: field "${key}" gives activation ${JSON.stringify(act)}, expected one of ${t5Activations.join(", ")}; fix config.json`);
  }
  const gated = cfg.is_gated_act ?? derived.gated;
  if (typeof gated !== "boolean") {
    throw new T5ConfigError(`${where}: field "is_gated_act" expected true or false, got ${JSON.stringify(gated)}; fix config.json or delete the key`);
  }
  const eps = cfg.layer_norm_epsilon ?? t5Defaults.layer_norm_epsilon;
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    throw new T5ConfigError(`${where}: field "layer_norm_epsilon" expected a positive number, got ${JSON.stringify(eps)}; fix config.json`);
  }
  const c: T5Config = {
    vocabSize: positiveInt(cfg, "vocab_size", where),
    dModel: positiveInt(cfg, "d_model", where),
    dKv: positiveInt(cfg, "d_kv", where),
    dFf: positiveInt(cfg, "d_ff", where),
    numLayers: positiveInt(cfg, "num_layers", where),
    numHeads: positiveInt(cfg, "num_heads", where),
    numBuckets: positiveInt(cfg, "relative_attention_num_buckets", where),
    maxDistance: positiveInt(cfg, "relative_attention_max_distance", where),
    layerNormEpsilon: eps,
    denseActFn: act,
    isGatedAct: gated,
    innerDim: 0,
  };
  c.innerDim = c.numHeads * c.dKv;
  const maxExact = Math.floor(c.numBuckets / 2 / 2);
  if (maxExact < 1) {
    throw new T5ConfigError(`${where}: field "relative_attention_num_buckets" expected at least 4 (the bidirectional rule halves it twice), `
      + `got ${c.numBuckets}; fix config.json`);
  }
  if (c.maxDistance <= maxExact) {
    throw new T5ConfigError(`${where}: field "relative_attention_max_distance" expected more than num_buckets / 4 = ${maxExact}, `
      + `got ${c.maxDistance}; fix config.json`);
  }
  return c;
}

/** The config.json keys that resolveT5Config reads, written back in HF's names (for saving a folder). */
export function t5ConfigJson(c: T5Config): Json {
  return {
    model_type: "t5", architectures: ["T5EncoderModel"], vocab_size: c.vocabSize, d_model: c.dModel, d_kv: c.dKv,
    d_ff: c.dFf, num_layers: c.numLayers, num_heads: c.numHeads, relative_attention_num_buckets: c.numBuckets,
    relative_attention_max_distance: c.maxDistance, layer_norm_epsilon: c.layerNormEpsilon,
    feed_forward_proj: `${c.isGatedAct ? "gated-" : ""}${c.denseActFn}`, dense_act_fn: c.denseActFn, is_gated_act: c.isGatedAct,
  };
}
