// The cascade that ships with the package (models/default), used when a command gets no --model.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ValueError } from "../util/errors.js";

export function defaultModelDir(): string {
  const dir = fileURLToPath(new URL("../../models/default", import.meta.url));
  if (!existsSync(dir)) {
    throw new ValueError(`the shipped model is missing (expected ${dir}); reinstall imagen-ts, or pass --model DIR with a folder from "imagen train"`);
  }
  return dir;
}

/** The super-resolution stages' noise-augmentation level at sampling, for generate and eval alike. */
export const defaultAugLevel = 0.2;
