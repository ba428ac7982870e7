// Golden tests of the T5 encoder against shared/reference/golden/t5 (an independent PyTorch re-implementation of
// HF's T5EncoderModel), run on the copies in test/fixtures/t5 so CI needs no shared/: max abs error < 1e-4 at
// mask == 1 for every model and case (long inputs, far buckets, right and left padding), plus the bucket tables
// and the position-bias intermediates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { T5TextEncoder } from "./t5-encoder.js";
import { relativePositionBucket } from "./t5-buckets.js";
import { resolveT5Config } from "./t5-config.js";

const fixtures = join(import.meta.dirname, "../../test/fixtures/t5");
const shared = join(import.meta.dirname, "../../../shared/reference/golden/t5");
const tolerance = 1e-4;

interface Case { name: string; input_ids: number[][]; attention_mask: number[][]; texts?: string[]; last_hidden_state: { shape: number[]; values: number[][][] } }
interface Golden {
  resolved_config: Record<string, unknown>;
  cases: Case[];
  intermediates: { input_ids: number[]; position_bias: number[][][] };
  relative_position_buckets: { num_buckets: number; max_distance: number; relative_position: number[]; bucket: number[] };
  relative_position_buckets_unidirectional?: { num_buckets: number; max_distance: number; relative_position: number[]; bucket: number[] };
}
const index = JSON.parse(readFileSync(join(fixtures, "index.json"), "utf8")) as { models: { name: string }[]; tolerance_max_abs: number };
const golden = (name: string) => JSON.parse(readFileSync(join(fixtures, name, "golden.json"), "utf8")) as Golden;

/** Max |ours - golden| over mask == 1 positions; `hidden` is [B, L, D] for the same padded batch. */
function maxErrorAtValid(c: Case, hidden: Float32Array): number {
  const [B, L, D] = c.last_hidden_state.shape;
  let err = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t < L; t++) {
    if (c.attention_mask[b][t] !== 1) continue;
    for (let d = 0; d < D; d++) err = Math.max(err, Math.abs(hidden[(b * L + t) * D + d] - c.last_hidden_state.values[b][t][d]));
  }
  return err;
}

test("the fixtures are the shared golden files (skipped without ../shared)", (t) => {
  if (!existsSync(shared)) {
    t.skip(`../shared/reference/golden/t5 is absent (CI clones only the repo); the tests below use test/fixtures/t5`);
    return;
  }
  for (const file of ["index.json", ...index.models.map((m) => join(m.name, "golden.json")), ...index.models.map((m) => join(m.name, "config.json"))]) {
    assert.equal(readFileSync(join(fixtures, file), "utf8"), readFileSync(join(shared, file), "utf8"), `${file} differs from shared/: copy it again`);
  }
});

test("tolerance in the golden index is the one we test", () => {
  assert.equal(index.tolerance_max_abs, tolerance);
  assert.equal(index.models.length, 5);
});

for (const { name } of index.models) {
  test(`golden ${name}: every case within 1e-4 at valid positions`, async () => {
    const g = golden(name);
    const resolved = resolveT5Config(JSON.parse(readFileSync(join(fixtures, name, "config.json"), "utf8")));
    const r = g.resolved_config;
    assert.deepEqual(
      [resolved.denseActFn, resolved.isGatedAct, resolved.innerDim, resolved.layerNormEpsilon, resolved.maxDistance, resolved.numBuckets],
      [r.dense_act_fn, r.is_gated_act, r.inner_dim, r.layer_norm_epsilon, r.relative_attention_max_distance, r.relative_attention_num_buckets],
    );
    const enc = await T5TextEncoder.load(join(fixtures, name), { tokenizer: name.startsWith("byt5") ? "bytes" : "auto", maxLength: 512 });
    try {
      for (const c of g.cases) {
        const out = await enc.runPadded(c.input_ids, c.attention_mask);
        assert.deepEqual([out.batch, out.length, out.dim], c.last_hidden_state.shape);
        const err = maxErrorAtValid(c, out.hidden);
        assert.ok(err < tolerance, `${name}/${c.name}: max abs error ${err} >= ${tolerance}`);
        // Padded positions come back zeroed.
        c.attention_mask.forEach((row, b) => row.forEach((m, t) => {
          if (m === 0) assert.ok(out.hidden.subarray((b * out.length + t) * out.dim, (b * out.length + t + 1) * out.dim).every((v) => v === 0));
        }));
        if (c.texts) {
          // ByT5: the texts tokenize to the golden ids, and encode() gives the same rows at maxLength.
          const rows = c.input_ids.map((ids, b) => ids.filter((_, t) => c.attention_mask[b][t] === 1));
          assert.deepEqual(c.texts.map((t) => enc.tokenize(t).ids), rows);
          const e = await enc.encode(c.texts);
          const [, L, D] = c.last_hidden_state.shape;
          let err2 = 0;
          rows.forEach((row, b) => row.forEach((_, t) => {
            for (let d = 0; d < D; d++) err2 = Math.max(err2, Math.abs(e.embeddings[(b * e.length + t) * D + d] - c.last_hidden_state.values[b][t][d]));
          }));
          assert.ok(L <= e.length && err2 < tolerance, `${name}: encode(texts) error ${err2}`);
        }
      }
    } finally {
      enc.dispose();
    }
  });

  test(`golden ${name}: relative position buckets and position bias`, async () => {
    const g = golden(name);
    const tables = [g.relative_position_buckets, g.relative_position_buckets_unidirectional].filter((x) => x !== undefined);
    tables.forEach((tbl, k) => {
      const got = tbl.relative_position.map((rel) => relativePositionBucket(rel, tbl.num_buckets, tbl.max_distance, k === 0));
      assert.deepEqual(got, tbl.bucket, `${name}: ${k === 0 ? "bidirectional" : "unidirectional"} bucket table`);
    });
    const enc = await T5TextEncoder.load(join(fixtures, name));
    try {
      const attn = enc.model.encoder.blocks[0].attention.SelfAttention;
      const table = attn.relativeBias!.data;
      const H = enc.model.config.numHeads;
      const bias = g.intermediates.position_bias; // [H, L, L]
      const L = bias[0].length;
      let err = 0;
      for (let h = 0; h < H; h++) for (let q = 0; q < L; q++) for (let k = 0; k < L; k++) {
        const bucket = relativePositionBucket(k - q, enc.model.config.numBuckets, enc.model.config.maxDistance);
        err = Math.max(err, Math.abs(table[bucket * H + h] - bias[h][q][k]));
      }
      assert.ok(err < 1e-6, `${name}: position bias error ${err}`);
    } finally {
      enc.dispose();
    }
  });
}
