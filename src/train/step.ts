// A whole training step as one ONNX graph: forward, backward, gradient clipping, AdamW and EMA.
// Parameters and optimizer state go in as inputs; the loss and the updated state come out. The
// TrainStep keeps the arrays between steps and feeds them back (DESIGN.md section 2).
import { ValueError } from "../util/errors.js";
import { Rng, type RngState } from "../util/rng.js";
import { input } from "../graph/build.js";
import { grad } from "../graph/autodiff.js";
import { concat, reshape, square } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { bindParameters, type Module, type Parameter } from "../nn/module.js";
import { collectRandomInputs, fillRandomInputs } from "../nn/random.js";
import { compileGraph, type CompiledGraph, type InputSpec, type SessionOptions } from "../runtime/session.js";
import type { HostTensor } from "../runtime/host.js";
import { adamwShared, adamwUpdate, checkAdamW, clipCoefficient, emaDecayAt, emaUpdate, globalNorm, lrScaleOf, type AdamWConfig } from "./adamw.js";

export interface TrainStepOptions<S extends Record<string, InputSpec>> {
  model: Module;
  /** Shapes of one batch, by input name; a dimension may be symbolic ("B"). */
  batch: S;
  /** Builds the scalar loss from the batch tensors (the model's parameters are bound while it runs). */
  loss: (batch: { [K in keyof S]: Tensor }) => Tensor;
  optimizer: AdamWConfig;
  /** Seed of the noise fed to dropout-like ops. */
  seed?: number;
  session?: SessionOptions;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  step: number;
}

interface Slot {
  name: string;
  param: Parameter;
  /** Views of the unit's moments (and EMA weights) for this parameter. */
  m: Float32Array;
  v: Float32Array;
  ema: Float32Array | null;
}

/** Parameters updated together: one, or a bundle of small ones whose state is kept concatenated. */
interface Unit {
  name: string;
  size: number;
  slots: Slot[];
  m: Float32Array;
  v: Float32Array;
  ema: Float32Array | null;
  /**
   * Where the graph writes its outputs in place (the native binding): two sets used in turn, each step
   * reading the set the step before wrote; made on first use.
   */
  sets: [OutputSet | null, OutputSet | null];
  turn: 0 | 1;
}

interface OutputSet {
  p: Float32Array;
  m: Float32Array;
  v: Float32Array;
  ema: Float32Array | null;
}

/** Parameters of at most this many elements are updated in bundles. */
const smallParameter = 4096;
/** Graph names of bundles: `adam_m.small:0`, ... (a parameter path has no `:`). */
const bundlePrefix = "small:";

/** Which parameters (by index) go into bundles, and the bundles: the small ones grouped by key, in order. */
function bundleSmall(params: readonly { size: number; key: string }[]): { bundled: Set<number>; bundles: number[][] } {
  const byKey = new Map<string, number[]>();
  params.forEach((p, i) => p.size <= smallParameter && byKey.set(p.key, [...(byKey.get(p.key) ?? []), i]));
  const bundles = [...byKey.values()].filter((b) => b.length > 1);
  return { bundled: new Set(bundles.flat()), bundles };
}

export class TrainStep<S extends Record<string, InputSpec>> {
  stepCount = 0;
  private constructor(
    /** The compiled step (its ONNX bytes are `graph.model.bytes`, for profiling). */
    readonly graph: CompiledGraph,
    private readonly units: Unit[],
    private readonly randomInputs: Tensor<"input">[],
    private readonly frozen: [string, Parameter][],
    private rng: Rng,
    readonly config: ReturnType<typeof checkAdamW>,
  ) {}

  static async create<S extends Record<string, InputSpec>>(o: TrainStepOptions<S>): Promise<TrainStep<S>> {
    const cfg = checkAdamW(o.optimizer);
    const trainable = [...o.model.namedParameters()].filter(([, p]) => p.trainable);
    if (trainable.length === 0) throw new ValueError("TrainStep: the model has no trainable parameters");
    const batchInputs = Object.entries(o.batch).map(([name, s]) => input(name, s.shape, s.dtype ?? "float32"));
    const lr = input("lr", []);
    const step = input("step", []);
    const emaDecay = input("ema_decay", []);
    const bound = bindParameters(o.model, "input", "param.");
    try {
      const batch = Object.fromEntries(batchInputs.map((t) => [t.attrs.name, t])) as { [K in keyof S]: Tensor };
      const { result: loss, randomInputs } = collectRandomInputs(() => o.loss(batch));
      const params = trainable.map(([, p]) => p.t);
      // The optimizer works on flat views: ORT's elementwise kernels run ~30x slower per element on shapes
      // ending in size-1 dims (a 1x1 conv's [O, C, 1, 1] weight), and the update needs no shape.
      const flat = (t: Tensor, size: number) => (t.rank === 1 ? t : reshape(t, [size]));
      const flatParams = params.map((t, i) => flat(t, trainable[i][1].size));
      const grads = grad(loss, params).map((g, i) => flat(g, trainable[i][1].size));
      const lrScale = lrScaleOf(cfg.lrScales);
      // Small parameters (biases, norm scales) are updated together, concatenated per (decay, lr scale): one
      // short run of ops for all of them where each took its own (a U-Net has hundreds; the per-op cost
      // dominates at their size). Their moments are kept concatenated too.
      const groups = bundleSmall(trainable.map(([name, p]) => ({ size: p.size, key: `${p.decay}|${lrScale(name)}` })));
      const units = [
        ...trainable.flatMap(([name], i) => (groups.bundled.has(i) ? [] : [{ name, members: [i] }])),
        ...groups.bundles.map((members, k) => ({ name: `${bundlePrefix}${k}`, members })),
      ].map((u) => {
        const cat = (ts: Tensor[]) => (ts.length === 1 ? ts[0] : concat(ts, 0));
        const size = u.members.reduce((n, i) => n + trainable[i][1].size, 0);
        return { ...u, size, p: cat(u.members.map((i) => flatParams[i])), g: cat(u.members.map((i) => grads[i])) };
      });
      const squares = units.map((u) => square(u.g));
      const norm = globalNorm(units.map((u) => u.g), squares);
      const outputs: Record<string, Tensor> = { loss, gradNorm: norm };
      const stateInputs: Tensor<"input">[] = [];
      // Clipping scales the moment updates' gradient terms (no pass over the gradients of its own).
      const shared = adamwShared({ lr, step, clip: cfg.clipNorm === undefined ? undefined : clipCoefficient(norm, cfg.clipNorm) }, cfg);
      units.forEach((u, k) => {
        const m = input(`adam_m.${u.name}`, [u.size]);
        const v = input(`adam_v.${u.name}`, [u.size]);
        stateInputs.push(m, v);
        const first = trainable[u.members[0]];
        const upd = adamwUpdate(u.p, u.g, m, v, shared, cfg, first[1].decay, squares[k], lrScale(first[0]));
        outputs[`new.param.${u.name}`] = upd.p;
        outputs[`new.adam_m.${u.name}`] = upd.m;
        outputs[`new.adam_v.${u.name}`] = upd.v;
        if (cfg.emaDecay !== undefined) {
          const e = input(`ema.${u.name}`, [u.size]);
          stateInputs.push(e);
          outputs[`new.ema.${u.name}`] = emaUpdate(e, upd.p, emaDecay);
        }
      });
      const frozen = [...o.model.namedParameters()].filter(([, p]) => !p.trainable);
      const allInputs = [...batchInputs, lr, step, ...(cfg.emaDecay !== undefined ? [emaDecay] : []), ...bound.inputs, ...stateInputs, ...randomInputs];
      // Without ORT's memory pattern: the same speed, a third less peak memory (SessionOptions.memoryPattern).
      const graph = await compileGraph(outputs, allInputs, { ...o.session, memoryPattern: o.session?.memoryPattern ?? false });
      const runUnits = units.map((u): Unit => {
        // m, v and EMA start as zeros and the initial weights; viewSlots points each slot at its part.
        const slots: Slot[] = u.members.map((i) => ({ name: trainable[i][0], param: trainable[i][1], m: new Float32Array(0), v: new Float32Array(0), ema: null }));
        const ema = cfg.emaDecay === undefined ? null : new Float32Array(u.size);
        if (ema) slots.reduce((at, s) => (ema.set(s.param.data, at), at + s.param.size), 0);
        const unit: Unit = { name: u.name, size: u.size, slots, m: new Float32Array(u.size), v: new Float32Array(u.size), ema, sets: [null, null], turn: 0 };
        TrainStep.viewSlots(unit);
        return unit;
      });
      return new TrainStep<S>(graph, runUnits, randomInputs, frozen, new Rng(o.seed ?? 0).split("dropout"), cfg);
    } finally {
      bound.release();
    }
  }

  /**
   * Runs one step on `batch`; the model's parameters are updated in place (their arrays replaced). On the
   * native binding the arrays of two steps before are written over: copy a parameter's, a moment's or an EMA
   * array (`.slice()`) to keep it past the next step.
   */
  async step(batch: { [K in keyof S]: HostTensor }, lr = this.config.lr): Promise<StepResult> {
    if (!Number.isFinite(lr) || lr < 0) throw new ValueError(`TrainStep lr: expected a finite number >= 0, got ${lr}`);
    const t = this.stepCount + 1;
    const feeds: Record<string, HostTensor> = { ...(batch as Record<string, HostTensor>) };
    feeds.lr = { data: new Float32Array([lr]), shape: [] };
    feeds.step = { data: new Float32Array([t]), shape: [] };
    if (this.config.emaDecay !== undefined) feeds.ema_decay = { data: new Float32Array([emaDecayAt(this.config.emaDecay, t)]), shape: [] };
    for (const u of this.units) {
      for (const s of u.slots) feeds[`param.${s.name}`] = { data: s.param.data, shape: s.param.shape };
      feeds[`adam_m.${u.name}`] = { data: u.m, shape: [u.m.length] };
      feeds[`adam_v.${u.name}`] = { data: u.v, shape: [u.v.length] };
      if (u.ema) feeds[`ema.${u.name}`] = { data: u.ema, shape: [u.ema.length] };
    }
    for (const [name, p] of this.frozen) feeds[`param.${name}`] = { data: p.data, shape: p.shape };
    Object.assign(feeds, fillRandomInputs(this.randomInputs, this.rng, this.symbolDims(feeds)));
    // Where ORT can write the new weights and moments in place, it writes them over the arrays of two steps
    // ago (not into new ones: 3x the weights' size a step, and the garbage collections that brings).
    const into = this.graph.writesInPlace ? this.outputSets() : undefined;
    const out = await this.graph.run(feeds as never, into) as Record<string, HostTensor>;
    for (const u of this.units) {
      const p = out[`new.param.${u.name}`].data as Float32Array;
      u.m = out[`new.adam_m.${u.name}`].data as Float32Array;
      u.v = out[`new.adam_v.${u.name}`].data as Float32Array;
      if (u.ema) u.ema = out[`new.ema.${u.name}`].data as Float32Array;
      let at = 0;
      for (const s of u.slots) s.param.data = u.slots.length === 1 ? p : p.slice(at, (at += s.param.size));
      TrainStep.viewSlots(u);
      if (into) u.turn = u.turn === 0 ? 1 : 0;
    }
    this.stepCount = t;
    return { loss: out.loss.data[0] as number, gradNorm: out.gradNorm.data[0] as number, step: t };
  }

  /** The arrays this step's outputs are written into, by output name. */
  private outputSets(): Record<string, Float32Array> {
    const into: Record<string, Float32Array> = {};
    for (const u of this.units) {
      const n = u.size;
      const set = (u.sets[u.turn] ??= { p: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n), ema: u.ema && new Float32Array(n) });
      into[`new.param.${u.name}`] = set.p;
      into[`new.adam_m.${u.name}`] = set.m;
      into[`new.adam_v.${u.name}`] = set.v;
      if (set.ema) into[`new.ema.${u.name}`] = set.ema;
    }
    return into;
  }

  private symbolDims(feeds: Record<string, HostTensor>): Map<string, number> {
    const dims = new Map<string, number>();
    for (const i of this.graph.model.inputs) {
      const f = feeds[i.name];
      if (f) i.shape.forEach((d, k) => typeof d === "string" && dims.set(d, f.shape[k]));
    }
    return dims;
  }

  /** Points each parameter's m, v and EMA at its part of the unit's arrays. */
  private static viewSlots(u: Unit): void {
    let at = 0;
    for (const s of u.slots) {
      const view = (a: Float32Array) => (u.slots.length === 1 ? a : a.subarray(at, at + s.param.size));
      [s.m, s.v, s.ema] = [view(u.m), view(u.v), u.ema && view(u.ema)];
      at += s.param.size;
    }
  }

  private get slots(): Slot[] {
    return this.units.flatMap((u) => u.slots);
  }

  /** The EMA weights by parameter name (empty when EMA is off). */
  emaWeights(): Map<string, Float32Array> {
    return new Map(this.slots.filter((s) => s.ema).map((s) => [s.name, s.ema as Float32Array]));
  }

  /** Optimizer state for checkpoints. */
  state(): { step: number; rng: RngState; m: Map<string, Float32Array>; v: Map<string, Float32Array> } {
    return {
      step: this.stepCount, rng: this.rng.state(),
      m: new Map(this.slots.map((s) => [s.name, s.m])), v: new Map(this.slots.map((s) => [s.name, s.v])),
    };
  }

  /** Restores optimizer state saved by state() (and the EMA weights); parameters are restored through the model. */
  restore(saved: { step: number; rng: RngState; m: Map<string, Float32Array>; v: Map<string, Float32Array>; ema?: Map<string, Float32Array> }): void {
    for (const s of this.slots) {
      const [m, v] = [saved.m.get(s.name), saved.v.get(s.name)];
      if (!m || !v || m.length !== s.param.size || v.length !== s.param.size) {
        throw new ValueError(`TrainStep.restore: optimizer state for "${s.name}" is missing or mis-sized; the checkpoint does not match this model`);
      }
      s.m.set(m);
      s.v.set(v);
      const e = saved.ema?.get(s.name);
      if (s.ema && e) s.ema.set(e);
    }
    this.stepCount = saved.step;
    this.rng = new Rng(saved.rng);
  }

  dispose(): void {
    this.graph.dispose();
  }
}
