// Bad limits and bad log paths, on the real OS (issue 12): a worker count
// that would fork the machine to death, and log files that cannot be opened,
// stop the start at once with exit code 2 and one line naming the setting,
// the value and the fix — before any socket is bound or worker spawned. A
// log that cannot be reopened on USR1 keeps its old file and stops nothing.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { APPS, freePort, get, perTest } from './drover.js';
import { alive } from '../os/helpers.js';

const { drover, dir } = perTest();

const APP = join(APPS, 'basic.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A start that must fail: exit 2 within a few seconds, with no stack trace and no worker spawned. */
async function refused(args: string[]): Promise<string> {
  const d = drover(args);
  const started = Date.now();
  expect(await d.exited(8_000)).toEqual({ code: 2, signal: null });
  expect(Date.now() - started).toBeLessThan(8_000);
  const log = d.log();
  expect(log).not.toMatch(/^\s+at /m); // no stack trace
  expect(log).not.toMatch(/Booting worker|Listening at/);
  return log;
}

describe('workers_limit', () => {
  test('--workers 10000 --check-config exits 2, naming the value, the bound and --workers-limit', async () => {
    const log = await refused([APP, '--workers', '10000', '--check-config']);
    expect(log).toMatch(/^drover: workers 10000 \(from --workers\) is over workers_limit \d+ \(4 x \d+ CPUs?\): a mistake\? raise --workers-limit to run more\n$/);
  });

  test('--workers 10000 without --check-config forks nothing', async () => {
    const log = await refused([APP, '--workers', '10000', '--bind', `127.0.0.1:${await freePort()}`]);
    expect(log).toMatch(/workers 10000 \(from --workers\) is over workers_limit/);
  });

  test('slow_workers from the environment is bounded too, and --workers-limit raises the bound on purpose', async () => {
    const d = drover([APP, '--check-config'], { DROVER_SLOW_WORKERS: '5000' });
    expect(await d.exited(8_000)).toEqual({ code: 2, signal: null });
    expect(d.log()).toMatch(/slow_workers 5000 \(from DROVER_SLOW_WORKERS\) is over workers_limit/);
    const ok = drover([APP, '--workers', '10000', '--workers-limit', '10000', '--check-config']);
    expect(await ok.exited(8_000)).toEqual({ code: 0, signal: null });
    expect(ok.log()).toMatch(/config OK.*10000 worker\(s\)/);
  });
});

describe('log paths that cannot be opened stop the start', () => {
  const MISSING = '/nonexistent/dir';
  test.each(['access_log', 'error_log'])('%s in a missing directory: exit 2 and one line, no worker, no pidfile', async (setting) => {
    expect(existsSync(MISSING)).toBe(false);
    const path = `${MISSING}/a.log`;
    const pid = join(dir(), 'd.pid');
    const port = await freePort();
    const log = await refused([APP, `--${setting.replace('_', '-')}`, path, '--bind', `127.0.0.1:${port}`, '--workers', '1', '--pid', pid]);
    expect(log).toBe(`drover: ${setting} ${path}: cannot open (ENOENT: no such directory); create the directory or choose another path\n`);
    expect(existsSync(pid)).toBe(false);
    // Nothing listens: the port was never bound.
    await expect(get(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  test.each(['access_log', 'error_log'])('%s that is a directory: exit 2 and one line', async (setting) => {
    const d = dir();
    const log = await refused([APP, `--${setting.replace('_', '-')}`, d, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1']);
    expect(log).toBe(`drover: ${setting} ${d}: cannot open (EISDIR: it is a directory); name a file in it or choose another path\n`);
  });

  test('both at once: both named, one line each', async () => {
    const log = await refused([APP, '--access-log', '/nonexistent/dir/a.log', '--error-log', '/nonexistent/dir/e.log', '--bind', `127.0.0.1:${await freePort()}`]);
    expect(log.split('\n').filter((l) => l !== '')).toEqual([
      'drover: error_log /nonexistent/dir/e.log: cannot open (ENOENT: no such directory); create the directory or choose another path',
      'drover: access_log /nonexistent/dir/a.log: cannot open (ENOENT: no such directory); create the directory or choose another path',
    ]);
  });
});

describe('USR1 when a log file cannot be reopened', () => {
  test('the access log: workers keep the old file and keep serving, the arbiter says why once', async () => {
    const logs = join(dir(), 'logs');
    mkdirSync(logs);
    const port = await freePort();
    const d = drover([APP, '--bind', `127.0.0.1:${port}`, '--workers', '2', '--access-log', join(logs, 'a.log'), '--lanes', 'off']);
    await d.waitFor(/(?:[^]*?worker \d+ booted){2}/);
    const before = d.log();
    rmSync(logs, { recursive: true });
    d.kill('SIGUSR1');
    await d.waitFor(/USR1: access_log \S+a\.log: cannot open \(ENOENT: no such directory\); create the directory or choose another path; the workers keep writing to the file open before/);
    await sleep(500);
    for (let i = 0; i < 4; i++) expect((await get(port)).status).toBe(200);
    const after = d.log().slice(before.length);
    expect(after).not.toMatch(/Booting worker|exited|died/);
    d.kill('SIGTERM');
    expect(await d.exited()).toEqual({ code: 0, signal: null });
  });

  test('the error log: the arbiter and its workers keep the old file, serve on, and stop cleanly', async () => {
    const logs = join(dir(), 'logs');
    mkdirSync(logs);
    const port = await freePort();
    const d = drover([APP, '--bind', `127.0.0.1:${port}`, '--workers', '2', '--error-log', join(logs, 'e.log'), '--lanes', 'off']);
    // The log goes to the file: wait until both workers answer (by time, not by tries: the first one may answer
    // hundreds of requests before the second has booted on a loaded machine).
    const pids = new Set<number>();
    for (const end = Date.now() + 20_000; pids.size < 2 && Date.now() < end; await sleep(20)) {
      try {
        pids.add(Number((await get(port)).body));
      } catch {
        // not listening yet
      }
    }
    expect(pids.size).toBe(2);
    rmSync(logs, { recursive: true });
    d.kill('SIGUSR1');
    await sleep(1000);
    expect(alive(d.pid)).toBe(true);
    const seen = new Set<number>();
    for (let i = 0; i < 8; i++) seen.add(Number((await get(port)).body));
    // The same workers: none died on the signal and was replaced.
    for (const p of seen) expect(pids.has(p)).toBe(true);
    d.kill('SIGTERM');
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    expect(d.log()).not.toMatch(/^\s+at /m);
  });
});
