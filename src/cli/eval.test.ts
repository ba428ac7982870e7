import { test } from "node:test";
import assert from "node:assert/strict";
import { evalPrompts } from "../eval/prompts.js";
import { formatReport, runEval } from "./eval.js";

const flags = { samples: "1", seed: "0", guidance: "4" };

test("imagen eval --prompts seen scores the seen-in-training set; a bad set is refused before loading", async () => {
  const r = await runEval({ ...flags, prompts: "seen", limit: "2", stage: "0", steps: "4" });
  assert.equal(r.promptSet, "seen");
  assert.deepEqual(r.items.map((i) => i.prompt), evalPrompts("seen").slice(0, 2).map((p) => p.prompt));
  assert.ok(r.items.every((i) => i.results.length > 0));
  assert.match(formatReport(r), /2 seen-in-training prompts x 1 samples/);
  await assert.rejects(runEval({ ...flags, prompts: "train", model: "/nonexistent" }), /--prompts: expected one of heldout, seen, got "train"/);
});
