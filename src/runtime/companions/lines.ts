// A companion's output cut into lines, for `drover ctl tail` (issue 12).
//
// A companion may print anything: 400 MB with no newline at all. Splitting
// the held partial line again with every new chunk made that quadratic (100%
// CPU, 1 GB held). Here every character is looked at once, when its chunk
// comes, and at most LINE_MAX characters of a line are ever held:
//
// - a line longer than LINE_MAX is cut there: its first LINE_MAX characters
//   are emitted as a line of their own, and the rest goes on as the next
//   line, which starts with CONT ("[cont] ") so that a reader (and a tool)
//   can tell it continues the one before; a 10 MB line comes out as 160
//   lines, the first one unmarked, the others marked;
// - the mark is a prefix, not a suffix on the cut line, so that it survives
//   the tail's own truncation of long lines (Lines in manager.ts keeps the
//   first 4096 characters of each);
// - a cut never splits a UTF-16 surrogate pair: it moves one character
//   back, so that no half character is emitted.
//
// Lengths are in UTF-16 code units (what a JavaScript string counts); for
// ASCII output that is bytes, so LINE_MAX is 64 KiB of text. What is
// written to a companion's stdout/stderr file is not touched: the file gets
// the bytes as printed; only the line view is cut.

/** The longest piece of a line held or emitted (the CONT mark aside). */
export const LINE_MAX = 64 * 1024;
/** Starts every line that continues a cut one. */
export const CONT = '[cont] ';

export class LineSplitter {
  /** Pieces of the line not yet ended, `heldLength` characters in all (≤ LINE_MAX). */
  private held: string[] = [];
  private heldLength = 0;
  /** The held line continues one that was cut. */
  private cont = false;
  /** Characters looked at so far: each once, in its own chunk (a test of the cost reads it). */
  scanned = 0;

  constructor(private readonly emit: (line: string) => void, private readonly max = LINE_MAX) {
    if (!(max >= 2)) throw new RangeError(`a line bound of ${max} characters`);
  }

  /** Characters held of the line not yet ended: never more than the bound. */
  get pending(): number {
    return this.heldLength;
  }

  push(text: string): void {
    let from = 0;
    while (from < text.length) {
      const nl = text.indexOf('\n', from);
      const end = nl < 0 ? text.length : nl;
      this.scanned += (nl < 0 ? text.length : nl + 1) - from;
      this.take(text, from, end);
      if (nl < 0) return;
      this.flush();
      from = nl + 1;
    }
  }

  /**
   * The stream ended: a last line without its newline is emitted as it is
   * (a process that printed "done" and exited still said it).
   */
  end(): void {
    if (this.heldLength > 0) this.flush();
  }

  /**
   * Adds text[from, end) (no newline in it) to the held line. What does not
   * fit cuts it: the held line is emitted, and the rest starts a marked one.
   * A line of exactly the bound is held whole: it is cut only once a
   * character more comes, so that its newline does not make an empty
   * continuation line.
   */
  private take(text: string, from: number, end: number): void {
    while (from < end) {
      const room = this.max - this.heldLength;
      if (end - from <= room) {
        this.held.push(from === 0 && end === text.length ? text : text.slice(from, end));
        this.heldLength += end - from;
        return;
      }
      let cut = from + room;
      // Never half a character: a high surrogate at the cut goes on with its pair.
      if (cut > from && isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
      if (cut > from) {
        this.held.push(text.slice(from, cut));
        this.heldLength += cut - from;
      }
      this.flush();
      this.cont = true;
      from = cut;
    }
  }

  /** Emits the held line (a newline came, or it reached the bound). */
  private flush(): void {
    const line = this.held.length === 1 ? this.held[0]! : this.held.join('');
    this.emit(this.cont ? CONT + line : line);
    this.held = [];
    this.heldLength = 0;
    this.cont = false;
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
