// The arbiter and its workers on the real OS: real processes, real signals,
// real sockets on 127.0.0.1 and under a temp dir.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { APPS, freePort, get, load, perTest, type Drover } from './drover.js';
import { alive } from '../os/helpers.js';

const { drover, dir } = perTest();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** Worker pids that booted, from the arbiter's log. */
function booted(d: Drover): number[] {
  return [...d.log().matchAll(/Booting worker with pid: (\d+)/g)].map((m) => Number(m[1]));
}

async function serving(d: Drover, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await d.waitFor(new RegExp(`(?:[^]*?(?<!lane )worker \\d+ booted){${i + 1}}`));
}

describe('drover serves real traffic', () => {
  test('answers on 127.0.0.1 from its workers, and TERM stops everything', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '2']);
    await serving(d, 2);
    const r = await get(port);
    expect(r.status).toBe(200);
    expect(booted(d)).toContain(Number(r.body));
    const workers = booted(d);
    d.kill('SIGTERM');
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(alive(pid)).toBe(false);
  });

  test('the examples the README names start and answer (drover examples/NAME.js, as on a fresh checkout)', async () => {
    const examples = join(import.meta.dirname, '..', '..', 'examples');
    for (const [file, body] of [
      ['hello.js', /^Hello from worker \d+\n$/],
      ['express-app.js', /^Hello from Express in worker \d+\n$/],
      ['factory-app.js', /^Hello from a factory \(worker \d+\)\n$/],
    ] as const) {
      const port = await freePort();
      const d = drover([join(examples, file), '--bind', `127.0.0.1:${port}`, '--workers', '1']);
      await serving(d, 1);
      const r = await get(port);
      expect(r.status).toBe(200);
      expect(r.body).toMatch(body);
      expect(booted(d)).toContain(Number(/(\d+)/.exec(r.body)![1]));
      d.kill('SIGTERM');
      expect(await d.exited()).toEqual({ code: 0, signal: null });
    }
  });

  test('serves on a Unix socket', async () => {
    const path = join(dir(), 'drover.sock');
    const d = drover([join(APPS, 'basic.js'), '--bind', `unix:${path}`, '--workers', '1']);
    await serving(d, 1);
    const body = await new Promise<string>((resolve, reject) => {
      import('node:http').then(({ get: hget }) => hget({ socketPath: path, path: '/' }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (c: string) => (b += c)).on('end', () => resolve(b));
      }).on('error', reject));
    });
    expect(booted(d)).toContain(Number(body));
    d.kill('SIGTERM');
    await d.exited();
    expect(existsSync(path)).toBe(false);
  });

  test('HUP under continuous load: new workers take over, zero failed requests', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '2', '--keep-alive', '1']);
    await serving(d, 2);
    const first = booted(d);
    const l = load(port, 4);
    for (let i = 0; i < 3; i++) {
      await sleep(400);
      const from = d.log().length;
      d.kill('SIGHUP');
      await d.waitFor(/Reload finished/, 15_000, from);
    }
    await sleep(400);
    const stats = await l.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.ok).toBeGreaterThan(100);
    // Old workers drained and exited; the last generation is serving.
    await sleep(1500);
    for (const pid of first) expect(alive(pid)).toBe(false);
    expect(booted(d)).toHaveLength(8);
  });

  test('signals while drover loads: USR1 never opens the inspector, HUP and TTIN are queued for the arbiter, not fatal', async () => {
    const port = await freePort();
    const marker = join(dir(), 'loading');
    // drover's entry loads 1.5 s late (test/support/slow-entry.mjs): the signals below come while it does.
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--max-workers', '2', '--lanes', 'off'], {
      NODE_OPTIONS: `--import ${join(import.meta.dirname, '..', 'support', 'slow-entry.mjs')}`,
      SLOW_ENTRY_MARKER: marker,
    });
    while (!existsSync(marker)) await sleep(5);
    for (const sig of ['SIGUSR1', 'SIGHUP', 'SIGTTIN'] as const) d.kill(sig);
    await sleep(200);
    // Before: death by HUP (or a stop by TTIN, or 'Debugger listening on ws://127.0.0.1:9229', where any local user could run code in the arbiter).
    expect(readFileSync(`/proc/${d.pid}/stat`, 'utf8').split(') ')[1]![0]).not.toBe('T');
    await d.waitFor(/Reload finished/, 15_000);
    expect(d.log()).not.toMatch(/Debugger listening|inspector/i);
    expect(d.log()).toContain('Reopened log files'); // USR1, as the arbiter takes it
    expect(d.log()).toContain('Reloading: starting 2 worker(s)'); // TTIN's second worker, then HUP's reload
    expect((await get(port, '/')).status).toBe(200);
    d.kill('SIGTERM');
    expect(await d.exited()).toEqual({ code: 0, signal: null });
  });

  test('TERM with a request in flight: the request completes, then drover exits 0', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1']);
    await serving(d, 1);
    const slow = get(port, '/slow?ms=800');
    await sleep(200);
    d.kill('SIGTERM');
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^slow \d+/);
    expect(await d.exited()).toEqual({ code: 0, signal: null });
  });

  for (const sig of ['SIGINT', 'SIGQUIT'] as const) {
    test(`${sig} stops at once: a request in flight is cut, workers gone, exit 0`, async () => {
      const port = await freePort();
      const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '2']);
      await serving(d, 2);
      const workers = booted(d);
      const slow = get(port, '/slow?ms=20000').then(() => 'answered', () => 'cut');
      await sleep(200);
      const t0 = Date.now();
      d.kill(sig);
      expect(await d.exited()).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(await slow).toBe('cut');
      expect(workers.filter(alive)).toEqual([]);
    });
  }

  test('a killed worker is replaced and service continues', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '2']);
    await serving(d, 2);
    const [victim] = booted(d);
    process.kill(victim!, 'SIGKILL');
    await d.waitFor(new RegExp(`Worker ${victim} was killed by SIGKILL`));
    await serving(d, 3);
    expect(booted(d)).toHaveLength(3);
    const r = await get(port);
    expect(r.status).toBe(200);
    expect(Number(r.body)).not.toBe(victim);
  });

  test('SIGKILL of the arbiter: every worker is gone within a second', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '3']);
    await serving(d, 3);
    const workers = booted(d);
    d.kill('SIGKILL');
    await d.exited();
    await sleep(1000);
    expect(workers.filter(alive)).toEqual([]);
  });

  test('SIGKILL of the arbiter: a worker stuck in a CPU loop is gone too (chaos seed 210)', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--timeout', '0']);
    await serving(d, 1);
    const [worker] = booted(d);
    get(port, '/spin').catch(() => {});
    await sleep(300);
    expect(alive(worker!)).toBe(true);
    d.kill('SIGKILL');
    await d.exited();
    await sleep(1000);
    expect(alive(worker!)).toBe(false);
  });

  test('TTIN and TTOU add and remove a worker within min and max', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--min-workers', '1', '--max-workers', '2']);
    await serving(d, 1);
    d.kill('SIGTTIN');
    await serving(d, 2);
    d.kill('SIGTTIN');
    await d.waitFor(/TTIN: already at max_workers \(2\)/);
    const second = booted(d)[1]!;
    d.kill('SIGTTOU');
    await d.waitFor(/Worker \d+ exited with code 0/);
    d.kill('SIGTTOU');
    await d.waitFor(/TTOU: already at min_workers \(1\)/);
    expect(booted(d)).toHaveLength(2);
    // The oldest goes first.
    expect(alive(second)).toBe(true);
  });

  test('max_requests recycles workers without a failed request', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '2', '--max-requests', '20', '--max-requests-jitter', '5']);
    await serving(d, 2);
    const l = load(port, 3);
    await d.waitFor(/served \d+ requests \(max_requests\): retiring/);
    await sleep(1500);
    const stats = await l.stop();
    expect(stats.errors).toEqual([]);
    expect(booted(d).length).toBeGreaterThan(2);
  });

  test('a worker silent past the timeout gets ABRT, then is replaced', async () => {
    const port = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--timeout', '1', '--lanes', 'off']);
    await serving(d, 1);
    const [hung] = booted(d);
    void get(port, '/spin').catch(() => {});
    await d.waitFor(new RegExp(`WORKER TIMEOUT \\(pid:${hung}\\)`));
    await d.waitFor(new RegExp(`Worker ${hung} was killed by SIGABRT|Worker ${hung} was killed by SIGKILL`));
    await serving(d, 2);
    expect((await get(port)).status).toBe(200);
  });

  test('USR1 reopens the access log after it was moved away', async () => {
    const port = await freePort();
    const logs = dir();
    const access = join(logs, 'access.log');
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--access-log', access]);
    await serving(d, 1);
    await get(port, '/before');
    renameSync(access, `${access}.1`);
    d.kill('SIGUSR1');
    await sleep(300);
    await get(port, '/after');
    await sleep(100);
    // gunicorn's line, then what lanes add: the lane and the route key it was counted under.
    expect(readFileSync(`${access}.1`, 'utf8')).toMatch(/^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/before HTTP\/1\.1" 200 \d+ "-" "-" \d+\.\d{6} lane=fast route="GET \/before" duration_ms=\d+\.\d{3}\n$/);
    expect(readFileSync(access, 'utf8')).toMatch(/"GET \/after HTTP\/1\.1" 200/);
  });

  test('the pidfile is written over a leftover naming another program, refuses a second start while the first runs, and is removed on exit', async () => {
    const port = await freePort();
    const pidfile = join(dir(), 'drover.pid');
    // A crash's leftover whose pid the system gave to another program since (this test's own process).
    writeFileSync(pidfile, `${process.pid}\n`);
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--pid', pidfile]);
    await serving(d, 1);
    expect(readFileSync(pidfile, 'utf8')).toBe(`${d.pid}\n`);
    expect(d.log()).toMatch(new RegExp(`WARNING.*pidfile .* named process ${process.pid}, which is not a drover arbiter but`));
    const second = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${await freePort()}`, '--pid', pidfile]);
    expect((await second.exited()).code).toBe(1);
    expect(second.log()).toContain(`names process ${d.pid}, a drover arbiter ("drover: arbiter [basic.js]")`);
    d.kill('SIGTERM');
    await d.exited();
    expect(existsSync(pidfile)).toBe(false);
  });
});

describe('HUP reloads code and config', () => {
  test('a changed app file and a changed config are both in force after HUP', async () => {
    const d0 = dir();
    const app = join(d0, 'app.mjs');
    const cfg = join(d0, 'drover.config.json');
    const port = await freePort();
    writeFileSync(app, "export default (req, res) => res.end('v1');\n");
    writeFileSync(cfg, JSON.stringify({ app, bind: [`127.0.0.1:${port}`], workers: 1 }));
    const d = drover(['--config', cfg]);
    await serving(d, 1);
    expect((await get(port)).body).toBe('v1');
    writeFileSync(app, "export default (req, res) => res.end('v2');\n");
    writeFileSync(cfg, JSON.stringify({ app, bind: [`127.0.0.1:${port}`], workers: 2 }));
    const from = d.log().length;
    d.kill('SIGHUP');
    await d.waitFor(/Reload finished/, 15_000, from);
    expect((await get(port)).body).toBe('v2');
    expect(d.log().slice(from).match(/(?<!lane )worker \d+ booted/g)).toHaveLength(2);
  });
});

describe('spare_workers', () => {
  /** Spares by role from the log, not yet given work. */
  function spares(d: Drover): { fast: number[]; slow: number[] } {
    const taken = new Set([...d.log().matchAll(/with pid: (\d+) \(a spare\)/g)].map((m) => Number(m[1])));
    const of = (re: RegExp) => [...d.log().matchAll(re)].map((m) => Number(m[1])).filter((pid) => !taken.has(pid));
    return { fast: of(/Spare worker started with pid: (\d+)/g), slow: of(/Spare slow-lane worker started with pid: (\d+)/g) };
  }

  test('a HUP gives changed app code to the pre-started processes, and TERM leaves none behind', async () => {
    const d0 = dir();
    const app = join(d0, 'app.mjs');
    const port = await freePort();
    writeFileSync(app, "export default (req, res) => res.end(`v1 ${process.pid}`);\n");
    const d = drover([app, '--bind', `127.0.0.1:${port}`, '--workers', '1', '--spare-workers', '1']);
    await serving(d, 1);
    await d.waitFor(/Spare slow-lane worker started with pid: \d+/);
    await d.waitFor(/Spare worker started with pid: \d+/);
    const before = spares(d);
    expect(before.fast).toHaveLength(1);
    expect(before.slow).toHaveLength(1);
    for (const pid of [...before.fast, ...before.slow]) expect(alive(pid)).toBe(true);
    writeFileSync(app, "export default (req, res) => res.end(`v2 ${process.pid}`);\n");
    const from = d.log().length;
    d.kill('SIGHUP');
    await d.waitFor(/Reload finished/, 15_000, from);
    expect(d.log().slice(from)).toContain(`Booting worker with pid: ${before.fast[0]} (a spare)`);
    expect(d.log().slice(from)).toContain(`Booting slow-lane worker with pid: ${before.slow[0]} (a spare)`);
    expect((await get(port)).body).toBe(`v2 ${before.fast[0]}`);
    await d.waitFor(/(?:[^]*?Spare worker started with pid: \d+){2}/, 15_000);
    const after = spares(d);
    expect(after.fast).toHaveLength(1);
    d.kill('SIGTERM');
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    for (const pid of [...before.fast, ...before.slow, ...after.fast, ...after.slow]) expect(alive(pid)).toBe(false);
  });

  test('/metrics counts the spares; SIGKILL of the arbiter: its spares are gone within a second', async () => {
    const port = await freePort();
    const admin = await freePort();
    const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--spare-workers', '2', '--admin-bind', `127.0.0.1:${admin}`]);
    await serving(d, 1);
    await d.waitFor(/(?:[^]*?Spare worker started with pid: \d+){2}/);
    await d.waitFor(/Spare slow-lane worker started with pid: \d+/);
    const s = spares(d);
    expect(s.fast).toHaveLength(2);
    expect(s.slow).toHaveLength(1);
    const metrics = (await get(admin, '/metrics')).body;
    expect(metrics).toContain('drover_spare_workers{lane="fast"} 2\n');
    expect(metrics).toContain('drover_spare_workers{lane="slow"} 1\n');
    d.kill('SIGKILL');
    await d.exited();
    await sleep(1000);
    expect([...s.fast, ...s.slow].filter(alive)).toEqual([]);
  });
});

describe('drover refuses to start, clearly', () => {
  test('an app that cannot load: the arbiter exits 4 with the reason, no respawn loop', async () => {
    const d = drover([join(APPS, 'broken-import.js'), '--bind', `127.0.0.1:${await freePort()}`, '--workers', '2']);
    expect(await d.exited()).toEqual({ code: 4, signal: null });
    expect(d.log()).toContain('this app cannot load: missing DATABASE_URL');
    expect(d.log()).toContain('Worker failed to boot');
    expect(booted(d).length).toBeLessThanOrEqual(2);
  });

  test('an app with a syntax error: exit 4, naming the file, the line and where in it', async () => {
    const app = join(dir(), 'app.mjs');
    writeFileSync(app, 'export default (req, res) => {\n  res.end(;\n};\n');
    const d = drover([app, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--lanes', 'off']);
    expect(await d.exited()).toEqual({ code: 4, signal: null });
    // The text log writes the message on one line, newlines as \x0a.
    expect(d.log()).toContain(`cannot load app ${app}: ${app}:2\\x0a  res.end(;\\x0a          ^\\x0a\\x0aSyntaxError: Unexpected token ';'`);
  });

  test('a factory that throws: exit 3 with the reason', async () => {
    const d = drover([join(APPS, 'broken-factory.js'), '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1']);
    expect(await d.exited()).toEqual({ code: 3, signal: null });
    expect(d.log()).toContain('factory refused to start');
  });

  test('a port in use is a one-line error', async () => {
    const port = await freePort();
    const blocker = (await import('node:net')).createServer().listen(port, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    try {
      const d = drover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`]);
      expect((await d.exited()).code).toBe(1);
      const errors = d.log().split('\n').filter((l) => l.includes('[ERROR]'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(new RegExp(`cannot listen at 127\\.0\\.0\\.1:${port}: .*already in use`));
    } finally {
      blocker.close();
    }
  });

  test('a bad setting is refused before anything starts', async () => {
    const d = drover([join(APPS, 'basic.js'), '--workers', 'lots']);
    expect((await d.exited()).code).toBe(2);
    expect(d.log()).toMatch(/--workers/);
  });
});

describe('writing a config file', () => {
  test('a JSON config file gives settings; the command line wins over it', async () => {
    const cfgDir = dir();
    const port = await freePort();
    writeFileSync(join(cfgDir, 'drover.config.json'), JSON.stringify({ app: join(APPS, 'basic.js'), bind: [`127.0.0.1:${port}`], workers: 3 }));
    const d = drover(['--config', join(cfgDir, 'drover.config.json'), '--workers', '1']);
    await serving(d, 1);
    await sleep(300);
    expect(booted(d)).toHaveLength(1);
    expect((await get(port)).status).toBe(200);
  });
});

describe('systemd socket activation', () => {
  test('LISTEN_FDS sockets are served and --bind is ignored', async () => {
    const { createNodeOs } = await import('../../src/os/node/index.js');
    const os = createNodeOs({ programs: [] });
    const l = await os.listen({ host: '127.0.0.1', port: 0 });
    const port = (l.address as { port: number }).port;
    // What systemd does: the socket at fd 3, LISTEN_PID naming the process that execs drover.
    const c = os.spawn({
      command: ['sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', process.execPath, join(APPS, '..', '..', 'bin', 'drover.js'), join(APPS, 'basic.js'), '--workers', '1', '--bind', 'unix:/nonexistent-dir/drover.sock'], // binding this would fail
      newGroup: true,
      listeners: [l],
      stdout: 'ignore',
      stderr: 'ignore',
    });
    l.close();
    try {
      let r = null;
      for (let i = 0; i < 100 && r === null; i++) {
        r = await get(port).catch(() => null);
        if (r === null) await sleep(100);
      }
      expect(r?.status).toBe(200);
      os.kill(c.pid, 'SIGTERM');
      for (let i = 0; i < 100 && os.waitpid(c.pid) === null; i++) await sleep(50);
    } finally {
      try { os.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
});
