// Stream sockets, TCP and Unix. A connection is two Endpoints, one per
// side; each owns an inbox of what the other side sent (bytes, EOF, RST, and
// for a connecting client first the answer to its connect), delivered one
// item per event, in order, after a small seeded latency. The Duplex a
// process sees is a thin skin over its endpoint, so Node's own stream
// machinery (and later its HTTP parser) runs unchanged on top.
//
// Each stream carries net.Socket's idle timeout (setTimeout: 'timeout' after
// that long without a read or a write, on the kernel's virtual clock, never
// keeping its process alive, re-armed by the next read or write after it
// fired, as Node's refreshed timer is) and its ref/unref hold on the process.
//
// Closing follows Linux: a side that closes (end+destroy, destroy, or its
// process dying) sends EOF after what it already wrote, or RST instead when
// it leaves unread data behind; bytes that reach a closed side are answered
// with RST. A listener lives while some process holds it; connections that
// arrive while nobody accepts wait in its backlog, and are reset when the
// last holder lets go.
//
// A process that burns writes, closes and connects when its clock says, if
// it lives that long (effects.ts): killed mid-burn, its peers get the EOF or
// reset of its death at the kill, never what it "wrote" after it.
//
// Flow control, as a socket's buffers give it: a side that stops reading
// (a paused stream whose buffer is full) stops taking deliveries, and what
// its peer sends waits in the kernel. Once more than WINDOW bytes are on
// their way or unread, the writer's write callbacks wait, so its write()
// returns false past its own highWaterMark and 'drain' comes when the reader
// has read enough; a reset or close behind held data waits too, as libuv
// notices neither while it is not reading.
//
// Injected faults (faults.ts), on connections with a covered process at
// either end: a chunk split into pieces (each its own read), a connection
// reset under its data, a write that fails with EPIPE, a late delivery; and
// accept(2) failing with EMFILE or ENFILE.

import { Buffer } from 'node:buffer';
import { Duplex } from 'node:stream';
import { posix } from 'node:path';
// Not in Node's typings; public since Node 0.x and what node:http itself uses to let go of a parser.
// @ts-expect-error no declaration for node:_http_common
import { freeParser } from 'node:_http_common';
import { OsError, UNIX_PATH_MAX, formatAddr, isUnix, type Addr, type Listener, type ListenOptions, type Stream } from '../os/types.js';
import type { Machine } from './machine.js';
import { ExitSignal, RUNNING, type Proc } from './processes.js';
import { EV_ACCEPT, EV_ARRIVE, EV_IDLE, EV_NONE, EV_STREAM, EV_WINDOW, type Ev } from './scheduler.js';
import { Fifo } from './fifo.js';
import { FX_CONNECT, FX_STREAM } from './effects.js';
import { S_IFMT, S_IFSOCK, resolvePath, writeSink } from './files.js';
import { errnoError } from './faults.js';
import { assert } from '../os/assert.js';

const EOF: unique symbol = Symbol('eof');
const RST: unique symbol = Symbol('rst');
const OK: unique symbol = Symbol('connected');
type Item = Buffer | typeof EOF | typeof RST | typeof OK | OsError;

const WILDCARDS = new Set(['0.0.0.0', '::']);
const EPHEMERAL_LOW = 32768;
const EPHEMERAL_HIGH = 60999;
const TIMEOUT_MAX = 2 ** 31 - 1;
/** Bytes a connection holds one way, sent and unread, before its writer waits: about a Unix socket's buffers (loopback TCP autotunes to several MB). */
export const WINDOW = 256 * 1024;

interface Pending {
  resolve(stream: Stream): void;
  reject(err: Error): void;
}

/** Machine-wide socket tables. */
export class Net {
  readonly tcp = new Map<number, ListenerState[]>(); // port -> open listeners on it
  readonly unix = new Map<object, ListenerState>(); // memfs inode -> open listener: follows renames, forgets unlinks
  nextPort = EPHEMERAL_LOW;
  connIds = 0;
}

export class Endpoint {
  owner: Proc | null;
  peer!: Endpoint;
  readonly stream: SimStream;
  readonly inbox = new Fifo<Item>();
  lastAt = 0; // delivery times into this side never go backwards
  closed = false; // finished here: destroyed, reset, or its process died
  ended = false; // this side writes no more: EOF or RST written (maybe still deferred), or reset
  sentFin = false; // EOF or RST already queued to the peer, or none may be sent (implies ended)
  answeredRst = false; // late bytes to a closed side were answered once
  holding = false; // counted in owner.streams
  refd = true; // holds its process while open (unref clears it)
  pending: Pending | null = null; // a client waiting for its connect
  idleMs = 0; // setTimeout's duration, 0 off
  idleAt = 0; // when it fires: last read or write + idleMs
  idleEv: Ev | null = null; // at or before idleAt; moved on only when it comes due (no heap work per byte)
  // Flow control. As the reading side: bytes in the inbox, and whether delivery waits for a read.
  inboxBytes = 0;
  held = false;
  owed = 0; // EV_STREAM events that found it held: issued again when it reads
  delivering = false;
  readWanted = false; // _read came during a delivery's push
  // As the writing side: write callbacks waiting for the peer to read, and whether an EV_WINDOW is on its way.
  readonly blocked: Array<() => void> = [];
  windowQueued = false;
  deferredBytes = 0; // written during a burn, not sent yet (effects.ts): unread all the same
  eof = false; // the peer's EOF was delivered here

  constructor(
    readonly m: Machine,
    owner: Proc | null,
    readonly id: number,
  ) {
    assert(Number.isInteger(id) && id >= 1, 'Endpoint: a connection id is a positive integer');
    assert(id <= m.net.connIds, 'Endpoint: its id was issued by the machine\'s connection counter');
    // The client side of a connect (whose process is running), or the server side, nobody's until accepted.
    assert(owner === null || owner.runnable, 'Endpoint: owned only by a process that can run');
    this.owner = owner;
    const stream = new SimStream(this);
    this.stream = stream;
    // An 'error' nobody listens for kills its process, as in Node, instead
    // of escaping to the host; a listener of the process's own wins.
    stream.on('error', (err: unknown) => {
      const p = this.owner;
      if (p !== null && p.runnable && stream.listenerCount('error') === 1) m.fault(p, err);
    });
  }
}

/**
 * A connected stream as a process sees it: a Node Duplex with the part of
 * net.Socket that node:http touches (see Stream in src/os/types.ts). What
 * http only feature-tests (`_handle`, `connecting`) is left undefined, which
 * sends it down the paths it takes for any non-net Duplex.
 */
export class SimStream extends Duplex {
  remoteAddress: string | undefined = undefined;
  remotePort: number | undefined = undefined;
  localAddress: string | undefined = undefined;
  localPort: number | undefined = undefined;
  /** The last setTimeout duration, as net.Socket keeps it; http's Agent compares it. */
  timeout: number | undefined = undefined;
  /** Bytes received so far, as net.Socket counts them (the worker's client deadlines read it). */
  bytesRead = 0;

  constructor(private readonly ep: Endpoint) {
    super({ allowHalfOpen: false });
    // One skin per endpoint, made while the endpoint is new and open.
    assert((ep as { stream?: SimStream }).stream === undefined, 'SimStream: an endpoint has one stream');
    assert(!ep.closed && !ep.ended, 'SimStream: made for an open endpoint');
    // As net.Socket by default: the stream closes once both directions ended (closeLocal's "end on both directions").
    assert(!this.allowHalfOpen, 'SimStream: not half-open');
  }

  /** The reader wants more: deliveries held for a full buffer resume. */
  override _read(): void {
    const ep = this.ep;
    // Items owed to the reader exist only while delivery is held, and each is still in the inbox.
    assert(ep.owed === 0 || ep.held, '_read: owed deliveries only while held');
    assert(ep.owed <= ep.inbox.length, '_read: every owed delivery has its item in the inbox');
    readMore(ep);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Writable never writes a destroyed stream; a process has its stream only once connected or accepted.
    assert(!this.destroyed, '_write: the stream is not destroyed');
    assert(this.ep.pending === null, '_write: only an established stream writes');
    if (this.ep.m.faults.on && brokenPipe(this.ep)) return cb(errnoError('EPIPE', 'write'));
    writeBytes(this.ep, Buffer.from(chunk));
    afterWrite(this.ep, cb);
  }

  // Writes made while corked leave as one piece, as net.Socket's writev does
  // (http corks a message's head and first body chunk together).
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    assert(!this.destroyed, '_writev: the stream is not destroyed');
    assert(chunks.length >= 1, '_writev: at least one chunk');
    if (this.ep.m.faults.on && brokenPipe(this.ep)) return cb(errnoError('EPIPE', 'write'));
    writeBytes(this.ep, chunks.length === 1 ? Buffer.from(chunks[0]!.chunk) : Buffer.concat(chunks.map((c) => c.chunk)));
    afterWrite(this.ep, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    // After end(): the write side is ending, and the stream is an established one.
    assert(!this.writable, '_final: comes after end()');
    assert(this.ep.pending === null, '_final: only an established stream ends');
    finish(this.ep);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const ep = this.ep;
    closeLocal(ep);
    // A destroyed stream's endpoint is finished: closed, ended, no hold on its process, no idle timer.
    assert(ep.closed && ep.ended, '_destroy: the endpoint is closed and ended');
    assert(!ep.holding && ep.idleEv === null, '_destroy: no hold and no idle event left');
    cb(err);
  }

  /**
   * net.Socket#setTimeout: 'timeout' after `ms` without a read or a write; 0
   * disables. The name is quoted because it is a method, not the host's
   * global timer, which the layer scan (test/layers.test.ts) rightly forbids.
   */
  'setTimeout'(ms: number, cb?: () => void): this {
    if (this.destroyed) return this;
    this.timeout = ms;
    const d = timerDuration(ms);
    // Only 0 turns it off: anything above 0, even a fraction, is at least 1 ms.
    assert((d === 0) === (ms === 0), 'setTimeout: only 0 disables the timeout');
    setIdle(this.ep, d);
    assert(this.ep.idleMs === d, 'setTimeout: the endpoint keeps the duration');
    if (cb !== undefined) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    return this;
  }

  /** As net.Socket: end, then destroy once the write side has finished (http's way to close after a response). */
  destroySoon(): void {
    if (this.writable) this.end();
    assert(!this.writable, 'destroySoon: the write side is ending');
    if (this.writableFinished) {
      this.destroy();
      assert(this.destroyed, 'destroySoon: destroyed once finished');
    } else this.once('finish', this.destroy);
  }

  // Nagle and TCP keepalive probes have no counterpart in a stream that
  // delivers every write at once and whose peers never vanish silently.
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  ref(): this {
    const ep = this.ep;
    setRef(ep, true);
    // A process has its stream only once established; a hold is never on a closed stream.
    assert(ep.pending === null, 'ref: an established stream');
    assert(!ep.holding || !ep.closed, 'ref: a closed stream holds nothing');
    return this;
  }
  unref(): this {
    const ep = this.ep;
    setRef(ep, false);
    const p = ep.owner;
    assert(ep.pending === null, 'unref: an established stream');
    // Only a process that can no longer run (whose death lets go of it) may still be held.
    assert(!ep.holding || (p !== null && !p.runnable), 'unref: the stream no longer holds a runnable process');
    return this;
  }
}

/** As Node: a finite number >= 0, capped at 2^31-1 (getTimerDuration); then under 1 ms is 1, and fractions are cut (timers' insert). */
function timerDuration(ms: number): number {
  if (typeof ms !== 'number') throw Object.assign(new TypeError(`The "msecs" argument must be of type number. Received ${typeof ms}`), { code: 'ERR_INVALID_ARG_TYPE' });
  if (ms < 0 || !Number.isFinite(ms)) throw Object.assign(new RangeError(`The value of "msecs" is out of range. It must be a non-negative finite number. Received ${ms}`), { code: 'ERR_OUT_OF_RANGE' });
  if (ms === 0) return 0;
  const d = ms < 1 ? 1 : Math.trunc(Math.min(ms, TIMEOUT_MAX));
  assert(Number.isInteger(d), 'timerDuration: whole milliseconds');
  assert(d >= 1 && d <= TIMEOUT_MAX, 'timerDuration: a duration in [1, 2^31-1]');
  return d;
}

function setRef(ep: Endpoint, on: boolean): void {
  assert(!ep.holding || ep.owner !== null, 'setRef: a hold is on an owner');
  ep.refd = on;
  const p = ep.owner;
  // Only an open, established stream holds; connect and accept take the hold as refd says.
  if (p === null || !p.runnable || ep.closed || ep.pending !== null || ep.holding === on) return;
  ep.holding = on;
  p.streams += on ? 1 : -1;
  assert(p.streams >= 0, 'setRef: a process holds a non-negative number of streams');
  assert(p.endpoints.has(ep), 'setRef: an open stream of a running process is among its endpoints');
  ep.m.touch(p);
  ep.m.log(p, on ? 'ref' : 'unref', String(ep.id));
}

/** An established stream takes its hold on the process, unless unref'd. */
function hold(ep: Endpoint, p: Proc): void {
  // Taken once, by the owner, when the stream becomes established (connected or accepted).
  assert(ep.owner === p && !ep.closed, 'hold: an open stream of its owner');
  assert(!ep.holding && ep.pending === null, 'hold: taken once, when established');
  if (!ep.refd) return;
  ep.holding = true;
  p.streams++;
}

function setIdle(ep: Endpoint, ms: number): void {
  assert(Number.isInteger(ms) && ms >= 0 && ms <= TIMEOUT_MAX, 'setIdle: a duration from timerDuration');
  cancelIdle(ep);
  ep.idleMs = ms;
  const p = ep.owner;
  if (ms > 0 && p !== null && p.runnable) activity(ep, p, ep.m.local(p));
  assert(ms > 0 || ep.idleEv === null, 'setIdle: a disabled timeout has no event');
}

/** A read or a write at `now`: the idle deadline moves; an event already queued for earlier re-checks when due. */
function activity(ep: Endpoint, p: Proc, now: number): void {
  assert(ep.idleMs > 0, 'activity: only with a timeout set');
  assert(ep.owner === p && !ep.closed, 'activity: on an open stream of its owner');
  ep.idleAt = now + ep.idleMs;
  if (ep.idleEv === null) ep.idleEv = ep.m.at(ep.idleAt, EV_IDLE, p, ep, null);
}

function cancelIdle(ep: Endpoint): void {
  const ev = ep.idleEv;
  if (ev === null) return;
  // Events are pooled: one released and reused while still referenced here would be another's.
  assert(ev.kind === EV_IDLE && ev.a === ep, 'cancelIdle: the idle event is this endpoint\'s own');
  assert(ep.idleMs > 0, 'cancelIdle: an idle event only with a timeout set');
  ep.idleEv = null;
  if (ev.idx >= 0) {
    ep.m.queue.remove(ev);
    ep.m.queue.release(ev);
  } else {
    ev.kind = EV_NONE; // waiting in its process's ready list, which releases it
  }
}

/** EV_IDLE: the idle timeout, if no read or write moved it meanwhile. Like Node's, it fires once until the next activity. */
export function idleDue(m: Machine, ep: Endpoint): void {
  const p = ep.owner;
  // The event is its process's (discarded once it cannot run), and closing cancels it.
  assert(p !== null && p.runnable, 'idleDue: the owner can run');
  assert(!ep.closed && ep.idleMs > 0, 'idleDue: an open stream with a timeout set');
  if (ep.idleAt > m.now) {
    ep.idleEv = m.at(ep.idleAt, EV_IDLE, p, ep, null);
    return;
  }
  ep.idleEv = null;
  m.log(p, 'timeout', String(ep.id));
  m.invoke(p, emitTimeout, ep.stream);
}

function emitTimeout(s: SimStream): void {
  assert(!s.destroyed, 'emitTimeout: a destroyed stream has no idle timer');
  s.emit('timeout');
}

function pipeTo(m: Machine, to: Endpoint, item: Item, from: number): void {
  assert(to.peer.peer === to, 'pipeTo: the peer links are symmetric');
  // Bytes leave only through sendOut, which sends nothing after its side's EOF or RST.
  assert(!(item instanceof Uint8Array) || !to.peer.sentFin, 'pipeTo: no bytes after the sender\'s EOF or RST');
  let t = from + m.latency();
  if (m.faults.on && covered(m, to)) {
    const f = m.faults;
    if (f.hit('latency')) t += f.delay();
    if (item instanceof Uint8Array && item.length > 0) {
      if (f.hit('stream-reset')) return resetUnder(m, to, t);
      if (item.length > 1 && f.hit('stream-split')) return split(m, to, item, t);
    }
  }
  if (t < to.lastAt) t = to.lastAt;
  to.lastAt = t;
  to.inbox.push(item);
  if (item instanceof Uint8Array) to.inboxBytes += item.length;
  assert(t >= m.now, 'pipeTo: a delivery is never in the past');
  m.at(t, EV_STREAM, null, to, null);
}

/** Faults may hit a connection with a covered process at either end (a server side not accepted yet has none). */
function covered(m: Machine, ep: Endpoint): boolean {
  assert(ep.peer.peer === ep, 'covered: the peer links are symmetric');
  return m.faults.covers(ep.owner) || m.faults.covers(ep.peer.owner);
}

function note(m: Machine, ep: Endpoint, what: string): void {
  const p = ep.owner ?? ep.peer.owner;
  if (p !== null) m.log(p, 'fault', `${what} ${ep.id}`);
}

/** stream-split: the chunk arrives as 2 to 4 pieces, each its own delivery (a short read), in order. */
function split(m: Machine, to: Endpoint, item: Buffer, t: number): void {
  assert(item.length > 1, 'split: a chunk of at least 2 bytes');
  assert(t >= m.now, 'split: a delivery is never in the past');
  const before = to.inboxBytes;
  if (t < to.lastAt) t = to.lastAt;
  to.lastAt = t;
  let rest = item;
  const pieces = 2 + m.faults.below(3);
  note(m, to, `stream-split ${item.length}`);
  for (let i = 1; i < pieces && rest.length > 1; i++) {
    const cut = 1 + m.faults.below(rest.length - 1);
    assert(cut >= 1 && cut < rest.length, 'split: every piece has at least one byte');
    to.inbox.push(rest.subarray(0, cut));
    to.inboxBytes += cut;
    m.at(t, EV_STREAM, null, to, null);
    rest = rest.subarray(cut);
  }
  to.inbox.push(rest);
  to.inboxBytes += rest.length;
  assert(to.inboxBytes === before + item.length, 'split: the pieces add up to the chunk');
  m.at(t, EV_STREAM, null, to, null);
}

/**
 * stream-reset: the connection is reset with this chunk on its way (a peer's
 * RST, a middlebox): the chunk is lost, nothing more goes either way, and
 * each side hears ECONNRESET after what was already on its way to it.
 */
function resetUnder(m: Machine, to: Endpoint, t: number): void {
  const w = to.peer;
  // Under a chunk on its way: its writer could still send (sendOut checked), and the links are symmetric.
  assert(!w.sentFin, 'resetUnder: the writer had not finished');
  assert(w.peer === to, 'resetUnder: the peer links are symmetric');
  note(m, to, 'stream-reset');
  w.sentFin = true;
  if (t < to.lastAt) t = to.lastAt;
  to.lastAt = t;
  to.inbox.push(RST);
  m.at(t, EV_STREAM, null, to, null);
  if (to.sentFin) return; // the other way had ended already
  to.sentFin = true;
  let u = m.now + m.latency();
  if (u < w.lastAt) u = w.lastAt;
  w.lastAt = u;
  w.inbox.push(RST);
  m.at(u, EV_STREAM, null, w, null);
  assert(to.sentFin && w.sentFin, 'resetUnder: nothing more goes either way');
}

/** stream-epipe: this write fails with EPIPE (the caller's callback gets it, so the stream is destroyed); the peer gets a reset. */
function brokenPipe(ep: Endpoint): boolean {
  const p = ep.owner;
  const m = ep.m;
  if (ep.closed || ep.ended || p === null || !p.runnable || !covered(m, ep) || !m.faults.hit('stream-epipe')) return false;
  note(m, ep, 'stream-epipe');
  assert(p.endpoints.has(ep), 'brokenPipe: an open stream of a running process is among its endpoints');
  ep.ended = true;
  emitItem(m, p, ep, RST);
  // The reset is out, or waits among the burn's effects.
  assert(ep.sentFin || m.deferring(p), 'brokenPipe: the reset went out or is deferred');
  return true;
}

/** Bytes writer `w` sent that its peer has not read: written during a burn, on their way, held, or in the peer's stream buffer. */
function unreadOf(w: Endpoint): number {
  const r = w.peer;
  assert(w.deferredBytes >= 0, 'unreadOf: deferred bytes are never negative');
  assert(r.inboxBytes >= 0, 'unreadOf: inbox bytes are never negative');
  return w.deferredBytes + r.inboxBytes + r.stream.readableLength;
}

/** The writer waits while its peer is open and has more than WINDOW unread. */
function full(w: Endpoint): boolean {
  assert(w.peer.peer === w, 'full: the peer links are symmetric');
  // Deferred bytes are a burning owner's writes.
  assert(w.deferredBytes === 0 || w.owner !== null, 'full: deferred bytes have an owner');
  return !w.closed && !w.peer.closed && unreadOf(w) > WINDOW;
}

/** A write's callback: now, or once the peer has read enough (EV_WINDOW). */
function afterWrite(ep: Endpoint, cb: () => void): void {
  assert(ep.owner !== null, 'afterWrite: only an owned stream writes');
  if (!full(ep)) cb();
  else {
    // A closed side never makes its writer wait: closing runs the held callbacks.
    assert(!ep.closed && !ep.peer.closed, 'afterWrite: waits only while both sides are open');
    ep.blocked.push(cb);
    if (ep.owner !== null) ep.m.log(ep.owner, 'full', `${ep.id} ${unreadOf(ep)}`);
  }
}

/**
 * Writer `w` may go on: its peer read, or one side closed (then its held
 * callbacks run too, as Node calls a destroyed socket's write callbacks).
 * Told after the latency when the peer read, at once when `now`.
 */
function roomFor(m: Machine, w: Endpoint, now = false): void {
  if (w.blocked.length === 0 || w.windowQueued || full(w)) return;
  // Callbacks wait only on a stream some process wrote: the EV_WINDOW finds it through its owner.
  assert(w.owner !== null, 'roomFor: held write callbacks belong to an owned writer');
  assert(w.peer.peer === w, 'roomFor: the peer links are symmetric');
  w.windowQueued = true;
  m.at(now ? m.now : m.now + m.latency(), EV_WINDOW, null, w, null);
}

/** EV_WINDOW: the writer's held callbacks run, unless the peer filled up again meanwhile. */
export function windowOpen(m: Machine, ep: Endpoint): void {
  // One EV_WINDOW at a time per writer, flagged while it is on its way.
  assert(ep.windowQueued, 'windowOpen: its event was flagged');
  ep.windowQueued = false;
  if (ep.blocked.length === 0 || full(ep)) return;
  const p = ep.owner;
  // The event is discarded when the owner cannot run, so here it can.
  assert(p !== null && p.runnable, 'windowOpen: held callbacks run in a runnable owner');
  m.log(p, 'room', `${ep.id} ${unreadOf(ep)}`);
  // One callback lets Writable write what it buffered, which may fill the window again: one at a time.
  const cb = ep.blocked.shift()!;
  m.invoke(p, callNow, cb);
  if (ep.blocked.length > 0) {
    ep.windowQueued = true;
    m.at(m.now, EV_WINDOW, null, ep, null);
  }
}

function callNow(fn: () => void): void {
  fn();
}

/** The reader's stream asked for more (Readable._read). */
function readMore(ep: Endpoint): void {
  if (ep.delivering) {
    ep.readWanted = true;
    return;
  }
  const p = ep.owner;
  if (!ep.held || p === null || !p.runnable) return;
  assert(ep.owed <= ep.inbox.length, 'readMore: every owed delivery has its item in the inbox');
  ep.held = false;
  const m = ep.m;
  m.log(p, 'reading', String(ep.id));
  const t = m.local(p);
  for (; ep.owed > 0; ep.owed--) m.at(t, EV_STREAM, null, ep, null);
  assert(ep.owed === 0 && !ep.held, 'readMore: nothing owed once delivery resumes');
  roomFor(m, ep.peer);
}

/** `p` sends `item` to `ep`'s peer: now, or when its clock says. */
function emitItem(m: Machine, p: Proc, ep: Endpoint, item: Item): void {
  assert(ep.owner === p, 'emitItem: a process sends on its own streams');
  // Not yet dead (a process on its way out may still close, in closeLocal).
  assert(p.state === RUNNING, 'emitItem: the sender is alive');
  // Every caller ends this side before it sends EOF or RST.
  assert((item !== EOF && item !== RST) || ep.ended, 'emitItem: EOF or RST only from an ended side');
  if (m.deferring(p)) {
    if (item instanceof Uint8Array) ep.deferredBytes += item.length;
    m.defer(p, FX_STREAM, ep, item);
  } else sendOut(m, ep, item);
}

/** An item leaves `ep` now, unless the connection was reset or closed by a death meanwhile. */
export function sendOut(m: Machine, ep: Endpoint, item: unknown, deferred = false): void {
  if (deferred && item instanceof Uint8Array) ep.deferredBytes -= item.length;
  assert(ep.deferredBytes >= 0, 'sendOut: no more deferred bytes go out than were deferred');
  assert((item !== EOF && item !== RST) || ep.ended, 'sendOut: EOF or RST only from an ended side');
  if (ep.sentFin) return;
  if (item === EOF || item === RST) ep.sentFin = true;
  pipeTo(m, ep.peer, item as Item, m.now);
}

/** `chunk` is the kernel's own copy (the writer may reuse its buffer once called back). */
function writeBytes(ep: Endpoint, chunk: Buffer): void {
  const p = ep.owner;
  if (ep.closed || ep.ended || p === null || !p.runnable) return;
  assert(ep.pending === null, 'writeBytes: only an established stream writes');
  assert(p.endpoints.has(ep), 'writeBytes: an open stream of a running process is among its endpoints');
  const m = ep.m;
  emitItem(m, p, ep, chunk);
  if (ep.idleMs > 0) activity(ep, p, m.local(p));
  m.log(p, 'w', `${ep.id} ${chunk.length}`);
}

function finish(ep: Endpoint): void {
  const p = ep.owner;
  if (ep.closed || ep.ended || p === null || !p.runnable) return;
  assert(ep.pending === null, 'finish: only an established stream ends');
  assert(p.endpoints.has(ep), 'finish: an open stream of a running process is among its endpoints');
  ep.ended = true;
  emitItem(ep.m, p, ep, EOF);
  ep.m.log(p, 'fin', String(ep.id));
}

function unread(ep: Endpoint): boolean {
  // Bytes are counted only for items still in the inbox.
  assert(ep.inboxBytes === 0 || ep.inbox.length > 0, 'unread: counted bytes are in the inbox');
  return ep.stream.readableLength > 0 || ep.inbox.length > 0;
}

/** This side is done (destroy, or end on both directions): say so to the peer and let go of the hold. */
function closeLocal(ep: Endpoint): void {
  if (ep.closed) return;
  const m = ep.m;
  ep.closed = true;
  cancelIdle(ep);
  roomFor(m, ep, true);
  roomFor(m, ep.peer, true);
  const p = ep.owner;
  if (!ep.ended) {
    ep.ended = true;
    const item = unread(ep) ? RST : EOF;
    if (p !== null && p.state === RUNNING) emitItem(m, p, ep, item);
    else sendOut(m, ep, item);
  }
  if (p !== null) {
    p.endpoints.delete(ep);
    if (ep.holding) {
      ep.holding = false;
      p.streams--;
      m.touch(p);
    }
    assert(p.streams >= 0, 'closeLocal: a process holds a non-negative number of streams');
  }
  assert(ep.closed && ep.ended && !ep.holding, 'closeLocal: closed, ended, and holding nothing');
  assert(ep.idleEv === null, 'closeLocal: no idle event on a closed stream');
}

/**
 * The host side of a dead process's streams. node:http's parsers are held by
 * Node's own handles until freeParser; a socket that closes runs it, but a
 * killed process's streams never close, so each kept its parser and, through
 * it, the stream, the server, the app and the whole machine (about 0.14 MB
 * per chaos run, found with a heap snapshot). Called between batches, when no
 * code of the dead process is on the stack; it runs none of that code.
 */
export function releaseDeadStreams(m: Machine): void {
  for (const s of m.deadStreams) {
    const parser = (s as { parser?: unknown }).parser;
    if (parser) freeParser(parser, null, s);
  }
  m.deadStreams.length = 0;
}

/** EV_STREAM: the next item of `ep`'s inbox. */
export function deliverStream(m: Machine, ep: Endpoint): void {
  if (ep.held && !ep.closed) {
    ep.owed++; // the reader's buffer is full: this item waits for its next read
    assert(ep.owed <= ep.inbox.length, 'deliverStream: every owed delivery has its item in the inbox');
    return;
  }
  const item = ep.inbox.shift();
  // One EV_STREAM per item pushed (some may be discarded with a stopped owner, never added).
  assert(item !== undefined, 'deliverStream: an event never finds the inbox empty');
  if (item instanceof Uint8Array) ep.inboxBytes -= item.length;
  assert(ep.inboxBytes >= 0 && (ep.inboxBytes === 0 || ep.inbox.length > 0), 'deliverStream: inbox bytes count what the inbox holds');
  if (ep.closed) {
    if (item instanceof Uint8Array && !ep.answeredRst && !ep.peer.closed) {
      ep.answeredRst = true;
      pipeTo(m, ep.peer, RST, m.now);
    }
    return;
  }
  const p = ep.owner;
  // An open stream's items go to a runnable owner (the event is discarded otherwise, and death closes), or wait in a backlog.
  assert(p === null || p.runnable, 'deliverStream: an open stream is delivered to a runnable owner or to nobody yet');
  assert(ep.peer.peer === ep, 'deliverStream: the peer links are symmetric');
  if (item instanceof Uint8Array) {
    if (p !== null) {
      m.log(p, 'r', `${ep.id} ${item.length}`);
      if (ep.idleMs > 0) activity(ep, p, m.now);
    }
    ep.delivering = true;
    ep.readWanted = false;
    const more = push(m, ep, item);
    ep.delivering = false;
    if (!more && !ep.readWanted && !ep.closed) {
      ep.held = true;
      if (p !== null) m.log(p, 'held', `${ep.id} ${ep.stream.readableLength}`);
    }
    roomFor(m, ep.peer);
    return;
  }
  if (item === EOF) {
    if (p !== null) {
      m.log(p, 'eof', String(ep.id));
      if (ep.idleMs > 0) activity(ep, p, m.now);
    }
    ep.eof = true;
    push(m, ep, null);
    // As net.Socket on EOF (stream_base_commons onStreamRead): push(null), then read(0), so that
    // 'end' comes (and a half-closed socket closes) even if nobody ever reads it. Not while it
    // waits in a backlog: acceptConn does it once a process has it.
    if (p !== null) readZero(m, ep);
    return;
  }
  if (item === OK) {
    const pending = ep.pending;
    // The answer to a connect: the first item of a client side whose process still waits for it.
    assert(pending !== null && p !== null, 'deliverStream: OK answers a pending connect of its owner');
    assert(p.connecting >= 1, 'deliverStream: the owner counts the connect it waits for');
    ep.pending = null;
    p.connecting--;
    hold(ep, p);
    assert(ep.holding === ep.refd, 'deliverStream: a connected stream holds its process unless unref\'d');
    m.touch(p);
    m.log(p, 'connected', String(ep.id));
    pending.resolve(ep.stream);
    return;
  }
  if (item === RST) {
    ep.ended = ep.sentFin = true; // a reset is not answered
    if (p !== null) m.log(p, 'rst', String(ep.id));
    const err = new OsError('ECONNRESET', `connection ${ep.id} reset by peer`);
    if (ep.pending !== null) {
      refuse(m, ep, err);
      return;
    }
    try {
      ep.stream.destroy(err);
    } catch (e) {
      if (p !== null) m.fault(p, e);
    }
    // _destroy runs at once (closeLocal), so the reset side is finished here.
    assert(ep.closed, 'deliverStream: a reset stream is closed');
    return;
  }
  refuse(m, ep, item);
}

function refuse(m: Machine, ep: Endpoint, err: OsError): void {
  const p = ep.owner;
  const pending = ep.pending;
  // A connect still waiting (deliverStream returned already for a closed side), of a process that counts it.
  assert(p !== null && pending !== null && !ep.closed, 'refuse: a pending connect of an open client side');
  assert(p.connecting >= 1 && !ep.holding, 'refuse: counted as connecting, not yet holding');
  ep.pending = null;
  ep.closed = true;
  ep.ended = ep.sentFin = true;
  p.connecting--;
  p.endpoints.delete(ep);
  m.touch(p);
  m.log(p, 'refused', `${ep.id} ${err.code}`);
  // Its stream was never handed to the process, so it never wrote.
  assert(ep.deferredBytes === 0 && ep.blocked.length === 0, 'refuse: an unanswered connect wrote nothing');
  pending.reject(err);
}

function readZero(m: Machine, ep: Endpoint): void {
  // The read(0) of an EOF, once the side has an owner to run it.
  assert(ep.eof, 'readZero: after the peer\'s EOF');
  assert(ep.owner !== null, 'readZero: on an owned stream');
  try {
    ep.stream.read(0);
  } catch (err) {
    if (ep.owner !== null) m.fault(ep.owner, err);
  }
}

/** False when the stream's buffer is full (the reader is not keeping up). */
function push(m: Machine, ep: Endpoint, chunk: Buffer | null): boolean {
  // push() may run the owner's 'data' listeners right here.
  // Bytes are pushed by a delivery, and never after the EOF's push(null).
  assert(chunk === null || (ep.delivering && !ep.eof), 'push: bytes come from a delivery, before EOF');
  assert(chunk !== null || ep.eof, 'push: push(null) is the EOF');
  if (chunk !== null) ep.stream.bytesRead += chunk.length;
  try {
    return ep.stream.push(chunk);
  } catch (err) {
    if (ep.owner !== null) m.fault(ep.owner, err);
    return true;
  }
}

/** At death: every stream of the process closes as if destroyed, and nothing of it runs again. */
export function closeEndpoints(m: Machine, p: Proc): void {
  assert(!p.runnable, 'closeEndpoints: at death');
  for (const ep of p.endpoints) {
    assert(ep.owner === p, 'closeEndpoints: a process lists only its own endpoints');
    ep.pending = null;
    ep.stream.removeAllListeners();
    m.deadStreams.push(ep.stream);
    ep.stream.on('error', noop);
    ep.holding = false;
    cancelIdle(ep);
    if (ep.closed) continue;
    ep.closed = true;
    closeUnsent(m, ep);
    roomFor(m, ep.peer, true); // its writer toward the dead one goes on
  }
  for (const ep of p.endpoints) {
    assert(ep.closed && ep.ended && !ep.holding, () => `closeEndpoints: stream ${ep.id} of dead ${p.pid} is closed, ended, unheld`);
    assert(ep.idleEv === null && ep.pending === null, () => `closeEndpoints: stream ${ep.id} of dead ${p.pid} has no idle event or pending connect`);
  }
  p.endpoints.clear();
  p.streams = 0;
  p.connecting = 0;
}

/**
 * At death, for a stream whose EOF or RST has not gone out (its process
 * never closed it, or closed it during a burn it did not survive): the peer
 * hears of the death now.
 */
export function closeUnsent(m: Machine, ep: Endpoint): void {
  const p = ep.owner;
  assert(p !== null && !p.runnable, 'closeUnsent: a stream of a process that is dying');
  ep.closed = true;
  ep.ended = true;
  if (ep.sentFin) return;
  ep.sentFin = true;
  pipeTo(m, ep.peer, unread(ep) ? RST : EOF, m.now);
  assert(ep.peer.inbox.length > 0, 'closeUnsent: the peer has the EOF or RST on its way');
}

function noop(): void {}

// -------------------------------------------------------------- listeners

export class ListenerState {
  readonly holders = new Map<Proc, ListenerHandle>();
  readonly acceptors: ListenerHandle[] = []; // in the order they called accept
  readonly backlog = new Fifo<Endpoint>();
  open = true;

  constructor(
    readonly address: Addr,
    readonly creator: Proc,
    readonly limit: number,
    readonly absPath: string | null, // Unix
    readonly node: object | null, // Unix: the socket file's inode
  ) {
    assert(Number.isInteger(limit) && limit >= 0, 'ListenerState: the backlog limit is a non-negative integer');
    // A Unix listener has both its path and its inode; a TCP one neither.
    assert((absPath === null) === (node === null), 'ListenerState: a path goes with an inode');
    assert(isUnix(address) === (node !== null), 'ListenerState: only a Unix listener has a socket file');
  }
}

/** One process's hold on a listening socket. */
export class ListenerHandle implements Listener {
  fn: ((stream: Stream) => void) | null = null;
  onError: ((err: OsError) => void) | null = null;
  held = true;
  /** Listener.pause: out of `acceptors` (fn kept) until resume. */
  paused = false;
  /**
   * Connections handed to this process whose accept has not run yet (it is
   * burning CPU). They are not its own until then: if it lets go of the
   * socket first (exits, closes), they go back to the backlog for another
   * acceptor, as a connection in a real backlog waits for whoever calls
   * accept() next.
   */
  readonly pending: Endpoint[] = [];

  constructor(
    readonly m: Machine,
    readonly state: ListenerState,
    readonly proc: Proc,
  ) {
    // A new hold (listen, or a spawn's hand-over, already checked) on an open listener, one per process.
    assert(state.open && proc.runnable, 'ListenerHandle: an open listener, held by a process that can run');
    assert(!state.holders.has(proc), 'ListenerHandle: one hold per process');
  }

  get address(): Addr {
    return this.state.address;
  }

  // onError hears accept(2) failing (EMFILE, ENFILE), which happens only as
  // an injected fault: the simulated kernel has no descriptor limits.
  accept(onConnection: (stream: Stream) => void, onError?: (err: OsError) => void): void {
    const p = this.proc;
    if (!p.runnable) throw new ExitSignal();
    if (!this.held) throw new OsError('EINVAL', `accept on ${formatAddr(this.address)}: this process closed it`);
    if (this.fn !== null) throw new OsError('EINVAL', `accept on ${formatAddr(this.address)}: already accepting in ${p.pid}`);
    // A held handle is registered with its listener, which is open while anyone holds it.
    assert(this.state.holders.get(p) === this && this.state.open, 'accept: a held handle of an open listener');
    this.fn = onConnection;
    this.onError = onError ?? null;
    if (this.paused) return;
    this.m.log(p, 'accepting', formatAddr(this.address));
    join(this.m, this);
    assert(this.state.acceptors.includes(this), 'accept: among the acceptors');
  }

  /** Out of the acceptors; what was handed to it and not accepted yet goes back to the front of the backlog, as at close. */
  pause(): void {
    const p = this.proc;
    if (!p.runnable) throw new ExitSignal();
    if (!this.held || this.paused) return;
    assert(this.state.holders.get(p) === this && this.state.open, 'pause: a held handle of an open listener');
    this.paused = true;
    this.m.log(p, 'pause', formatAddr(this.address));
    if (this.fn !== null) leave(this.m, this);
    dispatch(this.m, this.state);
    assert(!this.state.acceptors.includes(this) && this.pending.length === 0, 'pause: out of the acceptors, nothing handed to it');
  }

  resume(): void {
    const p = this.proc;
    if (!p.runnable) throw new ExitSignal();
    if (!this.held || !this.paused) return;
    assert(this.state.holders.get(p) === this && this.state.open, 'resume: a held handle of an open listener');
    this.paused = false;
    this.m.log(p, 'resume', formatAddr(this.address));
    if (this.fn !== null) join(this.m, this);
    assert(this.fn === null || this.state.acceptors.includes(this), 'resume: accepting again if it was');
  }

  close(): void {
    if (!this.proc.runnable) throw new ExitSignal();
    release(this.m, this, true);
    assert(!this.held && this.fn === null, 'close: let go, accepting nothing');
    assert(!this.state.holders.has(this.proc) && !this.proc.handles.has(this.state), 'close: no longer among the holders');
  }
}

/** `h` starts taking connections: accept, or resume after a pause. */
function join(m: Machine, h: ListenerHandle): void {
  const p = h.proc;
  // An acceptor is held, accepting and not paused, and listed once.
  assert(h.held && h.fn !== null && !h.paused, 'join: a held, accepting, unpaused handle');
  assert(!h.state.acceptors.includes(h), 'join: not already among the acceptors');
  h.state.acceptors.push(h);
  p.accepting++;
  m.touch(p);
  dispatch(m, h.state);
}

/**
 * `h` stops taking connections (pause, close, death). Connections handed to
 * it and not accepted yet go back to the front of the backlog, oldest first;
 * the caller dispatches them.
 */
function leave(m: Machine, h: ListenerHandle): void {
  const st = h.state;
  const p = h.proc;
  const i = st.acceptors.indexOf(h);
  // splice(-1, 1) would drop the last acceptor instead.
  assert(i >= 0, 'leave: among the acceptors');
  st.acceptors.splice(i, 1);
  p.accepting--;
  assert(p.accepting >= 0, 'leave: a process accepts on a non-negative number of listeners');
  m.touch(p);
  for (let i = h.pending.length - 1; i >= 0; i--) st.backlog.unshift(h.pending[i]!);
  h.pending.length = 0;
}

function release(m: Machine, h: ListenerHandle, explicit: boolean): void {
  if (!h.held) return;
  h.held = false;
  const st = h.state;
  const p = h.proc;
  if (h.fn !== null) {
    if (!h.paused) leave(m, h);
    h.fn = null;
  }
  assert(h.fn === null && h.pending.length === 0, 'release: no longer accepting, nothing handed to it');
  assert(st.holders.get(p) === h && p.handles.get(st) === h, 'release: a held handle is registered both ways');
  st.holders.delete(p);
  p.handles.delete(st);
  m.log(p, 'unlisten', formatAddr(st.address));
  if (explicit && p === st.creator && st.absPath !== null && lookupNode(m, st.absPath) === st.node) {
    m.vol.unlinkSync(st.absPath);
  }
  if (st.holders.size === 0) closeListener(m, st);
  else dispatch(m, st);
}

function closeListener(m: Machine, st: ListenerState): void {
  // Once, when its last holder lets go; each holder left the acceptors as it let go.
  assert(st.open && st.holders.size === 0, 'closeListener: an open listener nobody holds');
  assert(st.acceptors.length === 0, 'closeListener: no acceptors left');
  st.open = false;
  if (st.node !== null) {
    assert(m.net.unix.get(st.node) === st, 'closeListener: the Unix table has it');
    m.net.unix.delete(st.node);
  } else {
    const port = (st.address as { port: number }).port;
    const list = m.net.tcp.get(port);
    const i = list === undefined ? -1 : list.indexOf(st);
    assert(list !== undefined && i >= 0, 'closeListener: the TCP table has it');
    list.splice(i, 1);
    if (list.length === 0) m.net.tcp.delete(port);
  }
  for (let ep = st.backlog.shift(); ep !== undefined; ep = st.backlog.shift()) resetUnaccepted(m, ep);
  assert(st.backlog.length === 0, 'closeListener: the backlog is empty');
}

function resetUnaccepted(m: Machine, ep: Endpoint): void {
  // The server side of a connection nobody accepted: it never had an owner.
  assert(ep.owner === null && !ep.holding, 'resetUnaccepted: a server side nobody accepted');
  assert(ep.peer.peer === ep, 'resetUnaccepted: the peer links are symmetric');
  if (ep.closed) return;
  ep.closed = true;
  ep.ended = ep.sentFin = true;
  pipeTo(m, ep.peer, RST, m.now);
}

/** Hand waiting connections to accepting holders: a seeded pick among the free ones, else the one free soonest. */
function dispatch(m: Machine, st: ListenerState): void {
  const acc = st.acceptors;
  // Held handles keep it open; a closed listener has nobody to hand to.
  assert(st.open, 'dispatch: an open listener');
  while (st.backlog.length > 0) {
    let free = 0;
    let soonest: ListenerHandle | null = null;
    for (let i = 0; i < acc.length; i++) {
      const q = acc[i]!.proc;
      if (!q.runnable) continue;
      if (q.busyUntil <= m.now) free++;
      else if (soonest === null || q.busyUntil < soonest.proc.busyUntil) soonest = acc[i]!;
    }
    let h = soonest;
    if (free > 0) {
      let k = free === 1 ? 0 : m.rng.below(free);
      for (let i = 0; i < acc.length; i++) {
        const q = acc[i]!.proc;
        if (q.runnable && q.busyUntil <= m.now && k-- === 0) {
          h = acc[i]!;
          break;
        }
      }
    }
    if (h === null) return;
    // The pick is a runnable acceptor: held, accepting, not paused.
    assert(h.held && h.fn !== null && !h.paused && h.proc.runnable, 'dispatch: a runnable acceptor');
    const ep = st.backlog.shift();
    assert(ep !== undefined && ep.owner === null, 'dispatch: the backlog holds unaccepted server sides');
    if (ep.closed) continue;
    h.pending.push(ep);
    m.at(m.now, EV_ACCEPT, h.proc, h, ep);
  }
}

/** EV_ACCEPT: the connection becomes the acceptor's, unless it stopped accepting meanwhile (null: a retry after a failed accept). */
export function acceptConn(m: Machine, h: ListenerHandle, ep: Endpoint | null): void {
  if (ep === null) {
    if (h.state.open) dispatch(m, h.state);
    return;
  }
  const i = h.pending.indexOf(ep);
  if (i < 0) return; // given back to the backlog when this process let go of the socket
  h.pending.splice(i, 1);
  if (ep.closed) return;
  const p = h.proc;
  const st = h.state;
  // A connection goes to one acceptor's pending list at a time, and is accepted once.
  assert(ep.owner === null && !ep.holding, 'acceptConn: not accepted before');
  assert(ep.pending === null && ep.peer.peer === ep, 'acceptConn: a server side, linked to its client');
  if (!h.held || h.fn === null || h.paused || !p.runnable) {
    if (st.open) {
      st.backlog.unshift(ep);
      dispatch(m, st);
    } else {
      resetUnaccepted(m, ep);
    }
    return;
  }
  if (m.faults.on && m.faults.covers(p) && acceptFault(m, h, ep)) return;
  ep.owner = p;
  p.endpoints.add(ep);
  hold(ep, p);
  assert(ep.holding === ep.refd, 'acceptConn: an accepted stream holds its process unless unref\'d');
  m.touch(p);
  m.log(p, 'accept', `${ep.id} ${formatAddr(st.address)}`);
  m.invoke(p, h.fn, ep.stream);
  // Its peer ended before it was accepted: the EOF's read(0), now that it has an owner.
  if (ep.eof) readZero(m, ep);
}

/**
 * accept-emfile, accept-enfile: accept(2) fails. The connection stays at the
 * head of the backlog; the process hears why (onError, or a line on stderr
 * as the Node adapter writes without one), and the kernel offers the
 * backlog again a millisecond later, as a level-triggered poll would, to
 * whoever accepts then (this process again, unless it paused).
 */
function acceptFault(m: Machine, h: ListenerHandle, ep: Endpoint): boolean {
  const f = m.faults;
  const code = f.hit('accept-emfile') ? 'EMFILE' : f.hit('accept-enfile') ? 'ENFILE' : null;
  if (code === null) return false;
  const p = h.proc;
  const st = h.state;
  assert(ep.owner === null && st.open, 'acceptFault: an unaccepted connection of an open listener');
  st.backlog.unshift(ep);
  assert(st.backlog.peek() === ep, 'acceptFault: the connection stays at the head of the backlog');
  m.log(p, 'fault', `accept-${code.toLowerCase()} ${ep.id}`);
  m.at(m.now + 1, EV_ACCEPT, p, h, null);
  const err = new OsError(code, `accept on ${formatAddr(st.address)}: ${code === 'EMFILE' ? 'too many open files in this process' : 'too many open files in the system'}`);
  if (h.onError !== null) m.invoke(p, h.onError, err);
  else writeSink(m, p, p.stderr, `drover: listener ${formatAddr(st.address)}: ${err.message}\n`, 'stderr');
  return true;
}

function lookupNode(m: Machine, abs: string): { mode: number } | null {
  assert(abs.startsWith('/'), 'lookupNode: an absolute path');
  const link = m.vol._core.getResolvedLink(abs);
  return link === null ? null : (link.getNode() as { mode: number });
}

function normHost(host: string): string {
  return host === 'localhost' ? '127.0.0.1' : host;
}

function checkUnixPath(path: string, what: string): void {
  const n = Buffer.byteLength(path);
  if (n > UNIX_PATH_MAX) {
    throw new OsError(
      'ENAMETOOLONG',
      `${what} ${path}: a Unix socket path is at most ${UNIX_PATH_MAX} bytes, this one is ${n}; use a shorter path (a directory nearer the root, or a relative path from a nearby cwd)`,
    );
  }
}

export function listen(m: Machine, p: Proc, addr: Addr, opts: ListenOptions | undefined): ListenerHandle {
  const limit = opts?.backlog ?? 511;
  if (!Number.isInteger(limit) || limit < 0) throw new OsError('EINVAL', `listen: backlog must be a non-negative integer, got ${limit}`);
  let st: ListenerState;
  if (isUnix(addr)) {
    const path = addr.path;
    if (typeof path !== 'string' || path === '') throw new OsError('EINVAL', 'listen: empty Unix socket path');
    checkUnixPath(path, 'listen');
    const abs = resolvePath(p.cwd, path);
    const existing = lookupNode(m, abs);
    if (existing !== null) {
      if ((existing.mode & S_IFMT) !== S_IFSOCK) throw new OsError('EEXIST', `listen ${path}: a file that is not a socket is in the way; remove it or choose another path`);
      const live = m.net.unix.get(existing);
      if (live !== undefined && live.open) throw new OsError('EADDRINUSE', `listen ${path}: a live listener is using it`);
      m.vol.unlinkSync(abs); // stale: nobody listens behind it
      m.log(p, 'stale', abs);
    }
    const mode = (opts?.mode ?? 0o600) & 0o777;
    try {
      m.vol.writeFileSync(abs, '', { flag: 'wx', mode });
    } catch (err) {
      const code = (err as { code?: string }).code;
      // As the Node adapter says it (src/os/node/listen.ts socketPlaceError).
      if (code === 'ENOENT') {
        const dir = posix.dirname(path);
        throw new OsError('ENOENT', `cannot create the Unix socket ${path}: its directory ${dir} does not exist; create it (mkdir -p ${dir}) or fix the path`);
      }
      throw err;
    }
    const node = lookupNode(m, abs);
    assert(node !== null, 'listen: the socket file just made is there');
    assert(!m.net.unix.has(node), 'listen: a new socket file has no listener yet');
    node.mode = S_IFSOCK | mode;
    st = new ListenerState({ path }, p, limit, abs, node);
    m.net.unix.set(node, st);
  } else {
    const host = normHost(addr.host);
    let port = addr.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new OsError('EINVAL', `listen: port ${port} is out of range`);
    if (port === 0) port = ephemeral(m);
    else if (tcpConflict(m, host, port)) throw new OsError('EADDRINUSE', `listen ${formatAddr({ host, port })}: address in use`);
    st = new ListenerState({ host: addr.host, port }, p, limit, null, null);
    const list = m.net.tcp.get(port);
    if (list === undefined) m.net.tcp.set(port, [st]);
    else list.push(st);
  }
  const h = new ListenerHandle(m, st, p);
  st.holders.set(p, h);
  p.handles.set(st, h);
  assert(st.holders.size === 1 && st.creator === p, 'listen: a new listener held by its creator alone');
  m.log(p, 'listen', formatAddr(st.address));
  return h;
}

function tcpConflict(m: Machine, host: string, port: number): boolean {
  assert(Number.isInteger(port) && port >= 1 && port <= 65535, 'tcpConflict: a port in range');
  const list = m.net.tcp.get(port);
  if (list === undefined) return false;
  // A port's entry is dropped with its last listener.
  assert(list.length > 0, 'tcpConflict: no empty port entries');
  for (const st of list) {
    const h = normHost((st.address as { host: string }).host);
    if (h === host || WILDCARDS.has(h) || WILDCARDS.has(host)) return true;
  }
  return false;
}

function ephemeral(m: Machine): number {
  const net = m.net;
  for (let i = 0; i <= EPHEMERAL_HIGH - EPHEMERAL_LOW; i++) {
    const port = net.nextPort;
    assert(port >= EPHEMERAL_LOW && port <= EPHEMERAL_HIGH, 'ephemeral: the next port is in the ephemeral range');
    net.nextPort = port === EPHEMERAL_HIGH ? EPHEMERAL_LOW : port + 1;
    if (!net.tcp.has(port)) return port;
  }
  throw new OsError('EADDRINUSE', 'listen: no ephemeral port left');
}

function findTcp(m: Machine, host: string, port: number): ListenerState | null {
  const list = m.net.tcp.get(port);
  if (list === undefined) return null;
  let wild: ListenerState | null = null;
  for (const st of list) {
    // The table holds only open listeners: closeListener takes them out.
    assert(st.open && st.node === null, 'findTcp: the TCP table holds open TCP listeners');
    const h = normHost((st.address as { host: string }).host);
    if (h === host) return st;
    if (WILDCARDS.has(h)) wild = st;
  }
  return wild;
}

/** Validate listeners a spawn hands over, before anything is allocated. */
export function checkHandOver(handed: readonly Listener[]): void {
  for (const l of handed) {
    if (!(l instanceof ListenerHandle)) throw new OsError('EINVAL', 'spawn: listeners must come from this kernel');
    if (!l.held || !l.state.open) throw new OsError('EINVAL', `spawn: listener ${formatAddr(l.address)} is closed`);
  }
}

/** The child's holds on what its parent handed over, in spawn order. */
export function handOver(m: Machine, handed: readonly Listener[], child: Proc): readonly ListenerHandle[] {
  // A child just made, not started: it holds nothing yet.
  assert(child.runnable && child.handles.size === 0, 'handOver: a new child that holds nothing');
  const out: ListenerHandle[] = [];
  for (const l of handed) {
    const st = (l as unknown as ListenerHandle).state;
    let h = st.holders.get(child);
    if (h === undefined) {
      h = new ListenerHandle(m, st, child);
      st.holders.set(child, h);
      child.handles.set(st, h);
    }
    assert(h.held && h.proc === child && child.handles.get(st) === h, 'handOver: the child holds it');
    out.push(h);
  }
  return Object.freeze(out);
}

export function releaseHandles(m: Machine, p: Proc): void {
  assert(!p.runnable, 'releaseHandles: at death');
  for (const h of [...p.handles.values()]) release(m, h, false);
  assert(p.handles.size === 0 && p.accepting === 0, 'releaseHandles: a dead process holds and accepts on nothing');
}

// ---------------------------------------------------------------- connect

export function connect(m: Machine, p: Proc, addr: Addr): Promise<Stream> {
  assert(p.runnable, 'connect: by a process that can run');
  let target: Addr;
  if (isUnix(addr)) {
    checkUnixPath(addr.path, 'connect');
    target = { path: resolvePath(p.cwd, addr.path) };
  } else {
    target = { host: normHost(addr.host), port: addr.port };
  }
  const id = ++m.net.connIds;
  const client = new Endpoint(m, p, id);
  const server = new Endpoint(m, null, id);
  client.peer = server;
  server.peer = client;
  p.endpoints.add(client);
  p.connecting++;
  m.log(p, 'connect', `${id} ${formatAddr(addr)}`);
  const promise = new Promise<Stream>((resolve, reject) => {
    client.pending = { resolve, reject };
  });
  assert(client.pending !== null && p.connecting >= 1, 'connect: a pending connect, counted');
  if (m.deferring(p)) m.defer(p, FX_CONNECT, client, target);
  else dial(m, client, target);
  return promise;
}

/** The connection request leaves now, unless its process died meanwhile. */
export function dial(m: Machine, client: Endpoint, target: unknown): void {
  if (client.closed) return;
  // Open means not answered yet: refuse and death both close it.
  assert(client.pending !== null && client.owner !== null, 'dial: a pending connect of its process');
  assert(client.peer.owner === null && client.peer.peer === client, 'dial: its server side is nobody\'s yet');
  let t = m.now + m.latency();
  if (m.faults.on && m.faults.covers(client.owner) && m.faults.hit('latency')) t += m.faults.delay();
  m.at(t, EV_ARRIVE, null, client, target);
}

/** EV_ARRIVE: the connection reaches the listening side, or is refused. */
export function arrive(m: Machine, client: Endpoint, target: Addr): void {
  if (client.closed) return;
  const p = client.owner;
  assert(p !== null && client.pending !== null, 'arrive: a pending connect of its process');
  let st: ListenerState | null = null;
  let err: OsError | null = null;
  if (isUnix(target)) {
    const node = lookupNode(m, target.path);
    if (node === null) err = new OsError('ENOENT', `connect ${target.path}: no such file`);
    else {
      st = m.net.unix.get(node) ?? null;
      if (st === null || !st.open) err = new OsError('ECONNREFUSED', `connect ${target.path}: nobody is listening`);
    }
  } else {
    st = findTcp(m, target.host, target.port);
    if (st === null) err = new OsError('ECONNREFUSED', `connect ${formatAddr(target)}: nobody is listening`);
  }
  if (err === null && st!.backlog.length >= st!.limit) {
    err = new OsError('ECONNREFUSED', `connect ${formatAddr(target)}: backlog of ${st!.limit} is full`);
  }
  if (err !== null) {
    pipeTo(m, client, err, m.now);
    return;
  }
  const server = client.peer;
  assert(st !== null && st.open, 'arrive: an open listener takes it');
  assert(server.owner === null && !server.closed, 'arrive: its server side is nobody\'s yet');
  if (!isUnix(target)) {
    const host = target.host === '0.0.0.0' ? '127.0.0.1' : target.host === '::' ? '::1' : target.host;
    // The client's own port is only a label; it never collides with anything.
    const port = EPHEMERAL_LOW + (client.id % (EPHEMERAL_HIGH - EPHEMERAL_LOW));
    client.stream.remoteAddress = server.stream.localAddress = host;
    client.stream.remotePort = server.stream.localPort = target.port;
    client.stream.localAddress = server.stream.remoteAddress = host;
    client.stream.localPort = server.stream.remotePort = port;
  }
  m.log(p, 'arrive', `${client.id} ${formatAddr(st.address)}`);
  st.backlog.push(server);
  assert(st.backlog.length <= st.limit, 'arrive: the backlog stays within its limit');
  pipeTo(m, client, OK, m.now);
  dispatch(m, st);
}
