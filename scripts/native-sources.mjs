// The native binding's sources and their hash, shared by scripts/build-native.mjs (which writes the hash beside
// the build) and src/runtime/native.ts (which loads the build only while the hash still matches).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** sha256 over native/ort_run.cc and the headers beside it that it includes, each preceded by its name. */
export function nativeSourcesHash(nativeDir) {
  const hash = createHash("sha256");
  for (const name of ["ort_run.cc", ...readdirSync(nativeDir).filter((f) => f.endsWith(".h")).sort()]) {
    hash.update(`${name}\0`).update(readFileSync(join(nativeDir, name)));
  }
  return hash.digest("hex");
}
