// Seeded, counter-based, splittable random numbers (Philox-2x32-10). Every random draw in imagen-ts
// comes from an Rng built from an explicit seed, so the same seed gives the same bytes everywhere.
import { ValueError } from "./errors.js";

const M = 0xd256d193;
const W = 0x9e3779b9;

function mulHiLo(a: number, b: number): [number, number] {
  const aH = a >>> 16, aL = a & 0xffff, bH = b >>> 16, bL = b & 0xffff;
  const lo = Math.imul(a, b) >>> 0;
  const mid1 = aH * bL, mid2 = aL * bH;
  const carry = ((aL * bL) / 65536 + (mid1 & 0xffff) + (mid2 & 0xffff)) / 65536;
  const hi = (aH * bH + Math.floor(mid1 / 65536) + Math.floor(mid2 / 65536) + Math.floor(carry)) >>> 0;
  return [hi, lo];
}

/** Philox-2x32 with 10 rounds: two 32-bit counter words and one key word -> two random words. */
export function philox(c0: number, c1: number, key: number): [number, number] {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, k = key >>> 0;
  for (let r = 0; r < 10; r++) {
    const [hi, lo] = mulHiLo(M, x0);
    x0 = (hi ^ k ^ x1) >>> 0;
    x1 = lo;
    k = (k + W) >>> 0;
  }
  return [x0, x1];
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface RngState {
  key: [number, number];
  counter: number;
}

/** A stream of random numbers: key (from the seed) + a counter that advances with every draw. */
export class Rng {
  private key: [number, number];
  private counter: number;

  constructor(seed: number | RngState) {
    if (typeof seed === "number") {
      if (!Number.isSafeInteger(seed) || seed < 0) throw new ValueError(`Rng seed: expected a non-negative integer, got ${seed}`);
      const lo = seed >>> 0, hi = Math.floor(seed / 2 ** 32) >>> 0;
      this.key = philox(lo, hi, 0x5eed);
      this.counter = 0;
    } else {
      this.key = [seed.key[0] >>> 0, seed.key[1] >>> 0];
      this.counter = seed.counter;
    }
  }

  /** An independent stream derived from this one's key and a label (does not advance this stream). */
  split(label: string | number): Rng {
    const l = typeof label === "number" ? label >>> 0 : hashString(label);
    const [a, b] = philox(this.key[0] ^ l, this.key[1], 0xa5a5a5a5 ^ l);
    return new Rng({ key: [a, b], counter: 0 });
  }

  state(): RngState {
    return { key: [...this.key], counter: this.counter };
  }

  /** n uniform 32-bit words. */
  words(n: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i += 2) {
      const c = this.counter++;
      const [a, b] = philox(c >>> 0, Math.floor(c / 2 ** 32) ^ this.key[1], this.key[0]);
      out[i] = a;
      if (i + 1 < n) out[i + 1] = b;
    }
    return out;
  }

  /** n floats uniform in [0, 1) (24-bit resolution, exact in float32). */
  uniform(n: number): Float32Array {
    const w = this.words(n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (w[i] >>> 8) / 16777216;
    return out;
  }

  /** n standard normal floats (Box-Muller on pairs of uniforms). */
  normal(n: number, mean = 0, std = 1): Float32Array {
    const w = this.words(n + (n & 1));
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u1 = ((w[i] >>> 8) + 1) / 16777217;
      const u2 = (w[i + 1] >>> 8) / 16777216;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }

  /** An integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform(1)[0] * n);
  }
}

/**
 * An Rng that draws nothing: every value is 0. For building modules whose weights are loaded right after
 * (or only counted), where drawing millions of initial values would be wasted time.
 */
export class ZeroRng extends Rng {
  constructor() {
    super(0);
  }
  override split(): Rng {
    return this;
  }
  override words(n: number): Uint32Array {
    return new Uint32Array(n);
  }
  override uniform(n: number): Float32Array {
    return new Float32Array(n);
  }
  override normal(n: number, mean = 0): Float32Array {
    return new Float32Array(n).fill(mean);
  }
}

/** Draws nothing: every array is empty. For building shape-only modules (nn/module.ts shapeOnly). */
export class ShapeOnlyRng extends ZeroRng {
  override words(): Uint32Array {
    return new Uint32Array(0);
  }
  override uniform(): Float32Array {
    return new Float32Array(0);
  }
  override normal(): Float32Array {
    return new Float32Array(0);
  }
}
