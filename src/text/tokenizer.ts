// Tokenizers for T5-family encoders: the Tokenizer contract and ByT5's byte tokenizer (UTF-8 byte + 3, </s> = 1).
// tokenizer-load.ts picks one for a model folder; unigram.ts reads SentencePiece Unigram tokenizer.json files.
import { createHash } from "node:crypto";
import { ImagenError } from "../util/errors.js";

/** A tokenizer.json (or tokenizer folder) that cannot be used; the message names the field and the fix. */
export class TokenizerError extends ImagenError {}

export interface Tokenizer {
  /** A stable hash of everything that decides the ids. */
  readonly id: string;
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  /** Token ids, with the post-processor's special tokens (T5: </s> last) unless told not to add them. */
  encode(text: string, addSpecialTokens?: boolean): number[];
  /** Text from ids; special tokens (<pad>, </s>, ...) are dropped unless told otherwise. */
  decode(ids: readonly number[], skipSpecialTokens?: boolean): string;
  /** The token strings of the ids (for printing). */
  tokens(ids: readonly number[]): string[];
}

/** ByT5: ids 0/1/2 are <pad>, </s>, <unk>; each UTF-8 byte b is b + 3; vocab 384 leaves 125 sentinels. */
export class ByteTokenizer implements Tokenizer {
  readonly id = "byt5-bytes/1";
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  constructor(readonly vocabSize = 384) {}

  encode(text: string, addSpecialTokens = true): number[] {
    const ids = [...Buffer.from(text, "utf8")].map((b) => b + 3);
    return addSpecialTokens ? [...ids, this.eosId] : ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    const parts: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length > 0) parts.push(Buffer.from(bytes).toString("utf8"));
      bytes = [];
    };
    for (const id of ids) {
      if (id >= 3 && id < 259) {
        bytes.push(id - 3);
        continue;
      }
      flush();
      if (!skipSpecialTokens) parts.push(this.tokens([id])[0]);
    }
    flush();
    return parts.join("");
  }

  tokens(ids: readonly number[]): string[] {
    const names = ["<pad>", "</s>", "<unk>"];
    return ids.map((id) => (id < 3 ? names[id] : id < 259 ? `<0x${(id - 3).toString(16).toUpperCase().padStart(2, "0")}>` : `<extra_id_${this.vocabSize - 1 - id}>`));
  }
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
