// The `imagen` command line: thin adapters over the library. Commands arrive issue by issue
// (generate, train, pretrain-text, eval); `info` reports the engine and the machine.
import { Command } from "commander";
import { registerGenerate } from "./generate.js";
import { registerInfo } from "./info.js";
import { registerTrain } from "./train.js";
import { registerEncode } from "./encode.js";
import { registerPretrainText } from "./pretrain-text.js";
import { registerEval } from "./eval.js";
import { ImagenError } from "../util/errors.js";

const program = new Command();
program.name("imagen").description("Imagen (text-to-image cascaded diffusion) in TypeScript on ONNX Runtime");

registerInfo(program);
registerGenerate(program);
registerTrain(program);
registerEncode(program);
registerPretrainText(program);
registerEval(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof ImagenError) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
