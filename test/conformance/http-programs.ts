// Node's own HTTP server and client over Os streams, the way drover's
// workers will run them: a child accepts on a listener it was handed and
// feeds each stream to `http.createServer(...)` with emit('connection'); the
// parent is the client, with http.request over os.connect streams. The same
// programs run on the real OS and in the simulator.
//
// Host time inside node:http, and why none of it reaches a simulated run:
// - The Date header is `new Date()` (cached for up to a second by an unref'd
//   host timer), from Node's primordials, so no fake clock reaches it. Its
//   length is fixed, so a trace, which records byte counts, does not change
//   (test/sim/http.test.ts shows it); its text would, so every response here
//   has `sendDate = false`, and raw headers compare byte for byte.
// - headersTimeout/requestTimeout are enforced by an interval that only
//   server.listen() starts; we never listen, so they do not apply at all
//   (and closeIdleConnections/closeAllConnections do nothing: the
//   connection list is made by listen too).
// - keepAliveTimeout and every other socket timeout go through
//   stream.setTimeout: virtual time in the simulator.
// - Parsers are recycled through a host-wide free list, and freed past it
//   with a host setImmediate; neither is observable.
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { programs, type Addr, type Child, type Listener, type Os, type Timer } from '../../src/os/types.js';
import { emit, reap, until } from '../support/os.js';
import { OsAgent, viaOs } from '../support/http.js';

const CHUNKS = ['part-0\n', 'part-1\n', 'part-2\n', 'part-3\n'];
const FIXED = bytes(10_000, 31);
const POST_CHUNK = 64 * 1024;
const POST_CHUNKS = 16; // 1 MiB

/** `n` bytes that are not all alike: i * k mod 251. */
function bytes(n: number, k: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * k) % 251;
  return b;
}

// ------------------------------------------------------------------ server

/** The worker: `args[0]` is the server options as JSON. Reports to its parent over the channel; 'bye' ends it. */
function httpServer(os: Os, args: readonly string[]): void {
  const report = (m: unknown) => os.channel!.send(m);
  const conns = new WeakMap<Duplex, { id: number; seq: number }>();
  let nextConn = 0;
  const server = http.createServer(JSON.parse(args[0] ?? '{}') as http.ServerOptions, (req, res) => {
    res.sendDate = false; // the Date header is host time; see the top of this file
    const conn = conns.get(req.socket)!;
    conn.seq++;
    switch (req.url) {
      case '/seq':
        res.end(JSON.stringify({ conn: conn.id, seq: conn.seq }));
        return;
      case '/keep': {
        // An explicit Connection header suppresses Node's `Keep-Alive:
        // timeout=0` hint (200 ms rounds down to 0 s), which would make the
        // client's Agent drop the socket itself: here the server must be
        // the one that closes it.
        res.setHeader('Connection', 'keep-alive');
        res.end(JSON.stringify({ conn: conn.id, seq: conn.seq }));
        return;
      }
      case '/chunked': {
        res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Checksum' });
        let i = 0;
        const next = () => {
          if (i < CHUNKS.length) {
            res.write(CHUNKS[i++]);
            os.timer(5, next);
            return;
          }
          res.addTrailers({ 'X-Checksum': String(CHUNKS.join('').length) });
          res.end();
        };
        next();
        return;
      }
      case '/fixed':
        res.writeHead(203, 'Made Up', { 'Content-Length': FIXED.length, 'X-Kind': 'fixed' });
        res.end(FIXED);
        return;
      case '/echo':
        res.writeHead(200, { 'Content-Length': req.headers['content-length'] });
        req.pipe(res);
        return;
      case '/forever': {
        // Streams until the client goes away; reports what it saw then.
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        let timer: Timer | null = null;
        const tick = () => {
          res.write(Buffer.alloc(1024, 120));
          timer = os.timer(10, tick);
        };
        let aborted = false;
        req.on('aborted', () => (aborted = true));
        res.on('close', () => {
          timer?.cancel();
          report({ closed: { finished: res.writableFinished, aborted, socketDestroyed: req.socket.destroyed } });
        });
        tick();
        return;
      }
      case '/hang':
        // Never answers: the parent kills us in the middle of it.
        report({ hanging: true });
        return;
      default:
        res.writeHead(404).end();
    }
  });
  os.listeners[0]!.accept((s) => {
    conns.set(s, { id: ++nextConn, seq: 0 });
    s.on('close', () => report({ connClosed: conns.get(s)!.id }));
    server.emit('connection', s);
  });
  os.channel!.onMessage((m) => {
    if (m === 'bye') os.exit(0);
  });
  report({ ready: true });
}

// ------------------------------------------------------------------ client

interface Server {
  readonly addr: Addr;
  readonly listener: Listener;
  readonly child: Child;
  /** The server's first unclaimed report that has `key`. */
  report(key: string, timeout?: number): Promise<any>;
  stop(): Promise<void>;
}

async function startServer(os: Os, options: http.ServerOptions = {}): Promise<Server> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  const child = os.spawn({ program: 'http-server', args: [JSON.stringify(options)], listeners: [l] });
  const reports: Record<string, unknown>[] = [];
  child.channel!.onMessage((m) => reports.push(m as Record<string, unknown>));
  const srv: Server = {
    addr: l.address,
    listener: l,
    child,
    async report(key, timeout = 10_000) {
      let found: Record<string, unknown> | undefined;
      if (!(await until(os, () => (found = reports.find((r) => key in r)) !== undefined, timeout))) throw new Error(`no ${key} report within ${timeout} ms`);
      reports.splice(reports.indexOf(found!), 1);
      return found![key];
    },
    async stop() {
      child.channel!.send('bye');
      await reap(os, child.pid);
      l.close();
    },
  };
  await srv.report('ready');
  return srv;
}

interface Reply {
  status: number;
  message: string;
  raw: string[];
  body: Buffer;
  trailers: NodeJS.Dict<string>;
  reused: boolean;
}

/**
 * One request. Without an agent, `createConnection` alone (agent left
 * undefined): `agent: false` makes Node build a default Agent, which
 * ignores createConnection and dials the host's real network.
 */
function request(os: Os, addr: Addr, opts: http.RequestOptions & { agent?: http.Agent }, body?: (req: http.ClientRequest) => void): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...opts, ...(opts.agent ? {} : { createConnection: viaOs(os, addr) }) }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode!, message: res.statusMessage!, raw: res.rawHeaders, body: Buffer.concat(parts), trailers: res.trailers, reused: req.reusedSocket }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body(req);
    else req.end();
  });
}

/**
 * (a) Several requests over one keep-alive connection, answered in order.
 * The first goes alone: an Agent counts a socket only once createConnection
 * has handed it over, so requests made while an asynchronous connect is
 * pending would each dial their own, whatever maxSockets says. The other
 * four then queue in the Agent and take the free socket in turn.
 */
async function httpKeepAlive(os: Os): Promise<void> {
  const srv = await startServer(os);
  const agent = new OsAgent(os, srv.addr, { keepAlive: true, maxSockets: 1 });
  const first = await request(os, srv.addr, { path: '/seq', agent });
  const rest = await Promise.all([0, 1, 2, 3].map(() => request(os, srv.addr, { path: '/seq', agent })));
  const replies = [first, ...rest];
  agent.destroy();
  await srv.stop();
  emit(os, { bodies: replies.map((r) => JSON.parse(r.body.toString())), reused: replies.map((r) => r.reused) });
}

/** (b) A chunked response with trailers and a Content-Length one, byte for byte. */
async function httpBodies(os: Os): Promise<void> {
  const srv = await startServer(os);
  const chunked = await request(os, srv.addr, { path: '/chunked' });
  const fixed = await request(os, srv.addr, { path: '/fixed' });
  await srv.stop();
  emit(os, {
    chunked: { status: chunked.status, raw: chunked.raw, body: chunked.body.toString(), trailers: chunked.trailers },
    fixed: { status: fixed.status, message: fixed.message, raw: fixed.raw, exact: fixed.body.equals(FIXED) },
  });
}

/** (c) A 1 MiB POST, written in pieces, echoed back intact. */
async function httpPost(os: Os): Promise<void> {
  const srv = await startServer(os);
  const sent = bytes(POST_CHUNK * POST_CHUNKS, 7);
  const reply = await request(os, srv.addr, { method: 'POST', path: '/echo', headers: { 'Content-Length': sent.length } }, (req) => {
    for (let i = 0; i < POST_CHUNKS; i++) req.write(sent.subarray(i * POST_CHUNK, (i + 1) * POST_CHUNK));
    req.end();
  });
  await srv.stop();
  emit(os, { status: reply.status, length: reply.body.length, exact: reply.body.equals(sent) });
}

/**
 * (d) The server's keepAliveTimeout closes an idle keep-alive connection;
 * the client's Agent sees the close and dials anew for the next request.
 * Node arms the socket timeout at keepAliveTimeout + 1000 ms (its fixed
 * HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER), from the end of the response.
 */
async function httpIdleClose(os: Os): Promise<void> {
  const srv = await startServer(os, { keepAliveTimeout: 200 });
  const agent = new OsAgent(os, srv.addr, { keepAlive: true, maxSockets: 1 });
  let answeredAt = -1;
  let closedAt = -1;
  const req = http.get({ path: '/keep', agent }, (res) => {
    res.resume();
    res.on('end', () => (answeredAt = os.now()));
  });
  req.on('socket', (s) => s.on('close', () => (closedAt = os.now())));
  if (!(await until(os, () => closedAt >= 0 && answeredAt >= 0, 10_000))) throw new Error('the idle connection was not closed within 10 s');
  const serverClosed = await srv.report('connClosed');
  const second = await request(os, srv.addr, { path: '/keep', agent });
  agent.destroy();
  await srv.stop();
  emit(os, { idleCloseMs: closedAt - answeredAt, serverClosed, second: JSON.parse(second.body.toString()), reused: second.reused });
}

/** (e) The client destroys the socket in the middle of a streamed response. */
async function httpClientAbort(os: Os): Promise<void> {
  const srv = await startServer(os);
  const seen: string[] = [];
  await new Promise<void>((resolve) => {
    const req = http.get({ path: '/forever', createConnection: viaOs(os, srv.addr) }, (res) => {
      res.once('data', () => {
        seen.push('data');
        req.destroy();
      });
      res.on('aborted', () => seen.push('res aborted'));
    });
    req.on('error', (e) => seen.push(`error ${(e as { code?: string }).code}`));
    req.on('close', () => {
      seen.push('close');
      resolve();
    });
  });
  const server = await srv.report('closed', 5000);
  await srv.stop();
  emit(os, { client: seen, server });
}

/** (f) The server is SIGKILLed while it holds a request: the client gets an error, never a hang. */
async function httpServerKilled(os: Os): Promise<void> {
  const srv = await startServer(os);
  let killedAt = 0;
  const failed = new Promise<{ code: string; message: string; ms: number }>((resolve, reject) => {
    const req = http.request({ method: 'POST', path: '/hang', headers: { 'Content-Length': 100 }, createConnection: viaOs(os, srv.addr) }, () => reject(new Error('answered')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ code: e.code!, message: e.message, ms: os.now() - killedAt }));
    req.write('x'.repeat(40)); // part of the body: the request is in flight
  });
  await srv.report('hanging'); // it holds the request
  killedAt = os.now();
  os.kill(srv.child.pid, 'SIGKILL');
  const e = await reap(os, srv.child.pid);
  const err = await failed;
  srv.listener.close();
  emit(os, { server: e.signal, code: err.code, message: err.message, ms: err.ms });
}

export const httpRegistry = programs(import.meta.url, {
  'http-server': httpServer,
  'http-keepalive': httpKeepAlive,
  'http-bodies': httpBodies,
  'http-post': httpPost,
  'http-idle-close': httpIdleClose,
  'http-client-abort': httpClientAbort,
  'http-server-killed': httpServerKilled,
});
