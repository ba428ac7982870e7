// `imagen pretrain-text --out DIR [--seed N] ...`: the whole tiny-T5 recipe from one command (see
// src/text/pretrain.ts). Events go to stdout as JSON lines (and to --log FILE), so a run can be plotted.
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Command } from "commander";
import { ValueError } from "../util/errors.js";
import { pretrainDefaults, pretrainText, type PretrainOptions } from "../text/pretrain.js";

type Flags = Record<string, string | boolean | undefined> & { out: string; log?: string; probe?: boolean };

const numeric: [flag: string, key: keyof PretrainOptions, help: string][] = [
  ["seed", "seed", "seed of the tokenizer, init, data order and masks"],
  ["steps", "steps", "optimizer steps"],
  ["batch", "batch", "rows per step"],
  ["length", "length", "tokens per packed row, </s> included"],
  ["lr", "lr", "peak learning rate (AdamW, linear warmup, cosine to 10%)"],
  ["warmup-steps", "warmupSteps", "warmup steps"],
  ["vocab-size", "vocabSize", "tokenizer size (specials, 256 bytes, pieces, 32 sentinels)"],
  ["d-model", "dModel", "width"],
  ["num-layers", "numLayers", "encoder blocks"],
  ["num-heads", "numHeads", "attention heads"],
  ["d-kv", "dKv", "width per head"],
  ["d-ff", "dFf", "feed-forward width"],
  ["eval-every", "evalEvery", "steps between held-out evaluations (each also saves the folder)"],
  ["eval-batches", "evalBatches", "held-out batches per evaluation"],
  ["noise-density", "noiseDensity", "share of tokens corrupted"],
  ["mean-span-length", "meanSpanLength", "mean corrupted span length (1: BERT-style token masking)"],
  ["keep-prob", "keepProb", "share of corrupted tokens left unchanged but still predicted (BERT: 0.1)"],
  ["random-prob", "randomProb", "share of corrupted tokens replaced by a random piece (BERT: 0.1)"],
  ["bias-scale", "biasScale", "learning-rate multiplier of the relative position bias"],
  ["max-minutes", "maxMinutes", "stop and save after this many minutes (0: no limit)"],
  ["threads", "threads", "ORT intra-op threads (default: all cores)"],
];
const camel = (flag: string) => flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

export function parsePretrainFlags(f: Flags): Partial<PretrainOptions> & { outDir: string } {
  const o: Partial<PretrainOptions> & { outDir: string } = { outDir: f.out };
  for (const [flag, key] of numeric) {
    const v = f[camel(flag)];
    if (v === undefined || typeof v === "boolean") continue;
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n)) throw new ValueError(`--${flag}: expected a number, got "${v}"`);
    (o as Record<string, unknown>)[key] = n;
  }
  if (typeof f.ffProj === "string") o.feedForwardProj = f.ffProj;
  if (f.probe === false) o.probe = false;
  if (typeof f.init === "string") o.init = f.init as PretrainOptions["init"];
  if (typeof f.objective === "string") o.objective = f.objective as PretrainOptions["objective"];
  return o;
}

export function registerPretrainText(program: Command): void {
  const cmd = program
    .command("pretrain-text")
    .description("pretrain a tiny T5 encoder (tokenizer + masked-span or span-corruption objective) on WordNet + Brown; writes a Hugging Face T5 folder")
    .requiredOption("--out <dir>", "output folder (config.json, model.safetensors, tokenizer.json)")
    .option("--log <file>", "also append the JSON-lines log to this file")
    .option("--objective <name>", `masked-span (encoder only, corrupted tokens predicted in place) or span-corruption (T5's encoder-decoder objective; the folder keeps the decoder) (default ${pretrainDefaults.objective})`)
    .option("--ff-proj <kind>", `feed_forward_proj (default ${pretrainDefaults.feedForwardProj})`)
    .option("--init <scheme>", `weight init: small (GPT-2 style, for AdamW) or t5 (HF's, made for Adafactor) (default ${pretrainDefaults.init})`)
    .option("--no-probe", "skip the linear probes (colour / count / relation) before and after training");
  for (const [flag, key, help] of numeric) cmd.option(`--${flag} <n>`, `${help} (default ${String(pretrainDefaults[key as keyof typeof pretrainDefaults] ?? "auto")})`);
  cmd.action(async (flags: Flags) => {
    const options = parsePretrainFlags(flags);
    if (flags.log) {
      mkdirSync(dirname(flags.log), { recursive: true });
      writeFileSync(flags.log, "");
    }
    await pretrainText(options, (e) => {
      const line = JSON.stringify(e);
      process.stdout.write(line + "\n");
      if (flags.log) appendFileSync(flags.log, line + "\n");
    });
  });
}
