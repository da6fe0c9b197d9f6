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
import { assert } from '../os/assert.js';
import type { Machine } from './machine.js';
import { RUNNING, ZOMBIE, type Proc } from './processes.js';
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
  ended = false; // the last write end let go (closeWrite): nothing more is written
  readonly stream: PipeStream;

  constructor(
    readonly m: Machine,
    readonly reader: Proc,
  ) {
    // files.ts openSink, as a program spawns with 'pipe' (the kernel's init cannot read one).
    assert(reader !== m.init, 'Pipe: init reads no pipe');
    assert(reader.runnable, 'Pipe: made for a live reader');
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
    assert(end.open && !end.ended && end.id === '', 'PipeStream: made for a new pipe');
    assert(end.inbox.length === 0, 'PipeStream: a new pipe holds nothing');
  }

  override _read(): void {
    // Data is pushed as it arrives; there is no capacity to wait for.
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pipe = this.end;
    closeRead(pipe);
    // Writers get EPIPE from now on, and nothing already written is delivered.
    assert(!pipe.open && pipe.inbox.length === 0, '_destroy: the reading end is closed and empty');
    assert(!pipe.reader.pipes.has(pipe), '_destroy: the pipe holds its reader no more');
    cb(err);
  }
}

/** After a successful spawn: the pipe is `child`'s, and holds its reader until EOF. */
export function attachPipe(m: Machine, pipe: Pipe, child: Proc, name: string): Readable {
  assert(pipe.id === '' && pipe.child === null, 'attachPipe: a pipe reaches one child, once');
  assert(pipe.open && !pipe.ended, 'attachPipe: a new pipe is open at both ends');
  // The reader is the process that spawned the child (spawnProc, openSink).
  assert(child.parent === pipe.reader, "attachPipe: read by the child's parent");
  pipe.id = `${child.pid}:${name}`;
  pipe.child = child;
  pipe.reader.pipes.add(pipe);
  m.log(pipe.reader, 'pipe', pipe.id);
  return pipe.stream;
}

/** `p` writes `text` into the pipe: now, or when its clock says. */
export function pipeWrite(m: Machine, p: Proc, pipe: Pipe, text: string): void {
  // Whoever writes holds a write end: the pipe reached its child, and its last write end has not gone.
  assert(pipe.child !== null, 'pipeWrite: only into a pipe that reached a child');
  assert(!pipe.ended, 'pipeWrite: an ended pipe takes no writes');
  // Its Writer (os.ts), a crash's trace (Machine.fault) and the kernel's notes (sockets.ts) write only for a live process.
  assert(p.runnable, 'pipeWrite: a live process writes');
  if (text.length === 0) return;
  if (m.deferring(p)) m.defer(p, FX_PIPE, pipe, text);
  else pipeOut(m, p, pipe, text);
}

/**
 * Bytes of `p` leave now; with the reading end closed, the writer gets EPIPE
 * instead (next event, as Node's error on the next tick), and once it has,
 * a drover program's writes there are dropped (brokenPipe).
 */
export function pipeOut(m: Machine, p: Proc, pipe: Pipe, text: string): void {
  assert(text.length > 0, 'pipeOut: pipeWrite drops empty writes');
  // Now, or from the writer's flush: a dead writer's effects were dropped (processes.ts die), so it holds its write end.
  assert(p.state === RUNNING && !pipe.ended, 'pipeOut: a live writer, an open write end');
  if (!pipe.open) {
    assert(pipe.inbox.length === 0, 'pipeOut: a closed reading end holds nothing');
    if (p.lostPipes?.has(pipe) !== true) m.at(m.now, EV_EPIPE, p, pipe, null);
    return;
  }
  enqueue(m, pipe, text);
}

/** The last write end is gone: EOF after what was written. */
export function closeWrite(m: Machine, pipe: Pipe): void {
  // The sink's last reference goes once (files.ts releaseSink).
  assert(!pipe.ended, 'closeWrite: the last write end goes once');
  assert(pipe.open || pipe.inbox.length === 0, 'closeWrite: a closed reading end holds nothing');
  if (pipe.id !== '' && pipe.open) enqueue(m, pipe, EOF);
  pipe.ended = true;
}

function enqueue(m: Machine, pipe: Pipe, item: string | typeof EOF): void {
  assert(pipe.open && pipe.child !== null, 'enqueue: into an open pipe that reached a child');
  assert(!pipe.ended, 'enqueue: nothing follows EOF');
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
        assert(cut > 0 && cut < bytes.length, 'enqueue: pipe-split cuts into two pieces, neither empty');
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
  // Latency and a fault's delay only ever add.
  assert(t >= m.now, 'enqueue: delivered no earlier than now');
}

/** EV_PIPE: the next item of the pipe, into the reader's stream. */
export function deliverPipe(m: Machine, pipe: Pipe): void {
  const item = pipe.inbox.shift();
  // Only closing the reading end empties the inbox under its events (closeRead, closeReadEnds).
  assert(!pipe.open || item !== undefined, 'deliverPipe: an open pipe has an item for each event');
  if (!pipe.open || item === undefined) return;
  const p = pipe.reader;
  // EOF is the last item and lets go of the reader; a dead reader's pipes are closed.
  assert(p.pipes.has(pipe), 'deliverPipe: nothing is delivered after EOF');
  assert(p.runnable, 'deliverPipe: only to a live reader');
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

/**
 * EV_EPIPE: `p` wrote to a pipe nobody reads any more. A drover program
 * takes the error (src/os/node/stdio.ts) and drops its writes there from
 * now on, which its Writer tells (lost); a command dies of it.
 */
export function brokenPipe(m: Machine, p: Proc, pipe: Pipe): void {
  assert(!pipe.open, 'brokenPipe: only once the reading end closed');
  assert(p.runnable, 'brokenPipe: the writer runs');
  if (p.command) {
    m.fault(p, new OsError('EPIPE', `write to pipe ${pipe.id}: its reading end is closed`));
    return;
  }
  // Writes made before the first EPIPE came each scheduled one.
  if (p.lostPipes?.has(pipe) === true) return;
  (p.lostPipes ??= new Set()).add(pipe);
  m.log(p, 'pipe-lost', pipe.id);
}

/** Why `p` can no longer write into `pipe` (Writer.lost), or null while it can. */
export function pipeLost(p: Proc, pipe: Pipe): string | null {
  // Its stdout or stderr: a pipe made for it or an ancestor, which reached that child.
  assert(pipe.child !== null, 'pipeLost: a pipe a process writes to reached a child');
  const lost = p.lostPipes?.has(pipe) === true;
  // Only brokenPipe loses a pipe: after its reading end closed, and never a command's (it dies instead).
  assert(!lost || (!pipe.open && !p.command), 'pipeLost: lost once its reading end closed, by a drover program');
  return lost ? 'EPIPE: its reader is gone' : null;
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
  assert(!pipe.reader.pipes.has(pipe) && pipe.inbox.length === 0, 'closeRead: the pipe holds its reader no more, and nothing is left to deliver');
}

function letGo(m: Machine, pipe: Pipe): void {
  // At EOF or at a destroy, once: whichever comes first.
  assert(pipe.reader.pipes.has(pipe), 'letGo: a pipe lets go of its reader once');
  assert(pipe.child !== null, 'letGo: a pipe that reached a child');
  pipe.reader.pipes.delete(pipe);
  m.touch(pipe.reader);
}

/** At the child's death, Node's flushStdio: its pipe streams flow, so output nobody listens for is dropped. */
export function flushPipes(p: Proc, out: Pipe | null, err: Pipe | null): void {
  assert(p.state === ZOMBIE, 'flushPipes: at the death of a writer');
  for (const pipe of [out, err]) {
    // Its stdout or stderr: a pipe made for it or for an ancestor that passed it on.
    assert(pipe === null || pipe.child !== null, 'flushPipes: a pipe a process writes to reached a child');
    if (pipe !== null && pipe.child === p && pipe.open && !pipe.stream.destroyed) pipe.stream.resume();
  }
}

/** At the reader's death: its ends close, nothing of it runs again, writers get EPIPE. */
export function closeReadEnds(p: Proc): void {
  assert(p.state === ZOMBIE, 'closeReadEnds: at the death of the reader');
  for (const pipe of p.pipes) {
    assert(pipe.reader === p && pipe.open, 'closeReadEnds: its own pipes, still open');
    pipe.open = false;
    pipe.inbox.clear();
    pipe.stream.removeAllListeners();
    pipe.stream.on('error', noop);
  }
  p.pipes.clear();
}

function noop(): void {}
