// Hostile clients against the real worker code on the simulated kernel, in
// virtual time: each test plays one attack and checks the bound that
// defeats it (worker/connections.ts, timing.ts, screen.ts, forward.ts).
import { expect, test } from 'vitest';
import type { Stream } from '../../src/os/types.js';
import { ADDR, SIM_APP, simulate, type Ctl } from './sim.js';
import { get } from '../support/http.js';
import { httpDate } from '../../src/runtime/time-format.js';

const APP = SIM_APP.replace('sim-app.js', 'hostile-sim.js');
const args = (...more: string[]) => [APP, '--bind', '127.0.0.1:8000', '--workers', '1', ...more];

interface Raw {
  readonly s: Stream;
  text(): string;
  /** Virtual time the connection closed at, or null. */
  closedAt(): number | null;
  write(data: string): void;
}

async function raw(c: Ctl, first = ''): Promise<Raw> {
  const s = await c.os.connect(ADDR);
  let text = '';
  let closed: number | null = null;
  s.on('data', (d: Buffer) => (text += d.toString('latin1')));
  s.on('error', () => {});
  s.on('close', () => (closed = c.os.now()));
  if (first !== '') s.write(first);
  return {
    s,
    text: () => text,
    closedAt: () => closed,
    write: (d) => {
      if (!s.destroyed) s.write(d);
    },
  };
}

/** Writes `data` one byte every `ms` until done or the connection closed. */
async function trickle(c: Ctl, r: Raw, data: string, ms: number): Promise<void> {
  for (const ch of data) {
    if (r.closedAt() !== null) return;
    r.write(ch);
    await c.os.sleep(ms);
  }
}

const slowRoutes = (c: Ctl) => [...c.log().matchAll(/route (\S+ \S+) is slow/g)].map((m) => m[1]);

test('client_header_timeout: a head trickled a byte at a time gets 408 and is closed within a tick of the deadline', async () => {
  await simulate(1, args('--client-header-timeout', '2'), async (c) => {
    await c.booted(1);
    const t0 = c.os.now();
    const r = await raw(c, 'GET / HTTP/1.1\r\nHost: x\r\n');
    await trickle(c, r, 'X-Slow: ' + 'a'.repeat(100), 400);
    expect(r.closedAt()).not.toBeNull();
    expect(r.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    // 2 s, plus one sweep tick (a quarter of the shortest deadline: 500 ms).
    expect(r.closedAt()! - t0).toBeGreaterThanOrEqual(2000);
    expect(r.closedAt()! - t0).toBeLessThanOrEqual(2500 + 10);
    expect(c.log()).toMatch(/client_header_timeout \(2s\): closed 127\.0\.0\.1:\d+ sending a request head/);
    // The worker serves on.
    expect((await c.get('/')).status).toBe(200);
  });
});

test('client_header_timeout on keep-alive counts from the end of the previous answer; an idle connection is left to keep_alive', async () => {
  await simulate(2, args('--client-header-timeout', '1', '--keep-alive', '3'), async (c) => {
    await c.booted(1);
    const r = await raw(c, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.os.sleep(1500);
    // Idle past the header timeout: still open (no byte of a head came).
    expect(r.closedAt()).toBeNull();
    expect(r.text()).toMatch(/^HTTP\/1\.1 200/);
    r.write('GET / HTTP/1.1\r\n');
    await c.os.sleep(600);
    // A head begun 1.5 s after the answer is already past its deadline.
    expect(r.closedAt()).not.toBeNull();
    expect(r.text()).toMatch(/HTTP\/1\.1 408 Request Timeout/);
  });
});

test('client_body_timeout: a promised body that never comes gets 408 within a tick of the deadline', async () => {
  await simulate(3, args('--client-body-timeout', '2'), async (c) => {
    await c.booted(1);
    const r = await raw(c, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    const t0 = c.os.now();
    await c.os.sleep(3000);
    expect(r.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(r.text()).toMatch(/\r\nconnection: close\r\n/i);
    expect(r.closedAt()).not.toBeNull();
    expect(r.closedAt()! - t0).toBeLessThanOrEqual(2500 + 10);
    expect(c.log()).toMatch(/client_body_timeout \(2s\): closed 127\.0\.0\.1:\d+ sending the body of POST \/upload/);
  });
});

test('send_timeout: a client that never reads a big answer is closed; one that reads slowly is not', async () => {
  await simulate(4, args('--send-timeout', '2'), async (c) => {
    await c.booted(1);
    const idle = await raw(c, 'GET /big?kb=4096 HTTP/1.1\r\nHost: x\r\n\r\n');
    idle.s.pause();
    const slow = await raw(c, 'GET /big?kb=1024 HTTP/1.1\r\nHost: x\r\n\r\n');
    slow.s.pause();
    const t0 = c.os.now();
    // The slow reader takes 16 KiB every 500 ms.
    let reading = true;
    void (async () => {
      while (reading) {
        await c.os.sleep(500);
        slow.s.read(16 * 1024);
      }
    })();
    await c.waitLog(/send_timeout \(2s\): closed 127\.0\.0\.1:\d+ not reading an answer/);
    // 2 s of no progress, found within one sweep tick (500 ms) after it.
    expect(c.os.now() - t0).toBeLessThanOrEqual(2500 + 10);
    await c.os.sleep(3000);
    reading = false;
    expect(c.log().match(/send_timeout/g)).toHaveLength(1);
    expect(slow.closedAt()).toBeNull();
    // The idle client finds its connection closed: what it got is cut short.
    idle.s.resume();
    await c.os.sleep(100);
    expect(idle.closedAt()).not.toBeNull();
    expect(idle.text().length).toBeLessThan(4096 * 1024);
    slow.s.destroy();
  });
});

test('learning: a pipelined flood that is not read, and a slow upload, do not make a fast route slow', async () => {
  await simulate(5, args('--slow-threshold', '0.1'), async (c) => {
    await c.booted(1);
    await c.waitLog(/slow-lane worker \d+ booted/);
    // 40 pipelined requests for 64 KiB each, read only after 2 s.
    const r = await raw(c, 'GET /big?kb=64 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(40));
    r.s.pause();
    await c.os.sleep(2000);
    r.s.resume();
    // A 2 s upload to a route the app serves at once.
    const u = await raw(c, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n');
    await trickle(c, u, 'x'.repeat(20), 100);
    await c.os.sleep(500);
    expect(r.text().match(/HTTP\/1\.1 200/g)).toHaveLength(40);
    expect(u.text()).toMatch(/^HTTP\/1\.1 200/);
    expect(slowRoutes(c)).toEqual([]);
    // The app's own time still counts.
    await c.get('/burn?ms=300');
    await c.waitLog(/route GET \/burn is slow/);
  });
});

test('a client that does not read a big slow answer holds no slot: the next slow request is served', async () => {
  await simulate(6, args('--slow-routes', 'GET /big', '--queue-timeout', '1', '--send-timeout', '30'), async (c) => {
    await c.booted(1);
    const slowPid = Number((await c.waitLog(/slow-lane worker (\d+) booted/))[1]);
    const hog = await raw(c, 'GET /big?kb=2048 HTTP/1.1\r\nHost: x\r\n\r\n');
    hog.s.pause();
    await c.os.sleep(500);
    const t0 = c.os.now();
    const next = await get(c.os, ADDR, '/big?kb=16');
    expect(next.status).toBe(200);
    expect(Number(next.headers['x-pid'])).toBe(slowPid);
    expect(c.os.now() - t0).toBeLessThan(1000);
    expect(hog.closedAt()).toBeNull(); // still held, by the fast worker's buffer
    hog.s.destroy();
  });
});

test('a slow upload to a slow route holds no slot; a body over slow_body_max gets 413', async () => {
  await simulate(7, args('--slow-routes', 'POST /upload', '--queue-timeout', '1', '--slow-body-max', '1K'), async (c) => {
    await c.booted(1);
    const slowPid = Number((await c.waitLog(/slow-lane worker (\d+) booted/))[1]);
    const hog = await raw(c, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n');
    const trickled = trickle(c, hog, 'y'.repeat(30), 100);
    await c.os.sleep(300);
    const other = await raw(c, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    await c.os.sleep(500);
    expect(other.text()).toMatch(/^HTTP\/1\.1 200/);
    expect(other.text()).toMatch(new RegExp(`\\r\\n\\r\\n${slowPid}$`));
    await trickled;
    await c.os.sleep(200);
    expect(hog.text()).toMatch(new RegExp(`^HTTP/1\\.1 200[^]*\\r\\n\\r\\n${slowPid}$`));
    const big = await raw(c, `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n${'z'.repeat(2000)}`);
    const chunked = await raw(c, `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${'400\r\n' + 'z'.repeat(1024) + '\r\n'}${'1\r\nz\r\n'}0\r\n\r\n`);
    await c.os.sleep(200);
    expect(big.text()).toMatch(/^HTTP\/1\.1 413 Payload Too Large/);
    expect(chunked.text()).toMatch(/^HTTP\/1\.1 413 Payload Too Large/);
  });
});

test('forwarding is faithful: hop-by-hop and Connection-named headers stay behind, trailers travel, x-drover-* from a client never reaches the app', async () => {
  await simulate(8, args('--slow-routes', 'POST /echo'), async (c) => {
    await c.booted(1);
    const slowPid = Number((await c.waitLog(/slow-lane worker (\d+) booted/))[1]);
    const head = 'Host: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Drover-Client: 6.6.6.6 1\r\nx-drover-lane: 7\r\nX-Kept: yes\r\n';
    const slow = await raw(c, `POST /echo HTTP/1.1\r\n${head}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n`);
    const fast = await raw(c, `PUT /echo HTTP/1.1\r\n${head}Content-Length: 5\r\n\r\nhello`);
    await c.os.sleep(500);
    const seen = (r: Raw) => JSON.parse(r.text().slice(r.text().indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, '')) as { pid: number; headers: string[]; trailers: string[]; body: string; remote: string };
    const s = seen(slow);
    expect(s.pid).toBe(slowPid);
    expect(s.body).toBe('hello');
    expect(s.trailers).toEqual(['X-Sum', '5']);
    const names = s.headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ['x-secret', 'keep-alive', 'te', 'x-drover-client', 'x-drover-lane']) expect(names).not.toContain(gone);
    expect(names).toContain('x-kept');
    expect(s.remote).toBe('127.0.0.1');
    const f = seen(fast);
    expect(f.pid).not.toBe(slowPid);
    const fnames = f.headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(fnames).not.toContain('x-drover-client');
    expect(fnames).not.toContain('x-drover-lane');
    expect(fnames).toContain('x-secret'); // the app's own server: no hop to strip
  });
});

test('two Host headers get 400 on a fast route and on a slow route', async () => {
  await simulate(9, args('--slow-routes', 'GET /burn'), async (c) => {
    await c.booted(1);
    for (const path of ['/', '/burn?ms=10']) {
      const r = await raw(c, `GET ${path} HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n`);
      await c.os.sleep(200);
      expect(r.text()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(r.closedAt()).not.toBeNull();
    }
  });
});

test('worker_connections: at the cap the worker closes the oldest connection that has stalled a second without a request, and takes the next', async () => {
  await simulate(10, args('--worker-connections', '2', '--client-header-timeout', '30'), async (c) => {
    await c.booted(1);
    // Before the first holder connects: the worker accepts it at t0 or later.
    const t0 = c.os.now();
    const holders = [await raw(c, 'GET / HTTP/1.1\r\n'), await raw(c), await raw(c, 'GET / HTTP/1.1\r\n')];
    await c.os.sleep(100);
    const r = await get(c.os, ADDR, '/');
    expect(r.status).toBe(200);
    // A place comes free once the oldest holder has stalled SHED_AFTER (1 s) since its accept, not at the 30 s deadline.
    expect(c.os.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(c.os.now() - t0).toBeLessThan(1500);
    await c.os.sleep(10);
    expect(holders[0]!.closedAt()).not.toBeNull();
    expect(holders[0]!.text()).toBe(''); // closed, not answered: there is no request to answer
    await c.os.sleep(1500);
    expect(c.log()).toMatch(/at worker_connections 2: closed \d+ connection\(s\) that sent no whole request within 1s, to make room/);
  });
});

test('worker_connections: a connection whose head came while the app held the loop is not taken for stalled', async () => {
  await simulate(12, args('--worker-connections', '2', '--client-header-timeout', '30'), async (c) => {
    await c.booted(1);
    const honest = await raw(c); // its head comes late, while the app holds the loop
    await c.os.sleep(100);
    const burner = await raw(c, 'GET /burn?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n'); // the cap, and the loop held 3 s
    await c.os.sleep(1400);
    honest.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const waiting = await raw(c, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await c.os.sleep(3000);
    // When the loop comes back, the honest head is read, not its connection closed for room.
    expect(burner.text()).toMatch(/^HTTP\/1\.1 200/);
    expect(honest.text()).toMatch(/^HTTP\/1\.1 200/);
    expect(honest.closedAt()).toBeNull();
    expect(waiting.closedAt()).toBeNull(); // both held connections are idle keep-alives now: not shed
  });
});

test('worker_connections: connections serving a request are never closed to make room; the worker stops accepting, says so once, and accepts again when one closes', async () => {
  await simulate(11, args('--worker-connections', '2', '--client-body-timeout', '3'), async (c) => {
    await c.booted(1);
    const head = 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc';
    const holders = [await raw(c, head), await raw(c, head)];
    await c.os.sleep(100);
    const t0 = c.os.now();
    const r = await get(c.os, ADDR, '/');
    expect(r.status).toBe(200);
    // Answered only once the holders' bodies timed out (3 s, plus a tick).
    expect(c.os.now() - t0).toBeGreaterThanOrEqual(2800);
    await c.os.sleep(1000);
    for (const h of holders) expect(h.text()).toMatch(/^HTTP\/1\.1 408/);
    expect(c.log().match(/worker_connections 2\), none of them stalled: not accepting until one closes/g)).toHaveLength(1);
  });
});

test('request_timeout: an answer not begun in time is a 504 and the connection closes; the app writing its head later breaks nothing', async () => {
  await simulate(13, args('--request-timeout', '0.5'), async (c) => {
    await c.booted(1);
    const [pid] = c.workers();
    const late = await raw(c, 'GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = c.os.now();
    while (late.closedAt() === null && c.os.now() - t0 < 5000) await c.os.sleep(10);
    expect(late.text()).toMatch(/^HTTP\/1\.1 504 Gateway Timeout\r\ndate: .+ GMT\r\ncontent-type: text\/plain\r\ncontent-length: 16\r\nconnection: close\r\n\r\nGateway Timeout\n$/);
    // Within a sweep tick (request_timeout / 4) of the deadline.
    expect(late.closedAt()! - t0).toBeGreaterThanOrEqual(500);
    expect(late.closedAt()! - t0).toBeLessThanOrEqual(500 + 125 + 10);
    await c.os.sleep(2000); // the app writes into the abandoned response
    const r = await get(c.os, ADDR, '/');
    expect(r.status).toBe(200);
    expect(c.workers()).toEqual([pid]);
    expect(c.log()).toMatch(/request_timeout \(0\.5s\): 504 to [\d.]+:\d+ for GET \/sleep\?ms=2000: no answer begun after \d+ ms/);
    expect(c.log()).not.toMatch(/exited with code|ERR_HTTP_HEADERS_SENT|error handling/);
    // An answer begun in time is left alone, however long it then takes.
    const slowBody = await get(c.os, ADDR, '/big?kb=64');
    expect(slowBody.status).toBe(200);
  });
});

test('a TERM during a HUP\'s gentle drain ends the old worker at once, not at graceful_timeout', async () => {
  await simulate(14, args('--keep-alive', '20', '--graceful-timeout', '30'), async (c) => {
    await c.booted(1);
    // An idle keep-alive connection holds the old worker in its gentle drain.
    const idle = await raw(c, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.os.sleep(100);
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000);
    const t0 = c.os.now();
    c.signal('SIGTERM');
    await c.exited(10_000);
    expect(c.os.now() - t0).toBeLessThan(2000);
    expect(idle.closedAt()).not.toBeNull();
  });
});

/** The whole answers in `text`, in order: status, whether it said Connection: close, body (Content-Length or chunked). */
function answersIn(text: string): { status: number; close: boolean; body: string }[] {
  const out: { status: number; close: boolean; body: string }[] = [];
  let at = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) return out;
    const head = text.slice(at, end);
    let body = '';
    at = end + 4;
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        const line = text.indexOf('\r\n', at);
        if (line < 0) return out;
        const size = Number.parseInt(text.slice(at, line), 16);
        if (size === 0) {
          at = line + 4; // the last chunk's empty line: no trailers here
          break;
        }
        body += text.slice(line + 2, line + 2 + size);
        at = line + 2 + size + 2;
      }
    } else {
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (text.length < at + length) return out;
      body = text.slice(at, at + length);
      at += length;
    }
    out.push({ status: Number(head.slice(9, 12)), close: /\r\nconnection: *close/i.test(head), body });
  }
}

const PIPELINED = 'GET /sleep?ms=800 HTTP/1.1\r\nHost: x\r\n\r\nGET /count HTTP/1.1\r\nHost: x\r\n\r\nGET /count HTTP/1.1\r\nHost: x\r\n\r\n';

for (const sig of ['SIGHUP', 'SIGTERM'] as const) {
  test(`${sig}: every pipelined request the app already has is answered; the connection closes after them (TERM) or says close on its next answer (HUP)`, async () => {
    await simulate(31, args('--keep-alive', '20'), async (c) => {
      await c.booted(1);
      const r = await raw(c, PIPELINED);
      await c.os.sleep(150);
      c.signal(sig);
      await c.os.sleep(2000);
      // Before: the first answer said close, node:http closed after it, and the app's two /count answers were dropped.
      // Theirs were written before the signal (the app answers at once): they keep the keep-alive they said.
      const got = answersIn(r.text());
      expect(got.map((a) => [a.status, a.close])).toEqual([[200, false], [200, false], [200, false]]);
      expect(got.slice(1).map((a) => a.body)).toEqual(['1', '2']);
      if (sig === 'SIGTERM') {
        expect(r.closedAt()).not.toBeNull();
        return;
      }
      r.write('GET /count HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.os.sleep(100);
      expect(answersIn(r.text()).slice(3).map((a) => [a.body, a.close])).toEqual([['3', true]]);
      expect(r.closedAt()).not.toBeNull();
    });
  });
}

test('HUP: of pipelined requests whose answers have not begun, only the newest says Connection: close', async () => {
  await simulate(35, args('--keep-alive', '20'), async (c) => {
    await c.booted(1);
    const r = await raw(c, 'GET /sleep?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
    await c.os.sleep(100);
    c.signal('SIGHUP');
    await c.os.sleep(2000);
    expect(answersIn(r.text()).map((a) => [a.status, a.close])).toEqual([[200, false], [200, false], [200, true]]);
    expect(r.closedAt()).not.toBeNull();
  });
});

test('max_requests: a pipelined request that comes while the answer that closes is not begun is answered, and takes the close over; none behind a close is run', async () => {
  await simulate(32, args('--max-requests', '2', '--keep-alive', '20', '--access-log', '/tmp/access.log'), async (c) => {
    await c.booted(1);
    const r = await raw(c, 'GET /count HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(5));
    await c.os.sleep(2000);
    // Before: five lines, the last two `499 -` (the client was blamed for answers node:http dropped).
    expect(c.os.fs.readFile('/tmp/access.log').match(/"GET \/count HTTP\/1\.1" 200/g)).toHaveLength(3);
    expect(c.os.fs.readFile('/tmp/access.log')).not.toMatch(/ 499 /);
    // The app answers /count at once: the third is the newest when the drain begins, and its answer is begun at once
    // with the close; the two behind it are never given to the app (before: run, their answers dropped, 4 of 5 lost
    // or run for nothing). The client sends them again on a new connection, as after any close.
    const got = answersIn(r.text());
    expect(got.map((a) => [a.body, a.close])).toEqual([['1', false], ['2', false], ['3', true]]);
    expect(r.closedAt()).not.toBeNull();
  });
});

test('a request pipelined behind an answer that closes the connection (keep_alive 0) never reaches the app: node:http would drop its answer', async () => {
  await simulate(33, args('--keep-alive', '0'), async (c) => {
    await c.booted(1);
    const r = await raw(c, 'GET /count HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
    await c.os.sleep(500);
    expect(answersIn(r.text()).map((a) => [a.body, a.close])).toEqual([['1', true]]);
    expect(r.closedAt()).not.toBeNull();
    // Before: the app had run all three ("4" here).
    expect((await get(c.os, ADDR, '/count')).body).toBe('2');
  });
});

test('TERM: a connection whose request head is half here is not cut: the request is answered, with Connection: close', async () => {
  await simulate(34, args('--graceful-timeout', '10'), async (c) => {
    await c.booted(1);
    const r = await raw(c, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Le');
    await c.os.sleep(100);
    c.signal('SIGTERM');
    await c.os.sleep(300);
    r.write('ngth: 5\r\n\r\nhello');
    await c.os.sleep(1000);
    // Before: closed at the TERM, unanswered.
    const got = answersIn(r.text());
    expect(got.map((a) => [a.status, a.close])).toEqual([[200, true]]);
    expect(await c.exited(10_000)).toMatchObject({ code: 0 });
  });
});

test('TERM past graceful_timeout: the fast worker still answering goes at the deadline; the idle slow-lane worker gets its own TERM and exits, not a KILL', async () => {
  await simulate(36, args('--graceful-timeout', '2'), async (c) => {
    await c.booted(1);
    const slowPid = Number(/slow-lane worker (\d+) booted/.exec(c.log())![1]);
    await raw(c, 'GET /sleep?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.os.sleep(100);
    const from = c.log().length;
    c.signal('SIGTERM');
    expect((await c.exited(15_000)).code).toBe(0);
    const log = c.log().slice(from);
    expect(log).toMatch(/graceful timeout: closing 1 connection\(s\) with 1 request\(s\) in flight/);
    // Before: "Worker <slow> still running after graceful_timeout: KILL", then an ERROR "was killed by SIGKILL": it was never asked.
    expect(log).not.toMatch(new RegExp(`Worker ${slowPid} (still running|was killed)`));
    expect(log).toMatch(new RegExp(`Worker ${slowPid} exited`));
  });
});

test("the Date header is the simulated wall clock's, and turns with its second, not with each request", async () => {
  await simulate(11, args(), async (c) => {
    await c.booted(1);
    const dateAt = async (): Promise<{ date: string; wall: number }> => {
      const r = await raw(c, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      const wall = c.os.wallTime();
      while (r.closedAt() === null) await c.os.sleep(1);
      return { date: /\r\ndate: ([^\r]+)\r\n/i.exec(r.text())?.[1] ?? '', wall };
    };
    // Just after a second begins, then twice within it, then in the next one.
    await c.os.sleep(1000 - (c.os.wallTime() % 1000) + 5);
    const a = await dateAt();
    const b = await dateAt();
    expect(a.date).toBe(httpDate(a.wall));
    expect(Math.floor(b.wall / 1000)).toBe(Math.floor(a.wall / 1000));
    expect(b.date).toBe(a.date);
    await c.os.sleep(1000);
    const n = await dateAt();
    expect(n.date).toBe(httpDate(n.wall));
    expect(new Date(n.date).getTime() - new Date(a.date).getTime()).toBe(1000);
  });
});
