// `imagen info`: the compute engine and the machine; with --preset, a U-Net preset's size and cost
// (counted without allocating its weights, so the paper's 2B-parameter base model is instant).
import type { Command } from "commander";
import { availableParallelism, cpus, totalmem } from "node:os";
import * as ort from "onnxruntime-node";
import { unetInfo } from "../models/info.js";
import { paperParams, presetByName, presets } from "../models/presets.js";

export interface PresetInfo {
  preset: string;
  params: number;
  gflopPerImage: number;
  imageSize: number;
  textLength: number;
  /** The paper's parameter count for this model, where it gives one, and our count over it. */
  paperParams?: number;
  paperRatio?: number;
  paramsByPart: Record<string, number>;
}

export function presetInfo(name: string): PresetInfo {
  const config = presetByName(name);
  const i = unetInfo(config);
  const paper = paperParams[name];
  return {
    preset: name, params: i.params, gflopPerImage: Math.round(i.gflopPerImage * 1000) / 1000, imageSize: config.imageSize,
    textLength: i.textLength, ...(paper ? { paperParams: paper, paperRatio: Math.round((i.params / paper) * 1000) / 1000 } : {}),
    paramsByPart: i.paramsByPart,
  };
}

function machineInfo() {
  return {
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
    providers: ort.listSupportedBackends().map((b) => b.name),
    threads: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
  };
}

const millions = (n: number) => `${(n / 1e6).toFixed(1)}M`;

export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("print the compute engine and machine, or (--preset) a U-Net preset's parameters and GFLOP per image")
    .option("--preset <name>", `a U-Net preset: ${Object.keys(presets).join(", ")}`)
    .option("--json", "print one JSON object")
    .action((opts: { json?: boolean; preset?: string }) => {
      if (opts.preset !== undefined) {
        const p = presetInfo(opts.preset);
        if (opts.json) return console.log(JSON.stringify(p));
        console.log(`preset        ${p.preset} (${p.imageSize}x${p.imageSize})`);
        console.log(`params        ${p.params.toLocaleString("en-US")} (${millions(p.params)})`
          + (p.paperParams ? `; the paper: ${millions(p.paperParams)}, ratio ${p.paperRatio}` : ""));
        console.log(`GFLOP/image   ${p.gflopPerImage} (forward, ${p.textLength} text tokens)`);
        for (const [part, n] of Object.entries(p.paramsByPart)) console.log(`  ${part.padEnd(14)}${millions(n).padStart(9)}`);
        return;
      }
      const info = machineInfo();
      if (opts.json) console.log(JSON.stringify(info));
      else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(12)} ${Array.isArray(v) ? v.join(", ") : v}`);
    });
}
