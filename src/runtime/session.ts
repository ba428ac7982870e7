// compile(fn, specs): traces a function of symbolic tensors, emits ONNX, opens (and caches) an ONNX Runtime
// session and returns a typed async function over host tensors. Sessions are freed with dispose().
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import * as ort from "onnxruntime-node";
import { ValueError } from "../util/errors.js";
import { input } from "../graph/build.js";
import { emitModel, nchwcDomain, type EmittedModel } from "../graph/emit.js";
import { encodeModel, OnnxDataType } from "../graph/onnx-proto.js";
import { fmtShape, type DType, type Shape, Tensor } from "../graph/tensor.js";
import { dtypeOfData, type HostData, type HostTensor } from "./host.js";
import { nativeBinding, onnxTypes, type NativeIo } from "./native.js";

export interface InputSpec {
  shape: Shape;
  dtype?: DType;
}

export type ExecutionProvider = "cpu" | "webgpu";

export interface SessionOptions {
  /** Intra-op threads; default: the machine's cores. */
  threads?: number;
  provider?: ExecutionProvider;
  optimization?: "disabled" | "basic" | "extended" | "all";
  /**
   * Spell out ORT's blocked (NCHWc) conv kernels for convs whose weights are computed in the graph (training
   * steps), on the CPU provider; default on. The environment variable IMAGEN_NCHWC=0 turns it off.
   */
  nchwc?: boolean;
  /**
   * ORT's memory pattern (enableMemPattern): after the first runs it plans one block for all intermediates.
   * Default on; training steps turn it off, where it held 3.3 GB against 2.1 GB without it on the reference
   * U-Net's b64 step (batch 8) at the same speed.
   */
  memoryPattern?: boolean;
  /** Write the optimised model ORT runs to this path (for profiling and debugging). */
  optimizedModelPath?: string;
  /**
   * Run through imagen-ts' native binding (src/runtime/native.ts) where it is built, on the CPU provider:
   * outputs can then be written into arrays the caller hands in (CompiledGraph.run's `into`). Default on;
   * IMAGEN_NATIVE=0 turns it off everywhere.
   */
  native?: boolean;
  /**
   * On the native binding, lower GroupNorm, SiLU's backward and spatial pads to imagen-ts' fused kernels
   * (native/ort_run.cc). Default on; IMAGEN_FUSED=0 turns them off (the graph then runs ORT's own ops only).
   */
  fusedKernels?: boolean;
  /**
   * With the fused kernels, compute the 3x3 "same" convs that suit it, and their gradients, by Winograd
   * F(2x2 or 4x4, 3x3) (src/graph/lower-rules.ts). Default on; IMAGEN_WINOGRAD=0 turns it off.
   */
  winograd?: boolean;
}

const defaults: Required<Omit<SessionOptions, "optimizedModelPath" | "fusedKernels" | "winograd">> = {
  threads: envThreads() ?? availableParallelism(),
  provider: "cpu",
  optimization: "all",
  nchwc: process.env.IMAGEN_NCHWC !== "0",
  memoryPattern: true,
  native: true,
};

let nchwcProbe: Promise<number> | undefined;

/**
 * ORT's NCHWc channel block size on this CPU (16 with AVX-512, 8 with AVX2), read from the channel count
 * ReorderInput pads 4 channels to; 0 where this build has no NCHWc kernels.
 */
export function nchwcBlockSize(): Promise<number> {
  nchwcProbe ??= (async () => {
    try {
      const bytes = encodeModel(
        {
          name: "nchwc_probe",
          nodes: [{ opType: "ReorderInput", domain: nchwcDomain, inputs: ["x"], outputs: ["y"] }],
          inputs: [{ name: "x", dataType: OnnxDataType.FLOAT, shape: [1, 4, 1, 1] }],
          outputs: [{ name: "y", dataType: OnnxDataType.FLOAT, shape: [1, -1, 1, 1] }],
          initializers: [],
        },
        { extraOpsets: [{ domain: nchwcDomain, version: 1 }] },
      );
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ["cpu"], intraOpNumThreads: 1 });
      const out = await session.run({ x: new ort.Tensor("float32", new Float32Array(4), [1, 4, 1, 1]) });
      const block = Number(out.y.dims[1]);
      await session.release();
      return block === 8 || block === 16 ? block : 0;
    } catch {
      return 0;
    }
  })();
  return nchwcProbe;
}

type Outputs<R> = R extends Tensor ? HostTensor : { [K in keyof R]: HostTensor };
export type Feeds<S> = { [K in keyof S]: HostTensor };

/** An open session: runs feeds to outputs; `into` (by output name) may receive outputs in place. */
interface Backend {
  /** Whether outputs named in run()'s `into` are written into those arrays (else they are new arrays). */
  readonly writesInPlace: boolean;
  run(feeds: Record<string, HostTensor>, into: Record<string, HostData> | undefined, model: EmittedModel): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

const ortTypes: Record<DType, "float32" | "int64" | "bool"> = { float32: "float32", int64: "int64", bool: "bool" };

class OrtNodeBackend implements Backend {
  readonly writesInPlace = false;
  constructor(private readonly session: ort.InferenceSession) {}

  async run(feeds: Record<string, HostTensor>, _into: unknown, model: EmittedModel): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const spec of model.inputs) {
      const t = feeds[spec.name];
      ortFeeds[spec.name] = new ort.Tensor(ortTypes[spec.dtype], t.data, t.shape as number[]);
    }
    const out = await this.session.run(ortFeeds);
    const result: Record<string, HostTensor> = {};
    for (const o of model.outputs) result[o.name] = { data: out[o.name].data as HostData, shape: [...out[o.name].dims] };
    return result;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

class NativeBackend implements Backend {
  readonly writesInPlace = true;
  constructor(private readonly handle: object) {}

  async run(feeds: Record<string, HostTensor>, into: Record<string, HostData> | undefined, model: EmittedModel): Promise<Record<string, HostTensor>> {
    const binding = nativeBinding();
    if (!binding) throw new ValueError("run: the native ONNX Runtime binding is no longer loaded");
    const inputs: NativeIo[] = model.inputs.map((spec) => [spec.name, feeds[spec.name].data, onnxTypes[spec.dtype], feeds[spec.name].shape]);
    const symbols = new Map<string, number>();
    if (into) for (const i of model.inputs) i.shape.forEach((d, k) => typeof d === "string" && symbols.set(d, feeds[i.name].shape[k]));
    const outputs: NativeIo[] = model.outputs.map((o) => {
      const buf = into?.[o.name];
      return [o.name, buf ?? null, onnxTypes[o.dtype], buf ? intoShape(o, buf, symbols) : []];
    });
    const out = await binding.run(this.handle, inputs, outputs);
    const result: Record<string, HostTensor> = {};
    model.outputs.forEach((o, i) => {
      const { data, dims } = out[i];
      const host = data === null ? (outputs[i][1] as HostData) : o.dtype === "float32" ? new Float32Array(data) : o.dtype === "int64" ? new BigInt64Array(data) : new Uint8Array(data);
      result[o.name] = { data: host, shape: dims };
    });
    return result;
  }

  async release(): Promise<void> {
    nativeBinding()?.release(this.handle);
  }
}

/** The shape of an output written into a caller's array: its declared shape with symbols bound by the feeds. */
function intoShape(o: { name: string; shape: Shape; dtype: DType }, buf: HostData, symbols: ReadonlyMap<string, number>): number[] {
  const shape = o.shape.map((d) => (typeof d === "number" ? d : symbols.get(d) ?? -1));
  const size = shape.reduce((p, d) => p * d, 1);
  if (shape.includes(-1) || size !== buf.length || dtypeOfData(buf) !== o.dtype) {
    throw new ValueError(`run: the array given for output "${o.name}" holds ${buf.length} ${dtypeOfData(buf)} values; the output is ${fmtShape(o.shape)} ${o.dtype}${shape.includes(-1) ? " (a size the inputs do not fix)" : ` (${size} values)`}`);
  }
  return shape;
}

const optimizationLevels = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

async function createBackend(bytes: Uint8Array, options: SessionOptions): Promise<Backend> {
  const o = { ...defaults, ...options };
  const ortOptions = sessionOptions(options);
  const binding = o.provider === "cpu" && o.native ? nativeBinding() : null;
  if (!binding) return new OrtNodeBackend(await ort.InferenceSession.create(bytes, ortOptions));
  const handle = await binding.createSession(bytes, {
    threads: o.threads, optimization: optimizationLevels[o.optimization], memPattern: o.memoryPattern,
    config: [...(process.env.IMAGEN_SPIN === "0" ? [["session.intra_op.allow_spinning", "0"] as [string, string]] : [])], ...(o.optimizedModelPath ? { optimizedPath: o.optimizedModelPath } : {}),
  });
  return new NativeBackend(handle);
}

interface CacheEntry {
  session: Promise<Backend>;
  refs: number;
}
const sessionCache = new Map<string, CacheEntry>();

export function providerAvailable(provider: ExecutionProvider): boolean {
  return ort.listSupportedBackends().some((b) => b.name === provider);
}

/** IMAGEN_THREADS overrides the default intra-op thread count (e.g. 1 to run two trainings side by side). */
function envThreads(): number | undefined {
  const v = process.env.IMAGEN_THREADS;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ValueError(`IMAGEN_THREADS: expected an integer >= 1, got "${v}"`);
  return n;
}

function sessionOptions(o: SessionOptions): ort.InferenceSession.SessionOptions {
  const opts = { ...defaults, ...o };
  if (!Number.isInteger(opts.threads) || opts.threads < 1) {
    throw new ValueError(`session threads: expected an integer >= 1, got ${opts.threads}`);
  }
  if (opts.provider !== "cpu" && !providerAvailable(opts.provider)) {
    const have = ort.listSupportedBackends().map((b) => b.name).join(", ");
    throw new ValueError(`execution provider "${opts.provider}" is not available here (available: ${have}); use provider "cpu"`);
  }
  return {
    executionProviders: [opts.provider],
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: opts.optimization,
    enableMemPattern: opts.memoryPattern,
    // Spin-waiting threads burn the cores that other processes (a second training stage, a benchmark) need.
    ...(process.env.IMAGEN_SPIN === "0" ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
    ...(o.optimizedModelPath ? { optimizedModelFilePath: o.optimizedModelPath } : {}),
  };
}

async function openSession(bytes: Uint8Array, options: SessionOptions): Promise<{ key: string; session: Backend }> {
  const key = createHash("sha256").update(bytes).update(JSON.stringify(options)).digest("hex");
  let entry = sessionCache.get(key);
  if (!entry) {
    entry = { session: createBackend(bytes, options), refs: 0 };
    sessionCache.set(key, entry);
  }
  entry.refs++;
  try {
    return { key, session: await entry.session };
  } catch (e) {
    sessionCache.delete(key);
    const provider = options.provider ?? defaults.provider;
    if (provider !== "cpu") {
      const reason = String(e instanceof Error ? e.message : e).split("\n")[0].slice(0, 300);
      throw new ValueError(`execution provider "${provider}" could not start (${reason}); use provider "cpu", or check the GPU driver (WebGPU needs Vulkan here)`);
    }
    throw e;
  }
}

/** A compiled graph: call run() with host tensors by input name. */
export class CompiledGraph<S = Record<string, InputSpec>, R = Record<string, Tensor>> {
  private disposed = false;
  constructor(
    readonly model: EmittedModel,
    private readonly session: Backend,
    private readonly cacheKey: string,
    private readonly single: boolean,
  ) {}

  /** Whether run() writes the outputs named in its `into` argument into the arrays given there. */
  get writesInPlace(): boolean {
    return this.session.writesInPlace;
  }

  /**
   * Runs the graph. `into` (by output name) offers arrays for outputs of fixed size to be written in place of
   * new ones, where `writesInPlace` (the native binding); the result then holds those arrays. They must not be
   * any of the feeds' arrays.
   */
  async run(feeds: Feeds<S>, into?: Record<string, HostData>): Promise<Outputs<R>> {
    if (this.disposed) throw new ValueError("CompiledGraph.run: this graph was disposed; compile it again");
    const env = new Map<string, number>();
    const given = feeds as Record<string, HostTensor>;
    for (const spec of this.model.inputs) {
      const t = given[spec.name];
      if (!t) throw new ValueError(`run: missing input "${spec.name}"; expected inputs ${this.model.inputs.map((i) => i.name).join(", ")}`);
      checkFeed(spec, t, env);
    }
    for (const name of Object.keys(given)) {
      if (!this.model.inputs.some((i) => i.name === name)) throw new ValueError(`run: unknown input "${name}"`);
    }
    if (into) {
      const fed = new Set(Object.values(given).map((t) => t.data.buffer));
      for (const [name, buf] of Object.entries(into)) {
        if (!this.model.outputs.some((o) => o.name === name)) throw new ValueError(`run: "into" names "${name}", which is not an output`);
        if (fed.has(buf.buffer)) throw new ValueError(`run: the array given for output "${name}" shares memory with an input; pass a separate array`);
      }
    }
    const result = await this.session.run(given, this.writesInPlace ? into : undefined, this.model);
    return (this.single ? result.out : result) as Outputs<R>;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const entry = sessionCache.get(this.cacheKey);
    if (entry && --entry.refs === 0) {
      sessionCache.delete(this.cacheKey);
      void entry.session.then((s) => s.release());
    }
  }
}

function checkFeed(spec: { name: string; shape: Shape; dtype: DType }, t: HostTensor, env: Map<string, number>): void {
  const dt = dtypeOfData(t.data);
  const bad = (what: string) => new ValueError(`run: input "${spec.name}" ${what}; expected ${fmtShape(spec.shape)} ${spec.dtype}, got ${fmtShape(t.shape)} ${dt}`);
  if (dt !== spec.dtype) throw bad("has the wrong dtype");
  if (t.shape.length !== spec.shape.length) throw bad("has the wrong rank");
  spec.shape.forEach((d, i) => {
    const got = t.shape[i];
    if (typeof d === "number") {
      if (d !== got) throw bad(`has size ${got} on axis ${i}`);
    } else {
      const prev = env.get(d);
      if (prev !== undefined && prev !== got) throw bad(`gives "${d}" = ${got}, but another input gave ${prev}`);
      env.set(d, got);
    }
  });
  if (t.shape.reduce((p, d) => p * d, 1) !== t.data.length) throw bad(`holds ${t.data.length} values`);
}

/** Compiles an already-built graph: `outputs` by name, `inputs` the input nodes (in feed order). */
export async function compileGraph<S, R>(
  outputs: Record<string, Tensor>, inputs: readonly Tensor<"input">[], options: SessionOptions = {}, single = false,
): Promise<CompiledGraph<S, R>> {
  const { provider, nchwc, native } = { ...defaults, ...options };
  const fusedKernels = options.fusedKernels ?? process.env.IMAGEN_FUSED !== "0";
  const nchwcBlock = provider === "cpu" && nchwc ? await nchwcBlockSize() : 0;
  // imagen-ts' fused kernels are registered by the native binding only.
  const fusedOps = provider === "cpu" && native && fusedKernels && nativeBinding() !== null;
  const winograd = options.winograd ?? process.env.IMAGEN_WINOGRAD !== "0";
  const model = emitModel(outputs, inputs, { nchwcBlock, fusedOps, winograd });
  const { key, session } = await openSession(model.bytes, options);
  return new CompiledGraph<S, R>(model, session, key, single);
}

/**
 * Traces `fn` over symbolic inputs shaped by `specs` (a dimension may be a symbol such as "B"), and
 * compiles it. `fn` returns one tensor (run() then returns one host tensor) or a record of them.
 */
export async function compile<S extends Record<string, InputSpec>, R extends Tensor | Record<string, Tensor>>(
  fn: (inputs: { [K in keyof S]: Tensor }) => R, specs: S, options: SessionOptions = {},
): Promise<CompiledGraph<S, R>> {
  const inputs = Object.entries(specs).map(([name, s]) => input(name, s.shape, s.dtype ?? "float32"));
  const symbolic = Object.fromEntries(inputs.map((t) => [t.attrs.name, t])) as { [K in keyof S]: Tensor };
  const result = fn(symbolic);
  const single = result instanceof Tensor;
  const outputs = single ? { out: result } : (result as Record<string, Tensor>);
  return compileGraph<S, R>(outputs, inputs, options, single);
}
