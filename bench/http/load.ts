// The load generator of bench/http: autocannon (one thread, keep-alive
// connections, one request in flight per connection), the same for every
// target, plus an exact account of every request that did not get a 2xx.
//
// Two things autocannon does not do by itself, added here through its
// setupClient hook and applied to every target alike:
//
// 1. Count requests lost with their connection. When a connection ends or
//    errors while a request is in flight, autocannon reconnects and sends a
//    new request; an ECONNRESET is counted in `errors`, but a request whose
//    connection the server closed (FIN) before answering is silently dropped
//    from the count (and its queue entry is matched to the next response,
//    skewing latency). Here every such request is a failure with its reason,
//    and the stale entry is discarded.
// 2. Honour `Connection: close` (RFC 9112 §9.6: a client that receives it
//    must not send further requests on that connection). autocannon as
//    shipped writes the next request on the closing connection regardless.
//    This matters only when a server closes connections under load — drover
//    does, to drain a worker gently on reload — and never in the steady state
//    of the throughput runs, where no response says close. `honorClose: false`
//    gives autocannon's own behaviour, for comparison.
//
// Latency percentiles are computed here from every response time autocannon
// reports (milliseconds, as floats), not from its integer histogram.
import autocannon from 'autocannon';
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

export interface LoadOptions {
  port: number;
  connections: number;
  durationSec: number;
  honorClose: boolean;
  /** Called every second with the seconds since the start. */
  onSecond?: (sec: number) => void;
}

export interface Failure {
  /** ms since the load started */
  readonly t: number;
  /** which of the connections (0-based) */
  readonly conn: number;
  readonly kind: string;
  /** worker pid that served this connection's last response, if any */
  readonly pid?: string;
}

export interface LoadResult {
  readonly durationSec: number;
  readonly sent: number;
  readonly ok: number; // 2xx responses
  readonly rps: number; // 2xx responses per second
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly non2xx: number;
  readonly timeouts: number;
  /** requests in flight on a connection that ended or errored */
  readonly lost: number;
  readonly failed: number; // non2xx + timeouts + lost
  readonly failures: readonly Failure[];
  /** autocannon's own counters, for reference */
  readonly autocannon: { errors: number; timeouts: number; non2xx: number; requestsTotal: number; requestsAverage: number };
  /** connections opened over the run (first ones included) */
  readonly connects: number;
  /** connections closed on the server's `Connection: close` (honorClose) */
  readonly closesHonoured: number;
  /** connections per worker pid, from the first response on each connection */
  readonly perWorker: Readonly<Record<string, number>>;
}

/** autocannon's Client internals used here (autocannon 9). */
interface AcClient extends EventEmitter {
  conn?: Socket;
  parser: { type: string; reinitialize(type: string): void };
  pipelinedRequests: { size(): number; clear(): void };
  _connect(): void;
  _doRequest(): void;
}

const PID = /worker (\d+)/;

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const t0 = performance.now();
  const lat: number[] = [];
  const failures: Failure[] = [];
  const perWorker: Record<string, number> = {};
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  let timeouts = 0;
  let lost = 0;
  let connects = 0;
  let closesHonoured = 0;
  let nextId = 0;

  const setupClient = (c: autocannon.Client): void => {
    const client = c as unknown as AcClient;
    for (const m of ['_connect', '_doRequest'] as const) {
      if (typeof client[m] !== 'function') throw new Error(`autocannon's Client has no ${m}: bench/http/load.ts needs updating for this autocannon version`);
    }
    if (typeof client.pipelinedRequests?.size !== 'function' || typeof client.parser?.reinitialize !== 'function') {
      throw new Error("autocannon's Client internals changed: bench/http/load.ts needs updating for this autocannon version");
    }
    const id = nextId++;
    let reason: string | null = null; // why the current connection is being replaced
    let closeAsked = false; // the last response said Connection: close
    let pid: string | undefined; // the worker that answered on this connection
    let firstBody = true;
    const fail = (kind: string) => failures.push({ t: Math.round(performance.now() - t0), conn: id, kind, ...(pid ? { pid } : {}) });

    client.on('request', () => sent++);
    client.on('headers', (info: { shouldKeepAlive?: boolean }) => {
      if (info.shouldKeepAlive === false) closeAsked = true;
    });
    client.on('body', (chunk: Buffer) => {
      if (!firstBody) return;
      firstBody = false;
      const m = PID.exec(chunk.toString('latin1'));
      if (m) {
        pid = m[1]!;
        perWorker[pid] = (perWorker[pid] ?? 0) + 1;
      }
    });
    client.on('response', (status: number, _bytes: number, ms: number) => {
      lat.push(ms);
      if (status >= 200 && status < 300) ok++;
      else {
        non2xx++;
        fail(`HTTP ${status}`);
      }
    });
    client.on('connError', (e: NodeJS.ErrnoException) => {
      reason = e.code ?? e.message;
    });
    client.on('timeout', () => {
      timeouts++;
      fail('timeout (no response within 10 s)');
    });

    const connect = client._connect.bind(client);
    client._connect = () => {
      const old = client.conn;
      if (old) {
        const inflight = client.pipelinedRequests.size();
        for (let i = 0; i < inflight; i++) {
          lost++;
          fail(reason ? `connection error ${reason} with the request unanswered` : 'connection closed by the server (FIN) with the request unanswered');
        }
        // Retire the old connection for good: no late 'error' or 'data' from
        // it may touch the new one (autocannon leaves its listeners on).
        old.removeAllListeners('data');
        old.removeAllListeners('end');
        old.removeAllListeners('error');
        old.on('error', () => {});
        old.destroy();
        if (inflight > 0) {
          // The connection died mid-exchange: the parser may hold half a response.
          client.pipelinedRequests.clear();
          client.parser.reinitialize(client.parser.type);
        }
      }
      reason = null;
      closeAsked = false;
      pid = undefined;
      firstBody = true;
      connects++;
      connect();
    };
    const doRequest = client._doRequest.bind(client);
    client._doRequest = () => {
      if (closeAsked && o.honorClose) {
        closeAsked = false;
        closesHonoured++;
        client._connect(); // a new connection; it sends the next request
        return;
      }
      doRequest();
    };
  };

  let timer: NodeJS.Timeout | undefined;
  if (o.onSecond) {
    let sec = 0;
    timer = setInterval(() => o.onSecond!(++sec), 1000);
  }
  let r: autocannon.Result;
  try {
    r = await autocannon({
      url: `http://127.0.0.1:${o.port}/`,
      connections: o.connections,
      pipelining: 1,
      duration: o.durationSec,
      timeout: 10,
      setupClient,
    });
  } finally {
    if (timer) clearInterval(timer);
  }
  const durationSec = r.duration;
  lat.sort((a, b) => a - b);
  const pct = (p: number) => (lat.length === 0 ? NaN : lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!);
  return {
    durationSec,
    sent,
    ok,
    rps: ok / durationSec,
    p50: pct(50),
    p99: pct(99),
    max: lat.length ? lat[lat.length - 1]! : NaN,
    non2xx,
    timeouts,
    lost,
    failed: non2xx + timeouts + lost,
    failures,
    autocannon: {
      errors: r.errors,
      timeouts: r.timeouts,
      non2xx: r.non2xx,
      requestsTotal: r.requests.total,
      requestsAverage: r.requests.average,
    },
    connects,
    closesHonoured,
    perWorker,
  };
}
