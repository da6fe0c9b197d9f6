// Pipes: a child's stdout or stderr read by its parent (StdioTarget 'pipe',
// semantics in src/os/types.ts). The write end is a Sink (files.ts), counted
// like an inherited fd: the child holds it, and so does every descendant
// spawned with 'inherit'; EOF goes out when the last of them lets go. Writes
// are items of one inbox, delivered to the reader's Readable one per kernel
// event, after the kernel's seeded latency, in order whoever wrote them.
//
// A writer that burns writes when its clock says, if it lives that long
// (effects.ts). The reading end holds its process until EOF or destroy, as
// libuv's reading handle does (Node also lets go while 16 KiB sit unread;
// not modelled). The child's death resumes the stream, as Node's flushStdio
// does when the parent hears of the exit, a little later: output nobody
// listens for is dropped. There is no capacity: nothing blocks and nothing
// written before a death is lost (the real socket takes about 200 writes
// unread; see StdioTarget in src/os/types.ts).
//
// Injected faults (faults.ts), when the reader or the child is covered: a
// write arrives in pieces cut at random bytes (pipe-split; a cut may fall
// inside a UTF-8 character, as on a real pipe), or late (latency).

import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { OsError } from '../os/types.js';
import type { Machine } from './machine.js';
import type { Proc } from './processes.js';
import { EV_EPIPE, EV_PIPE } from './scheduler.js';
import { Fifo } from './fifo.js';
import { FX_PIPE } from './effects.js';

const EOF: unique symbol = Symbol('eof');

export class Pipe {
  id = ''; // "<child pid>:out" once spawn has succeeded; '' means it never reached a child
  child: Proc | null = null; // the process it was made for: its exit flushes the stream
  readonly inbox = new Fifo<string | Buffer | typeof EOF>();
  lastAt = 0; // delivery times never go backwards
  open = true; // the reading end: not destroyed, its process alive
  readonly stream: PipeStream;

  constructor(
    readonly m: Machine,
    readonly reader: Proc,
  ) {
    this.stream = new PipeStream(this);
    // An 'error' nobody listens for (a destroy(err)) kills the reader, as in Node.
    this.stream.on('error', (err: unknown) => {
      if (reader.runnable && this.stream.listenerCount('error') === 1) m.fault(reader, err);
    });
  }
}

/** The reading end as the parent sees it: Child.stdout / Child.stderr. */
class PipeStream extends Readable {
  constructor(private readonly end: Pipe) {
    super();
  }

  override _read(): void {
    // Data is pushed as it arrives; there is no capacity to wait for.
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    closeRead(this.end);
    cb(err);
  }
}

/** After a successful spawn: the pipe is `child`'s, and holds its reader until EOF. */
export function attachPipe(m: Machine, pipe: Pipe, child: Proc, name: string): Readable {
  pipe.id = `${child.pid}:${name}`;
  pipe.child = child;
  pipe.reader.pipes.add(pipe);
  m.log(pipe.reader, 'pipe', pipe.id);
  return pipe.stream;
}

/** `p` writes `text` into the pipe: now, or when its clock says. */
export function pipeWrite(m: Machine, p: Proc, pipe: Pipe, text: string): void {
  if (text.length === 0) return;
  if (m.deferring(p)) m.defer(p, FX_PIPE, pipe, text);
  else pipeOut(m, p, pipe, text);
}

/** Bytes of `p` leave now; with the reading end closed, the writer gets EPIPE instead (next event, as Node's error on the next tick). */
export function pipeOut(m: Machine, p: Proc, pipe: Pipe, text: string): void {
  if (!pipe.open) {
    m.at(m.now, EV_EPIPE, p, pipe, null);
    return;
  }
  enqueue(m, pipe, text);
}

/** The last write end is gone: EOF after what was written. */
export function closeWrite(m: Machine, pipe: Pipe): void {
  if (pipe.id !== '' && pipe.open) enqueue(m, pipe, EOF);
}

function enqueue(m: Machine, pipe: Pipe, item: string | typeof EOF): void {
  let t = m.now + m.latency();
  const f = m.faults;
  if (f.on && (f.covers(pipe.reader) || f.covers(pipe.child))) {
    if (f.hit('latency')) t += f.delay();
    if (typeof item === 'string' && item.length > 0 && f.hit('pipe-split')) {
      const bytes = Buffer.from(item, 'utf8');
      if (bytes.length > 1) {
        if (t < pipe.lastAt) t = pipe.lastAt;
        pipe.lastAt = t;
        m.log(pipe.reader, 'fault', `pipe-split ${pipe.id}`);
        const cut = 1 + f.below(bytes.length - 1);
        for (const piece of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
          pipe.inbox.push(piece);
          m.at(t, EV_PIPE, pipe.reader, pipe, null);
        }
        return;
      }
    }
  }
  if (t < pipe.lastAt) t = pipe.lastAt;
  pipe.lastAt = t;
  pipe.inbox.push(item);
  m.at(t, EV_PIPE, pipe.reader, pipe, null);
}

/** EV_PIPE: the next item of the pipe, into the reader's stream. */
export function deliverPipe(m: Machine, pipe: Pipe): void {
  const item = pipe.inbox.shift();
  if (!pipe.open || item === undefined) return;
  const p = pipe.reader;
  let chunk: Buffer | null = null;
  if (item === EOF) {
    m.log(p, 'pipe-eof', pipe.id);
    letGo(m, pipe);
  } else {
    // Sizes stay out of the trace: a crash's stack trace has a host-dependent length.
    m.log(p, 'pipe-r', pipe.id);
    chunk = typeof item === 'string' ? Buffer.from(item, 'utf8') : item;
  }
  // push() may run the reader's 'data' listeners right here.
  try {
    pipe.stream.push(chunk);
  } catch (err) {
    m.fault(p, err);
  }
}

/** EV_EPIPE: `p` wrote to a pipe nobody reads any more. */
export function brokenPipe(m: Machine, p: Proc, pipe: Pipe): void {
  m.fault(p, new OsError('EPIPE', `write to pipe ${pipe.id}: its reading end is closed`));
}

/** The reader let go of its end (destroy); writers get EPIPE from now on. */
function closeRead(pipe: Pipe): void {
  if (!pipe.open) return;
  pipe.open = false;
  pipe.inbox.clear();
  if (pipe.reader.pipes.has(pipe)) {
    pipe.m.log(pipe.reader, 'pipe-close', pipe.id);
    letGo(pipe.m, pipe);
  }
}

function letGo(m: Machine, pipe: Pipe): void {
  pipe.reader.pipes.delete(pipe);
  m.touch(pipe.reader);
}

/** At the child's death, Node's flushStdio: its pipe streams flow, so output nobody listens for is dropped. */
export function flushPipes(p: Proc, out: Pipe | null, err: Pipe | null): void {
  for (const pipe of [out, err]) {
    if (pipe !== null && pipe.child === p && pipe.open && !pipe.stream.destroyed) pipe.stream.resume();
  }
}

/** At the reader's death: its ends close, nothing of it runs again, writers get EPIPE. */
export function closeReadEnds(p: Proc): void {
  for (const pipe of p.pipes) {
    pipe.open = false;
    pipe.inbox.clear();
    pipe.stream.removeAllListeners();
    pipe.stream.on('error', noop);
  }
  p.pipes.clear();
}

function noop(): void {}
