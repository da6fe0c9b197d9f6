// The admin listener (admin_bind): GET /metrics, /healthz and /readyz,
// served by the arbiter itself, so that it answers while every worker is
// busy, booting or gone. Nothing else is served (404; other methods 405).
//
// It is meant for a scraper and a load balancer's probe on a private
// address, but holds its clients to bounds anyway: at most MAX_CONNS open
// connections (more are closed at once), IDLE_MS of silence closes one, and
// a request head over 8 KiB is refused by node:http's own limit.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { formatAddr, isUnix, type Addr, type Listener, type Os, type Stream } from '../../os/types.js';

const MAX_CONNS = 32;
const IDLE_MS = 10_000;
export const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface AdminDeps {
  /** The /metrics body. */
  metrics(): Promise<string>;
  /** /readyz: at least one fast worker of the serving generation serves, and the arbiter is not stopping. */
  ready(): boolean;
}

export class Admin {
  private listener: Listener | null = null;
  private readonly conns = new Set<Stream>();
  private readonly server = createServer({ maxHeaderSize: 8192 }, (req, res) => void this.serve(req, res));

  constructor(private readonly os: Os, private readonly deps: AdminDeps) {
    this.server.keepAliveTimeout = 5000;
  }

  get address(): string | null {
    return this.listener === null ? null : formatAddr(this.listener.address);
  }

  async listen(addr: Addr): Promise<void> {
    const l = await this.os.listen(addr, isUnix(addr) ? { mode: 0o660 } : {});
    this.listener = l;
    l.accept((s) => {
      if (this.conns.size >= MAX_CONNS) {
        s.destroy();
        return;
      }
      this.conns.add(s);
      s.once('close', () => this.conns.delete(s));
      s.setTimeout(IDLE_MS, () => s.destroy());
      this.server.emit('connection', s);
    });
  }

  close(): void {
    this.listener?.close();
    this.listener = null;
    for (const s of this.conns) s.destroy();
    this.conns.clear();
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
