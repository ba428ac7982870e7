// Loading T5 folders: fp16 / bf16 upcast, a full folder with tokenizer.json, truncation, and bad input (config
// fields, shard index, shapes against config, another model's tokenizer), each a clear error naming the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { fromFloat32, loadSafetensors, saveSafetensors, toFloat32 } from "../runtime/safetensors.js";
import { T5TextEncoder } from "./t5-encoder.js";
import { T5ConfigError, resolveT5Config, t5ConfigJson } from "./t5-config.js";
import { T5EncoderModel } from "./t5.js";
import { TokenizerError } from "./tokenizer.js";

const fixtures = join(import.meta.dirname, "../../test/fixtures/t5");
const tokFixture = join(fixtures, "tokenizer/t5-unigram/tokenizer.json");
const scratch = mkdtempSync(join(tmpdir(), "t5-loader-"));
let n = 0;
test.after(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of a golden model folder, with config.json edited by `edit`. */
function copyOf(name: string, edit?: (cfg: Record<string, unknown>) => void): string {
  const dir = join(scratch, `${name}-${n++}`);
  cpSync(join(fixtures, name), dir, { recursive: true });
  if (edit) {
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    edit(cfg);
    writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  }
  return dir;
}

const rejects = (dir: string, re: RegExp, cls: Function = T5ConfigError) =>
  assert.rejects(() => T5TextEncoder.load(dir), (e: Error) => e instanceof cls && re.test(e.message) ? true : assert.fail(`unexpected error: ${e.message}`));

test("config: HF defaults for missing keys; activation derived from feed_forward_proj, explicit keys win", () => {
  const c = resolveT5Config({});
  assert.deepEqual([c.vocabSize, c.dModel, c.dKv, c.dFf, c.numLayers, c.numHeads, c.numBuckets, c.maxDistance, c.layerNormEpsilon, c.denseActFn, c.isGatedAct],
    [32128, 512, 64, 2048, 6, 8, 32, 128, 1e-6, "relu", false]);
  assert.equal(resolveT5Config({ feed_forward_proj: "gated-gelu" }).denseActFn, "gelu_new");
  assert.equal(resolveT5Config({ feed_forward_proj: "gated-silu" }).denseActFn, "silu");
  assert.equal(resolveT5Config({ feed_forward_proj: "gated-gelu", dense_act_fn: "gelu" }).denseActFn, "gelu");
  assert.equal(resolveT5Config({ feed_forward_proj: "gated-gelu", is_gated_act: false }).isGatedAct, false);
  assert.deepEqual(resolveT5Config(t5ConfigJson(c)), c);
});

test("config: bad fields are named with the fix", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ num_heads: "four" }, /field "num_heads" expected a positive integer, got "four"/],
    [{ d_model: 0 }, /field "d_model" expected a positive integer, got 0/],
    [{ feed_forward_proj: "gated-gelu-x" }, /field "feed_forward_proj" expected "ACT" or "gated-ACT"/],
    [{ feed_forward_proj: "swiglu" }, /field "feed_forward_proj" gives activation "swiglu", expected one of relu, gelu, gelu_new/],
    [{ dense_act_fn: "gelu_fancy" }, /field "dense_act_fn" gives activation "gelu_fancy"/],
    [{ is_gated_act: "yes" }, /field "is_gated_act" expected true or false/],
    [{ layer_norm_epsilon: -1 }, /field "layer_norm_epsilon" expected a positive number/],
    [{ model_type: "bert" }, /field "model_type" expected one of t5, mt5, got "bert"/],
    [{ relative_attention_num_buckets: 2 }, /field "relative_attention_num_buckets" expected at least 4/],
    [{ relative_attention_max_distance: 4 }, /field "relative_attention_max_distance" expected more than/],
  ];
  for (const [cfg, re] of bad) assert.throws(() => resolveT5Config(cfg), (e: Error) => e instanceof T5ConfigError && re.test(e.message), JSON.stringify(cfg));
});

test("checkpoint: shapes or layers that disagree with config.json, a missing shard, no weights, broken JSON", async () => {
  await rejects(copyOf("t5-v1_0-relu", (c) => delete c.d_model), /tensor "shared.weight" has shape \[\d+, 32\], but config.json gives \[\d+, 512\] = \[vocab_size, d_model\]/);
  await rejects(copyOf("t5-v1_0-relu", (c) => (c.d_ff = 65)), /DenseReluDense.wi.weight" has shape \[64, 32\], but config.json gives \[65, 32\] = \[d_ff, d_model\]/);
  await rejects(copyOf("t5-v1_0-relu", (c) => (c.num_layers = 3)), /lacks \d+ encoder tensor\(s\): encoder.block.2.*check that num_layers/);
  await rejects(copyOf("t5-v1_0-relu", (c) => (c.num_layers = 1)), /encoder tensors that config.json does not describe: encoder.block.1/);
  await rejects(copyOf("t5-legacy-config-sharded", (c) => (c.feed_forward_proj = "gated-gelu")), /lacks .*DenseReluDense.wi_0.weight/);
  const sharded = copyOf("t5-legacy-config-sharded");
  unlinkSync(join(sharded, "model-00001-of-00002.safetensors"));
  await rejects(sharded, /model.safetensors.index.json names model-00001-of-00002.safetensors, which is missing.*download every shard/);
  const none = copyOf("t5-v1_0-relu");
  unlinkSync(join(none, "model.safetensors"));
  await rejects(none, /has neither model.safetensors nor model.safetensors.index.json/);
  const broken = copyOf("t5-v1_0-relu");
  writeFileSync(join(broken, "config.json"), "{ nope");
  await rejects(broken, /config.json is not valid JSON/);
  await rejects(join(scratch, "no-such-folder"), /config.json is missing/);
});

test("fp16 and bf16 checkpoints load, upcast to float32", async () => {
  const g = JSON.parse(readFileSync(join(fixtures, "t5-v1_0-relu/golden.json"), "utf8"));
  const c = g.cases[0];
  for (const dtype of ["F16", "BF16"] as const) {
    const dir = copyOf("t5-v1_0-relu");
    const st = await loadSafetensors(join(dir, "model.safetensors"));
    const rounded = new Map<string, Float32Array>();
    const tensors = new Map([...st.tensors].map(([name, e]) => {
      const data = fromFloat32(toFloat32(e), dtype);
      rounded.set(name, toFloat32({ dtype, shape: e.shape, data }));
      return [name, { dtype, shape: e.shape, data }];
    }));
    await saveSafetensors(join(dir, "model.safetensors"), tensors);
    const enc = await T5TextEncoder.load(dir);
    try {
      for (const [name, p] of enc.model.namedParameters()) assert.deepEqual(p.data, rounded.get(name), `${dtype} ${name}`);
      const out = await enc.runPadded(c.input_ids, c.attention_mask);
      let err = 0;
      c.attention_mask.forEach((row: number[], b: number) => row.forEach((m, t) => {
        if (m) for (let d = 0; d < out.dim; d++) err = Math.max(err, Math.abs(out.hidden[(b * out.length + t) * out.dim + d] - c.last_hidden_state.values[b][t][d]));
      }));
      assert.ok(err < (dtype === "F16" ? 0.01 : 0.1), `${dtype}: error ${err} from weight rounding alone`);
    } finally {
      enc.dispose();
    }
  }
});

/** A random T5 (vocab = the fixture tokenizer's) saved in HF layout beside the fixture tokenizer.json. */
async function folderWithTokenizer(): Promise<string> {
  const dir = join(scratch, `with-tokenizer-${n++}`);
  cpSync(join(fixtures, "t5-v1_1-gated-gelu"), dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  cfg.vocab_size = 408;
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  const model = new T5EncoderModel(resolveT5Config(cfg), new Rng(3));
  await saveSafetensors(join(dir, "model.safetensors"), new Map([...model.namedParameters()].map(([k, p]) => [k, { dtype: "F32" as const, shape: p.shape, data: p.data }])));
  cpSync(tokFixture, join(dir, "tokenizer.json"));
  return dir;
}

test("a folder with tokenizer.json encodes text; a 10,000-character prompt is cut to maxLength and reported", async () => {
  const dir = await folderWithTokenizer();
  const enc = await T5TextEncoder.load(dir, { maxLength: 16 });
  try {
    const long = "three red cubes above two green spheres ".repeat(250);
    assert.equal(long.length, 10000);
    const e = await enc.encode(["a red square", long, ""]);
    assert.deepEqual(e.truncated, [false, true, false]);
    assert.deepEqual([e.batch, e.length, e.dim], [3, 16, 32]);
    const tok = enc.tokenize(long);
    assert.equal(tok.ids.length, 16);
    assert.equal(tok.ids[15], 1, "</s> stays last after truncation");
    assert.deepEqual(Array.from(e.mask.subarray(16, 32)), Array(16).fill(1));
    const shortLen = enc.tokenize("a red square").ids.length;
    assert.deepEqual(Array.from(e.mask.subarray(0, 16)), [...Array(shortLen).fill(1), ...Array(16 - shortLen).fill(0)]);
    assert.ok(e.embeddings.subarray(shortLen * 32, 16 * 32).every((v) => v === 0), "padded positions are zero");
    assert.deepEqual(Array.from(e.mask.subarray(32, 48)), [1, ...Array(15).fill(0)], "the empty prompt is just </s>");
    // Batching does not change a prompt's embedding (beyond float noise).
    const alone = await enc.encode(["a red square"]);
    let diff = 0;
    for (let i = 0; i < 16 * 32; i++) diff = Math.max(diff, Math.abs(alone.embeddings[i] - e.embeddings[i]));
    assert.ok(diff < 1e-5, `batched vs alone: ${diff}`);
    await assert.rejects(() => enc.run([[0, 408]]), /token id 408; expected integers from 0 to 407 \(vocab_size\)/);
  } finally {
    enc.dispose();
  }
});

test("tokenizer.json of another model type, or of another vocabulary, is refused", async () => {
  const bpe = copyOf("t5-v1_0-relu");
  writeFileSync(join(bpe, "tokenizer.json"), JSON.stringify({ version: "1.0", model: { type: "BPE", vocab: { a: 0 }, merges: [] } }));
  await rejects(bpe, /tokenizer.json: field "model.type" expected "Unigram".*got "BPE".*another model family/, TokenizerError);
  const other = copyOf("t5-v1_0-relu");
  cpSync(tokFixture, join(other, "tokenizer.json"));
  await rejects(other, /182 tokens, but config.json vocab_size is 100; the tokenizer belongs to another model/, TokenizerError);
  const noTok = await T5TextEncoder.load(join(fixtures, "t5-v1_0-relu"));
  try {
    assert.throws(() => noTok.tokenize("hi"), /has no tokenizer.json and names no ByT5Tokenizer/);
  } finally {
    noTok.dispose();
  }
});

test("weights fed as inputs (the path for models over 1.5 GB) give the same output as constants", async () => {
  const dir = join(fixtures, "t5-v1_1-gated-gelu");
  const g = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
  const c = g.cases[0];
  const [a, b] = [await T5TextEncoder.load(dir, { weights: "constant" }), await T5TextEncoder.load(dir, { weights: "input" })];
  try {
    const [x, y] = [await a.runPadded(c.input_ids, c.attention_mask), await b.runPadded(c.input_ids, c.attention_mask)];
    let diff = 0;
    x.hidden.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - y.hidden[i]))));
    assert.ok(diff < 1e-5, `constant vs input weights: ${diff}`);
    assert.equal(a.id, b.id);
  } finally {
    a.dispose();
    b.dispose();
  }
});
