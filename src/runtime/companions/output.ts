// Where a companion's output goes, and what `tail` shows of it.
//
// Every stream of every child process is cut into lines (lines.ts: at most
// 64 KiB held, each character looked at once), by a splitter of that
// child's own: the late output of a reaped process never joins a line of
// its successor's. Then:
// - to a file: the bytes go as printed, untouched (a log file is the
//   program's own);
// - inherited (the manager's stdout/stderr, shared by every companion):
//   each whole line goes out as `NAME | line`, the lines of one chunk in one
//   write, so the lines of two companions never interleave mid-line and each
//   says whose it is; while the manager's stream is backed up (a slow pipe:
//   `drover | slow-reader`), lines are dropped and counted, not queued (see
//   BACKLOG_MAX);
// - always: into the companion's Lines, the ring `tail` reads.
import type { Os } from '../../os/types.js';
import { LogSink } from '../log.js';
import { MAX_TAIL_LINES } from '../control/protocol.js';
import { LineSplitter } from './lines.js';

/**
 * Inherited output the manager's stdout (or stderr) may hold unwritten, in
 * bytes, beyond which a companion's lines are dropped. Node queues what a
 * pipe cannot take yet in the manager's memory without bound: a companion
 * printing for ever into `drover | sleep 40` grew the manager past 500 MiB.
 * The policy is drop and count, not backpressure: pausing the companion's
 * pipe would stall the companion itself (its writes block, or queue in its
 * own memory) and its tail and log file with it, all for a reader of the
 * manager's stdout that may never come back. What was dropped is said once
 * per gap, in the stream, where the lines would have been:
 * `NAME | [drover: 120 lines (24.1 KiB) dropped: ...]`. A file target is
 * never dropped from (LogSink writes synchronously).
 */
export const BACKLOG_MAX = 1024 * 1024;

/** The tail keeps each line's first this many characters (a cut line's [cont] mark survives it: it is a prefix). */
export const TAIL_LINE_MAX = 4096;

/**
 * The last MAX_TAIL_LINES lines of one stream of one companion, across its
 * processes, each numbered: the first line the manager kept is 0, and the
 * numbers go on through restarts, so that a follower (`tail` with `after`)
 * asks for what it has not seen yet and learns what it missed.
 */
export class Lines {
  private readonly ring: string[] = [];
  private count = 0;

  /** The sequence number the next line will get (= lines seen so far). */
  get next(): number {
    return this.count;
  }

  add(line: string): void {
    const kept = flat(line.length > TAIL_LINE_MAX ? line.slice(0, TAIL_LINE_MAX) : line);
    if (this.ring.length < MAX_TAIL_LINES) this.ring.push(kept);
    else this.ring[this.count % MAX_TAIL_LINES] = kept;
    this.count++;
  }

  /** The last `n` lines, oldest first. */
  last(n: number): string[] {
    return n <= 0 ? [] : this.range(Math.max(0, this.count - n));
  }

  /**
   * The lines numbered `after` and on, at most the last `n` of them.
   * `dropped`: how many of those numbered `after` and on are not in the reply
   * (gone from the ring, or over `n`): what a follower missed.
   */
  since(after: number, n: number): { lines: string[]; dropped: number } {
    const first = Math.max(after, this.count - this.ring.length, this.count - Math.max(0, n));
    return { lines: first >= this.count ? [] : this.range(first), dropped: Math.max(0, Math.min(first, this.count) - after) };
  }

  /** Lines numbered from..count-1, which must all be in the ring. */
  private range(from: number): string[] {
    from = Math.max(from, this.count - this.ring.length);
    const out: string[] = [];
    for (let s = from; s < this.count; s++) out.push(this.ring[s % MAX_TAIL_LINES]!);
    return out;
  }
}

/**
 * A copy of `s` that holds only its own characters. A line is a slice of the
 * chunk the pipe delivered (up to 64 KiB), and V8 keeps a slice as a view
 * that pins its whole parent: 10,000 kept lines held 626 MiB of chunks
 * instead of 40 MiB of lines. Prepending makes a rope that slice() must
 * flatten into a new string first (one copy of the line, one-byte text
 * stays one-byte); the slice that follows points into that small copy.
 */
export function flat(s: string): string {
  return (' ' + s).slice(1);
}

/** One stream of one child process. */
export class Output {
  /** null: inherited. */
  private readonly sink: LogSink | null;
  private open = true;
  private readonly splitter: LineSplitter;
  /** Whole lines of the chunk being read, for the manager's own stream: one write for them all. */
  private batch: string[] = [];
  private ended = false;
  /** Lines and bytes of the batches dropped since the last one written (BACKLOG_MAX). */
  private dropped = { lines: 0, bytes: 0 };

  /**
   * `target`: 'inherit' or a file path. `prefix`: what starts each inherited
   * line ("NAME | "). `onEnd`: the stream is done (its file closed).
   */
  constructor(
    private readonly os: Os,
    target: string,
    private readonly inherit: 'stdout' | 'stderr',
    readonly lines: Lines,
    private readonly prefix: string,
    private readonly onEnd: (o: Output) => void = () => {},
  ) {
    this.sink = target === 'inherit' ? null : new LogSink(os, target);
    this.splitter = new LineSplitter((line) => {
      this.lines.add(line);
      if (this.sink === null) this.batch.push(this.prefix + line + '\n');
    });
  }

  /** Characters of an unfinished line held (≤ LINE_MAX). */
  get pending(): number {
    return this.splitter.pending;
  }

  write(text: string): void {
    this.splitter.push(text);
    if (this.sink === null) this.flush();
    else if (this.open) this.sink.write(text); // closed (the manager is exiting): the tail still has it
  }

  /** EOF: the last line, even without its newline, then the file is closed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.splitter.end();
    this.flush();
    this.reportDropped(); // the last word on a gap, even if the stream is still backed up
    this.close();
    this.onEnd(this);
  }

  reopen(): void {
    if (this.open) this.sink?.reopen();
  }

  close(): void {
    if (this.open) this.sink?.close();
    this.open = false;
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const text = this.batch.length === 1 ? this.batch[0]! : this.batch.join('');
    const lines = this.batch.length;
    this.batch = [];
    // Checked before each batch: the backlog is at most BACKLOG_MAX plus one batch (a 64 KiB chunk's lines).
    if (this.os[this.inherit].backlog() >= BACKLOG_MAX) {
      this.dropped.lines += lines;
      this.dropped.bytes += Buffer.byteLength(text);
      return;
    }
    this.reportDropped();
    this.os[this.inherit].write(text);
  }

  private reportDropped(): void {
    const { lines, bytes } = this.dropped;
    if (lines === 0) return;
    this.dropped = { lines: 0, bytes: 0 };
    const size = bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(1)} KiB`;
    this.os[this.inherit].write(`${this.prefix}[drover: ${lines} line${lines === 1 ? '' : 's'} (${size}) dropped: the manager's ${this.inherit} was not read fast enough]\n`);
  }
}
