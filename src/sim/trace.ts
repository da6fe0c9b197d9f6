// The run's fingerprint. Every event appends one compact line, "time pid
// kind detail", and folds it into a running hash, so two runs of one seed
// can be compared by a 16-hex-digit string and, when they differ, by their
// last lines. The hash is two independent 32-bit multiply-xor lanes (the
// cyrb53 mix) over the line's UTF-16 code units: no BigInt, no allocation
// besides the line itself.

import { assert } from '../os/assert.js';

const RING = 256;

export class Trace {
  private h1 = 0xdeadbeef;
  private h2 = 0x41c6ce57;
  private readonly ring: string[] = new Array<string>(RING).fill('');
  private head = 0; // next slot of the ring
  private count = 0;
  private readonly all: string[] | null;

  constructor(record: boolean) {
    this.all = record ? [] : null;
    assert(this.ring.length === RING, 'Trace: the ring has RING slots');
    // lines() tells a slot never written by its '' (a line is never empty).
    assert(this.ring.every((l) => l === ''), 'Trace: every slot starts unwritten');
  }

  add(line: string): void {
    // A line is "time pid kind detail", never empty; the ring's head follows the count.
    assert(line.length > 0, 'Trace.add: a line is never empty');
    assert(this.head === this.count % RING, 'Trace.add: the head follows the count');
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    // A separator, so "ab"+"c" and "a"+"bc" hash apart.
    this.h1 = Math.imul(h1 ^ 10, 2654435761);
    this.h2 = Math.imul(h2 ^ 10, 1597334677);
    this.ring[this.head] = line;
    this.head = (this.head + 1) % RING;
    this.count++;
    if (this.all !== null) this.all.push(line);
    assert(this.all === null || this.all.length === this.count, 'Trace.add: a recording trace keeps every line');
  }

  /** The hash so far; does not disturb the running state. */
  hash(): string {
    let h1 = this.h1;
    let h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    const hex = (h2 >>> 0).toString(16).padStart(8, '0') + (h1 >>> 0).toString(16).padStart(8, '0');
    // The lanes are 32-bit: two of them print as exactly 16 hex digits.
    assert(h1 === (h1 | 0) && h2 === (h2 | 0), 'Trace.hash: the lanes are int32');
    assert(hex.length === 16, 'Trace.hash: a hash is 16 hex digits');
    return hex;
  }

  lines(): readonly string[] {
    if (this.all !== null) {
      assert(this.all.length === this.count, 'Trace.lines: a recording trace keeps every line');
      return this.all.slice();
    }
    const n = Math.min(this.count, RING);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.ring[(this.head - n + i + RING) % RING]!);
    // Until it wraps, the ring fills from slot 0 and the slots from head on were never written (a line is never empty).
    assert(this.count >= RING || this.ring[this.head] === '', 'Trace.lines: an unwrapped ring is filled only up to its head');
    return out;
  }

  get length(): number {
    assert(this.count >= 0 && Number.isInteger(this.count), 'Trace.length: a count of lines');
    assert(this.all === null || this.all.length === this.count, 'Trace.length: a recording trace keeps every line');
    return this.count;
  }
}
