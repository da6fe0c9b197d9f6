// The peer of bench/lanes: the same slow-lane policy as
// src/runtime/lanes/queue.ts (FIFO, least-loaded then longest at that load,
// expiry first, the same Retry-After), written the obvious way: the queue a
// JS array of objects with push/shift, cancel by findIndex + splice, the
// slot choice a linear scan over the workers, a Map of per-request records.
// run.ts checks that both make the same decisions on a random operation
// sequence before it times them, so the comparison is of data structures,
// not of policies.
import {
  SERVICE_ALPHA, SERVICE_PRIOR_MS, retryAfterSeconds, type Decision, type LaneLimits, type RequestId, type WorkerId,
} from '../../src/runtime/lanes/queue.js';

interface Queued { id: RequestId; at: number }
interface Worker { id: WorkerId; load: number; since: number; running: Array<{ id: RequestId; at: number }> }

export class NaiveLane {
  private readonly queue: Queued[] = [];
  private readonly workers: Worker[] = [];
  private readonly runningOn = new Map<RequestId, Worker>();
  private seq = 0;
  private t = -Infinity;
  private service: number | null = null;
  private shedFull = 0;
  private shedTimeout = 0;

  constructor(private readonly limits: LaneLimits) {}

  enqueue(id: RequestId, now: number): Decision[] {
    now = this.clock(now);
    const out = this.expire(now);
    const w = this.pick();
    if (w) out.push(this.assign(w, id, now));
    else if (this.queue.length < this.limits.queue) this.queue.push({ id, at: now });
    else {
      this.shedFull++;
      out.push({ kind: 'reject', id, status: 503, retryAfter: this.retryAfter(), reason: 'queue-full' });
    }
    return out;
  }

  cancel(id: RequestId): boolean {
    const i = this.queue.findIndex((q) => q.id === id);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  complete(id: RequestId, now: number): Decision[] {
    now = this.clock(now);
    const w = this.runningOn.get(id);
    if (w) {
      this.runningOn.delete(id);
      const k = w.running.findIndex((r) => r.id === id);
      const sample = now - w.running[k]!.at;
      this.service = this.service === null ? sample : this.service + SERVICE_ALPHA * (sample - this.service);
      w.running.splice(k, 1);
      w.load--;
      w.since = this.seq++;
    }
    return this.drain(now, this.expire(now));
  }

  addWorker(id: WorkerId, now: number): Decision[] {
    now = this.clock(now);
    this.workers.push({ id, load: 0, since: this.seq++, running: [] });
    return this.drain(now, this.expire(now));
  }

  removeWorker(id: WorkerId, now: number): { failed: RequestId[]; decisions: Decision[] } {
    now = this.clock(now);
    const i = this.workers.findIndex((w) => w.id === id);
    const failed: RequestId[] = [];
    if (i >= 0) {
      for (const r of this.workers[i]!.running) {
        failed.push(r.id);
        this.runningOn.delete(r.id);
      }
      this.workers.splice(i, 1);
    }
    return { failed, decisions: this.expire(now) };
  }

  tick(now: number): Decision[] {
    return this.expire(this.clock(now));
  }

  get shed(): number {
    return this.shedFull + this.shedTimeout;
  }

  private clock(now: number): number {
    if (now > this.t) this.t = now;
    return this.t;
  }

  private retryAfter(): number {
    const slots = Math.max(1, this.workers.length) * this.limits.concurrency;
    return retryAfterSeconds(((this.queue.length + 1) * (this.service ?? SERVICE_PRIOR_MS)) / slots);
  }

  private expire(now: number): Decision[] {
    const out: Decision[] = [];
    while (this.queue.length > 0 && now - this.queue[0]!.at >= this.limits.queueTimeout) {
      const { id } = this.queue.shift()!;
      this.shedTimeout++;
      out.push({ kind: 'reject', id, status: 503, retryAfter: this.retryAfter(), reason: 'queue-timeout' });
    }
    return out;
  }

  private drain(now: number, out: Decision[]): Decision[] {
    while (this.queue.length > 0) {
      const w = this.pick();
      if (!w) break;
      out.push(this.assign(w, this.queue.shift()!.id, now));
    }
    return out;
  }

  /** Least loaded with a free slot; ties: the one at that load the longest. */
  private pick(): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workers) {
      if (w.load >= this.limits.concurrency) continue;
      if (!best || w.load < best.load || (w.load === best.load && w.since < best.since)) best = w;
    }
    return best;
  }

  private assign(w: Worker, id: RequestId, now: number): Decision {
    w.running.push({ id, at: now });
    w.load++;
    w.since = this.seq++;
    this.runningOn.set(id, w);
    return { kind: 'assign', id, worker: w.id };
  }
}
