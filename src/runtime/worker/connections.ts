// Connections of one worker, so that a drain can finish every request in
// flight without ever closing a connection under a client that is about to
// reuse it.
//
// Two ways to stop:
// - gentle (a HUP replaced this worker, or it reached max_requests): every
//   response from now on says `Connection: close`, so each client learns on
//   its next answer to go elsewhere; idle connections are left to the
//   keep-alive timeout. No request can be cut off, because a connection is
//   only ever closed by a response the client is reading, or after it has
//   been idle for keep_alive.
// - firm (TERM): as gentle, and idle connections are closed at once; a
//   request racing the close may fail, which is what TERM asks for.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stream } from '../../os/types.js';

interface Conn {
  readonly open: Set<ServerResponse>; // requests received and not yet answered
  fresh: boolean; // no request yet: the worker's first-request timeout runs
}

export class Connections {
  private readonly conns = new Map<Stream, Conn>();
  private draining = false;
  private firm = false;
  private onEmpty: (() => void) | null = null;

  get size(): number {
    return this.conns.size;
  }

  get inflight(): number {
    let n = 0;
    for (const c of this.conns.values()) n += c.open.size;
    return n;
  }

  add(s: Stream): void {
    this.conns.set(s, { open: new Set(), fresh: true });
    s.once('close', () => {
      this.conns.delete(s);
      if (this.draining && this.conns.size === 0) this.onEmpty?.();
    });
    if (this.firm) s.destroy();
  }

  /** Called for every request before the app sees it. */
  request(req: IncomingMessage, res: ServerResponse): void {
    const s = req.socket as Stream;
    const c = this.conns.get(s);
    if (this.draining) res.shouldKeepAlive = false;
    if (!c) return;
    if (c.fresh) {
      // From here on Node's keep-alive timeout governs the idle time.
      c.fresh = false;
      s.setTimeout(0);
    }
    c.open.add(res);
    res.once('close', () => {
      c.open.delete(res);
      if (this.firm && c.open.size === 0) s.end();
    });
  }

  /** Resolves when the last connection has closed. */
  drain(firm: boolean): Promise<void> {
    this.draining = true;
    this.firm ||= firm;
    for (const [s, c] of this.conns) {
      // Answers not yet begun can still say Connection: close.
      for (const res of c.open) if (!res.headersSent) res.shouldKeepAlive = false;
      if (this.firm && c.open.size === 0) s.destroy();
    }
    return new Promise((resolve) => {
      if (this.conns.size === 0) resolve();
      else this.onEmpty = resolve;
    });
  }

  destroyAll(): void {
    for (const s of this.conns.keys()) s.destroy();
  }
}
