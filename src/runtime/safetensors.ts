// safetensors read / write (https://github.com/huggingface/safetensors), validated as fully as the
// reference Rust reader: header cap, UTF-8 JSON, known dtypes, sizes, sorted gap-free offsets, whole
// file covered, duplicate keys. Pickle / zip checkpoints are refused, never parsed.

import { syncFolder, writeSynced } from "../util/fs.js";
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  DataCoverageError, DataOffsetsError, DuplicateKeyError, FileTooShortError, HeaderEncodingError,
  HeaderJsonError, HeaderLengthError, MetadataError, PickleRefusedError, TensorEntryError,
  TensorSizeMismatchError, TensorSizeOverflowError, UnknownDtypeError, describeSource,
} from "./safetensors-errors.js";
import { type SafetensorsDtype, type TensorEntry, dtypeSizes, isSafetensorsDtype } from "./safetensors-dtypes.js";

export * from "./safetensors-errors.js";
export * from "./safetensors-dtypes.js";

export interface SafetensorsFile {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** What the writer takes: `data` is any view holding exactly shape x dtype size bytes, little-endian. */
export interface TensorInput {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

export type TensorInputs = Record<string, TensorInput> | ReadonlyMap<string, TensorInput>;

/** The reference reader's cap on the JSON header, against hostile length fields. */
export const maxHeaderBytes = 100_000_000;

const metadataKey = "__metadata__";
const entryKeys = ["data_offsets", "dtype", "shape"];
const convertHint = "convert it to safetensors (e.g. with the safetensors Python package: " +
  "`save_file(torch.load(...), 'model.safetensors')`)";

const validDtypes = Object.keys(dtypeSizes).join(", ");

/** Parses and validates a whole safetensors file held in memory; tensor data are views into `bytes`. */
export function parseSafetensors(bytes: Uint8Array, source?: string): SafetensorsFile {
  const layout = parseLayout(bytes, bytes.length, describeSource(source));
  const tensors = new Map<string, TensorEntry>();
  for (const { name, dtype, shape, begin, end } of layout.entries) {
    tensors.set(name, { dtype, shape, data: bytes.subarray(layout.dataStart + begin, layout.dataStart + end) });
  }
  return { tensors, metadata: layout.metadata };
}

interface Layout {
  dataStart: number;
  metadata: Record<string, string>;
  entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[];
}

/**
 * Validates a file's header and layout from its first bytes (`prefix`: at least the 8-byte length and the
 * header, or the whole file when shorter) and its total size, without needing the tensor data in memory.
 */
function parseLayout(prefix: Uint8Array, fileSize: number, where: string): Layout {
  refusePickle(prefix, fileSize, where);
  if (fileSize < 8) {
    throw new FileTooShortError(`${where}: expected at least 8 bytes (the u64 header length), got ` +
      `${fileSize}; the file is truncated or not safetensors: re-download or re-save it`);
  }
  const headerLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(maxHeaderBytes)) {
    throw new HeaderLengthError(`${where}: header length: expected at most ${maxHeaderBytes} bytes, got ` +
      `${headerLength}; the file is corrupt or not safetensors: re-download or re-save it`);
  }
  if (headerLength > BigInt(fileSize - 8)) {
    throw new HeaderLengthError(`${where}: header length: expected at most ${fileSize - 8} bytes ` +
      `(file size ${fileSize} - 8), got ${headerLength}; the file is truncated: re-download or re-save it`);
  }
  const dataStart = 8 + Number(headerLength);
  const header = decodeHeader(prefix.subarray(8, dataStart), where);
  const json = parseHeaderJson(header, where);
  checkDuplicateKeys(header, where);

  let metadata: Record<string, string> = {};
  const entries: Layout["entries"] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === metadataKey) {
      metadata = checkMetadata(value, where);
      continue;
    }
    const { dtype, shape, begin, end } = checkEntry(name, value, where);
    entries.push({ name, dtype, shape: [...shape], begin, end });
  }
  checkLayout(entries, fileSize - dataStart, where);
  return { dataStart, metadata, entries };
}

function refusePickle(bytes: Uint8Array, fileSize: number, where: string): void {
  // A real header may have a length whose first bytes read 0x80 0x02 (e.g. 640 bytes), so a file whose
  // header length fits and whose header starts with `{` is safetensors whatever its first bytes are.
  if (bytes.length >= 9 && bytes[8] === 0x7b) {
    const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (headerLength <= BigInt(fileSize - 8)) return;
  }
  const isPickle = bytes.length >= 2 && bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5;
  const isZip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 &&
    bytes[3] === 0x04;
  if (isPickle || isZip) {
    throw new PickleRefusedError(`${where}: expected a safetensors file, got a ${isPickle ? "pickle" : "zip"} ` +
      "header; this looks like a PyTorch pickle/zip checkpoint (.pt/.bin/.ckpt); imagen-ts never loads " +
      `pickle; ${convertHint}`);
  }
}

function decodeHeader(headerBytes: Uint8Array, where: string): string {
  try {
    // ignoreBOM keeps a BOM in the text so the `{` check below rejects it, as the reference does.
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new HeaderEncodingError(`${where}: header: expected UTF-8 JSON, got invalid UTF-8 bytes; ` +
      "the file is corrupt: re-download or re-save it");
  }
}

function parseHeaderJson(header: string, where: string): Record<string, unknown> {
  const got = JSON.stringify(header.slice(0, 40));
  if (!header.startsWith("{")) {
    throw new HeaderJsonError(`${where}: header: expected a JSON object starting with "{", got ${got}; ` +
      "the file is corrupt or not safetensors: re-download or re-save it");
  }
  let json: unknown;
  try {
    json = JSON.parse(header);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new HeaderJsonError(`${where}: header: expected valid JSON, got a parse error (${reason}); ` +
      "the file is corrupt: re-download or re-save it");
  }
  if (!isPlainObject(json)) {
    throw new HeaderJsonError(`${where}: header: expected a JSON object, got ${describeJson(json)}; ` +
      "the file is corrupt or not safetensors: re-download or re-save it");
  }
  return json;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const text = JSON.stringify(value);
  return `${typeof value} ${text.length > 40 ? text.slice(0, 40) + "..." : text}`;
}

/** JSON.parse keeps the last of two equal keys; the format forbids them, so scan the raw text. */
export function checkDuplicateKeys(text: string, where: string): void {
  interface Frame { keys: Set<string> | null; path: string[]; expectKey: boolean; lastKey: string }
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (c === "{" || c === "[") {
      const path = top ? (top.keys ? [...top.path, top.lastKey] : top.path) : [];
      stack.push({ keys: c === "{" ? new Set() : null, path, expectKey: c === "{", lastKey: "" });
      i++;
    } else if (c === "}" || c === "]") {
      stack.pop();
      i++;
    } else if (c === ",") {
      if (top?.keys) top.expectKey = true;
      i++;
    } else if (c === ":") {
      if (top) top.expectKey = false;
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          const inside = top.path.length === 0 ? "header: expected unique tensor names"
            : `entry ${JSON.stringify(top.path.join("."))}: expected unique keys`;
          throw new DuplicateKeyError(`${where}: ${inside}, got ${JSON.stringify(key)} twice (JSON readers ` +
            "would silently keep the last); the writer that made this file is broken: re-save it with one " +
            "value per key");
        }
        top.keys.add(key);
        top.lastKey = key;
      }
      i = j + 1;
    } else {
      i++;
    }
  }
}

function checkMetadata(value: unknown, where: string): Record<string, string> {
  const fix = "the safetensors format allows only string values there: re-save with string metadata";
  if (!isPlainObject(value)) {
    throw new MetadataError(`${where}: ${metadataKey}: expected an object of string -> string, got ` +
      `${describeJson(value)}; ${fix}`);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new MetadataError(`${where}: ${metadataKey}[${JSON.stringify(key)}]: expected a string, got ` +
        `${describeJson(v)}; ${fix}`);
    }
  }
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function checkEntry(name: string, value: unknown, where: string):
  { dtype: SafetensorsDtype; shape: number[]; begin: number; end: number } {
  const at = `${where}: tensor ${JSON.stringify(name)}`;
  const fix = "the file is corrupt or written by a broken tool: re-save it with the safetensors library";
  const bad = (what: string, expected: string, got: unknown): TensorEntryError =>
    new TensorEntryError(`${at}: ${what}: expected ${expected}, got ${describeJson(got)}; ${fix}`);
  if (!isPlainObject(value)) throw bad("entry", "an object {dtype, shape, data_offsets}", value);
  const keys = Object.keys(value).sort();
  if (keys.join() !== entryKeys.join()) {
    throw new TensorEntryError(`${at}: entry keys: expected exactly [dtype, shape, data_offsets], got ` +
      `[${keys.join(", ")}]; ${fix}`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") throw bad("dtype", "a string", dtype);
  if (!isSafetensorsDtype(dtype)) {
    throw new UnknownDtypeError(`${at}: dtype: expected one of ${validDtypes}, got ${JSON.stringify(dtype)}; ` +
      "convert the tensor to a supported dtype before saving");
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw bad("shape", "an array of non-negative integers", shape);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw bad("data_offsets", "[begin, end] of non-negative integers", offsets);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw bad("data_offsets", "begin <= end", offsets);
  const bytes = byteSize(dtype, shape as number[], at);
  if (end - begin !== bytes) {
    throw new TensorSizeMismatchError(`${at}: data_offsets [${begin}, ${end}]: expected end - begin = ${bytes} ` +
      `bytes (shape [${shape.join(", ")}] x ${dtypeSizes[dtype]} bytes of ${dtype}), got ${end - begin}; ${fix}`);
  }
  return { dtype, shape: shape as number[], begin, end };
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** shape x dtype size in bytes, refusing any product that is not a safe integer. */
function byteSize(dtype: SafetensorsDtype, shape: readonly number[], at: string): number {
  let bytes = dtypeSizes[dtype];
  for (const dim of shape) {
    bytes *= dim;
    if (!Number.isSafeInteger(bytes)) {
      throw new TensorSizeOverflowError(`${at}: size: expected shape [${shape.join(", ")}] x ` +
        `${dtypeSizes[dtype]} bytes of ${dtype} to be at most ${Number.MAX_SAFE_INTEGER} bytes, got an ` +
        "overflow; the shape is corrupt: re-save the tensor with its real shape");
    }
  }
  return bytes;
}

function checkLayout(ranges: Array<{ name: string; begin: number; end: number }>, dataLength: number,
  where: string): void {
  const fix = "the file is corrupt or written by a broken tool: re-save it with the safetensors library";
  const sorted = [...ranges].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let offset = 0;
  let previous = "the start of the data section";
  for (const { name, begin, end } of sorted) {
    if (begin !== offset) {
      const problem = begin < offset ? "overlaps" : "leaves a gap after";
      throw new DataOffsetsError(`${where}: tensor ${JSON.stringify(name)}: data_offsets: expected begin = ` +
        `${offset} (where ${previous} ends), got ${begin}, so it ${problem} it; ${fix}`);
    }
    offset = end;
    previous = `tensor ${JSON.stringify(name)}`;
  }
  if (offset !== dataLength) {
    const problem = offset > dataLength ? "run past the end of the file" : "leave trailing bytes unused";
    throw new DataCoverageError(`${where}: data section: expected the tensors to cover all ${dataLength} ` +
      `bytes, got ${offset} (the tensors ${problem}, last is ${previous}); the file is truncated or ` +
      `corrupt: re-download or re-save it`);
  }
}

/** Writes tensors in the given order, contiguous, after a JSON header padded with spaces to 8 bytes. */
export function serializeSafetensors(tensors: TensorInputs, metadata?: Record<string, string>): Uint8Array {
  const where = "safetensors writer";
  // Pairs, then Object.fromEntries: a plain assignment of a tensor named "__proto__" would be lost.
  const header: Array<[string, unknown]> = [];
  if (metadata !== undefined) header.push([metadataKey, checkMetadata(metadata, where)]);
  const list: Array<[string, TensorInput]> = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, TensorInput>)]
    : Object.entries(tensors as Record<string, TensorInput>);
  let offset = 0;
  for (const [name, tensor] of list) {
    const at = `${where}: tensor ${JSON.stringify(name)}`;
    if (name === metadataKey) {
      throw new TensorEntryError(`${at}: name: expected anything but ${metadataKey}, got it; rename the tensor`);
    }
    if (!isSafetensorsDtype(tensor.dtype)) {
      throw new UnknownDtypeError(`${at}: dtype: expected one of ${validDtypes}, got ` +
        `${JSON.stringify(tensor.dtype)}; convert the tensor to a supported dtype`);
    }
    if (!tensor.shape.every((dim) => isCount(dim))) {
      throw new TensorEntryError(`${at}: shape: expected non-negative integers, got [${tensor.shape.join(", ")}]; ` +
        "pass the tensor's real shape");
    }
    const bytes = byteSize(tensor.dtype, tensor.shape, at);
    if (tensor.data.byteLength !== bytes) {
      throw new TensorSizeMismatchError(`${at}: data: expected ${bytes} bytes (shape [${tensor.shape.join(", ")}] ` +
        `x ${dtypeSizes[tensor.dtype]} bytes of ${tensor.dtype}), got ${tensor.data.byteLength}; pass data ` +
        "that matches the shape and dtype");
    }
    header.push([name, { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + bytes] }]);
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const [, tensor] of list) {
    out.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), at);
    at += tensor.data.byteLength;
  }
  return out;
}

/** Files at least this big are read tensor by tensor (Node cannot read 2 GiB or more into one buffer). */
export const streamedLoadBytes = 1 << 30;

export interface LoadSafetensorsOptions {
  /** Files at least this big are read tensor by tensor; default streamedLoadBytes. */
  streamFrom?: number;
  /** Only tensors whose name passes are kept (a big file's others are never read); default all. */
  keep?: (name: string) => boolean;
  /**
   * Maps each kept tensor as soon as it is read (e.g. fp16 -> fp32), so that in a streamed read the raw
   * bytes of one tensor at a time are alive, not the whole file's. The layout is validated first either way.
   */
  convert?: (name: string, entry: TensorEntry) => TensorEntry;
}

/** Reads and validates a safetensors file. */
export async function loadSafetensors(path: string, options: LoadSafetensorsOptions = {}): Promise<SafetensorsFile> {
  const keep = options.keep ?? (() => true);
  const convert = options.convert ?? ((_: string, entry: TensorEntry) => entry);
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size < (options.streamFrom ?? streamedLoadBytes)) {
      const buffer = await fh.readFile();
      const file = parseSafetensors(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), path);
      if (!options.keep && !options.convert) return file;
      const tensors = new Map<string, TensorEntry>();
      for (const [name, entry] of file.tensors) if (keep(name)) tensors.set(name, convert(name, entry));
      return { tensors, metadata: file.metadata };
    }
    // Large file: read the length and the header, validate the layout, then each tensor into its own buffer.
    const readAt = async (position: number, length: number) => {
      const out = new Uint8Array(length);
      for (let done = 0; done < length;) {
        const { bytesRead } = await fh.read(out, done, length - done, position + done);
        if (bytesRead === 0) throw new FileTooShortError(`${describeSource(path)}: the file shrank while being read; re-download or re-save it`);
        done += bytesRead;
      }
      return out;
    };
    const head = await readAt(0, Math.min(size, 9));
    let prefix = head;
    if (size >= 8) {
      const headerLength = new DataView(head.buffer, 0, 8).getBigUint64(0, true);
      const want = headerLength <= BigInt(Math.min(maxHeaderBytes, size - 8)) ? 8 + Number(headerLength) : head.length;
      if (want > head.length) prefix = await readAt(0, want);
    }
    const layout = parseLayout(prefix, size, describeSource(path));
    const tensors = new Map<string, TensorEntry>();
    for (const { name, dtype, shape, begin, end } of layout.entries) {
      if (keep(name)) tensors.set(name, convert(name, { dtype, shape, data: await readAt(layout.dataStart + begin, end - begin) }));
    }
    return { tensors, metadata: layout.metadata };
  } finally {
    await fh.close();
  }
}

/** Writes crash-safely: a temp file beside the target, fsync, rename over it, fsync the folder. */
export async function saveSafetensors(path: string, tensors: TensorInputs,
  metadata?: Record<string, string>): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeSynced(temp, bytes, "w");
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncFolder(dirname(path));
}


