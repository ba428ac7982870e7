import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { presetInfo } from "./info.js";
import { paperParams, presetByName } from "../models/presets.js";
import { UNet } from "../models/unet.js";
import { unetInfo } from "../models/info.js";
import { Parameter, shapeOnly } from "../nn/module.js";
import { Rng } from "../util/rng.js";

const bin = fileURLToPath(new URL("../../bin/imagen.js", import.meta.url));

test("the paper's three presets count within 10% of its 2B / 600M / 400M parameters", () => {
  for (const [name, want] of Object.entries(paperParams)) {
    const p = presetInfo(name);
    assert.ok(Math.abs(p.params / want - 1) <= 0.1, `${name}: ${p.params} parameters vs the paper's ${want}`);
    assert.ok(p.gflopPerImage > 100, `${name}: ${p.gflopPerImage} GFLOP per image`);
  }
});

test("shape-only counting equals the allocated model's count, and FLOPs follow the image size", () => {
  for (const name of ["tiny-base-32", "tiny-sr-128"]) {
    const config = presetByName(name);
    const real = new UNet(config, new Rng(0));
    const info = unetInfo(config);
    assert.equal(info.params, real.parameterCount(), name);
    assert.equal(Object.values(info.paramsByPart).reduce((a, b) => a + b, 0), info.params);
    // Convs dominate (attention adds a little more): doubling the image side about quadruples the work.
    const big = unetInfo({ ...config, imageSize: 2 * config.imageSize });
    assert.ok(big.gflopPerImage / info.gflopPerImage > 3.5 && big.gflopPerImage / info.gflopPerImage < 4.5);
  }
  assert.throws(() => new Parameter(new Float32Array(0), [2, 3]), /needs 6 values, got 0/);
  assert.equal(shapeOnly(() => new Parameter(new Float32Array(0), [2, 3])).size, 6);
});

test("imagen info --preset NAME --json prints one object with preset, params and gflopPerImage; bad names are refused", () => {
  const out = JSON.parse(execFileSync(process.execPath, [bin, "info", "--preset", "imagen-sr-256", "--json"], { encoding: "utf8" }));
  assert.equal(out.preset, "imagen-sr-256");
  assert.ok(out.params > 540e6 && out.params < 660e6);
  assert.ok(out.gflopPerImage > 0);
  assert.throws(() => execFileSync(process.execPath, [bin, "info", "--preset", "imagen-xl"], { encoding: "utf8", stdio: "pipe" }),
    (e: { status: number; stderr: string }) => e.status === 2 && /unknown "imagen-xl"; choose one of imagen-base-64/.test(e.stderr));
});
