// Crash-safe training checkpoints (DESIGN.md section 4): DIR/step-000001234/ holds float32 tensor groups
// as safetensors, state.json and a manifest.json with the size and sha256 of every file. Built in a
// .tmp-* folder beside the target, fsynced, renamed into place; loading picks the newest that verifies.

import { syncFolder, writeSynced } from "../util/fs.js";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseSafetensors, serializeSafetensors, toFloat32, type TensorInput } from "../runtime/safetensors.js";
import { ImagenError, ValueError } from "../util/errors.js";

export interface CheckpointTensor { shape: readonly number[]; data: Float32Array }

export interface CheckpointData {
  /** Named groups (e.g. `model`, `optimizer`, `ema`), each saved as `<group>.safetensors`. */
  tensors: Record<string, Map<string, CheckpointTensor>>;
  /** Any JSON value: step, RNG state, data cursor, config. */
  state: unknown;
}

export interface SaveCheckpointOptions {
  /** How many checkpoints to keep after saving, newest by step; default 3. */
  keep?: number;
}

export interface LoadCheckpointOptions {
  /** Called for each checkpoint that fails to verify, newest first, before an older one is tried. */
  onSkip?: (path: string, reason: string) => void;
}

export interface CheckpointInfo { step: number; path: string }

/** A checkpoint folder that fails verification (missing file, wrong size or hash, bad JSON). */
export class CheckpointError extends ImagenError {}

interface ManifestFile { name: string; bytes: number; sha256: string }
interface Manifest { format: string; version: number; step: number; files: ManifestFile[] }

const defaults = { keep: 3 };
const manifestFormat = "imagen-ts checkpoint";
const manifestVersion = 1;
const stateFile = "state.json";
const manifestFile = "manifest.json";
const groupExt = ".safetensors";
const stepPattern = /^step-(\d{9,})$/;
const tmpPattern = /^\.tmp-step-(\d{9,})-/;
const groupPattern = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** `step-000001234`: zero-padded so folders also sort by name. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(9, "0")}`;
}

/**
 * Saves `data` as DIR/step-NNNNNNNNN/ and returns that path. Nothing appears under the final name until
 * every file is written and fsynced, so a crash leaves either the whole checkpoint or only a .tmp-* folder.
 * Saving a step that exists replaces it; saving one older than the newest checkpoint is refused.
 */
export async function saveCheckpoint(dir: string, step: number, data: CheckpointData,
  options: SaveCheckpointOptions = {}): Promise<string> {
  const keep = options.keep ?? defaults.keep;
  checkStep(step, "saveCheckpoint");
  if (!Number.isSafeInteger(keep) || keep < 1) {
    throw new ValueError(`saveCheckpoint: options.keep: expected an integer >= 1, got ${keep}; ` +
      "pass how many checkpoints to keep (default 3)");
  }
  const files = encodeCheckpoint(step, data);
  await mkdir(dir, { recursive: true });
  const newest = (await listCheckpoints(dir)).at(-1);
  if (newest && newest.step > step) {
    throw new ValueError(`saveCheckpoint: step: expected >= ${newest.step} (the newest checkpoint in ${dir}), ` +
      `got ${step}; save into a fresh folder, or delete the newer checkpoints if you mean to go back`);
  }

  const name = checkpointName(step);
  const final = join(dir, name);
  const temp = join(dir, tmpName(step));
  await mkdir(temp);
  try {
    for (const [file, bytes] of files) await writeSynced(join(temp, file), bytes);
    await syncFolder(temp);
    if (newest?.step === step) {
      // rename() cannot replace a non-empty folder: move the old one aside (still a .tmp-*), then delete.
      const old = join(dir, tmpName(step));
      await rename(final, old);
      await rename(temp, final);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(temp, final);
    }
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
  await syncFolder(dir);
  await prune(dir, keep, step);
  return final;
}

/** Every `step-*` folder in `dir`, oldest first; nothing is verified. An absent folder has none. */
export async function listCheckpoints(dir: string): Promise<CheckpointInfo[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw err;
  });
  const found: CheckpointInfo[] = [];
  for (const entry of entries) {
    const match = stepPattern.exec(entry.name);
    if (match && entry.isDirectory()) found.push({ step: Number(match[1]), path: join(dir, entry.name) });
  }
  return found.sort((a, b) => a.step - b.step);
}

/**
 * The newest checkpoint that verifies (manifest parses, every file has its size and sha256, the
 * safetensors and state parse), or null when there is none. Broken ones are reported through `onSkip`.
 * Leftover .tmp-* folders of steps older than the one returned are deleted: no writer can still own them.
 */
export async function loadLatestCheckpoint(dir: string, options: LoadCheckpointOptions = {}):
  Promise<{ step: number; path: string; data: CheckpointData } | null> {
  const checkpoints = await listCheckpoints(dir);
  for (const { step, path } of checkpoints.reverse()) {
    try {
      const data = await readCheckpoint(path, step);
      await removeStaleTemps(dir, step);
      return { step, path, data };
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      options.onSkip?.(path, err.message);
    }
  }
  return null;
}

/** Reads and verifies one checkpoint folder; throws CheckpointError naming the first problem. */
export async function readCheckpoint(path: string, expectedStep?: number): Promise<CheckpointData> {
  const manifest = parseManifest(await readBytes(path, manifestFile), path);
  if (expectedStep !== undefined && manifest.step !== expectedStep) {
    throw broken(path, `${manifestFile} step`, `${expectedStep} (the folder name)`, String(manifest.step));
  }
  const tensors: CheckpointData["tensors"] = {};
  let state: unknown;
  let hasState = false;
  for (const file of manifest.files) {
    const bytes = await readBytes(path, file.name);
    if (bytes.length !== file.bytes) {
      throw broken(path, `${file.name} size`, `${file.bytes} bytes`, `${bytes.length}`);
    }
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    if (sha256 !== file.sha256) throw broken(path, `${file.name} sha256`, file.sha256, sha256);
    if (file.name === stateFile) {
      state = parseJson(bytes, path, stateFile);
      hasState = true;
    } else {
      tensors[file.name.slice(0, -groupExt.length)] = decodeGroup(bytes, join(path, file.name));
    }
  }
  if (!hasState) throw broken(path, `${manifestFile} files`, `an entry for ${stateFile}`, "none");
  return { tensors, state };
}

function checkStep(step: number, where: string): void {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new ValueError(`${where}: step: expected an integer >= 0, got ${step}; pass the training step`);
  }
}

function tmpName(step: number): string {
  return `.tmp-${checkpointName(step)}-${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** File name -> bytes, state and manifest last; validates everything before anything touches the disk. */
function encodeCheckpoint(step: number, data: CheckpointData): Array<[string, Uint8Array]> {
  const files: Array<[string, Uint8Array]> = [];
  for (const [group, tensors] of Object.entries(data.tensors)) {
    if (!groupPattern.test(group)) {
      throw new ValueError(`saveCheckpoint: tensors: expected group names of letters, digits, _ and - ` +
        `(they become file names), got ${JSON.stringify(group)}; rename the group`);
    }
    if (!(tensors instanceof Map)) {
      throw new ValueError(`saveCheckpoint: tensors.${group}: expected a Map of name -> { shape, data }, ` +
        `got ${typeof tensors}; wrap the entries in new Map(...)`);
    }
    const inputs = new Map<string, TensorInput>();
    for (const [name, tensor] of tensors) {
      const at = `saveCheckpoint: tensors.${group}[${JSON.stringify(name)}]`;
      if (!(tensor.data instanceof Float32Array)) {
        throw new ValueError(`${at}: data: expected a Float32Array, got ${describe(tensor.data)}; ` +
          "convert it with Float32Array.from(...)");
      }
      const count = tensor.shape.reduce((a, b) => a * b, 1);
      if (count !== tensor.data.length) {
        throw new ValueError(`${at}: data: expected ${count} values (shape [${tensor.shape.join(", ")}]), got ` +
          `${tensor.data.length}; pass data that matches the shape`);
      }
      inputs.set(name, { dtype: "F32", shape: tensor.shape, data: tensor.data });
    }
    files.push([group + groupExt, serializeSafetensors(inputs)]);
  }
  files.push([stateFile, new TextEncoder().encode(stringifyState(data.state))]);
  const manifest: Manifest = {
    format: manifestFormat, version: manifestVersion, step,
    files: files.map(([name, bytes]) => ({
      name, bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex"),
    })),
  };
  files.push([manifestFile, new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n")]);
  return files;
}

/** JSON.stringify would silently turn NaN into null and drop functions; resuming must be exact. */
function stringifyState(state: unknown): string {
  const text = JSON.stringify(state, function (key, value: unknown) {
    const at = `saveCheckpoint: state${key === "" ? "" : `[${JSON.stringify(key)}]`}`;
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new ValueError(`${at}: expected a finite number, got ${value}; JSON cannot hold it exactly, ` +
        "store it as a string");
    }
    if (typeof value === "bigint" || typeof value === "function" || typeof value === "symbol") {
      throw new ValueError(`${at}: expected a JSON value, got a ${typeof value}; store it as a string or number`);
    }
    return value;
  });
  if (text === undefined) {
    throw new ValueError("saveCheckpoint: state: expected a JSON value, got undefined; pass e.g. { step }");
  }
  return text;
}

function describe(value: unknown): string {
  if (value === null || typeof value !== "object") return String(value);
  return value.constructor?.name ?? "an object";
}

function decodeGroup(bytes: Uint8Array, file: string): Map<string, CheckpointTensor> {
  let parsed;
  try {
    parsed = parseSafetensors(bytes, file);
  } catch (err) {
    throw new CheckpointError(err instanceof Error ? err.message : String(err));
  }
  const group = new Map<string, CheckpointTensor>();
  for (const [name, entry] of parsed.tensors) {
    if (entry.dtype !== "F32") {
      throw new CheckpointError(`${file}: tensor ${JSON.stringify(name)}: expected dtype F32, got ` +
        `${entry.dtype}; checkpoints hold float32 only: this file was not written by saveCheckpoint`);
    }
    group.set(name, { shape: entry.shape, data: toFloat32(entry) });
  }
  return group;
}

function parseManifest(bytes: Uint8Array, path: string): Manifest {
  const json = parseJson(bytes, path, manifestFile);
  const bad = (what: string, expected: string, got: unknown): CheckpointError =>
    broken(path, `${manifestFile} ${what}`, expected, JSON.stringify(got) ?? "nothing");
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("", "an object", json);
  const { format, version, step, files } = json as Record<string, unknown>;
  if (format !== manifestFormat) throw bad("format", JSON.stringify(manifestFormat), format);
  if (version !== manifestVersion) throw bad("version", String(manifestVersion), version);
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) throw bad("step", "an integer", step);
  if (!Array.isArray(files)) throw bad("files", "an array", files);
  const seen = new Set<string>();
  for (const file of files as unknown[]) {
    const { name, bytes: size, sha256 } = (file ?? {}) as Record<string, unknown>;
    const validName = typeof name === "string" && !seen.has(name) &&
      (name === stateFile || (name.endsWith(groupExt) && groupPattern.test(name.slice(0, -groupExt.length))));
    if (!validName) throw bad("file name", `state.json or <group>${groupExt}, each once`, name);
    seen.add(name);
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw bad(`${name} bytes`, "a size", size);
    if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) throw bad(`${name} sha256`, "64 hex digits", sha256);
  }
  return { format, version, step, files: files as ManifestFile[] };
}

function parseJson(bytes: Uint8Array, path: string, file: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw broken(path, file, "valid UTF-8 JSON", `a parse error (${err instanceof Error ? err.message : err})`);
  }
}

async function readBytes(path: string, file: string): Promise<Uint8Array> {
  try {
    const buffer = await readFile(join(path, file));
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw broken(path, file, "the file", "none (missing)");
    throw err;
  }
}

function broken(path: string, what: string, expected: string, got: string): CheckpointError {
  return new CheckpointError(`checkpoint ${path}: ${what}: expected ${expected}, got ${got}; the checkpoint ` +
    "is damaged: it is skipped in favour of an older one (delete it once you have a good checkpoint)");
}



/** Keeps the newest `keep` checkpoints; each doomed one is renamed to .tmp-* first so none is ever half-deleted. */
async function prune(dir: string, keep: number, savedStep: number): Promise<void> {
  const checkpoints = await listCheckpoints(dir);
  for (const { step, path } of checkpoints.slice(0, Math.max(0, checkpoints.length - keep))) {
    const doomed = join(dir, tmpName(step));
    await rename(path, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
  await removeStaleTemps(dir, savedStep);
}

/** Deletes .tmp-* folders of steps below `step`: a crashed save, or a prune cut short. */
async function removeStaleTemps(dir: string, step: number): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const match = tmpPattern.exec(entry.name);
    if (match && entry.isDirectory() && Number(match[1]) < step) {
      await rm(join(dir, entry.name), { recursive: true, force: true });
    }
  }
}
