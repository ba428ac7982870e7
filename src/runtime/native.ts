// The native ONNX Runtime binding (native/ort_run.cc, built at install by scripts/build-native.mjs): sessions on
// ORT's CPU provider, loaded from onnxruntime-node's own libonnxruntime, whose runs can write outputs into
// caller-owned typed arrays instead of copying each into a new ArrayBuffer. Optional: nativeBinding() is null
// where it was not built (no C++ compiler at install, not Linux) or IMAGEN_NATIVE=0; graphs then run through
// onnxruntime-node.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { nativeSourcesHash } from "../../scripts/native-sources.mjs";
import type { DType } from "../graph/tensor.js";
import type { HostData } from "./host.js";

export interface NativeSessionOptions {
  threads: number;
  /** ORT's GraphOptimizationLevel: 0 disabled, 1 basic, 2 extended, 99 all. */
  optimization: number;
  memPattern: boolean;
  /** ORT session config entries (onnxruntime_session_options_config_keys.h), e.g. ["session.intra_op.allow_spinning", "0"]. */
  config: [string, string][];
  optimizedPath?: string;
  /** Profile every run (ORT's JSON trace, written at endProfiling() under this path prefix). */
  profilePrefix?: string;
}

export interface NativeOutput {
  type: number;
  dims: number[];
  data: ArrayBuffer | null;
}

/** [name, data, ONNX type, dims]; for outputs, data null lets ORT allocate (the result is then copied). */
export type NativeIo = [string, HostData | null, number, readonly number[]];

interface Binding {
  init(libraryPath: string): string;
  createSession(model: Uint8Array, options: NativeSessionOptions): Promise<object>;
  run(session: object, inputs: NativeIo[], outputs: NativeIo[]): Promise<NativeOutput[]>;
  endProfiling(session: object): string;
  release(session: object): void;
}

export const onnxTypes: Record<DType, number> = { float32: 1, int64: 7, bool: 9 };

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const nativeModulePath = join(root, "native", "build", "ort_run.node");
let loaded: { binding: Binding | null; reason: string; version?: string } | undefined;

function load(): NonNullable<typeof loaded> {
  if (process.env.IMAGEN_NATIVE === "0") return { binding: null, reason: "IMAGEN_NATIVE=0" };
  if (process.platform !== "linux") return { binding: null, reason: `not built on ${process.platform}` };
  if (!existsSync(nativeModulePath)) return { binding: null, reason: "not built (run `node scripts/build-native.mjs`; it needs a C++ compiler)" };
  const built = existsSync(`${nativeModulePath}.sha256`) ? readFileSync(`${nativeModulePath}.sha256`, "utf8").trim() : "";
  if (built !== nativeSourcesHash(join(root, "native"))) {
    return { binding: null, reason: "built from another version of native/ort_run.cc or its headers (run `node scripts/build-native.mjs`)" };
  }
  const require = createRequire(import.meta.url);
  const ortIndex = require.resolve("onnxruntime-node");
  const library = join(dirname(ortIndex), "..", "bin", "napi-v6", process.platform, process.arch, "libonnxruntime.so.1");
  try {
    // onnxruntime-node loads the same library first, so both bindings share one copy and one environment.
    require("onnxruntime-node");
    const binding = require(nativeModulePath) as Binding;
    const version = binding.init(library);
    return { binding, reason: "", version };
  } catch (e) {
    return { binding: null, reason: `failed to load: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** The native binding, or null (see nativeStatus() for why). */
export function nativeBinding(): Binding | null {
  loaded ??= load();
  return loaded.binding;
}

/** Whether the native binding is in use, with ORT's version, or the reason it is not. */
export function nativeStatus(): { active: boolean; detail: string } {
  loaded ??= load();
  return loaded.binding ? { active: true, detail: `ONNX Runtime ${loaded.version}` } : { active: false, detail: loaded.reason };
}
