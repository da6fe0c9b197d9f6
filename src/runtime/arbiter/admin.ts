// The admin listener (admin_bind): GET /metrics, /healthz and /readyz,
// served by the arbiter itself, so that it answers while every worker is
// busy, booting or gone. Nothing else is served (404; other methods 405).
//
// It is meant for a scraper and a load balancer's probe on a private
// address, but holds its clients to bounds anyway, so that a client that
// can reach it cannot keep the probes from being answered:
// - a connection must bring a whole request within REQUEST_MS of its accept
//   or of its last answer, on a timer of ours: node:http's own head timeouts
//   never run for a server fed connections, and a socket's idle timeout is
//   reset by every byte a trickled head sends;
// - one request at a time: a connection that pipelines is closed (node:http
//   would run and buffer every request of a read at once, a /metrics body
//   each: 2,000 of them took the arbiter to 700 MB);
// - at most MAX_CONNS connections: at the cap the oldest one with no request
//   running is closed to make room (a probe's head comes with its connect;
//   an idle or trickling client's does not), and only when every one is
//   running a request is the newcomer closed;
// - a request head over 8 KiB is refused by node:http's own limit.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { formatAddr, isUnix, type Addr, type Listener, type Os, type Stream, type Timer } from '../../os/types.js';

const MAX_CONNS = 32;
const REQUEST_MS = 5000;

interface Conn {
  readonly s: Stream;
  /** Closes it if no whole request comes in time; null while a request runs. */
  deadline: Timer | null;
  since: number;
}
export const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface AdminDeps {
  /** The /metrics body. */
  metrics(): Promise<string>;
  /** /readyz: at least one fast worker of the serving generation serves, and the arbiter is not stopping. */
  ready(): boolean;
}

export class Admin {
  private listener: Listener | null = null;
  /** Where it was asked to listen (kept after close, to listen there again). */
  at: Addr | null = null;
  private readonly conns = new Map<Stream, Conn>();
  private readonly server = createServer({ maxHeaderSize: 8192 }, (req, res) => this.request(req, res));

  constructor(private readonly os: Os, private readonly deps: AdminDeps) {
    this.server.keepAliveTimeout = 5000;
  }

  get address(): string | null {
    return this.listener === null ? null : formatAddr(this.listener.address);
  }

  async listen(addr: Addr): Promise<void> {
    const l = await this.os.listen(addr, isUnix(addr) ? { mode: 0o660 } : {});
    this.listener = l;
    this.at = addr;
    l.accept((s) => {
      if (this.conns.size >= MAX_CONNS && !this.makeRoom()) {
        s.destroy();
        return;
      }
      const c: Conn = { s, deadline: null, since: this.os.now() };
      this.conns.set(s, c);
      this.arm(c);
      s.once('close', () => {
        c.deadline?.cancel();
        this.conns.delete(s);
      });
      this.server.emit('connection', s);
    });
  }

  close(): void {
    this.listener?.close();
    this.listener = null;
    for (const c of this.conns.values()) {
      c.deadline?.cancel();
      c.s.destroy();
    }
    this.conns.clear();
  }

  private arm(c: Conn): void {
    c.since = this.os.now();
    c.deadline = this.os.timer(REQUEST_MS, () => c.s.destroy()).unref();
  }

  /** Closes the connection waiting longest for a request; false if every one is running a request. */
  private makeRoom(): boolean {
    let oldest: Conn | null = null;
    for (const c of this.conns.values()) if (c.deadline !== null && (oldest === null || c.since < oldest.since)) oldest = c;
    if (oldest === null) return false;
    oldest.deadline!.cancel();
    this.conns.delete(oldest.s);
    oldest.s.destroy();
    return true;
  }

  private request(req: IncomingMessage, res: ServerResponse): void {
    const c = this.conns.get(req.socket as Stream);
    if (c === undefined) return void req.socket.destroy(); // closed to make room as its head came
    if (c.deadline === null) return void c.s.destroy(); // pipelined behind a running request
    c.deadline.cancel();
    c.deadline = null;
    res.once('close', () => {
      if (!c.s.destroyed && this.conns.has(c.s)) this.arm(c);
    });
    void this.serve(req, res);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') return send(404, 'text/plain', 'Not Found: this is drover\'s admin listener; it serves /metrics, /healthz and /readyz\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'Method Not Allowed\n', { allow: 'GET, HEAD' });
    if (path === '/healthz') return send(200, 'text/plain', 'ok\n');
    if (path === '/readyz') return this.deps.ready() ? send(200, 'text/plain', 'ready\n') : send(503, 'text/plain', 'not ready\n');
    try {
      send(200, METRICS_TYPE, await this.deps.metrics());
    } catch (e) {
      send(500, 'text/plain', `metrics failed: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
}
