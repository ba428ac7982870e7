// Host tensors: plain typed arrays with a shape, the values that cross into and out of ORT sessions.
import { ValueError } from "../util/errors.js";
import type { DType } from "../graph/tensor.js";

export type HostData = Float32Array | BigInt64Array | Uint8Array;

export interface HostTensor {
  readonly data: HostData;
  readonly shape: readonly number[];
}

export function hostTensor(data: HostData, shape: readonly number[]): HostTensor {
  const n = shape.reduce((p, d) => p * d, 1);
  if (n !== data.length) throw new ValueError(`hostTensor: shape [${shape.join(", ")}] holds ${n} values, got ${data.length}`);
  return { data, shape: [...shape] };
}

export function dtypeOfData(data: HostData): DType {
  return data instanceof Float32Array ? "float32" : data instanceof BigInt64Array ? "int64" : "bool";
}

export function scalar(v: number): HostTensor {
  return { data: new Float32Array([v]), shape: [] };
}

export function zerosLike(shape: readonly number[]): HostTensor {
  return { data: new Float32Array(shape.reduce((p, d) => p * d, 1)), shape: [...shape] };
}
