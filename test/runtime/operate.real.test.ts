// Operating drover on the real OS (issue 13): the admin listener's /metrics
// checked by promtool against the requests sent, /readyz across a boot, a
// reload and a stop, JSON logs, max_worker_rss and request_timeout under load.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Agent, createServer, request } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { loops } from '../support/load.js';
import { APPS, freePort, get, perTest } from './drover.js';

const OPS = join(APPS, 'ops.js');
const t = perTest();

/** One control request over the Unix socket, its reply. */
function control(path: string, req: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => s.write(JSON.stringify(req) + '\n'));
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        s.destroy();
        resolve(JSON.parse(text.slice(0, nl)) as Record<string, unknown>);
      }
    });
    s.on('error', reject);
  });
}

function sample(metrics: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] === undefined ? [] : m[2].split(/,(?=[a-z_]+=")/);
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)} in:\n${metrics}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(what: string, ok: () => Promise<boolean> | boolean, timeout = 15_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The status of GET path, or 0 when the connection is refused or reset. */
async function status(port: number, path: string): Promise<number> {
  try {
    return (await get(port, path)).status;
  } catch {
    return 0;
  }
}

test('/metrics passes promtool and counts what was sent, by lane and status class; ctl stats is current within 100 ms', async () => {
  const dir = t.dir();
  const [port, admin] = [await freePort(), await freePort()];
  const ctl = join(dir, 'ctl.sock');
  writeFileSync(join(dir, 'drover.config.json'), JSON.stringify({
    app: OPS, bind: [`127.0.0.1:${port}`], admin_bind: `127.0.0.1:${admin}`, workers: 2, control_socket: ctl,
    slow_routes: ['GET /burn'],
    companions: [{ name: 'ticker', command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'] }],
  }));
  const d = t.drover(['-c', join(dir, 'drover.config.json')]);
  await d.waitFor(/worker \d+ booted[\s\S]*worker \d+ booted[\s\S]*worker \d+ booted/);
  await until('the companion to run', async () => (await get(admin, '/metrics')).body.includes('drover_companion_state{name="ticker",state="RUNNING"} 1'));

  for (let i = 0; i < 20; i++) expect((await get(port, '/')).status).toBe(200);
  for (let i = 0; i < 2; i++) expect((await get(port, '/status?code=404')).status).toBe(404);
  expect((await get(port, '/status?code=503')).status).toBe(503);
  for (let i = 0; i < 3; i++) expect((await get(port, '/burn?ms=20')).status).toBe(200);
  // Current within 100 ms of the last answer, without waiting for a heartbeat.
  await sleep(100);
  const stats = await control(ctl, { cmd: 'stats' });
  const procs = stats.processes as { role: string; served: number; rss: number | null }[];
  expect(procs.filter((p) => p.role === 'fast').reduce((n, p) => n + p.served, 0)).toBe(26);
  expect(procs.every((p) => typeof p.rss === 'number' && p.rss > 1e6)).toBe(true);

  const m = await get(admin, '/metrics');
  expect(m.status).toBe(200);
  const text = m.body;
  expect(sample(text, 'drover_responses_total', { lane: 'fast', code: '2xx' })).toBe(20);
  expect(sample(text, 'drover_responses_total', { lane: 'fast', code: '4xx' })).toBe(2);
  expect(sample(text, 'drover_responses_total', { lane: 'fast', code: '5xx' })).toBe(1);
  expect(sample(text, 'drover_responses_total', { lane: 'slow', code: '2xx' })).toBe(3);
  expect(sample(text, 'drover_request_duration_seconds_count', { lane: 'fast' })).toBe(23);
  expect(sample(text, 'drover_request_duration_seconds_bucket', { lane: 'slow', le: '+Inf' })).toBe(3);
  expect(sample(text, 'drover_request_duration_seconds_bucket', { lane: 'slow', le: '0.01' })).toBe(0); // each burnt 20 ms
  expect(sample(text, 'drover_workers', { lane: 'fast', generation: '1', state: 'serving' })).toBe(2);
  expect(sample(text, 'drover_workers', { lane: 'slow', generation: '1', state: 'serving' })).toBe(1);
  expect(sample(text, 'drover_worker_boots_total', { lane: 'fast' })).toBe(2);
  expect(sample(text, 'drover_companion_manager_up')).toBe(1);
  expect(sample(text, 'drover_build_info', { version: JSON.parse(readFileSync(join(APPS, '..', '..', 'package.json'), 'utf8')).version })).toBe(1);
  expect(sample(text, 'drover_process_resident_memory_bytes', { role: 'arbiter' })).toBeGreaterThan(1e6);

  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  expect(check.error, 'promtool is needed: apt-get install prometheus (.ci/run installs it)').toBeUndefined();
  expect(`${check.stdout}${check.stderr}`).toBe('');
  expect(check.status).toBe(0);

  // Counts outlive the workers that made them: a reload replaces both.
  d.kill('SIGHUP');
  await d.waitFor(/Reload finished: generation 2/);
  await until('the old generation to be gone', async () => !(await get(admin, '/metrics')).body.includes('generation="1",state='));
  const after = (await get(admin, '/metrics')).body;
  expect(sample(after, 'drover_responses_total', { lane: 'fast', code: '2xx' })).toBe(20);
  expect(sample(after, 'drover_reloads_total', { result: 'ok' })).toBe(1);
  expect(sample(after, 'drover_worker_exits_total', { lane: 'fast', cause: 'reload' })).toBe(2);

  // Nothing else is served there.
  expect((await get(admin, '/')).status).toBe(404);
  expect((await get(admin, '/metrics/../etc')).status).toBe(404);
});

test('/healthz and /readyz: not ready while booting, ready through a reload, not ready while stopping', async () => {
  const [port, admin] = [await freePort(), await freePort()];
  const d = t.drover([OPS, '-b', `127.0.0.1:${port}`, '--admin-bind', `127.0.0.1:${admin}`, '-w', '1', '--lanes', 'off'], { OPS_BOOT_MS: '1000' });
  await until('the admin listener', async () => (await status(admin, '/healthz')) === 200);
  expect(await status(admin, '/readyz')).toBe(503); // the factory still waits
  await d.waitFor(/worker \d+ booted/);
  expect(await status(admin, '/readyz')).toBe(200);

  // A reload: the old generation serves until the new one does, so ready throughout.
  const seen = new Set<number>();
  const from = d.log().length;
  d.kill('SIGHUP');
  const polling = (async () => {
    while (!/Reload finished/.test(d.log().slice(from))) {
      seen.add(await status(admin, '/readyz'));
      await sleep(20);
    }
  })();
  await d.waitFor(/Reload finished/, 15_000, from);
  await polling;
  expect([...seen]).toEqual([200]);

  // A stop with a request in flight: healthz still answers, readyz says 503 until the arbiter is gone.
  const inflight = get(port, '/late?ms=1500');
  await sleep(100);
  d.kill('SIGTERM');
  await d.waitFor(/Shutting down gracefully/);
  expect(await status(admin, '/readyz')).toBe(503);
  expect(await status(admin, '/healthz')).toBe(200);
  expect((await inflight).status).toBe(200);
  expect((await d.exited()).code).toBe(0);
  expect(await status(admin, '/healthz')).toBe(0);
});

test('a reload to an admin_bind that is in use keeps the old admin listener, and says so naming admin_bind; one to a free address moves it', async () => {
  const dir = t.dir();
  const [port, adminA, adminB, adminC] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const file = join(dir, 'drover.config.json');
  const config = (admin: number) => writeFileSync(file, JSON.stringify({ app: OPS, bind: [`127.0.0.1:${port}`], workers: 1, lanes: false, admin_bind: `127.0.0.1:${admin}` }));
  config(adminA);
  const d = t.drover(['--config', file]);
  await d.waitFor(/worker \d+ booted/);
  expect((await get(adminA, '/healthz')).status).toBe(200);
  // Something else holds adminB.
  const squatter = createServer().listen(adminB, '127.0.0.1');
  await once(squatter, 'listening');
  try {
    config(adminB);
    let from = d.log().length;
    d.kill('SIGHUP');
    await d.waitFor(/Reload finished/, 15_000, from);
    const said = await d.waitFor(/cannot listen at admin_bind [^\n]*/, 5000, from);
    expect(said[0]).toBe(`cannot listen at admin_bind 127.0.0.1:${adminB}: the address is in use; stop what holds it or choose another admin_bind (--admin-bind); the admin listener stays at 127.0.0.1:${adminA}`);
    expect((await get(adminA, '/healthz')).status).toBe(200);
    config(adminC);
    from = d.log().length;
    d.kill('SIGHUP');
    await d.waitFor(new RegExp(`Admin listener at: http://127\\.0\\.0\\.1:${adminC} `), 15_000, from);
    expect((await get(adminC, '/healthz')).status).toBe(200);
    expect(await status(adminA, '/healthz')).toBe(0); // the old one is gone
  } finally {
    squatter.close();
  }
});

test('log_format json: every line of the error and access logs is one JSON object; X-Forwarded-For from a trusted proxy names the client', async () => {
  const dir = t.dir();
  const port = await freePort();
  const access = join(dir, 'access.log');
  const d = t.drover([OPS, '-b', `127.0.0.1:${port}`, '-w', '1', '--log-format', 'json', '--access-log', access, '--slow-routes', 'GET /burn']);
  await d.waitFor(/worker \d+ booted/);
  const spoofed = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/users/42?x=1', headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.9' } }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end('');
  });
  expect(spoofed).toBe(200);
  expect((await get(port, '/burn?ms=5')).status).toBe(200);
  d.kill('SIGHUP');
  await d.waitFor(/Reload finished/);
  d.kill('SIGTERM');
  await d.exited();

  const lines = d.log().trim().split('\n');
  expect(lines.length).toBeGreaterThan(10);
  const objects = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const o of objects) {
    expect(Object.keys(o).slice(0, 5)).toEqual(['ts', 'level', 'pid', 'role', 'msg']);
    expect(o.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  expect(new Set(objects.map((o) => o.role))).toEqual(new Set(['arbiter', 'worker', 'slow-worker']));
  const acc = readFileSync(access, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(acc).toHaveLength(2);
  // The peer is 127.0.0.1, a trusted proxy by default: the rightmost address it vouches for is the client.
  expect(acc[0]).toMatchObject({ msg: 'access', remote: '203.0.113.9', method: 'GET', url: '/users/42?x=1', status: 200, lane: 'fast', route: 'GET /users/:id' });
  expect(acc[1]).toMatchObject({ remote: '127.0.0.1', lane: 'slow', route: 'GET /burn' });
  expect(typeof acc[1]!.duration_ms).toBe('number');
});

test('max_worker_rss: workers that grow past it are replaced one at a time under load, no request failing', async () => {
  const [port, admin] = [await freePort(), await freePort()];
  const d = t.drover([OPS, '-b', `127.0.0.1:${port}`, '--admin-bind', `127.0.0.1:${admin}`, '-w', '2', '--lanes', 'off', '--max-worker-rss', '160M']);
  await d.waitFor(/worker \d+ booted[\s\S]*worker \d+ booted/);
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const load = loops(4, (i) => get(port, i === 0 ? '/leak?mb=4' : '/', agent), () => sleep(10), () => agent.destroy());
  await d.waitFor(/Worker (\d+) holds \d+\.\d MiB, over max_worker_rss \(160\.0 MiB\): recycling it/, 30_000);
  const pid = /Worker (\d+) holds/.exec(d.log())![1];
  await d.waitFor(new RegExp(`Worker ${pid} exited with code 0`), 30_000);
  const stats = await load.stop();
  expect(stats.failed, stats.errors.join('\n')).toBe(0);
  expect(stats.ok).toBeGreaterThan(100);
  const metrics = (await get(admin, '/metrics')).body;
  expect(sample(metrics, 'drover_worker_exits_total', { lane: 'fast', cause: 'rss' })).toBeGreaterThanOrEqual(1);
});

test('max_worker_rss under what a worker holds once booted: said once, and no worker is recycled for it, under load', async () => {
  const port = await freePort();
  const d = t.drover([join(APPS, 'heavy.js'), '-b', `127.0.0.1:${port}`, '-w', '1', '--lanes', 'off', '--max-worker-rss', '64M']);
  await d.waitFor(/worker \d+ booted/);
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const load = loops(2, () => get(port, '/', agent), () => sleep(10), () => agent.destroy());
  await d.waitFor(/held \d+\.\d MiB as soon as it booted, over max_worker_rss \(64\.0 MiB\): a replacement would start over it too/, 15_000);
  await sleep(3000);
  const stats = await load.stop();
  expect(stats.failed, stats.errors.join('\n')).toBe(0);
  // Before: each worker recycled as soon as it served, one boot after another.
  expect(d.log()).not.toMatch(/recycling it/);
  expect(d.log().match(/Booting worker/g)).toHaveLength(1);
  expect(d.log().match(/as soon as it booted/g)).toHaveLength(1);
});

test('request_timeout: an answer not begun in time is a 504 logged with its route; the app writing later breaks nothing; other requests under load all succeed', async () => {
  const [port, admin] = [await freePort(), await freePort()];
  const d = t.drover([OPS, '-b', `127.0.0.1:${port}`, '--admin-bind', `127.0.0.1:${admin}`, '-w', '1', '--request-timeout', '0.4', '--slow-routes', 'GET /hang/slow']);
  await d.waitFor(/(?<!slow-lane )worker (\d+) booted/);
  await d.waitFor(/slow-lane worker (\d+) booted/);
  const worker = /(?<!slow-lane )worker (\d+) booted/.exec(d.log())![1];
  const agent = new Agent({ keepAlive: true, maxSockets: 3 });
  const load = loops(3, () => get(port, '/', agent), () => sleep(10), () => agent.destroy());
  const t0 = Date.now();
  const [hang, late, slow] = await Promise.all([get(port, '/hang'), get(port, '/late?ms=800'), get(port, '/hang/slow')]);
  const took = Date.now() - t0;
  expect([hang.status, late.status, slow.status]).toEqual([504, 504, 504]);
  expect(took).toBeGreaterThanOrEqual(400);
  await sleep(800); // /late writes its head into the abandoned response
  const stats = await load.stop();
  expect(stats.failed, stats.errors.join('\n')).toBe(0);
  expect(stats.pids).toEqual(new Set([worker])); // the same worker throughout: nothing crashed it
  await d.waitFor(/request_timeout \(0\.4s\): 504 to 127\.0\.0\.1:\d+ for GET \/(hang|late)/);
  expect(d.log()).not.toMatch(/ERR_HTTP_HEADERS_SENT|exited with code [1-9]/);
  // The slow lane's slot was given back: the next slow request gets one.
  expect((await get(port, '/hang/slow')).status).toBe(504);
  await sleep(100); // its count is reported within 100 ms
  const metrics = (await get(admin, '/metrics')).body;
  expect(sample(metrics, 'drover_shed_requests_total', { reason: 'request_timeout' })).toBe(4);
  expect(sample(metrics, 'drover_responses_total', { lane: 'fast', code: '5xx' })).toBe(2);
  expect(sample(metrics, 'drover_responses_total', { lane: 'slow', code: '5xx' })).toBe(2);
});

test('process titles: ps shows what each drover process is', async () => {
  const port = await freePort();
  const d = t.drover([OPS, '-b', `127.0.0.1:${port}`, '-w', '1']);
  await d.waitFor(/slow-lane worker \d+ booted/);
  await d.waitFor(/worker \d+ booted[\s\S]*worker \d+ booted/);
  const ps = execFileSync('ps', ['-o', 'args=', '-g', String(d.pid)], { encoding: 'utf8' });
  expect(ps).toContain('drover: arbiter [ops.js]');
  expect(ps).toContain('drover: worker gen 1 [ops.js]');
  expect(ps).toContain('drover: slow worker gen 1');
});

test('the admin listener holds its clients to bounds: at 32 idle connections a probe is still answered (the oldest idle one goes); a trickled head is cut off; pipelining closes; a huge head is refused; the server serves on', async () => {
  const [port, admin] = [await freePort(), await freePort()];
  const d = t.drover([OPS, '-b', `127.0.0.1:${port}`, '--admin-bind', `127.0.0.1:${admin}`, '-w', '1', '--lanes', 'off']);
  await d.waitFor(/worker \d+ booted/);
  const open = (): Promise<{ closed: Promise<number> }> =>
    new Promise((resolve, reject) => {
      const s = connect(admin, '127.0.0.1', () => {
        const at = Date.now();
        resolve({ closed: new Promise((r) => s.once('close', () => r(Date.now() - at))) });
      });
      s.on('error', () => {});
      s.once('error', reject);
    });
  const held = [];
  for (let i = 0; i < 32; i++) held.push(await open());
  // A probe past the cap is answered; the connection idle longest made room for it.
  expect((await get(admin, '/healthz')).status).toBe(200);
  expect(await Promise.race([held[0]!.closed.then(() => 'closed'), sleep(1000).then(() => 'open')])).toBe('closed');
  // A head trickled a byte every 200 ms never becomes a request: closed after 5 s, however busy it keeps the socket.
  const trickled = await new Promise<number>((resolve) => {
    const s = connect(admin, '127.0.0.1', () => {
      const at = Date.now();
      const head = 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
      let i = 0;
      const tick = setInterval(() => (s.destroyed ? clearInterval(tick) : s.write(head[i++ % head.length]!)), 200);
      s.once('close', () => {
        clearInterval(tick);
        resolve(Date.now() - at);
      });
    });
    s.on('error', () => {});
  });
  expect(trickled).toBeGreaterThanOrEqual(4500);
  expect(trickled).toBeLessThan(7000);
  // Pipelined requests: the connection is closed, not fed one /metrics body per request of its read.
  const piped = await new Promise<number>((resolve) => {
    const s = connect(admin, '127.0.0.1', () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200)));
    let answers = 0;
    s.setEncoding('utf8').on('data', (c: string) => (answers += c.split('HTTP/1.1 200').length - 1));
    s.on('error', () => {});
    s.once('close', () => resolve(answers));
  });
  expect(piped).toBeLessThanOrEqual(1);
  // A head over 8 KiB: 431, not buffered.
  const big = await new Promise<number>((resolve) => {
    const s = connect(admin, '127.0.0.1', () => s.write(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`));
    let text = '';
    s.setEncoding('utf8').on('data', (c: string) => (text += c));
    s.on('error', () => {});
    s.once('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0)));
  });
  expect([0, 431]).toContain(big); // closed, or refused with 431: never served
  // The public listener is not affected by the admin one's state, and the admin one still answers.
  expect((await get(port, '/')).status).toBe(200);
  expect((await get(admin, '/readyz')).status).toBe(200);
  d.kill('SIGTERM');
  expect((await d.exited()).code).toBe(0);
  for (const h of held) await h.closed;
}, 30_000);
