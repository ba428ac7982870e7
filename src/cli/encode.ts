// `imagen encode --encoder DIR (--text "..." | --ids 1,2,3)`: runs a T5-family encoder folder and prints token
// ids, shapes and summary statistics; with --json one object holding the full last hidden state, for checks
// against other implementations (the batch is padded to its longest sequence, as HF's padding=True does).
import type { Command } from "commander";
import { ValueError } from "../util/errors.js";
import { T5TextEncoder } from "../text/t5-encoder.js";

export interface EncodeFlags {
  encoder: string;
  text?: string[];
  ids?: string[];
  maxLength: string;
  tokenizer: string;
  json?: boolean;
}

export interface EncodeResult {
  ids: number[][];
  mask: number[][];
  shape: [number, number, number];
  data: Float32Array;
  tokens: string[][] | null;
  truncated: boolean[];
}

function parseIds(v: string): number[] {
  const parts = v.split(",").map((s) => s.trim());
  const ids = parts.map(Number);
  if (parts.some((s) => s === "") || ids.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new ValueError(`--ids: expected comma-separated non-negative integers (e.g. 37,423,1), got "${v}"`);
  }
  return ids;
}

export async function runEncode(f: EncodeFlags): Promise<EncodeResult> {
  const texts = f.text ?? [], idRows = (f.ids ?? []).map(parseIds);
  if ((texts.length > 0) === (idRows.length > 0)) throw new ValueError("encode: expected --text or --ids (either may repeat), not both and not neither");
  const maxLength = Number(f.maxLength);
  if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 65536) throw new ValueError(`--max-length: expected an integer from 1 to 65536, got "${f.maxLength}"`);
  for (const t of texts) if (t.length > 100_000) throw new ValueError(`--text: ${t.length} characters is too long (at most 100000); shorten it`);
  if (f.tokenizer !== "auto" && f.tokenizer !== "bytes") throw new ValueError(`--tokenizer: expected auto or bytes, got "${f.tokenizer}"`);
  const encoder = await T5TextEncoder.load(f.encoder, { maxLength, tokenizer: f.tokenizer });
  try {
    const toks = texts.length > 0 ? texts.map((t) => encoder.tokenize(t)) : idRows.map((r) => ({ ids: r.slice(0, maxLength), truncated: r.length > maxLength }));
    const out = await encoder.run(toks.map((t) => t.ids));
    const { batch: B, length: L, dim: D } = out;
    return {
      ids: toks.map((t) => t.ids),
      mask: Array.from({ length: B }, (_, b) => Array.from(out.mask.subarray(b * L, (b + 1) * L))),
      shape: [B, L, D],
      data: out.hidden,
      tokens: encoder.tokenizer ? toks.map((t) => encoder.tokenizer!.tokens(t.ids)) : null,
      truncated: toks.map((t) => t.truncated),
    };
  } finally {
    encoder.dispose();
  }
}

/** Count, mean, std, rms, min and max over the positions where the mask is 1. */
export function validStats(r: EncodeResult): Record<string, number> {
  const [B, L, D] = r.shape;
  let n = 0, sum = 0, sq = 0, min = Infinity, max = -Infinity;
  for (let b = 0; b < B; b++) for (let t = 0; t < L; t++) {
    if (r.mask[b][t] !== 1) continue;
    for (let d = 0; d < D; d++) {
      const v = r.data[(b * L + t) * D + d];
      n++;
      sum += v;
      sq += v * v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  const mean = sum / n;
  return { count: n, mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), rms: Math.sqrt(sq / n), min, max };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerEncode(program: Command): void {
  program
    .command("encode")
    .description("run a T5-family text encoder folder (HF layout) and print ids, shapes and statistics")
    .requiredOption("--encoder <dir>", "folder with config.json, model.safetensors (or a shard index) and tokenizer.json")
    .option("--text <text>", "a prompt to encode (repeat for a batch)", collect)
    .option("--ids <list>", "token ids, comma-separated, </s> included (repeat for a batch)", collect)
    .option("--max-length <n>", "tokens per sequence, </s> included; longer input is cut", "128")
    .option("--tokenizer <kind>", "auto (tokenizer.json, or ByT5 bytes when the folder says ByT5Tokenizer) or bytes", "auto")
    .option("--json", "print one JSON object {ids, mask, shape, data} with the full last hidden state")
    .action(async (flags: EncodeFlags) => {
      const r = await runEncode(flags);
      r.truncated.forEach((t, b) => t && process.stderr.write(`warning: sequence ${b} was cut to --max-length ${flags.maxLength} tokens\n`));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ ids: r.ids, mask: r.mask, shape: r.shape, data: Array.from(r.data) })}\n`);
        return;
      }
      r.ids.forEach((ids, b) => {
        console.log(`sequence ${b}: ${ids.length} tokens${r.truncated[b] ? " (truncated)" : ""}`);
        console.log(`  ids    ${ids.join(" ")}`);
        if (r.tokens) console.log(`  tokens ${r.tokens[b].map((t) => JSON.stringify(t)).join(" ")}`);
      });
      console.log(`last_hidden_state shape [${r.shape.join(", ")}] (batch, longest length, d_model)`);
      const s = validStats(r);
      console.log(`stats over valid positions: ${Object.entries(s).map(([k, v]) => `${k} ${k === "count" ? v : v.toPrecision(6)}`).join(", ")}`);
    });
}
