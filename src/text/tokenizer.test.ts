// Tokenizer tests on the tiny SentencePiece fixtures in test/fixtures/t5/tokenizer (made by make_fixture.py):
// ids and decodes equal Hugging Face tokenizers' (expected.json, from make_expected.mjs), round trips on
// arbitrary Unicode with byte fallback, T5's special tokens and </s>, ByT5 bytes, and bad tokenizer.json files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../util/rng.js";
import { ByteTokenizer, TokenizerError } from "./tokenizer.js";
import { UnigramTokenizer } from "./unigram.js";

const dir = join(import.meta.dirname, "../../test/fixtures/t5/tokenizer");
const load = (name: string) => UnigramTokenizer.fromJson(readFileSync(join(dir, name, "tokenizer.json"), "utf8"), name);
const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
  cases: Record<string, { text: string; ids: number[]; decoded: string; decodedWithSpecial: string }[]>;
};

for (const name of ["t5-unigram", "bytefallback-unigram"]) {
  test(`${name}: ids and decodes match Hugging Face tokenizers on ${expected.cases[name].length} strings`, () => {
    const tok = load(name);
    for (const c of expected.cases[name]) {
      assert.deepEqual(tok.encode(c.text), c.ids, `encode ${JSON.stringify(c.text)}`);
      assert.equal(tok.decode(c.ids), c.decoded, `decode ${JSON.stringify(c.text)}`);
      assert.equal(tok.decode(c.ids, false), c.decodedWithSpecial, `decode with specials ${JSON.stringify(c.text)}`);
    }
  });
}

/** Random text over many scripts, emoji and combining marks, with single spaces between words. */
function randomText(rng: Rng): string {
  const ranges = [[0x21, 0x7e], [0xa1, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff], [0xe00, 0xe7f],
    [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0x1f300, 0x1faff], [0x10000, 0x1007f]];
  const words: string[] = [];
  for (let w = 1 + rng.int(6); w > 0; w--) {
    let s = "";
    for (let k = 1 + rng.int(8); k > 0; k--) {
      const [lo, hi] = ranges[rng.int(ranges.length)];
      s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
    }
    words.push(s);
  }
  return words.join(" ");
}

test("byte fallback: decode(encode(text)) == text for arbitrary Unicode (no normalizer, single spaces)", () => {
  const tok = load("bytefallback-unigram");
  const rng = new Rng(7);
  for (let i = 0; i < 300; i++) {
    const text = randomText(rng);
    const ids = tok.encode(text);
    assert.equal(ids[ids.length - 1], 1, "</s> last");
    assert.ok(!ids.includes(2), `no <unk> with byte fallback: ${JSON.stringify(text)}`);
    assert.equal(tok.decode(ids), text);
  }
});

test("T5 (no byte fallback): unknown runs become one <unk>, known text round-trips after NFKC", () => {
  const tok = load("t5-unigram");
  const ids = tok.encode("red ภาษาไทย square");
  assert.equal(ids.filter((id) => id === 2).length, 1, "the unknown run is fused into one <unk>");
  assert.equal(tok.decode(ids), "red  square", "<unk> is special and dropped by decode");
  assert.equal(tok.decode(ids, false), "red <unk> square</s>");
  assert.equal(tok.decode(tok.encode("ＡＢＣ ﬁ")), "ABC fi", "the precompiled charsmap applies NFKC");
  const rng = new Rng(8);
  for (let i = 0; i < 200; i++) {
    const text = randomText(rng);
    const ids2 = tok.encode(text);
    assert.equal(ids2[ids2.length - 1], 1);
    assert.ok(ids2.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize));
  }
});

test("special tokens: <pad> 0, </s> 1, <unk> 2, <extra_id_N> at the end; </s> appended once; specials in text", () => {
  const tok = load("t5-unigram");
  assert.deepEqual([tok.padId, tok.eosId], [0, 1]);
  assert.deepEqual(tok.tokens([0, 1, 2]), ["<pad>", "</s>", "<unk>"]);
  assert.deepEqual(tok.tokens([tok.vocabSize - 1]), ["<extra_id_0>"]);
  assert.deepEqual(tok.encode("", true), [1]);
  assert.deepEqual(tok.encode("", false), []);
  const plain = tok.encode("red cube", false);
  assert.deepEqual(tok.encode("red cube"), [...plain, 1]);
  assert.deepEqual(tok.encode("red cube</s>"), [...plain, 1, 1], "a literal </s> is the special token, then </s> is appended");
  const sentinel = tok.encode("<extra_id_0> cube <extra_id_1>", false);
  assert.equal(sentinel[0], tok.vocabSize - 1);
  assert.equal(sentinel[sentinel.length - 1], tok.vocabSize - 2);
});

test("ByT5 bytes: UTF-8 byte + 3, </s> = 1, round trip on arbitrary Unicode", () => {
  const tok = new ByteTokenizer();
  assert.deepEqual(tok.encode("Hi é"), [75, 108, 35, 198, 172, 1]);
  const rng = new Rng(9);
  for (let i = 0; i < 100; i++) {
    const text = randomText(rng);
    assert.equal(tok.decode(tok.encode(text)), text);
  }
  assert.equal(tok.decode([75, 1, 0, 108]), "Hi");
  assert.equal(tok.decode([75, 1, 108], false), "H</s>i");
});

test("bad tokenizer.json files are refused naming the field", () => {
  const good = JSON.parse(readFileSync(join(dir, "t5-unigram", "tokenizer.json"), "utf8"));
  const bad: [unknown, RegExp][] = [
    ["{ not json", /not valid JSON/],
    [{ model: { type: "BPE", vocab: {}, merges: [] } }, /field "model.type" expected "Unigram".*got "BPE"/],
    [{ model: { type: "WordPiece", vocab: {} } }, /got "WordPiece"/],
    [{ ...good, model: { ...good.model, vocab: [] } }, /field "model.vocab" expected a non-empty list/],
    [{ ...good, model: { ...good.model, vocab: [["a", "x"]] } }, /field "model.vocab\[0\]" expected \[piece, score\]/],
    [{ ...good, model: { ...good.model, unk_id: 99999 } }, /field "model.unk_id" expected null or an index/],
    [{ ...good, normalizer: { type: "BertNormalizer" } }, /field "normalizer.type" has type "BertNormalizer".*supported: Precompiled/],
    [{ ...good, pre_tokenizer: { type: "ByteLevel" } }, /field "pre_tokenizer.type" has type "ByteLevel"/],
    [{ ...good, post_processor: { type: "RobertaProcessing" } }, /field "post_processor" expected TemplateProcessing/],
    [{ ...good, normalizer: { type: "Precompiled", precompiled_charsmap: "AAAA" } }, /precompiled_charsmap/],
  ];
  for (const [json, re] of bad) {
    const text = typeof json === "string" ? json : JSON.stringify(json);
    assert.throws(() => UnigramTokenizer.fromJson(text, "tokenizer.json"), (e: Error) => e instanceof TokenizerError && re.test(e.message), re.source);
  }
});
