// An HTTP worker: loads the app, accepts from the listening sockets it was
// handed, and runs Node's own HTTP server over whatever streams the Os gives
// it (real sockets, or simulated ones). It reports booted / heartbeat /
// retiring to the arbiter and stops on the arbiter's word.
//
// Two roles (WorkerSpec.role). A fast worker takes the public connections;
// with lanes on it classifies each request and hands predicted-slow ones to
// the slow lane (fast-lane.ts). A slow worker serves only fast workers, on
// its own Unix socket, one request a connection; it never stops by itself at
// max_requests but says so and waits for the arbiter, which stops giving it
// requests and drains it once it is idle.
//
//   TERM         graceful, firm: stop accepting, finish requests in flight,
//                close idle keep-alive connections now
//   drain (msg)  graceful, gentle: the same, but idle connections are left
//                to the keep-alive timeout (see connections.ts) — a HUP and
//                max_requests use this so that no request is ever cut off
//   INT, QUIT    quick: close everything and exit
//   USR1         reopen log files
//   arbiter gone killed (the parent-death SIGKILL the arbiter spawns us with)
import { createServer, maxHeaderSize, type IncomingMessage, type ServerResponse } from 'node:http';
import { programs, type Listener, type Os, type Stream } from '../../os/types.js';
import { routeKey, routeKeyString } from '../lanes/route-key.js';
import { clientAddress } from '../client-addr.js';
import { accessLine, Logger, LogSink, Throttle } from '../log.js';
import { httpDate } from '../time-format.js';
import { EXIT_BOOT, SPARE, workerTitle, type ToArbiter, type ToWorker, type WorkerSpec } from '../protocol.js';
import { BootError, loadApp, type RequestListener } from './app.js';
import { Connections, peer } from './connections.js';
import { screen } from './screen.js';
import { answered, hasBody, notBefore, serverMs, timedResponse, wantsContinue, type Timed } from './timing.js';
import { Counters } from './counters.js';
import { FastLane } from './fast-lane.js';
import { SlowSide } from './slow-lane.js';
import { awaitGo } from './spare.js';
import { planted } from '../../os/hooks.js';

export async function worker(os: Os, args: readonly string[]): Promise<void> {
  const { spec, inbox } = args[0] === SPARE ? await awaitGo(os) : { spec: JSON.parse(args[0]!) as WorkerSpec, inbox: os.channel };
  os.setTitle(workerTitle(spec));
  const log = new Logger(os, new LogSink(os, spec.errorLog), spec.logLevel, { format: spec.logFormat, role: spec.role === 'slow' ? 'slow-worker' : 'worker' });
  const access = spec.accessLog === null ? null : new LogSink(os, spec.accessLog);
  const send = (m: ToArbiter) => os.channel?.send(m);
  const throttle = new Throttle(() => os.now(), (m) => log.info(m));
  const slowRole = spec.role === 'slow';
  const conns = new Connections(os, slowRole ? null : spec.clients, throttle);
  conns.onTimeout = (kind, s, doing) => {
    counters.timedOut(kind);
    if (kind === 'request_timeout') throttle.say(kind, `request_timeout (${spec.clients.requestTimeout / 1000}s): 504 to ${peer(s)} for ${doing}`);
    else throttle.say(kind, `${kind} (${spec.clients[LIMIT_OF[kind]] / 1000}s): closed ${peer(s)} ${doing}`);
  };
  // A slow worker's requests are counted by the fast workers that handed them over.
  if (!slowRole) {
    conns.onClosed = (res, now) => {
      if (answered(res)) counters.answered((res as Timed).lane, res.statusCode, now - (res as Timed).arrivedAt);
    };
  }
  const report = (t: 'hb' | 'stats') => {
    counters.sent();
    counters.c.shed = conns.shedTotal;
    const common = { inflight: conns.inflight, served, slow: lanes?.handed ?? 0, counters: slowRole ? null : counters.c };
    // The resident size (a read of /proc on Linux) goes with heartbeats only: a
    // stats report follows every 50 ms of traffic, and the arbiter keeps the last size.
    send(t === 'hb' ? { t, ...common, rss: os.rss(), busy: os.loopBusy() } : { t, ...common });
  };
  const counters = new Counters(os, () => report('stats'));
  const lanes = spec.role === 'fast' && spec.lanes ? new FastLane(os, spec.lanes, send, log) : null;
  const slowSide = slowRole ? new SlowSide(send, () => os.now()) : null;
  // A slow worker's socket is its own (it listens while the app loads, below).
  let listening: readonly Listener[] = os.listeners;
  let served = 0;
  let stopping = false;

  const quick = () => {
    for (const l of listening) l.close();
    conns.destroyAll();
    os.exit(0);
  };
  const stop = async (firm: boolean) => {
    if (stopping) {
      if (firm) await conns.drain(true);
      return;
    }
    stopping = true;
    for (const l of listening) l.close();
    os.timer(spec.gracefulTimeout, () => {
      log.warning(`graceful timeout: closing ${conns.size} connection(s) with ${conns.inflight} request(s) in flight`);
      quick();
    });
    await conns.drain(firm);
    // Exit from a callback of the Os's own, never from a detached promise:
    // the simulator unwinds exit() with an exception, which must land there.
    os.timer(0, () => os.exit(0));
  };

  os.onSignal('SIGTERM', () => stop(true));
  os.onSignal('SIGINT', quick);
  os.onSignal('SIGQUIT', quick);
  os.onSignal('SIGHUP', () => {}); // the arbiter reloads by replacing us
  os.onSignal('SIGUSR1', () => {
    log.sink.reopen();
    access?.reopen();
  });
  inbox?.onMessage((m) => {
    const msg = m as ToWorker;
    if (msg.t === 'drain') return stop(false);
    lanes?.message(msg);
    slowSide?.message(msg);
  });

  // A slow worker's listen (its socket copied through the arbiter, or on a
  // helper process without one) goes on while the app loads: a reload waits
  // for the slower of the two, not for their sum. A path it cannot take still fails the boot,
  // and is said before anything the app's load says.
  const lane = slowRole ? os.listen({ path: spec.laneSocket! }, { mode: 0o600 }).then((l): Listener | { failed: unknown } => l, (e: unknown) => ({ failed: e })) : null;
  os.hooks.appLoading?.(os.pid, true);
  const loaded = await loadApp(spec.app, { pid: os.pid, now: () => os.now(), sleep: (ms) => os.sleep(ms), burn: (ms) => os.burn(ms) }, (p) => os.importModule(p))
    .then((app): { app: RequestListener } | { failed: unknown } => ({ app }), (e: unknown) => ({ failed: e }));
  os.hooks.appLoading?.(os.pid, false);
  if (lane !== null) {
    const l = await lane;
    if ('failed' in l) {
      const message = `slow-lane worker cannot listen at ${spec.laneSocket}: ${l.failed instanceof Error ? l.failed.message : String(l.failed)}`;
      log.error(message);
      send({ t: 'boot-error', code: EXIT_BOOT, message });
      await os.sleep(20);
      os.exit(EXIT_BOOT);
    }
    listening = [l as Listener];
  }
  if ('failed' in loaded) {
    const e = loaded.failed;
    const code = e instanceof BootError ? e.code : EXIT_BOOT;
    const message = e instanceof Error ? e.message : String(e);
    log.error(message);
    os.hooks.appLoadFailed?.(os.pid, message);
    send({ t: 'boot-error', code, message });
    // Let the message leave before the process does.
    await os.sleep(20);
    os.exit(code);
  }
  const app = loaded.app;

  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown) => {
    log.error(`error handling ${req.method} ${req.url}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    try {
      // The app's headers were for its own answer, and may be what threw (a
      // Trailer on an answer that cannot carry one): the 500 goes without them.
      for (const h of res.getHeaderNames()) if (h !== 'date') res.removeHeader(h);
      res.statusCode = 500;
      res.statusMessage = '';
      res.setHeader('content-type', 'text/plain');
      res.end('Internal Server Error\n');
    } catch {
      res.destroy();
    }
  };

  const dated = dateHeader(os);
  // Planted defects are fixed for a run: looked up once, not per request.
  const answersTwice = planted(os.hooks, 'worker-answers-twice');
  const timesClient = planted(os.hooks, 'learn-client-time');
  const dropsRequests = planted(os.hooks, 'worker-drops-request');
  let dropCount = 0;
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (slowSide && !slowSide.take(req, res)) return;
    served++;
    res.sendDate = false;
    res.setHeader('date', dated());
    if (spec.keepAlive === 0) res.shouldKeepAlive = false; // keep_alive 0: one request per connection (before conns.request: none runs behind it)
    if (!conns.request(req, res, (res as Timed).arrivedAt)) return;
    // Before screening: what it refuses (two Host lines, a smuggling probe) is what an operator wants to see.
    if (access) logAccess(os, access, req, res, spec, lanes !== null);
    if (!screen(req, res)) return;
    if (answersTwice) {
      res.once('finish', () => req.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain'));
    }
    if (lanes) {
      const key = routeKey(req.method!, req.url!);
      if (lanes.take(key, req, res)) (res as Timed).lane = 1;
      else {
        // Learning counts the server's time only (timing.ts): not the upload, the client's reading, or pipelining.
        if (hasBody(req)) req.once('end', () => notBefore(res, os.now()));
        if (timesClient) {
          const t0 = os.now(); // the old way: the client's pace counted
          res.once('finish', () => lanes.observe(key, req.method!, req.url!, os.now() - t0, res.statusCode));
        } else {
          (res as Timed).routeKey = key;
          res.on('finish', learn);
        }
        proceed(req, res);
        run(req, res);
      }
    } else {
      proceed(req, res);
      run(req, res);
    }
    if (spec.maxRequests > 0 && served >= spec.maxRequests && !stopping) {
      send({ t: 'retiring', served });
      if (slowRole) return; // the arbiter drains it when no request is left on it
      log.info(`worker ${os.pid} served ${served} requests (max_requests): retiring`);
      void stop(false);
    }
  };

  /** The app runs here now: a client waiting for `100 Continue` gets it. */
  function proceed(req: IncomingMessage, res: ServerResponse): void {
    if (wantsContinue(req) && !res.headersSent) res.writeContinue();
  }

  // One listener for every response (no closure per request): the route key is on the response.
  function learn(this: Timed): void {
    const req = this.req;
    // A body that never came whole (a 408, or an answer that did not wait for it) times the client, not the app.
    if (req.complete) lanes!.observe(this.routeKey, req.method!, req.url!, serverMs(this), this.statusCode);
  }

  const run = (req: IncomingMessage, res: ServerResponse) => {
    if (dropsRequests && ++dropCount % 7 === 0) return;
    os.hooks.appCalled?.(os.pid, req, res);
    try {
      const r = app(req, res) as Promise<unknown> | undefined;
      if (r && typeof r.then === 'function') r.then(undefined, (e) => fail(req, res, e));
    } catch (e) {
      fail(req, res, e);
    }
  };

  // A slow worker's requests come from fast workers, which screened them; one
  // an HTTP/1.0 client sent without Host comes as HTTP/1.1 (node:http's client
  // writes that), and must not be refused for it; nor one whose head the fast
  // worker took whole, for the bytes the forward adds (it was a 431).
  const server = createServer({
    ServerResponse: timedResponse(() => os.now()),
    requireHostHeader: !slowRole,
    ...(slowRole ? { maxHeaderSize: 2 * maxHeaderSize } : {}),
  }, onRequest);
  // `Expect: 100-continue` (node:http would answer 100 before drover had
  // looked): 100 goes out only once the body is wanted - when the app is
  // about to run here, or a slow route's body is about to be read - so a
  // body over slow_body_max, or a request screen() refuses, is refused
  // before the client sends it.
  server.on('checkContinue', onRequest);
  server.keepAliveTimeout = spec.keepAlive;
  // A connection that never sends a request is closed after the keep-alive
  // time too; Node's own headersTimeout check only runs for servers that
  // called listen(), which ours never does.
  const firstRequestTimeout = spec.keepAlive > 0 ? spec.keepAlive : 5000;
  conns.watch(listening);
  // Drained while the app loaded (a reload committed before this worker, an
  // old generation's replacement, had booted): its listeners are closed, and
  // accept on a closed one throws. It has nothing to serve; stop() ends it.
  for (const l of stopping ? [] : listening) {
    l.accept((s: Stream) => {
      conns.add(s);
      server.emit('connection', s);
      // A slow worker's clients are fast workers, whose request may come late
      // when their own loop is held (an app burning on them): a fast worker
      // that dies closes its connections, and one that hangs is killed.
      if (!slowRole) s.setTimeout(firstRequestTimeout);
    }, (e) => conns.acceptFailed(e));
  }
  send({ t: 'booted' });
  log.info(`${slowRole ? 'slow-lane worker' : 'worker'} ${os.pid} booted (generation ${spec.generation})`);

  const beat = () => {
    report('hb');
    os.timer(spec.heartbeat, beat);
  };
  beat();
  if (planted(os.hooks, 'worker-timer-type-error')) {
    // A sweep that outlived what it swept: a TypeError of drover's own, in a timer.
    const stale = null as unknown as { sweep(): void };
    os.timer(250, () => stale.sweep());
  }
}

/**
 * The Date header from the Os clock, not node:http's own (host time, which
 * would leak into a simulated run); formatted once a second. Set before the
 * app runs, as node:http's own is: a subclass of ServerResponse that adds it
 * as the head is written was measured to cost a fifth of the throughput.
 * The price: Node 20 merges headers an app passes to writeHead as a raw
 * array by setHeader once any header is set, so duplicate names given that
 * way keep only the last (headers set with setHeader or as an object, the
 * common ways, are not affected; the slow lane forwards with setHeader).
 */
function dateHeader(os: Os): () => string {
  // Kept until the next second begins, as node:http keeps its own (utcDate):
  // no clock read per request.
  let date = '';
  const expire = () => {
    date = '';
  };
  return () => {
    if (date === '') {
      const wall = os.wallTime();
      date = httpDate(wall);
      os.timer(1000 - (wall % 1000), expire).unref();
    }
    return date;
  };
}

const LIMIT_OF = { client_header_timeout: 'headerTimeout', client_body_timeout: 'bodyTimeout', send_timeout: 'sendTimeout' } as const;

/** Counts the body bytes an app writes (only when there is an access log: it costs a wrapper per response). */
function countBody(res: ServerResponse): () => number {
  let bytes = 0;
  const size = (chunk: unknown, encoding?: unknown) =>
    typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : chunk instanceof Uint8Array ? chunk.byteLength : 0;
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    bytes += size(chunk, rest[0]);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof res.write;
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk !== 'function') bytes += size(chunk, rest[0]);
    return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as typeof res.end;
  return () => bytes;
}

/**
 * The status an access line gives a request whose answer never began: the
 * client went away first (nginx's 499), or drover closed its connection.
 */
const NO_ANSWER = 499;

function logAccess(os: Os, sink: LogSink, req: IncomingMessage, res: ServerResponse, spec: WorkerSpec, lanes: boolean): void {
  const start = os.wallTime();
  const t0 = os.now();
  const body = countBody(res);
  // Now: a connection that closes first has no address by the time its answers close.
  const remote = clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], spec.forwardedAllowIps);
  res.once('close', () => {
    sink.write(accessLine({
      remote,
      lane: lanes ? ((res as Timed).lane === 1 ? 'slow' : 'fast') : null,
      route: lanes ? routeKeyString(req.method ?? 'GET', req.url ?? '/') : null,
      start,
      method: req.method ?? '-',
      url: req.url ?? '-',
      httpVersion: req.httpVersion,
      status: answered(res) ? res.statusCode : NO_ANSWER,
      bytes: answered(res) ? body() + (res as Timed).ownBytes : null,
      referer: req.headers.referer,
      userAgent: req.headers['user-agent'],
      durationMs: os.now() - t0,
    }, spec.logFormat, os.pid));
  });
}

/**
 * The worker's programs, in a registry of this module's own: a worker process
 * imports this module's graph only, not the arbiter's or the companions'
 * (a third of a worker's boot on a small machine), and in a build, as one
 * file (cli/worker-entry.ts; scripts/bundle.mjs).
 */
export const workerPrograms = programs(import.meta.url, {
  worker,
  // The same code in its slow-lane role (WorkerSpec.role): its own name, so that ps and tests tell the two apart.
  'slow-worker': worker,
}, { entry: new URL('../../cli/worker-entry.js', import.meta.url).href });
