// Dependency-free protobuf encoder for the subset of onnx.proto (IR version 8, opset 17/18) we emit.
// Messages are built bottom-up with exact sizes, then written once into a single output buffer so
// large initializers (raw_data) are copied exactly once.

export const enum OnnxDataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
}

export type OnnxAttr =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "string"; value: string }
  | { type: "ints"; value: readonly number[] }
  | { type: "floats"; value: readonly number[] }
  | { type: "tensor"; value: OnnxTensor };

/** A dense tensor; `raw` holds the little-endian element bytes. Empty `dims` means a scalar. */
export interface OnnxTensor {
  name: string;
  dataType: OnnxDataType;
  dims: readonly number[];
  raw: Uint8Array;
}

/** A graph node; an input named "" marks an omitted optional input and is kept in place. */
export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, OnnxAttr>;
}

/** A graph input/output; a string dim is a symbolic `dim_param`, a negative number an unknown dim. */
export interface OnnxValueInfo {
  name: string;
  dataType: OnnxDataType;
  shape: readonly (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers: readonly OnnxTensor[];
}

export interface OnnxModelOptions {
  /** ai.onnx opset version; default 17. */
  opset?: number;
  /** ONNX IR version; default 8. */
  irVersion?: number;
  producer?: string;
  extraOpsets?: { domain: string; version: number }[];
}

const defaultModelOptions = { opset: 17, irVersion: 8, producer: "imagen-ts" } as const;

// Protobuf's hard message limit; larger models need ONNX external data.
const maxModelBytes = 2 ** 31 - 1;

// Field numbers from onnx.proto.
const Field = {
  model: { irVersion: 1, producerName: 2, graph: 7, opsetImport: 8 },
  opsetId: { domain: 1, version: 2 },
  graph: { node: 1, name: 2, initializer: 5, input: 11, output: 12 },
  node: { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 },
  attr: { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 },
  tensor: { dims: 1, dataType: 2, name: 8, rawData: 9 },
  valueInfo: { name: 1, type: 2 },
  typeProto: { tensorType: 1 },
  typeTensor: { elemType: 1, shape: 2 },
  shape: { dim: 1 },
  dim: { dimValue: 1, dimParam: 2 },
} as const;

// AttributeProto.AttributeType
const AttrType = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

const WireType = { varint: 0, fixed64: 1, lengthDelimited: 2, fixed32: 5 } as const;

const elementBytes: Readonly<Record<number, number>> = {
  [OnnxDataType.FLOAT]: 4,
  [OnnxDataType.UINT8]: 1,
  [OnnxDataType.INT8]: 1,
  [OnnxDataType.INT32]: 4,
  [OnnxDataType.INT64]: 8,
  [OnnxDataType.BOOL]: 1,
  [OnnxDataType.FLOAT16]: 2,
  [OnnxDataType.DOUBLE]: 8,
};

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

function checkInt64(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${what}: expected a safe integer, got ${value}; pass whole numbers within ±2^53`);
  }
}

/** Bytes a varint takes; negative int64 values are always 10 bytes (two's complement). */
function varintSize(value: number): number {
  if (value < 0) return 10;
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

type Part =
  | { kind: "scratch"; start: number; end: number }
  | { kind: "bytes"; bytes: Uint8Array }
  | { kind: "message"; message: ProtoMessage };

/**
 * One protobuf message under construction. Small fields go into a private growable scratch buffer;
 * large byte payloads and finished submessages are referenced, not copied, until `writeTo`.
 */
class ProtoMessage {
  private buf = new Uint8Array(32);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  private segmentStart = 0;
  private readonly parts: Part[] = [];
  private referencedBytes = 0;
  private frozen = false;

  /** Total encoded size in bytes (exact, since children are frozen when added). */
  get size(): number {
    return this.pos + this.referencedBytes;
  }

  private reserve(extra: number): void {
    if (this.frozen) throw new Error("ProtoMessage: cannot write after being added to a parent");
    const needed = this.pos + extra;
    if (needed <= this.buf.length) return;
    let capacity = this.buf.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  private rawVarint(value: number): void {
    this.reserve(10);
    const buf = this.buf;
    let pos = this.pos;
    if (value < 0) {
      let v = BigInt.asUintN(64, BigInt(value));
      for (let i = 0; i < 9; i++) {
        buf[pos++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      buf[pos++] = Number(v);
    } else {
      while (value >= 128) {
        buf[pos++] = (value % 128) | 0x80;
        value = Math.floor(value / 128);
      }
      buf[pos++] = value;
    }
    this.pos = pos;
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint(field * 8 + wireType);
  }

  private flushSegment(): void {
    if (this.pos > this.segmentStart) {
      this.parts.push({ kind: "scratch", start: this.segmentStart, end: this.pos });
    }
    this.segmentStart = this.pos;
  }

  int64(field: number, value: number): this {
    checkInt64(value, `int64 field ${field}`);
    this.tag(field, WireType.varint);
    this.rawVarint(value);
    return this;
  }

  float32(field: number, value: number): this {
    this.tag(field, WireType.fixed32);
    this.reserve(4);
    this.view.setFloat32(this.pos, value, true);
    this.pos += 4;
    return this;
  }

  /** Length-delimited bytes; payloads above a small threshold are referenced rather than copied. */
  bytes(field: number, bytes: Uint8Array): this {
    this.tag(field, WireType.lengthDelimited);
    this.rawVarint(bytes.length);
    if (bytes.length <= 64) {
      this.reserve(bytes.length);
      this.buf.set(bytes, this.pos);
      this.pos += bytes.length;
    } else {
      this.flushSegment();
      this.parts.push({ kind: "bytes", bytes });
      this.referencedBytes += bytes.length;
    }
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  message(field: number, message: ProtoMessage): this {
    if (message === this) throw new Error("ProtoMessage: cannot nest a message in itself");
    message.frozen = true;
    this.tag(field, WireType.lengthDelimited);
    this.rawVarint(message.size);
    this.flushSegment();
    this.parts.push({ kind: "message", message });
    this.referencedBytes += message.size;
    return this;
  }

  packedInt64(field: number, values: readonly number[]): this {
    let length = 0;
    for (const v of values) {
      checkInt64(v, `repeated int64 field ${field}`);
      length += varintSize(v);
    }
    this.tag(field, WireType.lengthDelimited);
    this.rawVarint(length);
    for (const v of values) this.rawVarint(v);
    return this;
  }

  packedFloat32(field: number, values: readonly number[]): this {
    this.tag(field, WireType.lengthDelimited);
    this.rawVarint(values.length * 4);
    this.reserve(values.length * 4);
    for (const v of values) {
      this.view.setFloat32(this.pos, v, true);
      this.pos += 4;
    }
    return this;
  }

  /** Writes the whole encoded message at `offset`; returns the offset just past it. */
  writeTo(out: Uint8Array, offset: number): number {
    this.flushSegment();
    for (const part of this.parts) {
      if (part.kind === "scratch") {
        out.set(this.buf.subarray(part.start, part.end), offset);
        offset += part.end - part.start;
      } else if (part.kind === "bytes") {
        out.set(part.bytes, offset);
        offset += part.bytes.length;
      } else {
        offset = part.message.writeTo(out, offset);
      }
    }
    return offset;
  }

  finish(): Uint8Array {
    const size = this.size;
    if (size > maxModelBytes) {
      throw new Error(
        `encodeModel: expected at most ${maxModelBytes} bytes (protobuf limit), got ${size}; ` +
          "shrink the initializers or store them as ONNX external data",
      );
    }
    const out = new Uint8Array(size);
    const end = this.writeTo(out, 0);
    if (end !== size) throw new Error(`ProtoMessage: wrote ${end} bytes, expected ${size}`);
    return out;
  }
}

function tensorMessage(tensor: OnnxTensor): ProtoMessage {
  const bytesPerElement = elementBytes[tensor.dataType];
  if (bytesPerElement === undefined) {
    const valid = Object.keys(elementBytes).join(", ");
    throw new Error(`tensor "${tensor.name}": expected dataType in {${valid}}, got ${tensor.dataType}`);
  }
  let count = 1;
  for (const d of tensor.dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`tensor "${tensor.name}": expected non-negative integer dims, got [${tensor.dims.join(", ")}]`);
    }
    count *= d;
  }
  if (count * bytesPerElement !== tensor.raw.length) {
    throw new Error(
      `tensor "${tensor.name}": expected ${count * bytesPerElement} raw bytes for dims ` +
        `[${tensor.dims.join(", ")}], got ${tensor.raw.length}; check dims and dataType`,
    );
  }
  const m = new ProtoMessage();
  if (tensor.dims.length > 0) m.packedInt64(Field.tensor.dims, tensor.dims);
  m.int64(Field.tensor.dataType, tensor.dataType);
  if (tensor.name !== "") m.string(Field.tensor.name, tensor.name);
  // raw_data is always written, even when empty, so a zero-element tensor still reads as raw.
  m.bytes(Field.tensor.rawData, tensor.raw);
  return m;
}

function attributeMessage(name: string, attr: OnnxAttr): ProtoMessage {
  const m = new ProtoMessage().string(Field.attr.name, name);
  switch (attr.type) {
    case "int":
      m.int64(Field.attr.i, attr.value).int64(Field.attr.type, AttrType.int);
      break;
    case "float":
      m.float32(Field.attr.f, attr.value).int64(Field.attr.type, AttrType.float);
      break;
    case "string":
      m.string(Field.attr.s, attr.value).int64(Field.attr.type, AttrType.string);
      break;
    case "ints":
      m.packedInt64(Field.attr.ints, attr.value).int64(Field.attr.type, AttrType.ints);
      break;
    case "floats":
      m.packedFloat32(Field.attr.floats, attr.value).int64(Field.attr.type, AttrType.floats);
      break;
    case "tensor":
      m.message(Field.attr.t, tensorMessage(attr.value)).int64(Field.attr.type, AttrType.tensor);
      break;
    default: {
      const bad: never = attr;
      throw new Error(
        `attribute "${name}": expected type int|float|string|ints|floats|tensor, got ${JSON.stringify(bad)}`,
      );
    }
  }
  return m;
}

function nodeMessage(node: OnnxNode): ProtoMessage {
  const m = new ProtoMessage();
  for (const input of node.inputs) m.string(Field.node.input, input);
  for (const output of node.outputs) m.string(Field.node.output, output);
  if (node.name !== undefined && node.name !== "") m.string(Field.node.name, node.name);
  m.string(Field.node.opType, node.opType);
  for (const [name, attr] of Object.entries(node.attrs ?? {})) {
    m.message(Field.node.attribute, attributeMessage(name, attr));
  }
  if (node.domain !== undefined && node.domain !== "") m.string(Field.node.domain, node.domain);
  return m;
}

function valueInfoMessage(info: OnnxValueInfo): ProtoMessage {
  // The shape submessage is always present: an empty one means rank 0, an absent one unknown rank.
  const shape = new ProtoMessage();
  for (const d of info.shape) {
    const dim = new ProtoMessage();
    if (typeof d === "string") dim.string(Field.dim.dimParam, d);
    else if (d >= 0) dim.int64(Field.dim.dimValue, d);
    shape.message(Field.shape.dim, dim);
  }
  const tensorType = new ProtoMessage()
    .int64(Field.typeTensor.elemType, info.dataType)
    .message(Field.typeTensor.shape, shape);
  const type = new ProtoMessage().message(Field.typeProto.tensorType, tensorType);
  return new ProtoMessage().string(Field.valueInfo.name, info.name).message(Field.valueInfo.type, type);
}

function graphMessage(graph: OnnxGraph): ProtoMessage {
  const m = new ProtoMessage();
  for (const node of graph.nodes) m.message(Field.graph.node, nodeMessage(node));
  m.string(Field.graph.name, graph.name);
  for (const t of graph.initializers) m.message(Field.graph.initializer, tensorMessage(t));
  for (const v of graph.inputs) m.message(Field.graph.input, valueInfoMessage(v));
  for (const v of graph.outputs) m.message(Field.graph.output, valueInfoMessage(v));
  return m;
}

function opsetMessage(domain: string, version: number): ProtoMessage {
  const m = new ProtoMessage();
  if (domain !== "") m.string(Field.opsetId.domain, domain);
  return m.int64(Field.opsetId.version, version);
}

/** Serializes a graph into ONNX ModelProto bytes, ready for `ort.InferenceSession.create`. */
export function encodeModel(graph: OnnxGraph, options: OnnxModelOptions = {}): Uint8Array {
  const opset = options.opset ?? defaultModelOptions.opset;
  const irVersion = options.irVersion ?? defaultModelOptions.irVersion;
  const producer = options.producer ?? defaultModelOptions.producer;
  const m = new ProtoMessage().int64(Field.model.irVersion, irVersion);
  if (producer !== "") m.string(Field.model.producerName, producer);
  m.message(Field.model.graph, graphMessage(graph));
  m.message(Field.model.opsetImport, opsetMessage("", opset));
  for (const extra of options.extraOpsets ?? []) {
    m.message(Field.model.opsetImport, opsetMessage(extra.domain, extra.version));
  }
  return m.finish();
}

function littleEndianBytes(data: Float32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (hostIsLittleEndian) return bytes;
  const swapped = new Uint8Array(bytes.length);
  const width = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += width) {
    for (let j = 0; j < width; j++) swapped[i + j] = bytes[i + width - 1 - j];
  }
  return swapped;
}

/** A FLOAT tensor viewing `data`'s bytes (no copy on little-endian hosts). */
export function tensorFromFloat32(name: string, data: Float32Array, dims: readonly number[]): OnnxTensor {
  return { name, dataType: OnnxDataType.FLOAT, dims: [...dims], raw: littleEndianBytes(data) };
}

/** An INT64 tensor; plain numbers must be safe integers (negatives allowed). */
export function tensorFromInt64(
  name: string,
  data: readonly number[] | BigInt64Array,
  dims: readonly number[],
): OnnxTensor {
  let values: BigInt64Array;
  if (data instanceof BigInt64Array) {
    values = data;
  } else {
    values = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      checkInt64(data[i], `tensorFromInt64("${name}")[${i}]`);
      values[i] = BigInt(data[i]);
    }
  }
  return { name, dataType: OnnxDataType.INT64, dims: [...dims], raw: littleEndianBytes(values) };
}
