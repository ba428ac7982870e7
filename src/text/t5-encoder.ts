// A frozen T5 encoder behind the TextEncoder interface: tokenize (with </s>), truncate to maxLength,
// run the compiled graph at the batch's longest length, and return [B, maxLength, D] zero-padded with its mask.
import { createHash } from "node:crypto";
import { ValueError } from "../util/errors.js";
import { bindParameters } from "../nn/module.js";
import { compileGraph, type CompiledGraph, type SessionOptions } from "../runtime/session.js";
import { input } from "../graph/build.js";
import type { EncodedText, TextEncoder } from "./encoder.js";
import { bucketTable } from "./t5-buckets.js";
import { loadT5Checkpoint } from "./t5-checkpoint.js";
import type { T5EncoderModel } from "./t5.js";
import type { Tokenizer } from "./tokenizer.js";
import { UnigramTokenizer } from "./unigram.js";
import { SpellingTokenizer } from "./spelling.js";
import { loadTokenizer, type TokenizerChoice } from "./tokenizer-load.js";

export interface T5EncoderOptions {
  /** Tokens per prompt, </s> included (Imagen: 128; DeepFloyd IF: 77). */
  maxLength?: number;
  session?: SessionOptions;
  /**
   * "constant" bakes the weights into the ONNX graph (ORT pre-packs them: fastest); "input" feeds them at
   * every run, which lifts protobuf's 2 GB limit on one model (T5-XL and up). "auto" picks by size.
   */
  weights?: "auto" | "constant" | "input";
  /** "bytes" forces ByT5's byte tokenizer (for ByT5 folders that name no tokenizer); default "auto". */
  tokenizer?: TokenizerChoice;
  /** Spell words in capitals letter by letter (src/text/spelling.ts; SentencePiece tokenizers only). */
  spellCapitals?: boolean;
}

const defaults = { maxLength: 128, weights: "auto" as const };
/** Above this many weight bytes "auto" feeds weights as inputs (an ONNX protobuf must stay under 2 GB). */
const constantLimitBytes = 1.5 * 2 ** 30;

/** The output of one run over token ids: [B, L, D] at the batch's own length L. */
export interface T5Output {
  hidden: Float32Array;
  mask: Float32Array;
  batch: number;
  length: number;
  dim: number;
}

export class T5TextEncoder implements TextEncoder {
  readonly id: string;
  readonly dim: number;
  private graph: Promise<CompiledGraph> | null = null;
  private readonly weightFeeds: Record<string, { data: Float32Array; shape: readonly number[] }> = {};

  private constructor(
    readonly model: T5EncoderModel,
    readonly tokenizer: Tokenizer | null,
    readonly maxLength: number,
    weightsHash: string,
    private readonly options: T5EncoderOptions,
    private readonly dir: string,
  ) {
    this.dim = model.config.dModel;
    this.id = createHash("sha256").update(`t5-encoder/1;${weightsHash};${tokenizer?.id ?? "no-tokenizer"};${maxLength}`).digest("hex");
  }

  /** Loads a Hugging Face T5 / ByT5 folder (see t5-checkpoint.ts and tokenizer.ts for what it reads). */
  static async load(dir: string, options: T5EncoderOptions = {}): Promise<T5TextEncoder> {
    const maxLength = options.maxLength ?? defaults.maxLength;
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 65536) {
      throw new ValueError(`T5 maxLength: expected an integer from 1 to 65536, got ${maxLength}`);
    }
    const { model, weightsHash } = await loadT5Checkpoint(dir);
    const loaded = await loadTokenizer(dir, model.config.vocabSize, options.tokenizer);
    // A byte tokenizer (ByT5) spells every word already.
    const tokenizer = options.spellCapitals && loaded instanceof UnigramTokenizer ? new SpellingTokenizer(loaded) : loaded;
    return new T5TextEncoder(model, tokenizer, maxLength, weightsHash, options, dir);
  }

  private compiled(): Promise<CompiledGraph> {
    this.graph ??= this.compile();
    return this.graph;
  }

  private async compile(): Promise<CompiledGraph> {
    const bytes = this.model.parameterCount() * 4;
    const mode = this.options.weights ?? defaults.weights;
    const asInputs = mode === "input" || (mode === "auto" && bytes > constantLimitBytes);
    const ids = input("ids", ["B", "L"], "int64");
    const mask = input("mask", ["B", "L"]);
    const buckets = input("buckets", ["L", "L"], "int64");
    const bound = bindParameters(this.model, asInputs ? "input" : "constant", "w.");
    try {
      if (asInputs) for (const [name, p] of this.model.namedParameters()) this.weightFeeds[`w.${name}`] = { data: p.data, shape: p.shape };
      const out = this.model.call({ ids, mask, buckets }); // [B, L, D]
      return await compileGraph({ out }, [ids, mask, buckets, ...bound.inputs], this.options.session, true);
    } finally {
      bound.release();
    }
  }

  /** Tokenizes one prompt: ids with </s>, cut to maxLength (keeping </s> last), and whether it was cut. */
  tokenize(prompt: string): { ids: number[]; truncated: boolean } {
    if (!this.tokenizer) {
      throw new ValueError(`T5 encoder: ${this.dir} has no tokenizer.json and names no ByT5Tokenizer; add the model's tokenizer.json, choose the byte tokenizer (ByT5), or pass token ids`);
    }
    const ids = this.tokenizer.encode(prompt);
    if (ids.length <= this.maxLength) return { ids, truncated: false };
    return { ids: [...ids.slice(0, this.maxLength - 1), ids[ids.length - 1]], truncated: true };
  }

  /** For each space-separated word, the positions of its tokens in `tokenize(prompt)` (before </s>, below maxLength). */
  wordTokens(prompt: string): number[][] {
    const words = prompt.split(" ");
    let done = 0;
    return words.map((_, i) => {
      const n = Math.max(done, this.tokenize(words.slice(0, i + 1).join(" ")).ids.length - 1);
      const mine = Array.from({ length: n - done }, (__, k) => done + k).filter((p) => p < this.maxLength - 1);
      done = n;
      return mine;
    });
  }

  /** Runs the encoder on token ids (each row as given, not truncated), right-padded to the longest row. */
  async run(rows: readonly (readonly number[])[]): Promise<T5Output> {
    if (rows.length === 0) throw new ValueError("T5 encoder: expected at least one sequence, got none");
    rows.forEach((r, b) => {
      if (r.length === 0) throw new ValueError(`T5 encoder: sequence ${b} is empty; every sequence needs at least one token (e.g. </s>)`);
    });
    const L = Math.max(...rows.map((r) => r.length));
    const ids = rows.map((r) => [...r, ...new Array<number>(L - r.length).fill(0)]);
    return this.runPadded(ids, rows.map((r) => ids[0].map((_, t) => (t < r.length ? 1 : 0))));
  }

  /** Runs an already padded batch: ids and 0/1 mask, both [B][L] (padding may sit on either side). */
  async runPadded(idRows: readonly (readonly number[])[], maskRows: readonly (readonly number[])[]): Promise<T5Output> {
    const B = idRows.length;
    const L = idRows[0]?.length ?? 0;
    const V = this.model.config.vocabSize;
    if (B === 0 || L === 0) throw new ValueError(`T5 encoder: expected a non-empty [B, L] batch, got [${B}, ${L}]`);
    const ids = new BigInt64Array(B * L);
    const mask = new Float32Array(B * L);
    for (let b = 0; b < B; b++) {
      if (idRows[b].length !== L || maskRows[b]?.length !== L) throw new ValueError(`T5 encoder: row ${b} of ids or mask does not have length ${L}; pad every row to the same length`);
      for (let t = 0; t < L; t++) {
        const id = idRows[b][t];
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new ValueError(`T5 encoder: sequence ${b} has token id ${id}; expected integers from 0 to ${V - 1} (vocab_size)`);
        ids[b * L + t] = BigInt(id);
        mask[b * L + t] = maskRows[b][t] ? 1 : 0;
      }
    }
    const buckets = bucketTable(L, this.model.config.numBuckets, this.model.config.maxDistance);
    const graph = await this.compiled();
    const out = await graph.run({
      ids: { data: ids, shape: [B, L] }, mask: { data: mask, shape: [B, L] }, buckets: { data: buckets, shape: [L, L] }, ...this.weightFeeds,
    } as never) as unknown as { data: Float32Array };
    return { hidden: out.data, mask, batch: B, length: L, dim: this.dim };
  }

  /** Token ids in, [B, maxLength, D] out: rows longer than maxLength are cut and reported. */
  async encodeIds(rows: readonly (readonly number[])[]): Promise<EncodedText> {
    const truncated = rows.map((r) => r.length > this.maxLength);
    const out = await this.run(rows.map((r) => r.slice(0, this.maxLength)));
    return padTo(out, this.maxLength, truncated);
  }

  async encode(prompts: readonly string[]): Promise<EncodedText> {
    const toks = prompts.map((p) => this.tokenize(p));
    const out = await this.run(toks.map((t) => t.ids));
    return padTo(out, this.maxLength, toks.map((t) => t.truncated));
  }

  dispose(): void {
    const g = this.graph;
    this.graph = null;
    void g?.then((x) => x.dispose(), () => undefined);
  }
}

/** Copies [B, L, D] into a zeroed [B, maxLength, D] (L <= maxLength). */
function padTo(o: T5Output, maxLength: number, truncated: boolean[]): EncodedText {
  const { batch: B, length: L, dim: D } = o;
  const embeddings = new Float32Array(B * maxLength * D);
  const mask = new Float32Array(B * maxLength);
  for (let b = 0; b < B; b++) {
    embeddings.set(o.hidden.subarray(b * L * D, (b + 1) * L * D), b * maxLength * D);
    mask.set(o.mask.subarray(b * L, (b + 1) * L), b * maxLength);
  }
  return { embeddings, mask, batch: B, length: maxLength, dim: D, truncated };
}
