// Module and Parameter: named, nested trainable state. A module's forward builds graph nodes; its
// parameters appear in the graph as inputs (training) or constants (inference) once bound.
import { ImagenError, ValueError } from "../util/errors.js";
import { constant, input } from "../graph/build.js";
import { type Tensor, withScope } from "../graph/tensor.js";

let shapeOnlyDepth = 0;

/**
 * Builds modules whose parameters have shapes but no values (pass a ShapeOnlyRng): for counting the
 * parameters and FLOPs of models too large to allocate, such as the paper's 2B-parameter base U-Net.
 */
export function shapeOnly<T>(build: () => T): T {
  shapeOnlyDepth++;
  try {
    return build();
  } finally {
    shapeOnlyDepth--;
  }
}

export class Parameter {
  private bound: Tensor | null = null;
  /** The number of values (also for a shape-only parameter, whose `data` is empty). */
  readonly size: number;
  constructor(
    public data: Float32Array,
    readonly shape: readonly number[],
    /** Frozen parameters get no gradient and no optimizer state. */
    public trainable = true,
    /** Whether weight decay applies (off for norms and biases by convention). */
    readonly decay = true,
  ) {
    const n = shape.reduce((p, d) => p * d, 1);
    this.size = n;
    if (n !== data.length && !(shapeOnlyDepth > 0 && data.length === 0)) {
      throw new ValueError(`Parameter: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    }
  }

  /** The graph tensor standing for this parameter in the graph being built. */
  get t(): Tensor {
    if (!this.bound) {
      throw new ImagenError("Parameter: not bound to a graph; build graphs through bindParameters() (compileModule and the trainer do this)");
    }
    return this.bound;
  }

  bind(t: Tensor | null): void {
    this.bound = t;
  }
}

export abstract class Module {
  /** Dotted path from the root module, e.g. "down.0.res.1"; set when a parent registers this module. */
  path = "";
  private readonly params = new Map<string, Parameter>();
  private readonly children = new Map<string, Module>();

  protected addParameter(name: string, p: Parameter): Parameter {
    this.params.set(name, p);
    return p;
  }

  protected addModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    m.setPath(this.path ? `${this.path}.${name}` : name);
    return m;
  }

  private setPath(path: string): void {
    this.path = path;
    for (const [name, child] of this.children) child.setPath(`${path}.${name}`);
  }

  /** Runs forward inside this module's scope, so shape errors name the module path. */
  call<A extends unknown[], R>(this: Module & { forward(...args: A): R }, ...args: A): R {
    return withScope(this.path || this.constructor.name, () => this.forward(...args));
  }

  *namedParameters(prefix = ""): Generator<[string, Parameter]> {
    for (const [name, p] of this.params) yield [prefix + name, p];
    for (const [name, child] of this.children) yield* child.namedParameters(`${prefix}${name}.`);
  }

  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix.replace(/\.$/, ""), this];
    for (const [name, child] of this.children) yield* child.namedModules(`${prefix}${name}.`);
  }

  parameterCount(): number {
    let n = 0;
    for (const [, p] of this.namedParameters()) n += p.size;
    return n;
  }

  stateDict(): Map<string, { shape: readonly number[]; data: Float32Array }> {
    const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const [name, p] of this.namedParameters()) out.set(name, { shape: p.shape, data: p.data });
    return out;
  }

  /** Copies values in by name. Strict (the default) requires exactly the same names; shapes must match. */
  loadStateDict(state: Map<string, { shape: readonly number[]; data: Float32Array }>, strict = true): void {
    const mine = new Map(this.namedParameters());
    const missing = [...mine.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !mine.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      throw new ValueError(`loadStateDict: missing [${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ", ..." : ""}], `
        + `unexpected [${unexpected.slice(0, 8).join(", ")}${unexpected.length > 8 ? ", ..." : ""}]; pass strict=false to load a subset`);
    }
    for (const [name, p] of mine) {
      const s = state.get(name);
      if (!s) continue;
      if (s.shape.length !== p.shape.length || s.shape.some((d, i) => d !== p.shape[i])) {
        throw new ValueError(`loadStateDict: "${name}" has shape [${s.shape.join(", ")}], the module expects [${p.shape.join(", ")}]`);
      }
      p.data = Float32Array.from(s.data);
    }
  }
}

export type BindMode = "input" | "constant";

/**
 * Binds every parameter of `module` to a graph tensor: an input named after the parameter
 * ("input" mode, for training graphs) or a constant holding its values ("constant" mode, for
 * inference, letting ORT pre-pack weights). Returns the bound inputs in order; call the result's
 * release() when the graph is built.
 */
export function bindParameters(module: Module, mode: BindMode, prefix = ""): { inputs: Tensor<"input">[]; release: () => void } {
  const inputs: Tensor<"input">[] = [];
  const params = [...module.namedParameters()];
  for (const [name, p] of params) {
    if (mode === "input") {
      const t = input(prefix + name, p.shape);
      inputs.push(t);
      p.bind(t);
    } else {
      p.bind(constant(p.data, p.shape));
    }
  }
  return { inputs, release: () => params.forEach(([, p]) => p.bind(null)) };
}
