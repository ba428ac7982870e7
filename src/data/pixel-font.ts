// A 5x7 block-letter font for the words on signs in rendered scenes. Drawing letters from our own cells
// (rather than a system font) keeps renders identical on every machine, keeps a 3-letter word legible at
// 32 px (one cell per pixel), and lets the scene oracle read words back by matching cells to these glyphs.
const rows: Record<string, string> = {
  A: ".###. #...# #...# ##### #...# #...# #...#",
  B: "####. #...# #...# ####. #...# #...# ####.",
  C: ".#### #.... #.... #.... #.... #.... .####",
  D: "####. #...# #...# #...# #...# #...# ####.",
  E: "##### #.... #.... ####. #.... #.... #####",
  F: "##### #.... #.... ####. #.... #.... #....",
  G: ".#### #.... #.... #.### #...# #...# .###.",
  H: "#...# #...# #...# ##### #...# #...# #...#",
  I: "##### ..#.. ..#.. ..#.. ..#.. ..#.. #####",
  J: "..### ...#. ...#. ...#. ...#. #..#. .##..",
  K: "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  L: "#.... #.... #.... #.... #.... #.... #####",
  M: "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  N: "#...# ##..# #.#.# #..## #...# #...# #...#",
  O: ".###. #...# #...# #...# #...# #...# .###.",
  P: "####. #...# #...# ####. #.... #.... #....",
  Q: ".###. #...# #...# #...# #.#.# #..#. .##.#",
  R: "####. #...# #...# ####. #.#.. #..#. #...#",
  S: ".#### #.... #.... .###. ....# ....# ####.",
  T: "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  U: "#...# #...# #...# #...# #...# #...# .###.",
  V: "#...# #...# #...# #...# #...# .#.#. ..#..",
  W: "#...# #...# #...# #.#.# #.#.# ##.## #...#",
  X: "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  Y: "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  Z: "##### ....# ...#. ..#.. .#... #.... #####",
};

export const glyphWidth = 5;
export const glyphHeight = 7;
/** Letters the font draws. */
export const fontLetters = Object.keys(rows).join("");

/** The glyph of a letter as 35 cells, row-major, 1 = ink. */
export const glyphs: Record<string, Uint8Array> = Object.fromEntries(
  Object.entries(rows).map(([ch, s]) => [ch, Uint8Array.from(s.replace(/ /g, ""), (c) => (c === "#" ? 1 : 0))]),
);

/** Width in cells of a word: 5 per letter and 1 between letters. */
export function wordCells(word: string): number {
  return word.length * (glyphWidth + 1) - 1;
}
