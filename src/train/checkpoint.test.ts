// Tests for crash-safe checkpoints: exact round trips, pruning, skipping damaged checkpoints, leftover
// .tmp-* folders, and a child process killed with SIGKILL mid-save that must never leave a torn checkpoint.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CheckpointData, checkpointName, listCheckpoints, loadLatestCheckpoint, readCheckpoint, saveCheckpoint,
} from "./checkpoint.js";
import { ValueError } from "../util/errors.js";
import { crashPattern } from "../../test/fixtures/checkpoint-crash-pattern.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "imagen-ckpt-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sample(step: number): CheckpointData {
  const values = (n: number, salt: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * salt + step) * 1e3);
  return {
    tensors: {
      model: new Map([["conv.weight", { shape: [2, 3, 4], data: values(24, 1.1) }], ["bias", { shape: [3], data: values(3, 2) }]]),
      optimizer: new Map([["m", { shape: [5], data: Float32Array.of(-0, 1e-45, 3.4e38, -1.5, Math.PI) }]]),
      ema: new Map([["empty", { shape: [0, 4], data: new Float32Array(0) }], ["scalar", { shape: [], data: Float32Array.of(7) }]]),
    },
    state: { step, rng: [123456789, 987654321], cursor: { epoch: 2, index: 17 }, lr: 0.1 + 0.2, note: "ü" },
  };
}

function assertSame(actual: CheckpointData, expected: CheckpointData): void {
  assert.deepEqual(Object.keys(actual.tensors), Object.keys(expected.tensors));
  for (const [group, tensors] of Object.entries(expected.tensors)) {
    const got = actual.tensors[group]!;
    assert.deepEqual([...got.keys()], [...tensors.keys()]);
    for (const [name, { shape, data }] of tensors) {
      assert.deepEqual([...got.get(name)!.shape], [...shape]);
      // Compare bits, so -0 and denormals count.
      assert.deepEqual(new Uint32Array(got.get(name)!.data.slice().buffer), new Uint32Array(data.slice().buffer));
    }
  }
  assert.deepEqual(actual.state, expected.state);
}

test("checkpoint round trip is exact, with a manifest of sizes and sha256", async () => {
  await withDir(async (dir) => {
    const path = await saveCheckpoint(dir, 1234, sample(1234));
    assert.equal(path, join(dir, "step-000001234"));
    const files = (await readdir(path)).sort();
    assert.deepEqual(files, ["ema.safetensors", "manifest.json", "model.safetensors", "optimizer.safetensors", "state.json"]);
    const manifest = JSON.parse(await readFile(join(path, "manifest.json"), "utf8"));
    assert.equal(manifest.step, 1234);
    assert.equal(manifest.files.length, 4);
    const loaded = await loadLatestCheckpoint(dir);
    assert.ok(loaded);
    assert.equal(loaded.step, 1234);
    assert.equal(loaded.path, path);
    assertSame(loaded.data, sample(1234));
  });
});

test("saving prunes to the newest `keep` checkpoints (default 3)", async () => {
  await withDir(async (dir) => {
    for (const step of [10, 20, 30, 40, 50]) await saveCheckpoint(dir, step, sample(step));
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [30, 40, 50]);
    await saveCheckpoint(dir, 60, sample(60), { keep: 1 });
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [60]);
    assert.deepEqual(await readdir(dir), ["step-000000060"]);
    assert.equal((await loadLatestCheckpoint(dir))!.step, 60);
  });
});

test("saving the same step again replaces it; an older step is refused", async () => {
  await withDir(async (dir) => {
    await saveCheckpoint(dir, 5, sample(5));
    const replaced = sample(6);
    await saveCheckpoint(dir, 5, replaced);
    assert.deepEqual(await readdir(dir), ["step-000000005"]);
    assertSame((await loadLatestCheckpoint(dir))!.data, replaced);
    await assert.rejects(saveCheckpoint(dir, 4, sample(4)), (err: Error) =>
      err instanceof ValueError && /expected >= 5/.test(err.message));
  });
});

test("bad arguments throw clear errors before anything is written", async () => {
  await withDir(async (dir) => {
    const bad: Array<[() => Promise<string>, RegExp]> = [
      [() => saveCheckpoint(dir, -1, sample(1)), /step: expected an integer >= 0, got -1/],
      [() => saveCheckpoint(dir, 1.5, sample(1)), /step: expected an integer >= 0/],
      [() => saveCheckpoint(dir, 1, sample(1), { keep: 0 }), /keep: expected an integer >= 1, got 0/],
      [() => saveCheckpoint(dir, 1, { tensors: { "../x": new Map() }, state: {} }), /group names/],
      [() => saveCheckpoint(dir, 1, { tensors: { m: new Map([["w", { shape: [2, 2], data: new Float32Array(3) }]]) }, state: {} }),
        /expected 4 values \(shape \[2, 2\]\), got 3/],
      [() => saveCheckpoint(dir, 1, { tensors: {}, state: { lr: NaN } }), /state\["lr"\]: expected a finite number, got NaN/],
      [() => saveCheckpoint(dir, 1, { tensors: {}, state: { seed: 1n } }), /expected a JSON value, got a bigint/],
      [() => saveCheckpoint(dir, 1, { tensors: {}, state: undefined }), /state: expected a JSON value, got undefined/],
    ];
    for (const [fn, message] of bad) await assert.rejects(fn(), (err: Error) => err instanceof ValueError && message.test(err.message));
    assert.deepEqual(await readdir(dir), []);
  });
});

test("a damaged newest checkpoint is skipped in favour of the previous one", async () => {
  const damages: Array<[string, (path: string) => Promise<void>, RegExp]> = [
    ["flipped byte", async (path) => {
      const file = join(path, "model.safetensors");
      const bytes = await readFile(file);
      bytes[bytes.length - 5]! ^= 0x10;
      await writeFile(file, bytes);
    }, /model\.safetensors sha256: expected [0-9a-f]{64}, got [0-9a-f]{64}/],
    ["missing file", (path) => unlink(join(path, "optimizer.safetensors")), /optimizer\.safetensors: expected the file, got none/],
    ["truncated manifest", async (path) => truncate(join(path, "manifest.json"), 40), /manifest\.json: expected valid UTF-8 JSON/],
    ["missing manifest", (path) => unlink(join(path, "manifest.json")), /manifest\.json: expected the file/],
    ["truncated tensor file", (path) => truncate(join(path, "ema.safetensors"), 10), /ema\.safetensors size: expected \d+ bytes, got 10/],
    ["edited state", (path) => writeFile(join(path, "state.json"), '{"step":3}'), /state\.json size/],
  ];
  for (const [what, damage, reason] of damages) {
    await withDir(async (dir) => {
      await saveCheckpoint(dir, 1, sample(1));
      await saveCheckpoint(dir, 2, sample(2));
      await damage(join(dir, checkpointName(2)));
      const skipped: Array<[string, string]> = [];
      const loaded = await loadLatestCheckpoint(dir, { onSkip: (path, why) => skipped.push([path, why]) });
      assert.equal(loaded?.step, 1, what);
      assertSame(loaded!.data, sample(1));
      assert.equal(skipped.length, 1, what);
      assert.equal(skipped[0]![0], join(dir, checkpointName(2)));
      assert.match(skipped[0]![1], reason, what);
      await assert.rejects(readCheckpoint(join(dir, checkpointName(2))), reason);
    });
  }
});

test("no checkpoint, or none that verifies, gives null", async () => {
  await withDir(async (dir) => {
    assert.equal(await loadLatestCheckpoint(join(dir, "absent")), null);
    assert.deepEqual(await listCheckpoints(join(dir, "absent")), []);
    await saveCheckpoint(dir, 1, sample(1));
    await unlink(join(dir, checkpointName(1), "state.json"));
    let skips = 0;
    assert.equal(await loadLatestCheckpoint(dir, { onSkip: () => skips++ }), null);
    assert.equal(skips, 1);
  });
});

test("leftover .tmp-* folders are ignored, and deleted once older than the newest good checkpoint", async () => {
  await withDir(async (dir) => {
    await saveCheckpoint(dir, 7, sample(7));
    // A crash mid-write of step 8 (newer: a writer may still own it) and of step 3 (stale).
    const newer = join(dir, ".tmp-step-000000008-1-abc");
    const stale = join(dir, ".tmp-step-000000003-1-def");
    for (const folder of [newer, stale]) {
      await mkdir(folder);
      await writeFile(join(folder, "model.safetensors"), new Uint8Array(100));
      await utimes(folder, 0, 0);
    }
    const loaded = await loadLatestCheckpoint(dir);
    assert.equal(loaded?.step, 7);
    assert.deepEqual((await readdir(dir)).sort(), [".tmp-step-000000008-1-abc", "step-000000007"]);
    // The next save (step 9) makes the step-8 leftover stale too.
    await saveCheckpoint(dir, 9, sample(9));
    assert.deepEqual((await readdir(dir)).sort(), ["step-000000007", "step-000000009"]);
  });
});

const writerScript = fileURLToPath(new URL("../../test/fixtures/checkpoint-crash-writer.ts", import.meta.url));

/**
 * Starts the writer, waits for it to say ready (and, with `afterSaves`, to report that many finished saves),
 * lets it save for `delayMs`, then SIGKILLs it.
 */
function runAndKill(dir: string, values: number, delayMs: number, afterSaves = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", writerScript, dir, String(values)],
      { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
    let out = "", armed = false;
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const saves = (out.match(/^saved /gm) ?? []).length;
      if (!armed && out.startsWith("ready\n") && saves >= afterSaves) {
        armed = true;
        setTimeout(() => child.kill("SIGKILL"), delayMs);
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`crash writer: expected to be killed, got exit code ${code}; stderr: ${stderr}`));
    });
  });
}

test("a writer killed with SIGKILL mid-save never leaves a torn checkpoint", async () => {
  await withDir(async (dir) => {
    const values = 500_000; // 2 MB per tensor file: a save takes tens of ms, so kills land inside saves
    await saveCheckpoint(dir, 0, { tensors: {
      model: new Map([["w", { shape: [values], data: crashPattern(0, 1, values) }]]),
      optimizer: new Map([["w", { shape: [values], data: crashPattern(0, 2, values) }]]),
    }, state: { step: 0 } });
    let previous = 0;
    let sawTemp = false;
    // The last round kills only after a finished save, so that on a loaded machine (saves slower than the
    // delays) at least one save still completes.
    for (const [delayMs, afterSaves] of [[5, 0], [200, 0], [60, 0], [130, 0], [25, 1]]) {
      await runAndKill(dir, values, delayMs, afterSaves);
      sawTemp ||= (await readdir(dir)).some((name) => name.startsWith(".tmp-"));
      const skipped: string[] = [];
      const loaded = await loadLatestCheckpoint(dir, { onSkip: (path, why) => skipped.push(`${path}: ${why}`) });
      assert.deepEqual(skipped, [], "a checkpoint under its final name failed to verify");
      assert.ok(loaded, "the step-0 checkpoint (or a newer one) must survive every kill");
      assert.ok(loaded.step >= previous);
      previous = loaded.step;
      assert.deepEqual(loaded.data.state, { step: loaded.step });
      assert.deepEqual(loaded.data.tensors.model!.get("w")!.data, crashPattern(loaded.step, 1, values));
      assert.deepEqual(loaded.data.tensors.optimizer!.get("w")!.data, crashPattern(loaded.step, 2, values));
    }
    assert.ok(previous > 0, "the writer completed no save in any round: raise the kill delays");
    // keep = 2, plus one when the last kill landed after a save's rename and before its prune (not torn).
    const left = (await listCheckpoints(dir)).length;
    assert.ok(left <= 3, `${left} checkpoints left with keep = 2`);
    // Informational: whether some kill landed mid-write (usually yes).
    if (!sawTemp) console.log("crash test: no kill landed mid-write this run");
  });
});
