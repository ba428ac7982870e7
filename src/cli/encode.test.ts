// `imagen encode`: the --json object holds ids, mask, shape and the full last hidden state (checked against a
// golden case), text and ids input, truncation, and flag errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runEncode, validStats, type EncodeFlags } from "./encode.js";

const fixtures = join(import.meta.dirname, "../../test/fixtures/t5");
const byt5 = join(fixtures, "byt5-gated-gelu");
const flags = (extra: Partial<EncodeFlags>): EncodeFlags => ({ encoder: byt5, maxLength: "128", tokenizer: "bytes", ...extra });

test("encode --text on ByT5 matches the golden ids and hidden state", async () => {
  const g = JSON.parse(readFileSync(join(byt5, "golden.json"), "utf8"));
  const c = g.cases[0];
  const r = await runEncode(flags({ text: c.texts }));
  assert.deepEqual(r.shape, c.last_hidden_state.shape);
  assert.deepEqual(r.mask, c.attention_mask);
  const [B, L, D] = r.shape;
  let err = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t < L; t++) {
    if (c.attention_mask[b][t]) for (let d = 0; d < D; d++) err = Math.max(err, Math.abs(r.data[(b * L + t) * D + d] - c.last_hidden_state.values[b][t][d]));
  }
  assert.ok(err < 1e-4, `max abs error ${err}`);
  assert.equal(validStats(r).count, c.lengths.reduce((a: number, n: number) => a + n, 0) * D);
});

test("encode --ids with --max-length cuts and reports; bad flags are named", async () => {
  const r = await runEncode(flags({ ids: ["75,108,35,1", "80,1"], maxLength: "3" }));
  assert.deepEqual(r.ids, [[75, 108, 35], [80, 1]]);
  assert.deepEqual(r.truncated, [true, false]);
  assert.deepEqual(r.mask, [[1, 1, 1], [1, 1, 0]]);
  await assert.rejects(() => runEncode(flags({ ids: ["1,x"] })), /--ids: expected comma-separated non-negative integers/);
  await assert.rejects(() => runEncode(flags({ ids: ["1"], text: ["a"] })), /expected --text or --ids/);
  await assert.rejects(() => runEncode(flags({})), /expected --text or --ids/);
  await assert.rejects(() => runEncode(flags({ text: ["a"], maxLength: "0" })), /--max-length: expected an integer from 1 to 65536, got "0"/);
  await assert.rejects(() => runEncode(flags({ text: ["a"], tokenizer: "bpe" })), /--tokenizer: expected auto or bytes/);
  await assert.rejects(() => runEncode(flags({ ids: ["999"] })), /token id 999; expected integers from 0 to 383/);
});

test("imagen encode --json prints one object {ids, mask, shape, data}", () => {
  const out = execFileSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "main.ts"), "encode", "--encoder", byt5, "--ids", "75,108,1", "--json"], { encoding: "utf8" });
  const j = JSON.parse(out);
  assert.deepEqual(Object.keys(j), ["ids", "mask", "shape", "data"]);
  assert.deepEqual(j.shape, [1, 3, 48]);
  assert.equal(j.data.length, 3 * 48);
});
