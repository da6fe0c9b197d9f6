// The fast worker's side of the lanes (DESIGN.md, "Lanes"): every request is
// classified by its route; a predicted-slow one is never run here but handed
// to the slow lane: its body is read here first (up to bodyMax, else 413),
// so that a slot never waits on an upload; then the arbiter queues it and
// names a slow worker, and forward.ts sends it there and streams the answer
// back. Durations observed here (the server's time of requests run here,
// timing.ts; and of forwarded ones from the moment they reach their slow
// worker to the end of the app's answer, less any time it was held for the
// client) teach the predictor; a route that turns slow or fast is reported
// to the arbiter, which passes it to every other fast worker.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Os } from '../../os/types.js';
import { Predictor } from '../lanes/predictor.js';
import { routeKeyString } from '../lanes/route-key.js';
import { Throttle, type Logger } from '../log.js';
import { laneId, SEQ_LIMIT, type LaneSpec, type ToArbiter, type ToWorker } from '../protocol.js';
import { forward, type Body } from './forward.js';
import { hasBody, wantsContinue } from './timing.js';

interface Waiting {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly key: number;
  readonly body: Body;
}

const NO_BODY: Body = { chunks: [], trailers: [] };
/** node:http's default cap on a request's raw header entries (maxHeadersCount unset: 1,000 headers). */
const HEADER_ENTRIES = 2000;

export class FastLane {
  readonly predictor: Predictor;
  /** Requests handed to the slow lane so far. */
  handed = 0;
  private seq = 0;
  private readonly waiting = new Map<number, Waiting>();
  private readonly bodyMax: number;
  private readonly buffer: number;
  private readonly failures: Throttle;

  constructor(
    private readonly os: Os,
    spec: LaneSpec,
    private readonly send: (m: ToArbiter) => void,
    private readonly log: Logger,
  ) {
    this.predictor = new Predictor({ slowThresholdMs: spec.slowThreshold, slowRoutes: spec.slowRoutes });
    this.predictor.import(spec.learned);
    this.bodyMax = spec.bodyMax;
    this.buffer = spec.buffer;
    this.failures = new Throttle(() => os.now(), (m) => log.warning(m));
  }

  /**
   * Takes the request if its route is predicted slow (true); otherwise the
   * caller runs it here and reports its duration to observe().
   */
  take(key: number, req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.predictor.classifyKey(key, req.method!, req.url!)) return false;
    this.handed++;
    // Past node:http's cap on headers (2,000 raw entries) the framing ones may
    // be among those dropped, while its parser framed the body by them: the
    // body is read then too (a request without one ends at once).
    if (!hasBody(req) && req.rawHeaders.length < HEADER_ENTRIES) {
      this.want({ req, res, key, body: NO_BODY });
      return true;
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > this.bodyMax) {
      tooLarge(res, this.bodyMax); // before any 100 Continue: the client need not send it (worker.ts, checkContinue)
      return true;
    }
    if (wantsContinue(req)) res.writeContinue();
    // The body is read whole before the request takes a slot; the client's
    // pace is bounded by client_body_timeout (connections.ts).
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= this.bodyMax) {
        chunks.push(c);
        return;
      }
      req.removeListener('data', onData);
      chunks.length = 0;
      tooLarge(res, this.bodyMax);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (size <= this.bodyMax && !res.writableEnded && !res.destroyed) this.want({ req, res, key, body: { chunks, trailers: req.rawTrailers } });
    });
    return true;
  }

  private want(w: Waiting): void {
    const { res } = w;
    this.seq = (this.seq + 1) % SEQ_LIMIT;
    const seq = this.seq;
    this.waiting.set(seq, w);
    // The key tells the arbiter the route is in use: its learned table keeps such routes through a flood (arbiter/lanes.ts).
    this.send({ t: 'lane-want', seq, key: w.key });
    res.once('close', () => {
      // Gone while queued: the arbiter drops it from the queue.
      if (this.waiting.get(seq) === w) {
        this.waiting.delete(seq);
        this.send({ t: 'lane-cancel', seq });
      }
    });
  }

  /** A request of `key` ran here (or on a slow worker) for `ms`, and was answered `status`. */
  observe(key: number, method: string, url: string, ms: number, status: number): void {
    const p = this.predictor;
    const was = p.predict(key);
    p.observe(key, ms, status >= 400);
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
        forward(this.os, m.path, laneId(this.os.pid, m.seq), w.req, w.res, w.body, this.buffer, (how, heldMs, failure) => {
          // At most a line a second: an app that answers badly on every request must not flood the log.
          if (failure !== undefined) this.failures.say('slow-lane-failure', `slow lane: ${routeKeyString(w.req.method!, w.req.url!)} ${failure}`);
          if (how === 'refused') {
            // Its slow worker is gone: the request waits again in the lane (arbiter/lanes.ts refused).
            this.waiting.set(m.seq, w);
            this.send({ t: 'lane-refused', seq: m.seq });
            return;
          }
          // Cut here (forward.ts): the slow worker may run on, and the arbiter asks it when it lets go.
          this.send({ t: how === 'cut' ? 'lane-cut' : 'lane-done', seq: m.seq });
          if (how === 'answered') this.observe(w.key, w.req.method!, w.req.url!, this.os.now() - t0 - heldMs, w.res.statusCode);
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

function tooLarge(res: ServerResponse, max: number): void {
  if (res.headersSent || res.destroyed) return;
  res.statusCode = 413;
  res.shouldKeepAlive = false; // the rest of the body is not read
  res.setHeader('content-type', 'text/plain');
  res.setHeader('connection', 'close');
  res.end(`Payload Too Large: a request to a slow route may carry at most ${max} bytes (slow_body_max)\n`);
}
