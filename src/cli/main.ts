// The `imagen` command line: thin adapters over the library. Commands arrive issue by issue
// (generate, train, pretrain-text, eval); `info` reports the engine and the machine.
import { Command } from "commander";
import { availableParallelism, cpus, totalmem } from "node:os";
import * as ort from "onnxruntime-node";
import { registerGenerate } from "./generate.js";
import { registerEncode } from "./encode.js";
import { ImagenError } from "../util/errors.js";

const program = new Command();
program.name("imagen").description("Imagen (text-to-image cascaded diffusion) in TypeScript on ONNX Runtime");

program
  .command("info")
  .description("print the compute engine, execution providers and machine")
  .option("--json", "print one JSON object")
  .action((opts: { json?: boolean }) => {
    const info = {
      onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
      providers: ort.listSupportedBackends().map((b) => b.name),
      threads: availableParallelism(),
      cpu: cpus()[0]?.model ?? "unknown",
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
    };
    if (opts.json) console.log(JSON.stringify(info));
    else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(12)} ${Array.isArray(v) ? v.join(", ") : v}`);
  });

registerGenerate(program);
registerEncode(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof ImagenError) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
