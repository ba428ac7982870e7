// The text-encoder interface every cascade uses (DESIGN.md section 3): prompts in, an embedding
// sequence [B, L, D] and its 0/1 mask [B, L] out. T5 (issue 4) and the word stand-in implement it.
export interface EncodedText {
  embeddings: Float32Array; // [B, L, D], zero at padded positions
  mask: Float32Array; // [B, L]
  batch: number;
  length: number;
  dim: number;
  /** Prompts that were cut to maxLength (a warning is the caller's to show). */
  truncated: boolean[];
}

export interface TextEncoder {
  /** A stable identity of the encoder and its weights: the embedding cache keys on it. */
  readonly id: string;
  readonly dim: number;
  readonly maxLength: number;
  encode(prompts: readonly string[]): Promise<EncodedText>;
  /**
   * For each space-separated word of a prompt, the positions of its tokens in the encoded sequence (tokens cut
   * at maxLength left out): which tokens a grounding loss (src/train/stage-trainer.ts) supervises. Optional.
   */
  wordTokens?(prompt: string): number[][];
}
