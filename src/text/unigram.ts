// SentencePiece Unigram tokenization from a Hugging Face tokenizer.json, as the tokenizers library runs it:
// added tokens split out first, then normalizer, pre-tokenizer (Metaspace "▁"), Viterbi over the scored vocab
// (unknown chars cost min score - 10, fused into one <unk>, or <0xXX> bytes with byte_fallback), then the
// TemplateProcessing post-processor (T5: `$A </s>`).
import { buildDecoder, buildNormalizer, buildPreTokenizer, type Decoder, type Normalizer, type PreTokenizer } from "./tokenizer-json.js";
import { TokenizerError, sha256, type Tokenizer } from "./tokenizer.js";

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
/** tokenizers' penalty on an unknown char relative to the lowest piece score. */
const unkPenalty = 10;

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

export class UnigramTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  private readonly pieceIds = new Map<string, number>();
  private readonly maxPieceChars: number;
  private readonly minScore: number;
  private readonly added: AddedToken[];
  private readonly specialIds: Set<number>;

  private constructor(
    readonly id: string,
    private readonly pieces: readonly string[],
    private readonly scores: Float64Array,
    private readonly unkId: number | null,
    private readonly byteFallback: boolean,
    added: AddedToken[],
    private readonly normalizer: Normalizer,
    private readonly preTokenizer: PreTokenizer,
    private readonly decoder: Decoder,
    /** Ids the post-processor puts around the sequence ("$A" is where the text goes). */
    private readonly template: readonly (number | "A")[],
  ) {
    pieces.forEach((p, i) => this.pieceIds.set(p, i));
    this.maxPieceChars = Math.max(1, ...pieces.map((p) => [...p].length));
    this.minScore = scores.reduce((m, s) => Math.min(m, s), Infinity);
    // Longest first, so the leftmost-longest match wins where added tokens overlap.
    this.added = [...added].sort((a, b) => b.content.length - a.content.length);
    this.specialIds = new Set(added.filter((a) => a.special).map((a) => a.id));
    this.vocabSize = Math.max(pieces.length, ...added.map((a) => a.id + 1));
    this.padId = this.idOf("<pad>") ?? 0;
    this.eosId = this.idOf("</s>") ?? 1;
  }

  /** Parses tokenizer.json text; `where` (its path) prefixes every error. */
  static fromJson(text: string, where = "tokenizer.json"): UnigramTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TokenizerError(`${where}: not valid JSON (${(e as Error).message}); restore it from the original model`);
    }
    if (!isObj(json) || !isObj(json.model)) {
      throw new TokenizerError(`${where}: field "model" expected an object; this is not a Hugging Face tokenizer.json`);
    }
    const model = json.model;
    if (model.type !== "Unigram") {
      throw new TokenizerError(`${where}: field "model.type" expected "Unigram" (SentencePiece, as T5 / FLAN-T5 / mT5 use), got ${JSON.stringify(model.type)}; `
        + "this tokenizer belongs to another model family (BPE: GPT-2 / CLIP / Llama; WordPiece: BERT): use the tokenizer.json that ships with the T5 checkpoint");
    }
    const vocab = model.vocab;
    if (!Array.isArray(vocab) || vocab.length === 0) throw new TokenizerError(`${where}: field "model.vocab" expected a non-empty list of [piece, score]`);
    const pieces: string[] = [];
    const scores = new Float64Array(vocab.length);
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "number" || !Number.isFinite(entry[1])) {
        throw new TokenizerError(`${where}: field "model.vocab[${i}]" expected [piece, score], got ${JSON.stringify(entry)?.slice(0, 80)}`);
      }
      pieces.push(entry[0]);
      scores[i] = entry[1];
    });
    const unk = model.unk_id ?? null;
    if (unk !== null && !(Number.isInteger(unk) && (unk as number) >= 0 && (unk as number) < pieces.length)) {
      throw new TokenizerError(`${where}: field "model.unk_id" expected null or an index into model.vocab (0..${pieces.length - 1}), got ${JSON.stringify(unk)}`);
    }
    const added = parseAdded(json.added_tokens, where);
    const byId = new Map<string, number>([...pieces.map((p, i) => [p, i] as [string, number]), ...added.map((a) => [a.content, a.id] as [string, number])]);
    const tok = new UnigramTokenizer(
      `unigram/1;${sha256(text)}`, pieces, scores, unk as number | null, model.byte_fallback === true, added,
      buildNormalizer(json.normalizer, where), buildPreTokenizer(json.pre_tokenizer, where), buildDecoder(json.decoder, where),
      parseTemplate(json.post_processor, byId, where),
    );
    return tok;
  }

  /** The id of a piece (or added token), if the vocabulary has it. */
  idOf(token: string): number | undefined {
    return this.added.find((a) => a.content === token)?.id ?? this.pieceIds.get(token);
  }

  encode(text: string, addSpecialTokens = true): number[] {
    const ids: number[] = [];
    let first = true;
    for (const seg of this.splitAdded(text)) {
      if (typeof seg === "number") ids.push(seg);
      else for (const piece of this.preTokenizer(this.normalizer(seg), first)) ids.push(...this.viterbi(piece));
      first = false;
    }
    return addSpecialTokens ? this.addSpecialTokens(ids) : ids;
  }

  /** Puts the post-processor's special tokens (T5: </s> last) around ids. */
  addSpecialTokens(ids: readonly number[]): number[] {
    return this.template.flatMap((t) => (t === "A" ? ids : [t]));
  }

  /** Splits raw text on added tokens (leftmost, longest), honouring their lstrip / rstrip. */
  private splitAdded(text: string): (string | number)[] {
    const out: (string | number)[] = [];
    let rest = text;
    while (rest.length > 0) {
      let best: { at: number; tok: AddedToken } | null = null;
      for (const tok of this.added) {
        if (tok.content === "") continue;
        const at = rest.indexOf(tok.content);
        if (at >= 0 && (!best || at < best.at)) best = { at, tok };
      }
      if (!best) break;
      let before = rest.slice(0, best.at);
      let after = rest.slice(best.at + best.tok.content.length);
      if (best.tok.lstrip) before = before.replace(/\p{White_Space}+$/u, "");
      if (best.tok.rstrip) after = after.replace(/^\p{White_Space}+/u, "");
      if (before !== "") out.push(before);
      out.push(best.tok.id);
      rest = after;
    }
    if (rest !== "") out.push(rest);
    return out;
  }

  /** The best segmentation of one pre-token under the Unigram scores (tokenizers' encode_optimized). */
  private viterbi(piece: string): number[] {
    const chars = [...piece];
    const n = chars.length;
    const best = new Float64Array(n + 1).fill(-Infinity);
    const from = new Int32Array(n + 1).fill(-1);
    const tokenAt = new Int32Array(n + 1).fill(-1);
    best[0] = 0;
    const unkScore = this.minScore - unkPenalty;
    for (let s = 0; s < n; s++) {
      if (from[s] < 0 && s > 0) continue;
      let single = false;
      let sub = "";
      for (let e = s + 1; e <= Math.min(n, s + this.maxPieceChars); e++) {
        sub += chars[e - 1];
        const id = this.pieceIds.get(sub);
        if (id === undefined) continue;
        const score = best[s] + this.scores[id];
        if (from[e] < 0 || score > best[e]) [best[e], from[e], tokenAt[e]] = [score, s, id];
        if (e === s + 1) single = true;
      }
      if (!single) {
        const score = best[s] + unkScore;
        if (from[s + 1] < 0 || score > best[s + 1]) [best[s + 1], from[s + 1], tokenAt[s + 1]] = [score, s, -2];
      }
    }
    const spans: { start: number; end: number; id: number }[] = [];
    for (let e = n; e > 0; e = from[e]) spans.push({ start: from[e], end: e, id: tokenAt[e] });
    spans.reverse();
    return this.resolveUnknown(spans.map((sp) => ({ text: chars.slice(sp.start, sp.end).join(""), id: sp.id })));
  }

  /** Unknown spans (-2): consecutive ones fused into one <unk>, or spelled as <0xXX> byte pieces. */
  private resolveUnknown(spans: { text: string; id: number }[]): number[] {
    const ids: number[] = [];
    for (let i = 0; i < spans.length; i++) {
      if (spans[i].id !== -2) {
        ids.push(spans[i].id);
        continue;
      }
      let text = spans[i].text;
      while (i + 1 < spans.length && spans[i + 1].id === -2) text += spans[++i].text;
      const bytes = this.byteFallback ? [...Buffer.from(text, "utf8")].map((b) => this.pieceIds.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)) : [];
      if (bytes.length > 0 && bytes.every((b) => b !== undefined)) ids.push(...(bytes as number[]));
      else if (this.unkId !== null) ids.push(this.unkId);
      else throw new TokenizerError(`tokenizer: ${JSON.stringify(text)} is not in the vocabulary and model.unk_id is null; use a tokenizer with an <unk> piece or byte_fallback`);
    }
    return ids;
  }

  tokens(ids: readonly number[]): string[] {
    return ids.map((id) => this.added.find((a) => a.id === id)?.content ?? this.pieces[id] ?? `<id ${id}?>`);
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    const kept = skipSpecialTokens ? ids.filter((id) => !this.specialIds.has(id)) : ids;
    return this.decoder(this.tokens(kept)).join("");
  }
}

function parseAdded(v: unknown, where: string): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new TokenizerError(`${where}: field "added_tokens" expected a list`);
  return v.map((a, i) => {
    if (!isObj(a) || !Number.isInteger(a.id) || (a.id as number) < 0 || typeof a.content !== "string") {
      throw new TokenizerError(`${where}: field "added_tokens[${i}]" expected {id, content, ...}, got ${JSON.stringify(a)?.slice(0, 80)}`);
    }
    return { id: a.id as number, content: a.content, special: a.special === true, normalized: a.normalized === true, lstrip: a.lstrip === true, rstrip: a.rstrip === true };
  });
}

/** TemplateProcessing's single-sequence template as ids and "A"; none means no special tokens. */
function parseTemplate(v: unknown, byId: Map<string, number>, where: string): (number | "A")[] {
  if (v === null || v === undefined) return ["A"];
  if (!isObj(v) || v.type !== "TemplateProcessing" || !Array.isArray(v.single)) {
    throw new TokenizerError(`${where}: field "post_processor" expected TemplateProcessing (T5 appends </s>), got ${JSON.stringify(isObj(v) ? v.type : v)}; `
      + "use the tokenizer.json that ships with the T5 checkpoint");
  }
  const specials = isObj(v.special_tokens) ? v.special_tokens : {};
  return v.single.flatMap((item: unknown, i: number): (number | "A")[] => {
    if (isObj(item) && isObj(item.Sequence)) return ["A"];
    if (isObj(item) && isObj(item.SpecialToken) && typeof item.SpecialToken.id === "string") {
      const name = item.SpecialToken.id;
      const entry = specials[name];
      const ids = isObj(entry) && Array.isArray(entry.ids) ? entry.ids : byId.has(name) ? [byId.get(name)] : null;
      if (!ids || !ids.every((x) => Number.isInteger(x))) {
        throw new TokenizerError(`${where}: field "post_processor.single[${i}]" names special token ${JSON.stringify(name)}, which has no id in post_processor.special_tokens or the vocab`);
      }
      return ids as number[];
    }
    throw new TokenizerError(`${where}: field "post_processor.single[${i}]" expected {"Sequence": ...} or {"SpecialToken": ...}, got ${JSON.stringify(item)}`);
  });
}
