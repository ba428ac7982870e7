// Parity helpers for the reference U-Net: locate and run shared/reference/torch_unet.py, load its
// --dump files (weights by state_dict name, fixed inputs and outputs) and compare with rel L2 in float64.
import { spawnSync, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSafetensors, toFloat32 } from "../src/runtime/safetensors.js";
import type { HostTensor } from "../src/runtime/host.js";
import type { RefUNet } from "./ref-unet.js";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const torchScript = resolve(repoRoot, "../shared/reference/torch_unet.py");
export const systemPython = "/usr/bin/python3";

/** Why the PyTorch reference cannot run here, or null when it can. */
export function torchUnavailable(): string | null {
  if (!existsSync(torchScript)) return `the reference script ${torchScript} is missing`;
  if (!existsSync(systemPython)) return `${systemPython} is missing (install Debian's python3-torch)`;
  const r = spawnSync(systemPython, ["-c", "import torch, numpy"], { encoding: "utf8" });
  if (r.status !== 0) return `${systemPython} cannot import torch and numpy (apt-get install -y python3-torch python3-numpy)`;
  return null;
}

/**
 * spawnSync of `command` through /bin/sh, which forks it: a process started straight from this one (vfork +
 * exec) inherits this process's peak RSS as its own (getrusage's ru_maxrss: measured, a child of a 600 MB
 * parent read 576 MB, through sh 8 MB), so benchmark children that report their peak memory start here.
 */
export function spawnMeasured(command: string, args: readonly string[], options: SpawnSyncOptionsWithStringEncoding): SpawnSyncReturns<string> {
  return spawnSync("/bin/sh", ["-c", '"$0" "$@"; exit $?', command, ...args], options);
}

/** Runs torch_unet.py with `args`; returns stdout, throws with stderr on failure. */
export function runTorch(args: readonly string[]): string {
  const r = spawnMeasured(systemPython, [torchScript, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`torch_unet.py ${args.join(" ")} failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** Writes DIR/model.safetensors, DIR/io.safetensors and DIR/config.json unless they are there already. */
export function dumpReference(preset: string, dir: string, batch: number, reuse = true): void {
  const files = ["model.safetensors", "io.safetensors", "config.json"].map((f) => join(dir, f));
  if (reuse && files.every((f) => existsSync(f))) return;
  runTorch(["--preset", preset, "--dump", dir, "--batch", String(batch)]);
}

/** Loads DIR/model.safetensors into `model` by name (strict: every name on both sides). */
export async function loadReferenceWeights(model: RefUNet, dir: string): Promise<void> {
  const file = await loadSafetensors(join(dir, "model.safetensors"));
  const state = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, entry] of file.tensors) state.set(name, { shape: entry.shape, data: toFloat32(entry) });
  model.loadStateDict(state);
}

/** Every tensor of DIR/io.safetensors as a float32 host tensor (x, t, text, eps, debug.*). */
export async function loadReferenceIo(dir: string): Promise<Map<string, HostTensor & { data: Float32Array }>> {
  const file = await loadSafetensors(join(dir, "io.safetensors"));
  const out = new Map<string, HostTensor & { data: Float32Array }>();
  for (const [name, entry] of file.tensors) out.set(name, { data: toFloat32(entry), shape: [...entry.shape] });
  return out;
}

/** ||got - want||_2 / ||want||_2 in float64. */
export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`relL2: lengths differ (${got.length} vs ${want.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return Math.sqrt(num) / Math.sqrt(den);
}
