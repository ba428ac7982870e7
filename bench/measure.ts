// Timing pieces of the U-Net benchmark: seeded batches, PyTorch rounds through torch_unet.py --json, our
// forward and training-step rounds, and the engine-overhead comparison against a raw ORT session.
import { availableParallelism } from "node:os";
import * as ort from "onnxruntime-node";
import { Rng } from "../src/util/rng.js";
import type { HostTensor } from "../src/runtime/host.js";
import { mean, square, sub } from "../src/graph/ops-basic.js";
import { TrainStep } from "../src/train/step.js";
import type { RefUNet, RefUNetConfig, RefUNetGraph } from "./ref-unet.js";
import { runTorch } from "./parity.js";
import { startLoadMeter, waitForQuiet } from "./machine-load.js";

export interface UNetBatch {
  x: HostTensor; // [B, 3, S, S]
  t: HostTensor; // [B]
  text: HostTensor; // [B, L, Dt]
  target: HostTensor; // [B, 3, S, S], the MSE target of the training step
}

/** A fixed random batch: x, text, target ~ N(0, 1), t ~ U[0, 1000), like torch_unet.py's inputs. */
export function randomBatch(cfg: RefUNetConfig, batch: number, seed = 0): UNetBatch {
  const rng = new Rng(seed).split("bench-batch");
  const s = cfg.imageSize;
  const img = () => ({ data: rng.normal(batch * cfg.inChannels * s * s), shape: [batch, cfg.inChannels, s, s] });
  return {
    x: img(),
    t: { data: Float32Array.from(rng.uniform(batch), (u) => u * 1000), shape: [batch] },
    text: { data: rng.normal(batch * cfg.textLen * cfg.textDim), shape: [batch, cfg.textLen, cfg.textDim] },
    target: img(),
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

/** What one torch_unet.py --json run reports (the fields used here). */
export interface TorchRun {
  times_s: number[];
  peak_rss_mb: number;
  fwd_gflop_per_image: number;
  blas: { matmul512_gflop_s: number; reference_blas_suspected: boolean };
  torch: string;
}

/** One PyTorch round: a fresh torch_unet.py process timing `iters` iterations after its own warm-up. */
export function torchRound(preset: string, mode: "infer" | "train", batch: number, iters: number): TorchRun {
  const out = runTorch(["--preset", preset, "--mode", mode, "--json", "--batch", String(batch), "--iters", String(iters)]);
  const line = out.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as TorchRun;
}

/** Seconds per call of `fn`, `iters` times. */
export async function timeCalls(fn: () => Promise<unknown>, iters: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    times.push(seconds(t0));
  }
  return times;
}

export interface Round {
  ours: number[]; // seconds per batch, every timed iteration
  torch: number[];
  /** Cores used by other processes during our part and during torch's part of the round. */
  oursLoad: number;
  torchLoad: number;
}

export interface RoundsResult {
  rounds: Round[];
  torchRuns: TorchRun[];
}

/** Others' load (cores) above which a round counts as contended. */
export const contendedLoad = 0.25;

/**
 * Interleaved rounds (torch round, ours round, ...) as the reference README asks: the machine is noisy, so
 * both engines see the same slow and fast spells. Before each round it waits up to `quietWaitS` for other
 * processes to go quiet, and it records their load during each half. `ours` must already be warm.
 */
export async function interleavedRounds(
  rounds: number, iters: number, torch: (() => TorchRun) | null, ours: () => Promise<unknown>, log: (s: string) => void,
  quietWaitS = 30,
): Promise<RoundsResult> {
  const res: RoundsResult = { rounds: [], torchRuns: [] };
  const fmtLoad = (l: number) => (Number.isNaN(l) ? "" : `  [others ${l.toFixed(2)} cores${l >= contendedLoad ? ", CONTENDED" : ""}]`);
  for (let r = 0; r < rounds; r++) {
    await waitForQuiet(quietWaitS, contendedLoad / 2);
    const round: Round = { ours: [], torch: [], oursLoad: 0, torchLoad: 0 };
    if (torch) {
      const stop = startLoadMeter();
      const run = torch();
      round.torchLoad = stop();
      res.torchRuns.push(run);
      round.torch = run.times_s;
      log(`  round ${r + 1}/${rounds} torch: ${run.times_s.map((v) => v.toFixed(3)).join(" ")} s${fmtLoad(round.torchLoad)}`);
    }
    const stop = startLoadMeter();
    round.ours = await timeCalls(ours, iters);
    round.oursLoad = stop();
    log(`  round ${r + 1}/${rounds} ours:  ${round.ours.map((v) => v.toFixed(3)).join(" ")} s${fmtLoad(round.oursLoad)}`);
    res.rounds.push(round);
  }
  return res;
}

/** The rounds to take medians over: the uncontended ones when there are any, else all (with a warning). */
export function cleanRounds(res: RoundsResult, log: (s: string) => void): { ours: number[]; torch: number[]; contended: number } {
  const clean = res.rounds.filter((r) => !(r.oursLoad >= contendedLoad) && !(r.torchLoad >= contendedLoad));
  const contended = res.rounds.length - clean.length;
  const use = clean.length > 0 ? clean : res.rounds;
  if (contended > 0) {
    log(clean.length > 0 ? `  medians over the ${clean.length} uncontended round(s); ${contended} dropped (other processes used >= ${contendedLoad} cores)`
      : `  WARNING: every round ran beside other processes (>= ${contendedLoad} cores); these figures are not reliable`);
  }
  return { ours: use.flatMap((r) => r.ours), torch: use.flatMap((r) => r.torch), contended };
}

/** Our training step on `model` (its parameters are updated in place): MSE to a fixed target, AdamW like torch_unet.py. */
export async function createTrainStep(model: RefUNet, batch: number) {
  // A static batch: ORT opens this ~20k-node graph several times faster than with a symbolic one.
  const specs = model.inputSpecs(batch);
  const t0 = performance.now();
  const step = await TrainStep.create({
    model,
    batch: { ...specs, target: { shape: specs.x.shape } },
    loss: ({ x, t, text, target }) => mean(square(sub(model.call(x, t, text), target))),
    optimizer: { lr: 1e-4, weightDecay: 0.01 },
  });
  return { step, compileSeconds: seconds(t0) };
}

/** The session options CompiledGraph uses by default (src/runtime/session.ts), for the raw-ORT comparison. */
export function defaultOrtOptions(): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ["cpu"], intraOpNumThreads: availableParallelism(), interOpNumThreads: 1,
    executionMode: "sequential", graphOptimizationLevel: "all",
  };
}

export interface OverheadResult {
  oursMin: number;
  rawMin: number;
  oursMedian: number;
  rawMedian: number;
  /** min(ours) / min(raw) - 1: noise on a shared machine only ever adds time, so the best runs compare cleanest. */
  overhead: number;
  /** Median over back-to-back pairs of ours / raw - 1, a second view of the same runs. */
  pairedMedian: number;
}

/** CompiledGraph.run against a raw ort.InferenceSession on the same ONNX bytes and feeds, alternating. */
export async function engineOverhead(graph: RefUNetGraph, feeds: Pick<UNetBatch, "x" | "t" | "text">, pairs: number): Promise<OverheadResult> {
  const raw = await ort.InferenceSession.create(graph.model.bytes, defaultOrtOptions());
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor("float32", t.data as Float32Array, [...t.shape]);
    const runOurs = () => graph.run(feeds);
    const runRaw = () => raw.run(ortFeeds);
    await runOurs();
    await runRaw();
    const ours: number[] = [];
    const rawTimes: number[] = [];
    const ratios: number[] = [];
    for (let i = 0; i < pairs; i++) {
      // Alternate which goes first, so neither always follows the other's cache state.
      const [a, b] = i % 2 ? [runRaw, runOurs] : [runOurs, runRaw];
      const ta = (await timeCalls(a, 1))[0];
      const tb = (await timeCalls(b, 1))[0];
      const [o, r] = i % 2 ? [tb, ta] : [ta, tb];
      ours.push(o);
      rawTimes.push(r);
      ratios.push(o / r);
    }
    const [oursMin, rawMin] = [Math.min(...ours), Math.min(...rawTimes)];
    return {
      oursMin, rawMin, oursMedian: median(ours), rawMedian: median(rawTimes), overhead: oursMin / rawMin - 1, pairedMedian: median(ratios) - 1,
    };
  } finally {
    await raw.release();
  }
}
