// bench/peak.ts: the fp32 peak the benchmark divides by.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { machinePeak } from "../bench/peak.js";

const benchDir = fileURLToPath(new URL("../bench", import.meta.url));

test("machine peak: IMAGEN_PEAK_GFLOPS wins and is checked; else measured with bench/peak.c, or the old figure without a compiler", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "imagen-peak-"));
  const saved = { peak: process.env.IMAGEN_PEAK_GFLOPS, cc: process.env.CC };
  try {
    process.env.IMAGEN_PEAK_GFLOPS = "321";
    assert.deepEqual(machinePeak(2, dir, benchDir), { gflops: 321, source: "IMAGEN_PEAK_GFLOPS" });
    process.env.IMAGEN_PEAK_GFLOPS = "fast";
    assert.throws(() => machinePeak(2, dir, benchDir), /IMAGEN_PEAK_GFLOPS: expected a positive number of GFLOP\/s, got "fast"/);
    delete process.env.IMAGEN_PEAK_GFLOPS;
    process.env.CC = join(dir, "no-such-compiler");
    const without = machinePeak(2, dir, benchDir);
    assert.equal(without.gflops, 200);
    assert.match(without.source, /no C compiler .*set IMAGEN_PEAK_GFLOPS/);
    delete process.env.CC;
    if (spawnSync("cc", ["--version"]).status !== 0) return t.skip("no C compiler here for the measured case");
    const measured = machinePeak(1, dir, benchDir);
    // One core of anything this project runs on: at least SSE (4 floats x 2 x 1 GHz), at most 64 flops/cycle at 6 GHz.
    assert.ok(measured.gflops > 8 && measured.gflops < 400, `implausible single-core peak ${measured.gflops}`);
    assert.match(measured.source, /^measured: (4|8|16)-wide fp32 FMA chains on 1 thread \(/);
  } finally {
    for (const [k, v] of [["IMAGEN_PEAK_GFLOPS", saved.peak], ["CC", saved.cc]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    rmSync(dir, { recursive: true, force: true });
  }
});
