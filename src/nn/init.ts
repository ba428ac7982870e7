// Weight initialisers, all drawn from an explicit Rng. PyTorch's defaults for Linear and Conv2d are
// kaiming_uniform(a = sqrt(5)) for weights, i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)), and the same bound for biases.
import { ZeroRng, type Rng } from "../util/rng.js";

export function uniform(rng: Rng, n: number, bound: number): Float32Array {
  if (rng instanceof ZeroRng) return new Float32Array(n); // weights to be loaded: zeros, without a pass over them
  const u = rng.uniform(n);
  for (let i = 0; i < u.length; i++) u[i] = (2 * u[i] - 1) * bound;
  return u;
}

export function normal(rng: Rng, n: number, std: number): Float32Array {
  return rng.normal(n, 0, std);
}

/** PyTorch's default for Linear/Conv weights and biases: U(+-1/sqrt(fanIn)). */
export function torchDefault(rng: Rng, n: number, fanIn: number): Float32Array {
  return uniform(rng, n, 1 / Math.sqrt(fanIn));
}

/** Xavier/Glorot uniform. */
export function xavierUniform(rng: Rng, n: number, fanIn: number, fanOut: number, gain = 1): Float32Array {
  return uniform(rng, n, gain * Math.sqrt(6 / (fanIn + fanOut)));
}

/** Kaiming/He normal for ReLU-family layers. */
export function kaimingNormal(rng: Rng, n: number, fanIn: number, gain = Math.SQRT2): Float32Array {
  return normal(rng, n, gain / Math.sqrt(fanIn));
}

export const zeros = (n: number) => new Float32Array(n);
export const ones = (n: number) => new Float32Array(n).fill(1);
