// Parent-child message channels. Each end owns an inbox: what the other
// end sent, in order, each message already JSON-copied. An event delivers
// "the next item" of an inbox rather than a particular message, so no
// tie-break can reorder a direction. Disconnect travels the same way, as
// the last item, so messages sent before a death or close arrive before the
// other side hears of it; each side hears it once. A sender that burns sends
// (and closes) when its clock says, if it lives that long (effects.ts).

import { CHANNEL_BACKLOG_MAX, type Channel } from '../os/types.js';
import { assert } from '../os/assert.js';
import type { Machine } from './machine.js';
import { ExitSignal, RUNNING, ZOMBIE, type Proc } from './processes.js';
import { EV_CHAN, EV_CHAN_SELF } from './scheduler.js';
import { Fifo } from './fifo.js';
import { FX_CHAN, FX_CHAN_CLOSE } from './effects.js';

const DISCONNECT: unique symbol = Symbol('disconnect');
/** A message kept for the first handler, back in the inbox: delivered even if the channel closed meanwhile. */
class Early {
  constructor(readonly message: unknown) {}
}

export class ChanEnd {
  peer!: ChanEnd;
  readonly inbox = new Fifo<unknown>();
  lastAt = 0; // delivery times of one direction never go backwards
  connected = true; // send() works
  fired = false; // this side has heard its disconnect
  dead = false; // the owner died: nothing is delivered here any more
  readonly onMsg: Array<(message: unknown) => void> = [];
  /** Messages that arrived before the first message handler: kept for it (see onMessage). */
  readonly early: unknown[] = [];
  readonly onDisc: Array<() => void> = [];
  readonly api: SimChannel;

  constructor(
    readonly m: Machine,
    readonly proc: Proc,
  ) {
    // Made at spawn (openChannel), for the spawning parent and the new child, both in the table.
    assert(proc.runnable, 'ChanEnd: made for a live process');
    assert(m.procs.get(proc.pid) === proc, 'ChanEnd: its process is in the table');
    this.api = new SimChannel(this);
  }

  /** Node refs a channel that has 'message' or 'disconnect' listeners, until it disconnects. */
  holds(): boolean {
    // An end that heard its disconnect (or died) is disconnected; a dead one has heard it.
    assert(!this.fired || !this.connected, 'ChanEnd: an end that heard its disconnect is disconnected');
    assert(!this.dead || this.fired, 'ChanEnd: a dead end has heard its disconnect');
    return !this.fired && (this.onMsg.length > 0 || this.onDisc.length > 0);
  }
}

export class SimChannel implements Channel {
  constructor(private readonly end: ChanEnd) {
    assert(end.connected && !end.fired && !end.dead, 'SimChannel: a channel starts connected');
    assert(end.onMsg.length === 0 && end.onDisc.length === 0, 'SimChannel: a new end has no listeners');
  }

  get connected(): boolean {
    const end = this.end;
    assert(!end.connected || (!end.fired && !end.dead), 'SimChannel: a connected end has not heard its disconnect');
    return end.connected;
  }

  send(message: unknown): boolean {
    assert(this.end.api === this, "SimChannel: the api of its own end");
    return send(this.end, message);
  }

  onMessage(fn: (message: unknown) => void): void {
    const end = this.end;
    if (!end.proc.runnable) throw new ExitSignal();
    assert(!end.dead, "onMessage: a live process's end is not dead");
    assert(end.fired || end.proc.chans.has(end), 'onMessage: an end that has not heard its disconnect is its process\'s');
    end.onMsg.push(fn);
    // The first handler gets what arrived before it, in order and after this
    // call, as the Node adapter's channel keeps them (os/node/channel.ts: a
    // parent sends right after spawn, before the child's program has run; a
    // spare's 'go' was lost so, found by chaos, seed 0x4d147942ef6faab9).
    // Back at the head of the inbox, each with its event: an event delivers
    // the inbox's next item, so what is queued behind them stays behind.
    // As there, they are delivered even if the channel closed since (its
    // disconnect then came first).
    if (end.onMsg.length !== 1 || end.early.length === 0) return;
    const m = end.m;
    for (let i = end.early.length - 1; i >= 0; i--) end.inbox.unshift(new Early(end.early[i]));
    for (let i = 0; i < end.early.length; i++) m.at(m.now, EV_CHAN, end.proc, end, null);
    end.proc.earlyMessages += end.early.length; // they keep it alive (processes.ts holds())
    end.early.length = 0;
    assert(end.inbox.length >= 1, 'onMessage: the early messages are back in the inbox');
  }

  onDisconnect(fn: () => void): void {
    const end = this.end;
    if (!end.proc.runnable) throw new ExitSignal();
    assert(!end.dead, "onDisconnect: a live process's end is not dead");
    assert(end.fired || end.proc.chans.has(end), 'onDisconnect: an end that has not heard its disconnect is its process\'s');
    end.onDisc.push(fn);
  }

  close(): void {
    const end = this.end;
    const m = end.m;
    if (!end.proc.runnable) throw new ExitSignal();
    if (!end.connected) return;
    assert(!end.fired && !end.dead, 'close: a connected end has not heard its disconnect');
    assert(end.proc.chans.has(end), "close: a connected end is its process's");
    end.connected = false;
    m.log(end.proc, 'chan-close', String(end.peer.proc.pid));
    if (m.deferring(end.proc)) m.defer(end.proc, FX_CHAN_CLOSE, end, null);
    else closeOut(m, end);
  }
}

export function openChannel(m: Machine, parent: Proc, child: Proc): SimChannel {
  // spawnProc: once per child, between it and the process that spawned it.
  assert(child.parent === parent && child !== parent, 'openChannel: between a child and its parent');
  assert(child.parentChan === null, 'openChannel: a child has one channel to its parent');
  const a = new ChanEnd(m, parent);
  const b = new ChanEnd(m, child);
  a.peer = b;
  b.peer = a;
  parent.chans.add(a);
  child.chans.add(b);
  child.parentChan = b;
  return a.api;
}

function send(end: ChanEnd, message: unknown): boolean {
  const p = end.proc;
  const m = end.m;
  if (!p.runnable) throw new ExitSignal();
  assert(!end.dead, "send: a live process's end is not dead");
  if (!end.connected) return false;
  assert(!end.fired, 'send: a connected end has not heard its disconnect');
  if (message === undefined) throw new TypeError('channel.send: message is undefined');
  const copy = jsonCopy(message);
  if (m.deferring(p)) m.defer(p, FX_CHAN, end, copy);
  else sendOut(m, end, copy);
  m.log(p, 'send', String(end.peer.proc.pid));
  return true;
}

/** A message leaves `end` now. A peer that is gone or closed loses it, as a closed pipe does. */
export function sendOut(m: Machine, end: ChanEnd, copy: unknown): void {
  // From send(), or from its process's flush: a dead process's effects were dropped (processes.ts die).
  assert(end.proc.state === RUNNING && !end.dead, 'sendOut: the sender is alive');
  assert(copy !== undefined, 'sendOut: undefined is never sent');
  const peer = end.peer;
  if (!peer.dead && peer.connected) enqueue(m, peer, copy, m.now);
}

/** `end`'s close goes out now: the peer hears it after what was sent before, this side hears it too. */
export function closeOut(m: Machine, end: ChanEnd): void {
  // close() disconnected it first; it goes out now or from its process's flush.
  assert(!end.connected, 'closeOut: only a closed end');
  assert(end.proc.state === RUNNING && !end.dead, 'closeOut: the closing process is alive');
  if (!end.peer.dead) enqueue(m, end.peer, DISCONNECT, m.now);
  m.at(m.now, EV_CHAN_SELF, end.proc, end, null);
}

function enqueue(m: Machine, to: ChanEnd, item: unknown, from: number): void {
  assert(!to.dead, 'enqueue: nothing is sent to a dead end');
  assert(from === m.now, "enqueue: an item leaves at the kernel's now");
  // Each item was due at most one latency after it left, and time does not go back.
  assert(to.lastAt <= from + 1, 'enqueue: delivery times are at most 1 ms ahead');
  let t = from + m.latency();
  if (t < to.lastAt) t = to.lastAt;
  to.lastAt = t;
  to.inbox.push(item);
  m.at(t, EV_CHAN, to.proc, to, null);
}

/** EV_CHAN: the next item of `end`'s inbox. */
export function deliverChannel(m: Machine, end: ChanEnd): void {
  const item = end.inbox.shift();
  // One event per item; an event never outlives its item (a discarded one leaves its item behind).
  assert(item !== undefined, 'deliverChannel: an item for each event');
  if (end.dead) return;
  if (item === DISCONNECT) {
    fire(m, end);
    return;
  }
  const early = item instanceof Early;
  if (!early && !end.connected) return; // closed here: what was in flight is dropped
  const p = end.proc;
  assert(early || !end.fired, 'deliverChannel: a connected end has not heard its disconnect');
  let message: unknown = item;
  if (early) {
    message = item.message;
    p.earlyMessages--;
    assert(p.earlyMessages >= 0, 'deliverChannel: an early message is counted until delivered');
    m.touch(p); // the last one may leave it with nothing to do
  }
  // A dead process's ends are dead or fired; a stopped or exiting one's events are discarded.
  assert(p.runnable, 'deliverChannel: a message reaches only a live process');
  if (end.onMsg.length === 0) {
    // Beyond the bound both Os keep, newer ones are dropped.
    if (end.early.length < CHANNEL_BACKLOG_MAX) end.early.push(item);
    m.log(p, 'recv-early', String(end.peer.proc.pid));
    return;
  }
  m.log(p, 'recv', String(end.peer.proc.pid));
  const fns = end.onMsg;
  for (let i = 0; i < fns.length; i++) {
    if (!p.runnable) return;
    m.invoke(p, fns[i]!, message);
  }
}

/** EV_CHAN_SELF, or a DISCONNECT item: this side hears its disconnect, once. */
export function fire(m: Machine, end: ChanEnd): void {
  if (end.fired || end.dead) return;
  const p = end.proc;
  // Unfired ends stay in their process's chans, and a death marks every one of them dead (closeChannels).
  assert(p.chans.has(end), "fire: an end that has not heard its disconnect is its process's");
  assert(p.runnable, 'fire: only a live process hears its disconnect');
  end.fired = true;
  end.connected = false;
  p.chans.delete(end);
  m.touch(p);
  m.log(p, 'disconnect', String(end.peer.proc.pid));
  const fns = end.onDisc;
  for (let i = 0; i < fns.length; i++) {
    if (!p.runnable) return;
    m.invoke(p, fns[i]!, undefined);
  }
}

/** At death: every end of the dead process goes, and each peer hears of it. */
export function closeChannels(m: Machine, p: Proc): void {
  assert(p.state === ZOMBIE, 'closeChannels: at death');
  for (const end of p.chans) {
    assert(end.proc === p, 'closeChannels: its own ends');
    assert(!end.fired && !end.dead, 'closeChannels: an end in chans has not heard its disconnect');
    end.dead = true;
    end.connected = false;
    end.fired = true;
    const peer = end.peer;
    if (!peer.dead && !peer.fired) enqueue(m, peer, DISCONNECT, m.now);
  }
  // Ends that already fired left p.chans; being disconnected, they drop whatever still arrives.
  p.chans.clear();
}

/** What JSON serialization hands the other side. */
export function jsonCopy(message: unknown): unknown {
  // send() throws TypeError for it: undefined would read as no message.
  assert(message !== undefined, 'jsonCopy: a message');
  // Plain data (nearly every message) is copied as the round trip would copy it, without
  // the text; anything else goes through the text, so a cycle or a BigInt throws here.
  const copy = plainCopy(message, 0);
  assert(copy !== undefined, 'jsonCopy: a copy is a value');
  return copy !== NOT_PLAIN ? copy : JSON.parse(JSON.stringify(message));
}

const NOT_PLAIN = Symbol('not plain');

/**
 * JSON.parse(JSON.stringify(v)) for plain data: objects of Object.prototype
 * or none, arrays, strings, booleans, null, numbers (not finite: null; -0:
 * 0). In an object, undefined, functions and symbols are left out; in an
 * array they become null. NOT_PLAIN for anything else (a toJSON, a Date, a
 * class, a BigInt, a key __proto__, a cycle: too deep), which the round trip
 * then handles, throws included.
 */
function plainCopy(v: unknown, depth: number): unknown {
  assert(depth >= 0, 'plainCopy: depth counts from 0');
  assert(v !== undefined, 'plainCopy: what the round trip keeps');
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? (v === 0 ? 0 : v) : null;
    case 'object': {
      if (v === null) return null;
      if (depth > 64) return NOT_PLAIN;
      if (Array.isArray(v)) {
        const out = new Array<unknown>(v.length);
        for (let i = 0; i < v.length; i++) {
          const e: unknown = v[i];
          const t = typeof e;
          // Numbers inline: a worker's counters are arrays of them, in a report every 50 ms of traffic.
          if (t === 'number') out[i] = Number.isFinite(e) ? (e === 0 ? 0 : e) : null;
          else if (e === undefined || t === 'function' || t === 'symbol') out[i] = null;
          else if ((out[i] = plainCopy(e, depth + 1)) === NOT_PLAIN) return NOT_PLAIN;
        }
        return out;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if ((proto !== Object.prototype && proto !== null) || 'toJSON' in v) return NOT_PLAIN;
      const out: Record<string, unknown> = {};
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        if (k === '__proto__') return NOT_PLAIN;
        const e: unknown = (v as Record<string, unknown>)[k];
        const t = typeof e;
        if (e === undefined || t === 'function' || t === 'symbol') continue;
        if ((out[k] = plainCopy(e, depth + 1)) === NOT_PLAIN) return NOT_PLAIN;
      }
      return out;
    }
    default:
      return NOT_PLAIN;
  }
}
