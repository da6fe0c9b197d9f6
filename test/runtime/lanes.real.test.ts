// Lanes on the real OS: real processes, a real CPU-bound route, the slow
// lane's own Unix sockets, real signals.
import { readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { APPS, freePort, get, removeTmp, startDrover, tmp, type Drover } from './drover.js';
import { alive } from '../os/helpers.js';

const APP = join(APPS, 'lanes-real.js');
const running: Drover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.cleanup();
  for (const d of dirs.splice(0)) removeTmp(d);
});

/** A drover with lanes on and a 100 ms threshold, its runtime dir (XDG_RUNTIME_DIR) private to the test. */
async function lanes(...more: string[]) {
  const port = await freePort();
  const runtime = tmp();
  dirs.push(runtime);
  const d = startDrover([APP, '--bind', `127.0.0.1:${port}`, '--workers', '2', '--slow-threshold', '0.1', ...more], { XDG_RUNTIME_DIR: runtime });
  running.push(d);
  await d.waitFor(/(?:[^]*?(?<!lane )worker \d+ booted){2}/);
  const slowPid = Number((await d.waitFor(/slow-lane worker (\d+) booted/))[1]);
  return { d, port, runtime, slowPid };
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Full { status: number; message: string; raw: string[]; body: string; trailers: string[]; headers: Record<string, unknown> }

function send(port: number, path: string, opts: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Full> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () =>
        resolve({ status: res.statusCode!, message: res.statusMessage!, raw: res.rawHeaders, body, trailers: res.rawTrailers, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('a route seen slow once runs on the slow worker from then on; fast requests stay on fast workers meanwhile', async () => {
  const { d, port, slowPid } = await lanes();
  const first = await get(port, '/burn?ms=150');
  expect(Number(first.body)).not.toBe(slowPid); // unknown routes are fast: the first one runs where it landed
  await d.waitFor(/route GET \/burn is slow/);
  // Learned by one worker, known to both within a second.
  await sleep(200);
  const burns = Promise.all(Array.from({ length: 3 }, () => get(port, '/burn?ms=150')));
  const fast = await Promise.all(Array.from({ length: 20 }, () => get(port, '/')));
  for (const r of await burns) expect(Number(r.body)).toBe(slowPid);
  for (const r of fast) {
    expect(r.status).toBe(200);
    expect(Number(r.body)).not.toBe(slowPid);
  }
});

test('the answer comes back unchanged: status and reason, duplicate headers, chunked body, trailers; a POST body goes through', async () => {
  const { port, slowPid } = await lanes('--slow-routes', 'GET /stream,POST /echo');
  const r = await send(port, '/stream');
  expect(r.status).toBe(207);
  expect(r.message).toBe('Mixed Bag');
  expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  expect(Number(r.headers['x-pid'])).toBe(slowPid);
  expect(r.headers['transfer-encoding']).toBe('chunked');
  expect(r.body).toBe('one,two');
  expect(r.trailers).toEqual(['x-sum', '7']);
  const body = 'x'.repeat(200_000);
  const e = JSON.parse((await send(port, '/echo', { method: 'POST', body, headers: { 'x-drover-client': '6.6.6.6 66' } })).body);
  expect(e).toEqual({ pid: slowPid, body, remote: '127.0.0.1', spoof: null });
});

test('a slow worker killed mid-request: the client gets 502, not a hang, and a new slow worker takes over', async () => {
  const { d, port, slowPid } = await lanes('--slow-routes', 'GET /burn');
  const pending = get(port, '/burn?ms=3000');
  await sleep(500);
  process.kill(slowPid, 'SIGKILL');
  const r = await pending;
  expect(r.status).toBe(502);
  const next = Number((await d.waitFor(/slow-lane worker (\d+) booted[^]*slow-lane worker (\d+) booted/))[2]);
  expect(next).not.toBe(slowPid);
  expect(Number((await get(port, '/burn?ms=10')).body)).toBe(next);
});

test('a slow worker whose socket was removed (a tmp cleaner) is replaced; the request that found it refused waits and is served (no 502)', async () => {
  // The same path as a slow worker dead but not yet reaped, whose freed slot
  // was named to the next request: its fast worker finds the socket refused
  // (ENOENT here, ECONNREFUSED there), nothing was sent, so it asks again.
  const { d, port, runtime, slowPid } = await lanes('--slow-routes', 'GET /burn');
  const dir = join(runtime, 'drover', readdirSync(join(runtime, 'drover')).find((n) => n.startsWith('lanes-'))!);
  const from = d.log().length;
  for (const s of readdirSync(dir)) rmSync(join(dir, s));
  const r = await get(port, '/burn?ms=10');
  expect(r.status).toBe(200);
  const log = d.log().slice(from);
  expect(log).toMatch(new RegExp(`slow-lane worker ${slowPid} refused a connection`));
  const next = Number(/slow-lane worker (\d+) booted/.exec(log)![1]);
  expect(Number(r.body)).toBe(next);
  expect(Number((await get(port, '/burn?ms=10')).body)).toBe(next);
  await sleep(500);
  expect(alive(slowPid)).toBe(false); // drained: it served nobody any more
});

test('a slow worker that refused a connection while it still runs a long request is replaced at once, not when that request ends', async () => {
  const { d, port, runtime, slowPid } = await lanes('--slow-routes', 'GET /burn', '--slow-concurrency', '2');
  const dir = join(runtime, 'drover', readdirSync(join(runtime, 'drover')).find((n) => n.startsWith('lanes-'))!);
  const long = get(port, '/burn?ms=4500');
  await sleep(300);
  for (const s of readdirSync(dir)) rmSync(join(dir, s));
  const t0 = Date.now();
  const r = await get(port, '/burn?ms=10');
  expect(r.status).toBe(200);
  expect(Number(r.body)).not.toBe(slowPid);
  // Before: served by the replacement booted once the 4.5 s burn had ended.
  expect(Date.now() - t0).toBeLessThan(3000);
  expect(Number((await long).body)).toBe(slowPid); // it finished its request
  await d.waitFor(new RegExp(`Worker ${slowPid} exited with code 0`), 5000);
});

test('fast workers killed while a request runs in the slow lane: its slot stays taken until the slow worker lets go', { timeout: 60_000 }, async () => {
  // slow_queue 0: a slow request finds the one slot free or is answered 503 at once.
  const { d, port, slowPid } = await lanes('--slow-routes', 'GET /burn', '--slow-queue', '0');
  const fast = [...d.log().matchAll(/(?<!lane )worker (\d+) booted/g)].map((m) => Number(m[1]));
  expect(fast).toHaveLength(2);
  // A burn long enough for two fast workers to boot meanwhile (real tests run one file at a time).
  const burnMs = 5000;
  const orphan = get(port, `/burn?ms=${burnMs}`).then(() => 'answered', () => 'reset');
  const burnEnds = Date.now() + burnMs;
  await sleep(300);
  // Whichever of the two took it: both go, and two new ones boot.
  const from = d.log().length;
  for (const pid of fast) process.kill(pid, 'SIGKILL');
  expect(await orphan).toBe('reset');
  await d.waitFor(/(?:[^]*?(?<!lane )worker \d+ booted){2}/, 10_000, from);
  // The slow worker still burns on the orphan: no slot.
  expect(Date.now()).toBeLessThan(burnEnds - 200);
  expect((await send(port, '/burn?ms=10')).status).toBe(503);
  // Once its burn is over it lets go, and the slot is free again.
  await sleep(burnEnds - Date.now() + 1000);
  const after = await get(port, '/burn?ms=10');
  expect(after.status).toBe(200);
  expect(Number(after.body)).toBe(slowPid);
});

test('a full slow lane answers 503 with Retry-After; fast requests are not shed', async () => {
  const { port, slowPid } = await lanes('--slow-routes', 'GET /burn', '--slow-queue', '0');
  const busy = get(port, '/burn?ms=800');
  await sleep(200);
  const shed = await send(port, '/burn?ms=10');
  expect(shed.status).toBe(503);
  expect(Number(shed.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect((await get(port, '/')).status).toBe(200);
  expect(Number((await busy).body)).toBe(slowPid);
});

test('the slow sockets are private (dir 0700, sockets 0600) and gone after TERM; SIGKILL of the arbiter leaves no slow worker', async () => {
  const { d, runtime, slowPid } = await lanes();
  const dir = join(runtime, 'drover', readdirSync(join(runtime, 'drover')).find((n) => n.startsWith('lanes-'))!);
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  const socks = readdirSync(dir);
  expect(socks).toHaveLength(1);
  expect(statSync(join(dir, socks[0]!)).mode & 0o777).toBe(0o600);
  d.kill('SIGTERM');
  expect(await d.exited()).toEqual({ code: 0, signal: null });
  expect(existsSync(dir)).toBe(false);
  expect(alive(slowPid)).toBe(false);

  const again = await lanes();
  process.kill(again.d.pid, 'SIGKILL');
  await sleep(1000);
  expect(alive(again.slowPid)).toBe(false);
});

test('lanes off: no slow worker; duplicate headers reach the client and a Date is added', async () => {
  const port = await freePort();
  const d = startDrover([APP, '--bind', `127.0.0.1:${port}`, '--workers', '1', '--lanes', 'off']);
  running.push(d);
  await d.waitFor(/worker \d+ booted/);
  const r = await send(port, '/stream');
  expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  expect(new Date(r.headers.date as string).getTime()).toBeGreaterThan(Date.now() - 60_000);
  expect((await get(port, '/burn?ms=150')).status).toBe(200);
  expect(d.log()).not.toMatch(/slow-lane/);
});

test('a SIGKILLed arbiter\'s socket directory is removed by the next drover that uses the same runtime dir', async () => {
  const first = await lanes();
  const stale = join(first.runtime, 'drover', readdirSync(join(first.runtime, 'drover')).find((n) => n.startsWith('lanes-'))!);
  process.kill(first.d.pid, 'SIGKILL');
  await first.d.exited();
  await sleep(300);
  expect(existsSync(stale)).toBe(true);
  const port = await freePort();
  const next = startDrover([APP, '--bind', `127.0.0.1:${port}`, '--workers', '1'], { XDG_RUNTIME_DIR: first.runtime });
  running.push(next);
  await next.waitFor(/slow-lane worker \d+ booted/);
  expect(existsSync(stale)).toBe(false);
  expect(readdirSync(join(first.runtime, 'drover')).filter((n) => n.startsWith('lanes-'))).toEqual([`lanes-${next.pid}`]);
});
