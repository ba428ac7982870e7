// Reads a Hugging Face T5 folder: config.json plus model.safetensors or a sharded model.safetensors.index.json,
// from T5EncoderModel or T5ForConditionalGeneration files (decoder.* and lm_head are ignored). fp16 / bf16 /
// fp64 weights are converted to float32. Every problem names the file, the field or tensor, and the fix.
import { createHash } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { loadSafetensors, toFloat32, type TensorEntry } from "../runtime/safetensors.js";
import { T5ConfigError, resolveT5Config, type T5Config } from "./t5-config.js";
import { T5EncoderModel } from "./t5.js";

const floatDtypes = new Set(["F32", "F16", "BF16", "F64"]);
/** The float32 arrays behind entries that readTensors converted from fp16/bf16 as it read them. */
const converted = new WeakMap<TensorEntry, Float32Array>();

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** Reads a JSON object, or throws T5ConfigError naming the file. */
export async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new T5ConfigError(`${what}: ${path} is missing; a T5 folder needs config.json, model.safetensors (or model.safetensors.index.json) and tokenizer.json`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new T5ConfigError(`${what}: ${path} is not valid JSON (${(e as Error).message}); restore the file from the original model`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new T5ConfigError(`${what}: ${path} expected a JSON object, got ${Array.isArray(v) ? "an array" : JSON.stringify(v)}; restore the file from the original model`);
  }
  return v as Record<string, unknown>;
}

/** Which shard files hold the tensors we need, from model.safetensors.index.json. */
async function shardFiles(dir: string, wanted: (name: string) => boolean): Promise<string[]> {
  const indexPath = join(dir, "model.safetensors.index.json");
  const index = await readJsonObject(indexPath, "shard index");
  const map = index.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new T5ConfigError(`shard index: ${indexPath} field "weight_map" expected an object of tensor name -> file, got ${JSON.stringify(map)}; restore the file`);
  }
  const files = new Set<string>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== "string" || !/^[\w.-]+\.safetensors$/.test(file)) {
      throw new T5ConfigError(`shard index: ${indexPath} maps "${name}" to ${JSON.stringify(file)}; expected a .safetensors file name in the same folder`);
    }
    if (wanted(name)) files.add(file);
  }
  for (const file of files) {
    if (!(await exists(join(dir, file)))) {
      throw new T5ConfigError(`shard index: ${indexPath} names ${file}, which is missing from ${dir}; download every shard the index lists`);
    }
  }
  return [...files].sort();
}

const isEncoderTensor = (name: string) => name === "shared.weight" || name.startsWith("encoder.");

/** The safetensors entries of the folder (only the files that hold encoder tensors, when sharded). */
async function readTensors(dir: string): Promise<Map<string, TensorEntry>> {
  const single = join(dir, "model.safetensors");
  let files: string[];
  if (await exists(single)) files = ["model.safetensors"];
  else if (await exists(join(dir, "model.safetensors.index.json"))) files = await shardFiles(dir, isEncoderTensor);
  else {
    const pickle = (await exists(join(dir, "pytorch_model.bin"))) ? " (pytorch_model.bin is a pickle, which imagen-ts never loads: convert it to safetensors)" : "";
    throw new T5ConfigError(`T5 checkpoint: ${dir} has neither model.safetensors nor model.safetensors.index.json${pickle}`);
  }
  // Float tensors become F32 as they are read, so that (in shards of 1 GiB or more, read tensor by tensor)
  // only one tensor's fp16/bf16 bytes are alive beside the fp32 weights, not a whole shard's.
  const asF32 = (_: string, entry: TensorEntry): TensorEntry => {
    if (!floatDtypes.has(entry.dtype) || entry.dtype === "F32") return entry;
    const data = toFloat32(entry);
    const out: TensorEntry = { dtype: "F32", shape: entry.shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    converted.set(out, data);
    return out;
  };
  const tensors = new Map<string, TensorEntry>();
  for (const file of files) {
    const st = await loadSafetensors(join(dir, file), { keep: isEncoderTensor, convert: asF32 });
    for (const [name, entry] of st.tensors) tensors.set(name, entry);
  }
  return tensors;
}

function describeExpected(name: string, c: T5Config): string {
  if (name === "shared.weight") return "[vocab_size, d_model]";
  if (name.endsWith("relative_attention_bias.weight")) return "[relative_attention_num_buckets, num_heads]";
  if (/\.(q|k|v)\.weight$/.test(name)) return "[num_heads * d_kv, d_model]";
  if (name.endsWith(".o.weight")) return "[d_model, num_heads * d_kv]";
  if (/\.wi(_[01])?\.weight$/.test(name)) return "[d_ff, d_model]";
  if (name.endsWith(".wo.weight")) return "[d_model, d_ff]";
  return `[d_model] (d_model = ${c.dModel})`;
}

/** Moves the checkpoint's tensors into `model` by HF name, checking names, shapes and dtypes. */
function assignWeights(model: T5EncoderModel, tensors: Map<string, TensorEntry>, dir: string): void {
  const c = model.config;
  const mine = new Map(model.namedParameters());
  const embedding = tensors.get("shared.weight") ?? tensors.get("encoder.embed_tokens.weight");
  const missing: string[] = [];
  for (const [name, p] of mine) {
    const entry = name === "shared.weight" ? embedding : tensors.get(name);
    if (!entry) {
      missing.push(name === "shared.weight" ? "shared.weight (or encoder.embed_tokens.weight)" : name);
      continue;
    }
    if (!floatDtypes.has(entry.dtype)) {
      throw new T5ConfigError(`T5 checkpoint: tensor "${name}" has dtype ${entry.dtype}; expected F32, F16, BF16 or F64; re-save the weights as floats`);
    }
    if (entry.shape.length !== p.shape.length || entry.shape.some((d, i) => d !== p.shape[i])) {
      throw new T5ConfigError(`T5 checkpoint: tensor "${name}" has shape [${entry.shape.join(", ")}], but config.json gives `
        + `[${p.shape.join(", ")}] = ${describeExpected(name, c)}; the checkpoint and config.json disagree: use the config.json that came with these weights`);
    }
    // Entries converted while reading already hold host-order float32s: take them without a copy.
    p.data = converted.get(entry) ?? toFloat32(entry);
  }
  if (missing.length > 0) {
    throw new T5ConfigError(`T5 checkpoint: ${dir} lacks ${missing.length} encoder tensor(s): ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}; `
      + "check that num_layers and feed_forward_proj in config.json match the weights, and that every shard is present");
  }
  const extraBlocks = [...tensors.keys()].filter((n) => n.startsWith("encoder.") && n !== "encoder.embed_tokens.weight" && !mine.has(n));
  if (extraBlocks.length > 0) {
    throw new T5ConfigError(`T5 checkpoint: ${dir} has encoder tensors that config.json does not describe: ${extraBlocks.slice(0, 5).join(", ")}${extraBlocks.length > 5 ? ", ..." : ""}; `
      + "check num_layers and feed_forward_proj (relu has wi, gated-* has wi_0 and wi_1) in config.json");
  }
}

export interface LoadedT5 {
  model: T5EncoderModel;
  /** sha256 of the resolved config and every weight (as float32, in module order). */
  weightsHash: string;
}

/** Loads config.json and the encoder weights of a Hugging Face T5 folder. */
export async function loadT5Checkpoint(dir: string): Promise<LoadedT5> {
  const cfgPath = join(dir, "config.json");
  const config = resolveT5Config(await readJsonObject(cfgPath, "T5 config"), cfgPath);
  const model = new T5EncoderModel(config);
  assignWeights(model, await readTensors(dir), dir);
  const hash = createHash("sha256").update(JSON.stringify(config));
  for (const [name, p] of model.namedParameters()) {
    hash.update(`${name}:${p.shape.join("x")};`).update(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength));
  }
  return { model, weightsHash: hash.digest("hex") };
}
