// T5's relative position buckets, evaluated in float32 with Hugging Face's order of operations
// (modeling_t5.py `_relative_position_bucket`): an algebraically equal rearrangement can round just below
// an integer and move distances 16, 32, 64 (for 32 buckets / 128) down one bucket.
const f32 = Math.fround;

/** The bucket of `relative = key - query`. Bidirectional (the encoder) unless told otherwise. */
export function relativePositionBucket(relative: number, numBuckets: number, maxDistance: number, bidirectional = true): number {
  let buckets = numBuckets;
  let bucket = 0;
  let n: number;
  if (bidirectional) {
    buckets = Math.floor(buckets / 2);
    if (relative > 0) bucket += buckets;
    n = Math.abs(relative);
  } else {
    n = -Math.min(relative, 0);
  }
  const maxExact = Math.floor(buckets / 2);
  if (n < maxExact) return bucket + n;
  // float32 each step, as torch does: (n / maxExact) -> log -> / log(maxDistance / maxExact) (a float64
  // Python scalar, applied in float32) -> * (buckets - maxExact) -> truncate.
  const ratio = f32(f32(n) / maxExact);
  const scaled = f32(f32(f32(Math.log(ratio)) / f32(Math.log(maxDistance / maxExact))) * (buckets - maxExact));
  const large = Math.min(maxExact + Math.trunc(scaled), buckets - 1);
  return bucket + large;
}

/**
 * The [L, L] table of buckets for `key - query`, row = query, as int64 for the graph's Gather.
 * Unidirectional (a decoder's causal self-attention) folds every key after the query into bucket 0.
 */
export function bucketTable(length: number, numBuckets: number, maxDistance: number, bidirectional = true): BigInt64Array {
  const byRelative = new Map<number, bigint>();
  const out = new BigInt64Array(length * length);
  for (let q = 0; q < length; q++) {
    for (let k = 0; k < length; k++) {
      const rel = k - q;
      let b = byRelative.get(rel);
      if (b === undefined) {
        b = BigInt(relativePositionBucket(rel, numBuckets, maxDistance, bidirectional));
        byRelative.set(rel, b);
      }
      out[q * length + k] = b;
    }
  }
  return out;
}
