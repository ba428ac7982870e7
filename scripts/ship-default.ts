// Packs the default cascade trained by `npm run train:default` into models/default (fp16, the T5 encoder
// referenced from models/text/tiny-t5 rather than copied), with each stage's loss summary and a thinned
// training log for the model card. A stage that has not reached its configured steps is packed from its
// newest checkpoint (EMA weights where they are trustworthy), and the card says so.
// Usage: node --import tsx scripts/ship-default.ts [--config examples/default-cascade.json] [--to models/default] [--raw 1,...]
// (--raw: stages packed with their raw weights, e.g. one resumed from a checkpoint whose EMA predates the warmup fix)
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { parseTrainConfig } from "../src/train/train-config.js";
import { loadLatestCheckpoint } from "../src/train/checkpoint.js";
import { loadSafetensors, toFloat32 } from "../src/runtime/safetensors.js";
import { UNet } from "../src/models/unet.js";
import { ZeroRng } from "../src/util/rng.js";
import { saveCascade } from "../src/pipeline/model-folder.js";
import { stageUNetConfig, summarize } from "../src/cli/train.js";
import type { StageSpec } from "../src/pipeline/stage-denoiser.js";

const { values } = parseArgs({ options: { config: { type: "string", default: "examples/default-cascade.json" }, to: { type: "string", default: "models/default" }, raw: { type: "string", default: "" } } });
const cfg = parseTrainConfig(values.config as string);
const to = values.to as string;
const rawStages = new Set((values.raw as string).split(",").filter((x) => x !== "").map(Number));
if (cfg.textEncoder.class !== "T5TextEncoder") throw new Error("ship-default: the default cascade uses a T5 text encoder");

const stages: StageSpec[] = [];
const cards: { steps: number; configured: number; from: string; lossStart: number; lossEnd: number; log: { step: number; loss: number }[] }[] = [];
for (const [i, st] of cfg.stages.entries()) {
  const dir = join(cfg.output, `stage_${i}`);
  const unet = new UNet(await stageUNetConfig(cfg, i), new ZeroRng()); // with the stage's text statistics, if it standardises the text
  const shapes = new Map([...unet.stateDict()].map(([k, t]) => [k, t.shape]));
  let weights: Map<string, { shape: readonly number[]; data: Float32Array }>;
  let from: string;
  const ck = await loadLatestCheckpoint(join(dir, "checkpoints"));
  if (ck) {
    // Checkpoints from before the EMA warmup hold an average that started from the initial weights with a
    // fixed decay, i.e. a share decay^step of the random init: use such an EMA only once that is under 1%.
    const warm = (ck.data.state as { emaWarmup?: boolean }).emaWarmup === true;
    const useEma = !rawStages.has(i) && st.emaDecay !== undefined && (warm || st.emaDecay ** ck.step < 0.01);
    const group = useEma ? ck.data.tensors.ema : ck.data.tensors.model;
    weights = new Map([...group].map(([k, t]) => [k, { shape: shapes.get(k) ?? t.shape, data: t.data }]));
    from = `checkpoint at step ${ck.step} (${useEma ? "EMA" : "raw, not EMA,"} weights)`;
  } else if (existsSync(join(dir, "final.safetensors"))) {
    weights = new Map([...(await loadSafetensors(join(dir, "final.safetensors"))).tensors].map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }]));
    from = "final.safetensors";
  } else {
    throw new Error(`ship-default: stage ${i} has neither a checkpoint nor final weights in ${dir}; train it first`);
  }
  unet.loadStateDict(weights);
  stages.push({ unet, parameterization: st.parameterization, schedule: st.schedule });
  const log = (await readFile(join(dir, "train.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss: number });
  const losses = new Map(log.map((r) => [r.step, r.loss])); // a resumed run repeats steps; keep the last
  const ordered = [...losses].sort((a, b) => a[0] - b[0]);
  const s = summarize(ordered.map(([, l]) => l));
  // Mean loss over windows of 50 steps, for the card's curve.
  const thinned: { step: number; loss: number }[] = [];
  for (let k = 0; k < ordered.length; k += 50) {
    const w = ordered.slice(k, k + 50);
    thinned.push({ step: w[w.length - 1][0], loss: Number((w.reduce((a, [, l]) => a + l, 0) / w.length).toFixed(5)) });
  }
  cards.push({ steps: ordered.length, configured: st.steps, from, lossStart: s.lossStart, lossEnd: s.lossEnd, log: thinned });
}
await saveCascade(to, { class: "T5TextEncoder", type: "t5", path: relative(process.cwd(), cfg.textEncoder.path), maxLength: cfg.textEncoder.maxLength, ...(cfg.textEncoder.spellCapitals ? { spellCapitals: true } : {}) }, stages, "F16", cfg.sampling);
for (const [i, c] of cards.entries()) {
  await writeFile(join(to, `stage_${i}`, "training.json"), JSON.stringify({ steps: c.steps, lossStart: c.lossStart, lossEnd: c.lossEnd, configuredSteps: c.configured, weightsFrom: c.from, lossCurve: c.log }, null, 1) + "\n");
  console.log(`stage ${i}: ${c.steps}/${c.configured} steps, ${c.from}, loss ${c.lossStart.toFixed(4)} -> ${c.lossEnd.toFixed(4)}`);
}
console.log(`wrote ${to}`);
