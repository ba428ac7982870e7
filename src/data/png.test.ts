// Tests for the PNG codec: round trips of every channel count, text chunks, deterministic bytes, corrupt
// files with clear errors, and hand-built PNGs (each filter type, colour type and low bit depth).

import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 as zlibCrc32, deflateSync } from "node:zlib";
import { PngError, crc32, decodePng, encodePng, imageToPng, pngToImage } from "./png.js";
import { ValueError } from "../util/errors.js";

function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s & 0xff;
  };
}

function randomPixels(n: number, seed: number): Uint8Array {
  const next = seeded(seed);
  return Uint8Array.from({ length: n }, next);
}

/** Chunk built with zlib's CRC, independent of the one under test. */
function chunk(type: string, body: Uint8Array | number[]): Uint8Array {
  const data = Uint8Array.from(body);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(Buffer.from(type, "latin1"), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, zlibCrc32(out.subarray(4, 8 + data.length)));
  return out;
}

function ihdr(width: number, height: number, depth: number, colourType: number, interlace = 0, compression = 0): Uint8Array {
  const body = new Uint8Array(13);
  new DataView(body.buffer).setUint32(0, width);
  new DataView(body.buffer).setUint32(4, height);
  body.set([depth, colourType, compression, 0, interlace], 8);
  return chunk("IHDR", body);
}

function png(...chunks: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), ...chunks, chunk("IEND", [])]));
}

/** Filters rows by hand with the given filter type per row (a second, plain implementation of the spec). */
function filterByHand(rows: number[][], bpp: number, types: number[]): Uint8Array {
  const out: number[] = [];
  rows.forEach((row, y) => {
    const up = y > 0 ? rows[y - 1]! : row.map(() => 0);
    out.push(types[y]!);
    row.forEach((v, i) => {
      const a = i >= bpp ? row[i - bpp]! : 0;
      const b = up[i]!;
      const c = i >= bpp ? up[i - bpp]! : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a
        : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const predicted = [0, a, b, Math.floor((a + b) / 2), paeth][types[y]!]!;
      out.push((v - predicted + 256) % 256);
    });
  });
  return Uint8Array.from(out);
}

function rowsOf(data: Uint8Array, rowBytes: number): number[][] {
  return Array.from({ length: data.length / rowBytes }, (_, y) => [...data.subarray(y * rowBytes, (y + 1) * rowBytes)]);
}

test("crc32 matches the standard check value and zlib", () => {
  assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
  const bytes = randomPixels(1000, 7);
  assert.equal(crc32(bytes), zlibCrc32(bytes));
  assert.equal(crc32(bytes.subarray(500), crc32(bytes.subarray(0, 500))), zlibCrc32(bytes));
});

test("encode then decode round-trips grey, RGB and RGBA at several sizes", () => {
  for (const channels of [1, 3, 4] as const) {
    for (const [width, height] of [[1, 1], [7, 5], [64, 33], [3, 200]] as const) {
      const data = randomPixels(width * height * channels, width * 31 + height + channels);
      const decoded = decodePng(encodePng({ width, height, channels, data }));
      assert.deepEqual(decoded, { width, height, channels, data, text: {} });
    }
  }
});

test("smooth images compress well (adaptive filters + level 9)", () => {
  const [width, height] = [256, 256];
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([i % width, (i / width) | 0, 128], i * 3);
  const bytes = encodePng({ width, height, channels: 3, data });
  assert.ok(bytes.length < data.length / 50, `${bytes.length} bytes`);
  assert.deepEqual(decodePng(bytes).data, data);
});

test("text chunks: tEXt for Latin-1 (A1111 parameters), iTXt for other Unicode, read back in order", () => {
  const parameters = "a red cube on a blue sphere, café\nNegative prompt: blurry\n" +
    "Steps: 50, Sampler: DDIM, CFG scale: 7.5, Seed: 1234, Size: 64x64, Model: imagen-ts";
  const text = { parameters, Software: "imagen-ts", prompt: "a cat 🐱 named ナ" };
  const bytes = encodePng({ width: 2, height: 1, channels: 1, data: Uint8Array.of(0, 255) }, text);
  const decoded = decodePng(bytes);
  assert.deepEqual(decoded.text, text);
  assert.deepEqual(Object.keys(decoded.text), ["parameters", "Software", "prompt"]);
  const latin = Buffer.from(bytes).toString("latin1");
  assert.ok(latin.includes("tEXtparameters\0a red cube") && latin.includes("café".replace("é", "\xe9")));
  assert.ok(latin.includes("iTXtprompt\0\0\0\0\0"));
  assert.ok(latin.indexOf("tEXt") < latin.indexOf("IDAT"), "text chunks come before the image data");
});

test("bad text keywords and values throw ValueErrors", () => {
  const image = { width: 1, height: 1, channels: 1 as const, data: Uint8Array.of(0) };
  for (const keyword of ["", " lead", "trail ", "two  spaces", "x".repeat(80), "tab\there", "ünï€"]) {
    assert.throws(() => encodePng(image, { [keyword]: "v" }), (err: Error) =>
      err instanceof ValueError && /text keyword: expected 1-79 printable Latin-1/.test(err.message), keyword);
  }
  assert.throws(() => encodePng(image, { k: "a\0b" }), /expected no NUL characters/);
});

test("encoding is deterministic: the same input gives identical bytes", () => {
  const data = randomPixels(40 * 30 * 4, 99);
  const a = encodePng({ width: 40, height: 30, channels: 4, data }, { parameters: "Seed: 1" });
  const b = encodePng({ width: 40, height: 30, channels: 4, data: data.slice() }, { parameters: "Seed: 1" });
  assert.deepEqual(Buffer.from(a), Buffer.from(b));
});

test("bad encoder input throws ValueErrors", () => {
  const cases: Array<[Parameters<typeof encodePng>[0], RegExp]> = [
    [{ width: 0, height: 1, channels: 1, data: new Uint8Array(0) }, /width: expected an integer in \[1, 2\^31 - 1\], got 0/],
    [{ width: 1, height: 1.5, channels: 1, data: new Uint8Array(1) }, /height: expected an integer/],
    [{ width: 1, height: 1, channels: 2 as 1, data: new Uint8Array(2) }, /channels: expected 1 \(grey\), 3 \(RGB\) or 4 \(RGBA\), got 2/],
    [{ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }, /data: expected a Uint8Array of 12 bytes .* got 11 bytes/],
  ];
  for (const [image, message] of cases) assert.throws(() => encodePng(image), (err: Error) => err instanceof ValueError && message.test(err.message));
});

test("corrupt files throw PngErrors naming the problem", () => {
  const good = encodePng({ width: 8, height: 8, channels: 3, data: randomPixels(192, 3) }, { parameters: "x" });
  const expectError = (bytes: Uint8Array, message: RegExp, what: string) =>
    assert.throws(() => decodePng(bytes), (err: Error) => err instanceof PngError && message.test(err.message), what);

  const badSignature = good.slice();
  badSignature[1] = 0x51;
  expectError(badSignature, /signature: expected the 8 PNG signature bytes, got \[137, 81,/, "signature");
  expectError(Buffer.from("GIF89a....."), /this is not a PNG file/, "gif");
  expectError(new Uint8Array(0), /signature/, "empty");

  const idatAt = Buffer.from(good).indexOf("IDAT");
  const badCrc = good.slice();
  badCrc[idatAt + 10]! ^= 0x01;
  expectError(badCrc, new RegExp(`IDAT chunk at byte ${idatAt - 4}: expected CRC 0x[0-9a-f]{8}, got 0x[0-9a-f]{8}; the file is corrupt`), "crc");

  for (const length of [8, 20, 40, idatAt + 20, good.length - 12, good.length - 1]) {
    expectError(good.subarray(0, length), /truncated/, `truncated to ${length}`);
  }

  const idat = chunk("IDAT", deflateSync(new Uint8Array(3 * 2)));
  const headers: Array<[Uint8Array, RegExp]> = [
    [ihdr(0, 2, 8, 0), /IHDR size: expected width and height in \[1, 2\^31 - 1\], got 0 x 2/],
    [ihdr(2, 2, 8, 5), /IHDR colour type: expected 0, 2, 3, 4 or 6, got 5/],
    [ihdr(2, 2, 3, 2), /IHDR bit depth for colour type 2: expected 8, 16, got 3/],
    [ihdr(2, 2, 16, 2), /IHDR bit depth: expected 8 .* got 16; re-save it with 8 bits per channel/],
    [ihdr(2, 2, 8, 0, 1), /IHDR interlace method: expected 0 \(none\), got 1 \(Adam7, unsupported\); re-save it non-interlaced/],
    [ihdr(2, 2, 8, 0, 0, 1), /IHDR compression method: expected 0 \(deflate\), got 1/],
    [ihdr(1 << 20, 1 << 20, 8, 6), /IHDR size: expected at most \d+ bytes of RGBA, got 1048576 x 1048576/],
    [chunk("IHDR", new Uint8Array(12)), /IHDR length: expected 13 bytes, got 12/],
  ];
  for (const [header, message] of headers) expectError(png(header, idat), message, message.source);

  expectError(png(chunk("tEXt", Buffer.from("a\0b")), ihdr(1, 1, 8, 0), idat), /first chunk: expected IHDR, got tEXt/, "order");
  expectError(png(ihdr(1, 1, 8, 0)), /IDAT: expected image data, got none/, "no IDAT");
  expectError(png(ihdr(2, 2, 8, 0), chunk("IDAT", deflateSync(new Uint8Array(5)))), /IDAT: expected 6 bytes .* got 5; the file is truncated/, "short");
  expectError(png(ihdr(2, 2, 8, 0), chunk("IDAT", deflateSync(new Uint8Array(9)))), /more than the 6 bytes/, "long");
  expectError(png(ihdr(2, 2, 8, 0), chunk("IDAT", [1, 2, 3, 4])), /IDAT: expected a zlib stream of 6 bytes, got a zlib error/, "zlib");
  expectError(png(ihdr(2, 1, 8, 0), chunk("IDAT", deflateSync(Uint8Array.of(5, 0, 0)))), /row 0: expected filter type 0-4, got 5/, "filter");
  expectError(png(ihdr(1, 1, 8, 3), idat), /PLTE: expected 1 to 256 RGB entries for a palette image, got none/, "no PLTE");
  expectError(png(ihdr(1, 1, 8, 3), chunk("PLTE", [1, 2, 3]), chunk("IDAT", deflateSync(Uint8Array.of(0, 1)))),
    /pixel \(0, 0\): expected a palette index below 1, got 1/, "palette index");
  expectError(png(ihdr(1, 1, 8, 0), chunk("ABCD", []), idat), /chunk ABCD: expected only known critical chunks/, "critical");
});

test("hand-built PNGs: every filter type, for every colour type", () => {
  const width = 5;
  const height = 5;
  const types = [0, 1, 2, 3, 4];
  const kinds: Array<{ colourType: number; samples: number; channels: number; extra?: Uint8Array[] }> = [
    { colourType: 0, samples: 1, channels: 1 },
    { colourType: 2, samples: 3, channels: 3 },
    { colourType: 6, samples: 4, channels: 4 },
    { colourType: 4, samples: 2, channels: 4 },
    { colourType: 3, samples: 1, channels: 3 },
  ];
  const palette = randomPixels(256 * 3, 5);
  for (const { colourType, samples, channels } of kinds) {
    for (const rowTypes of [types, [4, 3, 2, 1, 0], ...types.map((t) => types.map(() => t))]) {
      const raw = randomPixels(width * height * samples, colourType * 100 + rowTypes.join("").length + rowTypes[0]!);
      const filtered = filterByHand(rowsOf(raw, width * samples), samples, rowTypes);
      const extra = colourType === 3 ? [chunk("PLTE", palette)] : [];
      // Two IDAT chunks and an unknown ancillary chunk: the decoder joins the one and skips the other.
      const z = deflateSync(filtered);
      const bytes = png(ihdr(width, height, 8, colourType), ...extra, chunk("IDAT", z.subarray(0, 7)), chunk("abCd", [1]),
        chunk("IDAT", z.subarray(7)));
      const decoded = decodePng(bytes);
      assert.equal(decoded.channels, channels);
      const expected = new Uint8Array(width * height * channels);
      for (let p = 0; p < width * height; p++) {
        if (colourType === 4) expected.set([raw[2 * p]!, raw[2 * p]!, raw[2 * p]!, raw[2 * p + 1]!], 4 * p);
        else if (colourType === 3) expected.set(palette.subarray(raw[p]! * 3, raw[p]! * 3 + 3), 3 * p);
        else expected.set(raw.subarray(p * samples, (p + 1) * samples), p * channels);
      }
      assert.deepEqual(decoded.data, expected, `colour type ${colourType}, filters ${rowTypes}`);
    }
  }
});

test("hand-built PNGs: palette with tRNS, and 1/2/4-bit grey and palette", () => {
  const trns = png(ihdr(3, 1, 8, 3), chunk("PLTE", [10, 20, 30, 40, 50, 60, 70, 80, 90]), chunk("tRNS", [0, 128]),
    chunk("IDAT", deflateSync(Uint8Array.of(0, 0, 1, 2))));
  assert.deepEqual(decodePng(trns), { width: 3, height: 1, channels: 4, text: {},
    data: Uint8Array.of(10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255) });

  // 1-bit grey, 10 pixels a row (2 bytes, padded), two rows; second row Sub-filtered (bpp = 1).
  const oneBit = png(ihdr(10, 2, 1, 0), chunk("IDAT", deflateSync(Uint8Array.of(0, 0b10110000, 0b11000000, 1, 0xff, 0x01))));
  assert.deepEqual([...decodePng(oneBit).data], [255, 0, 255, 255, 0, 0, 0, 0, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 0, 0]);
  const twoBit = png(ihdr(3, 1, 2, 0), chunk("IDAT", deflateSync(Uint8Array.of(0, 0b00011011))));
  assert.deepEqual([...decodePng(twoBit).data], [0, 85, 170]);
  const fourBit = png(ihdr(3, 1, 4, 3), chunk("PLTE", [1, 1, 1, 2, 2, 2, 3, 3, 3]), chunk("IDAT", deflateSync(Uint8Array.of(0, 0x21, 0x00))));
  assert.deepEqual(decodePng(fourBit), { width: 3, height: 1, channels: 3, text: {}, data: Uint8Array.of(3, 3, 3, 2, 2, 2, 1, 1, 1) });
});

test("hand-built PNGs: zTXt and compressed iTXt are read", () => {
  const ztxt = chunk("zTXt", Buffer.concat([Buffer.from("Comment\0\0", "latin1"), deflateSync(Buffer.from("caf\xe9", "latin1"))]));
  const itxt = chunk("iTXt", Buffer.concat([Buffer.from("parameters\0\x01\0en\0Parameter\0", "latin1"), deflateSync(Buffer.from("🐱 Steps: 20"))]));
  const bytes = png(ihdr(1, 1, 8, 0), ztxt, chunk("IDAT", deflateSync(Uint8Array.of(0, 7))), itxt);
  assert.deepEqual(decodePng(bytes).text, { Comment: "café", parameters: "🐱 Steps: 20" });
});

test("imageToPng / pngToImage: CHW float in [-1, 1], clamped and rounded", () => {
  const [height, width] = [4, 6];
  const next = seeded(11);
  const levels = Float32Array.from({ length: 3 * height * width }, () => next() / 127.5 - 1);
  const bytes = imageToPng(levels, height, width, { parameters: "Seed: 5" });
  const back = pngToImage(bytes);
  assert.equal(back.height, height);
  assert.equal(back.width, width);
  assert.deepEqual(back.text, { parameters: "Seed: 5" });
  assert.deepEqual(back.x, levels, "8-bit levels survive exactly");
  const decoded = decodePng(bytes);
  // CHW -> HWC: pixel (0, 1), channel 2 is x[2, 0, 1].
  assert.equal(decoded.data[1 * 3 + 2], Math.round((levels[2 * height * width + 1]! + 1) * 127.5));

  const edge = Float32Array.of(-5, -1, 0, 1, 7, Infinity, -Infinity, 0.001);
  assert.deepEqual([...decodePng(imageToPng(edge, 1, 8)).data], [0, 0, 128, 255, 255, 255, 0, 128]);
  assert.deepEqual([...pngToImage(imageToPng(edge, 1, 8)).x.subarray(0, 8)].map((v) => Math.round((v + 1) * 127.5)),
    [0, 0, 128, 255, 255, 255, 0, 128], "grey is repeated into RGB");

  assert.throws(() => imageToPng(Float32Array.of(0, NaN), 1, 2), /x\[0, 0, 1\]: expected a number in \[-1, 1\], got NaN/);
  assert.throws(() => imageToPng(new Float32Array(10), 2, 2), /expected \[C, 2, 2\] with C = 1, 3 or 4 .* got 10 values/);
});

test("pngToImage composites alpha over the background", () => {
  const rgba = encodePng({ width: 2, height: 1, channels: 4, data: Uint8Array.of(255, 0, 0, 255, 0, 0, 255, 0) });
  const white = pngToImage(rgba).x;
  assert.deepEqual([...white], [1, 1, -1, 1, -1, 1]); // [R0, R1, G0, G1, B0, B1]
  const blue = pngToImage(rgba, { background: [0, 0, 255] }).x;
  assert.deepEqual([...blue], [1, -1, -1, -1, -1, 1]);
  const half = encodePng({ width: 1, height: 1, channels: 4, data: Uint8Array.of(255, 255, 255, 51) });
  assert.deepEqual([...pngToImage(half, { background: [0, 0, 0] }).x], [...Float32Array.of(51, 51, 51).map((v) => v / 127.5 - 1)]);
});
