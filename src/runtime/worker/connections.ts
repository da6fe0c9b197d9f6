// Connections of one worker: how they are drained, and what a client may
// hold of them.
//
// Draining finishes every request in flight without ever closing a
// connection under a client that is about to reuse it. Two ways to stop:
// - gentle (a HUP replaced this worker, or it reached max_requests): the
//   last answer of each connection from now on says `Connection: close`, so
//   each client learns on its next answer to go elsewhere; idle connections
//   are left to the keep-alive timeout. No request can be cut off, because a
//   connection is only ever closed by a response the client is reading, or
//   after it has been idle for keep_alive.
// - firm (TERM): as gentle, and idle connections are closed at once (not one
//   whose next head has begun to come); a request racing the close may
//   fail, which is what TERM asks for.
//
// The last answer only: node:http runs every pipelined request it has read
// at once and queues their answers, and closes the connection after the
// first that says close, dropping the answers queued behind it though the
// app ran their requests. So the close goes on the newest request a
// connection has, and moves to a newer one as it comes; a request behind a
// close already on its way out (or the client's own, or keep_alive 0's) is
// never given to the app, as nginx and gunicorn never read past one.
//
// Deadlines (nginx's client_header_timeout, client_body_timeout and
// send_timeout). node:http's own headersTimeout and requestTimeout checks run
// only for a server that called listen(), which ours never does, and a socket
// idle timer is reset by every byte a slowloris sends; so the deadlines are
// drover's own, checked by one sweep a tick (a quarter of the shortest
// deadline, at most a second) over every connection: no timer per request.
// - head: once a byte of a request head has come, the whole head must come
//   within client_header_timeout of it (of the end of the previous answer on
//   keep-alive). A connection that sent nothing is idle, and the keep-alive
//   timeout's business. Past it: a 408 written straight to the socket (there
//   is no request to answer through), and the connection closes.
// - body: the newest request's body (only the newest can still be arriving:
//   the parser reads requests in order) must be whole within
//   client_body_timeout of its head, unless the app itself stopped reading
//   it (its buffer is full): then the wait is the app's. Past it: 408 if the
//   answer has not begun, else the connection closes.
// - send: a socket with bytes waiting in it that takes none of them for
//   send_timeout closes. Progress is seen as the waiting bytes draining, so
//   a single write larger than what the client reads in send_timeout counts
//   as no progress until it is gone (apps stream big answers in chunks).
//
// - request (request_timeout, off by default): an answer not begun this
//   long after its request came is a 504 with Connection: close, sent
//   through the response's own prototype methods; the app's later writes
//   to it go nowhere (its instance methods become no-ops, so an app that
//   writes its head late does not throw ERR_HTTP_HEADERS_SENT into its own
//   callback). The app's work is not stopped, only no longer waited for: a
//   worker stuck in it past `timeout` is killed by the heartbeat as ever.
//
// A slow worker holds none of this against its clients: they are fast
// workers, already holding their own clients to it, that send a request
// whole and take its answer as fast as their buffer allows.
//
// worker_connections: at the cap the worker first makes room by closing the
// oldest connection that has had a second to send its first request and has
// not (or, on keep-alive, has had a second to finish a head it began): an
// honest client's head is in the socket by the time it is accepted, so only
// a stalling one is ever closed this way (nginx closes idle connections the
// same way when it runs short; a slowloris also stalls). With no such
// connection, the worker stops accepting (the listeners pause: the backlog
// and the other workers take the rest) until one closes or becomes
// sheddable. Without this, an attacker holding more connections than all
// workers together take would keep every new client in the backlog for as
// long as client_header_timeout. A loop the app held (a synchronous second
// of work) may have an honest head waiting unread in the kernel while its
// connection looks stalled; so a timer of ours that ran late stops shedding
// until one runs on time (the loop has polled since, and read what was
// there).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Listener, Os, OsError, Stream, Timer } from '../../os/types.js';
import type { ClientLimits } from '../protocol.js';
import type { Throttle } from '../log.js';
import { hasBody, type Timed } from './timing.js';
import { planted } from '../../os/hooks.js';

interface Conn {
  readonly s: Stream;
  held: boolean; // its reading paused by us: PIPELINE_PAUSE of its requests run
  readonly owner: Connections;
  readonly open: Set<ServerResponse>; // requests received and not yet answered, in arrival order
  fresh: boolean; // no request yet: the worker's first-request timeout runs
  since: number; // waiting for a head since: the accept, or the end of the last answer
  mark: number; // bytesRead at `since`: more means a head has begun
  headAt: number; // the head's clock started at (-1: no byte yet)
  req: IncomingMessage | null; // the newest request, while its body may still be arriving
  headDone: number; // when the newest request's head was whole
  unsent: number; // s.writableLength at the last sweep
  stuckSince: number; // -1, or since when the socket has taken no byte
  drained: boolean; // a 'drain' since the last sweep
  last: ServerResponse | null; // the newest request's answer while open (answers close in order: none before it is open once it closed)
  closer: ServerResponse | null; // the answer a drain made say Connection: close (the newest when it came)
  closerKept: boolean; // its shouldKeepAlive before that
}

export type ClientTimeout = 'client_header_timeout' | 'client_body_timeout' | 'send_timeout' | 'request_timeout';

/** How long a connection at the cap may hold its place without a request. */
export const SHED_AFTER = 1000;
/** A timer this much past its time means the loop was held. */
const LATE = 100;

const TIMEOUT_BODY = 'Request Timeout\n';
const GATEWAY_BODY = 'Gateway Timeout\n';
const TIMEOUT_HEAD = `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${TIMEOUT_BODY.length}\r\n\r\n${TIMEOUT_BODY}`;

/**
 * A response's connection, for the one 'close' listener every response
 * shares: no closure per request. A field the worker's response class
 * declares (timing.ts), so that setting it does not change the object's shape.
 */
type Tracked = ServerResponse & { conn?: Conn | null };

function responseClosed(this: Tracked): void {
  const c = this.conn!;
  c.owner.closed(this, c);
}

export class Connections {
  private readonly conns = new Map<Stream, Conn>();
  private draining = false;
  private firm = false;
  private onEmpty: (() => void) | null = null;
  private readonly tick: number;
  private sweeper: Timer | null = null;
  private listeners: readonly Listener[] = [];
  private capped = false; // at worker_connections
  private starved = false; // out of descriptors, backing off
  private backoff = 0; // ms of the last pause for EMFILE; 0 once an accept worked
  private paused = false;
  private waking: Timer | null = null; // capped: when the oldest connection becomes sheddable
  private shed = 0; // closed to make room since the last log line
  private sweepDue = 0;
  private held = false; // our last timer ran late: reads may be waiting unread; no shedding until one runs on time
  /** Called once per timed-out connection (the worker logs and counts it). */
  onTimeout: (kind: ClientTimeout, s: Stream, doing: string) => void = () => {};
  /** Called as each request's response closes (answered or not). */
  onClosed: (res: ServerResponse, now: number) => void = () => {};
  /** Connections closed to make room at worker_connections, in all. */
  shedTotal = 0;

  constructor(
    private readonly os: Os,
    private readonly limits: ClientLimits | null, // null: a slow worker's
    private readonly say: Throttle,
  ) {
    const shortest = limits === null ? 0 : Math.min(limits.headerTimeout, limits.bodyTimeout, limits.sendTimeout, limits.requestTimeout > 0 ? limits.requestTimeout : Infinity);
    this.tick = limits === null ? 0 : Math.max(1, Math.min(1000, Math.floor(shortest / 4)));
  }

  get size(): number {
    return this.conns.size;
  }

  get inflight(): number {
    let n = 0;
    for (const c of this.conns.values()) n += c.open.size;
    return n;
  }

  /** The listeners to pause at worker_connections. */
  watch(listeners: readonly Listener[]): void {
    this.listeners = listeners;
  }

  add(s: Stream): void {
    const now = this.os.now();
    this.backoff = 0;
    const c: Conn = { s, held: false, owner: this, open: new Set(), fresh: true, since: now, mark: s.bytesRead, headAt: -1, req: null, headDone: 0, unsent: 0, stuckSince: -1, drained: false, last: null, closer: null, closerKept: false };
    this.conns.set(s, c);
    s.on('drain', () => (c.drained = true));
    // A reset or broken pipe closes the connection (node:http destroys it); the chaos run counts that this path ran.
    const heard = this.os.hooks.errorPath;
    if (heard) s.on('error', (e: { code?: unknown }) => heard('conn', typeof e.code === 'string' ? e.code : 'other'));
    s.once('close', () => {
      this.conns.delete(s);
      // Node 20 gives an answer queued behind another on a pipelined
      // connection (it has no socket yet) neither `destroyed` nor 'close'
      // when the connection dies: all that waits on its 'close' - its lane
      // slot, its access log line, its count, the app - would wait for ever.
      // It gets both here, as node:http gives them to the answer that has the
      // socket (onServerResponseClose); this listener runs before Node's.
      for (const res of c.open) {
        const r = res as Timed & { _closed?: boolean };
        if (r.socket !== null || r._closed === true) continue;
        r.cutOff = true;
        r.destroyed = true;
        r._closed = true;
        r.emit('close');
      }
      if (this.capped && this.conns.size < this.limits!.maxConnections) this.uncap();
      if (this.draining && this.conns.size === 0) this.onEmpty?.();
    });
    if (this.firm) s.destroy();
    if (this.limits === null) return;
    if (this.sweeper === null) this.arm(now);
    if (this.capped || this.conns.size < this.limits.maxConnections) return;
    if (this.held || !this.makeRoom(now)) this.cap(now);
  }

  private arm(now: number): void {
    this.sweepDue = now + this.tick;
    this.sweeper = this.os.timer(this.tick, this.sweep).unref();
  }

  /** A timer due at `due` ran at `now`: late means the loop was held, and reads may wait unread until it polls; on time clears that. */
  private late(now: number, due: number): boolean {
    this.held = now - due > LATE;
    return this.held;
  }

  /** Since when `c` has held its place without a request: -1 if it is serving one, or idle between requests (keep_alive's). */
  private stalledSince(c: Conn): number {
    if (c.open.size > 0 || c.s.destroyed) return -1;
    return c.fresh ? c.since : c.headAt;
  }

  /** Close the oldest connection stalled for SHED_AFTER, if there is one. */
  private makeRoom(now: number): boolean {
    for (const c of this.conns.values()) {
      const since = this.stalledSince(c);
      if (since < 0 || now - since < SHED_AFTER) continue;
      this.conns.delete(c.s); // its place is free now; the descriptor goes with the destroy
      c.s.destroy();
      this.shedTotal++;
      if (this.shed++ === 0) {
        this.os.timer(1000, () => {
          this.say.say('worker_connections', `worker ${this.os.pid} at worker_connections ${this.limits!.maxConnections}: closed ${this.shed} connection(s) that sent no whole request within ${SHED_AFTER / 1000}s, to make room`);
          this.shed = 0;
        }).unref();
      }
      return true;
    }
    return false;
  }

  private cap(now: number): void {
    this.capped = true;
    this.gate();
    this.say.say('worker_connections', `worker ${this.os.pid} holds ${this.conns.size} connections (worker_connections ${this.limits!.maxConnections}), none of them stalled: not accepting until one closes`);
    this.wake(now);
  }

  /** While capped: make room when the oldest connection without a request has stalled for SHED_AFTER. */
  private wake(now: number): void {
    let first = Infinity;
    for (const c of this.conns.values()) {
      const since = this.stalledSince(c);
      if (since >= 0 && since < first) first = since;
    }
    if (first === Infinity) return; // a close uncaps; a head begun on keep-alive is seen by the next sweep
    const due = Math.max(now + 1, first + SHED_AFTER);
    this.waking = this.os.timer(due - now, () => {
      this.waking = null;
      if (!this.capped) return;
      const at = this.os.now();
      if (!this.late(at, due) && this.makeRoom(at)) this.uncap();
      else this.wake(at);
    }).unref();
  }

  private uncap(): void {
    this.capped = false;
    this.waking?.cancel();
    this.waking = null;
    this.gate();
  }

  /**
   * accept(2) failed. Out of descriptors (EMFILE, ENFILE): keep serving
   * what is open, stop accepting, try again after a pause that doubles up
   * to 5 s (an accept that works starts it over). Never a crash, never a spin.
   */
  acceptFailed(e: OsError): void {
    if (e.code !== 'EMFILE' && e.code !== 'ENFILE') {
      this.say.say('accept', `worker ${this.os.pid}: accept failed: ${e.message}`);
      return;
    }
    this.os.hooks.errorPath?.('accept', e.code);
    if (this.starved) return;
    this.starved = true;
    this.backoff = this.backoff === 0 ? 100 : Math.min(this.backoff * 2, 5000);
    this.gate();
    this.say.say('emfile', `worker ${this.os.pid}: out of file descriptors (${e.code}) with ${this.conns.size} connections open: not accepting for ${this.backoff} ms; raise the limit (ulimit -n) or lower worker_connections`);
    if (planted(this.os.hooks, 'accept-never-resumes')) return;
    this.os.timer(this.backoff, () => {
      this.starved = false;
      this.gate();
    });
  }

  /** Listeners pause while capped or starved, and take connections again when neither holds. */
  private gate(): void {
    if (this.draining) return; // the listeners are closed
    const stop = this.capped || this.starved;
    if (stop === this.paused) return;
    this.paused = stop;
    for (const l of this.listeners) {
      if (stop) l.pause();
      else l.resume();
    }
  }

  /**
   * Called for every request before the app sees it; `at`: when its head was
   * whole. False: the app must not see this one: it came behind an answer
   * that closes its connection (node:http would drop its answer), or the
   * connection had more pipelined requests running than PIPELINE_MAX, and
   * is closed.
   */
  request(req: IncomingMessage, res: ServerResponse, at: number): boolean {
    const s = req.socket as Stream;
    const c = this.conns.get(s);
    if (!c) {
      if (this.draining) res.shouldKeepAlive = false;
      return true;
    }
    if (behindClose(c)) return false;
    c.last = res;
    if (this.draining) closeAfter(c, res);
    if (c.fresh) {
      // From here on Node's keep-alive timeout governs the idle time.
      c.fresh = false;
      s.setTimeout(0);
    }
    c.open.add(res);
    c.req = req.complete ? null : req;
    c.headDone = at;
    (res as Tracked).conn = c;
    res.on('close', responseClosed);
    if (c.open.size < PIPELINE_PAUSE) return true;
    const n = running(c);
    if (n > PIPELINE_MAX) {
      this.say.say('pipeline', `worker ${this.os.pid}: closed the connection of ${peer(s)}: ${n} pipelined requests running on it, more than ${PIPELINE_MAX}`);
      s.destroy();
      return false;
    }
    // Not while this request's body may still be coming: the app may be
    // waiting for it. The next request's head says it is all in, and checks again.
    if (n >= PIPELINE_PAUSE && (req.complete || !hasBody(req))) hold(c);
    return true;
  }

  /** A response closed (answered, or cut off), read once on the clock. */
  closed(res: ServerResponse, c: Conn): void {
    const now = this.os.now();
    this.onClosed(res, now);
    c.open.delete(res);
    if (c.last === res) c.last = null;
    if (c.closer === res) c.closer = null;
    if (c.held && running(c) < PIPELINE_PAUSE) release(c);
    if (c.open.size === 0) {
      c.since = now;
      c.mark = c.s.bytesRead;
      c.headAt = -1;
      if (this.firm) c.s.end();
    }
  }

  private readonly sweep = (): void => {
    if (planted(this.os.hooks, 'no-client-deadlines')) {
      this.sweeper = null;
      return;
    }
    const now = this.os.now();
    this.late(now, this.sweepDue);
    const { headerTimeout, bodyTimeout, sendTimeout, requestTimeout } = this.limits!;
    for (const c of this.conns.values()) {
      const s = c.s;
      if (s.destroyed) continue;
      // send: bytes wait in the socket and none of them leave
      const unsent = s.writableLength;
      if (unsent === 0 || unsent < c.unsent || c.drained) c.stuckSince = unsent === 0 ? -1 : now;
      else if (c.stuckSince < 0) c.stuckSince = now;
      c.unsent = unsent;
      c.drained = false;
      if (c.stuckSince >= 0 && now - c.stuckSince >= sendTimeout) {
        this.timedOut('send_timeout', c, `not reading an answer (${unsent} bytes waiting)`);
        s.destroy();
        continue;
      }
      if (c.open.size === 0) {
        // head: idle until a byte comes, then on the clock
        if (c.headAt < 0) {
          if (s.bytesRead === c.mark) continue;
          c.headAt = c.fresh ? now : c.since;
        }
        if (now - c.headAt >= headerTimeout) {
          this.timedOut('client_header_timeout', c, 'sending a request head');
          // Closed once the 408 has left; a client that does not take even that is cut off a tick later.
          s.end(TIMEOUT_HEAD, () => s.destroy());
          this.os.timer(this.tick, () => s.destroy()).unref();
        }
        continue;
      }
      if (requestTimeout > 0) this.overdue(c, now, requestTimeout);
      const req = c.req;
      if (req === null) continue;
      if (req.complete || req.destroyed) {
        c.req = null;
        continue;
      }
      if (now - c.headDone < bodyTimeout) continue;
      // The app stopped reading (its buffer is full, so node:http paused the socket): the wait is the app's.
      if (req.readableLength >= req.readableHighWaterMark) continue;
      c.req = null;
      this.timedOut('client_body_timeout', c, `sending the body of ${req.method} ${req.url}`);
      let res: ServerResponse | null = null;
      for (const r of c.open) res = r; // the newest request's answer
      if (res !== null && !res.headersSent && !res.writableEnded) {
        res.on('error', () => {}); // the app may still write to it: those writes go nowhere
        res.removeHeader('content-length');
        res.removeHeader('transfer-encoding');
        res.shouldKeepAlive = false;
        res.writeHead(408, { 'content-type': 'text/plain', 'content-length': String(TIMEOUT_BODY.length), connection: 'close' });
        res.end(TIMEOUT_BODY);
      } else {
        s.destroy();
      }
    }
    if (this.capped && this.waking === null) this.wake(now);
    if (this.conns.size > 0) this.arm(now);
    else this.sweeper = null;
  };

  /** request_timeout: answers not begun `limit` after their request came get a 504 (see the head of this file). */
  private overdue(c: Conn, now: number, limit: number): void {
    for (const res of c.open) {
      if (res.headersSent || res.writableEnded || now - (res as Timed).arrivedAt < limit) continue;
      const req = res.req;
      this.timedOut('request_timeout', c, `${req.method} ${req.url}: no answer begun after ${now - (res as Timed).arrivedAt} ms`);
      gatewayTimeout(res);
    }
  }

  private timedOut(kind: ClientTimeout, c: Conn, doing: string): void {
    this.onTimeout(kind, c.s, doing);
  }

  /** Resolves when the last connection has closed. */
  drain(firm: boolean): Promise<void> {
    this.draining = true;
    this.firm ||= firm;
    for (const [s, c] of this.conns) {
      // The newest answer, if not yet begun, can still say Connection: close; if begun, the next request will.
      const last = c.last;
      if (last !== null && !last.headersSent && last.shouldKeepAlive) closeAfter(c, last);
      // Idle: nothing asked, and no byte of a next head since the last answer (or the accept).
      if (this.firm && c.open.size === 0 && s.bytesRead === c.mark) s.destroy();
    }
    // A TERM during a gentle drain (a HUP's) drains again, firmly: both wait for the same end.
    return new Promise((resolve) => {
      if (this.conns.size === 0) return resolve();
      const before = this.onEmpty;
      this.onEmpty = () => {
        before?.();
        resolve();
      };
    });
  }

  destroyAll(): void {
    for (const s of this.conns.keys()) s.destroy();
  }
}

/** `res`, the newest of `c`, says Connection: close (a drain's), until a newer request takes that over. */
function closeAfter(c: Conn, res: ServerResponse): void {
  c.closer = res;
  c.closerKept = res.shouldKeepAlive;
  res.shouldKeepAlive = false;
}

/**
 * Whether a request arriving on `c` comes behind an answer that closes the
 * connection: one gone out (the socket is ended) or on its way (its head
 * sent), or the client's own close (or keep_alive 0's). A drain's close not
 * yet begun moves to the new request instead.
 */
function behindClose(c: Conn): boolean {
  if (c.s.writableEnded) return true;
  const last = c.last;
  if (last === null || last.shouldKeepAlive) return false;
  if (last !== c.closer || last.headersSent) return true;
  last.shouldKeepAlive = c.closerKept;
  c.closer = null;
  return !last.shouldKeepAlive;
}

/** Requests of `c` the app has not finished answering (ended answers may wait their turn behind them). */
function running(c: Conn): number {
  let n = 0;
  for (const res of c.open) if (!res.writableEnded) n++;
  return n;
}

// Pipelining: node:http runs every request a connection sends at once and
// queues the answers in order; it stops reading only when answers pile up
// unsent, so requests an app holds (a long poll, a slow route) piled up
// without bound, a few KiB each - 300,000 of them on one connection took a
// worker to 908 MiB. With PIPELINE_PAUSE of them running, the connection is
// read no further until one ends, the way node:http pauses it itself
// (socket._paused, which its parser honours at the end of the chunk it is
// in); a chunk already read can still hold many, so past PIPELINE_MAX the
// connection is closed (nginx and gunicorn run a connection's requests one
// at a time). Requests the app answers at once never count.
const PIPELINE_PAUSE = 16;
const PIPELINE_MAX = 256;

type Held = Stream & { _paused?: boolean; parser?: { pause(): void; resume(): void } | null };

/** Stops reading `c` (again: node:http resumes a socket it paused itself once its answers drain). */
function hold(c: Conn): void {
  const s = c.s as Held;
  c.held = true;
  if (s._paused === true || s.destroyed) return;
  s._paused = true;
  s.pause();
}

function release(c: Conn): void {
  const s = c.s as Held;
  c.held = false;
  // Node's own pause (answers not taken by the client) stays: it lifts it on the socket's 'drain'.
  if (s.destroyed || s.writableNeedDrain) return;
  s._paused = false;
  s.parser?.resume();
  s.resume();
}

/** The client of `s`, for log lines. */
export function peer(s: Stream): string {
  return s.remoteAddress === undefined ? 'a client' : `${s.remoteAddress}:${s.remotePort}`;
}

const ABANDONED = ['writeHead', 'setHeader', 'setHeaders', 'appendHeader', 'removeHeader', 'write', 'end', 'flushHeaders', 'addTrailers', 'writeContinue', 'writeProcessing', 'writeEarlyHints', 'setTimeout'] as const;

/** A 504 for an answer the app has not begun; what the app does with `res` afterwards goes nowhere. */
function gatewayTimeout(res: ServerResponse): void {
  const proto = Object.getPrototypeOf(res) as ServerResponse;
  res.on('error', () => {});
  res.shouldKeepAlive = false;
  for (const h of res.getHeaderNames()) if (h !== 'date') res.removeHeader(h); // the app's headers were for its own answer
  (proto.writeHead as (this: ServerResponse, code: number, headers: Record<string, string>) => void).call(res, 504, { 'content-type': 'text/plain', 'content-length': String(GATEWAY_BODY.length), connection: 'close' });
  (proto.end as (this: ServerResponse, body: string) => void).call(res, GATEWAY_BODY);
  (res as Timed).ownBytes += GATEWAY_BODY.length; // the access log's count, which the prototype's end skips
  const r = res as unknown as Record<string, unknown>;
  for (const m of ABANDONED) {
    r[m] = m === 'write' ? (...a: unknown[]) => (callLast(a), true) : (...a: unknown[]) => (callLast(a), res);
  }
}

/** A write's or end's callback still runs, as it would on a closed response, so an app waiting on it goes on. */
function callLast(args: unknown[]): void {
  const cb = args[args.length - 1];
  if (typeof cb === 'function') void Promise.resolve().then(() => (cb as (e?: Error) => void)());
}
