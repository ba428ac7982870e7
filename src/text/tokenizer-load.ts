// Picks the tokenizer of a model folder: tokenizer.json (SentencePiece Unigram, as T5 / FLAN-T5 / mT5 ship it),
// else ByT5's byte tokenizer when tokenizer_config.json says ByT5Tokenizer (google/byt5-* ship no tokenizer.json).
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { ByteTokenizer, TokenizerError, type Tokenizer } from "./tokenizer.js";
import { UnigramTokenizer } from "./unigram.js";

async function readOptional(path: string): Promise<string | null> {
  return access(path).then(() => readFile(path, "utf8"), () => null);
}

/** The folder's tokenizer, or null when it has neither tokenizer.json nor a ByT5 tokenizer_config.json. */
export async function loadTokenizer(dir: string, vocabSize: number): Promise<Tokenizer | null> {
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
  const cfgText = await readOptional(join(dir, "tokenizer_config.json"));
  if (cfgText !== null) {
    let cls: unknown;
    try {
      cls = (JSON.parse(cfgText) as { tokenizer_class?: unknown }).tokenizer_class;
    } catch {
      throw new TokenizerError(`${join(dir, "tokenizer_config.json")} is not valid JSON; restore it from the original model`);
    }
    if (cls === "ByT5Tokenizer") return new ByteTokenizer(vocabSize);
  }
  return null;
}

