/**
 * What processes wrote to init's stdout and stderr, kept as a bounded tail.
 *
 * A simulated app may log without end (a review's app wrote 256 KB per
 * request: 929 MB in 4.5 s, then a RangeError from `+=` reported as the
 * app's own 500). Readers need only the end (a log tail, a test's look at
 * what was said) or every write as it happens, which `tap` gives them.
 */
import { assert } from '../os/assert.js';

export const OUTPUT_KEEP = 64 * 1024;

export type OutputTag = 'stdout' | 'stderr';

export class Output {
  /** At least the last OUTPUT_KEEP characters written (all of it while shorter). */
  stdout = '';
  stderr = '';
  /** UTF-8 bytes written and since dropped from the front of each tail. */
  readonly dropped = { stdout: 0, stderr: 0 };
  /** Called with every write, before any of it is dropped: for readers that must see it all. */
  tap: ((tag: OutputTag, s: string) => void) | null = null;

  constructor(private readonly keep = OUTPUT_KEEP) {
    assert(Number.isInteger(keep) && keep > 0, () => `output: a tail of ${keep} characters`);
    assert(this.stdout === '' && this.stderr === '', 'output: a new one holds nothing');
  }

  write(tag: OutputTag, s: string): void {
    assert(tag === 'stdout' || tag === 'stderr', () => `output: no stream ${String(tag)}`);
    this.tap?.(tag, s);
    const text = this[tag] + s;
    // Cut at twice the bound down to the bound: each character is copied O(1) times.
    this[tag] = text.length > 2 * this.keep ? this.cut(tag, text) : text;
    assert(this[tag].length <= 2 * this.keep, 'output: a tail past twice its bound');
  }

  private cut(tag: OutputTag, text: string): string {
    let at = text.length - this.keep;
    // Never keep half of a surrogate pair.
    const c = text.charCodeAt(at);
    if (c >= 0xdc00 && c <= 0xdfff) at++;
    const before = this.dropped[tag];
    this.dropped[tag] += Buffer.byteLength(text.slice(0, at));
    // What goes is counted, and what stays is the end, at most the bound (and one half pair).
    assert(this.dropped[tag] > before, 'output: a cut that dropped nothing');
    assert(text.length - at <= this.keep, 'output: a cut that kept more than the bound');
    return text.slice(at);
  }
}
