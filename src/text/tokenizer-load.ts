// Picks the tokenizer of a model folder: tokenizer.json (SentencePiece Unigram, as T5 / FLAN-T5 / mT5 ship it),
// else ByT5's byte tokenizer when tokenizer_config.json says ByT5Tokenizer (google/byt5-* ship no tokenizer.json).
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { ByteTokenizer, TokenizerError, type Tokenizer } from "./tokenizer.js";
import { UnigramTokenizer } from "./unigram.js";

async function readOptional(path: string): Promise<string | null> {
  return access(path).then(() => readFile(path, "utf8"), () => null);
}

function tokenizerClass(text: string | null, path: string): unknown {
  if (text === null) return undefined;
  try {
    return (JSON.parse(text) as { tokenizer_class?: unknown }).tokenizer_class;
  } catch {
    throw new TokenizerError(`${path} is not valid JSON; restore it from the original model`);
  }
}

export type TokenizerChoice = "auto" | "bytes";

/**
 * The folder's tokenizer: "bytes" forces ByT5's; "auto" reads tokenizer.json, else uses bytes when
 * tokenizer_config.json or config.json says ByT5Tokenizer; null when there is no tokenizer to be found.
 */
export async function loadTokenizer(dir: string, vocabSize: number, choice: TokenizerChoice = "auto"): Promise<Tokenizer | null> {
  if (choice === "bytes") return new ByteTokenizer(vocabSize);
  if (choice !== "auto") throw new TokenizerError(`tokenizer: expected "auto" or "bytes", got ${JSON.stringify(choice)}`);
  const path = join(dir, "tokenizer.json");
  const text = await readOptional(path);
  if (text !== null) {
    const tok = UnigramTokenizer.fromJson(text, path);
    if (tok.vocabSize > vocabSize) {
      throw new TokenizerError(`${path}: ${tok.vocabSize} tokens, but config.json vocab_size is ${vocabSize}; `
        + "the tokenizer belongs to another model: use the tokenizer.json that came with these weights");
    }
    return tok;
  }
  for (const name of ["tokenizer_config.json", "config.json"]) {
    const file = join(dir, name);
    if (tokenizerClass(await readOptional(file), file) === "ByT5Tokenizer") return new ByteTokenizer(vocabSize);
  }
  return null;
}
