// ONNX lowering, one rule per primitive: each emits ONNX nodes for a graph node and returns the name of
// the value holding its result. Performance-sensitive choices (conv gradients) are made here.
import type { Conv2dGeometry, Op } from "./ops.js";
import { binaryOps, unaryOps } from "./ops.js";
import { imagenDomain, msDomain, nchwcDomain, type EmitContext } from "./emit.js";
import { adamwParamDecomposed, axpbyDecomposed, groupNormInputGradDecomposed, groupNormStatsDecomposed, siluGradDecomposed } from "./fused.js";
import { productDim, type Dim, type Tensor } from "./tensor.js";
import type { OnnxAttr } from "./onnx-proto.js";

export type LowerRule<K extends Op> = (ctx: EmitContext, node: Tensor<K>, inputs: readonly string[]) => string;

const onnxUnary: { [K in (typeof unaryOps)[number]]: string } = {
  neg: "Neg", exp: "Exp", log: "Log", sqrt: "Sqrt", reciprocal: "Reciprocal", tanh: "Tanh", sigmoid: "Sigmoid",
  erf: "Erf", sin: "Sin", cos: "Cos", abs: "Abs", relu: "Relu", sign: "Sign",
};
const onnxBinary: { [K in (typeof binaryOps)[number]]: string } = {
  add: "Add", sub: "Sub", mul: "Mul", div: "Div", maximum: "Max", minimum: "Min", less: "Less", greater: "Greater",
  equal: "Equal",
};

function convAttrs(g: Conv2dGeometry, kernel: readonly number[]) {
  return {
    kernel_shape: ctxInts(kernel),
    strides: ctxInts(g.stride),
    pads: ctxInts(g.pad),
    dilations: ctxInts(g.dilation),
    group: { type: "int" as const, value: g.groups },
  };
}

function ctxInts(v: readonly number[]) {
  return { type: "ints" as const, value: v };
}

/** The smallest image (H * W) for which an explicit NCHWc conv beats ORT's plain Conv here (measured: 1.2-1.7x
 * at 32x32 and 64x64; slower at 16x16 and below, where the per-step filter reorder weighs more). */
const nchwcMinPixels = 1024;

/**
 * A Conv whose weights are computed in the graph (a training step's parameter inputs). ORT's own NCHWc
 * rewrite only fires for constant weights; here the blocked layout is spelled out instead: the input
 * reordered to NCHWc, the filter reordered to OIHWBiBo by a Reshape/Transpose, the com.microsoft.nchwc
 * Conv, and the output reordered back. Falls back to a plain Conv when the shapes do not suit it.
 */
function convMaybeNchwc(
  ctx: EmitContext, ins: readonly string[], attrs: ReturnType<typeof convAttrs>, x: Tensor, weight: Tensor, wShape: readonly number[],
): string {
  const b = ctx.nchwcBlock;
  const [o, c, kh, kw] = wShape;
  if (!nchwcSuits(ctx, attrs, x, weight, wShape)) return ctx.op("Conv", ins, attrs);
  // [O/b, bo, C/b, bi, taps] -> [O/b, C/b, taps, bi, bo]: bo moved last, then bi past the taps with bo's
  // 16-float blocks; each step is a transpose ORT copies in runs (one 6-D perm went element by element).
  const taps = kh * kw;
  const t1 = ctx.op("Transpose", [ctx.op("Reshape", [ins[1], ctx.constI64([o / b, b, c * taps])])], { perm: ctxInts([0, 2, 1]) });
  const t2 = ctx.op("Transpose", [ctx.op("Reshape", [t1, ctx.constI64([(o / b) * (c / b), b, taps, b])])], { perm: ctxInts([0, 2, 1, 3]) });
  const wr = ctx.op("Reshape", [t2, ctx.constI64([o, c, kh, kw])]);
  return nchwcConv(ctx, [ins[0], wr, ...ins.slice(2)], attrs, o);
}

/** Whether the NCHWc Conv applies: blocked channels, a known image size of at least nchwcMinPixels, a non-constant weight. */
function nchwcSuits(ctx: EmitContext, attrs: ReturnType<typeof convAttrs>, x: Tensor, weight: Tensor, wShape: readonly number[]): boolean {
  const b = ctx.nchwcBlock;
  const [o, c] = wShape;
  const [h, w] = [x.shape[2], x.shape[3]];
  return b > 0 && attrs.group.value === 1 && c % b === 0 && o % b === 0 && typeof h === "number" && typeof w === "number"
    && h * w >= nchwcMinPixels && weight.op !== "constant";
}

/** The NCHWc Conv, its filter (ins[1]) already in OIHWBiBo order: input reordered, Conv, output reordered back. */
function nchwcConv(ctx: EmitContext, ins: readonly string[], attrs: ReturnType<typeof convAttrs>, o: number): string {
  const xr = ctx.op("ReorderInput", [ins[0]], undefined, nchwcDomain);
  const yr = ctx.op("Conv", [xr, ...ins.slice(1)], attrs, nchwcDomain);
  return ctx.op("ReorderOutput", [yr], { channels: { type: "int", value: o } }, nchwcDomain);
}

/**
 * Winograd F(m x m, 3 x 3) (Lavin and Gray 2016) for a "same" 3x3 conv (stride 1, pad 1, no dilation or groups),
 * where the native binding runs the graph: the input is cut into m x m-output tiles and transformed
 * (WinogradInput, [t^2, C, tiles], t = m + 2), the filter transformed by a product with the fixed [t^2, 9] matrix
 * G (x) G, the t^2 window positions multiplied as channel matrices by ORT's batched GEMM, and the result
 * transformed back (WinogradOutput): t^2 multiplies per m^2 outputs and channel pair instead of 9 m^2 (2.25x
 * fewer at m = 2, 4x at m = 4). The input gradient is the same conv with the flipped, transposed filter; the
 * weight gradient the transforms' adjoint (WinogradOutputGrad of dy times the transformed input, then G^T . G).
 * Each differs from the direct conv by float rounding: ~3e-7 relative at m = 2, ~1.5e-6 at m = 4 (G holds
 * sixths); the tiny reference U-Net's output moves from 2-3e-6 to 4e-6 of PyTorch's (limit 1e-5).
 *
 * Where it pays, measured on the reference U-Net's b64 training step (channels 64-448 at 64-8 px; in-process
 * A/B, 10 rounds each): m = 4 from 16x16 up (1.10x over m = 2 everywhere; at 8x8, 2x2 tiles a sample, m = 4 is
 * slower: 0.982x); every pass at every measured size up to 64x64, where at m = 2 ORT's NCHWc conv had been as
 * fast or faster for the forward and the input gradient (with m = 4 there: 1.051x); at least 32 channels in and
 * out (1.013x over no minimum: a product over the image's 3 channels is slow); at least 8x8. Up to 32x32 a conv
 * and its weight gradient share one transform of x (1.022x over sharing up to 16x16, +157 MB of peak memory: the
 * transform, 2.25x the activation at m = 4, is kept from the forward pass to the backward; at 64x64 it would be
 * +800 MB).
 */
const winogradLimits = { minPixels: 64, m4MinPixels: 256, minChannels: 32, sharedMaxPixels: 1024, maxPixels: 4096 };

function winogradSuits(ctx: EmitContext, g: Conv2dGeometry, x: Tensor, kernel: readonly number[], out: readonly Dim[]): boolean {
  const [h, w] = [x.shape[2], x.shape[3]];
  if (!ctx.winograd || typeof h !== "number" || typeof w !== "number") return false;
  const m = winogradTile(h * w);
  return g.groups === 1 && kernel[0] === 3 && kernel[1] === 3
    && g.stride.every((s) => s === 1) && g.dilation.every((d) => d === 1) && g.pad.every((p) => p === 1)
    && h % m === 0 && w % m === 0 && out[2] === h && out[3] === w
    && h * w >= winogradLimits.minPixels && h * w <= winogradLimits.maxPixels
    && Math.min(x.shape[1] as number, out[1] as number) >= winogradLimits.minChannels;
}

/** The tile size m of F(m x m, 3 x 3) for an image of `pixels`. */
function winogradTile(pixels: number): number {
  return pixels >= winogradLimits.m4MinPixels ? 4 : 2;
}

/** G, t x 3 (t = m + 2), of F(m x m, 3 x 3): the filter transform U = G g G^T. */
const winogradG: Record<number, number[][]> = {
  2: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
  4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
};

/** G (x) G as [t^2, 9] (row t a + b, column 3i + j: G[a][i] * G[b][j]), columns reversed when `flip`. */
function winogradFilterMatrix(m: number, flip: boolean): Float32Array {
  const gm = winogradG[m];
  const t = m + 2;
  const out = new Float32Array(t * t * 9);
  for (let a = 0; a < t; a++) for (let b = 0; b < t; b++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    out[(t * a + b) * 9 + (flip ? 8 - (3 * i + j) : 3 * i + j)] = gm[a][i] * gm[b][j];
  }
  return out;
}

/** A [O, C, 3, 3] filter transformed to [t^2, O, C] (flipped in space when `flip`). */
function winogradFilter(ctx: EmitContext, w: string, o: number, c: number, m: number, flip: boolean): string {
  const t2 = (m + 2) ** 2;
  const flat = ctx.op("Reshape", [w, ctx.constI64([o * c, 9])]);
  const u = ctx.op("FusedMatMul", [ctx.constF32s(winogradFilterMatrix(m, flip), [t2, 9]), flat], { transB: { type: "int", value: 1 } }, msDomain);
  return ctx.op("Reshape", [u, ctx.constI64([t2, o, c])]);
}

const intAttr = (value: number) => ({ type: "int" as const, value });

/**
 * WinogradInput of a value x [N, C, H, W] -> [t^2, C, tiles]: under sharedMaxPixels emitted once per value (a conv
 * and its weight gradient read the same transform of x), else once per use.
 */
function winogradIn(ctx: EmitContext, x: string, shape: readonly Dim[], m: number): string {
  const make = () => ctx.op("WinogradInput", [x], { m: intAttr(m) }, imagenDomain);
  return (shape[2] as number) * (shape[3] as number) <= winogradLimits.sharedMaxPixels ? ctx.once(`WinogradInput:${m}:${x}`, make) : make();
}

function winogradOut(ctx: EmitContext, mt: string, bias: string | undefined, m: number, h: number, w: number): string {
  return ctx.op("WinogradOutput", bias === undefined ? [mt] : [mt, bias], { m: intAttr(m), h: intAttr(h), w: intAttr(w) }, imagenDomain);
}

/** Input gradient of a conv: a plain Conv with flipped, transposed weights when that is legal (faster than ConvTranspose). */
const lowerConvTranspose: LowerRule<"convTranspose"> = (ctx, node, [dy, w]) => {
  const g = node.attrs;
  const wt = node.inputs[1];
  const [kh, kw] = [wt.shape[2] as number, wt.shape[3] as number];
  const flipPads = [kh - 1 - g.pad[0], kw - 1 - g.pad[1], kh - 1 - g.pad[2], kw - 1 - g.pad[3]];
  const unit = g.stride[0] === 1 && g.stride[1] === 1 && g.dilation[0] === 1 && g.dilation[1] === 1;
  if (winogradSuits(ctx, g, node.inputs[0], [kh, kw], node.shape)) {
    const [o, c] = wt.shape as number[];
    const [h, wd] = [node.shape[2] as number, node.shape[3] as number];
    const m = winogradTile(h * wd);
    const v = winogradIn(ctx, dy, node.inputs[0].shape, m); // [t^2, O, tiles]
    const mt = ctx.op("FusedMatMul", [winogradFilter(ctx, w, o, c, m, true), v], { transA: { type: "int", value: 1 } }, msDomain); // [t^2, C, tiles]
    return winogradOut(ctx, mt, undefined, m, h, wd);
  }
  if (unit && g.groups === 1 && flipPads.every((p) => p >= 0)) {
    const attrs = convAttrs({ ...g, pad: flipPads as unknown as Conv2dGeometry["pad"] }, [kh, kw]);
    const [o, c] = wt.shape as number[];
    // The kernel flip as a product with the reversal matrix over the taps (exact: one product by 1, the rest
    // by 0): a multithreaded GEMM, where a Slice with negative steps copied the weights element by element.
    const taps = kh * kw;
    const reversal = new Float32Array(taps * taps);
    for (let t = 0; t < taps; t++) reversal[t * taps + taps - 1 - t] = 1;
    const flipped = ctx.op("MatMul", [ctx.op("Reshape", [w, ctx.constI64([o, c, taps])]), ctx.constF32s(reversal, [taps, taps])]);
    const b = ctx.nchwcBlock;
    if (nchwcSuits(ctx, attrs, node.inputs[0], wt, [c, o, kh, kw])) {
      // Transposed to [C, O] and reordered to OIHWBiBo: [O/b, bo, C/b, bi, taps] -> [C/b, O/b, taps, bo, bi]
      // in three transposes that each copy runs (bo moved last, bi moved last, the block axes swapped).
      const t1 = ctx.op("Transpose", [ctx.op("Reshape", [flipped, ctx.constI64([o / b, b, c * taps])])], { perm: ctxInts([0, 2, 1]) });
      const t2 = ctx.op("Transpose", [ctx.op("Reshape", [t1, ctx.constI64([(o / b) * (c / b), b, taps * b])])], { perm: ctxInts([0, 2, 1]) });
      const t3 = ctx.op("Transpose", [ctx.op("Reshape", [t2, ctx.constI64([o / b, c / b, taps * b * b])])], { perm: ctxInts([1, 0, 2]) });
      const wr = ctx.op("Reshape", [t3, ctx.constI64([c, o, kh, kw])]);
      return nchwcConv(ctx, [dy, wr], attrs, c);
    }
    const wF = ctx.op("Reshape", [ctx.op("Transpose", [flipped], { perm: ctxInts([1, 0, 2]) }), ctx.constI64([c, o, kh, kw])]);
    return ctx.op("Conv", [dy, wF], attrs);
  }
  const dyShape = node.inputs[0].shape;
  const natural = [0, 1].map((a) => g.stride[a] * ((dyShape[2 + a] as number) - 1) + (([kh, kw][a] - 1) * g.dilation[a] + 1) - g.pad[a] - g.pad[a + 2]);
  const outputPadding = [g.outSize[0] - natural[0], g.outSize[1] - natural[1]];
  return ctx.op("ConvTranspose", [dy, w], { ...convAttrs(g, [kh, kw]), output_padding: ctxInts(outputPadding) });
};

/**
 * The sum over the leading axes of x [lead..., rest...] as a product with a row of ones, reshaped to `shape`:
 * ORT's ReduceSum over leading axes read at ~10 GB/s here (0.42 ms for [8, 576, 448] over axis 0; a Linear
 * bias gradient's [8, 256, 576] over axes 0 and 1, 0.78 ms), the GEMM at 3x that. Null when the flattening
 * would need two symbolic sizes.
 */
function sumLeadingAxes(ctx: EmitContext, x: string, lead: readonly Dim[], rest: readonly Dim[], shape: readonly Dim[]): string | null {
  const flat = rest.every((d) => typeof d === "number") ? [-1, (rest as number[]).reduce((p, d) => p * d, 1)]
    : lead.length === 1 ? [0, -1] : null;
  if (!flat) return null;
  const row = ctx.op("MatMul", [ctx.onesRow(productDim(lead)), ctx.op("Reshape", [x, ctx.constI64(flat)])]); // [1, rest]
  return ctx.op("Reshape", [row, ctx.shapeOf(shape)]);
}

/**
 * Weight gradient of a conv (equal strides, no dilation) as matrix products over shifted views of the padded
 * input (measured here at 1.5-3x the batch-swapped Conv). dW[o, c, i, j] = sum over n, p of dy[n, o, p] *
 * xpad[n, c, stride * p shifted by (i, j)].
 * - Large images: per tap, one batched product [N, O, P] x [N, C, P]^T (FusedMatMul, transB) -> [N, O, C],
 *   the taps stacked last and the batch summed: no transposed copy of the activations or of dy (3% faster
 *   on the reference U-Net's b64 training step than moving both to [C, N*P] / [N*P, O] first). The shifted
 *   views are copies; a "same" conv splits each tap's shift between its operands (x shifted by columns, dy
 *   by rows), so it copies x kw - 1 times and dy kh times instead of x once per tap (b64 training step
 *   1.01-1.04x), with dy's row shifts stacked so that each column shift is one product with kh times the
 *   rows (1.024x more). Other sizes copy shifted views of the smaller of x and dy.
 * - Small images (under 256 pixels): one im2col MatMul with inner size N*P, where per-sample products would
 *   be too small to run fast.
 */
function lowerWeightGradByTaps(ctx: EmitContext, node: Tensor<"convWeightGrad">, x: string, dy: string): string {
  const g = node.attrs;
  // Each per-sample product [N, ...] summed over the batch before the taps are joined: the concat then copies
  // small [O, ..., C] blocks instead of N times as much (a 192x448 conv's: 1.8 ms concat + 2.3 ms sum before).
  const batchSum = (r: string, shape: number[]) => sumLeadingAxes(ctx, r, [node.inputs[0].shape[0]], [shape.reduce((p, d) => p * d, 1)], shape) as string;
  const [c, o] = [node.inputs[0].shape[1] as number, node.inputs[1].shape[1] as number];
  const [ho, wo] = [node.inputs[1].shape[2] as number, node.inputs[1].shape[3] as number];
  const [h, w] = [node.inputs[0].shape[2] as number, node.inputs[0].shape[3] as number];
  const [kh, kw] = g.kernel;
  const taps = kh * kw;
  const padded = (v: string) => (g.pad.some((p) => p > 0) ? padHW(ctx, v, g.pad) : v);
  // The tap whose window is the unpadded input itself (the centre of a "same" conv) needs no copy.
  const whole = (i: number, j: number) => i === g.pad[0] && j === g.pad[1] && ho === h && wo === w;
  const shifted = (src: string, padded: string, i: number, j: number, shape: number[]) => ctx.op("Reshape", [
    whole(i, j) ? src : ctx.op("Slice", [padded, ctx.constI64([i, j]), ctx.constI64([i + ho, j + wo]), ctx.constI64([2, 3])]), ctx.constI64(shape),
  ]);
  const [sh, sw] = g.stride;
  const unitStride = sh === 1 && sw === 1;
  // Each tap's view of the padded input, reshaped to `shape`. A larger stride s first splits the padded input
  // into its s x s phases with one SpaceToDepth (padded at the end to whole blocks; phase (a, b) holds rows
  // a, a + s, ... and columns b, b + s, ...), so that every tap's view is a unit-stride slice of one phase:
  // tap (i, j) reads phase (i % s, j % s) from (i // s, j // s). (A Reshape + Transpose split instead let
  // ORT push the Transpose past the Slices, which then read with a stride: 3x slower.)
  const tapViews = (src: string): ((i: number, j: number, shape: number[]) => string) => {
    if (unitStride) {
      const xp = padded(src);
      return (i, j, shape) => shifted(src, xp, i, j, shape);
    }
    const [hp, wp] = [h + g.pad[0] + g.pad[2], w + g.pad[1] + g.pad[3]];
    const [hq, wq] = [Math.ceil(hp / sh), Math.ceil(wp / sw)];
    const xp = padHW(ctx, src, [g.pad[0], g.pad[1], g.pad[2] + hq * sh - hp, g.pad[3] + wq * sw - wp]);
    const s2d = ctx.op("SpaceToDepth", [xp], { blocksize: { type: "int", value: sh } }); // [A, s*s*B, hq, wq], channel (a*s + b)*B + k
    const phases = ctx.op("Reshape", [s2d, ctx.constI64([0, sh * sw, -1, hq, wq])]); // [A, s*s, B, hq, wq]
    return (i, j, shape) => {
      const [phase, qi, qj] = [(i % sh) * sw + (j % sw), Math.floor(i / sh), Math.floor(j / sw)];
      const view = ctx.op("Slice", [phases, ctx.constI64([phase, qi, qj]), ctx.constI64([phase + 1, qi + ho, qj + wo]), ctx.constI64([1, 3, 4])]);
      return ctx.op("Reshape", [view, ctx.constI64(shape)]);
    };
  };
  if (unitStride && ho * wo >= 256 && ho === h && wo === w && g.pad[0] <= kh - 1 && g.pad[2] <= kh - 1) {
    // A "same" conv: xpad[y + i, x + j] = x[y + i - pt, x + j - pl], so with Xh_j = x shifted by j - pl
    // columns and Dv_i = dy shifted by i - pt rows (zero filled), dW[o, c, i, j] = sum over n, p of
    // Dv_i[n, o, p] * Xh_j[n, c, p]. The kh row shifts of dy are stacked by one Gather over dy padded by
    // kh - 1 - pt rows on top and pt below (D[n, o, i, y] = dyp[n, o, y + kh - 1 - i]), or by one RowShifts
    // kernel (D[n, o, i, y] = dy[n, o, y - i + pt]) on the native binding; the column shifts
    // of x are Pads with a negative pad cropping the far side; one product D [N, O*kh, P] x Xh_j^T per j.
    const [pt, pl] = [g.pad[0], g.pad[1]];
    const stackedDy = ctx.fusedOps // [N, O, kh, H, W]
      ? ctx.op("RowShifts", [dy], { kh: { type: "int", value: kh }, top: { type: "int", value: pt } }, imagenDomain)
      : ctx.op("Gather", [padHW(ctx, dy, [kh - 1 - pt, 0, pt, 0]), ctx.constI64Shaped(shiftRows(kh, h), [kh, h])], { axis: { type: "int", value: 2 } });
    const d = ctx.op("Reshape", [stackedDy, ctx.constI64([0, o * kh, -1])]);
    const parts: string[] = [];
    for (let j = 0; j < kw; j++) {
      const xj = j === pl ? x : padHW(ctx, x, [0, pl - j, 0, j - pl]);
      const r = ctx.op("FusedMatMul", [d, ctx.op("Reshape", [xj, ctx.constI64([0, c, -1])])], { transB: { type: "int", value: 1 } }, msDomain); // [N, O*kh, C]
      parts.push(batchSum(r, [o, kh, c, 1]));
    }
    const stacked = kw === 1 ? parts[0] : ctx.op("Concat", parts, { axis: { type: "int", value: 3 } }); // [O, kh, C, kw]
    return ctx.op("Transpose", [stacked], { perm: ctxInts([0, 2, 1, 3]) });
  }
  if (unitStride && ho * wo >= 256 && o < c && g.pad.every((p, k) => p <= [kh, kw][k % 2] - 1)) {
    // Fewer output than input channels: copy shifted views of dy rather than of x, x taken as it is.
    // dW[o, c, i, j] = sum over n, q of x[n, c, q] * dyP[n, o, q + (kh-1-i, kw-1-j)], dyP being dy padded
    // by kernel - 1 - pad on each side (so the views have x's size).
    const dyP = padHW(ctx, dy, [kh - 1 - g.pad[0], kw - 1 - g.pad[1], kh - 1 - g.pad[2], kw - 1 - g.pad[3]]);
    const x3 = ctx.op("Reshape", [x, ctx.constI64([0, c, -1])]);
    const parts: string[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const [si, sj] = [kh - 1 - i, kw - 1 - j];
        const view = si === kh - 1 - g.pad[0] && sj === kw - 1 - g.pad[1] && ho === h && wo === w ? dy
          : ctx.op("Slice", [dyP, ctx.constI64([si, sj]), ctx.constI64([si + h, sj + w]), ctx.constI64([2, 3])]);
        const r = ctx.op("FusedMatMul", [ctx.op("Reshape", [view, ctx.constI64([0, o, -1])]), x3], { transB: { type: "int", value: 1 } }, msDomain);
        parts.push(batchSum(r, [o, c, 1]));
      }
    }
    const stacked = taps === 1 ? parts[0] : ctx.op("Concat", parts, { axis: { type: "int", value: 2 } }); // [O, C, taps]
    return ctx.op("Reshape", [stacked, ctx.constI64([o, c, kh, kw])]);
  }
  if (ho * wo >= 256) {
    const view = tapViews(x);
    const dy3 = ctx.op("Reshape", [dy, ctx.constI64([0, o, -1])]); // [N, O, P]
    const parts: string[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const r = ctx.op("FusedMatMul", [dy3, view(i, j, [0, c, -1])], { transB: { type: "int", value: 1 } }, msDomain); // [N, O, C]
        parts.push(batchSum(r, [o, c, 1]));
      }
    }
    const stacked = taps === 1 ? parts[0] : ctx.op("Concat", parts, { axis: { type: "int", value: 2 } }); // [O, C, taps]
    return ctx.op("Reshape", [stacked, ctx.constI64([o, c, kh, kw])]);
  }
  // The input moved to [C, N, H, W], so each view is a [C, N*P] matrix and the sum over the batch happens
  // inside one GEMM (inner size N*P).
  const xc = ctx.op("Transpose", [x], { perm: ctxInts([1, 0, 2, 3]) });
  const view = tapViews(xc);
  const dyT = ctx.op("Reshape", [ctx.op("Transpose", [dy], { perm: ctxInts([0, 2, 3, 1]) }), ctx.constI64([-1, o])]); // [N*P, O]
  const cols: string[] = [];
  for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) cols.push(view(i, j, [c, 1, -1]));
  const col = ctx.op("Reshape", [taps === 1 ? cols[0] : ctx.op("Concat", cols, { axis: { type: "int", value: 1 } }), ctx.constI64([c * taps, -1])]); // [C * taps, N*P]
  const r = ctx.op("MatMul", [col, dyT]); // [C * taps, O]
  return ctx.op("Reshape", [ctx.op("Transpose", [r], { perm: ctxInts([1, 0]) }), ctx.constI64([o, c, kh, kw])]);
}

/**
 * Weight gradient of a conv: shifted-view products for equal strides without dilation (a stride-2 downsample's
 * gradient in the reference U-Net: 4-15 ms as the batch-swapped Conv at 43-80 GFLOP/s, about a third of that
 * as phases and products), else a Conv over batch-swapped tensors.
 */
const lowerConvWeightGrad: LowerRule<"convWeightGrad"> = (ctx, node, [x, dy]) => {
  const g = node.attrs;
  if (winogradSuits(ctx, g, node.inputs[0], g.kernel, node.inputs[1].shape)) {
    const [c, o] = [node.inputs[0].shape[1] as number, node.inputs[1].shape[1] as number];
    const m = winogradTile((node.inputs[0].shape[2] as number) * (node.inputs[0].shape[3] as number));
    const t2 = (m + 2) ** 2;
    const v = winogradIn(ctx, x, node.inputs[0].shape, m); // [t^2, C, tiles]
    const d = ctx.op("WinogradOutputGrad", [dy], { m: intAttr(m) }, imagenDomain); // [t^2, O, tiles]
    const du = ctx.op("Reshape", [ctx.op("FusedMatMul", [d, v], { transB: { type: "int", value: 1 } }, msDomain), ctx.constI64([t2, o * c])]);
    const dw = ctx.op("FusedMatMul", [du, ctx.constF32s(winogradFilterMatrix(m, false), [t2, 9])], { transA: { type: "int", value: 1 } }, msDomain); // [O*C, 9]
    return ctx.op("Reshape", [dw, ctx.constI64([o, c, 3, 3])]);
  }
  if (g.dilation[0] === 1 && g.dilation[1] === 1 && g.groups === 1 && g.stride[0] === g.stride[1]) return lowerWeightGradByTaps(ctx, node, x, dy);
  const [xT, dyT] = [x, dy].map((v) => ctx.op("Transpose", [v], { perm: ctxInts([1, 0, 2, 3]) }));
  const c = node.inputs[0].shape[1] as number;
  const o = node.inputs[1].shape[1] as number;
  const [cg, og] = [c / g.groups, o / g.groups];
  const parts: string[] = [];
  for (let k = 0; k < g.groups; k++) {
    const xs = g.groups === 1 ? xT : ctx.op("Slice", [xT, ctx.constI64([k * cg]), ctx.constI64([(k + 1) * cg]), ctx.constI64([0])]);
    const ds = g.groups === 1 ? dyT : ctx.op("Slice", [dyT, ctx.constI64([k * og]), ctx.constI64([(k + 1) * og]), ctx.constI64([0])]);
    // [cg, N, H, W] conv [og, N, Ho, Wo] with stride and dilation exchanged -> [cg, og, kh', kw'] (kh' >= kh)
    const r = ctx.op("Conv", [xs, ds], {
      strides: ctxInts(g.dilation), dilations: ctxInts(g.stride), pads: ctxInts(g.pad), group: { type: "int", value: 1 },
    });
    const cut = ctx.op("Slice", [r, ctx.constI64([0, 0]), ctx.constI64([g.kernel[0], g.kernel[1]]), ctx.constI64([2, 3])]);
    parts.push(ctx.op("Transpose", [cut], { perm: ctxInts([1, 0, 2, 3]) }));
  }
  return parts.length === 1 ? parts[0] : ctx.op("Concat", parts, { axis: { type: "int", value: 0 } });
};

/**
 * GroupNorm without the affine: ORT's LayerNormalization over x viewed as [B, groups, -1] (each row one group,
 * unit scale and zero shift). InstanceNormalization computes the same on one thread here (1.42 ms vs 1.44 ms
 * on [8, 32, 16384] at 1 and 2 threads); LayerNormalization splits the rows between threads: the reference
 * U-Net's forward 1.013-1.023x and training step 1.007x (in-process A/B, 16, 16 and 13 of 20 rounds faster).
 */
function lowerGroupNormalize(ctx: EmitContext, n: Tensor<"groupNormalize">, x: string): string {
  const g = n.attrs.groups;
  const len = (n.shape.slice(1) as number[]).reduce((p, d) => p * d, 1) / g;
  const grouped = ctx.op("Reshape", [x, ctx.constI64([0, g, -1])]);
  const normed = ctx.op("LayerNormalization", [grouped, ctx.filled(1, len), ctx.filled(0, len)],
    { axis: { type: "int", value: 2 }, epsilon: { type: "float", value: n.attrs.eps } });
  return ctx.op("Reshape", [normed, ctx.shapeOf(n.shape.map((d, i) => (i === 0 && typeof d === "string" ? 0 : d)))]);
}

/**
 * Zero-pads (or, negative, crops) the last two axes of a 4-D value by [top, left, bottom, right]: imagen-ts'
 * multithreaded PadHW kernel where the native binding runs the graph (ORT's Pad runs on one thread), else Pad.
 */
function padHW(ctx: EmitContext, v: string, [top, left, bottom, right]: readonly number[]): string {
  if (!ctx.fusedOps) return ctx.op("Pad", [v, ctx.constI64([0, 0, top, left, 0, 0, bottom, right])]);
  const int = (value: number) => ({ type: "int" as const, value });
  return ctx.op("PadHW", [v], { top: int(top), left: int(left), bottom: int(bottom), right: int(right) }, imagenDomain);
}

/** Rows of dy padded by kh - 1 - top rows above: shift i's row y is padded row y + kh - 1 - i. */
function shiftRows(kh: number, h: number): number[] {
  const rows: number[] = [];
  for (let i = 0; i < kh; i++) for (let y = 0; y < h; y++) rows.push(y + kh - 1 - i);
  return rows;
}

/**
 * An op with a fused kernel (src/graph/fused.ts): that kernel where the native binding runs the graph, else
 * its spelled-out form in other primitives, lowered over the node's inputs.
 */
function fusedOr(
  ctx: EmitContext, n: Tensor, ins: readonly string[], kernel: string, attrs: Record<string, OnnxAttr> | undefined,
  spelled: (inputs: readonly Tensor[]) => Tensor,
): string {
  if (ctx.fusedOps) return ctx.op(kernel, ins, attrs, imagenDomain);
  return ctx.lowerGraph(spelled(n.inputs), new Map(n.inputs.map((t, i) => [t.id, ins[i]])));
}

const unaryLower = Object.fromEntries(
  unaryOps.map((k) => [k, ((ctx, _n, ins) => ctx.op(onnxUnary[k], ins)) as LowerRule<typeof k>]),
) as { [K in (typeof unaryOps)[number]]: LowerRule<K> };
const binaryLower = Object.fromEntries(
  binaryOps.map((k) => [k, ((ctx, _n, ins) => ctx.op(onnxBinary[k], ins)) as LowerRule<typeof k>]),
) as { [K in (typeof binaryOps)[number]]: LowerRule<K> };

export const lowerRules: { [K in Op]: LowerRule<K> } = {
  input: (_ctx, node) => node.attrs.name,
  constant: (ctx, node) => ctx.constantOf(node),
  ...unaryLower,
  ...binaryLower,
  where: (ctx, _n, ins) => ctx.op("Where", ins),
  // x * Sigmoid(x): ORT's CPU optimiser fuses the pair into one QuickGelu pass where nothing else reads the
  // Sigmoid (inference), and shares the Sigmoid with the gradient's where it does (training).
  silu: (ctx, _n, [x]) => ctx.op("Mul", [x, ctx.op("Sigmoid", [x])]),
  cast: (ctx, n, ins) => ctx.op("Cast", ins, { to: { type: "int", value: ctx.onnxType(n.attrs.to) } }),
  matmul: (ctx, _n, ins) => ctx.op("MatMul", ins),
  conv: (ctx, n, ins) => {
    const wShape = n.inputs[1].shape as number[];
    if (winogradSuits(ctx, n.attrs, n.inputs[0], wShape.slice(2), n.shape)) {
      const [h, w] = [n.shape[2] as number, n.shape[3] as number];
      const m = winogradTile(h * w);
      const v = winogradIn(ctx, ins[0], n.inputs[0].shape, m); // [t^2, C, tiles]
      const mt = ctx.op("MatMul", [winogradFilter(ctx, ins[1], wShape[0], wShape[1], m, false), v]); // [t^2, O, tiles]
      return winogradOut(ctx, mt, ins[2], m, h, w);
    }
    return convMaybeNchwc(ctx, ins, convAttrs(n.attrs, wShape.slice(2)), n.inputs[0], n.inputs[1], wShape);
  },
  convTranspose: lowerConvTranspose,
  convWeightGrad: lowerConvWeightGrad,
  reduceSum: (ctx, n, [x]) => {
    const { axes, keepDims } = n.attrs;
    const src = n.inputs[0].shape;
    const leading = !keepDims && n.dtype === "float32" && axes.length < src.length && axes.every((a, i) => a === i);
    return (leading ? sumLeadingAxes(ctx, x, src.slice(0, axes.length), src.slice(axes.length), n.shape) : null)
      ?? ctx.op("ReduceSum", [x, ctx.constI64(axes)], { keepdims: { type: "int", value: keepDims ? 1 : 0 } });
  },
  reduceMax: (ctx, n, [x]) =>
    ctx.op("ReduceMax", [x], { axes: ctxInts(n.attrs.axes), keepdims: { type: "int", value: n.attrs.keepDims ? 1 : 0 } }),
  // A symbolic target dim equal to the input's on the same axis is written as 0 ("copy"): ORT opens graphs
  // with symbolic dims flowing through many Reshapes several times faster that way.
  reshape: (ctx, n, [x]) => {
    const src = n.inputs[0].shape;
    const dims = n.attrs.shape.map((d, i) => (typeof d === "string" && src[i] === d ? 0 : d));
    return ctx.op("Reshape", [x, ctx.shapeOf(dims)]);
  },
  transpose: (ctx, n, [x]) => ctx.op("Transpose", [x], { perm: ctxInts(n.attrs.perm) }),
  expand: (ctx, n, [x]) => ctx.op("Expand", [x, ctx.shapeOf(n.attrs.shape)]),
  slice: (ctx, n, [x]) => ctx.op("Slice", [x, ctx.constI64(n.attrs.starts), ctx.constI64(n.attrs.ends), ctx.constI64(n.attrs.axes)]),
  flip: (ctx, n, [x]) => {
    const axes = n.attrs.axes;
    const ends = axes.map((a) => -(ctx.staticDim(n.inputs[0], a, "flip") + 1));
    return ctx.op("Slice", [x, ctx.constI64(axes.map(() => -1)), ctx.constI64(ends), ctx.constI64(axes), ctx.constI64(axes.map(() => -1))]);
  },
  concat: (ctx, n, ins) => ctx.op("Concat", ins, { axis: { type: "int", value: n.attrs.axis } }),
  pad: (ctx, n, [x]) => {
    const p = n.attrs.pads;
    const spatialOnly = n.dtype === "float32" && p.length === 8 && p[0] === 0 && p[1] === 0 && p[4] === 0 && p[5] === 0;
    return spatialOnly ? padHW(ctx, x, [p[2], p[3], p[6], p[7]]) : ctx.op("Pad", [x, ctx.constI64(p)]);
  },
  gather: (ctx, _n, ins) => ctx.op("Gather", ins, { axis: { type: "int", value: 0 } }),
  scatterAdd: (ctx, n, [idx, upd]) => {
    const zeros = ctx.op("ConstantOfShape", [ctx.shapeOf(n.shape)]);
    const idx1 = ctx.op("Unsqueeze", [idx, ctx.constI64([-1])]);
    return ctx.op("ScatterND", [zeros, idx1, upd], { reduction: { type: "string", value: "add" } });
  },
  softmax: (ctx, n, [x]) => ctx.op("Softmax", [x], { axis: { type: "int", value: n.attrs.axis } }),
  groupNormalize: (ctx, n, [x, gamma, beta]) => {
    if (ctx.fusedOps && gamma !== undefined) {
      // One kernel for the normalisation and the affine (two passes over x, where these were seven).
      const { groups, eps } = n.attrs;
      return ctx.op("GroupNorm", [x, gamma, beta], { groups: { type: "int", value: groups }, eps: { type: "float", value: eps } }, imagenDomain);
    }
    const normed = lowerGroupNormalize(ctx, n, x);
    if (gamma === undefined) return normed;
    // [C] -> [C, 1, ...]; a per-sample [B, C] -> [B, C, 1, ...]
    const spatial = n.shape.slice(2).map((_, i) => i + 2);
    const perChannel = ctx.constI64([n.shape[1] as number, ...spatial.map(() => 1)]);
    const place = (t: string, rank: number) => (rank === 2 ? ctx.op("Unsqueeze", [t, ctx.constI64(spatial)]) : ctx.op("Reshape", [t, perChannel]));
    return ctx.op("Add", [ctx.op("Mul", [normed, place(gamma, n.inputs[1].rank)]), place(beta, n.inputs[2].rank)]);
  },
  axpby: (ctx, n, ins) => fusedOr(ctx, n, ins, "Axpby", undefined, ([a, b, alpha, beta]) => axpbyDecomposed(a, b, alpha, beta)),
  adamwParam: (ctx, n, ins) => fusedOr(ctx, n, ins, "AdamwParam", undefined, ([p, m, v, step, eps, decay]) => adamwParamDecomposed(p, m, v, step, eps, decay)),
  siluGrad: (ctx, n, ins) => fusedOr(ctx, n, ins, "SiluGrad", undefined, ([s, y, g]) => siluGradDecomposed(s, y, g)),
  groupNormStats: (ctx, n, ins) => {
    const { groups, eps } = n.attrs;
    return fusedOr(ctx, n, ins, "GroupNormStats", { groups: { type: "int", value: groups }, eps: { type: "float", value: eps } },
      ([x, g]) => groupNormStatsDecomposed(x, g, groups, eps));
  },
  groupNormInputGrad: (ctx, n, ins) => fusedOr(ctx, n, ins, "GroupNormInputGrad", { groups: { type: "int", value: n.attrs.groups } },
    ([x, g, stats, gamma]) => groupNormInputGradDecomposed(x, g, stats, gamma, n.attrs.groups)),
  upsampleNearest: (ctx, n, [x]) => {
    const f = n.attrs.factor;
    return ctx.op("Resize", [x, "", ctx.constF32s(Float32Array.of(1, 1, f, f))], {
      mode: { type: "string", value: "nearest" }, nearest_mode: { type: "string", value: "floor" },
      coordinate_transformation_mode: { type: "string", value: "asymmetric" },
    });
  },
  stopGradient: (ctx, _n, [x]) => ctx.op("Identity", [x]),
  dimSize: (ctx, n, [x]) => {
    const shape = ctx.op("Shape", [x]);
    const picked = ctx.op("Gather", [shape, ctx.constI64(n.attrs.axes)], { axis: { type: "int", value: 0 } });
    const prod = ctx.op("ReduceProd", [picked], { keepdims: { type: "int", value: 0 } });
    return ctx.op("Cast", [prod], { to: { type: "int", value: ctx.onnxType("float32") } });
  },
};
