// The event queue: one binary heap ordered by (time, tie, seq). `tie` is
// drawn from the kernel's generator when an event is scheduled, so events due
// at the same virtual time run in an order chosen by the seed rather than by
// which line of code happened to schedule first; `seq` only makes the order
// total. Events are pooled objects with fixed fields (no closures): the run
// loop switches on `kind` and reads its arguments from `a` and `b`.

import { assert } from '../os/assert.js';
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
    const heap = this.heap;
    // Each queued event knows its place: the root's is 0.
    assert(heap.length === 0 || heap[0]!.idx === 0, 'EventQueue.size: the root knows its place');
    assert(heap.length === 0 || heap[heap.length - 1]!.idx === heap.length - 1, 'EventQueue.size: the last event knows its place');
    return heap.length;
  }

  peek(): Ev | undefined {
    const heap = this.heap;
    const top = heap[0];
    assert(top === undefined || top.idx === 0, 'EventQueue.peek: the root knows its place');
    // The heap order at the root: what peek answers is due no later than its children.
    assert(heap.length < 2 || !less(heap[1]!, top!), 'EventQueue.peek: the root is the earliest (left)');
    assert(heap.length < 3 || !less(heap[2]!, top!), 'EventQueue.peek: the root is the earliest (right)');
    return top;
  }

  schedule(time: number, kind: number, proc: Proc | null, a: unknown, b: unknown): Ev {
    // A time (NaN would break the order without a sound) and a kind a process or the kernel runs.
    assert(time >= 0, 'EventQueue.schedule: a time, never negative or NaN');
    assert(kind > EV_NONE && kind <= EV_CLOCK, 'EventQueue.schedule: a known event kind');
    const ev = this.pool.pop() ?? new Ev();
    // A pooled event was released: it is in no heap and refers to nothing.
    assert(ev.idx === -1 && ev.proc === null && ev.a === null, 'EventQueue.schedule: a pooled event is free');
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
    assert(ev.idx === -1, 'EventQueue.push: put back only what was popped');
    assert(ev.kind !== EV_NONE, 'EventQueue.push: a cancelled event is released, not put back');
    this.insert(ev);
  }

  /**
   * Move a popped event to `time`, ahead of everything else due then: it was
   * due earlier (its process was busy), and moving several of one process's
   * events in pop order keeps their relative order.
   */
  postpone(ev: Ev, time: number): void {
    assert(ev.idx === -1, 'EventQueue.postpone: move only what was popped');
    // Later, never earlier: it was due before the burn that holds its process ends.
    assert(time > ev.time, 'EventQueue.postpone: an event moves later');
    ev.time = time;
    ev.tie = -1;
    ev.seq = this.seq++;
    this.insert(ev);
  }

  pop(): Ev {
    const heap = this.heap;
    assert(heap.length > 0, 'EventQueue.pop: the queue is not empty');
    const top = heap[0]!;
    assert(top.idx === 0, 'EventQueue.pop: the root knows its place');
    const last = heap.pop()!;
    if (last !== top) {
      heap[0] = last;
      last.idx = 0;
      this.down(0);
    }
    top.idx = -1;
    // The queue stays ordered: nothing left is due before what was popped.
    assert(heap.length === 0 || !less(heap[0]!, top), 'EventQueue.pop: popped in order');
    return top;
  }

  remove(ev: Ev): void {
    const i = ev.idx;
    if (i < 0) return;
    const heap = this.heap;
    // idx is the event's place in this heap: removing by a stale one would take out another event.
    assert(i < heap.length && heap[i] === ev, 'EventQueue.remove: the event is where its idx says');
    const last = heap.pop()!;
    ev.idx = -1;
    if (last === ev) return;
    heap[i] = last;
    last.idx = i;
    if (i > 0 && less(last, heap[(i - 1) >> 1]!)) this.up(i);
    else this.down(i);
    assert(ev.idx === -1 && heap[last.idx] === last, 'EventQueue.remove: gone, and the moved event knows its new place');
  }

  /** Return a finished event to the pool; nothing may refer to it afterwards. */
  release(ev: Ev): void {
    // Releasing a queued event would hand out an event that is still in the heap.
    assert(ev.idx === -1, 'EventQueue.release: a released event is not queued');
    assert(this.heap[0] !== ev, 'EventQueue.release: a released event is not the root');
    ev.proc = null;
    ev.a = null;
    ev.b = null;
    ev.idx = -1;
    this.pool.push(ev);
  }

  private insert(ev: Ev): void {
    const heap = this.heap;
    // In the heap twice, it would run twice.
    assert(ev.idx === -1, 'EventQueue.insert: an event is queued once');
    ev.idx = heap.length;
    heap.push(ev);
    this.up(ev.idx);
    assert(heap[ev.idx] === ev, 'EventQueue.insert: the event knows its place');
  }

  private up(i: number): void {
    const heap = this.heap;
    assert(i >= 0 && i < heap.length, 'EventQueue.up: a place in the heap');
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
    assert(i === 0 || !less(ev, heap[(i - 1) >> 1]!), 'EventQueue.up: no earlier than its parent');
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    assert(i >= 0 && i < n, 'EventQueue.down: a place in the heap');
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
    assert(2 * i + 1 >= n || !less(heap[2 * i + 1]!, ev), 'EventQueue.down: no later than its children');
  }
}

function less(x: Ev, y: Ev): boolean {
  assert(x !== y, 'less: an event is compared with another');
  if (x.time !== y.time) return x.time < y.time;
  if (x.tie !== y.tie) return x.tie < y.tie;
  // seq makes the order total: two queued events never share one.
  assert(x.seq !== y.seq, 'less: two events share a seq');
  return x.seq < y.seq;
}
