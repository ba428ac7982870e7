// Does a cascade's base put the first-named object on the side its caption says, where the layout is decided?
// Each positional evaluation prompt "A rel B" and its mirror "B rel A" from the same pure noise at time t: the
// base's x0 prediction (guidance 1 unless given), and how far A's colour centroid moves between the two along
// the relation's axis (right when toward the side the prompt names). A model blind to word order scores about
// half and a mean shift near 0.
// Usage: node --import tsx scripts/mirror-sides.ts [MODEL_DIR=models/default] [t=0.9] [guidance=1] [heldout|seen]
import { loadCascade } from "../src/pipeline/model-folder.js";
import { StageDenoiser } from "../src/pipeline/stage-denoiser.js";
import { parseThresholding } from "../src/diffusion/guidance.js";
import { evalPrompts } from "../src/eval/prompts.js";
import { objectColors } from "../src/data/scenes.js";
import { Rng } from "../src/util/rng.js";
const dir = process.argv[2] ?? "models/default", t = Number(process.argv[3] ?? 0.9), seeds = 8, guidance = Number(process.argv[4] ?? 1);
const set = (process.argv[5] ?? "heldout") as "heldout" | "seen";
const loaded = await loadCascade(dir);
const den = await StageDenoiser.create(loaded.stages[0], loaded.encoder.maxLength);
const S = loaded.stages[0].unet.config.imageSize, per = 3 * S * S;
const ps = evalPrompts(set).filter((p) => p.scene.claim.category === "positional");
let right = 0, total = 0, sumShift = 0;
for (const p of ps) {
  const c = p.scene.claim as { a: { color: string; shape: string }; b: { color: string; shape: string }; relation: string };
  const name = (x: { color: string; shape: string }) => `${x.color} ${x.shape}`;
  const rel = c.relation === "left of" || c.relation === "right of" ? `to the ${c.relation}` : c.relation;
  const art = (s: string) => (/^[aeiou]/.test(s) ? `an ${s}` : `a ${s}`);
  const mirror = `${art(name(c.b))} ${rel} ${art(name(c.a))}`;
  const enc = await loaded.encoder.encode([...Array(seeds).fill(p.prompt), ...Array(seeds).fill(mirror)]);
  const unc = await loaded.encoder.encode(Array(2 * seeds).fill(""));
  const d = den.denoiser({ batch: 2 * seeds, cond: { text: enc.embeddings, mask: enc.mask }, uncond: { text: unc.embeddings, mask: unc.mask }, textLen: loaded.encoder.maxLength, guidance, thresholding: parseThresholding("static") });
  const noise = new Rng(7).normal(seeds * per);
  const x = new Float32Array(2 * seeds * per); x.set(noise); x.set(noise, seeds * per);
  const x0 = await d(x, t);
  const rgb = objectColors[c.a.color].map((v) => 2 * v - 1);
  const horizontal = c.relation === "left of" || c.relation === "right of";
  const centroid = (k: number) => {
    let sw = 0, sc = 0;
    for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) {
      let dd = 0; for (let ch = 0; ch < 3; ch++) dd += (x0[k * per + ch * S * S + i * S + j] - rgb[ch]) ** 2;
      const w = Math.exp(-dd / 0.3); sw += w; sc += w * ((horizontal ? j : i) + 0.5) / S;
    }
    return sc / sw;
  };
  const sign = c.relation === "left of" || c.relation === "above" ? -1 : 1; // A's centroid under the prompt minus under the mirror
  let agree = 0, shift = 0;
  for (let s = 0; s < seeds; s++) { const dlt = centroid(s) - centroid(seeds + s); shift += sign * dlt; if (sign * dlt > 0) agree++; }
  right += agree; total += seeds; sumShift += shift / seeds;
  console.log(`${p.prompt.padEnd(48)} agree ${agree}/${seeds} shift ${(shift / seeds).toFixed(3)}`);
}
console.log(`t=${t} guidance ${guidance}: ${right}/${total} agree, mean shift ${(sumShift / ps.length).toFixed(4)}`);
den.dispose();
