// The reference Imagen-style U-Net of shared/reference/torch_unet.py (presets tiny / b64 / b128), rebuilt
// from imagen-ts modules with the same state_dict names, plus a FLOP counter that walks the built graph.
// It is the network the benchmarks run against PyTorch; see the docstring of torch_unet.py.
import { Rng } from "../src/util/rng.js";
import { constant, input } from "../src/graph/build.js";
import { topoSort } from "../src/graph/autodiff.js";
import { attention, multiHeadAttention, silu, upsampleNearest } from "../src/graph/composite.js";
import { add, concat, cos, mean, mul, reshape, sin, split, transpose } from "../src/graph/ops-basic.js";
import type { Dim, Tensor } from "../src/graph/tensor.js";
import { bindParameters, Module } from "../src/nn/module.js";
import { Conv2d, GroupNorm, LayerNorm, Linear } from "../src/nn/layers.js";
import { compile, type CompiledGraph, type SessionOptions } from "../src/runtime/session.js";

export interface RefUNetConfig {
  base: number;
  imageSize: number;
  attnResolutions: readonly number[];
  textLen: number;
  textDim: number;
  channelMults: readonly number[];
  numResBlocks: number;
  inChannels: number;
  outChannels: number;
  headDim: number;
  gnGroups: number;
  gnEps: number;
  lnEps: number;
  maxPeriod: number;
}

const common = {
  channelMults: [1, 2, 3, 4], numResBlocks: 2, inChannels: 3, outChannels: 3, headDim: 64, gnGroups: 32,
  gnEps: 1e-5, lnEps: 1e-5, maxPeriod: 10000,
} as const;

export const presets = {
  tiny: { ...common, base: 32, imageSize: 32, attnResolutions: [8, 4], textLen: 12, textDim: 80 },
  b64: { ...common, base: 64, imageSize: 64, attnResolutions: [16, 8], textLen: 64, textDim: 512 },
  b128: { ...common, base: 128, imageSize: 64, attnResolutions: [16, 8], textLen: 64, textDim: 512 },
} satisfies Record<string, RefUNetConfig>;

export type PresetName = keyof typeof presets;

export function isPreset(name: string): name is PresetName {
  return Object.hasOwn(presets, name);
}

/** The float32 constant 2^-0.5 by which every skip is scaled before the concat. */
const skipScale = Math.fround(2 ** -0.5);

/** A list of child modules named "0", "1", ... (PyTorch's nn.ModuleList). */
class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];
  push(m: M): M {
    this.items.push(m);
    return this.addModule(String(this.items.length - 1), m);
  }
}

export class ResBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly film: Linear;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly skip: Conv2d | null;
  constructor(cin: number, readonly cout: number, cfg: RefUNetConfig, rng: Rng) {
    super();
    this.norm1 = this.addModule("norm1", new GroupNorm(cfg.gnGroups, cin, cfg.gnEps));
    this.conv1 = this.addModule("conv1", new Conv2d(cin, cout, 3, rng, { padding: 1 }));
    this.film = this.addModule("film", new Linear(4 * cfg.base, 2 * cout, rng));
    this.norm2 = this.addModule("norm2", new GroupNorm(cfg.gnGroups, cout, cfg.gnEps));
    this.conv2 = this.addModule("conv2", new Conv2d(cout, cout, 3, rng, { padding: 1 }));
    this.skip = cin !== cout ? this.addModule("skip", new Conv2d(cin, cout, 1, rng)) : null;
  }

  /** h [B, cin, H, W]; embAct = SiLU(emb) [B, E] (shared by every block, as torch recomputes the same). */
  forward(h: Tensor, embAct: Tensor): Tensor {
    let r = this.conv1.call(silu(this.norm1.call(h))); // [B, cout, H, W]
    const [scale, shift] = split(this.film.call(embAct), 1, [this.cout, this.cout]); // [B, cout] each
    r = this.norm2.call(r, { scale, shift }); // norm2(r) * (1 + scale) + shift, folded into one GroupNorm
    r = this.conv2.call(silu(r));
    return add(this.skip ? this.skip.call(h) : h, r); // [B, cout, H, W]
  }
}

function mha(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor {
  return heads === 1 ? attention(q, k, v) : multiHeadAttention(q, k, v, heads);
}

export class AttnBlock extends Module {
  readonly heads: number;
  readonly selfNorm: GroupNorm;
  readonly selfQkv: Linear;
  readonly selfOut: Linear;
  readonly crossNorm: LayerNorm;
  readonly crossQ: Linear;
  readonly crossKv: Linear;
  readonly crossOut: Linear;
  constructor(readonly ch: number, cfg: RefUNetConfig, rng: Rng) {
    super();
    this.heads = Math.max(1, Math.floor(ch / cfg.headDim));
    this.selfNorm = this.addModule("self_norm", new GroupNorm(cfg.gnGroups, ch, cfg.gnEps));
    this.selfQkv = this.addModule("self_qkv", new Linear(ch, 3 * ch, rng));
    this.selfOut = this.addModule("self_out", new Linear(ch, ch, rng));
    this.crossNorm = this.addModule("cross_norm", new LayerNorm(ch, cfg.lnEps));
    this.crossQ = this.addModule("cross_q", new Linear(ch, ch, rng));
    this.crossKv = this.addModule("cross_kv", new Linear(cfg.textDim, 2 * ch, rng));
    this.crossOut = this.addModule("cross_out", new Linear(ch, ch, rng));
  }

  /** x [B, C, H, W], textN [B, L, Dt] (the layer-normed text) -> [B, C, H, W]. */
  forward(x: Tensor, textN: Tensor): Tensor {
    const [b, c, hh, ww] = x.shape;
    const n = (hh as number) * (ww as number);
    const tokens = (t: Tensor) => transpose(reshape(t, [b, c, n]), [0, 2, 1]); // [B, N, C]
    const ch = this.ch;
    const [q, k, v] = split(this.selfQkv.call(tokens(this.selfNorm.call(x))), -1, [ch, ch, ch]); // 3 x [B, N, C]
    let a = add(tokens(x), this.selfOut.call(mha(q, k, v, this.heads))); // [B, N, C]
    const qc = this.crossQ.call(this.crossNorm.call(a)); // [B, N, C]
    const [kc, vc] = split(this.crossKv.call(textN), -1, [ch, ch]); // 2 x [B, L, C]
    a = add(a, this.crossOut.call(mha(qc, kc, vc, this.heads)));
    return reshape(transpose(a, [0, 2, 1]), [b, c, hh, ww]);
  }
}

/** The resampling conv, in a module of its own so its parameters are named "<level>.downsample.conv". */
class Resample extends Module {
  readonly conv: Conv2d;
  constructor(ch: number, readonly up: boolean, rng: Rng) {
    super();
    this.conv = this.addModule("conv", new Conv2d(ch, ch, 3, rng, up ? { padding: 1 } : { padding: 1, stride: 2 }));
  }

  forward(h: Tensor): Tensor {
    return this.conv.call(this.up ? upsampleNearest(h, 2) : h);
  }
}

/** One resolution level: res[j], each optionally followed by attn[j], then an optional resampling conv. */
class Level extends Module {
  readonly res = this.addModule("res", new ModuleList<ResBlock>());
  readonly attn = this.addModule("attn", new ModuleList<AttnBlock>());
  resample: Resample | null = null;
  setResample(name: "downsample" | "upsample", r: Resample): void {
    this.resample = this.addModule(name, r);
  }
}

class Middle extends Module {
  readonly res1: ResBlock;
  readonly attn: AttnBlock;
  readonly res2: ResBlock;
  constructor(ch: number, cfg: RefUNetConfig, rng: Rng) {
    super();
    this.res1 = this.addModule("res1", new ResBlock(ch, ch, cfg, rng));
    this.attn = this.addModule("attn", new AttnBlock(ch, cfg, rng));
    this.res2 = this.addModule("res2", new ResBlock(ch, ch, cfg, rng));
  }

  forward(h: Tensor, embAct: Tensor, textN: Tensor): Tensor {
    return this.res2.call(this.attn.call(this.res1.call(h, embAct), textN), embAct);
  }
}

/** The forward's output and the intermediates that the parity dump records as debug.* tensors. */
export interface RefUNetTrace {
  eps: Tensor; // [B, 3, S, S]
  tSinusoidal: Tensor; // [B, C]
  emb: Tensor; // [B, 4C]
  downOut: Tensor; // [B, 4C, S/8, S/8]
  midOut: Tensor; // [B, 4C, S/8, S/8]
}

export class RefUNet extends Module {
  readonly timeFc1: Linear;
  readonly timeFc2: Linear;
  readonly textNorm: LayerNorm;
  readonly textPool: Linear;
  readonly convIn: Conv2d;
  readonly down: ModuleList<Level>;
  readonly mid: Middle;
  readonly up: ModuleList<Level>;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(readonly cfg: RefUNetConfig, seed = 0) {
    super();
    const rng = new Rng(seed).split("ref-unet");
    const { base, channelMults: mults, numResBlocks: nres } = cfg;
    const embDim = 4 * base;
    this.timeFc1 = this.addModule("time_fc1", new Linear(base, embDim, rng));
    this.timeFc2 = this.addModule("time_fc2", new Linear(embDim, embDim, rng));
    this.textNorm = this.addModule("text_norm", new LayerNorm(cfg.textDim, cfg.lnEps));
    this.textPool = this.addModule("text_pool", new Linear(cfg.textDim, embDim, rng));
    this.convIn = this.addModule("conv_in", new Conv2d(cfg.inChannels, base, 3, rng, { padding: 1 }));
    const skipWidths = [base];
    let ch = base;
    let res = cfg.imageSize;
    this.down = this.addModule("down", new ModuleList<Level>());
    mults.forEach((m, lvl) => {
      const level = this.down.push(new Level());
      for (let j = 0; j < nres; j++) {
        level.res.push(new ResBlock(ch, base * m, cfg, rng));
        ch = base * m;
        if (cfg.attnResolutions.includes(res)) level.attn.push(new AttnBlock(ch, cfg, rng));
        skipWidths.push(ch);
      }
      if (lvl !== mults.length - 1) {
        level.setResample("downsample", new Resample(ch, false, rng));
        skipWidths.push(ch);
        res /= 2;
      }
    });
    this.mid = this.addModule("mid", new Middle(ch, cfg, rng));
    const upLevels: Level[] = mults.map(() => new Level());
    for (let lvl = mults.length - 1; lvl >= 0; lvl--) {
      const level = upLevels[lvl];
      for (let j = 0; j < nres + 1; j++) {
        level.res.push(new ResBlock(ch + (skipWidths.pop() as number), base * mults[lvl], cfg, rng));
        ch = base * mults[lvl];
        if (cfg.attnResolutions.includes(res)) level.attn.push(new AttnBlock(ch, cfg, rng));
      }
      if (lvl !== 0) {
        level.setResample("upsample", new Resample(ch, true, rng));
        res *= 2;
      }
    }
    this.up = this.addModule("up", new ModuleList<Level>());
    upLevels.forEach((l) => this.up.push(l));
    this.normOut = this.addModule("norm_out", new GroupNorm(cfg.gnGroups, ch, cfg.gnEps));
    this.convOut = this.addModule("conv_out", new Conv2d(ch, cfg.outChannels, 3, rng, { padding: 1 }));
  }

  /** Sinusoidal embedding of t [B] -> [B, C]: cos first, frequencies a float32 constant as torch computes them. */
  timestepEmbedding(t: Tensor): Tensor {
    const half = this.cfg.base / 2;
    const negLog = Math.fround(-Math.log(this.cfg.maxPeriod));
    const freqs = Float32Array.from({ length: half }, (_, i) => Math.exp(Math.fround(Math.fround(negLog * i) / half)));
    const a = mul(reshape(t, [t.shape[0], 1]), constant(freqs, [half])); // [B, half]
    return concat([cos(a), sin(a)], -1); // [B, C]
  }

  private runLevel(level: Level, h: Tensor, embAct: Tensor, textN: Tensor, skips: Tensor[], down: boolean): Tensor {
    level.res.items.forEach((rb, j) => {
      if (!down) h = concat([h, mul(skips.pop() as Tensor, skipScale)], 1); // [B, C + Cskip, H, W]
      h = rb.call(h, embAct);
      if (level.attn.items.length > 0) h = level.attn.items[j].call(h, textN);
      if (down) skips.push(h);
    });
    if (level.resample) {
      h = level.resample.call(h);
      if (down) skips.push(h);
    }
    return h;
  }

  /** x [B, 3, S, S], t [B], text [B, L, Dt] -> eps and the debug intermediates. */
  trace(x: Tensor, t: Tensor, text: Tensor): RefUNetTrace {
    const textN = this.textNorm.call(text); // [B, L, Dt]
    const tSinusoidal = this.timestepEmbedding(t); // [B, C]
    const emb = add(this.timeFc2.call(silu(this.timeFc1.call(tSinusoidal))), this.textPool.call(mean(textN, 1))); // [B, E]
    const embAct = silu(emb);
    let h = this.convIn.call(x); // [B, C, S, S]
    const skips = [h];
    for (const level of this.down.items) h = this.runLevel(level, h, embAct, textN, skips, true);
    const downOut = h;
    h = this.mid.call(h, embAct, textN);
    const midOut = h;
    for (const level of [...this.up.items].reverse()) h = this.runLevel(level, h, embAct, textN, skips, false);
    const eps = this.convOut.call(silu(this.normOut.call(h))); // [B, 3, S, S]
    return { eps, tSinusoidal, emb, downOut, midOut };
  }

  forward(x: Tensor, t: Tensor, text: Tensor): Tensor {
    return this.trace(x, t, text).eps;
  }

  /** Input shapes for a batch dimension (a number or a symbol such as "B"). */
  inputSpecs(batch: Dim = "B") {
    const { inChannels: c, imageSize: s, textLen: l, textDim: dt } = this.cfg;
    return { x: { shape: [batch, c, s, s] }, t: { shape: [batch] }, text: { shape: [batch, l, dt] } };
  }
}

export type RefUNetGraph = CompiledGraph<ReturnType<RefUNet["inputSpecs"]>, Record<string, Tensor>>;

/**
 * Compiles the forward with the weights baked in as constants (ORT can pre-pack them). Outputs: eps, plus
 * the debug intermediates (tSinusoidal, emb, downOut, midOut) when `debug` is set.
 */
export async function compileRefUNet(model: RefUNet, options: SessionOptions & { batch?: Dim; debug?: boolean } = {}): Promise<RefUNetGraph> {
  const { batch, debug, ...session } = options;
  const bound = bindParameters(model, "constant");
  try {
    return await compile(({ x, t, text }) => {
      const tr = model.trace(x, t, text);
      const outs: Record<string, Tensor> = { eps: tr.eps };
      if (debug) Object.assign(outs, { tSinusoidal: tr.tSinusoidal, emb: tr.emb, downOut: tr.downOut, midOut: tr.midOut });
      return outs;
    }, model.inputSpecs(batch ?? "B"), session);
  } finally {
    bound.release();
  }
}

export interface FlopCount {
  conv: number;
  linear: number;
  attnMatmul: number;
  total: number;
}

/**
 * Forward FLOPs per image as torch_unet.py counts them: 2 x multiply-adds of every conv, every Linear and
 * the two attention matmuls. Found by building the batch-1 graph and walking its conv and matmul nodes;
 * a matmul whose right operand is a (transposed) parameter is a Linear, any other is an attention matmul.
 */
export function countForwardFlops(model: RefUNet): FlopCount {
  const bound = bindParameters(model, "input", "flops.");
  try {
    const specs = model.inputSpecs(1);
    const eps = model.forward(input("x", specs.x.shape), input("t", specs.t.shape), input("text", specs.text.shape));
    const out: FlopCount = { conv: 0, linear: 0, attnMatmul: 0, total: 0 };
    for (const node of topoSort([eps])) {
      const numel = node.shape.reduce<number>((p, d) => p * (d as number), 1);
      if (node.op === "conv") {
        const w = node.inputs[1].shape as number[];
        out.conv += 2 * numel * w[1] * w[2] * w[3];
      } else if (node.op === "matmul") {
        const [a, b] = node.inputs;
        const k = a.shape[a.rank - 1] as number;
        const isLinear = b.op === "transpose" && b.inputs[0].op === "input";
        if (isLinear) out.linear += 2 * numel * k;
        else out.attnMatmul += 2 * numel * k;
      }
    }
    out.total = out.conv + out.linear + out.attnMatmul;
    return out;
  } finally {
    bound.release();
  }
}
