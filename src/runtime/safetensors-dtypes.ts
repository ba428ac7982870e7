// safetensors dtypes: sizes, and conversion of raw little-endian bytes to and from Float32Array,
// with F16 / BF16 rounded to nearest even (as numpy and torch do).

import { TensorSizeMismatchError, UnknownDtypeError } from "./safetensors-errors.js";

export type SafetensorsDtype =
  | "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U64" | "U32" | "U16" | "U8" | "BOOL";

/** Bytes per element of each dtype; its keys are the dtypes we accept. */
export const dtypeSizes: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export interface TensorEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes: a view into the file buffer, not a copy. */
  data: Uint8Array;
}

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(dtypeSizes, value);
}

// One scratch word reinterpreted as float32 and uint32 (same endianness for both views).
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE half bits -> number (exact: every half is a float32). */
export function f16BitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** number -> IEEE half bits, via float32, rounding to nearest even; overflow gives infinity. */
export function floatToF16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal: keep (14 - e) fewer bits of the 24-bit significand, then round.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const full = mantissa | 0x800000;
    let m = full >>> shift;
    const round = (full >>> (shift - 1)) & 1;
    const sticky = full & ((1 << (shift - 1)) - 1);
    if (round && (sticky || m & 1)) m++;
    return sign | m;
  }
  let h = (e << 10) | (mantissa >>> 13);
  // A carry out of the mantissa bumps the exponent, and past the top gives 0x7c00 = infinity.
  if (mantissa & 0x1000 && (mantissa & 0xfff || h & 1)) h++;
  return sign | h;
}

/** bfloat16 bits -> number (the top half of a float32). */
export function bf16BitsToFloat(b: number): number {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0]!;
}

/** number -> bfloat16 bits, via float32, rounding to nearest even; NaN stays a quiet NaN. */
export function floatToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) / 0x10000) & 0xffff;
}

/** Converts any tensor to a fresh Float32Array; works at any byte offset (views need no alignment). */
export function toFloat32(entry: TensorEntry): Float32Array {
  const size = dtypeSizes[entry.dtype];
  if (size === undefined) {
    throw new UnknownDtypeError(`toFloat32: dtype: expected one of ${Object.keys(dtypeSizes).join(", ")}, ` +
      `got ${JSON.stringify(entry.dtype)}; convert the tensor to a supported dtype`);
  }
  const count = entry.shape.reduce((a, b) => a * b, 1);
  if (entry.data.byteLength !== count * size) {
    throw new TensorSizeMismatchError(`toFloat32: data: expected ${count * size} bytes (shape ` +
      `[${entry.shape.join(", ")}] x ${size} bytes of ${entry.dtype}), got ${entry.data.byteLength}; ` +
      "pass data that matches the shape and dtype");
  }
  // A copy of exactly the tensor's bytes: `slice()` of a Node Buffer (what parsing a Buffer gives) is a view.
  if (entry.dtype === "F32" && littleEndian) return new Float32Array(entry.data.buffer.slice(entry.data.byteOffset, entry.data.byteOffset + entry.data.byteLength));
  if ((entry.dtype === "F16" || entry.dtype === "BF16") && littleEndian) return halfToFloat32(entry.data, entry.dtype, count);
  const view = new DataView(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
  const read = readers[entry.dtype];
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = read(view, i * size);
  return out;
}

let f16Table: Float32Array | null = null;

/**
 * F16/BF16 -> float32 on a little-endian host, by 16-bit words: F16 through a 65,536-entry table (built
 * once from f16BitsToFloat, so the values are the same), BF16 by a shift into the float32 bits. About 50x
 * the per-element DataView path, which spent ~110 s of a T5-XL load converting its 1.2G fp16 weights.
 */
function halfToFloat32(data: Uint8Array, dtype: "F16" | "BF16", count: number): Float32Array {
  const bytes = data.byteOffset % 2 === 0 ? data : data.slice(); // a Uint16Array view needs an even offset
  const words = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Float32Array(count);
  if (dtype === "BF16") {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = words[i] << 16;
    return out;
  }
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToFloat(h);
  }
  const table = f16Table;
  for (let i = 0; i < count; i++) out[i] = table[words[i]];
  return out;
}

const readers: Record<SafetensorsDtype, (view: DataView, at: number) => number> = {
  F64: (v, at) => v.getFloat64(at, true),
  F32: (v, at) => v.getFloat32(at, true),
  F16: (v, at) => f16BitsToFloat(v.getUint16(at, true)),
  BF16: (v, at) => bf16BitsToFloat(v.getUint16(at, true)),
  I64: (v, at) => Number(v.getBigInt64(at, true)),
  I32: (v, at) => v.getInt32(at, true),
  I16: (v, at) => v.getInt16(at, true),
  I8: (v, at) => v.getInt8(at),
  U64: (v, at) => Number(v.getBigUint64(at, true)),
  U32: (v, at) => v.getUint32(at, true),
  U16: (v, at) => v.getUint16(at, true),
  U8: (v, at) => v.getUint8(at),
  BOOL: (v, at) => (v.getUint8(at) ? 1 : 0),
};

/** Float32Array -> raw little-endian bytes of F32, F16 or BF16 (a fresh buffer). */
export function fromFloat32(data: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") {
    const out = new Uint8Array(data.length * 4);
    if (littleEndian) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } else {
      const view = new DataView(out.buffer);
      data.forEach((x, i) => view.setFloat32(i * 4, x, true));
    }
    return out;
  }
  if (dtype !== "F16" && dtype !== "BF16") {
    throw new UnknownDtypeError(`fromFloat32: dtype: expected one of F32, F16, BF16, got ` +
      `${JSON.stringify(dtype)}; pick one of those, or convert integers yourself`);
  }
  const encode = dtype === "F16" ? floatToF16Bits : floatToBf16Bits;
  const out = new Uint8Array(data.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setUint16(i * 2, encode(data[i]!), true);
  return out;
}
