// Numeric kernels of the float64 reference interpreter (interpret.ts): index maps, erf, matmul, and PyTorch
// conv2d (cross-correlation) with its input gradient (convTranspose) and weight gradient (convWeightGrad).
import type { Conv2dGeometry } from "./ops.js";
import type { NDArray } from "./interpret.js";
import { fmtShape } from "./tensor.js";
import { ImagenError } from "../util/errors.js";

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// Index maps: one odometer walk covers broadcasting, transpose, slice, flip, pad and concat.

export function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

/** For each flat index of `shape` (row-major), the offset base + sum(index[a] * strides[a]). */
export function strideMap(shape: readonly number[], strides: readonly number[], base = 0): Int32Array {
  const n = sizeOf(shape);
  const r = shape.length;
  const map = new Int32Array(n);
  const idx = new Array<number>(r).fill(0);
  let p = base;
  for (let i = 0; i < n; i++) {
    map[i] = p;
    for (let a = r - 1; a >= 0; a--) {
      idx[a]++;
      p += strides[a];
      if (idx[a] < shape[a]) break;
      p -= strides[a] * shape[a];
      idx[a] = 0;
    }
  }
  return map;
}

/** For each flat index of `out`, the flat index of the element of `shape` that numpy broadcasting reads. */
export function broadcastMap(out: readonly number[], shape: readonly number[]): Int32Array {
  const off = out.length - shape.length;
  const inStrides = stridesOf(shape);
  const st = out.map((_, a) => (a < off || shape[a - off] === 1 ? 0 : inStrides[a - off]));
  return strideMap(out, st);
}

export function broadcastNum(op: string, shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    s.forEach((d, i) => {
      const a = i + rank - s.length;
      if (out[a] === 1) out[a] = d;
      else if (d !== 1 && d !== out[a]) {
        throw new ImagenError(`${op}: shapes ${shapes.map((t) => fmtShape(t)).join(" and ")} do not broadcast`);
      }
    });
  }
  return out;
}

/** erf in float64, within 1e-15 of the exact value: a series below 1.5, erfc's continued fraction above. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x); // erfc(6) < 2^-54: 1 - erfc rounds to 1
  const e = expMinusSquare(ax);
  if (ax < 1.5) {
    // All-positive series erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1*3*...*(2n+1)): no cancellation.
    const x2 = 2 * ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 1; term > 1e-17 * sum; n++) {
      term *= x2 / (2 * n + 1);
      sum += term;
    }
    return Math.sign(x) * TWO_OVER_SQRT_PI * e * sum;
  }
  // erfc(x) = e^{-x^2}/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated by modified Lentz.
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    d = 1 / (ax + (n / 2) * d);
    c = ax + n / 2 / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 3e-16) break; // converged to the last bit
  }
  return Math.sign(x) * (1 - (TWO_OVER_SQRT_PI / 2) * e / f);
}
const TWO_OVER_SQRT_PI = 1.1283791670955126;

/** exp(-x^2) with x^2 split exactly into hi + lo (Dekker), so the rounding of x*x is not amplified. */
function expMinusSquare(x: number): number {
  const hi = x * x;
  const c = 134217729 * x;
  const xh = c - (c - x);
  const xl = x - xh;
  const lo = xh * xh - hi + 2 * xh * xl + xl * xl;
  return Math.exp(-hi) * (1 - lo);
}

export function matmulRef(a: NDArray, b: NDArray): NDArray {
  const [m, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k !== k2) throw new ImagenError(`matmul: inner dimensions differ (${k} vs ${k2})`);
  const batch = broadcastNum("matmul", [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  const ma = broadcastMap(batch, a.shape.slice(0, -2));
  const mb = broadcastMap(batch, b.shape.slice(0, -2));
  const out = new Float64Array(ma.length * m * n);
  for (let bi = 0; bi < ma.length; bi++) {
    const ao = ma[bi] * m * k, bo = mb[bi] * k * n, oo = bi * m * n;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const av = a.data[ao + i * k + p];
        for (let j = 0; j < n; j++) out[oo + i * n + j] += av * b.data[bo + p * n + j];
      }
    }
  }
  return { shape: [...batch, m, n], data: out, dtype: "float32" };
}


// Conv: the three kernels share one loop nest over (output element, weight element, input element).

function convOut(size: number, k: number, stride: number, padA: number, padB: number, dil: number): number {
  return Math.floor((size + padA + padB - dil * (k - 1) - 1) / stride) + 1;
}

/** The sizes every kernel shares: batch, channels per group, output channels per group, spatial sizes. */
interface Layout {
  n: number; c: number; cg: number; o: number; og: number;
  h: number; w: number; kh: number; kw: number; ho: number; wo: number;
}

function layout(op: string, n: number, c: number, o: number, spatial: readonly number[], g: Conv2dGeometry): Layout {
  const [h, w, kh, kw, ho, wo] = spatial;
  const cg = c / g.groups;
  const og = o / g.groups;
  if (!Number.isInteger(cg) || !Number.isInteger(og)) {
    throw new ImagenError(`${op}: expected channels ${c} and ${o} divisible by groups ${g.groups}`);
  }
  const eh = convOut(h, kh, g.stride[0], g.pad[0], g.pad[2], g.dilation[0]);
  const ew = convOut(w, kw, g.stride[1], g.pad[1], g.pad[3], g.dilation[1]);
  if (eh !== ho || ew !== wo) {
    throw new ImagenError(`${op}: expected output ${eh}x${ew} for input ${h}x${w} and kernel ${kh}x${kw}, got ${ho}x${wo}`);
  }
  return { n, c, cg, o, og, h, w, kh, kw, ho, wo };
}

/**
 * Visits every (dy/y element, weight element, x element) triple of a conv with geometry `g`:
 * visit(yIndex, wIndex, xIndex). The three kernels differ only in which of the three they accumulate.
 */
function forEachTap(l: Layout, g: Conv2dGeometry, visit: (yi: number, wi: number, xi: number) => void): void {
  const [sh, sw] = g.stride;
  const [dh, dw] = g.dilation;
  const [pt, pl] = g.pad;
  for (let b = 0; b < l.n; b++) {
    for (let oc = 0; oc < l.o; oc++) {
      const c0 = Math.floor(oc / l.og) * l.cg;
      for (let y = 0; y < l.ho; y++) {
        for (let x = 0; x < l.wo; x++) {
          const yi = ((b * l.o + oc) * l.ho + y) * l.wo + x;
          for (let ci = 0; ci < l.cg; ci++) {
            const xBase = (b * l.c + c0 + ci) * l.h;
            const wBase = (oc * l.cg + ci) * l.kh;
            for (let i = 0; i < l.kh; i++) {
              const r = y * sh - pt + i * dh;
              if (r < 0 || r >= l.h) continue;
              for (let j = 0; j < l.kw; j++) {
                const s = x * sw - pl + j * dw;
                if (s < 0 || s >= l.w) continue;
                visit(yi, (wBase + i) * l.kw + j, (xBase + r) * l.w + s);
              }
            }
          }
        }
      }
    }
  }
}

function float(shape: number[]): NDArray {
  return { shape, data: new Float64Array(sizeOf(shape)), dtype: "float32" };
}

/** y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C/groups, kh, kw]) + bias [O]. */
export function convForward(x: NDArray, w: NDArray, bias: NDArray | undefined, g: Conv2dGeometry): NDArray {
  const [n, c, h, wd] = x.shape;
  const [o, cg, kh, kw] = w.shape;
  if (cg * g.groups !== c) throw new ImagenError(`conv: expected ${cg * g.groups} input channels, got ${c}`);
  const ho = convOut(h, kh, g.stride[0], g.pad[0], g.pad[2], g.dilation[0]);
  const wo = convOut(wd, kw, g.stride[1], g.pad[1], g.pad[3], g.dilation[1]);
  const l = layout("conv", n, c, o, [h, wd, kh, kw, ho, wo], g);
  const y = float([n, o, ho, wo]);
  const yd = y.data, xd = x.data, wdata = w.data;
  forEachTap(l, g, (yi, wi, xi) => {
    yd[yi] += xd[xi] * wdata[wi];
  });
  if (bias) {
    const plane = ho * wo;
    for (let i = 0; i < yd.length; i++) yd[i] += bias.data[Math.floor(i / plane) % o];
  }
  return y;
}

/** dx [N, C, H, W] of a conv with weights w, given dy [N, O, Ho, Wo]: the exact adjoint of convForward. */
export function convTransposeRef(dy: NDArray, w: NDArray, g: Conv2dGeometry & { outSize: readonly [number, number] }): NDArray {
  const [n, o, ho, wo] = dy.shape;
  const [ow, cg, kh, kw] = w.shape;
  if (ow !== o) throw new ImagenError(`convTranspose: expected weight rows ${o}, got ${ow}`);
  const [h, wd] = g.outSize;
  const c = cg * g.groups;
  const l = layout("convTranspose", n, c, o, [h, wd, kh, kw, ho, wo], g);
  const dx = float([n, c, h, wd]);
  const dxd = dx.data, dyd = dy.data, wdata = w.data;
  forEachTap(l, g, (yi, wi, xi) => {
    dxd[xi] += dyd[yi] * wdata[wi];
  });
  return dx;
}

/** dW [O, C/groups, kh, kw] of a conv of x [N, C, H, W], given dy [N, O, Ho, Wo]. */
export function convWeightGradRef(x: NDArray, dy: NDArray, g: Conv2dGeometry & { kernel: readonly [number, number] }): NDArray {
  const [n, c, h, wd] = x.shape;
  const [n2, o, ho, wo] = dy.shape;
  if (n2 !== n) throw new ImagenError(`convWeightGrad: expected dy batch ${n}, got ${n2}`);
  const [kh, kw] = g.kernel;
  const l = layout("convWeightGrad", n, c, o, [h, wd, kh, kw, ho, wo], g);
  const dw = float([o, l.cg, kh, kw]);
  const dwd = dw.data, dyd = dy.data, xd = x.data;
  forEachTap(l, g, (yi, wi, xi) => {
    dwd[wi] += dyd[yi] * xd[xi];
  });
  return dw;
}
