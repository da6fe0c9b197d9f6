// A companion's output as lines (issue 12): a line is cut at 64 KiB, the rest
// goes on as the next line marked "[cont] ", at most 64 KiB of an unfinished
// line is ever held, and each character is looked at once (a 400 MB line
// with no newline cost the manager 100% CPU and 1 GB when the held partial
// was split again with every chunk).
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, test } from 'vitest';
import { CONT, LINE_MAX, LineSplitter } from '../../src/runtime/companions/lines.js';
import type { Os } from '../../src/os/types.js';
import { BACKLOG_MAX, Lines, Output } from '../../src/runtime/companions/output.js';
import { MAX_TAIL_LINES } from '../../src/runtime/control/protocol.js';

/**
 * An Output to the manager's own stdout (here: an array of writes), feeding
 * `lines`. `reader.stuck`: nobody reads that stdout, so everything written
 * since waits in the backlog; `reader.drain()`: the reader caught up.
 */
function inherited(lines = new Lines(), prefix = 'w | ') {
  const writes: string[] = [];
  const reader = { stuck: false, waiting: 0, drain: () => void (reader.waiting = 0) };
  const write = (t: string) => {
    writes.push(t);
    if (reader.stuck) reader.waiting += Buffer.byteLength(t);
  };
  const os = { stdout: { write, backlog: () => reader.waiting }, stderr: { write: () => {}, backlog: () => 0 } } as unknown as Os;
  return { out: new Output(os, 'inherit', 'stdout', lines, prefix), lines, writes, reader };
}

const MB = 1024 * 1024;

/** A splitter that records its lines and the most it ever held. */
function splitter(max = LINE_MAX) {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l), max);
  let held = 0;
  const push = (t: string) => {
    s.push(t);
    held = Math.max(held, s.pending);
  };
  return { s, lines, push, held: () => held };
}

/** Text `n` characters long that is not one letter repeated: a piece out of place shows. */
function text(n: number, from = 0): string {
  const unit = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const k = from % unit.length;
  return unit.repeat(Math.ceil((n + k) / unit.length)).slice(k, k + n);
}

/** The lines a reader rebuilds: a marked line is glued to the one before it. */
function rejoin(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const l of lines) {
    if (l.startsWith(CONT)) out[out.length - 1] += l.slice(CONT.length);
    else out.push(l);
  }
  return out;
}

describe('LineSplitter', () => {
  test('a 10 MB line fed in 64 KiB chunks comes out as 160 pieces of 64 KiB, all but the first marked, and nothing more is held', () => {
    const { lines, push, held, s } = splitter();
    const line = text(10 * MB);
    for (let i = 0; i < line.length; i += 65536) push(line.slice(i, i + 65536));
    push('\nnext\n');
    expect(lines.length).toBe(161);
    expect(lines[0]).toBe(line.slice(0, LINE_MAX));
    for (let i = 1; i < 160; i++) {
      expect(lines[i]!.startsWith(CONT)).toBe(true);
      expect(lines[i]!.length).toBe(CONT.length + LINE_MAX);
    }
    expect(lines[160]).toBe('next');
    expect(rejoin(lines)).toEqual([line, 'next']);
    expect(held()).toBeLessThanOrEqual(LINE_MAX);
    expect(s.pending).toBe(0);
    expect(s.scanned).toBe(line.length + 6);
  });

  test('the same line in odd chunks (7 KiB + 3 characters) gives the same lines', () => {
    const { lines, push, held } = splitter();
    const line = text(10 * MB);
    for (let i = 0; i < line.length; i += 7 * 1024 + 3) push(line.slice(i, i + 7 * 1024 + 3));
    push('\n');
    expect(lines.length).toBe(160);
    expect(lines.slice(1).every((l) => l.startsWith(CONT) && l.length === CONT.length + LINE_MAX)).toBe(true);
    expect(rejoin(lines)).toEqual([line]);
    expect(held()).toBeLessThanOrEqual(LINE_MAX);
  });

  test('short lines split across many chunks, and many lines in one chunk, are the lines as printed', () => {
    const { lines, push, held } = splitter();
    const printed = 'first line\nsecond, a little longer\n\nfourth after an empty one\n' + 'x'.repeat(5000) + '\nlast\n';
    for (let i = 0, n = 1; i < printed.length; i += n, n = (n % 13) + 1) push(printed.slice(i, i + n));
    expect(lines).toEqual(printed.split('\n').slice(0, -1));
    expect(held()).toBeLessThan(5001);
  });

  test('a line of exactly 64 KiB is one line (no empty continuation); one character more is cut', () => {
    const a = splitter();
    a.push(text(LINE_MAX));
    a.push('\n');
    expect(a.lines).toEqual([text(LINE_MAX)]);
    const b = splitter();
    b.push(text(LINE_MAX + 1) + '\n');
    expect(b.lines).toEqual([text(LINE_MAX), CONT + text(1, LINE_MAX)]);
  });

  test('a cut never splits a surrogate pair', () => {
    const { lines, push } = splitter(4);
    push('abc\u{1F600}de\n'); // the emoji is two UTF-16 units, at 3 and 4
    expect(lines).toEqual(['abc', `${CONT}\u{1F600}de`]);
  });

  test('50 MB with no newline, in 64 KiB chunks: each character is looked at once, 64 KiB held at most', () => {
    // Splitting the held partial again with every chunk looked at ~20 G characters here.
    const { s, lines, push, held } = splitter();
    const chunk = text(65536);
    let total = 0;
    for (let i = 0; i < 800; i++) {
      push(chunk);
      total += chunk.length;
    }
    expect(total).toBe(50 * MB);
    expect(s.scanned).toBe(total);
    expect(held()).toBeLessThanOrEqual(LINE_MAX);
    expect(lines.length).toBe(799); // the 800th piece is held until its line goes on or ends
  });

  test('property: what a reader rebuilds is what was printed; no piece or held part over the bound; each character looked at once', () => {
    const piece = fc.constantFrom('a', 'b', 'c', '\n', 'é', '\u{1F600}');
    fc.assert(
      fc.property(fc.array(fc.array(piece, { maxLength: 40 }).map((a) => a.join('')), { maxLength: 30 }), fc.integer({ min: 2, max: 9 }), (chunks, max) => {
        const { s, lines, push, held } = splitter(max);
        for (const c of chunks) push(c);
        const all = chunks.join('');
        push('\n');
        expect(rejoin(lines)).toEqual(all.split('\n'));
        expect(held()).toBeLessThanOrEqual(max);
        for (const l of lines) {
          const body = l.startsWith(CONT) ? l.slice(CONT.length) : l;
          expect(body.length).toBeLessThanOrEqual(max);
          // No lone surrogate at either end of a piece.
          expect(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(body)).toBe(false);
        }
        expect(s.scanned).toBe(all.length + 1);
      }),
      { numRuns: 300 },
    );
  });
});

describe("a companion's tail (Lines in the manager)", () => {
  test('400 MB-class output without a newline: 50 MB in pipe-sized chunks is linear, holds at most 64 KiB, and the tail shows marked pieces', () => {
    const { out, lines } = inherited();
    const chunk = text(65536);
    let most = 0;
    for (let i = 0; i < 800; i++) {
      out.write(chunk);
      most = Math.max(most, out.pending);
    }
    out.write('\ndone\n');
    expect(most).toBeLessThanOrEqual(LINE_MAX);
    const last = lines.last(3);
    expect(last[2]).toBe('done');
    expect(last[1]!.startsWith(CONT)).toBe(true);
    expect(last[1]!.length).toBe(4096); // the tail keeps a line's first 4096 characters
    expect(lines.last(10_000).length).toBe(801);
  });

  test('the tail keeps the last MAX_TAIL_LINES lines, oldest first', () => {
    const lines = new Lines();
    for (let i = 0; i < 25_000; i++) lines.add(`l${i}`);
    const all = lines.last(10_000);
    expect(all.length).toBe(10_000);
    expect(all[0]).toBe('l15000');
    expect(all[9999]).toBe('l24999');
    expect(lines.last(2)).toEqual(['l24998', 'l24999']);
  });
});

/** The heap in use after a full collection (V8's gc, reached without --expose-gc on the command line). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

describe("the tail's memory: what it keeps of a line is all it holds", () => {
  // A kept line used to be a V8 slice of the pipe chunk it came in, pinning
  // the whole chunk: 10,000 lines of 65,535 characters held 626 MiB. 4,000
  // lines of a long line and a short one, each from its own fresh 64 KiB
  // chunk as the pipe delivers them: the kept text is 4,000 * (4096 + 60)
  // characters, 16 MiB; pinned chunks would be 250 MiB.
  test('kept lines are copies: heap growth is about the kept text, not the chunks it was cut from', () => {
    const lines = new Lines();
    const split = new LineSplitter((l) => lines.add(l));
    const before = heapAfterGc();
    for (let i = 0; i < 4000; i++) split.push(Buffer.alloc(65_535, 97 + (i % 26)).toString('utf8') + '\n' + `short line ${i} `.padEnd(60, '.') + '\n');
    const grew = (heapAfterGc() - before) / MB;
    expect(lines.last(MAX_TAIL_LINES)).toHaveLength(8000);
    expect(lines.last(1)[0]).toBe('short line 3999 '.padEnd(60, '.'));
    expect(grew).toBeLessThan(80);
  });
});

describe('tail numbering (Lines.next, since): what tail -f follows', () => {
  const filled = (n: number) => {
    const lines = new Lines();
    for (let i = 0; i < n; i++) lines.add(`l${i}`);
    return lines;
  };

  test('every line gets the next number from 0; last(n) is the newest n', () => {
    const lines = filled(5);
    expect(lines.next).toBe(5);
    expect(lines.last(2)).toEqual(['l3', 'l4']);
    expect(lines.last(0)).toEqual([]);
    expect(new Lines().last(5)).toEqual([]);
  });

  test('since(after) gives the lines numbered after and on, none dropped while the ring holds them', () => {
    const lines = filled(5);
    expect(lines.since(0, 100)).toEqual({ lines: ['l0', 'l1', 'l2', 'l3', 'l4'], dropped: 0 });
    expect(lines.since(3, 100)).toEqual({ lines: ['l3', 'l4'], dropped: 0 });
    // Caught up, or asking past the end: nothing, nothing dropped.
    expect(lines.since(5, 100)).toEqual({ lines: [], dropped: 0 });
    expect(lines.since(9, 100)).toEqual({ lines: [], dropped: 0 });
  });

  test('more lines since `after` than asked for: the newest, and dropped says how many were skipped', () => {
    expect(filled(10).since(2, 3)).toEqual({ lines: ['l7', 'l8', 'l9'], dropped: 5 });
  });

  test('lines gone from the ring are counted as dropped; numbering goes on past the ring', () => {
    const lines = filled(MAX_TAIL_LINES + 250);
    expect(lines.next).toBe(MAX_TAIL_LINES + 250);
    const r = lines.since(100, MAX_TAIL_LINES);
    expect(r.dropped).toBe(150);
    expect(r.lines).toHaveLength(MAX_TAIL_LINES);
    expect(r.lines[0]).toBe('l250');
    expect(r.lines[r.lines.length - 1]).toBe(`l${MAX_TAIL_LINES + 249}`);
    // A follower that keeps up never misses one, across the ring's wrap.
    let after = 0;
    const seen: string[] = [];
    const follow = new Lines();
    for (let i = 0; i < 3 * MAX_TAIL_LINES; i += 997) {
      for (let j = i; j < Math.min(i + 997, 3 * MAX_TAIL_LINES); j++) follow.add(`m${j}`);
      const got = follow.since(after, MAX_TAIL_LINES);
      expect(got.dropped).toBe(0);
      seen.push(...got.lines);
      after = follow.next;
    }
    expect(seen).toHaveLength(3 * MAX_TAIL_LINES);
    expect(seen.every((l, i) => l === `m${i}`)).toBe(true);
  });

  test('a kept line is at most 4096 characters', () => {
    const lines = new Lines();
    lines.add('x'.repeat(10_000));
    expect(lines.last(1)[0]).toHaveLength(4096);
  });
});

describe('Output: inherited lines prefixed, whole, one write per chunk; files untouched', () => {
  test('pieces of a line are held until its newline, then written once with the prefix', () => {
    const { out, writes, lines } = inherited(new Lines(), 'w:1 | ');
    out.write('hel');
    out.write('lo');
    expect(writes).toEqual([]);
    out.write('\nsecond\nthird\npart');
    expect(writes).toEqual(['w:1 | hello\nw:1 | second\nw:1 | third\n']);
    out.end();
    expect(writes[1]).toBe('w:1 | part\n');
    expect(lines.last(10)).toEqual(['hello', 'second', 'third', 'part']);
    out.write('after the end\n'); // late bytes of a stream that ended: still whole lines
    expect(writes[2]).toBe('w:1 | after the end\n');
  });

  test('a cut line (over 64 KiB) comes out as whole prefixed pieces, the rest marked [cont]', () => {
    const { out, writes } = inherited();
    out.write(text(LINE_MAX + 10) + '\n');
    const all = writes.join('');
    expect(all.split('\n').slice(0, -1).map((l) => l.slice(0, 4 + CONT.length))).toEqual(['w | ' + text(CONT.length), `w | ${CONT}`]);
  });

  // `drover ... | sleep 40` with a companion printing for ever: Node queued
  // every write in the manager's memory (500 MiB+). Now what waits is bounded,
  // the rest dropped and said once, in the stream, when it flows again.
  test('a stdout nobody reads holds at most BACKLOG_MAX plus one chunk; the lines dropped are counted and said once when it drains', () => {
    const { out, writes, lines, reader } = inherited(new Lines(), 'spew | ');
    reader.stuck = true;
    const line = 'y'.repeat(199) + '\n';
    const chunk = line.repeat(327); // 65,400 bytes, as a pipe delivers them
    for (let i = 0; i < 200; i++) out.write(chunk); // 13 MB printed
    expect(reader.waiting).toBeGreaterThanOrEqual(BACKLOG_MAX);
    expect(reader.waiting).toBeLessThanOrEqual(BACKLOG_MAX + chunk.length * 2);
    const kept = writes.join('').split('\n').length - 1;
    expect(lines.next).toBe(200 * 327); // the tail saw everything
    reader.drain();
    out.write('back\n');
    const dropped = 200 * 327 - kept;
    const kib = ((dropped * ('spew | '.length + 200)) / 1024).toFixed(1);
    expect(writes.slice(-2)).toEqual([`spew | [drover: ${dropped} lines (${kib} KiB) dropped: the manager's stdout was not read fast enough]\n`, 'spew | back\n']);
    out.write('more\n');
    expect(writes.slice(-1)).toEqual(['spew | more\n']); // said once
    expect(writes.filter((w) => w.includes('dropped'))).toHaveLength(1);
  });

  test('a gap still open when the stream ends is said at its end', () => {
    const { out, writes, reader } = inherited();
    reader.stuck = true;
    reader.waiting = BACKLOG_MAX;
    out.write('lost\nlost too\n');
    expect(writes).toEqual([]);
    out.end();
    expect(writes).toEqual(["w | [drover: 2 lines (22 bytes) dropped: the manager's stdout was not read fast enough]\n"]);
  });

  test('to a file: the bytes as printed, no prefix; the tail still has the lines', () => {
    const written: string[] = [];
    const os = {
      stdout: { write: () => { throw new Error('nothing goes to stdout'); } },
      // /var/log is root's, writable by root alone: the log is opened as it is (openLogFile).
      fs: { stat: () => ({ mode: 0o40755, uid: 0 }), open: () => 3, write: (_fd: number, t: string) => (written.push(t), Buffer.byteLength(t)), close: () => {} },
      hooks: {},
    } as unknown as Os;
    const lines = new Lines();
    const out = new Output(os, '/var/log/w.log', 'stdout', lines, 'w | ');
    out.write('a\nb');
    out.end();
    expect(written.join('')).toBe('a\nb');
    expect(lines.last(5)).toEqual(['a', 'b']);
  });
});
