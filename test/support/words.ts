// Route words that drover's route key keeps as they are.

/** Path word number i: base-20 in the letters g..z, so never digits or hex, never folded. */
export function word(i: number): string {
  let s = '';
  do {
    s += String.fromCharCode(103 + (i % 20));
    i = Math.floor(i / 20);
  } while (i > 0);
  return s;
}
