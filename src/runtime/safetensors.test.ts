// Tests for safetensors I/O: round trips, one malformed file per validation rule, a seeded fuzz of
// mutations, F16 / BF16 rounding, and the real T5 golden checkpoint when shared/ is present.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DataCoverageError, DataOffsetsError, DuplicateKeyError, FileTooShortError, HeaderEncodingError,
  HeaderJsonError, HeaderLengthError, MetadataError, PickleRefusedError, SafetensorsError, TensorEntryError,
  TensorSizeMismatchError, TensorSizeOverflowError, UnknownDtypeError, bf16BitsToFloat, dtypeSizes,
  f16BitsToFloat, floatToBf16Bits, floatToF16Bits, fromFloat32, loadSafetensors, parseSafetensors,
  saveSafetensors, serializeSafetensors, toFloat32, type SafetensorsDtype, type TensorInput,
} from "./safetensors.js";
import { ImagenError } from "../util/errors.js";

/** xorshift32: a tiny seeded PRNG so the fuzz corpus is the same on every run. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

function randomBytes(next: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() & 0xff;
  return out;
}

/** A file from a raw header (object or exact text) and data bytes; no validation, no padding. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  return concat(u64(headerLength ?? BigInt(json.length)), json, data);
}

function u64(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, true);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const f32 = (shape: number[], begin: number) =>
  ({ dtype: "F32", shape, data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)] });

test("round trip is exact for every dtype, empty tensors, scalars and metadata", async () => {
  const next = xorshift(7);
  const tensors = new Map<string, TensorInput>();
  for (const dtype of Object.keys(dtypeSizes) as SafetensorsDtype[]) {
    tensors.set(`w.${dtype}`, { dtype, shape: [3, 5], data: randomBytes(next, 15 * dtypeSizes[dtype]) });
  }
  tensors.set("empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) });
  tensors.set("scalar", { dtype: "F64", shape: [], data: new Float64Array([Math.PI]) });
  tensors.set("__proto__", { dtype: "I8", shape: [1], data: new Int8Array([-3]) });
  const metadata = { format: "pt", note: "héllo \"quoted\" ✓" };
  const dir = await mkdtemp(join(tmpdir(), "safetensors-test-"));
  try {
    const path = join(dir, "model.safetensors");
    await saveSafetensors(path, tensors, metadata);
    assert.deepEqual(await readdir(dir), ["model.safetensors"], "the temp file is renamed away");
    const file = await loadSafetensors(path);
    assert.deepEqual(file.metadata, metadata);
    assert.deepEqual([...file.tensors.keys()], [...tensors.keys()]);
    for (const [name, want] of tensors) {
      const got = file.tensors.get(name)!;
      assert.equal(got.dtype, want.dtype, name);
      assert.deepEqual(got.shape, want.shape, name);
      assert.deepEqual(got.data, new Uint8Array(want.data.buffer, want.data.byteOffset, want.data.byteLength));
    }
    assert.deepEqual(toFloat32(file.tensors.get("scalar")!), new Float32Array([Math.PI]));
    assert.equal(toFloat32(file.tensors.get("empty")!).length, 0);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("the writer pads the header with spaces to a multiple of 8 and keeps tensor order", () => {
  const bytes = serializeSafetensors({ b: { dtype: "U8", shape: [1], data: new Uint8Array([9]) },
    a: { dtype: "U8", shape: [2], data: new Uint8Array([7, 8]) } });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
  assert.match(header, /^\{"b":.*"a":.*\} *$/);
  assert.deepEqual([...bytes.subarray(8 + headerLength)], [9, 7, 8]);
  assert.throws(() => serializeSafetensors({ x: { dtype: "F32", shape: [2], data: new Uint8Array(4) } }),
    TensorSizeMismatchError);
  assert.throws(() => serializeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }),
    TensorEntryError);
});

test("toFloat32 converts every dtype and reads unaligned views", () => {
  const cases: Array<[SafetensorsDtype, ArrayBufferView, number[]]> = [
    ["F64", new Float64Array([1.5, -2]), [1.5, -2]],
    ["F32", new Float32Array([0.25, -8]), [0.25, -8]],
    ["F16", new Uint16Array([0x3c00, 0xc000]), [1, -2]],
    ["BF16", new Uint16Array([0x3f80, 0xc000]), [1, -2]],
    ["I64", new BigInt64Array([-5n, 1n << 40n]), [-5, 2 ** 40]],
    ["I32", new Int32Array([-7, 3]), [-7, 3]],
    ["I16", new Int16Array([-300, 2]), [-300, 2]],
    ["I8", new Int8Array([-128, 127]), [-128, 127]],
    ["U64", new BigUint64Array([3n, 1n << 50n]), [3, 2 ** 50]],
    ["U32", new Uint32Array([4e9, 1]), [4e9, 1]],
    ["U16", new Uint16Array([65535, 0]), [65535, 0]],
    ["U8", new Uint8Array([255, 1]), [255, 1]],
    ["BOOL", new Uint8Array([0, 1]), [0, 1]],
  ];
  for (const [dtype, typed, want] of cases) {
    const raw = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
    const unaligned = new Uint8Array(raw.length + 1).subarray(1);
    unaligned.set(raw);
    for (const data of [raw, unaligned]) {
      assert.deepEqual([...toFloat32({ dtype, shape: [2], data })], want.map(Math.fround), dtype);
    }
  }
  assert.throws(() => toFloat32({ dtype: "F32", shape: [3], data: new Uint8Array(8) }), TensorSizeMismatchError);
});

test("toFloat32 reads the tensors of a file parsed from a Node Buffer (whose slice() is a view, not a copy)", () => {
  const a = new Float32Array([0.5, -3, 7]), b = new Float32Array([2, 4]);
  const bytes = serializeSafetensors({ a: { dtype: "F32", shape: [3], data: a }, b: { dtype: "F32", shape: [2], data: b } });
  const file = parseSafetensors(Buffer.from(bytes)); // as readFileSync gives it
  assert.deepEqual([...toFloat32(file.tensors.get("a")!)], [...a]);
  assert.deepEqual([...toFloat32(file.tensors.get("b")!)], [...b]);
});

test("F16 and BF16 conversions round to nearest even, both ways", () => {
  const f16: Array<[number, number]> = [
    [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    [0, 0x0000], [-0, 0x8000], [2 ** -24, 0x0001], [1023 * 2 ** -24, 0x03ff], [2 ** -14, 0x0400],
  ];
  for (const [value, bits] of f16) {
    assert.equal(floatToF16Bits(value), bits, `F16 encode ${value}`);
    assert.ok(Object.is(f16BitsToFloat(bits), value), `F16 decode ${bits.toString(16)}`);
  }
  const f16Rounding: Array<[number, number]> = [
    [65520, 0x7c00], [65519, 0x7bff], [1e6, 0x7c00], [2 ** -25, 0x0000], [3 * 2 ** -26, 0x0001],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1.5 * 2 ** -24, 0x0002], [2 ** -26, 0x0000],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01],
  ];
  for (const [value, bits] of f16Rounding) assert.equal(floatToF16Bits(value), bits, `F16 round ${value}`);
  const nan16 = floatToF16Bits(NaN);
  assert.ok((nan16 & 0x7c00) === 0x7c00 && (nan16 & 0x3ff) !== 0, "F16 NaN stays NaN");
  assert.ok(Number.isNaN(f16BitsToFloat(0x7e00)));

  const bf16: Array<[number, number]> = [
    [1, 0x3f80], [-2, 0xc000], [0.5, 0x3f00], [Infinity, 0x7f80], [-Infinity, 0xff80], [-0, 0x8000],
    [2 ** -133, 0x0001], [2 ** -126, 0x0080],
  ];
  for (const [value, bits] of bf16) {
    assert.equal(floatToBf16Bits(value), bits, `BF16 encode ${value}`);
    assert.ok(Object.is(bf16BitsToFloat(bits), value), `BF16 decode ${bits.toString(16)}`);
  }
  const bf16Rounding: Array<[number, number]> = [
    [65504, 0x4780], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [3.4e38, 0x7f80],
  ];
  for (const [value, bits] of bf16Rounding) assert.equal(floatToBf16Bits(value), bits, `BF16 round ${value}`);
  const nanBf = floatToBf16Bits(NaN);
  assert.ok((nanBf & 0x7f80) === 0x7f80 && (nanBf & 0x7f) !== 0, "BF16 NaN stays NaN");

  const values = new Float32Array([1, -2, 0.5, 65504, Infinity, 2 ** -24, NaN]);
  const back16 = toFloat32({ dtype: "F16", shape: [7], data: fromFloat32(values, "F16") });
  assert.deepEqual([...back16], [...values]);
  const backBf = toFloat32({ dtype: "BF16", shape: [7], data: fromFloat32(values, "BF16") });
  assert.deepEqual([...backBf], [1, -2, 0.5, 65536, Infinity, 2 ** -24, NaN]);
  assert.deepEqual(toFloat32({ dtype: "F32", shape: [7], data: fromFloat32(values, "F32") }), values);
});

test("every malformed file throws its own error class, naming the problem, in memory and streamed from disk", async () => {
  const ok8 = new Uint8Array(8);
  type Case = [string, Uint8Array, new (...args: never[]) => SafetensorsError, RegExp];
  const cases: Case[] = [
    ["1 too short", new Uint8Array(5), FileTooShortError, /at least 8 bytes.*got 5/],
    ["2 over cap", rawFile("{}", ok8, 200_000_000n), HeaderLengthError, /at most 100000000.*got 200000000/],
    ["2 past end", rawFile("{}", ok8, 1000n), HeaderLengthError, /truncated/],
    ["2 u64 max", rawFile("{}", ok8, (1n << 64n) - 1n), HeaderLengthError, /header length/],
    ["3 utf-8", concat(u64(3n), new Uint8Array([0x7b, 0xff, 0x7d])), HeaderEncodingError, /UTF-8/],
    ["3 bom", concat(u64(5n), new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), HeaderJsonError, /starting with/],
    ["4 not json", rawFile("{not json"), HeaderJsonError, /valid JSON/],
    ["4 array", rawFile("[1, 2]"), HeaderJsonError, /JSON object/],
    ["4 leading space", rawFile(" {}"), HeaderJsonError, /starting with/],
    ["5 null", rawFile({ w: null }), TensorEntryError, /"w".*entry.*got null/],
    ["5 missing", rawFile({ w: { dtype: "F32", shape: [1] } }), TensorEntryError, /"w".*keys.*\[dtype, shape\]/],
    ["5 extra", rawFile({ w: { ...f32([1], 0), x: 1 } }, new Uint8Array(4)), TensorEntryError, /exactly/],
    ["5 dtype type", rawFile({ w: { ...f32([1], 0), dtype: 4 } }, new Uint8Array(4)), TensorEntryError, /dtype/],
    ["5 negative dim", rawFile({ w: f32([-1], 0) }), TensorEntryError, /"w".*shape.*non-negative/],
    ["5 fractional dim", rawFile({ w: f32([1.5], 0) }), TensorEntryError, /shape/],
    ["5 string dim", rawFile({ w: { ...f32([1], 0), shape: ["1"] } }), TensorEntryError, /shape/],
    ["5 offsets", rawFile({ w: { ...f32([1], 0), data_offsets: [0] } }), TensorEntryError, /data_offsets/],
    ["5 reversed", rawFile({ w: { ...f32([0], 0), data_offsets: [4, 0] } }), TensorEntryError, /begin <= end/],
    ["6 dtype", rawFile({ w: { ...f32([1], 0), dtype: "Q4" } }, new Uint8Array(4)), UnknownDtypeError,
      /"w".*dtype.*BF16.*got "Q4"/],
    ["7 not object", rawFile({ __metadata__: ["a"] }), MetadataError, /__metadata__.*string -> string/],
    ["7 number", rawFile({ __metadata__: { a: 1 } }), MetadataError, /__metadata__\["a"\].*got number 1/],
    ["8 overflow", rawFile({ w: { ...f32([1], 0), shape: [2 ** 40, 2 ** 40] } }), TensorSizeOverflowError,
      /"w".*overflow/],
    ["9 size", rawFile({ w: { ...f32([2], 0), data_offsets: [0, 4] } }, new Uint8Array(4)),
      TensorSizeMismatchError, /"w".*expected end - begin = 8 bytes.*got 4/],
    ["10 gap", rawFile({ a: f32([2], 0), b: f32([2], 16) }, new Uint8Array(24)), DataOffsetsError,
      /"b".*expected begin = 8.*got 16.*gap/],
    ["10 overlap", rawFile({ a: f32([2], 0), b: f32([2], 4) }, new Uint8Array(12)), DataOffsetsError,
      /"b".*overlaps/],
    ["10 not at 0", rawFile({ a: f32([1], 4) }, new Uint8Array(8)), DataOffsetsError, /"a".*expected begin = 0/],
    ["11 trailing", rawFile({ a: f32([2], 0) }, new Uint8Array(12)), DataCoverageError, /all 12 bytes.*got 8/],
    ["11 past end", rawFile({ a: f32([2], 0) }, new Uint8Array(4)), DataCoverageError, /past the end/],
    ["12 duplicate", rawFile(`{"a":${JSON.stringify(f32([1], 0))},"a":${JSON.stringify(f32([1], 0))}}`,
      new Uint8Array(4)), DuplicateKeyError, /"a" twice/],
    ["12 escaped", rawFile(`{"a":${JSON.stringify(f32([1], 0))},"\\u0061":${JSON.stringify(f32([1], 0))}}`,
      new Uint8Array(4)), DuplicateKeyError, /"a" twice/],
    ["12 in entry", rawFile('{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
      new Uint8Array(1)), DuplicateKeyError, /entry "a".*"dtype" twice/],
    ["13 pickle", new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]),
      PickleRefusedError, /PyTorch pickle\/zip checkpoint.*never loads pickle.*save_file/],
    ["13 short pickle", new Uint8Array([0x80, 0x04, 0x95]), PickleRefusedError, /pickle/],
    ["13 zip", concat(new TextEncoder().encode("PK\x03\x04"), new Uint8Array(60)), PickleRefusedError, /zip/],
  ];
  for (const [label, bytes, errorClass, message] of cases) {
    assert.throws(() => parseSafetensors(bytes, "bad.safetensors"), (err: unknown) => {
      assert.ok(err instanceof errorClass, `${label}: got ${String(err)}`);
      assert.ok(err instanceof SafetensorsError && err instanceof ImagenError, label);
      assert.equal(err.name, errorClass.name, label);
      assert.match(err.message, /^safetensors file "bad\.safetensors": /, label);
      assert.match(err.message, message, label);
      return true;
    }, label);
  }
  // Rules 1-13 each have a distinct class.
  assert.equal(new Set(cases.map((c) => c[2])).size, 13);
  // The streamed reader (used for files of 1 GiB and more) validates the same way from the header alone.
  const dir = await mkdtemp(join(tmpdir(), "st-bad-"));
  for (const [label, bytes, errorClass, message] of cases) {
    const file = join(dir, "bad.safetensors");
    writeFileSync(file, bytes);
    await assert.rejects(loadSafetensors(file, { streamFrom: 0 }), (err: unknown) => {
      assert.ok(err instanceof errorClass, `${label} (streamed): got ${String(err)}`);
      assert.match((err as Error).message, message, `${label} (streamed)`);
      return true;
    }, label);
  }
  await rm(dir, { recursive: true });
});

test("the streamed reader returns exactly what the in-memory reader does", async () => {
  const dir = await mkdtemp(join(tmpdir(), "st-stream-"));
  const file = join(dir, "w.safetensors");
  const a = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
  await saveSafetensors(file, { a: { dtype: "F32", shape: [10, 100], data: a }, b: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) }, e: { dtype: "F16", shape: [0], data: new Uint8Array(0) } }, { k: "v" });
  const [mem, streamed] = [await loadSafetensors(file), await loadSafetensors(file, { streamFrom: 0 })];
  assert.deepEqual(streamed.metadata, mem.metadata);
  assert.deepEqual([...streamed.tensors.keys()], [...mem.tensors.keys()]);
  for (const [k, t] of mem.tensors) {
    const u = streamed.tensors.get(k)!;
    assert.equal(u.dtype, t.dtype);
    assert.deepEqual(u.shape, t.shape);
    assert.deepEqual(Uint8Array.from(u.data), Uint8Array.from(t.data), k);
  }
  await rm(dir, { recursive: true });
});

test("keep and convert: only kept tensors come back, each mapped as read, in memory and streamed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "st-keep-"));
  const file = join(dir, "w.safetensors");
  const a = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
  await saveSafetensors(file, { "enc.a": { dtype: "F32", shape: [2, 3], data: a }, "dec.b": { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
    "enc.c": { dtype: "U8", shape: [2], data: new Uint8Array([7, 9]) } });
  for (const streamFrom of [undefined, 0]) {
    const seen: string[] = [];
    const got = await loadSafetensors(file, { streamFrom, keep: (n) => n.startsWith("enc."),
      convert: (name, entry) => { seen.push(name); return { dtype: "U8", shape: [entry.data.byteLength], data: entry.data.map((x) => 255 - x) }; } });
    const label = streamFrom === 0 ? "streamed" : "in memory";
    assert.deepEqual(seen, ["enc.a", "enc.c"], label);
    assert.deepEqual([...got.tensors.keys()], ["enc.a", "enc.c"], label);
    assert.deepEqual([...got.tensors.get("enc.c")!.data], [248, 246], label);
    const raw = new Uint8Array(a.buffer);
    assert.deepEqual([...got.tensors.get("enc.a")!.data], [...raw].map((x) => 255 - x), label);
  }
  await rm(dir, { recursive: true });
});

test("valid edge cases parse: spaces after the header, no tensors, a 640-byte header starting 0x80 0x02", () => {
  assert.equal(parseSafetensors(rawFile("{}   \n ")).tensors.size, 0);
  const zeros = parseSafetensors(rawFile({ a: f32([0], 0), b: f32([1], 0), c: f32([0], 4) }, new Uint8Array(4)));
  assert.deepEqual([...zeros.tensors.keys()], ["a", "b", "c"]);
  const text = JSON.stringify({ w: { dtype: "U8", shape: [1], data_offsets: [0, 1] } }).padEnd(0x280, " ");
  const bytes = rawFile(text, new Uint8Array([42]));
  assert.deepEqual([...bytes.subarray(0, 2)], [0x80, 0x02]);
  assert.deepEqual([...parseSafetensors(bytes).tensors.get("w")!.data], [42]);
});

test("fuzz: 500 seeded mutations parse self-consistently or throw a SafetensorsError", () => {
  const next = xorshift(0x5eed);
  const base = serializeSafetensors({
    "enc.w": { dtype: "F32", shape: [3, 4], data: new Float32Array(12).fill(0.5) },
    "enc.b": { dtype: "F16", shape: [4], data: fromFloat32(new Float32Array([1, 2, 3, 4]), "F16") },
    scalar: { dtype: "I64", shape: [], data: new BigInt64Array([7n]) },
    empty: { dtype: "BF16", shape: [0, 2], data: new Uint8Array(0) },
    mask: { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
  }, { format: "pt" });
  const headerEnd = 8 + Number(new DataView(base.buffer).getBigUint64(0, true));
  const structural = new TextEncoder().encode('{}[]",:0123456789-.e \\');
  const counts = { parsed: 0, rejected: 0 };
  for (let round = 0; round < 500; round++) {
    let bytes: Uint8Array = base.slice();
    const kind = next() % 6;
    if (kind === 0) bytes[next() % headerEnd] ^= 1 << (next() % 8);
    else if (kind === 1) bytes[8 + (next() % (headerEnd - 8))] = structural[next() % structural.length]!;
    else if (kind === 2) bytes = bytes.slice(0, next() % bytes.length);
    else if (kind === 3) bytes = concat(bytes, randomBytes(next, 1 + (next() % 16)));
    else if (kind === 4) new DataView(bytes.buffer).setBigUint64(0, BigInt(next()) * BigInt(next() % 3), true);
    else new DataView(bytes.buffer).setUint32(0, headerEnd - 8 + (next() % 17) - 8, true);
    let file;
    try {
      file = parseSafetensors(bytes, "fuzz.safetensors");
    } catch (err) {
      assert.ok(err instanceof SafetensorsError, `round ${round} (kind ${kind}): ${String(err)}`);
      counts.rejected++;
      continue;
    }
    counts.parsed++;
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    let covered = 0;
    for (const entry of file.tensors.values()) {
      assert.equal(entry.data.byteLength, entry.shape.reduce((a, b) => a * b, dtypeSizes[entry.dtype]));
      assert.equal(entry.data.buffer, bytes.buffer);
      covered += entry.data.byteLength;
      toFloat32(entry);
    }
    assert.equal(covered, bytes.length - 8 - headerLength);
    const again = parseSafetensors(serializeSafetensors(file.tensors, file.metadata));
    assert.deepEqual([...again.tensors.keys()], [...file.tensors.keys()]);
  }
  assert.ok(counts.parsed > 0 && counts.rejected > 250, JSON.stringify(counts));
});

const goldenDir = "/work/shared/reference/golden/t5/t5-v1_0-relu";

test("the T5 golden checkpoint loads and matches its weights_summary", async (t) => {
  if (!existsSync(join(goldenDir, "golden.json"))) {
    t.skip("shared/reference/golden is not present (fresh clone)");
    return;
  }
  const file = await loadSafetensors(join(goldenDir, "model.safetensors"));
  const golden = JSON.parse(readFileSync(join(goldenDir, "golden.json"), "utf8")) as {
    weights_summary: Record<string, { shape: number[]; sum: number; first: number[] }>;
  };
  assert.equal(file.metadata["format"], "pt");
  const names = Object.keys(golden.weights_summary);
  assert.ok(names.length >= 4);
  for (const name of names) {
    const want = golden.weights_summary[name]!;
    const entry = file.tensors.get(name);
    assert.ok(entry, `missing ${name}`);
    assert.deepEqual(entry.shape, want.shape, name);
    const values = toFloat32(entry);
    const sum = values.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - want.sum) <= 1e-3 * Math.max(1, Math.abs(want.sum)), `${name}: ${sum} vs ${want.sum}`);
    want.first.forEach((v, i) => assert.ok(Math.abs(values[i]! - v) <= 1e-6, `${name}[${i}]`));
  }
});

test("toFloat32 converts every F16 and BF16 bit pattern as the scalar decoders do, at even and odd byte offsets", async () => {
  const { toFloat32, f16BitsToFloat, bf16BitsToFloat } = await import("./safetensors-dtypes.js");
  for (const offset of [0, 1]) {
    const buf = new Uint8Array(offset + 2 * 65536);
    for (let h = 0; h < 65536; h++) [buf[offset + 2 * h], buf[offset + 2 * h + 1]] = [h & 0xff, h >>> 8];
    const data = buf.subarray(offset);
    for (const [dtype, scalar] of [["F16", f16BitsToFloat], ["BF16", bf16BitsToFloat]] as const) {
      const out = toFloat32({ dtype, shape: [65536], data });
      for (let h = 0; h < 65536; h++) {
        const want = Math.fround(scalar(h));
        if (Number.isNaN(want) ? !Number.isNaN(out[h]) : !Object.is(out[h], want)) assert.fail(`${dtype} bits 0x${h.toString(16)} at offset ${offset}: ${out[h]}, expected ${want}`);
      }
    }
  }
});
