// The embedding cache: misses then hits with identical (fp16-rounded) values, keys per encoder id, and a
// corrupt or foreign file rejected and recomputed rather than trusted or crashed on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WordEncoder } from "./word-encoder.js";
import { cachedEncoder } from "./embedding-cache.js";
import type { EncodedText, TextEncoder } from "./encoder.js";

/** Counts the prompts that reach the inner encoder. */
function counting(inner: TextEncoder): TextEncoder & { seen: string[] } {
  const seen: string[] = [];
  return { id: inner.id, dim: inner.dim, maxLength: inner.maxLength, seen, encode: (p: readonly string[]) => (seen.push(...p), inner.encode(p)) };
}

const fresh = () => mkdtempSync(join(tmpdir(), "emb-cache-"));

test("miss then hit: same values (fp16-rounded), mask and truncation; the inner encoder runs once per prompt", async () => {
  const dir = fresh();
  try {
    const inner = counting(new WordEncoder(8, 4));
    const cache = cachedEncoder(inner, dir);
    const prompts = ["a red square", "one two three four five", "a red square"];
    const first = await cache.encode(prompts);
    assert.deepEqual(inner.seen, ["a red square", "one two three four five"]);
    assert.deepEqual(cache.stats, { hits: 0, misses: 2, rejected: 0 });
    const second = await cache.encode(prompts);
    assert.deepEqual(inner.seen.length, 2, "all hits");
    assert.deepEqual(cache.stats, { hits: 3, misses: 2, rejected: 0 });
    assert.deepEqual(second, first);
    assert.deepEqual(first.truncated, [false, true, false]);
    const direct: EncodedText = await new WordEncoder(8, 4).encode(prompts);
    assert.deepEqual(first.mask, direct.mask);
    for (let i = 0; i < direct.embeddings.length; i++) {
      assert.ok(Math.abs(first.embeddings[i] - direct.embeddings[i]) <= 1e-3 * Math.max(1, Math.abs(direct.embeddings[i])), "fp16 rounding only");
    }
    // A second wrapper over the same folder (another process, say) hits too.
    const again = cachedEncoder(counting(new WordEncoder(8, 4)), dir);
    assert.deepEqual(await again.encode(["a red square"]), await cache.encode(["a red square"]));
    assert.equal(again.stats.hits, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("entries are keyed by encoder id: another encoder never reads them", async () => {
  const dir = fresh();
  try {
    const a = cachedEncoder(new WordEncoder(8, 4, 0), dir);
    const b = cachedEncoder(new WordEncoder(8, 4, 1), dir);
    await a.encode(["blue"]);
    assert.notEqual(a.pathOf("blue"), b.pathOf("blue"));
    await b.encode(["blue"]);
    assert.equal(b.stats.misses, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("corrupt, truncated or foreign cache files are rejected and recomputed, not crashed on", async () => {
  const dir = fresh();
  try {
    const warnings: string[] = [];
    const inner = counting(new WordEncoder(8, 4));
    const cache = cachedEncoder(inner, dir, (m) => warnings.push(m));
    const good = await cache.encode(["green circle"]);
    const path = cache.pathOf("green circle");
    const bytes = readFileSync(path);
    const damage: [string, () => void][] = [
      ["truncated", () => truncateSync(path, bytes.length - 3)],
      ["garbage", () => writeFileSync(path, "not a safetensors file at all")],
      ["flipped data byte", () => {
        const b = Buffer.from(bytes);
        b[b.length - 10] ^= 0xff;
        writeFileSync(path, b);
      }],
      ["another prompt's file", () => writeFileSync(path, readFileSync(cache.pathOf("other")))],
    ];
    await cache.encode(["other"]);
    for (const [what, hurt] of damage) {
      hurt();
      const before = inner.seen.length;
      assert.deepEqual(await cache.encode(["green circle"]), good, what);
      assert.equal(inner.seen.length, before + 1, `${what}: recomputed`);
      assert.deepEqual(readFileSync(path), bytes, `${what}: rewritten`);
    }
    assert.equal(cache.stats.rejected, 4);
    assert.ok(warnings.every((w) => w.includes(path) && /corrupt/.test(w)));
    assert.ok(readdirSync(join(path, "..")).every((f) => !f.endsWith(".tmp")), "no temp files left behind");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
