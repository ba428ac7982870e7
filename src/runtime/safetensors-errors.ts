// Error classes for safetensors I/O: one class per validation rule of the format, so callers and
// tests can tell "truncated file" from "overlapping tensors" from "this is a pickle" by type.

import { ImagenError } from "../util/errors.js";

/** Base class of every error raised while reading or writing a safetensors file. */
export class SafetensorsError extends ImagenError {}

/** Rule 1: fewer than the 8 bytes that hold the header length. */
export class FileTooShortError extends SafetensorsError {}

/** Rule 2: the u64 header length is over the 100 MB cap or runs past the end of the file. */
export class HeaderLengthError extends SafetensorsError {}

/** Rule 3: the header bytes are not valid UTF-8. */
export class HeaderEncodingError extends SafetensorsError {}

/** Rule 4: the header is not JSON, or not a JSON object starting with `{`. */
export class HeaderJsonError extends SafetensorsError {}

/** Rule 5: a tensor entry is not exactly `{dtype, shape, data_offsets}` with valid types. */
export class TensorEntryError extends SafetensorsError {}

/** Rule 6: a dtype string that safetensors (or imagen-ts) does not know. */
export class UnknownDtypeError extends SafetensorsError {}

/** Rule 7: `__metadata__` is not an object of string -> string. */
export class MetadataError extends SafetensorsError {}

/** Rule 8: shape x dtype size is not a safe integer. */
export class TensorSizeOverflowError extends SafetensorsError {}

/** Rule 9: data_offsets span a byte count other than shape x dtype size. */
export class TensorSizeMismatchError extends SafetensorsError {}

/** Rule 10: tensor byte ranges are unsorted, leave gaps, or overlap. */
export class DataOffsetsError extends SafetensorsError {}

/** Rule 11: the tensors do not cover the data section exactly. */
export class DataCoverageError extends SafetensorsError {}

/** Rule 12: the same key appears twice in one JSON object (JSON.parse would silently keep the last). */
export class DuplicateKeyError extends SafetensorsError {}

/** Rule 13: the file is a PyTorch pickle or zip checkpoint, which imagen-ts never loads. */
export class PickleRefusedError extends SafetensorsError {}

/** How messages name the file: `safetensors file "model.safetensors"`. */
export function describeSource(source: string | undefined): string {
  return source === undefined ? "safetensors buffer" : `safetensors file ${JSON.stringify(source)}`;
}
