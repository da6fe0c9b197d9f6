// The two clients of bench/mixed, both in this process.
//
// Fast load: open loop at a fixed rate, the way wrk2 measures (it avoids
// coordinated omission). Request i is due at t0 + i / rate whatever happened
// to the earlier ones, and goes on keep-alive connection i mod C; a
// connection carries one request at a time (no pipelining), so a request due
// while its connection still waits for an answer waits for it, and its
// latency is counted from the moment it was due, not from the moment it
// could be written. A server that stalls for 200 ms thus shows every request
// that fell due meanwhile with the part of the 200 ms it waited, as its users
// would see it; a closed-loop client (autocannon's default, one request in
// flight per connection) would send nothing during the stall and count one
// slow request. `sendLag` is how late this process itself issued requests
// (timer lateness, its own CPU starvation): it is part of the latencies
// reported, so it is shown beside them.
//
// Slow client: one loop, one request at a time, each on a new connection
// (`Connection: close`), so that a server whose workers accept the
// connections themselves picks the worker for each request afresh, and no
// single keep-alive connection pins every slow request to one worker for the
// whole run.
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { Conn as HttpConn } from '../../src/chaos/client.js';
import type { Stream } from '../../src/os/types.js';

export interface FastOptions {
  port: number;
  path: string;
  /** requests per second, due at a fixed spacing */
  rate: number;
  connections: number;
  durationMs: number;
  /** requests still unanswered this long after the last one was due are failures */
  timeoutMs: number;
  /** called once, when every connection has had its first answer */
  onConnected?: () => void;
}

export interface FastResult {
  /** requests due over the run (rate x duration) */
  readonly scheduled: number;
  /** ms from the first request due to the last answer (or failure) */
  readonly elapsedMs: number;
  readonly ok: number;
  /** requests that did not get a 2xx, by reason */
  readonly failed: Readonly<Record<string, number>>;
  readonly failedTotal: number;
  /** ms from due to the end of the answer, of the 2xx ones, sorted */
  readonly latencies: Float64Array;
  /** ms from due to the request being issued by this process, sorted */
  readonly sendLag: Float64Array;
  /** 2xx answers per worker pid (from the body) */
  readonly perWorker: Readonly<Record<string, number>>;
  /** the worker pid behind each connection's first answer */
  readonly connWorker: readonly (string | null)[];
  /** latencies of the 2xx answers (as `latencies`), by the worker pid that answered */
  readonly byWorker: Readonly<Record<string, Float64Array>>;
  /** connections opened (C at the start; more only if the server closed some) */
  readonly connects: number;
}

export interface SlowResult {
  /** ms from the first request to the end of the last answer */
  readonly elapsedMs: number;
  readonly done: number; // 2xx answers
  readonly failed: Readonly<Record<string, number>>;
  readonly failedTotal: number;
  /** ms from sending to the end of the answer, of the 2xx ones, sorted */
  readonly latencies: Float64Array;
  /** 2xx answers per pid that ran the route */
  readonly perWorker: Readonly<Record<string, number>>;
  /** answers that came from the same pid as the answer before */
  readonly repeats: number;
}

const PID = /worker (\d+)/;

/** One GET; resolves with status and body, or rejects. */
function get(port: number, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.end();
  });
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.message === 'timeout') return 'no answer in time';
  return err?.code ?? err?.message ?? String(e);
}

/**
 * One keep-alive connection of the fast load: the chaos runs' minimal
 * HTTP/1.1 client (src/chaos/client.ts) on a raw socket, a tenth of
 * node:http's client CPU per request, so that the load generator takes as
 * little as it can of the CPUs it shares with the servers. One request on the
 * wire at a time; the others wait here in order. A connection the server
 * closes is opened again for what waits.
 */
class Conn {
  private http: HttpConn | null = null;
  private inflight: { due: number } | null = null;
  private readonly waiting: { due: number }[] = [];
  private head = 0;

  constructor(
    private readonly port: number,
    private readonly path: string,
    private readonly done: (due: number, status: number, body: string) => void,
    private readonly failed: (due: number, why: string) => void,
    private readonly onConnect: () => void,
  ) {}

  send(due: number): void {
    this.waiting.push({ due });
    if (this.inflight === null) this.next();
  }

  /** Fails everything not answered, and closes. */
  abort(why: string): void {
    const inflight = this.inflight;
    this.inflight = null;
    if (inflight) this.failed(inflight.due, why);
    for (let i = this.head; i < this.waiting.length; i++) this.failed(this.waiting[i]!.due, why);
    this.waiting.length = this.head = 0;
    this.http?.destroy();
    this.http = null;
  }

  private next(): void {
    if (this.head === this.waiting.length) {
      this.waiting.length = this.head = 0;
      return;
    }
    const job = (this.inflight = this.waiting[this.head++]!);
    // A connection the server said Connection: close on, or that went, is done: what waits goes on a new one.
    if (this.http === null || !this.http.idle) this.http = this.open();
    this.http.get(this.path, true, {
      end: (o) => {
        if (this.inflight !== job) return; // aborted meanwhile
        this.inflight = null;
        if ('reset' in o) this.failed(job.due, o.reset);
        else this.done(job.due, o.status, o.body.toString());
        this.next();
      },
    });
  }

  private open(): HttpConn {
    this.onConnect();
    const connecting = new Promise<Stream>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: this.port });
      s.setNoDelay(true);
      s.once('connect', () => resolve(s as unknown as Stream));
      s.once('error', (e: NodeJS.ErrnoException) => reject(e));
    });
    // What no correct server sends (a stray answer, broken framing) drops the connection, and the
    // request on it ends as a reset: counted as failed like any other.
    return new HttpConn(connecting, () => {});
  }
}

export async function fastLoad(o: FastOptions): Promise<FastResult> {
  const interval = 1000 / o.rate;
  const total = Math.round((o.durationMs / 1000) * o.rate);
  const lat: number[] = [];
  const lag: number[] = [];
  const failed: Record<string, number> = {};
  const perWorker: Record<string, number> = {};
  let ok = 0;
  let settled = 0;
  let connects = 0;
  let allSettled: () => void = () => {};
  const finished = new Promise<void>((r) => (allSettled = r));
  let lastAt = 0;
  const settle = () => {
    lastAt = performance.now();
    if (++settled === total) allSettled();
  };
  const conns: Conn[] = [];
  const connWorker: (string | null)[] = [];
  const answered: boolean[] = [];
  let connected = 0;
  const latBy: Record<string, number[]> = {};
  for (let c = 0; c < o.connections; c++) {
    connWorker.push(null);
    answered.push(false);
    conns.push(new Conn(
      o.port,
      o.path,
      (due, status, body) => {
        if (status >= 200 && status < 300) {
          ok++;
          lat.push(performance.now() - due);
          const m = PID.exec(body);
          if (m) {
            perWorker[m[1]!] = (perWorker[m[1]!] ?? 0) + 1;
            (latBy[m[1]!] ??= []).push(lat[lat.length - 1]!);
            if (connWorker[c] === null) connWorker[c] = m[1]!;
          }
        } else failed[`HTTP ${status}`] = (failed[`HTTP ${status}`] ?? 0) + 1;
        if (!answered[c]) {
          answered[c] = true;
          if (++connected === o.connections) o.onConnected?.();
        }
        settle();
      },
      (_due, why) => {
        failed[why] = (failed[why] ?? 0) + 1;
        settle();
      },
      () => connects++,
    ));
  }

  const t0 = performance.now() + 5;
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + i * interval <= now) {
        const due = t0 + i * interval;
        lag.push(now - due);
        conns[i % o.connections]!.send(due);
        i++;
      }
      if (i < total) setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
      else resolve();
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  // Every request is answered, or fails after the timeout (counted from the last one due).
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([finished, new Promise<void>((r) => (timer = setTimeout(r, o.timeoutMs)))]);
  clearTimeout(timer);
  for (const c of conns) c.abort('no answer in time');
  const failedTotal = Object.values(failed).reduce((x, y) => x + y, 0);
  return {
    scheduled: total,
    elapsedMs: Math.max(0, lastAt - t0),
    ok,
    failed,
    failedTotal,
    latencies: Float64Array.from(lat).sort(),
    sendLag: Float64Array.from(lag).sort(),
    perWorker,
    connWorker,
    byWorker: Object.fromEntries(Object.entries(latBy).map(([p, xs]) => [p, Float64Array.from(xs).sort()])),
    connects,
  };
}

/** The slow client: GET `path` on a new connection, one at a time, until stop() has been called; the request in flight then completes. */
export function slowLoop(port: number, path: string, timeoutMs: number): { stop(): Promise<SlowResult> } {
  let stopping = false;
  const lat: number[] = [];
  const failed: Record<string, number> = {};
  const perWorker: Record<string, number> = {};
  let done = 0;
  let repeats = 0;
  let last = '';
  const t0 = performance.now();
  let t1 = t0;
  const loop = (async () => {
    while (!stopping) {
      const t = performance.now();
      try {
        const { status, body } = await get(port, path, timeoutMs);
        if (status >= 200 && status < 300) {
          done++;
          lat.push(performance.now() - t);
          const m = PID.exec(body);
          if (m) {
            perWorker[m[1]!] = (perWorker[m[1]!] ?? 0) + 1;
            if (m[1] === last) repeats++;
            last = m[1]!;
          }
        } else failed[`HTTP ${status}`] = (failed[`HTTP ${status}`] ?? 0) + 1;
      } catch (e) {
        failed[reason(e)] = (failed[reason(e)] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 10)); // no tight loop on a dead server
      }
    }
    t1 = performance.now();
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      return {
        elapsedMs: t1 - t0,
        done,
        failed,
        failedTotal: Object.values(failed).reduce((x, y) => x + y, 0),
        latencies: Float64Array.from(lat).sort(),
        perWorker,
        repeats,
      };
    },
  };
}

/** The p-th percentile (0..100) of sorted values: the smallest value with at least p % of them at or below it. */
export function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
