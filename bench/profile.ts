// ORT profile of the reference U-Net's forward or training-step graph: time per ONNX op type and the
// slowest nodes, to see which of our lowerings cost the most.
// Usage: node --import tsx bench/profile.ts [--preset b64] [--batch 8] [--graph fwd|train] [--runs 2] [--warmup 1] [--op Conv]
// Also prints the time outside the kernels (ORT's executor; the binding's copies of the outputs into JS arrays)
// and ORT's arena bytes in use over the last run.
// (--op: that op type's time by output size, e.g. to find which layers' convs or weight-gradient products are slow;
// PROFILE_TOP=N: how many nodes to list; PROFILE_BANDWIDTH=1: data-movement nodes by the bandwidth they reach)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import type { HostTensor } from "../src/runtime/host.js";
import { nativeBinding, onnxTypes, type NativeIo } from "../src/runtime/native.js";
import { compileRefUNet, isPreset, presets, RefUNet } from "./ref-unet.js";
import { createTrainStep, defaultOrtOptions, randomBatch } from "./measure.js";

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number; // microseconds since the session started
  dur: number; // microseconds
  args?: { op_name?: string; output_size?: string; input_type_shape?: Record<string, number[]>[]; mem_bytes_in_use?: string };
}

/** The ONNX bytes and feeds of the graph to profile. */
async function graphToProfile(model: RefUNet, batch: number, which: string): Promise<{ bytes: Uint8Array; feeds: Record<string, HostTensor>; graphOutputs: string[] }> {
  const data = randomBatch(model.cfg, batch);
  if (which === "fwd") {
    const g = await compileRefUNet(model, { batch: "B" });
    g.dispose();
    return { bytes: g.model.bytes, feeds: { x: data.x, t: data.t, text: data.text }, graphOutputs: g.model.outputs.map((o) => o.name) };
  }
  const { step } = await createTrainStep(model, batch);
  // The exact graph TrainStep runs (TrainStep.graph).
  const graph = (step as unknown as { graph?: { model: { bytes: Uint8Array; inputs: { name: string; shape: (number | string)[] }[]; outputs: { name: string }[] } } }).graph;
  step.dispose();
  if (!graph) throw new Error("profile: TrainStep no longer exposes .graph; update bench/profile.ts");
  const feeds: Record<string, HostTensor> = { ...data, lr: { data: new Float32Array([1e-4]), shape: [] }, step: { data: new Float32Array([1]), shape: [] } };
  for (const [name, p] of model.namedParameters()) feeds[`param.${name}`] = { data: p.data, shape: p.shape };
  // Optimizer state (per parameter, or per bundle of small ones): zeros.
  for (const i of graph.model.inputs.filter((i) => /^(adam_m|adam_v)\./.test(i.name))) {
    feeds[i.name] = { data: new Float32Array(i.shape[0] as number), shape: [i.shape[0] as number] };
  }
  return { bytes: graph.model.bytes, feeds, graphOutputs: graph.model.outputs.map((o) => o.name) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: "string", default: "b64" }, batch: { type: "string", default: "8" },
      graph: { type: "string", default: "fwd" }, runs: { type: "string", default: "2" }, warmup: { type: "string", default: "1" }, op: { type: "string" },
    },
  });
  if (!isPreset(values.preset)) throw new Error(`--preset: expected one of ${Object.keys(presets).join(", ")}`);
  if (values.graph !== "fwd" && values.graph !== "train") throw new Error(`--graph: expected fwd or train, got ${values.graph}`);
  const batch = Number(values.batch);
  const model = new RefUNet(presets[values.preset]);
  const { bytes, feeds, graphOutputs } = await graphToProfile(model, batch, values.graph);
  const dir = mkdtempSync(join(tmpdir(), "imagen-profile-"));
  try {
    const runs = Number(values.runs);
    const warmup = Number(values.warmup);
    // session.run as JS sees it: ORT's run plus the binding's work (onnxruntime-node copies each output into
    // a new JS array; the native binding copies them too here, as no arrays are handed in).
    const jsMs: number[] = [];
    const timed = async (run: () => Promise<unknown>) => {
      for (let i = 0; i < runs + warmup; i++) {
        const t0 = performance.now();
        await run();
        if (i >= warmup) jsMs.push(performance.now() - t0);
      }
    };
    const native = nativeBinding();
    const opts = defaultOrtOptions();
    if (native) {
      // The graph was emitted for the native binding (its fused kernels), so it is profiled there.
      const handle = await native.createSession(bytes, {
        threads: opts.intraOpNumThreads ?? 1, optimization: 99, memPattern: values.graph !== "train", config: [], profilePrefix: join(dir, "ort"),
      });
      const inputs: NativeIo[] = Object.entries(feeds).map(([k, t]) => [k, t.data, onnxTypes.float32, t.shape]);
      await timed(() => native.run(handle, inputs, graphOutputs.map((o): NativeIo => [o, null, 1, []])));
      native.endProfiling(handle);
      native.release(handle);
    } else {
      const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor("float32", t.data as Float32Array, [...t.shape])]));
      const prof = await ort.InferenceSession.create(bytes, { ...opts, ...(values.graph === "train" ? { enableMemPattern: false } : {}), enableProfiling: true, profileFilePrefix: join(dir, "ort") });
      await timed(() => prof.run(ortFeeds));
      prof.endProfiling();
      await prof.release();
    }
    const file = readdirSync(dir).find((f) => f.endsWith(".json"));
    if (!file) throw new Error("profile: ORT wrote no profile file");
    report(JSON.parse(readFileSync(join(dir, file), "utf8")) as ProfileEvent[], warmup, runs, batch, values.op, jsMs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Kernel times per op type and node over the runs after `warmup` untimed ones (the first runs grow ORT's arena). */
function report(events: ProfileEvent[], warmup: number, runs: number, batch: number, opType: string | undefined, jsMs: readonly number[]): void {
  const starts = events.filter((e) => e.cat === "Session" && e.name === "model_run").map((e) => e.ts).sort((a, b) => a - b);
  const from = starts[warmup] ?? 0;
  const wall = events.filter((e) => e.cat === "Session" && e.name === "model_run" && e.ts >= from).map((e) => e.dur / 1000);
  const kernels = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= from);
  const byType = new Map<string, { us: number; count: number }>();
  const byNode = new Map<string, { us: number; op: string; inputs: string }>();
  for (const e of kernels) {
    const op = e.args?.op_name ?? "?";
    const t = byType.get(op) ?? { us: 0, count: 0 };
    t.us += e.dur;
    t.count++;
    byType.set(op, t);
    const name = e.name.replace(/_kernel_time$/, "");
    const inputs = (e.args?.input_type_shape ?? []).map((t) => `[${Object.values(t)[0]?.join(",") ?? ""}]`).join(" ");
    const n = byNode.get(name) ?? { us: 0, op, inputs };
    n.us += e.dur;
    byNode.set(name, n);
  }
  const total = [...byType.values()].reduce((s, t) => s + t.us, 0);
  // Nodes whose inputs are all 0-D or 1-D: the training step's optimizer works on flat views.
  const flat = kernels.filter((e) => (e.args?.input_type_shape ?? []).every((t) => (Object.values(t)[0]?.length ?? 0) <= 1));
  const flatTypes = new Map<string, number>();
  for (const e of flat) flatTypes.set(e.args?.op_name ?? "?", (flatTypes.get(e.args?.op_name ?? "?") ?? 0) + e.dur);
  const ms = (us: number) => (us / runs / 1000).toFixed(1).padStart(9);
  console.log(`batch ${batch}: ${(total / runs / 1000).toFixed(1)} ms of kernel time per run, ${wall.map((w) => w.toFixed(0)).join(", ")} ms wall (${runs} runs after ${warmup} warm-up)`);
  // Beyond the kernels: ORT's executor between them (model_run - kernels), and the binding after ORT returns
  // (session.run in JS - model_run): it copies every output into a new JS array, whose allocation triggers
  // garbage collections. For a training step the outputs are the weights and both moments (3x the parameters).
  // The profiler itself slows a run (the b64 training step: 1376 ms unprofiled, 1519 ms profiled, same process),
  // so the executor's figure is an upper bound; the binding's happens after ORT returns and is not inflated.
  const meanOf = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
  console.log(`outside the kernels per run: executor ${(meanOf(wall) - total / runs / 1000).toFixed(1)} ms (inflated by the profiler), binding ${(meanOf(jsMs) - meanOf(wall)).toFixed(1)} ms `
    + `(session.run in JS ${jsMs.map((w) => w.toFixed(0)).join(", ")} ms)`);
  // ORT's arena bytes in use after each node of the last run: where the peak falls (forward end, backward, optimizer).
  const lastStart = starts[starts.length - 1] ?? 0;
  const inUse = kernels.filter((e) => e.ts >= lastStart).sort((a, b) => a.ts - b.ts).map((e) => Number(e.args?.mem_bytes_in_use ?? 0));
  if (inUse.some((b) => b > 0)) {
    const peakAt = inUse.indexOf(Math.max(...inUse));
    const mb = (b: number) => (b / 2 ** 20).toFixed(0);
    const tenths = Array.from({ length: 11 }, (_, k) => mb(inUse[Math.min(inUse.length - 1, Math.round((k * (inUse.length - 1)) / 10))]));
    console.log(`ORT arena in use: peak ${mb(inUse[peakAt])} MB after node ${peakAt} of ${inUse.length}; at each tenth of the run ${tenths.join(" ")} MB`);
  }
  console.log(`nodes over 0-D/1-D inputs only (the optimizer): ${(flat.reduce((a, e) => a + e.dur, 0) / runs / 1000).toFixed(1)} ms/run in ${flat.length / runs} nodes (${[...flatTypes].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([op, us]) => `${op} ${(us / runs / 1000).toFixed(1)}`).join(", ")})`);
  console.log(`${"op type".padEnd(22)}${"ms/run".padStart(9)}  share  nodes`);
  for (const [op, t] of [...byType].sort((a, b) => b[1].us - a[1].us).slice(0, 26)) {
    console.log(`${op.padEnd(22)}${ms(t.us)}  ${((100 * t.us) / total).toFixed(1).padStart(4)}%  ${t.count / runs}`);
  }
  // Elementwise nodes far slower per element than a memory-bound pass (~0.3 ns here) point at a bad layout.
  const elementwise = new Set(["Mul", "Add", "Sub", "Div", "Sqrt", "Sigmoid", "Neg", "Where", "Max", "Min"]);
  const perElem = kernels.filter((e) => elementwise.has(e.args?.op_name ?? "") && Number(e.args?.output_size) >= 16384)
    .map((e) => ({ name: e.name.replace(/_kernel_time$/, ""), op: e.args?.op_name ?? "?", ns: (1000 * e.dur) / (Number(e.args?.output_size) / 4), us: e.dur }));
  const slowElem = perElem.filter((e) => e.ns > 2);
  console.log(`elementwise nodes over 2 ns/element: ${(slowElem.reduce((a, e) => a + e.us, 0) / runs / 1000).toFixed(1)} ms/run`);
  for (const e of slowElem.sort((a, b) => b.us - a.us).slice(0, 8)) console.log(`  ${e.name.padEnd(40)} ${e.op.padEnd(16)}${e.ns.toFixed(1)} ns/element`);
  if (process.env.PROFILE_BANDWIDTH) {
    // Data-movement nodes by achieved bandwidth (input + output bytes per second): slow kernels for their size.
    const compute = new Set(["Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "ConvTranspose"]);
    const agg = new Map<string, { us: number; bytes: number; op: string; inputs: string }>();
    for (const e of kernels) {
      const op = e.args?.op_name ?? "?";
      if (compute.has(op)) continue;
      const shapes = (e.args?.input_type_shape ?? []).map((t) => Object.values(t)[0] ?? []);
      const inBytes = shapes.reduce((a, sh) => a + 4 * sh.reduce((p, d) => p * d, 1), 0);
      const name = e.name.replace(/_kernel_time$/, "");
      const a = agg.get(name) ?? { us: 0, bytes: 0, op, inputs: shapes.map((sh) => `[${sh.join(",")}]`).join(" ") };
      a.us += e.dur;
      a.bytes += inBytes + Number(e.args?.output_size ?? 0);
      agg.set(name, a);
    }
    const slow = [...agg].filter(([, a]) => a.us / runs > 200).map(([name, a]) => ({ name, ...a, gbps: a.bytes / (a.us * 1000) }))
      .sort((x, y) => x.gbps - y.gbps).slice(0, Number(process.env.PROFILE_TOP ?? 15));
    console.log("slowest data movement (nodes over 0.2 ms/run, by GB/s):");
    for (const a of slow) console.log(`  ${a.name.padEnd(28)} ${a.op.padEnd(16)}${(a.us / runs / 1000).toFixed(2).padStart(6)} ms ${a.gbps.toFixed(1).padStart(6)} GB/s  ${a.inputs}`);
  }
  if (opType) {
    const nodes = kernels.filter((e) => e.args?.op_name === opType);
    const bySize = new Map<string, { us: number; count: number }>();
    for (const e of nodes) { const k = e.args?.output_size ?? "?"; const t = bySize.get(k) ?? { us: 0, count: 0 }; t.us += e.dur; t.count++; bySize.set(k, t); }
    console.log(`${opType} by output bytes (ms/run, nodes/run):`);
    for (const [k, t] of [...bySize].sort((a, b) => b[1].us - a[1].us).slice(0, 15)) console.log(`  ${k.padStart(10)} ${ms(t.us)} ${t.count / runs}`);
  }
  console.log(`slowest ${opType ?? ""} nodes (inputs):`.replace("  ", " "));
  for (const [name, n] of [...byNode].filter(([, n]) => !opType || n.op === opType).sort((a, b) => b[1].us - a[1].us).slice(0, Number(process.env.PROFILE_TOP ?? 15))) {
    console.log(`  ${name.padEnd(28)} ${n.op.padEnd(14)}${ms(n.us)} ms/run  ${opType ? n.inputs : ""}`);
  }
}

await main();
