// start(): a real drover started through the API, on loopback. Every server
// a test starts is stopped (or killed) after it, and its workers with it.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { start, type DroverServer } from '../../src/index.js';
import { alive } from '../os/helpers.js';
import { APPS, freePort, get, tmp, removeTmp } from '../runtime/drover.js';

const BASIC = join(APPS, 'basic.js');
const servers: DroverServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    const stopped = await Promise.race([s.stop().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000))]);
    if (!stopped) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await s.exited;
    }
  }
  for (const d of dirs.splice(0)) removeTmp(d);
});

function server(...a: Parameters<typeof start>): DroverServer {
  const s = start(...a);
  servers.push(s);
  return s;
}

function dir(): string {
  const d = tmp();
  dirs.push(d);
  return d;
}

async function gone(pid: number, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

test('ready, addresses, GET, reload to a new generation, stop: exit 0 and every worker gone', async () => {
  const port = await freePort();
  const s = server({ config: { app: BASIC, bind: `127.0.0.1:${port}`, workers: 2, lanes: false }, stdio: 'pipe' });
  expect(s.addresses).toEqual([]);
  await s.ready;
  expect(s.addresses).toEqual([`http://127.0.0.1:${port}`]);
  expect(s.generation).toBe(1);
  expect(s.status).toBe('generation 1 serving, 2 workers');
  const before = Number((await get(port)).body);
  expect(alive(before)).toBe(true);

  await s.reload();
  expect(s.generation).toBe(2);
  // The old generation drains; new connections reach the new one.
  expect(await gone(before)).toBe(true);
  const after = Number((await get(port)).body);
  expect(after).not.toBe(before);

  await s.stop();
  expect(await s.exited).toEqual({ code: 0, signal: null });
  expect(alive(after)).toBe(false);
  await expect(get(port)).rejects.toThrow(/ECONNREFUSED/);
});

test('port 0: addresses and the log name the port the system gave, for the server and the admin listener', async () => {
  const s = server({ config: { app: BASIC, bind: '127.0.0.1:0', admin_bind: '127.0.0.1:0', workers: 1, lanes: false }, stdio: 'pipe' });
  await s.ready;
  // Before: 'http://127.0.0.1:0', in addresses and in the log: nobody could learn where it listened.
  expect(s.addresses).toHaveLength(1);
  const port = Number(/^http:\/\/127\.0\.0\.1:(\d+)$/.exec(s.addresses[0]!)?.[1]);
  expect(port).toBeGreaterThan(0);
  expect(Number((await get(port)).body)).toBeGreaterThan(0);
  expect(s.admin).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
  const admin = Number(new URL(s.admin!).port);
  expect((await get(admin, '/healthz')).status).toBe(200);
});

test('reload(config) applies new settings; a refused one rejects and the old generation serves on', async () => {
  const [port, other] = [await freePort(), await freePort()];
  const s = server({ config: { app: BASIC, bind: `127.0.0.1:${port}`, workers: 1, lanes: false }, stdio: 'pipe' });
  await s.ready;
  await s.reload({ app: BASIC, bind: [`127.0.0.1:${port}`, `127.0.0.1:${other}`], workers: 1, lanes: false });
  expect(s.addresses).toEqual([`http://127.0.0.1:${port}`, `http://127.0.0.1:${other}`]);
  expect((await get(other)).status).toBe(200);

  await expect(s.reload({ app: BASIC, bind: `127.0.0.1:${port}`, workers: 0 })).rejects.toThrow(/^drover: reload failed: workers in .*drover.config.json: expected a whole number >= 1, got 0; generation 2 serving, 1 workers$/);
  expect(s.generation).toBe(2);
  expect((await get(port)).status).toBe(200);
});

test('a config file by path; the server\'s cwd reads relative paths', async () => {
  const d = dir();
  const port = await freePort();
  writeFileSync(join(d, 'app.mjs'), 'export default (req, res) => res.end(String(process.env.DROVER_API ?? "unset"));\n');
  writeFileSync(join(d, 'my.config.json'), JSON.stringify({ app: 'app.mjs', bind: `127.0.0.1:${port}`, workers: 1, lanes: false }));
  const s = server({ config: join(d, 'my.config.json'), cwd: d, stdio: 'pipe' });
  await s.ready;
  // The API's marker stays with the arbiter: a worker (or companion) that forks its own drover is not spoken for.
  expect((await get(port)).body).toBe('unset');
  await expect(s.reload({ workers: 2 })).rejects.toThrow(/edit that file and reload\(\) without a config/);
});

test('a bad app: ready rejects with exit code 4 and the reason', async () => {
  const port = await freePort();
  const s = server({ config: { app: join(APPS, 'broken-import.js'), bind: `127.0.0.1:${port}`, workers: 1, lanes: false }, stdio: 'pipe' });
  await expect(s.ready).rejects.toThrow(/^drover exited with code 4 before it was ready:[\s\S]*this app cannot load: missing DATABASE_URL/);
  expect(await s.exited).toEqual({ code: 4, signal: null });
  await expect(s.reload()).rejects.toThrow(/code 4/);
});

test('a bad setting: ready rejects with exit code 2', async () => {
  const s = server({ config: { app: BASIC, workers: 0 }, stdio: 'pipe' });
  await expect(s.ready).rejects.toThrow(/^drover exited with code 2 before it was ready:\n.*workers/);
});

test('a cwd that does not exist: start() throws, naming it', () => {
  expect(() => server({ config: { app: BASIC }, cwd: '/nonexistent/drover-api', stdio: 'pipe' })).toThrow('cannot start drover: its cwd /nonexistent/drover-api does not exist');
});

test('the server stops when the program that started it dies without stop()', async () => {
  const d = dir();
  const port = await freePort();
  const script = join(d, 'parent.mjs');
  // A file of the test's own: a parent killed outright cannot remove a config dir start() made.
  writeFileSync(join(d, 'drover.config.json'), JSON.stringify({ app: BASIC, bind: `127.0.0.1:${port}`, workers: 1, lanes: false }));
  writeFileSync(script, `
    import { start } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
    const s = start({ config: ${JSON.stringify(join(d, 'drover.config.json'))}, stdio: 'ignore' });
    await s.ready;
    process.stdout.write(String(s.pid) + '\\n');
    setInterval(() => {}, 1000);
  `);
  const parent = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    parent.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.endsWith('\n')) resolve(Number(out));
    });
    parent.on('exit', () => reject(new Error('the parent exited first')));
  });
  try {
    expect((await get(port)).status).toBe(200);
    const worker = Number((await get(port)).body);
    parent.kill('SIGKILL');
    expect(await gone(pid)).toBe(true);
    expect(await gone(worker)).toBe(true);
  } finally {
    parent.kill('SIGKILL');
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // stopped by itself
    }
  }
});

test('stop() twice, and stop() before ready, both settle', async () => {
  const port = await freePort();
  const s = server({ config: { app: BASIC, bind: `127.0.0.1:${port}`, workers: 1, lanes: false }, stdio: 'pipe' });
  await Promise.all([s.stop(), s.stop()]);
  const e = await s.exited;
  expect(e.code === 0 || e.signal === 'SIGTERM').toBe(true);
});

test('a parent with an IPC channel but without DROVER_API is not spoken to', async () => {
  const port = await freePort();
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
  const child = spawn(process.execPath, [bin, BASIC, '-b', `127.0.0.1:${port}`, '-w', '1', '--lanes', 'off'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const said: unknown[] = [];
  child.on('message', (m) => said.push(m));
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exit = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    const end = Date.now() + 20_000;
    while (!/booted/.test(log)) {
      if (Date.now() > end) throw new Error(`drover did not boot:\n${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await get(port)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGTERM');
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(said).toEqual([]);
  } finally {
    child.kill('SIGKILL');
    await exit;
  }
});
