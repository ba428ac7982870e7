// Where a training step's time goes: the reference U-Net's loss alone (a forward that keeps nothing), the loss
// and every parameter gradient (forward + backward), and the whole TrainStep (+ clipping, AdamW, the state
// round trip), each compiled on its own and timed in rotation in one process.
// Usage: node --import tsx bench/phases.ts [--preset b64] [--batch 8] [--rounds 4]
import { parseArgs } from "node:util";
import { input } from "../src/graph/build.js";
import { grad } from "../src/graph/autodiff.js";
import { mean, square, sub } from "../src/graph/ops-basic.js";
import type { Tensor } from "../src/graph/tensor.js";
import { bindParameters } from "../src/nn/module.js";
import type { HostTensor } from "../src/runtime/host.js";
import { compileGraph } from "../src/runtime/session.js";
import { isPreset, presets, RefUNet } from "./ref-unet.js";
import { createTrainStep, randomBatch } from "./measure.js";

const { values } = parseArgs({ options: { preset: { type: "string", default: "b64" }, batch: { type: "string", default: "8" }, rounds: { type: "string", default: "4" } } });
if (!isPreset(values.preset)) throw new Error(`--preset: expected one of ${Object.keys(presets).join(", ")}`);
const [batch, rounds] = [Number(values.batch), Number(values.rounds)];
const model = new RefUNet(presets[values.preset]);
const data = randomBatch(model.cfg, batch);
const specs = model.inputSpecs(batch);
const ins = { x: input("x", specs.x.shape), t: input("t", specs.t.shape), text: input("text", specs.text.shape), target: input("target", specs.x.shape) };
const bound = bindParameters(model, "input", "param.");
const loss = mean(square(sub(model.call(ins.x, ins.t, ins.text), ins.target)));
const grads: Record<string, Tensor> = { loss };
grad(loss, [...model.namedParameters()].map(([, p]) => p.t)).forEach((g, i) => (grads[`grad${i}`] = g));
const graphInputs = [ins.x, ins.t, ins.text, ins.target, ...bound.inputs];
const lossOnly = await compileGraph({ loss }, graphInputs);
const withGrads = await compileGraph(grads, graphInputs);
bound.release();
const { step } = await createTrainStep(model, batch);
const feeds: Record<string, HostTensor> = { ...data };
for (const [name, p] of model.namedParameters()) feeds[`param.${name}`] = { data: p.data, shape: p.shape };
const phases: [string, () => Promise<unknown>][] = [
  ["forward (loss only)", () => lossOnly.run(feeds as never)],
  ["forward + backward", () => withGrads.run(feeds as never)],
  ["whole step (+ AdamW)", () => step.step(data)],
];
for (const [, run] of phases) for (let i = 0; i < 2; i++) await run(); // ORT grows its arena on the first runs
const times = phases.map((): number[] => []);
for (let r = 0; r < rounds; r++) {
  for (const [i, [, run]] of phases.entries()) {
    const t0 = performance.now();
    await run();
    times[i].push(performance.now() - t0);
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
console.log(`${values.preset}, batch ${batch}, ${rounds} rounds (ms per run; median)`);
phases.forEach(([name], i) => console.log(`${name.padEnd(22)} ${times[i].map((t) => t.toFixed(0).padStart(5)).join(" ")}   median ${median(times[i]).toFixed(0)}`));
const [f, fb, all] = times.map(median);
console.log(`backward ~${(fb - f).toFixed(0)} ms, optimizer and state round trip over the gradients graph ~${(all - fb).toFixed(0)} ms`);
for (const g of [lossOnly, withGrads]) g.dispose();
step.dispose();
