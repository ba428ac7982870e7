/** sha256 over native/ort_run.cc and the headers beside it that it includes, each preceded by its name. */
export function nativeSourcesHash(nativeDir: string): string;
