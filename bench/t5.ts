// T5 encoder benchmarks (issue 4): throughput (tokens/s) of a random T5-small-shaped encoder in imagen-ts against
// the PyTorch re-implementation in shared/reference/t5_golden.py (driven by bench/t5_torch.py), in interleaved
// rounds; and the memory (RSS) of a T5-XL-shaped encoder loaded from a random fp16 checkpoint, in a child process.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from "node:fs";
import { freemem, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Rng } from "../src/util/rng.js";
import { input } from "../src/graph/build.js";
import { bindParameters } from "../src/nn/module.js";
import { compileGraph } from "../src/runtime/session.js";
import { bucketTable } from "../src/text/t5-buckets.js";
import { resolveT5Config, t5ConfigJson, type T5Config } from "../src/text/t5-config.js";
import { T5EncoderModel } from "../src/text/t5.js";
import { T5TextEncoder } from "../src/text/t5-encoder.js";
import { cleanRounds, interleavedRounds, median, type TorchRun } from "./measure.js";
import { repoRoot, spawnMeasured, torchUnavailable } from "./parity.js";
import type { BenchResult } from "./result.js";

export type T5BenchResult = BenchResult;

export interface T5BenchOptions {
  batch?: number;
  length?: number;
  rounds?: number;
  iters?: number;
  /** Skip the T5-XL memory check (it writes a 2.4 GB checkpoint). */
  skipXl?: boolean;
  log?: (s: string) => void;
}

const systemPython = "/usr/bin/python3";
const small = { vocab_size: 32128, d_model: 512, d_kv: 64, d_ff: 2048, num_layers: 6, num_heads: 8, feed_forward_proj: "relu" };
export const xl = { vocab_size: 32128, d_model: 2048, d_kv: 64, d_ff: 5120, num_layers: 24, num_heads: 32, feed_forward_proj: "gated-gelu" };

function torchT5Round(batch: number, length: number, iters: number): TorchRun {
  const r = spawnSync(systemPython, [join(repoRoot, "bench", "t5_torch.py"), "--batch", String(batch), "--length", String(length), "--iters", String(iters)], {
    encoding: "utf8", maxBuffer: 16 << 20,
  });
  if (r.status !== 0) throw new Error(`t5_torch.py failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as TorchRun;
}

/** Our forward of the random T5-small encoder (weights as constants, as T5TextEncoder compiles them). */
async function compileSmall(config: T5Config) {
  const model = new T5EncoderModel(config, new Rng(0));
  const ids = input("ids", ["B", "L"], "int64");
  const mask = input("mask", ["B", "L"]);
  const buckets = input("buckets", ["L", "L"], "int64");
  const bound = bindParameters(model, "constant");
  try {
    return await compileGraph({ out: model.call({ ids, mask, buckets }) }, [ids, mask, buckets], {}, true);
  } finally {
    bound.release();
  }
}

/**
 * Writes a random fp16 HF T5 folder (config.json, 1 GiB shards and model.safetensors.index.json) without holding
 * it in memory. Shards, because loadSafetensors reads a file whole and Node refuses files over 2 GiB.
 */
export function writeRandomFp16Folder(dir: string, config: T5Config): number {
  const model = new T5EncoderModel(config); // zero-size placeholders: only names and shapes are read
  const shards: { name: string; shape: number[]; bytes: number }[][] = [[]];
  let inShard = 0, total = 0;
  for (const [name, p] of model.namedParameters()) {
    const bytes = p.size * 2;
    if (inShard + bytes > 2 ** 30 && inShard > 0) [inShard] = [0, shards.push([])];
    shards[shards.length - 1].push({ name, shape: [...p.shape], bytes });
    inShard += bytes;
    total += bytes;
  }
  // fp16 values in +-[2^-8, 2^-5): small random weights; a 16 MB chunk reused (values do not matter for memory).
  const chunk = Buffer.alloc(16 << 20);
  const words = new Rng(0).words(chunk.length / 4);
  for (let i = 0; i < chunk.length / 2; i++) {
    const w = words[i >> 1] >>> ((i & 1) * 16);
    chunk.writeUInt16LE((w & 0x8000) | ((7 + ((w >> 10) & 3)) << 10) | (w & 0x3ff), i * 2);
  }
  const weightMap: Record<string, string> = {};
  shards.forEach((entries, i) => {
    const file = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    let offset = 0;
    for (const e of entries) {
      header[e.name] = { dtype: "F16", shape: e.shape, data_offsets: [offset, offset + e.bytes] };
      weightMap[e.name] = file;
      offset += e.bytes;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - (json.length % 8)) % 8);
    const fd = openSync(join(dir, file), "w");
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeSync(fd, len);
      writeSync(fd, Buffer.from(json));
      for (let left = offset; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
    } finally {
      closeSync(fd);
    }
  });
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  writeFileSync(join(dir, "config.json"), JSON.stringify(t5ConfigJson(config)));
  return total;
}

interface XlChildReport { rssAfterLoadMb: number; maxRssMb: number; loadSeconds: number; runSeconds: number; params: number }

async function xlChild(dir: string): Promise<void> {
  let t0 = performance.now();
  const enc = await T5TextEncoder.load(dir, { maxLength: 16 });
  const loadSeconds = (performance.now() - t0) / 1000;
  const rssAfterLoadMb = process.memoryUsage().rss / 2 ** 20;
  t0 = performance.now();
  await enc.run([[37, 423, 9, 1]]);
  const runSeconds = (performance.now() - t0) / 1000;
  const report: XlChildReport = { rssAfterLoadMb, maxRssMb: process.resourceUsage().maxRSS / 1024, loadSeconds, runSeconds, params: enc.model.parameterCount() };
  enc.dispose();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

async function xlMemory(log: (s: string) => void): Promise<T5BenchResult[]> {
  const config = resolveT5Config(xl);
  const params = new T5EncoderModel(config).parameterCount();
  const fileBytes = params * 2;
  const tmp = tmpdir();
  const freeDisk = statfsSync(tmp).bavail * statfsSync(tmp).bsize;
  const needMem = params * 4 * 2.5;
  if (freeDisk < fileBytes * 1.5 || freemem() < needMem) {
    log(`T5-XL memory: skipped (needs ${(fileBytes * 1.5 / 2 ** 30).toFixed(1)} GiB free disk in ${tmp} and ${(needMem / 2 ** 30).toFixed(1)} GiB free memory; `
      + `have ${(freeDisk / 2 ** 30).toFixed(1)} and ${(freemem() / 2 ** 30).toFixed(1)})`);
    return [];
  }
  const dir = mkdtempSync(join(tmp, "imagen-t5xl-"));
  try {
    const t0 = performance.now();
    writeRandomFp16Folder(dir, config);
    log(`T5-XL-shaped encoder (d_model 2048, 24 layers, 32 heads, d_ff 5120, gated-gelu): ${(params / 1e6).toFixed(0)}M params, `
      + `random fp16 checkpoint ${(fileBytes / 2 ** 30).toFixed(2)} GiB (1 GiB shards) written in ${((performance.now() - t0) / 1000).toFixed(1)} s; loading in a child process`);
    const r = spawnMeasured(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--xl-child", dir], { cwd: repoRoot, encoding: "utf8", maxBuffer: 16 << 20 });
    if (r.status !== 0) {
      log(`T5-XL memory: the child failed (status ${r.status}, signal ${r.signal}): ${r.stderr.slice(-500)}`);
      return [];
    }
    const rep = JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as XlChildReport;
    const fp32Mb = (params * 4) / 2 ** 20;
    log(`  RSS after load ${rep.rssAfterLoadMb.toFixed(0)} MB (load ${rep.loadSeconds.toFixed(1)} s); peak RSS ${rep.maxRssMb.toFixed(0)} MB after one 4-token run `
      + `(${rep.runSeconds.toFixed(1)} s); fp32 weights alone are ${fp32Mb.toFixed(0)} MB`);
    return [
      { name: "t5.xlParams", unit: "count", value: rep.params },
      { name: "t5.xlRssAfterLoad", unit: "MB", value: rep.rssAfterLoadMb, baseline: fp32Mb, ratio: rep.rssAfterLoadMb / fp32Mb, against: "fp32 weights" },
      { name: "t5.xlPeakRss", unit: "MB", value: rep.maxRssMb, baseline: fp32Mb, ratio: rep.maxRssMb / fp32Mb, against: "fp32 weights" },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs both T5 benchmarks; results in bench/run.ts's format. Degrades to ours-only without torch. */
export async function benchT5(options: T5BenchOptions = {}): Promise<T5BenchResult[]> {
  const { batch = 8, length = 64, rounds = 3, iters = 5, skipXl = false, log = console.log } = options;
  const results: T5BenchResult[] = [];
  const torchWhy = torchUnavailable();
  const config = resolveT5Config(small);
  log(`T5-small-shaped random encoder (d_model 512, 6 layers, 8 heads, d_ff 2048, relu), batch ${batch} x ${length} tokens`);
  if (torchWhy) log(`PyTorch baseline unavailable (${torchWhy}): ours only`);
  const graph = await compileSmall(config);
  try {
    const rng = new Rng(1);
    const ids = BigInt64Array.from(Array.from({ length: batch * length }, () => BigInt(3 + rng.int(config.vocabSize - 3))));
    const feeds = {
      ids: { data: ids, shape: [batch, length] }, mask: { data: new Float32Array(batch * length).fill(1), shape: [batch, length] },
      buckets: { data: bucketTable(length, config.numBuckets, config.maxDistance), shape: [length, length] },
    };
    const run = () => graph.run(feeds as never);
    await run();
    await run();
    const r = await interleavedRounds(rounds, iters, torchWhy ? null : () => torchT5Round(batch, length, iters), run, log);
    const c = cleanRounds(r, log);
    const tokens = batch * length;
    const value = tokens / median(c.ours);
    if (c.torch.length > 0) {
      const baseline = tokens / median(c.torch);
      results.push({ name: "t5.smallTokensPerSec", unit: "tok/s", value, baseline, ratio: value / baseline });
    } else {
      results.push({ name: "t5.smallTokensPerSec", unit: "tok/s", value });
    }
    results.push({ name: "t5.contendedRounds", unit: "count", value: c.contended });
  } finally {
    graph.dispose();
  }
  if (!skipXl) results.push(...await xlMemory(log));
  return results;
}

if (process.argv[2] === "--xl-child" && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await xlChild(process.argv[3]);
}
