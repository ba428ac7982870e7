// The machine's fp32 peak for the benchmark's "% of peak" figures: IMAGEN_PEAK_GFLOPS when set, else measured
// by bench/peak.c (vector FMA chains on every core, built with the system C compiler for this CPU), else the
// project machine's old figure, said so.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export interface Peak { gflops: number; source: string }

/** The project's first 2-core machine (Zen 3, AVX2): shared/reference/README.md, "Reference figures". */
const fallbackGflops = 200;

export function machinePeak(threads: number, cacheDir: string, benchDir: string): Peak {
  const env = process.env.IMAGEN_PEAK_GFLOPS;
  if (env !== undefined) {
    const v = Number(env);
    if (!(v > 0)) throw new Error(`IMAGEN_PEAK_GFLOPS: expected a positive number of GFLOP/s, got "${env}"`);
    return { gflops: v, source: "IMAGEN_PEAK_GFLOPS" };
  }
  mkdirSync(cacheDir, { recursive: true });
  const exe = join(cacheDir, "peak");
  const cc = process.env.CC ?? "cc";
  const build = spawnSync(cc, ["-O2", "-march=native", "-pthread", join(benchDir, "peak.c"), "-o", exe], { encoding: "utf8" });
  if (build.error || build.status !== 0) {
    const why = build.error ? `no C compiler "${cc}"` : `${cc} failed: ${build.stderr.trim().split("\n")[0]}`;
    return { gflops: fallbackGflops, source: `${why}; the first project machine's figure (install gcc, or set IMAGEN_PEAK_GFLOPS)` };
  }
  // Best of three ~0.3 s runs: a busy neighbour only ever lowers the figure.
  let best = 0, width = 0;
  for (let i = 0; i < 3; i++) {
    const run = spawnSync(exe, [String(threads), "100000000"], { encoding: "utf8" });
    const [g, w] = run.stdout.trim().split(/\s+/).map(Number);
    if (run.status !== 0 || !(g > 0)) return { gflops: fallbackGflops, source: `bench/peak.c failed (${run.stderr.trim() || `exit ${run.status}`}); the first project machine's figure` };
    [best, width] = [Math.max(best, g), w];
  }
  return { gflops: best, source: `measured: ${width}-wide fp32 FMA chains on ${threads} thread${threads === 1 ? "" : "s"} (bench/peak.c)` };
}
