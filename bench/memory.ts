// Peak memory of a training step: a child process (this file, run directly) trains the reference U-Net
// for a few steps and reports its max RSS; the parent compares it with an estimate from the graph.
import { fileURLToPath, pathToFileURL } from "node:url";
import { input } from "../src/graph/build.js";
import { topoSort } from "../src/graph/autodiff.js";
import { bindParameters } from "../src/nn/module.js";
import { createTrainStep, randomBatch } from "./measure.js";
import { isPreset, presets, RefUNet } from "./ref-unet.js";
import { repoRoot, spawnMeasured } from "./parity.js";

export interface ChildReport {
  maxRssBytes: number;
  compileSeconds: number;
  stepSeconds: number[];
  losses: number[];
}

/**
 * Bytes of every forward intermediate at `batch`: each node that depends on the inputs x, t, text, counted
 * once (reshapes excluded: ORT aliases them). An upper bound on the activations the backward keeps.
 */
export function forwardActivationBytes(model: RefUNet, batch: number): number {
  const bound = bindParameters(model, "input", "mem.");
  try {
    const sp = model.inputSpecs(batch);
    const leaves = [input("x", sp.x.shape), input("t", sp.t.shape), input("text", sp.text.shape)];
    const eps = model.forward(leaves[0], leaves[1], leaves[2]);
    const live = new Set(leaves.map((l) => l.id));
    let bytes = 0;
    for (const node of topoSort([eps])) {
      if (!node.inputs.some((i) => live.has(i.id))) continue;
      live.add(node.id);
      if (node.op !== "reshape") bytes += 4 * node.shape.reduce<number>((p, d) => p * (d as number), 1);
    }
    return bytes;
  } finally {
    bound.release();
  }
}

/** Runs the training child and returns its report (throws with its stderr when it fails). */
export function measureTrainMemory(preset: string, batch: number, steps: number): ChildReport {
  const self = fileURLToPath(import.meta.url);
  const r = spawnMeasured(process.execPath, ["--import", "tsx", self, "--child", preset, String(batch), String(steps)], {
    cwd: repoRoot, encoding: "utf8", maxBuffer: 16 << 20,
  });
  if (r.status !== 0) throw new Error(`memory child failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as ChildReport;
}

async function child(preset: string, batch: number, steps: number): Promise<void> {
  if (!isPreset(preset)) throw new Error(`memory child: unknown preset ${preset}`);
  const cfg = presets[preset];
  const model = new RefUNet(cfg, 0);
  const data = randomBatch(cfg, batch, 1);
  const { step, compileSeconds } = await createTrainStep(model, batch);
  const stepSeconds: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const r = await step.step(data);
    stepSeconds.push((performance.now() - t0) / 1000);
    losses.push(r.loss);
  }
  const report: ChildReport = { maxRssBytes: process.resourceUsage().maxRSS * 1024, compileSeconds, stepSeconds, losses };
  step.dispose();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (process.argv[2] === "--child" && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await child(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
}
