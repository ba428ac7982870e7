// Linear probes on frozen text embeddings (issue 4): does the pooled encoder output of a caption tell which
// colour, count and relation it names? Captions come from a small scene grammar; the probe is trained on
// captions with one set of object nouns and tested on captions with another, so it cannot memorise captions.
import { ValueError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { TextEncoder } from "./encoder.js";

export const probeColours = ["red", "green", "blue", "yellow", "purple", "orange", "pink", "black"] as const;
export const probeCounts = ["one", "two", "three", "four"] as const;
export const probeRelations = ["to the left of", "to the right of", "above", "below"] as const;
/** Nouns with a plain "s" plural; train and test captions use disjoint halves. */
const trainNouns = ["circle", "square", "triangle", "star", "apple", "cat", "car", "tree", "ball", "book", "cup", "bird"];
const testNouns = ["heart", "flower", "dog", "house", "boat", "hat", "lamp", "horse", "duck", "chair", "clock", "key"];

export type ProbeTask = "colour" | "count" | "relation";
export const probeTasks: readonly ProbeTask[] = ["colour", "count", "relation"];
const classes: Record<ProbeTask, readonly string[]> = { colour: probeColours, count: probeCounts, relation: probeRelations };

export interface ProbeCaption {
  text: string;
  /** Class index per task: the subject's colour and count, and the relation to the second object. */
  labels: Record<ProbeTask, number>;
}

/**
 * "three red apples to the left of one blue cat": the second object always has another colour and count, so the
 * subject's colour and count are only recoverable if the embedding keeps which words go with the first noun
 * (binding), not just which words occur. The relation phrase occurs once, so any bag of words recovers it.
 */
export function probeCaptions(n: number, split: "train" | "test", rng: Rng): ProbeCaption[] {
  const nouns = split === "train" ? trainNouns : testNouns;
  return Array.from({ length: n }, () => {
    const [c, k, r] = [rng.int(probeColours.length), rng.int(probeCounts.length), rng.int(probeRelations.length)];
    const c2 = (c + 1 + rng.int(probeColours.length - 1)) % probeColours.length;
    const k2 = (k + 1 + rng.int(probeCounts.length - 1)) % probeCounts.length;
    const [a, b] = [nouns[rng.int(nouns.length)], nouns[rng.int(nouns.length)]];
    const text = `${probeCounts[k]} ${probeColours[c]} ${a}${k > 0 ? "s" : ""} ${probeRelations[r]} ${probeCounts[k2]} ${probeColours[c2]} ${b}${k2 > 0 ? "s" : ""}`;
    return { text, labels: { colour: c, count: k, relation: r } };
  });
}

/** Mean of the encoder output over each caption's valid tokens: [N, D]. */
export async function pooledEmbeddings(encoder: TextEncoder, texts: readonly string[], batch = 64): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < texts.length; i += batch) {
    const e = await encoder.encode(texts.slice(i, i + batch));
    for (let b = 0; b < e.batch; b++) {
      const v = new Float32Array(e.dim);
      let n = 0;
      for (let t = 0; t < e.length; t++) {
        if (e.mask[b * e.length + t] === 0) continue;
        n++;
        const row = e.embeddings.subarray((b * e.length + t) * e.dim, (b * e.length + t + 1) * e.dim);
        for (let d = 0; d < e.dim; d++) v[d] += row[d];
      }
      for (let d = 0; d < e.dim; d++) v[d] /= Math.max(n, 1);
      out.push(v);
    }
  }
  return out;
}

/** Cosine similarity of two vectors after standardising each (zero mean, unit variance), as a LayerNorm sees them. */
export function standardizedCosine(a: Float32Array, b: Float32Array): number {
  const z = (v: Float32Array) => {
    const m = v.reduce((x, y) => x + y, 0) / v.length;
    return Array.from(v, (x) => x - m);
  };
  const [za, zb] = [z(a), z(b)];
  let [dot, na, nb] = [0, 0, 0];
  for (let i = 0; i < za.length; i++) [dot, na, nb] = [dot + za[i] * zb[i], na + za[i] ** 2, nb + zb[i] ** 2];
  return dot / Math.sqrt(na * nb || 1);
}

export interface Distinctness {
  /** Mean standardised cosine of the colour token's output across "a <colour> circle" for the 8 colours. */
  colourToken: number;
  /** Mean standardised cosine between the outputs at different tokens of the same caption. */
  withinCaption: number;
}

/**
 * How far apart the encoder keeps its tokens: a frozen encoder read by cross-attention needs "red" and
 * "blue" (and "red" and "circle") to map to different vectors. 1 means collapsed. The colour token is found
 * as the first position where the captions differ.
 */
export async function tokenDistinctness(encoder: TextEncoder): Promise<Distinctness> {
  const e = await encoder.encode(probeColours.map((c) => `a ${c} circle`));
  const at = (b: number, t: number) => e.embeddings.subarray((b * e.length + t) * e.dim, (b * e.length + t + 1) * e.dim);
  const differs = (t: number) => probeColours.some((_, b) => b > 0 && standardizedCosine(at(0, t), at(b, t)) < 1 - 1e-6);
  let t = 0;
  while (t < e.length - 1 && !differs(t)) t++;
  const pairs = (n: number, f: (i: number, j: number) => number) => {
    let [sum, k] = [0, 0];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) [sum, k] = [sum + f(i, j), k + 1];
    return sum / Math.max(k, 1);
  };
  const colourToken = pairs(e.batch, (i, j) => standardizedCosine(at(i, t), at(j, t)));
  let within = 0;
  for (let b = 0; b < e.batch; b++) {
    const n = e.mask.subarray(b * e.length, (b + 1) * e.length).reduce((x, y) => x + y, 0);
    within += pairs(n, (i, j) => standardizedCosine(at(b, i), at(b, j)));
  }
  return { colourToken, withinCaption: within / e.batch };
}

/** Multinomial logistic regression by full-batch gradient descent (features standardised, L2 penalty). */
export class LogisticRegression {
  private constructor(readonly w: Float64Array, readonly mean: Float64Array, readonly std: Float64Array, readonly dim: number, readonly classes: number) {}

  static fit(x: readonly Float32Array[], y: readonly number[], classes: number, o: { steps?: number; lr?: number; l2?: number } = {}): LogisticRegression {
    const { steps = 300, lr = 0.5, l2 = 1e-3 } = o;
    if (x.length === 0 || x.length !== y.length) throw new ValueError(`LogisticRegression.fit: expected as many labels as rows (> 0), got ${x.length} rows and ${y.length} labels`);
    const D = x[0].length, N = x.length, K = classes, W = D + 1;
    const mean = new Float64Array(D), std = new Float64Array(D);
    for (const r of x) for (let d = 0; d < D; d++) mean[d] += r[d] / N;
    for (const r of x) for (let d = 0; d < D; d++) std[d] += (r[d] - mean[d]) ** 2 / N;
    for (let d = 0; d < D; d++) std[d] = Math.sqrt(std[d]) + 1e-6;
    const xs = x.map((r) => Float64Array.from({ length: W }, (_, d) => (d === D ? 1 : (r[d] - mean[d]) / std[d])));
    const w = new Float64Array(K * W);
    const m = new LogisticRegression(w, mean, std, D, K);
    const g = new Float64Array(K * W);
    for (let s = 0; s < steps; s++) {
      g.fill(0);
      xs.forEach((xi, i) => {
        const p = m.softmax(xi);
        for (let k = 0; k < K; k++) {
          const diff = (p[k] - (y[i] === k ? 1 : 0)) / N;
          for (let d = 0; d < W; d++) g[k * W + d] += diff * xi[d];
        }
      });
      for (let j = 0; j < w.length; j++) w[j] -= lr * (g[j] + (j % W === D ? 0 : l2 * w[j]));
    }
    return m;
  }

  private softmax(xi: Float64Array): Float64Array {
    const W = this.dim + 1;
    const z = new Float64Array(this.classes);
    for (let k = 0; k < this.classes; k++) for (let d = 0; d < W; d++) z[k] += this.w[k * W + d] * xi[d];
    const mx = Math.max(...z);
    let sum = 0;
    for (let k = 0; k < z.length; k++) sum += z[k] = Math.exp(z[k] - mx);
    for (let k = 0; k < z.length; k++) z[k] /= sum;
    return z;
  }

  predict(x: Float32Array): number {
    const xi = Float64Array.from({ length: this.dim + 1 }, (_, d) => (d === this.dim ? 1 : (x[d] - this.mean[d]) / this.std[d]));
    const p = this.softmax(xi);
    return p.indexOf(Math.max(...p));
  }
}

export interface ProbeResult {
  task: ProbeTask;
  classes: number;
  chance: number;
  trainAccuracy: number;
  testAccuracy: number;
}

/** Trains one probe per task on `nTrain` captions and tests on `nTest` captions with unseen nouns. */
export async function runProbes(encoder: TextEncoder, o: { nTrain?: number; nTest?: number; seed?: number } = {}): Promise<ProbeResult[]> {
  const { nTrain = 400, nTest = 200, seed = 0 } = o;
  const rng = new Rng(seed);
  const train = probeCaptions(nTrain, "train", rng.split("train"));
  const test = probeCaptions(nTest, "test", rng.split("test"));
  const [xTrain, xTest] = [await pooledEmbeddings(encoder, train.map((c) => c.text)), await pooledEmbeddings(encoder, test.map((c) => c.text))];
  return probeTasks.map((task) => {
    const k = classes[task].length;
    const model = LogisticRegression.fit(xTrain, train.map((c) => c.labels[task]), k);
    const acc = (xs: Float32Array[], cs: ProbeCaption[]) => xs.filter((x, i) => model.predict(x) === cs[i].labels[task]).length / xs.length;
    return { task, classes: k, chance: 1 / k, trainAccuracy: acc(xTrain, train), testAccuracy: acc(xTest, test) };
  });
}
