// PNG encoder and decoder (https://www.w3.org/TR/png/) on node:zlib, with tEXt / iTXt metadata: output
// images carry their generation parameters in a `parameters` text chunk (A1111-compatible, DESIGN.md 5).
// Decodes 8-bit (and 1/2/4-bit grey and palette) non-interlaced images of every colour type.

import { deflateSync, inflateSync } from "node:zlib";
import { ImagenError, ValueError } from "../util/errors.js";

export interface PngImage {
  width: number;
  height: number;
  /** 1 grey, 3 RGB, 4 RGBA; pixels interleaved row by row (HWC). */
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

export interface DecodedPng extends PngImage {
  /** Keyword -> text of every tEXt, zTXt and iTXt chunk, in file order. */
  text: Record<string, string>;
}

/** A PNG file that cannot be decoded: bad signature, CRC, header or data, or an unsupported feature. */
export class PngError extends ImagenError {}

const signature = Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10);
const colourTypes = { grey: 0, rgb: 2, palette: 3, greyAlpha: 4, rgba: 6 } as const;
const samplesPerPixel: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const validDepths: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const idatChunkBytes = 1 << 20;
/** Refuses headers whose pixels would need more memory than this (hostile or corrupt sizes). */
export const maxPngPixelBytes = 1 << 30;
const corrupt = "the file is corrupt: re-download or re-save it";
const truncated = "the file is truncated: re-download or re-save it";

function pngError(what: string, expected: string, got: unknown, fix = corrupt): PngError {
  return new PngError(`decodePng: ${what}: expected ${expected}, got ${String(got)}; ${fix}`);
}

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, as PNG and zlib use it). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * Encodes an 8-bit image. The same input always gives the same bytes (zlib level 9, per-row filter chosen
 * by the minimum-sum-of-absolute-differences rule, no timestamp). Each text entry becomes a tEXt chunk, or
 * an iTXt (UTF-8) chunk when its text is not Latin-1, as Pillow does.
 */
export function encodePng(image: PngImage, text: Record<string, string> = {}): Uint8Array {
  const { width, height, channels, data } = image;
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isSafeInteger(value) || value < 1 || value > 0x7fffffff) {
      throw new ValueError(`encodePng: ${name}: expected an integer in [1, 2^31 - 1], got ${value}; pass the image size`);
    }
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new ValueError(`encodePng: channels: expected 1 (grey), 3 (RGB) or 4 (RGBA), got ${String(channels)}; ` +
      "convert the image to one of those");
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * channels) {
    throw new ValueError(`encodePng: data: expected a Uint8Array of ${width * height * channels} bytes ` +
      `(${height} x ${width} x ${channels}, HWC), got ${data instanceof Uint8Array ? data.length + " bytes" : typeof data}; ` +
      "pass interleaved 8-bit pixels");
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;
  header[9] = channels === 1 ? colourTypes.grey : channels === 3 ? colourTypes.rgb : colourTypes.rgba;
  const chunks = [chunk("IHDR", header)];
  for (const [keyword, value] of Object.entries(text)) chunks.push(textChunk(keyword, value));
  const compressed = deflateSync(filterRows(data, width * channels, height, channels), { level: 9 });
  for (let at = 0; at < compressed.length; at += idatChunkBytes) {
    chunks.push(chunk("IDAT", compressed.subarray(at, at + idatChunkBytes)));
  }
  chunks.push(chunk("IEND", new Uint8Array(0)));
  return concat([signature, ...chunks]);
}

/** Decodes a PNG file into 8-bit HWC pixels: grey stays 1 channel; grey+alpha becomes RGBA; palette RGB(A). */
export function decodePng(bytes: Uint8Array): DecodedPng {
  if (bytes.length < 8 || signature.some((b, i) => bytes[i] !== b)) {
    throw new PngError(`decodePng: signature: expected the 8 PNG signature bytes, got ` +
      `[${[...bytes.subarray(0, 8)].join(", ")}]; this is not a PNG file (or it was mangled as text)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let ihdr: Uint8Array | undefined;
  let palette: Uint8Array | undefined;
  let transparency: Uint8Array | undefined; // palette alpha
  const idat: Uint8Array[] = [];
  const text: Record<string, string> = {};
  let at = 8;
  for (;;) {
    if (at + 12 > bytes.length) {
      throw pngError(`chunk at byte ${at}`, "a 12-byte chunk header and CRC", `${bytes.length - at} bytes (no IEND)`, truncated);
    }
    const length = view.getUint32(at);
    const typeBytes = bytes.subarray(at + 4, at + 8);
    const type = String.fromCharCode(...typeBytes);
    if (!/^[A-Za-z]{4}$/.test(type)) throw pngError(`chunk at byte ${at}`, "a 4-letter type", JSON.stringify(type));
    if (length > 0x7fffffff || at + 12 + length > bytes.length) {
      throw pngError(`${type} chunk at byte ${at}`, `${length} data bytes and a CRC`, `${bytes.length - at - 8} bytes`, truncated);
    }
    const body = bytes.subarray(at + 8, at + 8 + length);
    const stored = view.getUint32(at + 8 + length);
    const actual = crc32(body, crc32(typeBytes));
    if (stored !== actual) throw pngError(`${type} chunk at byte ${at}`, `CRC ${hex(actual)}`, hex(stored));
    at += 12 + length;
    if (!ihdr && type !== "IHDR") throw pngError("first chunk", "IHDR", type);
    if (type === "IHDR") ihdr = body;
    else if (type === "PLTE") palette = body;
    else if (type === "tRNS") transparency = body;
    else if (type === "IDAT") idat.push(body);
    else if (type === "tEXt" || type === "zTXt" || type === "iTXt") readText(type, body, text);
    else if (type === "IEND") break;
    else if (type.charCodeAt(0) < 97) {
      throw pngError(`chunk ${type}`, "only known critical chunks (IHDR, PLTE, IDAT, IEND)", type,
        "this PNG uses an extension we cannot decode: re-save it as a plain PNG");
    }
  }
  const header = parseHeader(ihdr!);
  const { width, height, depth, colourType } = header;
  if (colourType === colourTypes.palette && !(palette && palette.length % 3 === 0 && palette.length <= 768)) {
    throw pngError("PLTE", "1 to 256 RGB entries for a palette image", palette ? `${palette.length} bytes` : "none");
  }
  if (idat.length === 0) throw pngError("IDAT", "image data", "none", truncated);
  const bitsPerPixel = samplesPerPixel[colourType]! * depth;
  const rowBytes = Math.ceil((width * bitsPerPixel) / 8);
  const rawBytes = (rowBytes + 1) * height;
  let raw: Uint8Array;
  try {
    raw = inflateSync(concat(idat), { maxOutputLength: rawBytes });
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE"
      ? `more than the ${rawBytes} bytes the header implies` : `a zlib error (${(err as Error).message})`;
    throw pngError("IDAT", `a zlib stream of ${rawBytes} bytes`, reason, `${corrupt} (or it is truncated)`);
  }
  if (raw.length !== rawBytes) {
    throw pngError("IDAT", `${rawBytes} bytes of filtered rows (${height} x (1 + ${rowBytes}))`, raw.length, truncated);
  }
  const rows = unfilterRows(raw, rowBytes, height, Math.max(1, bitsPerPixel >> 3));
  return { ...expandPixels(rows, header, palette, transparency), text };
}

/** CHW float image in [-1, 1] (1, 3 or 4 channels) -> PNG bytes; values are clamped and rounded. */
export function imageToPng(x: Float32Array, height: number, width: number, text?: Record<string, string>): Uint8Array {
  const pixels = height * width;
  const channels = pixels > 0 ? x.length / pixels : 0;
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new ValueError(`imageToPng: x: expected [C, ${height}, ${width}] with C = 1, 3 or 4 (a multiple of ` +
      `${pixels} values), got ${x.length} values; pass a CHW image and its height and width`);
  }
  const data = new Uint8Array(x.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < pixels; p++) {
      const v = x[c * pixels + p]!;
      if (Number.isNaN(v)) {
        throw new ValueError(`imageToPng: x[${c}, ${Math.floor(p / width)}, ${p % width}]: expected a number in ` +
          "[-1, 1], got NaN; the sampler or model diverged: check its inputs (or lower the guidance)");
      }
      data[p * channels + c] = Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
    }
  }
  return encodePng({ width, height, channels, data }, text);
}

/**
 * PNG bytes -> RGB CHW float in [-1, 1] (`x` is [3, height, width]); grey is repeated into RGB and alpha
 * is composited over `background` (RGB, 0-255; default white).
 */
export function pngToImage(bytes: Uint8Array, options: { background?: readonly [number, number, number] } = {}):
  { x: Float32Array; height: number; width: number; text: Record<string, string> } {
  const background = options.background ?? [255, 255, 255];
  const { width, height, channels, data, text } = decodePng(bytes);
  const pixels = width * height;
  const x = new Float32Array(3 * pixels);
  for (let p = 0; p < pixels; p++) {
    const alpha = channels === 4 ? data[p * 4 + 3]! / 255 : 1;
    for (let c = 0; c < 3; c++) {
      const v = data[p * channels + (channels === 1 ? 0 : c)]!;
      const mixed = alpha === 1 ? v : Math.round(v * alpha + background[c]! * (1 - alpha));
      x[c * pixels + p] = mixed / 127.5 - 1;
    }
  }
  return { x, height, width, text };
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  view.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

function textChunk(keyword: string, value: string): Uint8Array {
  const printable = /^[\x20-\x7e\xa1-\xff]+$/;
  if (keyword.length < 1 || keyword.length > 79 || !printable.test(keyword) || /^ | $| {2}/.test(keyword)) {
    throw new ValueError(`encodePng: text keyword: expected 1-79 printable Latin-1 characters without leading, ` +
      `trailing or double spaces, got ${JSON.stringify(keyword)}; use a plain name such as "parameters"`);
  }
  if (value.includes("\0")) {
    throw new ValueError(`encodePng: text[${JSON.stringify(keyword)}]: expected no NUL characters, got one; remove it`);
  }
  const key = latin1(keyword);
  if (/^[\x00-\xff]*$/.test(value)) return chunk("tEXt", concat([key, Uint8Array.of(0), latin1(value)]));
  // iTXt: keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated keyword, NUL.
  return chunk("iTXt", concat([key, Uint8Array.of(0, 0, 0, 0, 0), new TextEncoder().encode(value)]));
}

function readText(type: string, body: Uint8Array, text: Record<string, string>): void {
  const nul = body.indexOf(0);
  if (nul < 1 || nul > 79) throw pngError(type, "a 1-79 byte keyword ended by NUL", nul < 0 ? "no NUL" : `${nul} bytes`);
  const keyword = fromLatin1(body.subarray(0, nul));
  const inflate = (data: Uint8Array): Uint8Array => {
    try {
      return inflateSync(data, { maxOutputLength: 1 << 26 });
    } catch (err) {
      throw pngError(`${type} ${JSON.stringify(keyword)}`, "zlib-compressed text", (err as Error).message);
    }
  };
  if (type === "tEXt") text[keyword] = fromLatin1(body.subarray(nul + 1));
  else if (type === "zTXt") text[keyword] = fromLatin1(inflate(body.subarray(nul + 2)));
  else {
    const compressed = body[nul + 1] === 1;
    const language = body.indexOf(0, nul + 3);
    const translated = language < 0 ? -1 : body.indexOf(0, language + 1);
    if (translated < 0) throw pngError(`iTXt ${JSON.stringify(keyword)}`, "NUL-ended language fields", "none");
    const payload = body.subarray(translated + 1);
    text[keyword] = new TextDecoder().decode(compressed ? inflate(payload) : payload);
  }
}

interface Header { width: number; height: number; depth: number; colourType: number }

function parseHeader(ihdr: Uint8Array): Header {
  const bad = (what: string, expected: string, got: unknown, fix = corrupt) =>
    pngError(`IHDR ${what}`, expected, got, fix);
  if (ihdr.length !== 13) throw bad("length", "13 bytes", ihdr.length);
  const view = new DataView(ihdr.buffer, ihdr.byteOffset, 13);
  const [width, height] = [view.getUint32(0), view.getUint32(4)];
  const [depth, colourType, compression, filter, interlace] = ihdr.subarray(8);
  if (width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) {
    throw bad("size", "width and height in [1, 2^31 - 1]", `${width} x ${height}`);
  }
  const depths = validDepths[colourType!];
  if (!depths) throw bad("colour type", "0, 2, 3, 4 or 6", colourType);
  if (!depths.includes(depth!)) throw bad(`bit depth for colour type ${colourType}`, depths.join(", "), depth);
  if (depth === 16) throw bad("bit depth", "8 (or 1, 2, 4 for grey and palette)", 16, "re-save it with 8 bits per channel");
  if (compression !== 0) throw bad("compression method", "0 (deflate)", compression);
  if (filter !== 0) throw bad("filter method", "0 (adaptive)", filter);
  if (interlace === 1) throw bad("interlace method", "0 (none)", "1 (Adam7, unsupported)", "re-save it non-interlaced");
  if (interlace !== 0) throw bad("interlace method", "0 (none)", interlace);
  if (width * height * 4 > maxPngPixelBytes) {
    throw bad("size", `at most ${maxPngPixelBytes} bytes of RGBA`, `${width} x ${height}`, "the image is too large");
  }
  return { width, height, depth: depth!, colourType: colourType! };
}

/** Filters every row with the filter of least sum of |byte as signed| (the libpng heuristic). */
function filterRows(data: Uint8Array, rowBytes: number, height: number, bpp: number): Uint8Array {
  const out = new Uint8Array((rowBytes + 1) * height);
  const candidate = new Uint8Array(rowBytes);
  const zero = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * rowBytes, (y + 1) * rowBytes);
    const up = y > 0 ? data.subarray((y - 1) * rowBytes, y * rowBytes) : zero;
    let best = Infinity;
    for (let type = 0; type < 5; type++) {
      let cost = 0;
      for (let i = 0; i < rowBytes; i++) {
        const v = (row[i]! - predict(type, i >= bpp ? row[i - bpp]! : 0, up[i]!, i >= bpp ? up[i - bpp]! : 0)) & 0xff;
        candidate[i] = v;
        cost += v < 128 ? v : 256 - v;
      }
      if (cost < best) {
        best = cost;
        out[y * (rowBytes + 1)] = type;
        out.set(candidate, y * (rowBytes + 1) + 1);
      }
    }
  }
  return out;
}

function predict(type: number, left: number, up: number, upLeft: number): number {
  if (type < 3) return type === 0 ? 0 : type === 1 ? left : up;
  if (type === 3) return (left + up) >> 1;
  const [pa, pb, pc] = [Math.abs(up - upLeft), Math.abs(left - upLeft), Math.abs(left + up - 2 * upLeft)];
  return pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft; // Paeth
}

function unfilterRows(raw: Uint8Array, rowBytes: number, height: number, bpp: number): Uint8Array {
  const out = new Uint8Array(rowBytes * height);
  const zero = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const type = raw[y * (rowBytes + 1)]!;
    if (type > 4) throw pngError(`row ${y}`, "filter type 0-4", type);
    const src = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    const row = out.subarray(y * rowBytes, (y + 1) * rowBytes);
    const up = y > 0 ? out.subarray((y - 1) * rowBytes, y * rowBytes) : zero;
    for (let i = 0; i < rowBytes; i++) {
      row[i] = src[i]! + predict(type, i >= bpp ? row[i - bpp]! : 0, up[i]!, i >= bpp ? up[i - bpp]! : 0);
    }
  }
  return out;
}

/** Unfiltered rows -> 8-bit grey, RGB or RGBA (grey+alpha and palette tRNS become RGBA; tRNS colour keys of
 * grey and RGB images are ignored, so those stay opaque). */
function expandPixels(rows: Uint8Array, header: Header, palette: Uint8Array | undefined,
  transparency: Uint8Array | undefined): PngImage {
  const { width, height, depth, colourType } = header;
  const samples = samplesPerPixel[colourType]!;
  const isPalette = colourType === colourTypes.palette;
  const channels: 1 | 3 | 4 = colourType === colourTypes.grey ? 1
    : colourType === colourTypes.rgb || (isPalette && !transparency) ? 3 : 4;
  if (depth === 8 && !isPalette && samples === channels) return { width, height, channels, data: rows };
  const unpacked = depth === 8 ? rows : unpackBits(rows, width * samples, height, depth);
  const count = width * height;
  const data = new Uint8Array(count * channels);
  const scale = isPalette ? 1 : 255 / ((1 << depth) - 1);
  for (let p = 0; p < count; p++) {
    const o = p * channels;
    if (isPalette) {
      const index = unpacked[p]!;
      if (index * 3 >= palette!.length) {
        throw pngError(`pixel (${p % width}, ${Math.floor(p / width)})`, `a palette index below ${palette!.length / 3}`, index);
      }
      data[o] = palette![index * 3]!;
      data[o + 1] = palette![index * 3 + 1]!;
      data[o + 2] = palette![index * 3 + 2]!;
      if (channels === 4) data[o + 3] = transparency![index] ?? 255;
      continue;
    }
    // Left: low-depth grey (1 channel) and 8-bit grey+alpha (to RGBA).
    const grey = Math.round(unpacked[p * samples]! * scale);
    if (channels === 1) {
      data[o] = grey;
    } else {
      data.fill(grey, o, o + 3);
      data[o + 3] = unpacked[p * 2 + 1]!;
    }
  }
  return { width, height, channels, data };
}

/** 1, 2 or 4-bit samples packed MSB first, rows padded to a byte -> one byte per sample. */
function unpackBits(rows: Uint8Array, perRow: number, height: number, depth: number): Uint8Array {
  const rowBytes = Math.ceil((perRow * depth) / 8);
  const out = new Uint8Array(perRow * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < perRow; i++) {
      const bit = i * depth;
      out[y * perRow + i] = (rows[y * rowBytes + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** Bytes -> Latin-1 string (TextDecoder("latin1") is windows-1252, which differs at 0x80-0x9f). */
function fromLatin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function hex(value: number): string {
  return "0x" + value.toString(16).padStart(8, "0");
}
