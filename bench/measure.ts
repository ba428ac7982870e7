// Timing pieces of the U-Net benchmark: seeded batches, PyTorch rounds through torch_unet.py --json, our
// forward and training-step rounds, and the engine-overhead comparison against a raw ORT session.
import { availableParallelism } from "node:os";
import * as ort from "onnxruntime-node";
import { Rng } from "../src/util/rng.js";
import type { HostTensor } from "../src/runtime/host.js";
import { nativeBinding, onnxTypes, type NativeIo } from "../src/runtime/native.js";
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
export const contendedLoad = 0.15;

/**
 * Interleaved rounds (torch round, ours round, ...) as the reference README asks: the machine is noisy, so
 * both engines see the same slow and fast spells. Before each round it waits up to `quietWaitS` for other
 * processes to go quiet, and it records their load during each half; a contended round is repeated (up to
 * `rounds` extra rounds in all) until `rounds` rounds ran clean. `ours` must already be warm; it also runs
 * `oursWarmup` untimed calls at the start of each round, as each torch round warms up its fresh process:
 * while torch runs, the kernel reclaims our idle process's cold pages (seen here: our first training step
 * after a torch round took 3x the others), which torch's fresh process never pays in its timed calls.
 */
export async function interleavedRounds(
  rounds: number, iters: number, torch: (() => TorchRun) | null, ours: () => Promise<unknown>, log: (s: string) => void,
  oursWarmup = 1, quietWaitS = 30,
): Promise<RoundsResult> {
  const res: RoundsResult = { rounds: [], torchRuns: [] };
  const fmtLoad = (l: number) => (Number.isNaN(l) ? "" : `  [others ${l.toFixed(2)} cores${l >= contendedLoad ? ", CONTENDED" : ""}]`);
  const isClean = (r: Round) => !(r.oursLoad >= contendedLoad) && !(r.torchLoad >= contendedLoad);
  for (let r = 0; res.rounds.filter(isClean).length < rounds && r < 2 * rounds; r++) {
    await waitForQuiet(quietWaitS, contendedLoad / 2);
    const round: Round = { ours: [], torch: [], oursLoad: 0, torchLoad: 0 };
    if (torch) {
      const stop = startLoadMeter();
      const run = torch();
      round.torchLoad = stop();
      res.torchRuns.push(run);
      round.torch = run.times_s;
      log(`  round ${r + 1} torch: ${run.times_s.map((v) => v.toFixed(3)).join(" ")} s${fmtLoad(round.torchLoad)}`);
    }
    for (let w = 0; w < oursWarmup; w++) await ours();
    const stop = startLoadMeter();
    round.ours = await timeCalls(ours, iters);
    round.oursLoad = stop();
    log(`  round ${r + 1} ours:  ${round.ours.map((v) => v.toFixed(3)).join(" ")} s${fmtLoad(round.oursLoad)}`);
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
  cycles: number;
  oursMin: number;
  rawMin: number; // best run of either raw session
  oursMedian: number;
  rawMedian: number;
  /** median(ours) / median(raw) - 1 over the rotations (best runs vary by 10-15% between identical sessions). */
  overhead: number;
  /** The same figure between the two raw sessions (second / first - 1): the noise floor of `overhead`. */
  control: number;
}

/**
 * CompiledGraph.run against raw ort.InferenceSessions on the same ONNX bytes, options and feeds. Two raw
 * sessions run in rotation with ours, so their difference shows how much of the overhead is noise. Runs
 * at least `minCycles` rotations and at least `minSeconds`.
 */
export async function engineOverhead(
  graph: RefUNetGraph, feeds: Pick<UNetBatch, "x" | "t" | "text">, minCycles: number, minSeconds = 10,
): Promise<OverheadResult> {
  const outputs = graph.model.outputs.map((o) => o.name);
  const raws = [await rawSession(graph.model.bytes, outputs), await rawSession(graph.model.bytes, outputs)];
  try {
    const runners = [() => graph.run(feeds), () => raws[0].run(feeds), () => raws[1].run(feeds)];
    for (let i = 0; i < 3; i++) for (const r of runners) await r();
    const times: number[][] = [[], [], []];
    const t0 = performance.now();
    let cycles = 0;
    for (; cycles < minCycles || (performance.now() - t0 < minSeconds * 1000 && cycles < 500); cycles++) {
      for (let k = 0; k < 3; k++) {
        const j = (k + cycles) % 3; // rotate the order so no session always follows the same one
        times[j].push((await timeCalls(runners[j], 1))[0]);
      }
    }
    const [oursMin, raw0Min, raw1Min] = times.map((t) => Math.min(...t));
    const [oursMedian, rawMedian] = [median(times[0]), median([...times[1], ...times[2]])];
    return {
      cycles, oursMin, rawMin: Math.min(raw0Min, raw1Min), oursMedian, rawMedian,
      overhead: oursMedian / rawMedian - 1, control: median(times[2]) / median(times[1]) - 1,
    };
  } finally {
    for (const r of raws) await r.release();
  }
}

/**
 * The same bytes opened straight through the binding CompiledGraph uses (the native one where it is built,
 * else onnxruntime-node), with CompiledGraph's default options: the baseline of engineOverhead.
 */
async function rawSession(bytes: Uint8Array, outputs: readonly string[]): Promise<{ run(feeds: Record<string, HostTensor>): Promise<unknown>; release(): Promise<void> }> {
  const native = nativeBinding();
  const opts = defaultOrtOptions();
  if (native) {
    const handle = await native.createSession(bytes, { threads: opts.intraOpNumThreads ?? 1, optimization: 99, memPattern: true, config: [] });
    return {
      run: (feeds) => native.run(handle, Object.entries(feeds).map(([k, t]): NativeIo => [k, t.data, onnxTypes.float32, t.shape]), outputs.map((o): NativeIo => [o, null, 1, []])),
      release: async () => native.release(handle),
    };
  }
  const session = await ort.InferenceSession.create(bytes, opts);
  return {
    run: (feeds) => session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor("float32", t.data as Float32Array, [...t.shape])]))),
    release: () => session.release(),
  };
}
