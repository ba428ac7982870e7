// SentencePiece's "precompiled_charsmap" normalizer as Hugging Face tokenizers applies it: a darts-clone
// double-array trie over UTF-8 keys whose values point into a blob of NUL-terminated replacement strings.
// Layout: u32 LE trie size in bytes, the trie's u32 units, then the blob.
import { TokenizerError } from "./tokenizer.js";

const utf8 = new globalThis.TextEncoder();
const utf8Decode = new globalThis.TextDecoder("utf-8");

export class PrecompiledCharsmap {
  private readonly units: Uint32Array;
  private readonly blob: Uint8Array;
  private readonly segmenter = new Intl.Segmenter("und", { granularity: "grapheme" });

  constructor(bytes: Uint8Array, where: string) {
    const bad = (why: string) => new TokenizerError(`${where}: normalizer "precompiled_charsmap" ${why}; restore tokenizer.json from the original model`);
    if (bytes.length < 4) throw bad("is shorter than its 4-byte header");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes % 4 !== 0 || 4 + trieBytes > bytes.length || trieBytes === 0) throw bad(`declares a trie of ${trieBytes} bytes in ${bytes.length}`);
    this.units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.blob = bytes.subarray(4 + trieBytes);
  }

  /** The replacement for `chunk` when a prefix of it is a key (the first, shortest match, as HF does). */
  private transform(chunk: string): string | null {
    const key = utf8.encode(chunk);
    const u = this.units;
    const offset = (unit: number) => (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
    let pos = offset(u[0]);
    for (const c of key) {
      if (c === 0) return null;
      pos ^= c;
      const unit = u[pos];
      if (unit === undefined || (unit & 0x800000ff) >>> 0 !== c) return null;
      pos ^= offset(unit);
      if ((unit >>> 8) & 1) {
        const value = u[pos] & 0x7fffffff;
        let end = value;
        while (end < this.blob.length && this.blob[end] !== 0) end++;
        return utf8Decode.decode(this.blob.subarray(value, end));
      }
    }
    return null;
  }

  /** Grapheme by grapheme (whole graphemes under 6 bytes first), then char by char. */
  normalize(text: string): string {
    let out = "";
    for (const { segment } of this.segmenter.segment(text)) {
      if (utf8.encode(segment).length < 6) {
        const t = this.transform(segment);
        if (t !== null) {
          out += t;
          continue;
        }
      }
      for (const ch of segment) out += this.transform(ch) ?? ch;
    }
    return out;
  }
}
