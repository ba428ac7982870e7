// A tokenizer that spells words written in capitals: "a sign that says CAT" reaches the encoder as
// "▁a ▁sign ▁that ▁says ▁ c a t" instead of "... ▁cat" (the animal's piece). A lowercasing SentencePiece
// vocabulary holds common words whole, so without this nothing in the text embedding says how a sign's
// word is spelled, and an image model cannot write words it has not memorised. The letters use the
// vocabulary's word-continuation pieces, which is how the tokenizer itself splits a word it does not know
// ("xqz" -> "▁ x q z"), so the encoder has seen such sequences in pretraining. Only words of two or more
// capitals A-Z are spelled; everything else is tokenized as before.
import { createHash } from "node:crypto";
import type { Tokenizer } from "./tokenizer.js";
import type { UnigramTokenizer } from "./unigram.js";

const capitals = /\b[A-Z]{2,}\b/g;

export class SpellingTokenizer implements Tokenizer {
  readonly id: string;
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  private readonly wordStart: number | undefined;
  private readonly letters = new Map<string, number>();

  constructor(readonly inner: UnigramTokenizer) {
    this.id = createHash("sha256").update(`spell-capitals/1;${inner.id}`).digest("hex");
    [this.vocabSize, this.padId, this.eosId] = [inner.vocabSize, inner.padId, inner.eosId];
    this.wordStart = inner.idOf("▁");
    for (const c of "abcdefghijklmnopqrstuvwxyz") {
      const id = inner.idOf(c);
      if (id !== undefined) this.letters.set(c, id);
    }
  }

  /** The ids of one capitalised word as "▁" + one piece per letter, or null where the vocabulary lacks one. */
  private spell(word: string): number[] | null {
    const ids = [...word.toLowerCase()].map((c) => this.letters.get(c));
    return this.wordStart === undefined || ids.some((id) => id === undefined) ? null : [this.wordStart, ...(ids as number[])];
  }

  encode(text: string, addSpecialTokens = true): number[] {
    const ids: number[] = [];
    let at = 0;
    const plain = (segment: string) => {
      if (segment.trim() !== "") ids.push(...this.inner.encode(segment.trim(), false));
    };
    for (const m of text.matchAll(capitals)) {
      plain(text.slice(at, m.index));
      ids.push(...(this.spell(m[0]) ?? this.inner.encode(m[0], false)));
      at = (m.index ?? 0) + m[0].length;
    }
    plain(text.slice(at));
    return addSpecialTokens ? this.inner.addSpecialTokens(ids) : ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.inner.decode(ids, skipSpecialTokens);
  }

  tokens(ids: readonly number[]): string[] {
    return this.inner.tokens(ids);
  }
}
