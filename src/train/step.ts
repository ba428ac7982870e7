// A whole training step as one ONNX graph: forward, backward, gradient clipping, AdamW and EMA.
// Parameters and optimizer state go in as inputs; the loss and the updated state come out. The
// TrainStep keeps the arrays between steps and feeds them back (DESIGN.md section 2).
import { ValueError } from "../util/errors.js";
import { Rng, type RngState } from "../util/rng.js";
import { input } from "../graph/build.js";
import { grad } from "../graph/autodiff.js";
import { reshape, square } from "../graph/ops-basic.js";
import type { Tensor } from "../graph/tensor.js";
import { bindParameters, type Module, type Parameter } from "../nn/module.js";
import { collectRandomInputs, fillRandomInputs } from "../nn/random.js";
import { compileGraph, type CompiledGraph, type InputSpec, type SessionOptions } from "../runtime/session.js";
import type { HostTensor } from "../runtime/host.js";
import { adamwShared, adamwUpdate, checkAdamW, clipByGlobalNorm, emaDecayAt, emaUpdate, globalNorm, lrScaleOf, type AdamWConfig } from "./adamw.js";

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
  m: Float32Array;
  v: Float32Array;
  ema: Float32Array | null;
}

export class TrainStep<S extends Record<string, InputSpec>> {
  stepCount = 0;
  private constructor(
    /** The compiled step (its ONNX bytes are `graph.model.bytes`, for profiling). */
    readonly graph: CompiledGraph,
    private readonly slots: Slot[],
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
      let grads = grad(loss, params).map((g, i) => flat(g, trainable[i][1].size));
      const squares = grads.map(square);
      const norm = globalNorm(grads, squares);
      if (cfg.clipNorm !== undefined) grads = clipByGlobalNorm(grads, norm, cfg.clipNorm);
      const outputs: Record<string, Tensor> = { loss, gradNorm: norm };
      const stateInputs: Tensor<"input">[] = [];
      const shared = adamwShared({ lr, step }, cfg);
      const lrScale = lrScaleOf(cfg.lrScales);
      trainable.forEach(([name, p], i) => {
        const m = input(`adam_m.${name}`, [p.size]);
        const v = input(`adam_v.${name}`, [p.size]);
        stateInputs.push(m, v);
        const upd = adamwUpdate(flatParams[i], grads[i], m, v, shared, cfg, p.decay, cfg.clipNorm === undefined ? squares[i] : undefined, lrScale(name));
        outputs[`new.param.${name}`] = upd.p;
        outputs[`new.adam_m.${name}`] = upd.m;
        outputs[`new.adam_v.${name}`] = upd.v;
        if (cfg.emaDecay !== undefined) {
          const e = input(`ema.${name}`, [p.size]);
          stateInputs.push(e);
          outputs[`new.ema.${name}`] = emaUpdate(e, upd.p, emaDecay);
        }
      });
      const frozen = [...o.model.namedParameters()].filter(([, p]) => !p.trainable);
      const allInputs = [...batchInputs, lr, step, ...(cfg.emaDecay !== undefined ? [emaDecay] : []), ...bound.inputs, ...stateInputs, ...randomInputs];
      // Without ORT's memory pattern: the same speed, a third less peak memory (SessionOptions.memoryPattern).
      const graph = await compileGraph(outputs, allInputs, { ...o.session, memoryPattern: o.session?.memoryPattern ?? false });
      const slots = trainable.map(([name, p]) => ({
        name, param: p, m: new Float32Array(p.size), v: new Float32Array(p.size),
        ema: cfg.emaDecay !== undefined ? Float32Array.from(p.data) : null,
      }));
      return new TrainStep<S>(graph, slots, randomInputs, frozen, new Rng(o.seed ?? 0).split("dropout"), cfg);
    } finally {
      bound.release();
    }
  }

  /** Runs one step on `batch`; the model's parameters are updated in place (their arrays replaced). */
  async step(batch: { [K in keyof S]: HostTensor }, lr = this.config.lr): Promise<StepResult> {
    if (!Number.isFinite(lr) || lr < 0) throw new ValueError(`TrainStep lr: expected a finite number >= 0, got ${lr}`);
    const t = this.stepCount + 1;
    const feeds: Record<string, HostTensor> = { ...(batch as Record<string, HostTensor>) };
    feeds.lr = { data: new Float32Array([lr]), shape: [] };
    feeds.step = { data: new Float32Array([t]), shape: [] };
    if (this.config.emaDecay !== undefined) feeds.ema_decay = { data: new Float32Array([emaDecayAt(this.config.emaDecay, t)]), shape: [] };
    for (const s of this.slots) {
      feeds[`param.${s.name}`] = { data: s.param.data, shape: s.param.shape };
      feeds[`adam_m.${s.name}`] = { data: s.m, shape: [s.param.size] };
      feeds[`adam_v.${s.name}`] = { data: s.v, shape: [s.param.size] };
      if (s.ema) feeds[`ema.${s.name}`] = { data: s.ema, shape: [s.param.size] };
    }
    for (const [name, p] of this.frozen) feeds[`param.${name}`] = { data: p.data, shape: p.shape };
    Object.assign(feeds, fillRandomInputs(this.randomInputs, this.rng, this.symbolDims(feeds)));
    const out = await this.graph.run(feeds as never) as Record<string, HostTensor>;
    for (const s of this.slots) {
      s.param.data = out[`new.param.${s.name}`].data as Float32Array;
      s.m = out[`new.adam_m.${s.name}`].data as Float32Array;
      s.v = out[`new.adam_v.${s.name}`].data as Float32Array;
      if (s.ema) s.ema = out[`new.ema.${s.name}`].data as Float32Array;
    }
    this.stepCount = t;
    return { loss: out.loss.data[0] as number, gradNorm: out.gradNorm.data[0] as number, step: t };
  }

  private symbolDims(feeds: Record<string, HostTensor>): Map<string, number> {
    const dims = new Map<string, number>();
    for (const i of this.graph.model.inputs) {
      const f = feeds[i.name];
      if (f) i.shape.forEach((d, k) => typeof d === "string" && dims.set(d, f.shape[k]));
    }
    return dims;
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
      [s.m, s.v] = [Float32Array.from(m), Float32Array.from(v)];
      const e = saved.ema?.get(s.name);
      if (s.ema && e) s.ema = Float32Array.from(e);
    }
    this.stepCount = saved.step;
    this.rng = new Rng(saved.rng);
  }

  dispose(): void {
    this.graph.dispose();
  }
}
