// Test fixture: a tiny corpus and the options of a tiny pretraining run (a 1-block, d 32 T5; 60 steps, about 2 s).
import { Rng } from "../util/rng.js";
import type { Corpus } from "./pretrain-corpus.js";
import type { PretrainOptions } from "./pretrain.js";
import assert from "node:assert/strict";
import { T5TextEncoder } from "./t5-encoder.js";

/** 600 training and 64 held-out lines drawn (seed 3) from `lines`. */
export function tinyCorpus(lines: readonly string[]): Corpus {
  const rng = new Rng(3);
  const make = (n: number) => Array.from({ length: n }, () => ({ source: "brown" as const, text: lines[rng.int(lines.length)] }));
  return { train: make(600), heldOut: make(64) };
}

/** 60 steps with held-out evaluations at 0, 30 and 60, no probes. */
export const tinyRun: Partial<PretrainOptions> = {
  steps: 60, batch: 8, length: 16, lr: 3e-3, warmupSteps: 5, vocabSize: 3 + 256 + 32 + 150,
  dModel: 32, numLayers: 1, numHeads: 2, dKv: 16, dFf: 64, evalEvery: 30, evalBatches: 2, probe: false,
};

/** Asserts that `dir` loads as a d 32 T5 encoder that embeds a caption to finite values. */
export async function assertTinyEncoderLoads(dir: string): Promise<void> {
  const enc = await T5TextEncoder.load(dir, { maxLength: 8 });
  const e = await enc.encode(["a red circle"]);
  assert.deepEqual([e.batch, e.length, e.dim], [1, 8, 32]);
  assert.ok(e.embeddings.every(Number.isFinite));
  enc.dispose();
}
