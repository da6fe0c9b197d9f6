// Parent-child message channels. Each end owns an inbox: what the other
// end sent, in order, each message already JSON-copied. An event delivers
// "the next item" of an inbox rather than a particular message, so no
// tie-break can reorder a direction. Disconnect travels the same way, as
// the last item, so messages sent before a death or close arrive before the
// other side hears of it; each side hears it once. A sender that burns sends
// (and closes) when its clock says, if it lives that long (effects.ts).

import type { Channel } from '../os/types.js';
import type { Machine } from './machine.js';
import { ExitSignal, type Proc } from './processes.js';
import { EV_CHAN, EV_CHAN_SELF } from './scheduler.js';
import { Fifo } from './fifo.js';
import { FX_CHAN, FX_CHAN_CLOSE } from './effects.js';

const DISCONNECT: unique symbol = Symbol('disconnect');

export class ChanEnd {
  peer!: ChanEnd;
  readonly inbox = new Fifo<unknown>();
  lastAt = 0; // delivery times of one direction never go backwards
  connected = true; // send() works
  fired = false; // this side has heard its disconnect
  dead = false; // the owner died: nothing is delivered here any more
  readonly onMsg: Array<(message: unknown) => void> = [];
  readonly onDisc: Array<() => void> = [];
  readonly api: SimChannel;

  constructor(
    readonly m: Machine,
    readonly proc: Proc,
  ) {
    this.api = new SimChannel(this);
  }

  /** Node refs a channel that has 'message' or 'disconnect' listeners, until it disconnects. */
  holds(): boolean {
    return !this.fired && (this.onMsg.length > 0 || this.onDisc.length > 0);
  }
}

export class SimChannel implements Channel {
  constructor(private readonly end: ChanEnd) {}

  get connected(): boolean {
    return this.end.connected;
  }

  send(message: unknown): boolean {
    return send(this.end, message);
  }

  onMessage(fn: (message: unknown) => void): void {
    const end = this.end;
    if (!end.proc.runnable) throw new ExitSignal();
    end.onMsg.push(fn);
  }

  onDisconnect(fn: () => void): void {
    const end = this.end;
    if (!end.proc.runnable) throw new ExitSignal();
    end.onDisc.push(fn);
  }

  close(): void {
    const end = this.end;
    const m = end.m;
    if (!end.proc.runnable) throw new ExitSignal();
    if (!end.connected) return;
    end.connected = false;
    m.log(end.proc, 'chan-close', String(end.peer.proc.pid));
    if (m.deferring(end.proc)) m.defer(end.proc, FX_CHAN_CLOSE, end, null);
    else closeOut(m, end);
  }
}

export function openChannel(m: Machine, parent: Proc, child: Proc): SimChannel {
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
  if (!end.connected) return false;
  if (message === undefined) throw new TypeError('channel.send: message is undefined');
  const copy = jsonCopy(message);
  if (m.deferring(p)) m.defer(p, FX_CHAN, end, copy);
  else sendOut(m, end, copy);
  m.log(p, 'send', String(end.peer.proc.pid));
  return true;
}

/** A message leaves `end` now. A peer that is gone or closed loses it, as a closed pipe does. */
export function sendOut(m: Machine, end: ChanEnd, copy: unknown): void {
  const peer = end.peer;
  if (!peer.dead && peer.connected) enqueue(m, peer, copy, m.now);
}

/** `end`'s close goes out now: the peer hears it after what was sent before, this side hears it too. */
export function closeOut(m: Machine, end: ChanEnd): void {
  if (!end.peer.dead) enqueue(m, end.peer, DISCONNECT, m.now);
  m.at(m.now, EV_CHAN_SELF, end.proc, end, null);
}

function enqueue(m: Machine, to: ChanEnd, item: unknown, from: number): void {
  let t = from + m.latency();
  if (t < to.lastAt) t = to.lastAt;
  to.lastAt = t;
  to.inbox.push(item);
  m.at(t, EV_CHAN, to.proc, to, null);
}

/** EV_CHAN: the next item of `end`'s inbox. */
export function deliverChannel(m: Machine, end: ChanEnd): void {
  const item = end.inbox.shift();
  if (end.dead) return;
  if (item === DISCONNECT) {
    fire(m, end);
    return;
  }
  if (!end.connected) return; // closed here: what was in flight is dropped
  const p = end.proc;
  m.log(p, 'recv', String(end.peer.proc.pid));
  const fns = end.onMsg;
  for (let i = 0; i < fns.length; i++) {
    if (!p.runnable) return;
    m.invoke(p, fns[i]!, item);
  }
}

/** EV_CHAN_SELF, or a DISCONNECT item: this side hears its disconnect, once. */
export function fire(m: Machine, end: ChanEnd): void {
  if (end.fired || end.dead) return;
  end.fired = true;
  end.connected = false;
  const p = end.proc;
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
  for (const end of p.chans) {
    end.dead = true;
    end.connected = false;
    end.fired = true;
    const peer = end.peer;
    if (!peer.dead && !peer.fired) enqueue(m, peer, DISCONNECT, m.now);
  }
  // Ends that already fired left p.chans; being disconnected, they drop whatever still arrives.
  p.chans.clear();
}

/** What JSON serialization hands the other side; primitives skip the round trip. */
function jsonCopy(message: unknown): unknown {
  switch (typeof message) {
    case 'string':
    case 'boolean':
      return message;
    case 'number':
      return Number.isFinite(message) ? (message === 0 ? 0 : message) : null;
    default:
      // Serialized now, like Node's 'json' IPC: a cycle or a BigInt throws here.
      return message === null ? null : JSON.parse(JSON.stringify(message));
  }
}
