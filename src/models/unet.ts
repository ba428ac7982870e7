// The Imagen U-Net (App. F) and Efficient U-Net (App. B.1) in one configurable module: base models take
// the noisy image; super-resolution models also take the upsampled, noise-augmented low-res image and
// its augmentation level. Text enters through pooled conditioning and attention over the token sequence.
import { ValueError } from "../util/errors.js";
import { ZeroRng, type Rng } from "../util/rng.js";
import { silu } from "../graph/composite.js";
import { add, concat, mul, sub, unsqueeze } from "../graph/ops-basic.js";
import { constant } from "../graph/build.js";
import type { Tensor } from "../graph/tensor.js";
import { Conv2d, GroupNorm, LayerNorm, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { AttnBlock, Downsample, groupsFor, ResBlock, Upsample, type TextAttention } from "./blocks.js";
import { TextPool, TimeEmbedding, type TextPooling } from "./embeddings.js";
import { TextLayers, textLayersPrefix, tokenPositionFeatureCount, tokenPositionFeatures } from "./text-layers.js";
import { checkLayoutGrid, LayoutMap, TokenPlacement } from "./layout-map.js";
import { checkTextStats, type TextStats } from "../text/embedding-stats.js";

export interface UNetConfig {
  imageSize: number;
  inChannels: number;
  outChannels: number;
  /** Base width; level l has channels * channelMults[l]. */
  channels: number;
  channelMults: number[];
  /** ResNet blocks per level (Efficient U-Net puts more at low resolution). */
  numResBlocks: number[];
  /** Levels (0 = full resolution) that get attention blocks. */
  attnLevels: number[];
  headDim: number;
  textDim: number;
  /**
   * Project the layer-normed text sequence once to this width before pooling and attention (as
   * imagen-pytorch does); without it every attention layer projects the encoder's full width.
   */
  textProjDim?: number;
  /**
   * Fixed per-channel statistics of the text encoder's output over the training captions: the text is
   * standardised with them (padded positions kept at zero) before the text LayerNorm. Not trained.
   */
  textStats?: TextStats;
  /**
   * Trainable transformer layers over the layer-normed text (learned positions, zero-initialised
   * outputs; src/models/text-layers.ts), before pooling and attention. 0 or no key: none (Imagen).
   */
  textLayers?: number;
  /**
   * Attention blocks add a learned, zero-initialised projection of each image token's 2-D position
   * (src/models/blocks.ts, `positions`), so that text about places ("to the left of") can bind to them.
   * Off or no key: none (Imagen, where convolution padding is the only position signal).
   */
  attnPositions?: boolean;
  /**
   * Adds a learned, zero-initialised projection of each text token's index (fixed sine/cosine features,
   * `tokenPositionFeatures`) to the text sequence after the text layers, so that attention can tell the
   * first-named object's words from the second's ("a red circle to the left of a blue square" and its
   * mirror hold the same words). Off or no key: none (Imagen relies on T5-XXL's contextual embeddings).
   */
  textPositions?: boolean;
  /**
   * A layout map: the text through a small MLP to a G x G spatial feature map added to every ResBlock's output
   * (src/models/layout-map.ts), a direct path from words to places; zero-initialised. 0 or no key: none (Imagen).
   */
  layoutMap?: number;
  /**
   * Token placement: each text token's own place logits over a G x G grid and its content (zero-initialised),
   * summed into a map added to every ResBlock's output (src/models/layout-map.ts). 0 or no key: none (Imagen).
   */
  tokenPlacement?: number;
  textAttention: TextAttention;
  selfAttention: boolean;
  textPooling: TextPooling;
  /** Efficient U-Net layout: downsample first, upsample last, one skip per level scaled by 1/sqrt(2). */
  efficient: boolean;
  /** Super-resolution: condition on the low-res image and its augmentation level. */
  lowResCond: boolean;
  dropout: number;
}

export interface UNetInputs {
  x: Tensor; // [B, C, S, S] noisy image
  t: Tensor; // [B] diffusion time in [0, 1]
  text: Tensor; // [B, L, Dt] text-encoder output
  mask: Tensor; // [B, L] 1 for tokens, 0 for padding (all 0 for a dropped caption)
  lowRes?: Tensor; // [B, C, S, S] upsampled, noise-augmented low-res image (SR only)
  augLevel?: Tensor; // [B] augmentation level in [0, 1] (SR only)
  /** `contextText(text, mask)` when the caller has it already (a training loss that reads it too). */
  context?: Tensor;
}

export function checkUNetConfig(c: UNetConfig): void {
  const levels = c.channelMults.length;
  const bad = (what: string, got: unknown, want: string) => new ValueError(`UNet ${what}: expected ${want}, got ${JSON.stringify(got)}`);
  if (levels < 1) throw bad("channelMults", c.channelMults, "at least one level");
  if (c.numResBlocks.length !== levels || c.numResBlocks.some((n) => !Number.isInteger(n) || n < 1)) {
    throw bad("numResBlocks", c.numResBlocks, `${levels} integers >= 1 (one per level)`);
  }
  if (c.imageSize % 2 ** (levels - 1) !== 0) throw bad("imageSize", c.imageSize, `a multiple of ${2 ** (levels - 1)} for ${levels} levels`);
  if (c.textProjDim !== undefined && !(Number.isInteger(c.textProjDim) && c.textProjDim >= 1)) throw bad("textProjDim", c.textProjDim, "an integer >= 1, or no key");
  if (c.attnPositions !== undefined && typeof c.attnPositions !== "boolean") throw bad("attnPositions", c.attnPositions, "true, false or no key");
  if (c.textPositions !== undefined && typeof c.textPositions !== "boolean") throw bad("textPositions", c.textPositions, "true, false or no key");
  if (c.textLayers !== undefined && !(Number.isInteger(c.textLayers) && c.textLayers >= 0 && c.textLayers <= 8)) throw bad("textLayers", c.textLayers, "an integer from 0 to 8, or no key");
  if (c.layoutMap !== undefined && c.layoutMap !== 0) checkLayoutGrid(c.layoutMap, c.channelMults.map((_, l) => c.imageSize / 2 ** l));
  if (c.tokenPlacement !== undefined && c.tokenPlacement !== 0) checkLayoutGrid(c.tokenPlacement, c.channelMults.map((_, l) => c.imageSize / 2 ** l), "tokenPlacement");
  if (c.textStats !== undefined) checkTextStats(c.textStats, c.textDim, "UNet textStats");
  if (c.attnLevels.some((l) => !Number.isInteger(l) || l < 0 || l >= levels)) throw bad("attnLevels", c.attnLevels, `levels in 0..${levels - 1}`);
  for (const m of c.channelMults) {
    const ch = c.channels * m;
    if (ch % c.headDim !== 0 && ch > c.headDim) throw bad("headDim", c.headDim, `a divisor of every attention width (${ch})`);
  }
}

/** (text - mean) / std per channel, times the mask so padded positions stay zero. */
function standardise(text: Tensor, mask: Tensor, s: TextStats): Tensor {
  const d = s.mean.length;
  const centred = sub(text, constant(Float32Array.from(s.mean), [d]));
  return mul(mul(centred, constant(Float32Array.from(s.std, (v) => 1 / v), [d])), unsqueeze(mask, 2));
}

const heads = (ch: number, headDim: number) => Math.max(1, Math.floor(ch / headDim));

interface Level {
  down: Downsample | null;
  res: ResBlock[];
  attn: (AttnBlock | null)[];
  downAfter: Downsample | null;
}

interface UpLevel {
  res: ResBlock[];
  attn: (AttnBlock | null)[];
  up: Upsample | null;
}

export class UNet extends Module {
  readonly timeEmb: TimeEmbedding; readonly augEmb: TimeEmbedding | null; readonly textNorm: LayerNorm; readonly textPool: TextPool;
  readonly textProj: Linear | null;
  readonly textLayers: TextLayers | null;
  readonly textPos: Linear | null;
  readonly layout: LayoutMap | null;
  readonly placement: TokenPlacement | null;
  readonly convIn: Conv2d; readonly normOut: GroupNorm; readonly convOut: Conv2d;
  readonly levels: Level[] = []; readonly upLevels: UpLevel[] = [];
  readonly mid: { res1: ResBlock; attn: AttnBlock | null; res2: ResBlock };
  readonly skipScale: number;

  constructor(readonly config: UNetConfig, rng: Rng) {
    super();
    checkUNetConfig(config);
    const c = config;
    const ch = c.channelMults.map((m) => m * c.channels);
    const cond = 4 * c.channels;
    this.skipScale = c.efficient ? Math.SQRT1_2 : 1;
    this.timeEmb = this.addModule("time_emb", new TimeEmbedding(c.channels, cond, rng));
    this.augEmb = c.lowResCond ? this.addModule("aug_emb", new TimeEmbedding(c.channels, cond, rng)) : null;
    this.textNorm = this.addModule("text_norm", new LayerNorm(c.textDim));
    this.textProj = c.textProjDim ? this.addModule("text_proj", new Linear(c.textDim, c.textProjDim, rng)) : null;
    const ctxDim = c.textProjDim ?? c.textDim;
    this.textPool = this.addModule("text_pool", new TextPool(ctxDim, cond, c.textPooling, rng));
    this.convIn = this.addModule("conv_in", new Conv2d(c.inChannels * (c.lowResCond ? 2 : 1), c.channels, 3, rng, { padding: 1 }));
    const attnOpts = { textDim: ctxDim, text: c.textAttention, selfAttention: c.selfAttention, positions: c.attnPositions === true };
    const attnAt = (l: number, width: number, name: string) => c.attnLevels.includes(l)
      ? this.addModule(name, new AttnBlock(width, rng, { ...attnOpts, heads: heads(width, c.headDim) }))
      : null;

    const skips: number[] = [c.channels];
    let cur = c.channels;
    for (let l = 0; l < ch.length; l++) {
      const p = `down.${l}`;
      const level: Level = { down: null, res: [], attn: [], downAfter: null };
      if (c.efficient && l > 0) level.down = this.addModule(`${p}.downsample`, new Downsample(cur, ch[l], rng));
      if (c.efficient && l > 0) cur = ch[l];
      for (let j = 0; j < c.numResBlocks[l]; j++) {
        level.res.push(this.addModule(`${p}.res.${j}`, new ResBlock(cur, ch[l], cond, rng, c.dropout)));
        cur = ch[l];
        level.attn.push(attnAt(l, cur, `${p}.attn.${j}`));
        if (!c.efficient) skips.push(cur);
      }
      if (c.efficient) skips.push(cur);
      if (!c.efficient && l < ch.length - 1) {
        level.downAfter = this.addModule(`${p}.downsample`, new Downsample(cur, cur, rng));
        skips.push(cur);
      }
      this.levels.push(level);
    }
    const midAttn = c.selfAttention || c.textAttention !== "none";
    this.mid = {
      res1: this.addModule("mid.res1", new ResBlock(cur, cur, cond, rng, c.dropout)),
      attn: midAttn ? this.addModule("mid.attn", new AttnBlock(cur, rng, { ...attnOpts, heads: heads(cur, c.headDim) })) : null,
      res2: this.addModule("mid.res2", new ResBlock(cur, cur, cond, rng, c.dropout)),
    };
    if (c.efficient) skips.shift(); // the efficient layout has one skip per level, not one for conv_in
    for (let l = ch.length - 1; l >= 0; l--) {
      const p = `up.${l}`;
      const level: UpLevel = { res: [], attn: [], up: null };
      const blocks = c.efficient ? c.numResBlocks[l] : c.numResBlocks[l] + 1;
      for (let j = 0; j < blocks; j++) {
        const takesSkip = !c.efficient || j === 0;
        const cin = cur + (takesSkip ? (skips.pop() as number) : 0);
        level.res.push(this.addModule(`${p}.res.${j}`, new ResBlock(cin, ch[l], cond, rng, c.dropout)));
        cur = ch[l];
        level.attn.push(attnAt(l, cur, `${p}.attn.${j}`));
      }
      if (l > 0) {
        const next = c.efficient ? ch[l - 1] : cur;
        level.up = this.addModule(`${p}.upsample`, new Upsample(cur, next, rng));
        cur = next;
      }
      this.upLevels.push(level);
    }
    this.normOut = this.addModule("norm_out", new GroupNorm(groupsFor(cur), cur));
    this.convOut = this.addModule("conv_out", new Conv2d(cur, c.outChannels, 3, rng, { padding: 1 }));
    // Last, from its own stream, so that U-Nets without text layers initialise exactly as before.
    this.textLayers = c.textLayers ? this.addModule(textLayersPrefix.slice(0, -1), new TextLayers(c.textDim, c.textLayers, rng.split("text_layers"))) : null;
    // Zero weights drawn from no stream, as the attention positions.
    this.textPos = c.textPositions ? this.addModule("text_pos", new Linear(tokenPositionFeatureCount, c.textDim, new ZeroRng(), { bias: false })) : null;
    this.textPos?.weight.data.fill(0);
    // Its own stream too; every ResBlock's output receives it, in the order the forward pass runs them.
    const resBlocks = [...this.levels.flatMap((l) => l.res), this.mid.res1, this.mid.res2, ...this.upLevels.flatMap((l) => l.res)];
    this.layout = c.layoutMap ? this.addModule("layout", new LayoutMap(ctxDim, cond, c.layoutMap, resBlocks.map((r) => r.cout), rng.split("layout"))) : null;
    this.placement = c.tokenPlacement ? this.addModule("place", new TokenPlacement(ctxDim, c.tokenPlacement, resBlocks.map((r) => r.cout), rng.split("place"))) : null;
  }

  /** The text as attention and the maps read it: standardised, normed, through the text layers, plus positions, projected. */
  contextText(encoded: Tensor, mask: Tensor): Tensor {
    const c = this.config;
    const standardised = this.textNorm.call(c.textStats ? standardise(encoded, mask, c.textStats) : encoded);
    const layered = this.textLayers ? this.textLayers.call(standardised, mask) : standardised;
    const L = encoded.shape[1] as number;
    const normed = this.textPos ? add(layered, this.textPos.call(constant(tokenPositionFeatures(L), [1, L, tokenPositionFeatureCount]))) : layered;
    return this.textProj ? this.textProj.call(normed) : normed;
  }

  /** Predicts the model output (eps, v or x0 by the stage's parameterisation): [B, outChannels, S, S]. */
  forward(inp: UNetInputs, training = false): Tensor {
    const c = this.config;
    if (c.lowResCond && (!inp.lowRes || !inp.augLevel)) throw new ValueError("UNet: a super-resolution U-Net needs lowRes and augLevel inputs");
    const text = inp.context ?? this.contextText(inp.text, inp.mask);
    let cond = add(this.timeEmb.call(inp.t), this.textPool.call(text, inp.mask));
    if (this.augEmb && inp.augLevel) cond = add(cond, this.augEmb.call(inp.augLevel));
    const map = this.layout ? this.layout.call(text, inp.mask, cond) : null;
    const places = this.placement ? this.placement.call(text, inp.mask) : null;
    let placed = 0;
    const res = (r: ResBlock, x: Tensor) => {
      let y = r.call(x, cond, training);
      if (this.layout && map) y = this.layout.addTo(placed, y, map);
      if (this.placement && places) y = this.placement.addTo(placed, y, places);
      placed++;
      return y;
    };
    let h = this.convIn.call(c.lowResCond && inp.lowRes ? concat([inp.x, inp.lowRes], 1) : inp.x);
    const stack: Tensor[] = c.efficient ? [] : [h];
    const attn = (a: AttnBlock | null, x: Tensor) => (a ? a.call(x, text, inp.mask) : x);
    for (const level of this.levels) {
      if (level.down) h = level.down.call(h);
      level.res.forEach((r, j) => {
        h = attn(level.attn[j], res(r, h));
        if (!c.efficient) stack.push(h);
      });
      if (c.efficient) stack.push(h);
      if (level.downAfter) {
        h = level.downAfter.call(h);
        stack.push(h);
      }
    }
    h = res(this.mid.res2, attn(this.mid.attn, res(this.mid.res1, h)));
    for (const level of this.upLevels) {
      level.res.forEach((r, j) => {
        if (!c.efficient || j === 0) {
          const skip = stack.pop() as Tensor;
          h = concat([h, this.skipScale === 1 ? skip : mul(skip, this.skipScale)], 1);
        }
        h = attn(level.attn[j], res(r, h));
      });
      if (level.up) h = level.up.call(h);
    }
    return this.convOut.call(silu(this.normOut.call(h)));
  }
}
