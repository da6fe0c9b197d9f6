// Hostile clients on the real OS (DESIGN.md, "Threat model"): each test plays
// the attacker with raw sockets where node:http's client would be too polite
// - a head trickled a byte at a time, a body promised and never sent, an
// answer never read, a pipelined flood, duplicate Host lines, spoofed
// x-drover-* headers, a connection hoard - and checks what drover does.
// Settings are short so that every test stays within a few seconds.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { APPS, freePort, get, removeTmp, startDrover, tmp, type Drover } from './drover.js';

const APP = join(APPS, 'hostile.js');
const MiB = 1024 * 1024;
/** Time allowed past a timeout for drover to act on it. */
const MARGIN = 1500;
const LIMIT = { timeout: 15_000 };

const running: Drover[] = [];
const dirs: string[] = [];
const clients: Raw[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.sock.destroy();
  for (const d of running.splice(0)) await d.cleanup();
  for (const d of dirs.splice(0)) removeTmp(d);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Served { d: Drover; port: number; fast: number[]; slowPid: number | null }

/** A drover on the hostile app; its runtime dir (XDG_RUNTIME_DIR) private to the test. */
async function serve(args: string[], opts: { workers?: number; lanes?: boolean } = {}): Promise<Served> {
  const workers = opts.workers ?? 2;
  const lanes = opts.lanes ?? true;
  const port = await freePort();
  const runtime = tmp();
  dirs.push(runtime);
  const d = startDrover([APP, '--bind', `127.0.0.1:${port}`, '--workers', String(workers), ...(lanes ? [] : ['--lanes', 'off']), ...args], { XDG_RUNTIME_DIR: runtime });
  running.push(d);
  // A drover that refuses its settings says why, at once.
  const gone = d.exited(60_000).then((e) => {
    throw new Error(`drover exited (${e.code ?? e.signal}) before serving; log:\n${d.log()}`);
  }, () => {});
  await Promise.race([d.waitFor(new RegExp(`(?:[^]*?(?<!lane )worker \\d+ booted){${workers}}`)), gone]);
  const slowPid = lanes ? Number((await Promise.race([d.waitFor(/slow-lane worker (\d+) booted/), gone]))![1]) : null;
  const fast = [...d.log().matchAll(/(?<!lane )worker (\d+) booted/g)].map((m) => Number(m[1]));
  return { d, port, fast, slowPid };
}

/**
 * A client on a raw socket: what it writes goes out as given, what comes
 * back is kept as latin1 text (up to `keep` characters) and counted.
 */
class Raw {
  readonly sock: Socket;
  readonly opened = Date.now();
  text = '';
  bytes = 0;
  closedAt: number | null = null;
  error: string | null = null;

  constructor(port: number, paused: boolean, private readonly keep: number) {
    this.sock = connect(port, '127.0.0.1');
    // Paused before any 'data' listener: it reads nothing more than one
    // highWaterMark, and the rest waits in the kernel's buffers.
    if (paused) this.sock.pause();
    this.sock.on('data', (b: Buffer) => {
      this.bytes += b.length;
      if (this.text.length < this.keep) this.text += b.toString('latin1', 0, Math.min(b.length, this.keep - this.text.length));
    });
    this.sock.on('error', (e: NodeJS.ErrnoException) => (this.error ??= e.code ?? e.message));
    this.sock.on('close', () => (this.closedAt = Date.now()));
  }

  get closed(): boolean {
    return this.closedAt !== null;
  }

  write(s: string): void {
    if (!this.closed && !this.sock.destroyed) this.sock.write(s);
  }

  /** True once `pred` holds; false if it did not within `ms`. */
  async until(pred: () => boolean, ms: number, step = 10): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) return false;
      await sleep(step);
    }
    return true;
  }

  /** Writes `text` one character every `every` ms, until it is all sent, the socket closes, or anything comes back. */
  async trickle(text: string, every: number): Promise<void> {
    for (const ch of text) {
      if (this.closed || this.bytes > 0) return;
      this.write(ch);
      await sleep(every);
    }
  }
}

async function raw(port: number, opts: { paused?: boolean; keep?: number } = {}): Promise<Raw> {
  const c = new Raw(port, opts.paused ?? false, opts.keep ?? 1 << 20);
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.sock.once('connect', resolve);
    c.sock.once('error', reject);
  });
  return c;
}

interface Answer { status: number; headers: Record<string, string>; body: string; end: number }

/** The status and headers of the answer at `from` in `text`, and where its body starts, once its head is all there. */
function headAt(text: string, from = 0): { status: number; headers: Record<string, string>; size: number } | null {
  const headEnd = text.indexOf('\r\n\r\n', from);
  if (headEnd < 0) return null;
  const lines = text.slice(from, headEnd).split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]!);
  if (!m) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const name = l.slice(0, i).toLowerCase();
    const value = l.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(m[1]), headers, size: headEnd + 4 - from };
}

const headOf = (text: string) => headAt(text, 0);

/** The first complete HTTP/1.1 answer in `text` at `from` (Content-Length framed, or chunked), or null. */
function answerAt(text: string, from = 0): Answer | null {
  const head = headAt(text, from);
  if (head === null) return null;
  const { status, headers } = head;
  let at = from + head.size;
  if (headers['transfer-encoding'] === 'chunked') {
    let body = '';
    for (;;) {
      const eol = text.indexOf('\r\n', at);
      if (eol < 0) return null;
      const size = parseInt(text.slice(at, eol), 16);
      if (size === 0) {
        const end = text.indexOf('\r\n\r\n', eol);
        return end < 0 ? null : { status, headers, body, end: end + 4 };
      }
      if (text.length < eol + 2 + size + 2) return null;
      body += text.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
  }
  const len = Number(headers['content-length'] ?? 0);
  if (text.length < at + len) return null;
  return { status, headers, body: text.slice(at, at + len), end: at + len };
}

/** Resumes a paused client and reads until its whole answer (a head, then `body` bytes) is in, or `ms` passed. */
async function readAll(c: Raw, body: number, ms: number): Promise<boolean> {
  c.sock.resume();
  return c.until(() => {
    const h = headOf(c.text);
    return h !== null && c.bytes >= h.size + body;
  }, ms);
}

/** Every complete answer in `text`, in order. */
function answers(text: string): Answer[] {
  const all: Answer[] = [];
  for (let a = answerAt(text); a !== null; a = answerAt(text, a.end)) all.push(a);
  return all;
}

/** Lines of the log that report a client timeout of this kind. */
function timeoutLines(d: Drover, setting: string): string[] {
  return d.log().split('\n').filter((l) => l.includes(setting));
}

/** Waits (a little: the worker writes its log as it closes) for the info line of a client timeout naming the peer. */
async function loggedTimeout(d: Drover, setting: string): Promise<string> {
  await d.waitFor(new RegExp(setting), 1000).catch(() => null);
  const lines = timeoutLines(d, setting);
  expect(lines.length, `a log line naming ${setting}`).toBeGreaterThanOrEqual(1);
  expect(lines[0]).toContain('[INFO]');
  expect(lines[0]).toMatch(/\b127\.0\.0\.1\b/);
  return lines[0]!;
}

interface Full { status: number; body: string; headers: Record<string, unknown> }

function send(port: number, path: string, opts: { method?: string; body?: string | string[]; headers?: Record<string, string | string[]> } = {}): Promise<Full> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false, maxHeaderSize: 4 * MiB }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(opts.body)) {
      for (const part of opts.body) req.write(part);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

// --- Deadlines on the client ------------------------------------------------

test('client_header_timeout: a head trickled a byte every 100 ms gets 408 with Connection: close and is closed, counted from the connect', LIMIT, async () => {
  const { d, port } = await serve(['--client-header-timeout', '1']);
  const c = await raw(port);
  void c.trickle(`GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(300)}\r\n\r\n`, 100);
  await c.until(() => c.closed, 1000 + MARGIN);
  expect(c.text).toMatch(/^HTTP\/1\.1 408 /);
  expect(answerAt(c.text)?.headers.connection).toBe('close');
  expect(c.closed).toBe(true);
  expect(c.closedAt! - c.opened).toBeGreaterThanOrEqual(900);
  expect(c.closedAt! - c.opened).toBeLessThan(1000 + MARGIN);
  await loggedTimeout(d, 'client_header_timeout');
});

test('client_header_timeout counts from the first byte: one byte, then nothing, gets 408 within it (not the 5 s keep_alive)', LIMIT, async () => {
  // keep_alive (5 s by default) is longer: the head's deadline is what closes it.
  const { port } = await serve(['--client-header-timeout', '1']);
  const c = await raw(port);
  c.write('G');
  await c.until(() => c.closed, 1000 + MARGIN);
  expect(c.closed).toBe(true);
  expect(c.closedAt! - c.opened).toBeLessThan(1000 + MARGIN);
  expect(c.text).toMatch(/^HTTP\/1\.1 408 /);
});

test('client_header_timeout on keep-alive: the next head is timed from the end of the previous answer', LIMIT, async () => {
  const { d, port, fast } = await serve(['--client-header-timeout', '1']);
  const c = await raw(port);
  c.write(GET('/'));
  expect(await c.until(() => answerAt(c.text) !== null, 5000)).toBe(true);
  const first = answerAt(c.text)!;
  expect(first.status).toBe(200);
  expect(fast).toContain(Number(first.body));
  const answered = Date.now();
  const before = c.bytes;
  // The second head, a byte every 100 ms: the idle timer is reset by each one.
  void (async () => {
    for (const ch of `GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(300)}\r\n\r\n`) {
      if (c.closed || c.bytes > before) return;
      c.write(ch);
      await sleep(100);
    }
  })();
  await c.until(() => c.closed, 1000 + MARGIN);
  expect(c.text.slice(first.end)).toMatch(/^HTTP\/1\.1 408 /);
  expect(c.closed).toBe(true);
  expect(c.closedAt! - answered).toBeLessThan(1000 + MARGIN);
  await loggedTimeout(d, 'client_header_timeout');
});

test('client_body_timeout: a POST whose body is promised (Content-Length: 1000) and trickled gets 408 and is closed', LIMIT, async () => {
  const { d, port } = await serve(['--client-body-timeout', '1']);
  const c = await raw(port);
  c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
  const headSent = Date.now();
  void c.trickle('a'.repeat(1000), 100);
  await c.until(() => c.closed, 1000 + MARGIN);
  expect(c.text).toMatch(/^HTTP\/1\.1 408 /);
  expect(c.closed).toBe(true);
  expect(c.closedAt! - headSent).toBeGreaterThanOrEqual(900);
  expect(c.closedAt! - headSent).toBeLessThan(1000 + MARGIN);
  await loggedTimeout(d, 'client_body_timeout');
});

test('client_body_timeout once the answer has begun: no 408, the connection is closed', LIMIT, async () => {
  const { d, port } = await serve(['--client-body-timeout', '1']);
  const c = await raw(port);
  c.write('POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\naaaaaaaaaa');
  const headSent = Date.now();
  await c.until(() => c.closed, 1000 + MARGIN);
  expect(c.text).toMatch(/^HTTP\/1\.1 200 /); // the app's own head, written before it read the body
  expect(c.text).not.toMatch(/408/);
  expect(c.text).not.toMatch(/read \d+/); // the app never saw its body end
  expect(c.closed).toBe(true);
  expect(c.closedAt! - headSent).toBeLessThan(1000 + MARGIN);
  await loggedTimeout(d, 'client_body_timeout');
});

test('send_timeout: a client that asks for 32 MiB and never reads is closed; it gets less than the answer', LIMIT, async () => {
  const { d, port } = await serve(['--send-timeout', '1']);
  const c = await raw(port, { paused: true, keep: 4096 });
  c.write(GET(`/big?bytes=${32 * MiB}`));
  const asked = Date.now();
  // Never reads: wait for drover to give up on it (its log says so), or for the deadline.
  await d.waitFor(/send_timeout/, 1000 + MARGIN).catch(() => null);
  const seen = Date.now();
  // Now read what the kernels still hold: the answer must stop short, and the connection end.
  c.sock.resume();
  await c.until(() => c.closed, 3000);
  expect(c.text).toMatch(/^HTTP\/1\.1 200 /);
  expect(c.bytes).toBeLessThan(32 * MiB);
  expect(c.closed).toBe(true);
  expect(seen - asked).toBeLessThan(1000 + MARGIN);
  await loggedTimeout(d, 'send_timeout');
});

// --- The slow lane is held for the server's work only -----------------------

test('a client that does not read a 6 MiB slow-route answer does not hold the slow slot: the next slow request is served, not 503', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'GET /big,GET /burn', '--queue-timeout', '1', '--slow-buffer', String(8 * MiB)]);
  const hog = await raw(port, { paused: true, keep: 4096 });
  hog.write(GET(`/big?bytes=${6 * MiB}`));
  await sleep(500);
  const next = await send(port, '/burn?ms=10');
  expect(next.status).toBe(200);
  expect(Number(next.body)).toBe(slowPid);
  // The hog was not cut off meanwhile, and gets its whole answer once it reads.
  expect(hog.closed).toBe(false);
  expect(await readAll(hog, 6 * MiB, 5000)).toBe(true);
  const head = headOf(hog.text)!;
  expect(head.status).toBe(200);
  expect(Number(head.headers['x-pid'])).toBe(slowPid);
  expect(hog.bytes).toBe(head.size + 6 * MiB);
});

test('a slow upload to a slow route does not hold the slow slot: its body is read before it takes one', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'POST /upload,GET /burn', '--queue-timeout', '1']);
  const up = await raw(port);
  up.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${'a'.repeat(10)}`);
  await sleep(300);
  const next = await send(port, '/burn?ms=10');
  expect(next.status).toBe(200);
  expect(Number(next.body)).toBe(slowPid);
  // The upload, finished, runs on the slow worker with its whole body.
  up.write('a'.repeat(90));
  expect(await up.until(() => answerAt(up.text) !== null, 5000)).toBe(true);
  const a = answerAt(up.text)!;
  expect(a.status).toBe(200);
  expect(JSON.parse(a.body)).toEqual({ pid: slowPid, bytes: 100 });
});

test('a slow upload to a slow route that never finishes gets 408 by client_body_timeout; the slow slot stays free meanwhile', LIMIT, async () => {
  const { d, port, slowPid } = await serve(['--slow-routes', 'POST /upload,GET /burn', '--client-body-timeout', '1', '--queue-timeout', '1']);
  const up = await raw(port);
  up.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${'a'.repeat(10)}`);
  const headSent = Date.now();
  const next = await send(port, '/burn?ms=10');
  expect(next.status).toBe(200);
  expect(Number(next.body)).toBe(slowPid);
  await up.until(() => up.closed, 1000 + MARGIN - (Date.now() - headSent));
  expect(up.text).toMatch(/^HTTP\/1\.1 408 /);
  expect(up.closed).toBe(true);
  expect(up.closedAt! - headSent).toBeLessThan(1000 + MARGIN);
  await loggedTimeout(d, 'client_body_timeout');
});

test('slow_buffer and send_timeout: a client that does not read a 32 MiB slow answer (over the 1 MiB buffer) is closed, and the slow request queued behind it is served', LIMIT, async () => {
  const { d, port, slowPid } = await serve(['--slow-routes', 'GET /big,GET /burn', '--slow-buffer', String(MiB), '--send-timeout', '1', '--queue-timeout', '4']);
  const hog = await raw(port, { paused: true, keep: 4096 });
  hog.write(GET(`/big?bytes=${32 * MiB}`));
  const asked = Date.now();
  await sleep(300);
  // The hog's answer does not fit: its slot is held until send_timeout lets go of the hog.
  const next = await send(port, '/burn?ms=10');
  expect(next.status).toBe(200);
  expect(Number(next.body)).toBe(slowPid);
  expect(Date.now() - asked).toBeLessThan(1000 + MARGIN + 1000);
  hog.sock.resume();
  await hog.until(() => hog.closed, 3000);
  expect(hog.closed).toBe(true);
  expect(hog.bytes).toBeLessThan(32 * MiB);
  await loggedTimeout(d, 'send_timeout');
});

test('slow_body_max: a body over it for a slow route is answered 413 (Content-Length or chunked); one at it runs on the slow worker', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'POST /upload', '--slow-body-max', '1000']);
  expect((await send(port, '/upload', { method: 'POST', body: 'a'.repeat(2000) })).status).toBe(413);
  expect((await send(port, '/upload', { method: 'POST', body: ['a'.repeat(600), 'a'.repeat(600)] })).status).toBe(413);
  const ok = await send(port, '/upload', { method: 'POST', body: 'a'.repeat(1000) });
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.body)).toEqual({ pid: slowPid, bytes: 1000 });
});

test('Expect: 100-continue with a body over slow_body_max to a slow route: 413 before any 100, so the body is never sent; a fast route still gets 100, then its answer', LIMIT, async () => {
  const { port } = await serve(['--slow-routes', 'POST /upload', '--slow-body-max', '1000']);
  const over = await raw(port);
  over.write('POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n');
  expect(await over.until(() => over.text.includes('\r\n\r\n'), 5000)).toBe(true);
  // Before: 'HTTP/1.1 100 Continue' first, inviting an upload that was then refused.
  expect(over.text).toMatch(/^HTTP\/1\.1 413 /);
  for (const path of ['/login', '/upload']) { // a fast route; a slow one within the bound
    const c = await raw(port);
    c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n`);
    expect(await c.until(() => c.text.includes('\r\n\r\n'), 5000), path).toBe(true);
    expect(c.text, path).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    c.write('hello');
    expect(await c.until(() => c.closed, 5000), path).toBe(true);
    expect(answerAt(c.text, c.text.indexOf('\r\n\r\n') + 4)?.status, path).toBe(200);
  }
});

// --- Learning measures the server, not the client ---------------------------

test('a slow upload (13 bytes over 1.3 s) does not mark POST /login slow; its next request runs on the fast worker', LIMIT, async () => {
  const { d, port, fast, slowPid } = await serve(['--slow-threshold', '0.3'], { workers: 1 });
  const c = await raw(port);
  c.write('POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n');
  for (const ch of 'user=a&pw=bbb') {
    c.write(ch);
    await sleep(100);
  }
  expect(await c.until(() => answerAt(c.text) !== null, 5000)).toBe(true);
  expect(JSON.parse(answerAt(c.text)!.body)).toEqual({ pid: fast[0], bytes: 13 });
  await sleep(300);
  expect(d.log()).not.toMatch(/route POST \/login is slow/);
  const next = await send(port, '/login', { method: 'POST', body: 'user=a&pw=bbb' });
  expect(JSON.parse(next.body).pid).toBe(fast[0]);
  expect(JSON.parse(next.body).pid).not.toBe(slowPid);
});

test('a client that reads a 16 MiB answer only after 1.2 s does not mark GET /big slow', LIMIT, async () => {
  const { d, port, fast } = await serve(['--slow-threshold', '0.3'], { workers: 1 });
  const c = await raw(port, { paused: true, keep: 4096 });
  c.write(GET(`/big?bytes=${16 * MiB}`));
  await sleep(1200);
  expect(await readAll(c, 16 * MiB, 5000)).toBe(true);
  await sleep(300);
  expect(d.log()).not.toMatch(/route GET \/big is slow/);
  const next = await send(port, '/big?bytes=10');
  expect(next.status).toBe(200);
  expect(next.headers['x-pid']).toBe(String(fast[0]));
});

test('a pipelined flood: 2000 GET / behind an 8 MiB answer, all in one write and read after 1.2 s, marks neither GET / nor GET /big slow', LIMIT, async () => {
  const N = 2000;
  const { d, port, fast } = await serve(['--slow-threshold', '0.3'], { workers: 1 });
  const c = await raw(port, { paused: true, keep: 16 * MiB });
  c.write(GET(`/big?bytes=${8 * MiB}`) + GET('/').repeat(N));
  await sleep(1200);
  c.sock.resume();
  await c.until(() => (c.text.match(/HTTP\/1\.1 /g) ?? []).length >= N + 1, 6000, 100);
  await sleep(200);
  expect.soft(d.log()).not.toMatch(/route GET \/ is slow/);
  expect.soft(d.log()).not.toMatch(/route GET \/big is slow/);
  const all = answers(c.text);
  expect(all).toHaveLength(N + 1);
  expect(all[0]!.body).toHaveLength(8 * MiB);
  expect(all.slice(1).filter((a) => a.status === 200 && Number(a.body) === fast[0])).toHaveLength(N);
  expect(Number((await get(port, '/')).body)).toBe(fast[0]);
});

// --- Pipelining: what one connection may hold, and answers that never go out -

/** The access log's lines once `n` of them are there (the worker writes each as its answer closes). */
async function accessLines(path: string, n: number, ms = 3000): Promise<string[]> {
  const read = () => (existsSync(path) ? accessLinesNow(path) : []);
  const end = Date.now() + ms;
  while (read().length < n && Date.now() < end) await sleep(20);
  return read();
}

function accessLinesNow(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
}

function accessLog(): string {
  const dir = tmp();
  dirs.push(dir);
  return join(dir, 'access.log');
}

test('a pipelined slow-route request behind one the app holds, then a reset: its slow slot comes back at once, and both are logged as 499 from the client', LIMIT, async () => {
  const log = accessLog();
  const { port, slowPid } = await serve(['--slow-routes', 'GET /big', '--slow-workers', '1', '--slow-concurrency', '1', '--slow-buffer', '64K', '--queue-timeout', '3', '--access-log', log], { workers: 1 });
  const c = await raw(port);
  // The slow answer (32 MiB) fills its buffer behind /hold, which the app never ends in time.
  c.write(GET('/hold?ms=60000') + GET(`/big?bytes=${32 * MiB}`));
  await sleep(500);
  c.sock.resetAndDestroy();
  await sleep(300);
  const t0 = Date.now();
  const next = await send(port, '/big?bytes=10');
  expect(next.status).toBe(200); // not a 503 after queue_timeout: the slot was given back
  expect(Number(next.headers['x-pid'])).toBe(slowPid);
  expect(Date.now() - t0).toBeLessThan(2000);
  const lines = await accessLines(log, 3);
  const of = (path: string) => lines.find((l) => l.includes(`"GET ${path} HTTP/1.1"`));
  expect(of('/hold?ms=60000')).toMatch(/^127\.0\.0\.1 - - \[.*\] "GET \/hold\?ms=60000 HTTP\/1\.1" 499 - /);
  expect(of(`/big?bytes=${32 * MiB}`)).toMatch(/^127\.0\.0\.1 - - \[.*\] "GET \/big\?bytes=33554432 HTTP\/1\.1" 499 - /);
  expect(of('/big?bytes=10')).toMatch(/" 200 10 /);
});

test('pipelining: with 16 requests of a connection running, drover reads no further until one ends; a request sent later runs only then', LIMIT, async () => {
  const { port } = await serve([], { workers: 1, lanes: false });
  const c = await raw(port);
  c.write(GET('/hold?ms=1000').repeat(20));
  await sleep(200);
  const sent = Date.now();
  c.write(GET('/stamp'));
  expect(await c.until(() => answers(c.text).length === 21, 5000)).toBe(true);
  const all = answers(c.text);
  expect(all.slice(0, 20).map((a) => `${a.status} ${a.body}`)).toEqual(Array(20).fill('200 held'));
  expect(all[20]!.status).toBe(200);
  // Without the pause the app runs it at once; with it, once the holds end (about 800 ms after it was sent).
  expect(Number(all[20]!.body) - sent).toBeGreaterThanOrEqual(600);
  expect(c.closed).toBe(false);
});

test('pipelining: more than 256 requests running on one connection close it, with a log line; the app never sees the rest and the worker serves on', LIMIT, async () => {
  const log = accessLog();
  const { d, port, fast } = await serve(['--access-log', log], { workers: 1, lanes: false });
  const c = await raw(port);
  c.write(GET('/hold?ms=60000').repeat(400));
  expect(await c.until(() => c.closed, 3000)).toBe(true);
  expect(c.bytes).toBe(0);
  await d.waitFor(/pipelined requests running on it, more than 256/, 2000);
  // Each request the app had is logged as it closes, unanswered; the one past the bound and the rest never reached it.
  const lines = await accessLines(log, 256);
  await sleep(200);
  expect(accessLinesNow(log)).toHaveLength(256);
  expect(lines.every((l) => / 499 - /.test(l))).toBe(true);
  expect(Number((await get(port, '/')).body)).toBe(fast[0]);
});

test('HTTP/1.0 without Host: 200 on a slow route as on a fast one', LIMIT, async () => {
  const { port, fast, slowPid } = await serve(['--slow-routes', 'GET /burn'], { workers: 1 });
  for (const [path, pid] of [['/', fast[0]], ['/burn?ms=1', slowPid]] as const) {
    const c = await raw(port);
    c.write(`GET ${path} HTTP/1.0\r\n\r\n`);
    expect(await c.until(() => c.closed, 5000), path).toBe(true);
    const head = headOf(c.text)!;
    expect(head.status, path).toBe(200);
    expect(Number(c.text.slice(head.size)), path).toBe(pid); // the end of the connection ends the body (HTTP/1.0)
  }
});

test('an answer head of 20 KB comes from a slow route as from a fast one; one over 1 MiB is a 502 that says why', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'GET /bighead'], { workers: 1 });
  const big = await send(port, '/bighead?bytes=20000');
  expect(big.status).toBe(200);
  expect(Number(big.headers['x-pid'])).toBe(slowPid);
  expect(big.headers['x-big']).toBe('a'.repeat(20_000));
  const over = await send(port, `/bighead?bytes=${MiB + 1}`);
  expect(over.status).toBe(502);
  expect(over.body).toBe("Bad Gateway: the app's answer head is over 1 MiB\n");
  // The fast path is not bounded by drover: the same head passes there.
  const lanesOff = await serve([], { workers: 1, lanes: false });
  const same = await send(lanesOff.port, `/bighead?bytes=${MiB + 1}`);
  expect(same.status).toBe(200);
  expect(same.headers['x-big']).toHaveLength(MiB + 1);
});

test('a request head the fast worker takes reaches the slow worker whole: 1,997 headers keep the client address, a head of 16,300 bytes is not a 431', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'GET /echo'], { workers: 1 });
  let many = '';
  for (let i = 0; i < 1997; i++) many += `a${i}: b\r\n`;
  for (const head of [many, `X-Pad: ${'p'.repeat(16_300)}\r\n`]) {
    const c = await raw(port);
    c.write(`GET /echo HTTP/1.1\r\nHost: x\r\n${head}Connection: close\r\n\r\n`);
    expect(await c.until(() => c.closed, 5000)).toBe(true);
    const a = answerAt(c.text)!;
    expect(a.status).toBe(200);
    const seen = JSON.parse(a.body) as { pid: number; remote: string };
    expect(seen.pid).toBe(slowPid);
    // Before: drover's headers went last and were among those past node:http's count, so the app saw no client address.
    expect(seen.remote).toBe('127.0.0.1');
  }
});

test('request_timeout: the 504 is access-logged with the bytes of its body', LIMIT, async () => {
  const log = accessLog();
  const { port } = await serve(['--request-timeout', '0.5', '--access-log', log], { workers: 1, lanes: false });
  const r = await send(port, '/hold?ms=3000');
  expect(r.status).toBe(504);
  const lines = await accessLines(log, 1);
  expect(lines[0]).toMatch(new RegExp(`"GET /hold\\?ms=3000 HTTP/1\\.1" 504 ${Buffer.byteLength(r.body)} `));
});

// --- Forwarding and request screening ---------------------------------------

test('forwarding to the slow lane: hop-by-hop headers and those Connection names are dropped, request trailers arrive', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'POST /echo']);
  const c = await raw(port);
  c.write([
    'POST /echo HTTP/1.1',
    'Host: x',
    'Connection: keep-alive, X-Secret',
    'X-Secret: hop',
    'Keep-Alive: timeout=5',
    'TE: trailers',
    'Proxy-Connection: keep-alive',
    'Upgrade: websocket',
    'X-Kept: end-to-end',
    'Transfer-Encoding: chunked',
    'Trailer: X-Checksum',
    '',
    '5',
    'hello',
    '0',
    'X-Checksum: abc',
    '',
    '',
  ].join('\r\n'));
  expect(await c.until(() => answerAt(c.text) !== null, 5000)).toBe(true);
  const a = answerAt(c.text)!;
  expect(a.status).toBe(200);
  const seen = JSON.parse(a.body) as { pid: number; headers: string[]; trailers: string[]; body: string };
  expect(seen.pid).toBe(slowPid);
  expect(seen.body).toBe('hello');
  expect.soft(seen.trailers).toEqual(['X-Checksum', 'abc']);
  const names = seen.headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  const values = Object.fromEntries(names.map((n, i) => [n, seen.headers[2 * i + 1]]));
  for (const hop of ['x-secret', 'keep-alive', 'te', 'proxy-connection', 'upgrade']) expect.soft(names, hop).not.toContain(hop);
  expect.soft(values.connection ?? '').not.toMatch(/x-secret/i);
  expect(values['x-kept']).toBe('end-to-end');
});

test('two Host lines: 400 on a fast route and on a slow route, the app never runs, and the access log has both', LIMIT, async () => {
  const log = accessLog();
  const { port } = await serve(['--slow-routes', 'GET /burn', '--access-log', log]);
  for (const head of [
    'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'GET /burn?ms=10 HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n',
  ]) {
    const c = await raw(port);
    c.write(head);
    expect(await c.until(() => answerAt(c.text) !== null, 5000), head).toBe(true);
    const a = answerAt(c.text)!;
    expect.soft(a.status, head).toBe(400);
    expect.soft(a.headers['x-pid'], head).toBeUndefined();
  }
  const lines = await accessLines(log, 2);
  expect(lines.map((l) => /"(GET \S+) HTTP\/1\.1" (\d+) /.exec(l)?.slice(1).join(' '))).toEqual(['GET / 400', 'GET /burn?ms=10 400']);
});

test('client-sent x-drover-* headers never reach the app, on the fast path and on the slow path', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'POST /echo']);
  const spoof = { 'X-Drover-Client': ['6.6.6.6 66', '7.7.7.7 77'], 'x-drover-lane': '5', 'X-Drover-Anything': 'y' };
  type Seen = { pid: number; headers: string[]; parsed: string[]; distinct: string[]; remote: string };
  const fast = await send(port, '/echo', { headers: spoof });
  expect(fast.status).toBe(200); // req.headersDistinct threw in the app once the raw list had shrunk under it
  const fastSeen = JSON.parse(fast.body) as Seen;
  expect(fastSeen.pid).not.toBe(slowPid);
  const slowSeen = JSON.parse((await send(port, '/echo', { method: 'POST', body: 'b', headers: spoof })).body) as Seen;
  expect(slowSeen.pid).toBe(slowPid);
  for (const [path, seen] of [['fast path', fastSeen], ['slow path', slowSeen]] as const) {
    expect.soft(seen.headers.filter((h, i) => i % 2 === 0 && /^x-drover-/i.test(h)), path).toEqual([]);
    expect(seen.parsed.filter((h) => h.startsWith('x-drover-')), path).toEqual([]);
    expect(seen.distinct.filter((h) => h.startsWith('x-drover-')), path).toEqual([]);
    expect(seen.distinct, path).toContain('host');
    expect(seen.remote).toBe('127.0.0.1');
  }
});

// --- Connection slots --------------------------------------------------------

test('worker_connections 5: at the cap the worker stops accepting and says so once; one connection closed lets exactly one more in', LIMIT, async () => {
  const { d, port, fast } = await serve(['--worker-connections', '5', '--keep-alive', '10'], { workers: 1, lanes: false });
  // Five keep-alive connections, each answered (so each was accepted), then idle.
  const idle: Raw[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await raw(port);
    c.write(GET('/'));
    expect(await c.until(() => answerAt(c.text) !== null, 5000)).toBe(true);
    idle.push(c);
  }
  // Three more clients send whole requests: none is answered while five are held.
  const waiting: Raw[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await raw(port);
    c.write(GET('/'));
    waiting.push(c);
  }
  await sleep(800);
  expect(waiting.map((c) => c.text)).toEqual(['', '', '']);
  expect(waiting.some((c) => c.closed)).toBe(false);
  await d.waitFor(/worker_connections/, 1000);
  expect(d.log().split('\n').filter((l) => l.includes('worker_connections'))).toHaveLength(1);
  // One idle connection goes: the first waiting client is served, the others still wait.
  idle[0]!.sock.destroy();
  expect(await waiting[0]!.until(() => answerAt(waiting[0]!.text) !== null, 1500)).toBe(true);
  expect(Number(answerAt(waiting[0]!.text)!.body)).toBe(fast[0]);
  await sleep(300);
  expect(waiting[1]!.text).toBe('');
  expect(waiting[2]!.text).toBe('');
  // Two more go: the other two are served.
  idle[1]!.sock.destroy();
  idle[2]!.sock.destroy();
  for (const c of waiting.slice(1)) {
    expect(await c.until(() => answerAt(c.text) !== null, 1500)).toBe(true);
    expect(answerAt(c.text)!.status).toBe(200);
  }
});

test('worker_connections 5 held by slowloris heads: a client behind them is served within about a second, not after client_header_timeout (30 s)', LIMIT, async () => {
  const { d, port, fast } = await serve(['--worker-connections', '5'], { workers: 1, lanes: false });
  const loris: Raw[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await raw(port);
    c.write('GET / HTTP/1.1\r\nHost: x\r\n');
    loris.push(c);
  }
  await sleep(200);
  const client = await raw(port);
  client.write(GET('/'));
  expect(await client.until(() => answerAt(client.text) !== null, 3000)).toBe(true);
  expect(Date.now() - client.opened).toBeLessThan(2500);
  expect(answerAt(client.text)!.status).toBe(200);
  expect(Number(answerAt(client.text)!.body)).toBe(fast[0]);
  // The oldest stalled head gave its place; it got no answer (it never asked a whole question).
  expect(loris[0]!.closed).toBe(true);
  expect(loris[0]!.text).toBe('');
  await d.waitFor(/at worker_connections 5: closed \d+ connection\(s\) that sent no whole request within 1s, to make room/, 3000);
});

test('descriptor exhaustion: a worker limited to 64 descriptors, hoarded by 60 idle connections, drops nobody; a client waiting behind them is served once they go', LIMIT, async () => {
  // At the cap (10) long before the descriptors (64) run out: libuv meets EMFILE by accepting and resetting
  // (21 of 60 reset before the cap existed), so a cap under the limit is the defence.
  const { d, port, fast } = await serve(['--worker-connections', '10', '--keep-alive', '10'], { workers: 1, lanes: false });
  // The worker, not the test: its own limit is lowered while it runs.
  execFileSync('prlimit', ['--pid', String(fast[0]), '--nofile=64:64']);
  const hoard: Raw[] = [];
  for (let i = 0; i < 60; i++) hoard.push(await raw(port));
  const client = await raw(port);
  client.write(GET('/'));
  await sleep(500); // under SHED_AFTER: no hoarder has yet stalled long enough to be closed for room
  // Neither the hoard nor the client was reset for want of a descriptor.
  expect(hoard.filter((c) => c.closed)).toHaveLength(0);
  expect(client.closed).toBe(false);
  expect(client.error).toBeNull();
  for (const c of hoard) c.sock.destroy();
  expect(await client.until(() => answerAt(client.text) !== null, 3000)).toBe(true);
  expect(answerAt(client.text)!.status).toBe(200);
  expect(Number(answerAt(client.text)!.body)).toBe(fast[0]); // the same worker: it did not die
  expect(d.log()).not.toMatch(/Worker \d+ (?:exited|was killed)/);
});

// --- Answers node:http refuses to frame -------------------------------------

/** Worker pids booted so far: a worker that died is replaced, and its replacement adds one. */
const boots = (d: Drover) => (d.log().match(/worker \d+ booted/g) ?? []).length;

test('a Trailer request header on a request that is not chunked (GET, or a Content-Length body) goes to a slow route and back; no worker dies', LIMIT, async () => {
  const { d, port, slowPid } = await serve(['--slow-routes', 'GET /burn,POST /echo'], { workers: 1 });
  const booted = boots(d);
  const c = await raw(port);
  c.write('GET /burn?ms=1 HTTP/1.1\r\nHost: x\r\nTrailer: x-sum\r\n\r\n');
  c.write('POST /echo HTTP/1.1\r\nHost: x\r\nTrailer: x-sum\r\nContent-Length: 2\r\n\r\nhi');
  expect(await c.until(() => answers(c.text).length === 2, 5000)).toBe(true);
  const [burn, echo] = answers(c.text);
  expect(burn!.status).toBe(200);
  expect(Number(burn!.body)).toBe(slowPid);
  expect(echo!.status).toBe(200);
  expect(JSON.parse(echo!.body)).toMatchObject({ pid: slowPid, body: 'hi' });
  // A chunked request keeps its Trailer header, and its trailers arrive.
  const chunked = await raw(port);
  chunked.write('POST /echo HTTP/1.1\r\nHost: x\r\nTrailer: x-sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nx-sum: 7\r\n\r\n');
  expect(await chunked.until(() => answers(chunked.text).length === 1, 5000)).toBe(true);
  const e = JSON.parse(answers(chunked.text)[0]!.body);
  expect(e.headers).toContain('Trailer');
  expect(e.trailers).toEqual(['x-sum', '7']);
  await sleep(300);
  expect(boots(d)).toBe(booted);
});

test('a slow answer announcing trailers, to an HTTP/1.0 client: the answer without them, as on a fast route; a malformed answer head is a 502; no worker dies', LIMIT, async () => {
  const { d, port, slowPid } = await serve(['--slow-routes', 'GET /trailered,GET /rawhead'], { workers: 1 });
  const booted = boots(d);
  const old = await raw(port);
  old.write('GET /trailered HTTP/1.0\r\n\r\n');
  expect(await old.until(() => old.closed, 5000)).toBe(true);
  const head = headOf(old.text)!;
  expect(head.status).toBe(200);
  expect(Number(head.headers['x-pid'])).toBe(slowPid);
  expect(head.headers.trailer).toBeUndefined();
  expect(old.text.slice(head.size)).toBe('one,two');
  // The first two node:http's client takes and writeHead refuses; the last its parser refuses (HPE_INVALID_STATUS).
  for (const line of ['099 Early', '200 Bad\x7fReason', 'abc Bad']) {
    const r = await send(port, `/rawhead?line=${encodeURIComponent(line)}`);
    expect(r.status, line).toBe(502);
    expect(r.body, line).toMatch(/^Bad Gateway: the app's answer head is not valid HTTP/);
  }
  // The operator is told too (at most a line a second; the first of these three at least).
  expect(d.log()).toMatch(/WARNING.*slow lane: GET \/rawhead 502: the app's answer head is not valid HTTP/);
  await sleep(300);
  expect(boots(d)).toBe(booted);
});

test('a 502 for an answer head refused here keeps the slow slot until the slow worker lets go: the next requests do not queue behind its burn', LIMIT, async () => {
  const { port } = await serve(['--slow-routes', 'GET /rawhead,GET /burn', '--slow-workers', '2'], { workers: 1 });
  const bad = await send(port, `/rawhead?line=${encodeURIComponent('099 Early')}&burn=3000`);
  expect(bad.status).toBe(502);
  // Before: the 502 gave the slot back while its worker still burned, and one of these waited there about 3 s.
  await besideTheBurn(port, 2000);
});

test('a 502 for an answer head over 1 MiB keeps the slow slot until the slow worker lets go, though node:http cut the connection: the next requests do not queue behind its burn', LIMIT, async () => {
  const { port } = await serve(['--slow-routes', 'GET /bighead,GET /burn', '--slow-workers', '2'], { workers: 1 });
  // The app writes its head whole, then holds its event loop 1.5 s: it sees the cut only after that.
  const over = await send(port, `/bighead?bytes=${MiB + 1}&burn=1500`);
  expect(over.status).toBe(502);
  expect(over.body).toBe("Bad Gateway: the app's answer head is over 1 MiB\n");
  // Before: the cut gave the slot back while its worker still burned, and one of these waited there about 1.5 s.
  await besideTheBurn(port, 1000);
});

test('an app answering 101 Switching Protocols to a request that did not ask to upgrade (with Upgrade headers or without): a 502, and the slow slot kept until the slow worker lets go', { timeout: 25_000 }, async () => {
  for (const upgrade of ['', '&upgrade=1']) {
    const { d, port } = await serve(['--slow-routes', 'GET /rawhead,GET /burn', '--slow-workers', '2'], { workers: 1 });
    // Before: node:http's client closed the connection at once. Without Upgrade headers the 101 went to the
    // client as an answer and the slot was given back while the app burned; with them, no answer ever came.
    const bad = await send(port, `/rawhead?line=${encodeURIComponent('101 Switching Protocols')}&burn=3000${upgrade}`);
    expect(bad.status, upgrade).toBe(502);
    expect(bad.body, upgrade).toBe("Bad Gateway: the app answered 101 Switching Protocols to a request that did not ask to upgrade\n");
    await besideTheBurn(port, 2000);
    await d.cleanup();
  }
});

/**
 * With one of two slow workers still burning on a request whose client got
 * its 502, two slow requests are both served within `ms` by the other: the
 * burning one's slot was not given back early.
 */
async function besideTheBurn(port: number, ms: number): Promise<void> {
  const t0 = Date.now();
  const [b, c] = await Promise.all([send(port, '/burn?ms=10'), send(port, '/burn?ms=10')]);
  expect(Date.now() - t0).toBeLessThan(ms);
  expect([b.status, c.status]).toEqual([200, 200]);
  expect(b.body).toBe(c.body); // both on the other slow worker
}

test('an app whose answer throws in node:http (a Trailer on a HEAD answer, or to an HTTP/1.0 client) gets its 500, fast or slow; no worker dies', LIMIT, async () => {
  const slow = await serve(['--slow-routes', 'GET /trailered'], { workers: 1 });
  const fast = await serve([], { workers: 1, lanes: false });
  const booted = [boots(slow.d), boots(fast.d)];
  // On the slow route only HEAD throws (the slow worker's app is told HTTP/1.1); with lanes off, both do.
  const cases = [
    [slow.port, 'HEAD /trailered HTTP/1.1\r\nHost: x\r\n\r\n'],
    [fast.port, 'HEAD /trailered HTTP/1.1\r\nHost: x\r\n\r\n'],
    [fast.port, 'GET /trailered HTTP/1.0\r\nHost: x\r\n\r\n'],
  ] as const;
  for (const [port, req] of cases) {
    const c = await raw(port);
    c.write(req);
    expect(await c.until(() => headOf(c.text) !== null, 5000), req).toBe(true);
    expect(headOf(c.text)!.status, req).toBe(500);
    expect(headOf(c.text)!.headers.trailer, req).toBeUndefined();
  }
  await sleep(300);
  expect([boots(slow.d), boots(fast.d)]).toEqual(booted);
  expect(fast.d.log()).toMatch(/ERR_HTTP_TRAILER_INVALID/);
});

test('Expect: only an HTTP/1.1 client asking for 100-continue is sent 100 Continue; an HTTP/1.0 one never gets a 1xx', LIMIT, async () => {
  const { port } = await serve(['--slow-routes', 'POST /echo'], { workers: 1 });
  for (const path of ['/upload', '/echo']) {
    const c = await raw(port);
    c.write(`POST ${path} HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello`);
    expect(await c.until(() => c.closed, 5000), path).toBe(true);
    expect(c.text, path).not.toMatch(/^HTTP\/1\.1 100/);
    expect(headOf(c.text)!.status, path).toBe(200);
    const v11 = await raw(port);
    v11.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`);
    expect(await v11.until(() => v11.text.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 5000), path).toBe(true);
    v11.write('hello');
    expect(await v11.until(() => answers(v11.text.slice(25)).length === 1, 5000), path).toBe(true);
  }
});

test('1xx answers of the app (103 Early Hints, 102 Processing) reach an HTTP/1.1 client from a slow route as from a fast one; an HTTP/1.0 client gets none from the slow lane', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'GET /hints'], { workers: 1 });
  const lanesOff = await serve([], { workers: 1, lanes: false });
  const seen: string[] = [];
  for (const [p, pid] of [[port, slowPid], [lanesOff.port, null]] as const) {
    const c = await raw(p);
    c.write(GET('/hints'));
    expect(await c.until(() => /\r\n\r\n\d+$/.test(c.text), 5000)).toBe(true);
    expect(c.text).toMatch(/^HTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload; as=style, <\/b\.js>; rel=preload; as=script\r\n\r\nHTTP\/1\.1 102 Processing\r\n\r\nHTTP\/1\.1 200 OK\r\n/i);
    if (pid !== null) expect(Number(/\r\n\r\n(\d+)$/.exec(c.text)![1])).toBe(pid);
    seen.push(c.text.slice(0, c.text.indexOf('HTTP/1.1 200')));
  }
  expect(seen[0]).toBe(seen[1]);
  const old = await raw(port);
  old.write('GET /hints HTTP/1.0\r\n\r\n');
  expect(await old.until(() => old.closed, 5000)).toBe(true);
  expect(old.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
});

test('a body whose Content-Length comes past node:http\'s cap of 1,000 headers reaches the slow worker as it reaches a fast one', LIMIT, async () => {
  const { port, slowPid } = await serve(['--slow-routes', 'POST /echo'], { workers: 1 });
  let head = 'Host: x\r\n';
  for (let i = 0; i < 1100; i++) head += `a${i}: b\r\n`;
  const c = await raw(port);
  c.write(`POST /upload HTTP/1.1\r\n${head}Content-Length: 2\r\n\r\n{}POST /echo HTTP/1.1\r\n${head}Content-Length: 2\r\n\r\n{}`);
  expect(await c.until(() => answers(c.text).length === 2, 5000)).toBe(true);
  const [fast, slow] = answers(c.text).map((a) => JSON.parse(a.body) as { pid: number; bytes?: number; body?: string });
  expect(fast!.bytes).toBe(2);
  expect(slow!.pid).toBe(slowPid);
  // Before: '' (forwarded without its body).
  expect(slow!.body).toBe('{}');
});
