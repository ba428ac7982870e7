import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadTokenizer } from "./tokenizer-load.js";
import { UnigramTokenizer } from "./unigram.js";
import { SpellingTokenizer } from "./spelling.js";
import { T5TextEncoder } from "./t5-encoder.js";

const tinyT5 = join(fileURLToPath(new URL("../../models/text/tiny-t5", import.meta.url)));

test("spelling tokenizer: words in capitals reach the encoder letter by letter, everything else as before", async () => {
  const inner = await loadTokenizer(tinyT5, 8000);
  assert.ok(inner instanceof UnigramTokenizer);
  const spell = new SpellingTokenizer(inner);
  const pieces = (text: string) => spell.tokens(spell.encode(text));
  // The plain tokenizer lowercases: the sign word is the animal's piece.
  assert.deepEqual(inner.tokens(inner.encode("a sign that says CAT")), ["▁a", "▁sign", "▁that", "▁says", "▁cat", "</s>"]);
  assert.deepEqual(pieces("a sign that says CAT"), ["▁a", "▁sign", "▁that", "▁says", "▁", "c", "a", "t", "</s>"]);
  assert.deepEqual(pieces("the word ZAP on a sign on a gray background"), ["▁the", "▁word", "▁", "z", "a", "p", "▁on", "▁a", "▁sign", "▁on", "▁a", "▁gray", "▁background", "</s>"]);
  // Two spelled words in a row, punctuation around one, and a one-letter capital (not spelled).
  assert.deepEqual(pieces('"HI" I said, GO'), [...inner.tokens(inner.encode('"', false)), "▁", "h", "i", ...inner.tokens(inner.encode('" I said,', false)), "▁", "g", "o", "</s>"]);
  // No capitals: identical ids.
  for (const text of ["a red circle to the left of a blue star", "two green apples", "", "Cat"]) assert.deepEqual(spell.encode(text), inner.encode(text));
  assert.deepEqual(spell.encode("SIT", false), [inner.idOf("▁"), inner.idOf("s"), inner.idOf("i"), inner.idOf("t")]);
  assert.equal(spell.decode(spell.encode("a sign reading MUD")), "a sign reading mud");
  assert.notEqual(spell.id, inner.id, "the spelled ids need their own cache key");
});

test("T5 encoder: spellCapitals changes only captions with capitals, and its id", async () => {
  const plain = await T5TextEncoder.load(tinyT5, { maxLength: 16 });
  const spelled = await T5TextEncoder.load(tinyT5, { maxLength: 16, spellCapitals: true });
  try {
    assert.notEqual(plain.id, spelled.id);
    assert.deepEqual(spelled.tokenize("a red star").ids, plain.tokenize("a red star").ids);
    assert.equal(spelled.tokenize("a sign that says BED").ids.length, plain.tokenize("a sign that says BED").ids.length + 3);
    const [a, b] = [await plain.encode(["a sign that says BED"]), await spelled.encode(["a sign that says BED"])];
    let diff = 0;
    for (let i = 0; i < a.embeddings.length; i++) diff = Math.max(diff, Math.abs(a.embeddings[i] - b.embeddings[i]));
    assert.ok(diff > 0.1, "the spelled caption encodes differently");
  } finally {
    plain.dispose();
    spelled.dispose();
  }
});

test("T5 encoder wordTokens: each word's token positions, in order, spelled words letter by letter, cut at maxLength", async () => {
  const enc = await T5TextEncoder.load(tinyT5, { maxLength: 8, spellCapitals: true });
  try {
    const words = (p: string) => enc.wordTokens(p).map((ps) => ps.map((i) => enc.tokenize(p).ids[i]));
    // "▁ c a t" would take positions 4-7, but 8 tokens keep </s> last: position 7 is cut.
    assert.deepEqual(enc.wordTokens("a sign that says CAT"), [[0], [1], [2], [3], [4, 5, 6]]);
    assert.deepEqual(words("a sign that says CAT").flat(), enc.tokenize("a sign that says CAT").ids.slice(0, 7));
    const long = await T5TextEncoder.load(tinyT5, { maxLength: 32, spellCapitals: true });
    try {
      for (const p of ["a sign that says CAT", "a sun, a red apple and a cat", "a picture of a brown block below a brown star"]) {
        const spans = long.wordTokens(p), ids = long.tokenize(p).ids;
        assert.equal(spans.length, p.split(" ").length, p);
        assert.deepEqual(spans.flat(), Array.from({ length: ids.length - 1 }, (_, i) => i), `${p}: every token but </s>, once, in order`);
        // Every word has tokens of its own (T5 pieces start at words).
        p.split(" ").forEach((w, i) => assert.ok(spans[i].length >= 1, `${p}: "${w}" has no tokens`));
      }
      assert.deepEqual(long.wordTokens("a sign that says CAT")[4], [4, 5, 6, 7]); // "▁ c a t"
    } finally {
      long.dispose();
    }
  } finally {
    enc.dispose();
  }
});
