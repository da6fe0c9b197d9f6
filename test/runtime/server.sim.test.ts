// Every row of the arbiter's signal table, on the simulated kernel: the same
// arbiter and worker code as on the real OS, HTTP through Node's own parser
// over simulated sockets, in virtual time.
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { SIM_APP, simulate } from './sim.js';
import { get } from '../support/http.js';

const base = (...more: string[]) => [SIM_APP, '--bind', '127.0.0.1:8000', ...more];
const BROKEN = SIM_APP.replace('sim-app.js', 'broken-import.js');

test('boots, serves from every worker, and TERM stops with nothing left', async () => {
  const r = await simulate(1, base('--workers', '3'), async (c) => {
    await c.booted(3);
    const l = c.load(6);
    await c.os.sleep(2000);
    const stats = await l.stop();
    expect(stats.failed).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
    // Connections go to whichever worker the kernel wakes: over 60 new ones, every worker gets some.
    const pids = new Set<string>();
    for (let i = 0; i < 60; i++) pids.add((await c.get()).body);
    expect([...pids].map(Number).sort()).toEqual(c.workers().sort());
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0, signal: null });
  });
  expect(r.left).toEqual([]);
});

test('HUP: a new generation takes over under load with zero failed requests', async () => {
  await simulate(2, base('--workers', '2', '--keep-alive', '1'), async (c) => {
    await c.booted(2);
    const first = c.workers();
    const l = c.load(4);
    for (let i = 0; i < 3; i++) {
      await c.os.sleep(500);
      const from = c.log().length;
      c.signal('SIGHUP');
      await c.waitLog(/Reload finished/, 30_000, from);
    }
    await c.os.sleep(3000);
    const stats = await l.stop();
    expect(stats.errors).toEqual([]);
    expect(c.workers()).toHaveLength(2);
    for (const pid of first) expect(c.workers()).not.toContain(pid);
  });
});

test('HUP with a broken config file leaves the running generation untouched', async () => {
  await simulate(3, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    const before = c.workers();
    c.os.fs.writeFile('/tmp/drover.json', '{"workers": "two"');
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/reload failed, the running config stays in force/, 10_000, from);
    await c.os.sleep(1000);
    expect(c.workers()).toEqual(before);
    expect((await c.get()).status).toBe(200);
  }, { '/tmp/drover.json': JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 2 }) });
});

test('HUP whose new workers cannot boot: reload aborted, old generation keeps serving', async () => {
  await simulate(4, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    const before = c.workers();
    c.os.fs.writeFile('/tmp/drover.json', JSON.stringify({ app: BROKEN, bind: ['127.0.0.1:8000'], workers: 2 }));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/reload failed, the running config stays in force: .*cannot load/, 10_000, from);
    await c.os.sleep(500);
    expect(c.workers()).toEqual(before);
    expect((await c.get()).status).toBe(200);
  }, { '/tmp/drover.json': JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 2 }) });
});

test('workers of the serving generation that die while a reload boots are replaced at once: it never goes without a worker', async () => {
  const SLOW = join(import.meta.dirname, '..', 'apps', 'slow-boot-3s.js');
  await simulate(14, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    const old = c.workers();
    c.os.fs.writeFile('/tmp/drover.json', JSON.stringify({ app: SLOW, bind: ['127.0.0.1:8000'], workers: 2 }));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.os.sleep(300);
    for (const pid of old) c.os.kill(pid, 'SIGKILL');
    const t0 = c.os.now();
    const r = await c.get();
    // Before: no worker until the new generation booted, 3 s on.
    expect(r.status).toBe(200);
    expect(c.os.now() - t0).toBeLessThan(1500);
    expect(old).not.toContain(Number(r.body));
    expect(c.log().slice(from)).not.toMatch(/Reload finished/);
    await c.waitLog(/Reload finished/, 30_000, from);
    await c.os.sleep(1000);
    expect(c.workers()).toHaveLength(2); // the replacements went with the old generation
    expect(Number((await c.get()).body)).not.toBe(Number(r.body));
  }, { '/tmp/drover.json': JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 2 }) });
});

test('TTIN while a reload boots is applied to the serving generation and holds for the new one', async () => {
  const SLOW = join(import.meta.dirname, '..', 'apps', 'slow-boot-3s.js');
  const config = (app: string) => JSON.stringify({ app, bind: ['127.0.0.1:8000'], workers: 2, min_workers: 1, max_workers: 4 });
  await simulate(15, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    c.os.fs.writeFile('/tmp/drover.json', config(SLOW));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.os.sleep(300);
    c.signal('SIGTTIN');
    await c.os.sleep(100);
    c.signal('SIGTTIN');
    await c.os.sleep(500);
    expect(c.workers().length).toBeGreaterThanOrEqual(4 + 2); // 4 serving, 2 of the reload booting
    await c.waitLog(/Reload finished/, 30_000, from);
    await c.os.sleep(8000);
    // Before: 2, the count the reload started with.
    expect(c.workers()).toHaveLength(4);
  }, { '/tmp/drover.json': config(SIM_APP) });
});

test('a worker that does not boot within timeout is a boot failure: named as such, and retried with backoff, not in a loop', async () => {
  const NEVER = join(import.meta.dirname, '..', 'apps', 'never-boots.js');
  await simulate(16, [NEVER, '--bind', '127.0.0.1:8000', '--workers', '1', '--timeout', '2'], async (c) => {
    await c.os.sleep(20_000);
    const log = c.log();
    expect(log).toMatch(/worker \d+ did not boot within 2 s .*; next attempt in 1 s/);
    expect(log).toMatch(/next attempt in 4 s/);
    // Before: a kill and a respawn every 2 s, "WORKER TIMEOUT" each time, and no word of the boot.
    expect((log.match(/Booting worker/g) ?? []).length).toBeLessThanOrEqual(5);
    c.signal('SIGTERM');
    expect((await c.exited()).code).toBe(0);
  });
});

test('bind to port 0: the log names the port the kernel gave, where the server answers', async () => {
  await simulate(27, [SIM_APP, '--bind', '127.0.0.1:0', '--workers', '1'], async (c) => {
    await c.booted(1);
    // Before: "Listening at: http://127.0.0.1:0".
    const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+) /.exec(c.log())?.[1]);
    expect(port).toBeGreaterThan(0);
    expect((await get(c.os, { host: '127.0.0.1', port }, '/')).status).toBe(200);
    c.signal('SIGTERM');
    expect((await c.exited()).code).toBe(0);
  });
});

test('the backoff a boot timeout logs is the wait before the next boot: the next worker is not started as the late one is killed', async () => {
  const NEVER = join(import.meta.dirname, '..', 'apps', 'never-boots.js');
  await simulate(26, [NEVER, '--bind', '127.0.0.1:8000', '--workers', '1', '--timeout', '2'], async (c) => {
    // Virtual times of each boot and each "next attempt in N s", read off the log as it grows.
    const boots: number[] = [];
    const waits: { at: number; ms: number }[] = [];
    let seen = 0;
    while (c.os.now() < 30_000) {
      await c.os.sleep(20);
      const lines = c.log().split('\n');
      for (const line of lines.slice(seen, -1)) {
        if (/Booting worker/.test(line)) boots.push(c.os.now());
        const m = /next attempt in (\d+) s/.exec(line);
        if (m) waits.push({ at: c.os.now(), ms: Number(m[1]) * 1000 });
      }
      seen = lines.length - 1;
    }
    expect(waits.length).toBeGreaterThanOrEqual(3);
    for (const w of waits) {
      // Before: the replacement was started as the late worker was killed, before its exit said "next attempt in 1 s".
      expect(boots.filter((b) => b > w.at - 1000 && b <= w.at), `boots just before "next attempt in ${w.ms / 1000} s"`).toEqual([]);
      const next = boots.find((b) => b > w.at);
      if (next !== undefined) expect(next - w.at, `next attempt in ${w.ms / 1000} s`).toBeGreaterThanOrEqual(w.ms - 50);
    }
    c.signal('SIGTERM');
    expect((await c.exited()).code).toBe(0);
  });
});

test('HUP with a new pid path moves the pidfile: the new one written, the old one removed, and the stop removes the new one', async () => {
  const config = (pid: string) => JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 1, pid });
  await simulate(17, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(1);
    expect(c.os.fs.readFile('/tmp/old.pid').trim()).toBe(String(c.arbiter));
    c.os.fs.writeFile('/tmp/drover.json', config('/tmp/new.pid'));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, from);
    // Before: still old.pid only, and the stop then left it behind.
    expect(c.os.fs.readFile('/tmp/new.pid').trim()).toBe(String(c.arbiter));
    expect(c.os.fs.exists('/tmp/old.pid')).toBe(false);
    // The same file spelled another way: it stays.
    c.os.fs.writeFile('/tmp/drover.json', config('/tmp//new.pid'));
    const again = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, again);
    expect(c.os.fs.readFile('/tmp/new.pid').trim()).toBe(String(c.arbiter));
    c.signal('SIGTERM');
    expect((await c.exited()).code).toBe(0);
    expect(c.os.fs.exists('/tmp/new.pid')).toBe(false);
  }, { '/tmp/drover.json': config('/tmp/old.pid') });
});

test('a pidfile naming a live process that is not a drover arbiter is a leftover: replaced, with a warning; one naming an arbiter is refused', async () => {
  const config = (pid: string) => JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 1, pid });
  await simulate(23, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(1);
    // The test's own process is alive, and ps shows its program: a stale pidfile whose pid was reused.
    c.os.fs.writeFile('/tmp/stale.pid', `${c.os.pid}\n`);
    c.os.fs.writeFile('/tmp/drover.json', config('/tmp/stale.pid'));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, from);
    expect(c.log().slice(from)).toMatch(new RegExp(`WARNING.*pidfile /tmp/stale.pid named process ${c.os.pid}, which is not a drover arbiter but .*: left by a drover that did not stop cleanly, its pid since reused; replaced`));
    expect(c.os.fs.readFile('/tmp/stale.pid').trim()).toBe(String(c.arbiter));
    // Now it looks like another drover's arbiter: its pidfile is not taken.
    c.os.setTitle('drover: arbiter [other.js]');
    c.os.fs.writeFile('/tmp/theirs.pid', `${c.os.pid}\n`);
    c.os.fs.writeFile('/tmp/drover.json', config('/tmp/theirs.pid'));
    const again = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, again);
    expect(c.log().slice(again)).toMatch(/pidfile \/tmp\/theirs.pid names process \d+, a drover arbiter \("drover: arbiter \[other.js\]"\)/);
    expect(c.os.fs.readFile('/tmp/theirs.pid').trim()).toBe(String(c.os.pid));
    expect(c.os.fs.readFile('/tmp/stale.pid').trim()).toBe(String(c.arbiter));
    c.signal('SIGTERM');
    expect((await c.exited()).code).toBe(0);
  }, { '/tmp/drover.json': config('/tmp/first.pid') });
});

test('a failed reload\'s workers are no boot failures of the serving generation: a worker it loses just after is replaced at once', async () => {
  const config = (app: string) => JSON.stringify({ app, bind: ['127.0.0.1:8000'], workers: 4 });
  await simulate(19, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(4);
    c.os.fs.writeFile('/tmp/drover.json', config(BROKEN));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/reload failed/, 10_000, from);
    await c.os.sleep(1000);
    const [victim] = c.workers();
    const t0 = c.os.now();
    c.os.kill(victim!, 'SIGKILL');
    await c.booted(1, c.log().length);
    // Before: each of the other three new workers' exits pushed the respawn back: 'next attempt in 8 s'.
    expect(c.os.now() - t0).toBeLessThan(1500);
    expect(c.log().slice(from)).not.toMatch(/next attempt/);
  }, { '/tmp/drover.json': config(SIM_APP) });
});

test('a reload\'s workers boot within the timeout of the config it brings (raised with a slower app)', async () => {
  const SLOW = join(import.meta.dirname, '..', 'apps', 'slow-boot-3s.js');
  const config = (app: string, timeout: number) => JSON.stringify({ app, bind: ['127.0.0.1:8000'], workers: 2, timeout });
  await simulate(20, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    c.os.fs.writeFile('/tmp/drover.json', config(SLOW, 10));
    const from = c.log().length;
    c.signal('SIGHUP');
    // Before: 'did not boot within 2 s', the serving config's timeout.
    await c.waitLog(/Reload finished|reload failed/, 30_000, from);
    expect(c.log().slice(from)).toMatch(/Reload finished/);
  }, { '/tmp/drover.json': config(SIM_APP, 2) });
});

test('a reload whose workers do not boot in time: the reload fails with the reason, and the workers it kills are no errors', async () => {
  const SLOW = join(import.meta.dirname, '..', 'apps', 'slow-boot-3s.js');
  const config = (app: string) => JSON.stringify({ app, bind: ['127.0.0.1:8000'], workers: 2, timeout: 1 });
  await simulate(21, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    c.os.fs.writeFile('/tmp/drover.json', config(SLOW));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/reload failed, the running config stays in force: new workers did not boot within 1 s/, 10_000, from);
    await c.os.sleep(1000);
    const errors = c.log().slice(from).split('\n').filter((l) => l.includes('[ERROR]'));
    // Before: an ERROR line for each worker the failed reload killed, besides the one that says why.
    expect(errors).toHaveLength(1);
    expect((await c.get()).status).toBe(200);
  }, { '/tmp/drover.json': config(SIM_APP) });
});

test('TERM while a reload\'s workers boot: they are stopped and logged so, with no boot failure and no next attempt', async () => {
  const app = join(import.meta.dirname, '..', 'apps', 'slow-boot.js'); // 500 ms to boot
  await simulate(13, [app, '--bind', '127.0.0.1:8000', '--workers', '2'], async (c) => {
    await c.booted(2);
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.os.sleep(200);
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0, signal: null });
    const after = c.log().slice(from);
    expect(after).toMatch(/before it booted: drover is stopping/);
    // Before: "[ERROR] worker N was killed by SIGTERM before it booted; next attempt in 1 s", in a stop.
    expect(after).not.toMatch(/next attempt|ERROR/);
  });
});

test('TERM lets a request in flight finish; INT and QUIT stop at once', async () => {
  await simulate(5, base('--workers', '1'), async (c) => {
    await c.booted(1);
    const slow = c.get('/slow?ms=2000');
    await c.os.sleep(100);
    c.signal('SIGTERM');
    const r = await slow;
    expect(r.status).toBe(200);
    expect((await c.exited()).code).toBe(0);
  });
  for (const sig of ['SIGINT', 'SIGQUIT'] as const) {
    const r = await simulate(6, base('--workers', '2'), async (c) => {
      await c.booted(2);
      const slow = c.get('/slow?ms=60000').then(() => 'answered', () => 'reset');
      await c.os.sleep(100);
      const t0 = c.os.now();
      c.signal(sig);
      expect((await c.exited()).code).toBe(0);
      expect(c.os.now() - t0).toBeLessThan(1000);
      expect(await slow).toBe('reset');
    });
    expect(r.left).toEqual([]);
  }
});

test('INT or QUIT during a graceful stop makes it quick; other signals then are said to be ignored', async () => {
  for (const sig of ['SIGINT', 'SIGQUIT'] as const) {
    const r = await simulate(18, base('--workers', '2', '--graceful-timeout', '30'), async (c) => {
      await c.booted(2);
      const slow = c.get('/slow?ms=60000').then(() => 'answered', () => 'reset');
      await c.os.sleep(100);
      c.signal('SIGTERM');
      await c.os.sleep(1000);
      c.signal('SIGHUP');
      const t0 = c.os.now();
      c.signal(sig);
      expect((await c.exited()).code).toBe(0);
      // Before: the stop waited out the request, up to graceful_timeout (30 s).
      expect(c.os.now() - t0).toBeLessThan(1000);
      expect(await slow).toBe('reset');
      expect(c.log()).toMatch(/Ignoring signal: hup: drover is stopping/);
      expect(c.log()).toMatch(new RegExp(`Handling signal: ${sig.slice(3).toLowerCase()}: stopping quickly instead`));
    });
    expect(r.left).toEqual([]);
  }
});

test('TTIN and TTOU move the worker count within [min, max]', async () => {
  await simulate(7, base('--workers', '2', '--min-workers', '1', '--max-workers', '3'), async (c) => {
    await c.booted(2);
    c.signal('SIGTTIN');
    await c.booted(3);
    c.signal('SIGTTIN');
    await c.waitLog(/TTIN: already at max_workers \(3\)/);
    expect(c.workers()).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      c.signal('SIGTTOU');
      await c.os.sleep(200);
    }
    await c.waitLog(/TTOU: already at min_workers \(1\)/);
    await c.os.sleep(1000);
    expect(c.workers()).toHaveLength(1);
  });
});

test('USR1 reopens log files in the arbiter and the workers', async () => {
  await simulate(8, base('--workers', '1', '--access-log', '/tmp/access.log', '--error-log', '/tmp/error.log'), async (c) => {
    await c.os.sleep(2000);
    await c.get('/before');
    c.os.fs.rename('/tmp/access.log', '/tmp/access.log.1');
    c.os.fs.rename('/tmp/error.log', '/tmp/error.log.1');
    c.signal('SIGUSR1');
    await c.os.sleep(100);
    await c.get('/after');
    await c.os.sleep(100);
    expect(c.os.fs.readFile('/tmp/access.log.1')).toMatch(/"GET \/before HTTP\/1\.1" 200/);
    expect(c.os.fs.readFile('/tmp/access.log')).toMatch(/"GET \/after HTTP\/1\.1" 200/);
    expect(c.os.fs.readFile('/tmp/error.log.1')).toMatch(/Handling signal: usr1/);
    expect(c.os.fs.readFile('/tmp/error.log')).toMatch(/^[^\n]*Reopened log files\n/);
  });
});

test('CHLD: a killed worker is reaped and replaced', async () => {
  await simulate(9, base('--workers', '2'), async (c) => {
    await c.booted(2);
    const [victim] = c.workers();
    c.os.kill(victim!, 'SIGKILL');
    await c.waitLog(new RegExp(`Worker ${victim} was killed by SIGKILL`));
    await c.booted(3);
    expect(c.workers()).toHaveLength(2);
    expect(c.workers()).not.toContain(victim);
  });
});

test('a worker that stops answering heartbeats gets ABRT and is replaced', async () => {
  await simulate(10, base('--workers', '1', '--timeout', '2'), async (c) => {
    await c.booted(1);
    const [hung] = c.workers();
    void c.get('/hang').catch(() => {});
    await c.waitLog(new RegExp(`WORKER TIMEOUT \\(pid:${hung}\\)`));
    await c.waitLog(new RegExp(`Worker ${hung} was killed by SIGABRT`));
    await c.booted(2);
    expect((await c.get()).status).toBe(200);
  });
});

test('max_requests recycles workers without a failed request', async () => {
  await simulate(11, base('--workers', '2', '--max-requests', '50', '--max-requests-jitter', '10'), async (c) => {
    await c.booted(2);
    const l = c.load(4);
    await c.os.sleep(5000);
    const stats = await l.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.ok).toBeGreaterThan(200);
    expect(c.log().match(/(?<!lane )worker \d+ booted/g)!.length).toBeGreaterThan(4);
  });
});

test('an app that cannot load stops drover with exit 4 and the reason', async () => {
  const r = await simulate(12, [BROKEN, '--workers', '3'], async (c) => {
    expect(await c.exited()).toMatchObject({ code: 4, signal: null });
    expect(c.log()).toMatch(/Worker failed to boot, shutting down: .*missing DATABASE_URL/);
  });
  expect(r.left).toEqual([]);
});

test('autoscaling: a saturated worker pool grows to max_workers, an idle one shrinks back to min', async () => {
  await simulate(13, base('--workers', '1', '--min-workers', '1', '--max-workers', '3'), async (c) => {
    await c.booted(1);
    // New connections for every request: keep-alive ones stay with the worker that took them.
    const l = c.load(6, '/burn?ms=20', true);
    await c.waitLog(/Autoscale: mean load 1\.00, workers 1 -> 2/, 20_000);
    await c.waitLog(/Autoscale: mean load \d\.\d\d, workers 2 -> 3/, 30_000);
    await c.os.sleep(5000);
    expect(c.workers()).toHaveLength(3);
    const stats = await l.stop();
    expect(stats.failed).toBe(0);
    await c.waitLog(/workers 3 -> 2/, 60_000);
    await c.waitLog(/workers 2 -> 1/, 60_000);
    await c.os.sleep(3000);
    expect(c.workers()).toHaveLength(1);
    // Nothing moves while the pool is idle at min.
    const lines = c.log().match(/Autoscale/g)!.length;
    await c.os.sleep(120_000);
    expect(c.log().match(/Autoscale/g)!.length).toBe(lines);
  });
});
