// `npm run bench`: the reference U-Net of shared/reference/torch_unet.py in imagen-ts against PyTorch on this
// machine: parity, forward and training-step throughput, engine overhead over raw ORT, training peak memory.
// Usage: npm run bench -- [--preset tiny|b64|b128] [--batch 8] [--rounds 3] [--iters N] [--only fwd,train,overhead,memory,t5,sampling]
import { nativeStatus } from "../src/runtime/native.js";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compileRefUNet, countForwardFlops, isPreset, presets, RefUNet, type RefUNetGraph } from "./ref-unet.js";
import {
  dumpReference, loadReferenceIo, loadReferenceWeights, relL2, repoRoot, torchUnavailable,
} from "./parity.js";
import {
  cleanRounds, createTrainStep, engineOverhead, interleavedRounds, median, randomBatch, torchRound, type TorchRun,
} from "./measure.js";
import { forwardActivationBytes, measureTrainMemory } from "./memory.js";
import { benchT5 } from "./t5.js";
import { machinePeak } from "./peak.js";
import type { BenchResult } from "./result.js";
import { benchSampling } from "./sampling.js";

const parityTolerance = 1e-5;
const sections = ["fwd", "train", "overhead", "memory", "t5", "sampling"] as const;
type Section = (typeof sections)[number];

type Result = BenchResult;

function options() {
  const { values } = parseArgs({
    options: {
      preset: { type: "string", default: "b64" },
      batch: { type: "string", default: "8" },
      rounds: { type: "string", default: "3" },
      iters: { type: "string" },
      only: { type: "string" },
    },
  });
  const preset = values.preset;
  if (!isPreset(preset)) throw new Error(`--preset: expected one of ${Object.keys(presets).join(", ")}, got ${preset}`);
  const int = (what: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${what}: expected a positive integer, got ${v}`);
    return n;
  };
  const only = values.only ? values.only.split(",") : [...sections];
  for (const s of only) {
    if (!(sections as readonly string[]).includes(s)) throw new Error(`--only: expected some of ${sections.join(", ")}, got ${s}`);
  }
  const iters = values.iters === undefined ? null : int("iters", values.iters);
  return {
    preset, batch: int("batch", values.batch), rounds: int("rounds", values.rounds),
    fwdIters: iters ?? 5, trainIters: iters ?? 3, only: new Set(only as Section[]),
  };
}

const log = (s: string) => console.log(s);
const fmt = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(3) : v.toExponential(2));

function printTable(results: readonly Result[]): void {
  const rows = [["name", "value", "unit", "baseline", "ratio", "baseline is"],
    ...results.map((r) => [r.name, fmt(r.value), r.unit, r.baseline === undefined ? "" : fmt(r.baseline),
      r.ratio === undefined ? "" : fmt(r.ratio), r.baseline === undefined ? "" : (r.against ?? "PyTorch")])];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) log(r.map((cell, c) => (c === 0 || c >= 2 && c !== 3 && c !== 4 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  "));
}

/** Throughput figures of one section: images/s, GFLOP/s and share of peak, ours against torch. */
function throughput(prefix: string, batch: number, gflopPerBatch: number, ours: number[], torch: number[], peakGflops: number): Result[] {
  const o = median(ours);
  const out: Result[] = [];
  const with3 = (name: string, unit: string, f: (s: number) => number): Result => {
    const value = f(o);
    if (torch.length === 0) return { name, unit, value };
    const baseline = f(median(torch));
    return { name, unit, value, baseline, ratio: value / baseline };
  };
  out.push(with3(`${prefix}.imagesPerSec`, "img/s", (s) => batch / s));
  out.push(with3(`${prefix}.gflopPerSec`, "GFLOP/s", (s) => gflopPerBatch / s));
  out.push(with3(`${prefix}.peakShare`, "% of peak", (s) => (100 * gflopPerBatch) / s / peakGflops));
  return out;
}

async function main(): Promise<void> {
  const o = options();
  const cfg = presets[o.preset];
  const torchWhy = torchUnavailable();
  const results: Result[] = [];
  const peak = machinePeak(availableParallelism(), join(repoRoot, "bench", ".cache"), join(repoRoot, "bench"));
  log(`imagen-ts U-Net benchmark: preset ${o.preset}, batch ${o.batch}, ${o.rounds} rounds; ${availableParallelism()} cores `
    + `(${cpus()[0]?.model ?? "unknown CPU"}); fp32 peak ${peak.gflops.toFixed(0)} GFLOP/s (${peak.source})`);
  results.push({ name: "machine.peakGflops", unit: "GFLOP/s", value: peak.gflops });
  const nat = nativeStatus();
  log(`ONNX Runtime binding: ${nat.active ? `imagen-ts native (${nat.detail})` : `onnxruntime-node (native binding: ${nat.detail})`}`);
  if (torchWhy) log(`PyTorch baseline unavailable (${torchWhy}): ours only, no parity check`);

  const dir = join(repoRoot, "bench", ".cache", o.preset);
  const model = new RefUNet(cfg);
  if (!torchWhy) {
    mkdirSync(dir, { recursive: true });
    dumpReference(o.preset, dir, 2);
    await loadReferenceWeights(model, dir);
  }
  const flops = countForwardFlops(model);
  const fwdGflop = flops.total / 1e9;
  log(`params ${model.parameterCount().toLocaleString("en-US")}; fwd GFLOP/image ${fwdGflop.toFixed(3)} `
    + `(conv ${(flops.conv / 1e9).toFixed(3)} + linear ${(flops.linear / 1e9).toFixed(3)} + attention ${(flops.attnMatmul / 1e9).toFixed(3)})`);
  results.push({ name: "model.params", unit: "count", value: model.parameterCount() });
  results.push({ name: "model.fwdGflopPerImage", unit: "GFLOP", value: fwdGflop });
  const data = randomBatch(cfg, o.batch);
  const torchRuns: Record<"infer" | "train", TorchRun[]> = { infer: [], train: [] };

  if (o.only.has("fwd") || o.only.has("overhead")) {
    const t0 = performance.now();
    const graph: RefUNetGraph = await compileRefUNet(model, { batch: "B" });
    const compileS = (performance.now() - t0) / 1000;
    log(`forward graph: ${graph.model.nodeCount} ONNX nodes, ${(graph.model.bytes.length / 1e6).toFixed(1)} MB, compiled in ${compileS.toFixed(2)} s`);
    results.push({ name: "fwd.compileSeconds", unit: "s", value: compileS });
    if (!torchWhy) {
      const io = await loadReferenceIo(dir);
      const need = (k: string) => io.get(k) as NonNullable<ReturnType<typeof io.get>>;
      const eps = (await graph.run({ x: need("x"), t: need("t"), text: need("text") })).eps;
      const err = relL2(eps.data as Float32Array, need("eps").data);
      log(`parity with torch_unet.py (batch ${need("x").shape[0]}): rel L2 ${err.toExponential(2)} `
        + `${err < parityTolerance ? "PASS" : "FAIL"} (< ${parityTolerance})`);
      results.push({ name: "parity.relL2", unit: "rel L2", value: err, baseline: parityTolerance, ratio: err / parityTolerance, against: "tolerance" });
    }
    const feeds = { x: data.x, t: data.t, text: data.text };
    if (o.only.has("fwd")) {
      log(`forward, batch ${o.batch}: ${o.rounds} clean rounds x ${o.fwdIters} iterations (ours warmed up twice, then once per round, torch once per process; `
        + `contended rounds are repeated, ${2 * o.rounds} rounds at most)`);
      await graph.run(feeds);
      await graph.run(feeds);
      const r = await interleavedRounds(o.rounds, o.fwdIters,
        torchWhy ? null : () => torchRound(o.preset, "infer", o.batch, o.fwdIters), () => graph.run(feeds), log);
      torchRuns.infer = r.torchRuns;
      const c = cleanRounds(r, log);
      results.push(...throughput("fwd", o.batch, fwdGflop * o.batch, c.ours, c.torch, peak.gflops));
      results.push({ name: "fwd.contendedRounds", unit: "count", value: c.contended });
    }
    if (o.only.has("overhead")) {
      log(`engine overhead: CompiledGraph.run vs two raw sessions of its binding (${nativeStatus().active ? "native" : "onnxruntime-node"}) on the same bytes, options and feeds, in rotation`);
      const ov = await engineOverhead(graph, feeds, Math.max(8, 3 * o.rounds), 20);
      const ms = (s: number) => (s * 1e3).toFixed(1);
      log(`  ${ov.cycles} rotations: median ours ${ms(ov.oursMedian)} ms, raw ${ms(ov.rawMedian)} ms -> overhead ${(100 * ov.overhead).toFixed(2)}% `
        + `(raw vs raw: ${(100 * ov.control).toFixed(2)}%, the noise floor); best ours ${ms(ov.oursMin)} ms, raw ${ms(ov.rawMin)} ms`);
      results.push({ name: "overhead.percent", unit: "%", value: 100 * ov.overhead, baseline: 5, ratio: (100 * ov.overhead) / 5, against: "target" });
      results.push({ name: "overhead.medianRunMs", unit: "ms", value: ov.oursMedian * 1e3, baseline: ov.rawMedian * 1e3, ratio: ov.oursMedian / ov.rawMedian, against: "raw ORT" });
      results.push({ name: "overhead.noiseFloorPercent", unit: "%", value: 100 * ov.control });
    }
    graph.dispose();
  }

  if (o.only.has("train")) {
    const { step, compileSeconds } = await createTrainStep(model, o.batch);
    log(`training step (MSE, AdamW lr 1e-4 wd 0.01), batch ${o.batch}: compiled in ${compileSeconds.toFixed(2)} s; `
      + `${o.rounds} clean rounds x ${o.trainIters} iterations (ours warmed up twice, then twice per round, torch twice per process)`);
    results.push({ name: "train.compileSeconds", unit: "s", value: compileSeconds });
    const losses = [(await step.step(data)).loss, (await step.step(data)).loss];
    const r = await interleavedRounds(o.rounds, o.trainIters,
      torchWhy ? null : () => torchRound(o.preset, "train", o.batch, o.trainIters), async () => losses.push((await step.step(data)).loss), log, 2);
    log(`  our loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)} over ${losses.length} steps`);
    torchRuns.train = r.torchRuns;
    const c = cleanRounds(r, log);
    results.push(...throughput("train", o.batch, 3 * fwdGflop * o.batch, c.ours, c.torch, peak.gflops));
    results.push({ name: "train.contendedRounds", unit: "count", value: c.contended });
    step.dispose();
  }

  if (o.only.has("memory")) {
    log(`training peak memory: a child process compiles the step and runs 2 steps at batch ${o.batch}`);
    const rep = measureTrainMemory(o.preset, o.batch, 2);
    const params = model.parameterCount();
    const stateBytes = 4 * params * 4;
    const actBytes = forwardActivationBytes(model, o.batch);
    const mb = (b: number) => b / 2 ** 20;
    log(`  child max RSS ${mb(rep.maxRssBytes).toFixed(0)} MB (compile ${rep.compileSeconds.toFixed(1)} s, steps ${rep.stepSeconds.map((s) => s.toFixed(2)).join(", ")} s)`);
    log(`  estimate ${mb(stateBytes + actBytes).toFixed(0)} MB = params + 2 Adam moments + a params copy `
      + `(4 x ${params.toLocaleString("en-US")} x 4 B = ${mb(stateBytes).toFixed(0)} MB) + activations `
      + `(every forward intermediate at batch ${o.batch}, reshapes excluded: ${mb(actBytes).toFixed(0)} MB)`);
    const torchRss = torchRuns.train.map((t) => t.peak_rss_mb);
    results.push({
      name: "memory.trainPeakRss", unit: "MB", value: mb(rep.maxRssBytes),
      ...(torchRss.length > 0 ? { baseline: median(torchRss), ratio: mb(rep.maxRssBytes) / median(torchRss) } : {}),
    });
    results.push({
      name: "memory.trainPeakRssVsEstimate", unit: "MB", value: mb(rep.maxRssBytes), baseline: mb(stateBytes + actBytes),
      ratio: rep.maxRssBytes / (stateBytes + actBytes), against: "estimate",
    });
  }

  if (o.only.has("t5")) results.push(...await benchT5({ rounds: o.rounds, log }));
  if (o.only.has("sampling")) results.push(...await benchSampling({ rounds: o.rounds, log }));

  const outDir = join(repoRoot, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  const json = results.map(({ against: _, ...r }) => r);
  writeFileSync(join(outDir, "latest.json"), `${JSON.stringify(json, null, 1)}\n`);
  log("");
  const torchVersion = torchRuns.infer[0]?.torch ?? torchRuns.train[0]?.torch;
  log(`results (ratio = value / baseline${torchVersion ? `; PyTorch ${torchVersion} ran in this same session` : ""}); written to bench/results/latest.json`);
  printTable(results);
}

await main();
