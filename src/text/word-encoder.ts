// A frozen stand-in text encoder until T5 lands (issue 4): each lower-cased word maps to a fixed random
// vector drawn from a seeded Rng keyed by the word, plus a sinusoidal position code. No training, any
// vocabulary, deterministic; the U-Net's attention over the token sequence does the rest.
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { EncodedText, TextEncoder } from "./encoder.js";

export function tokenizeWords(prompt: string): string[] {
  return prompt.toLowerCase().normalize("NFKC").match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
}

export class WordEncoder implements TextEncoder {
  readonly id: string;
  private readonly cache = new Map<string, Float32Array>();
  constructor(readonly dim = 64, readonly maxLength = 16, readonly seed = 0) {
    if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new ValueError(`WordEncoder dim: expected an even integer >= 2, got ${dim}`);
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new ValueError(`WordEncoder maxLength: expected an integer >= 1, got ${maxLength}`);
    this.id = `word-encoder:v1:${dim}:${maxLength}:${seed}`;
  }

  private vector(word: string): Float32Array {
    let v = this.cache.get(word);
    if (!v) {
      v = new Rng(this.seed).split(`word:${word}`).normal(this.dim, 0, 1);
      this.cache.set(word, v);
    }
    return v;
  }

  /** For each space-separated word, the positions of its tokens (below maxLength). */
  wordTokens(prompt: string): number[][] {
    let done = 0;
    return prompt.split(" ").map((w) => {
      const n = tokenizeWords(w).length;
      const mine = Array.from({ length: n }, (_, k) => done + k).filter((p) => p < this.maxLength);
      done += n;
      return mine;
    });
  }

  async encode(prompts: readonly string[]): Promise<EncodedText> {
    const [L, D] = [this.maxLength, this.dim];
    const embeddings = new Float32Array(prompts.length * L * D);
    const mask = new Float32Array(prompts.length * L);
    const truncated = prompts.map((p, b) => {
      const words = tokenizeWords(p);
      words.slice(0, L).forEach((w, i) => {
        const v = this.vector(w);
        const row = embeddings.subarray((b * L + i) * D, (b * L + i + 1) * D);
        for (let k = 0; k < D / 2; k++) {
          const f = i / 10000 ** ((2 * k) / D);
          row[2 * k] = v[2 * k] + 0.5 * Math.sin(f);
          row[2 * k + 1] = v[2 * k + 1] + 0.5 * Math.cos(f);
        }
        mask[b * L + i] = 1;
      });
      return words.length > L;
    });
    return { embeddings, mask, batch: prompts.length, length: L, dim: D, truncated };
  }
}
