// The event queue: one binary heap ordered by (time, tie, seq). `tie` is
// drawn from the kernel's generator when an event is scheduled, so events due
// at the same virtual time run in an order chosen by the seed rather than by
// which line of code happened to schedule first; `seq` only makes the order
// total. Events are pooled objects with fixed fields (no closures): the run
// loop switches on `kind` and reads its arguments from `a` and `b`.

import type { Rng } from './random.js';
import type { Proc } from './processes.js';

// Event kinds. Plain numbers: a switch on small integers is the cheapest
// dispatch V8 has, and events stay monomorphic.
export const EV_NONE = 0; // cancelled while waiting in a process's ready list
export const EV_START = 1; // proc runs its program
export const EV_TIMER = 2; // a: SimTimer
export const EV_SLEEP = 3; // a: resolve function
export const EV_SIGNAL = 4; // b: signal index; deliver if still pending
export const EV_FLUSH = 5; // a: Proc; apply its deferred effects that are due (effects.ts); a kernel event
export const EV_CHAN = 6; // a: ChanEnd; deliver the next item of its inbox
export const EV_CHAN_SELF = 7; // a: ChanEnd; fire its own disconnect after close()
export const EV_STREAM = 8; // a: Endpoint; deliver the next item of its inbox (proc: its owner, read at pop)
export const EV_ARRIVE = 9; // a: Endpoint (client side), b: Addr; a connection reaches the listening side
export const EV_CONNECTED = 10; // a: Endpoint (client side), b: OsError | null
export const EV_ACCEPT = 11; // a: ListenerHandle, b: Endpoint (server side)
export const EV_CHECK = 12; // a burning process may have nothing left to live for; look again when it is free
export const EV_HOST = 13; // a: HostWork; hand settled host work back to its process (Os.hostWork)
export const EV_IDLE = 14; // a: Endpoint; its idle timeout (stream setTimeout) may be due
export const EV_PIPE = 15; // a: Pipe; deliver the next item of its inbox (proc: its reader)
export const EV_EPIPE = 16; // a: Pipe; proc wrote to it after its reading end closed
export const EV_WINDOW = 17; // a: Endpoint (the writing side); its peer has room again: run its held write callbacks (proc: its owner, read at pop)
export const EV_CLOCK = 18; // a: AppClock; the first of its process's app timers may be due (app-clock.ts)

export class Ev {
  time = 0;
  tie = 0;
  seq = 0;
  idx = -1; // position in the heap, -1 when not queued
  kind = 0;
  proc: Proc | null = null;
  a: unknown = null;
  b: unknown = null;
}

export class EventQueue {
  private readonly heap: Ev[] = [];
  private readonly pool: Ev[] = [];
  private seq = 0;

  constructor(private readonly rng: Rng) {}

  get size(): number {
    return this.heap.length;
  }

  peek(): Ev | undefined {
    return this.heap[0];
  }

  schedule(time: number, kind: number, proc: Proc | null, a: unknown, b: unknown): Ev {
    const ev = this.pool.pop() ?? new Ev();
    ev.time = time;
    ev.tie = this.rng.u32();
    ev.seq = this.seq++;
    ev.kind = kind;
    ev.proc = proc;
    ev.a = a;
    ev.b = b;
    this.insert(ev);
    return ev;
  }

  /** Put back an event that was popped but could not run yet, keeping its place. */
  push(ev: Ev): void {
    this.insert(ev);
  }

  /**
   * Move a popped event to `time`, ahead of everything else due then: it was
   * due earlier (its process was busy), and moving several of one process's
   * events in pop order keeps their relative order.
   */
  postpone(ev: Ev, time: number): void {
    ev.time = time;
    ev.tie = -1;
    ev.seq = this.seq++;
    this.insert(ev);
  }

  pop(): Ev {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (last !== top) {
      heap[0] = last;
      last.idx = 0;
      this.down(0);
    }
    top.idx = -1;
    return top;
  }

  remove(ev: Ev): void {
    const i = ev.idx;
    if (i < 0) return;
    const heap = this.heap;
    const last = heap.pop()!;
    ev.idx = -1;
    if (last === ev) return;
    heap[i] = last;
    last.idx = i;
    if (i > 0 && less(last, heap[(i - 1) >> 1]!)) this.up(i);
    else this.down(i);
  }

  /** Return a finished event to the pool; nothing may refer to it afterwards. */
  release(ev: Ev): void {
    ev.proc = null;
    ev.a = null;
    ev.b = null;
    ev.idx = -1;
    this.pool.push(ev);
  }

  private insert(ev: Ev): void {
    const heap = this.heap;
    ev.idx = heap.length;
    heap.push(ev);
    this.up(ev.idx);
  }

  private up(i: number): void {
    const heap = this.heap;
    const ev = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (!less(ev, parent)) break;
      heap[i] = parent;
      parent.idx = i;
      i = p;
    }
    heap[i] = ev;
    ev.idx = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const ev = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      let child = heap[l]!;
      if (r < n) {
        const rc = heap[r]!;
        if (less(rc, child)) {
          c = r;
          child = rc;
        }
      }
      if (!less(child, ev)) break;
      heap[i] = child;
      child.idx = i;
      i = c;
    }
    heap[i] = ev;
    ev.idx = i;
  }
}

function less(x: Ev, y: Ev): boolean {
  if (x.time !== y.time) return x.time < y.time;
  if (x.tie !== y.tie) return x.tie < y.tie;
  return x.seq < y.seq;
}
