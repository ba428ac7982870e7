// Parity of bench/ref-unet.ts with shared/reference/torch_unet.py (tiny preset, batch 2): same weights and
// inputs give eps within rel L2 1e-5 (README: float32 noise is 2e-6 to 3e-6), plus one training step.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Rng } from "../src/util/rng.js";
import { mean, square, sub } from "../src/graph/ops-basic.js";
import { TrainStep } from "../src/train/step.js";
import type { HostTensor } from "../src/runtime/host.js";
import { compileRefUNet, countForwardFlops, presets, RefUNet } from "../bench/ref-unet.js";
import { dumpReference, loadReferenceIo, loadReferenceWeights, relL2, torchUnavailable } from "../bench/parity.js";

const tolerance = 1e-5;

test("ref U-Net (tiny) matches torch_unet.py: eps and debug.emb within rel L2 1e-5", async (t) => {
  const why = torchUnavailable();
  if (why) {
    t.skip(`PyTorch reference unavailable: ${why}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "ref-unet-"));
  try {
    dumpReference("tiny", dir, 2, false);
    const model = new RefUNet(presets.tiny);
    assert.equal(model.parameterCount(), 6_278_979);
    await loadReferenceWeights(model, dir);
    const io = await loadReferenceIo(dir);
    const feed = (name: string) => io.get(name) as HostTensor;
    const graph = await compileRefUNet(model, { debug: true });
    try {
      const out = await graph.run({ x: feed("x"), t: feed("t"), text: feed("text") });
      const checks: [string, string][] = [
        ["eps", "eps"], ["emb", "debug.emb"], ["tSinusoidal", "debug.t_sinusoidal"],
        ["downOut", "debug.down_out"], ["midOut", "debug.mid_out"],
      ];
      for (const [ours, theirs] of checks) {
        const want = io.get(theirs);
        assert.ok(want, `io.safetensors lacks ${theirs}`);
        assert.deepEqual(out[ours].shape, want.shape, `${ours}: shape`);
        const err = relL2(out[ours].data as Float32Array, want.data);
        t.diagnostic(`${theirs}: rel L2 ${err.toExponential(2)}`);
        console.log(`ref-unet tiny parity ${theirs}: rel L2 ${err.toExponential(2)}`);
        assert.ok(err < tolerance, `${theirs}: rel L2 ${err.toExponential(2)} >= ${tolerance}`);
      }
    } finally {
      graph.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ref U-Net FLOP counter reproduces torch_unet.py's fwd GFLOP/image (tiny 0.975, b64 16.01)", () => {
  const tiny = countForwardFlops(new RefUNet(presets.tiny));
  assert.equal((tiny.total / 1e9).toFixed(3), "0.975");
  assert.equal((tiny.conv / 1e9).toFixed(3), "0.905");
  assert.equal((tiny.linear / 1e9).toFixed(3), "0.060");
  assert.equal((tiny.attnMatmul / 1e9).toFixed(3), "0.011");
  const b64 = countForwardFlops(new RefUNet(presets.b64));
  assert.equal((b64.total / 1e9).toFixed(2), "16.01");
});

test("ref U-Net (tiny, batch 2): one AdamW training step gives a finite loss", async () => {
  const cfg = presets.tiny;
  const model = new RefUNet(cfg, 1);
  const b = 2;
  // A static batch: with a symbolic one, ORT takes ~15 s instead of ~3 s to open this 8.5k-node graph.
  const specs = model.inputSpecs(b);
  const train = await TrainStep.create({
    model,
    batch: { ...specs, target: { shape: specs.x.shape } },
    loss: ({ x, t, text, target }) => mean(square(sub(model.call(x, t, text), target))),
    optimizer: { lr: 1e-4, weightDecay: 0.01 },
  });
  try {
    const rng = new Rng(7);
    const s = cfg.imageSize;
    const img = () => ({ data: rng.normal(b * 3 * s * s), shape: [b, 3, s, s] });
    const batch = {
      x: img(), target: img(),
      t: { data: Float32Array.from(rng.uniform(b), (u) => u * 1000), shape: [b] },
      text: { data: rng.normal(b * cfg.textLen * cfg.textDim), shape: [b, cfg.textLen, cfg.textDim] },
    };
    const before = Float32Array.from(model.convOut.weight.data);
    const r = await train.step(batch);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
    assert.ok(Number.isFinite(r.gradNorm) && r.gradNorm > 0, `grad norm ${r.gradNorm}`);
    assert.notDeepEqual(model.convOut.weight.data, before, "the step did not update conv_out");
  } finally {
    train.dispose();
  }
});
