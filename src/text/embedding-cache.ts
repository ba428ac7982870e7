// A content-addressed on-disk cache of text embeddings (DESIGN.md section 4): key = sha256(encoder id, prompt),
// value = one safetensors file holding the fp16 sequence (rows up to the last real token) and the 0/1 mask.
// Files are written to a temp name and renamed, and verified on read (structure, metadata, sha256 of the data):
// a torn or corrupt file is recomputed, never trusted. Hits and misses return the same fp16-rounded values.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ValueError } from "../util/errors.js";
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "../runtime/safetensors.js";
import type { EncodedText, TextEncoder } from "./encoder.js";

const format = "imagen-ts/embedding-cache/1";

/** One prompt's entry: embeddings [length, dim] (fp16-rounded) and mask [length]. */
interface Entry {
  embeddings: Float32Array;
  mask: Float32Array;
  truncated: boolean;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Files that failed verification and were recomputed. */
  rejected: number;
}

export interface CachedEncoder extends TextEncoder {
  readonly stats: CacheStats;
  /** The file that holds (or will hold) a prompt's embedding. */
  pathOf(prompt: string): string;
}

export function cacheKey(encoderId: string, prompt: string): string {
  return createHash("sha256").update(encoderId).update("\0").update(prompt).digest("hex");
}

function roundToF16(x: Float32Array): { bytes: Uint8Array; values: Float32Array } {
  const bytes = fromFloat32(x, "F16");
  return { bytes, values: toFloat32({ dtype: "F16", shape: [x.length], data: bytes }) };
}

function dataHash(emb: Uint8Array, mask: Uint8Array): string {
  return createHash("sha256").update(emb).update(mask).digest("hex");
}

/**
 * Wraps `encoder` with an embedding cache in `dir`. Training and sampling can share one folder; entries are
 * keyed by the encoder's id, so a different encoder (or max length) never reads another's embeddings.
 */
export function cachedEncoder(encoder: TextEncoder, dir: string, onWarning: (message: string) => void = () => undefined): CachedEncoder {
  const { dim, maxLength } = encoder;
  const stats: CacheStats = { hits: 0, misses: 0, rejected: 0 };
  const pathOf = (prompt: string) => {
    const key = cacheKey(encoder.id, prompt);
    return join(dir, key.slice(0, 2), `${key}.safetensors`);
  };

  async function read(prompt: string): Promise<Entry | null> {
    const path = pathOf(prompt);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch {
      return null;
    }
    try {
      const st = parseSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
      const m = st.metadata;
      const emb = st.tensors.get("embeddings");
      const mask = st.tensors.get("mask");
      if (m.format !== format || m.encoder !== encoder.id || m.text !== prompt) throw new Error("metadata does not match this encoder and prompt");
      if (!emb || !mask || emb.dtype !== "F16" || mask.dtype !== "U8") throw new Error("expected embeddings F16 and mask U8");
      const rows = emb.shape[0];
      if (emb.shape.length !== 2 || emb.shape[1] !== dim || mask.shape.length !== 1 || mask.shape[0] !== maxLength || rows > maxLength) {
        throw new Error(`shapes [${emb.shape}] / [${mask.shape}] do not fit [<=${maxLength}, ${dim}] / [${maxLength}]`);
      }
      if (dataHash(emb.data, mask.data) !== m.sha256) throw new Error("sha256 of the data does not match");
      const embeddings = new Float32Array(maxLength * dim);
      embeddings.set(toFloat32(emb));
      return { embeddings, mask: Float32Array.from(mask.data), truncated: m.truncated === "1" };
    } catch (e) {
      stats.rejected++;
      onWarning(`embedding cache: ${path} is corrupt (${(e as Error).message}); recomputing it`);
      return null;
    }
  }

  async function write(prompt: string, e: { embeddings: Float32Array; mask: Float32Array; truncated: boolean }): Promise<Entry> {
    let rows = 0;
    e.mask.forEach((v, t) => (rows = v !== 0 ? t + 1 : rows));
    const { bytes, values } = roundToF16(e.embeddings.subarray(0, rows * dim));
    const maskBytes = Uint8Array.from(e.mask, (v) => (v !== 0 ? 1 : 0));
    const file = serializeSafetensors(
      { embeddings: { dtype: "F16", shape: [rows, dim], data: bytes }, mask: { dtype: "U8", shape: [maxLength], data: maskBytes } },
      { format, encoder: encoder.id, text: prompt, truncated: e.truncated ? "1" : "0", sha256: dataHash(bytes, maskBytes) },
    );
    const path = pathOf(prompt);
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(temp, file);
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      onWarning(`embedding cache: could not write ${path} (${(err as Error).message}); continuing without caching it`);
    }
    const embeddings = new Float32Array(maxLength * dim);
    embeddings.set(values);
    return { embeddings, mask: Float32Array.from(maskBytes), truncated: e.truncated };
  }

  async function encode(prompts: readonly string[]): Promise<EncodedText> {
    const found = new Map<string, Entry>();
    for (const p of new Set(prompts)) {
      const hit = await read(p);
      if (hit) found.set(p, hit);
    }
    const missing = [...new Set(prompts)].filter((p) => !found.has(p));
    stats.hits += prompts.length - prompts.filter((p) => missing.includes(p)).length;
    stats.misses += missing.length;
    if (missing.length > 0) {
      const out = await encoder.encode(missing);
      if (out.dim !== dim || out.length !== maxLength) {
        throw new ValueError(`embedding cache: the encoder returned [${out.batch}, ${out.length}, ${out.dim}], expected [B, ${maxLength}, ${dim}]`);
      }
      for (const [i, p] of missing.entries()) {
        found.set(p, await write(p, {
          embeddings: out.embeddings.subarray(i * maxLength * dim, (i + 1) * maxLength * dim),
          mask: out.mask.subarray(i * maxLength, (i + 1) * maxLength),
          truncated: out.truncated[i],
        }));
      }
    }
    const B = prompts.length;
    const embeddings = new Float32Array(B * maxLength * dim);
    const mask = new Float32Array(B * maxLength);
    const truncated = prompts.map((p, b) => {
      const e = found.get(p) as Entry;
      embeddings.set(e.embeddings, b * maxLength * dim);
      mask.set(e.mask, b * maxLength);
      return e.truncated;
    });
    return { embeddings, mask, batch: B, length: maxLength, dim, truncated };
  }

  const wordTokens = encoder.wordTokens?.bind(encoder);
  return { id: `fp16-cache/1;${encoder.id}`, dim, maxLength, encode, stats, pathOf, ...(wordTokens ? { wordTokens } : {}) };
}
