// What a request cost the server, for the lanes to learn from: never the
// time spent waiting on its client. A client decides how long its upload
// takes, how fast it reads, and how many requests it pipelines ahead of this
// one; if any of that counted, one client could mark any route slow and,
// with the slow lane's few slots, shut the route out for everyone.
//
// The clock of a request starts when the app has it and nothing of the
// client's stands in the way: its head has come ('request') and its body has
// come (when the app reads it: 'end'). It stops when the app ends its answer
// (end() is called), not when the answer has left: the client's reading is
// not the app's work, and neither is the wait of a pipelined answer for the
// ones before it (node:http holds it until they are done; its app ran and
// ended long before). Less the time the app spent blocked on a socket the
// client did not drain (a write that returned false, until 'drain': an
// answer queued behind pipelined ones says false too). An app that works
// while its request waits counts less than it spent, never more: a route is
// marked slow only by what the server did.
import { ServerResponse, type IncomingMessage } from 'node:http';

export interface Timed extends ServerResponse {
  /** When the request came (its head was whole): what request_timeout and the duration metric count from. */
  readonly arrivedAt: number;
  /** 0: answered by this worker; 1: by the slow lane. */
  lane: 0 | 1;
  /** When the app had the request with nothing of the client's in the way. */
  startAt: number;
  /** When the app ended its answer (-1: not yet). */
  endedAt: number;
  /** ms the app spent blocked on a full socket. */
  blocked: number;
  /** The request's route key, for the lanes' 'finish' listener (worker.ts). */
  routeKey: number;
  /** Body bytes drover wrote in the app's place (request_timeout's 504), past the app's own write and end. */
  ownBytes: number;
  /** Its connection closed while it waited its turn behind a pipelined answer: nothing of it went out. */
  cutOff: boolean;
}

/** Did any of the answer go out? A head written into an answer that never had its turn on the connection did not. */
export function answered(res: ServerResponse): boolean {
  return res.headersSent && !(res as Timed).cutOff;
}

/** A ServerResponse class that keeps the times above, on the clock `now` (one class per worker: no shared state between simulated processes). */
export function timedResponse(now: () => number): typeof ServerResponse {
  class TimedResponse extends ServerResponse implements Timed {
    // Set in the constructor, not by initializers: class fields are defined
    // one by one through a function of their own, a cost on every request.
    declare startAt: number;
    declare readonly arrivedAt: number;
    declare lane: 0 | 1;
    declare endedAt: number;
    declare blocked: number;
    declare routeKey: number;
    declare ownBytes: number;
    declare cutOff: boolean;
    /** The connection's record (connections.ts), set as the request arrives. */
    declare conn: unknown;
    declare private blockedAt: number;

    constructor(req: IncomingMessage) {
      super(req);
      (this as { arrivedAt: number }).arrivedAt = now();
      this.startAt = this.arrivedAt;
      this.lane = 0;
      this.endedAt = -1;
      this.blocked = 0;
      this.routeKey = 0;
      this.ownBytes = 0;
      this.cutOff = false;
      this.conn = null;
      this.blockedAt = -1;
    }

    // A method, not a bound field: a response that never blocks (nearly all) makes no closure.
    unblock(): void {
      if (this.blockedAt < 0) return;
      this.blocked += now() - this.blockedAt;
      this.blockedAt = -1;
    }

    /** A write the socket could not take: the app is blocked on the client until 'drain'. */
    wrote(ok: boolean): boolean {
      if (!ok && this.blockedAt < 0 && this.endedAt < 0) {
        this.blockedAt = now();
        this.once('drain', unblock);
      }
      return ok;
    }

    override end(...args: unknown[]): this {
      if (this.endedAt < 0) {
        this.endedAt = now();
        if (this.blockedAt >= 0) this.unblock();
      }
      return (super.end as (...a: unknown[]) => this)(...args);
    }
  }
  function unblock(this: TimedResponse): void {
    this.unblock();
  }
  // write has overloads a subclass method cannot restate; the prototype takes a plain function.
  const write = ServerResponse.prototype.write as (...a: unknown[]) => boolean;
  (TimedResponse.prototype as unknown as { write: (...a: unknown[]) => boolean }).write = function (this: TimedResponse, ...a: unknown[]) {
    return this.wrote(write.apply(this, a));
  };
  return TimedResponse as unknown as typeof ServerResponse;
}

/** The request's clock may start no earlier than `t` (its body came). */
export function notBefore(res: ServerResponse, t: number): void {
  const r = res as Timed;
  if (r.startAt < t) r.startAt = t;
}

/** ms of server work for a request whose answer has ended. */
export function serverMs(res: ServerResponse): number {
  const r = res as Timed;
  return r.endedAt < 0 ? 0 : Math.max(0, r.endedAt - r.startAt - r.blocked);
}

/** Whether a request carries a body (whose arrival the app may wait for). */
export function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/**
 * Whether the client waits for `100 Continue` before its body: an HTTP/1.1
 * request that asks for it, as node:http decides (RFC 9110 10.1.1: a 1.0
 * client is never sent a 1xx, and another expectation is no such request).
 */
export function wantsContinue(req: IncomingMessage): boolean {
  const e = req.headers.expect;
  return e !== undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && CONTINUE.test(e);
}

const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;
