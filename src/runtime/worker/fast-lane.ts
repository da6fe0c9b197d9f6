// The fast worker's side of the lanes (DESIGN.md, "Lanes"): every request is
// classified by its route; a predicted-slow one is never run here but handed
// to the slow lane: the arbiter queues it and names a slow worker, and
// forward.ts streams it there and back. Durations observed here (of requests
// run here, and of forwarded ones from the moment they reach their slow
// worker) teach the predictor; a route that turns slow or fast is reported to
// the arbiter, which passes it to every other fast worker.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Os } from '../../os/types.js';
import { Predictor } from '../lanes/predictor.js';
import { routeKeyString } from '../lanes/route-key.js';
import type { Logger } from '../log.js';
import { laneId, SEQ_LIMIT, type LaneSpec, type ToArbiter, type ToWorker } from '../protocol.js';
import { forward } from './forward.js';

interface Waiting {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly key: number;
}

export class FastLane {
  readonly predictor: Predictor;
  /** Requests handed to the slow lane so far. */
  handed = 0;
  private seq = 0;
  private readonly waiting = new Map<number, Waiting>();

  constructor(
    private readonly os: Os,
    spec: LaneSpec,
    private readonly send: (m: ToArbiter) => void,
    private readonly log: Logger,
  ) {
    this.predictor = new Predictor({ slowThresholdMs: spec.slowThreshold, slowRoutes: spec.slowRoutes });
    this.predictor.import(spec.learned);
  }

  /**
   * Takes the request if its route is predicted slow (true); otherwise the
   * caller runs it here and reports its duration to observe().
   */
  take(key: number, req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.predictor.classifyKey(key, req.method!, req.url!)) return false;
    this.handed++;
    this.seq = (this.seq + 1) % SEQ_LIMIT;
    const seq = this.seq;
    const w: Waiting = { req, res, key };
    this.waiting.set(seq, w);
    this.send({ t: 'lane-want', seq });
    res.once('close', () => {
      // Gone while queued: the arbiter drops it from the queue.
      if (this.waiting.get(seq) === w) {
        this.waiting.delete(seq);
        this.send({ t: 'lane-cancel', seq });
      }
    });
    return true;
  }

  /** A request of `key` ran here (or on a slow worker) for `ms`. */
  observe(key: number, method: string, url: string, ms: number): void {
    const p = this.predictor;
    const was = p.predict(key);
    p.observe(key, ms);
    const now = p.predict(key);
    if (now === was) return;
    const route = routeKeyString(method, url);
    const avgMs = p.average(key) ?? ms;
    this.log.info(`route ${route} is ${now ? 'slow' : 'fast again'}: ${ms.toFixed(0)} ms, average ${avgMs.toFixed(0)} ms`);
    this.send({ t: 'route', key, route, avgMs, slow: now });
  }

  message(m: ToWorker): void {
    switch (m.t) {
      case 'lane-go': {
        const w = this.waiting.get(m.seq);
        this.waiting.delete(m.seq);
        if (!w || w.res.destroyed) {
          // Cancelled on the way: the slot it was given is free again.
          this.send({ t: 'lane-done', seq: m.seq });
          return;
        }
        const t0 = this.os.now();
        forward(this.os, m.path, laneId(this.os.pid, m.seq), w.req, w.res, (how) => {
          this.send({ t: 'lane-done', seq: m.seq });
          if (how === 'answered') this.observe(w.key, w.req.method!, w.req.url!, this.os.now() - t0);
        });
        return;
      }
      case 'lane-no': {
        const w = this.waiting.get(m.seq);
        this.waiting.delete(m.seq);
        if (!w || w.res.destroyed) return;
        const { res } = w;
        res.statusCode = 503;
        res.setHeader('retry-after', String(m.retryAfter));
        res.setHeader('content-type', 'text/plain');
        res.end(m.reason === 'queue-full'
          ? 'Service Unavailable: the slow lane is full, retry later\n'
          : m.reason === 'queue-timeout'
            ? 'Service Unavailable: waited too long for a slow-lane worker, retry later\n'
            : 'Service Unavailable: no slow-lane worker\n');
        return;
      }
      case 'route':
        if (m.slow) this.predictor.markSlow(m.key, m.avgMs);
        else this.predictor.markFast(m.key, m.avgMs);
        return;
    }
  }
}
