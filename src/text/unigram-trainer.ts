// Trains a SentencePiece-style Unigram vocabulary (Kudo 2018) and writes it as a Hugging Face tokenizer.json that
// unigram.ts reads: seed with frequent substrings, re-estimate piece log-probabilities by Viterbi (hard EM) over
// the word types, and prune the pieces whose removal costs the corpus least, until the target size is reached.
import { ValueError } from "../util/errors.js";

export interface UnigramTrainOptions {
  /** Total ids: <pad> </s> <unk>, 256 byte pieces, learned pieces and `sentinels` <extra_id_N> tokens. */
  vocabSize: number;
  /** <extra_id_0> ... kept at the end of the vocabulary, as T5 does. */
  sentinels?: number;
  /** Words that must become single pieces ("▁red"), e.g. the caption vocabulary. */
  requiredWords?: readonly string[];
  maxPieceChars?: number;
  /** Characters seen fewer times than this are left to byte fallback. */
  minCharCount?: number;
}

/** The number of <extra_id_N> sentinels our tokenizers end with (T5's 100 would crowd a small vocabulary). */
export const defaultSentinels = 32;
const defaults = { sentinels: defaultSentinels, requiredWords: [] as readonly string[], maxPieceChars: 12, minCharCount: 20 };
export const space = "\u2581";

/** The normalizer and pre-tokenizer the trained tokenizer.json declares; training sees text through them. */
export function normalizeForTraining(text: string): string {
  return text.normalize("NFKC").toLowerCase();
}

/** Word types with counts, as the Metaspace pre-tokenizer cuts them (every word starts with ▁). */
export function countWords(lines: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) {
    for (const w of normalizeForTraining(line).split(/\s+/)) if (w !== "") counts.set(space + w, (counts.get(space + w) ?? 0) + 1);
  }
  return counts;
}

/** Best segmentation of `word` under `logp` (pieces missing from it unusable); returns pieces, or null. */
function viterbi(word: string[], logp: Map<string, number>, maxLen: number, skip?: string): { pieces: string[]; score: number } | null {
  const n = word.length;
  const best = new Float64Array(n + 1).fill(-Infinity);
  const from = new Int32Array(n + 1).fill(-1);
  best[0] = 0;
  for (let s = 0; s < n; s++) {
    if (best[s] === -Infinity) continue;
    let sub = "";
    for (let e = s + 1; e <= Math.min(n, s + maxLen); e++) {
      sub += word[e - 1];
      if (sub === skip) continue;
      const lp = logp.get(sub);
      if (lp === undefined) continue;
      if (best[s] + lp > best[e]) [best[e], from[e]] = [best[s] + lp, s];
    }
  }
  if (best[n] === -Infinity) return null;
  const pieces: string[] = [];
  for (let e = n; e > 0; e = from[e]) pieces.push(word.slice(from[e], e).join(""));
  return { pieces: pieces.reverse(), score: best[n] };
}

/** One hard-EM step: piece counts from the Viterbi segmentation of every word type. */
function expect(words: [string[], number][], logp: Map<string, number>, maxLen: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [w, c] of words) {
    const seg = viterbi(w, logp, maxLen);
    if (seg) for (const p of seg.pieces) counts.set(p, (counts.get(p) ?? 0) + c);
  }
  return counts;
}

function toLogProbs(counts: Map<string, number>, keep: Set<string>): Map<string, number> {
  let total = 0;
  for (const c of counts.values()) total += c;
  const logp = new Map<string, number>();
  for (const [p, c] of counts) if (c > 0) logp.set(p, Math.log(c / total));
  for (const p of keep) if (!logp.has(p)) logp.set(p, Math.log(0.5 / total)); // chars and required words never drop out
  return logp;
}

/** Learned pieces with their log-probabilities, best first (specials, bytes and sentinels not included). */
export function trainUnigramPieces(wordCounts: Map<string, number>, options: UnigramTrainOptions): [string, number][] {
  const o = { ...defaults, ...options };
  const target = o.vocabSize - 3 - 256 - o.sentinels;
  if (!Number.isInteger(o.vocabSize) || target < 64) throw new ValueError(`unigram trainer vocabSize: expected an integer >= ${3 + 256 + o.sentinels + 64}, got ${o.vocabSize}`);
  const words: [string[], number][] = [...wordCounts].map(([w, c]) => [[...w], c]);
  const charCounts = new Map<string, number>();
  for (const [w, c] of words) for (const ch of w) charCounts.set(ch, (charCounts.get(ch) ?? 0) + c);
  const chars = new Set([...charCounts].filter(([, c]) => c >= o.minCharCount).map(([ch]) => ch));
  const required = new Set(o.requiredWords.map((w) => space + normalizeForTraining(w)));
  const keep = new Set([...chars, ...required]);
  // Seed: every substring (up to maxPieceChars) scored by frequency x length, the best 8x target.
  const sub = new Map<string, number>();
  for (const [w, c] of words) {
    for (let s = 0; s < w.length; s++) {
      let piece = w[s];
      for (let e = s + 2; e <= Math.min(w.length, s + o.maxPieceChars); e++) {
        piece += w[e - 1];
        sub.set(piece, (sub.get(piece) ?? 0) + c);
      }
    }
  }
  const seeds = [...sub].filter(([p]) => [...p].every((ch) => chars.has(ch))).sort((a, b) => b[1] * [...b[0]].length - a[1] * [...a[0]].length).slice(0, target * 8);
  let counts = new Map<string, number>([...seeds, ...[...keep].map((p) => [p, sub.get(p) ?? charCounts.get(p) ?? 1] as [string, number])]);
  let logp = toLogProbs(counts, keep);
  for (;;) {
    for (let i = 0; i < 2; i++) {
      counts = expect(words, logp, o.maxPieceChars);
      logp = toLogProbs(counts, keep);
    }
    if (logp.size <= target) break;
    // Loss of removing a piece: its count x (its log-prob - the best log-prob of its string without it).
    const loss: [string, number][] = [];
    for (const [p, lp] of logp) {
      if (keep.has(p)) continue;
      const alt = viterbi([...p], logp, o.maxPieceChars, p);
      const c = counts.get(p) ?? 0;
      loss.push([p, alt ? c * (lp - alt.score) : Infinity]);
    }
    loss.sort((a, b) => a[1] - b[1]);
    const remove = Math.min(loss.length, Math.max(logp.size - target, 0), Math.max(1, Math.floor(logp.size * 0.2)));
    if (remove === 0) break; // only characters and required words are left
    for (let i = 0; i < remove; i++) logp.delete(loss[i][0]);
  }
  return [...logp].sort((a, b) => b[1] - a[1]);
}

/** A Hugging Face tokenizer.json (T5 layout: <pad> 0, </s> 1, <unk> 2, sentinels last) for the trained pieces. */
export function unigramTokenizerJson(pieces: [string, number][], sentinels = defaults.sentinels): Record<string, unknown> {
  const bytes = Array.from({ length: 256 }, (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0] as [string, number]);
  const base: [string, number][] = [["<pad>", 0], ["</s>", 0], ["<unk>", 0], ...bytes, ...pieces];
  const vocab: [string, number][] = [...base, ...Array.from({ length: sentinels }, (_, i) => [`<extra_id_${sentinels - 1 - i}>`, 0] as [string, number])];
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const added = [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>"), ...Array.from({ length: sentinels }, (_, i) => special(base.length + i, `<extra_id_${sentinels - 1 - i}>`))];
  const metaspace = { type: "Metaspace", replacement: space, prepend_scheme: "always", split: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Lowercase" }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "WhitespaceSplit" }, metaspace] },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }, { Sequence: { id: "B", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
    decoder: { type: "Sequence", decoders: [{ type: "ByteFallback" }, metaspace] },
    model: { type: "Unigram", unk_id: 2, vocab, byte_fallback: true },
  };
}
