// The pipeline stages of a Hugging Face tokenizer.json that T5-family (SentencePiece) tokenizers use, built from
// their JSON: normalizers, pre-tokenizers and decoders. Unknown stage types are refused by name, never guessed.
import { PrecompiledCharsmap } from "./precompiled.js";
import { TokenizerError } from "./tokenizer.js";

type Json = Record<string, unknown>;
export type Normalizer = (text: string) => string;
/** Splits one segment into pieces; `first` is true for the segment at the start of the input. */
export type PreTokenizer = (text: string, first: boolean) => string[];
/** Turns token strings into text pieces (HF's decode_chain), joined by the caller. */
export type Decoder = (tokens: string[]) => string[];

const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const whitespace = /\p{White_Space}/u;

function stage(v: unknown, field: string, where: string): Json {
  if (!isObj(v) || typeof v.type !== "string") {
    throw new TokenizerError(`${where}: field "${field}" expected an object with a "type", got ${JSON.stringify(v)?.slice(0, 80)}; restore tokenizer.json from the original model`);
  }
  return v;
}

function unsupported(field: string, type: unknown, where: string, valid: string): TokenizerError {
  return new TokenizerError(`${where}: field "${field}" has type ${JSON.stringify(type)}, which T5-family tokenizers do not use; `
    + `supported: ${valid}. Use the tokenizer.json that ships with a T5 / FLAN-T5 / mT5 checkpoint`);
}

/** A String or Regex pattern ({"String": "x"} or {"Regex": "x"}) as a global RegExp. */
function pattern(p: unknown, field: string, where: string): RegExp {
  if (isObj(p) && typeof p.String === "string") return new RegExp(p.String.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gu");
  if (isObj(p) && typeof p.Regex === "string") {
    try {
      return new RegExp(p.Regex, "gu");
    } catch (e) {
      throw new TokenizerError(`${where}: field "${field}.pattern" regex ${JSON.stringify(p.Regex)} is not supported here (${(e as Error).message})`);
    }
  }
  throw new TokenizerError(`${where}: field "${field}.pattern" expected {"String": ...} or {"Regex": ...}, got ${JSON.stringify(p)}`);
}

function stripWhitespace(text: string, left: boolean, right: boolean): string {
  const chars = [...text];
  let a = 0, b = chars.length;
  while (left && a < b && whitespace.test(chars[a])) a++;
  while (right && b > a && whitespace.test(chars[b - 1])) b--;
  return chars.slice(a, b).join("");
}

const normalizerTypes = "Precompiled, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence";

export function buildNormalizer(v: unknown, where: string, field = "normalizer"): Normalizer {
  if (v === null || v === undefined) return (t) => t;
  const n = stage(v, field, where);
  switch (n.type) {
    case "Precompiled": {
      if (n.precompiled_charsmap === null || n.precompiled_charsmap === "") return (t) => t;
      if (typeof n.precompiled_charsmap !== "string") throw new TokenizerError(`${where}: field "${field}.precompiled_charsmap" expected a base64 string`);
      const map = new PrecompiledCharsmap(new Uint8Array(Buffer.from(n.precompiled_charsmap, "base64")), where);
      return (t) => map.normalize(t);
    }
    case "NFC": case "NFD": case "NFKC": case "NFKD": {
      const form = n.type;
      return (t) => t.normalize(form);
    }
    case "Lowercase": return (t) => t.toLowerCase();
    case "Strip": return (t) => stripWhitespace(t, n.strip_left !== false, n.strip_right !== false);
    case "StripAccents": return (t) => t.replace(/\p{Mn}/gu, "");
    case "Replace": {
      const re = pattern(n.pattern, field, where);
      const content = String(n.content ?? "");
      return (t) => t.replace(re, () => content);
    }
    case "Prepend": {
      const p = String(n.prepend ?? "");
      return (t) => (t.length > 0 ? p + t : t);
    }
    case "Sequence": {
      if (!Array.isArray(n.normalizers)) throw new TokenizerError(`${where}: field "${field}.normalizers" expected a list`);
      const parts = n.normalizers.map((x, i) => buildNormalizer(x, where, `${field}.normalizers[${i}]`));
      return (t) => parts.reduce((s, f) => f(s), t);
    }
    default:
      throw unsupported(`${field}.type`, n.type, where, normalizerTypes);
  }
}

/** Metaspace's prepend rule, from the current ("prepend_scheme") or legacy ("add_prefix_space") keys. */
function prependScheme(n: Json, field: string, where: string): "always" | "first" | "never" {
  const s = n.prepend_scheme ?? (n.add_prefix_space === false ? "never" : "always");
  if (s !== "always" && s !== "first" && s !== "never") {
    throw new TokenizerError(`${where}: field "${field}.prepend_scheme" expected always, first or never, got ${JSON.stringify(s)}`);
  }
  return s;
}

function replacementChar(n: Json, field: string, where: string): string {
  const r = n.replacement ?? "\u2581";
  if (typeof r !== "string" || [...r].length !== 1) throw new TokenizerError(`${where}: field "${field}.replacement" expected one character, got ${JSON.stringify(r)}`);
  return r;
}

/** Splits before each run of `rep`, so every piece but maybe the first starts with it (MergedWithNext). */
function splitMergedWithNext(text: string, rep: string): string[] {
  const out: string[] = [];
  let cur = "";
  let prevRep = false;
  for (const ch of text) {
    const isRep = ch === rep;
    if (isRep && !prevRep && cur !== "") {
      out.push(cur);
      cur = "";
    }
    cur += ch;
    prevRep = isRep;
  }
  if (cur !== "") out.push(cur);
  return out;
}

const wordChar = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
const whitespaceWords = new RegExp(`[${wordChar}]+|[^${wordChar}\\p{White_Space}]+`, "gu");
const preTokenizerTypes = "Metaspace, WhitespaceSplit, Whitespace, Sequence";

export function buildPreTokenizer(v: unknown, where: string, field = "pre_tokenizer"): PreTokenizer {
  if (v === null || v === undefined) return (t) => (t === "" ? [] : [t]);
  const n = stage(v, field, where);
  switch (n.type) {
    case "Metaspace": {
      const rep = replacementChar(n, field, where);
      const scheme = prependScheme(n, field, where);
      const split = n.split !== false;
      return (t, first) => {
        let s = t.replaceAll(" ", rep);
        if ((scheme === "always" || (scheme === "first" && first)) && !s.startsWith(rep)) s = rep + s;
        if (s === "") return [];
        return split ? splitMergedWithNext(s, rep) : [s];
      };
    }
    case "WhitespaceSplit": return (t) => t.split(/\p{White_Space}+/u).filter((s) => s !== "");
    case "Whitespace": return (t) => t.match(whitespaceWords) ?? [];
    case "Sequence": {
      if (!Array.isArray(n.pretokenizers)) throw new TokenizerError(`${where}: field "${field}.pretokenizers" expected a list`);
      const parts = n.pretokenizers.map((x, i) => buildPreTokenizer(x, where, `${field}.pretokenizers[${i}]`));
      return (t, first) => parts.reduce<{ s: string; first: boolean }[]>(
        (pieces, f) => pieces.flatMap((p) => f(p.s, p.first).map((s, i) => ({ s, first: p.first && i === 0 }))),
        [{ s: t, first }],
      ).map((p) => p.s);
    }
    default:
      throw unsupported(`${field}.type`, n.type, where, preTokenizerTypes);
  }
}

/** <0xAB> byte tokens decoded together as UTF-8 (each invalid byte becomes U+FFFD, as HF does). */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length === 0) return;
    try {
      out.push(new globalThis.TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push("\uFFFD");
    }
    bytes = [];
  };
  for (const t of tokens) {
    const m = /^<0x([0-9A-F]{2})>$/.exec(t);
    if (m) bytes.push(parseInt(m[1], 16));
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

const decoderTypes = "Metaspace, ByteFallback, Fuse, Replace, Strip, Sequence";

export function buildDecoder(v: unknown, where: string, field = "decoder"): Decoder {
  if (v === null || v === undefined) return (tokens) => tokens;
  const n = stage(v, field, where);
  switch (n.type) {
    case "Metaspace": {
      const rep = replacementChar(n, field, where);
      const dropFirst = prependScheme(n, field, where) !== "never";
      return (tokens) => tokens.map((t, i) => [...t].map((c) => (c === rep ? (i === 0 && dropFirst ? "" : " ") : c)).join(""));
    }
    case "ByteFallback": return byteFallback;
    case "Fuse": return (tokens) => [tokens.join("")];
    case "Replace": {
      const re = pattern(n.pattern, field, where);
      const content = String(n.content ?? "");
      return (tokens) => tokens.map((t) => t.replace(re, () => content));
    }
    case "Strip": {
      const content = String(n.content ?? " ");
      const start = Number(n.start ?? 0), stop = Number(n.stop ?? 0);
      return (tokens) => tokens.map((t) => {
        const cs = [...t];
        let a = 0, b = cs.length;
        for (let i = 0; i < start && a < b && cs[a] === content; i++) a++;
        for (let i = 0; i < stop && b > a && cs[b - 1] === content; i++) b--;
        return cs.slice(a, b).join("");
      });
    }
    case "Sequence": {
      if (!Array.isArray(n.decoders)) throw new TokenizerError(`${where}: field "${field}.decoders" expected a list`);
      const parts = n.decoders.map((x, i) => buildDecoder(x, where, `${field}.decoders[${i}]`));
      return (tokens) => parts.reduce((ts, f) => f(ts), tokens);
    }
    default:
      throw unsupported(`${field}.type`, n.type, where, decoderTypes);
  }
}
