// The control socket on the real OS: a real Unix socket file (mode 0600),
// stale and live paths through the Node adapter, hostile input over a raw
// net connection, and `drover ctl` run as a real process against a test
// server (serveControl with the fake handler), and against a real drover
// (reload, scale, top). Every process started here is killed and reaped in
// afterEach.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createNodeOs } from '../../src/os/node/index.js';
import type { Os } from '../../src/os/types.js';
import { inbox, reap } from '../support/os.js';
import { controlPrograms } from './control-programs.js';
import { APPS, freePort, removeTmp, startDrover, tmp, type Drover } from './drover.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const os: Os = createNodeOs({ programs: [controlPrograms] });

const servers: number[] = [];
const dirs: string[] = [];
const drovers: Drover[] = [];
afterEach(async () => {
  for (const d of drovers.splice(0)) await d.cleanup();
  for (const pid of servers.splice(0)) {
    try {
      os.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
    try {
      await reap(os, pid);
    } catch {
      // reaped by the test itself
    }
  }
  for (const d of dirs.splice(0)) removeTmp(d);
});

function dir(): string {
  const d = tmp();
  dirs.push(d);
  return d;
}

/** A control-server on `path`; resolves with its pid and its first channel message. */
async function server(path: string, args: string[] = []): Promise<{ pid: number; said: unknown }> {
  const c = os.spawn({ program: 'control-server', args: [path, ...args], newGroup: true, stdout: 'ignore' });
  servers.push(c.pid);
  return { pid: c.pid, said: await inbox(os, c.channel!)(20_000) };
}

/** `drover ctl ARGS` as a real process: exit code, stdout, stderr. Killed if it runs past 20 s. */
function ctl(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, 'ctl', ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

/** Sends `data` over a raw connection and collects `n` reply lines. */
function raw(path: string, data: string[], n: number): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
      const lines = text.split('\n').slice(0, -1);
      if (lines.length >= n) {
        s.destroy();
        resolve(lines.map((l) => JSON.parse(l)));
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed after ${JSON.stringify(text)}`)));
    s.on('connect', () => {
      for (const d of data) s.write(d);
    });
  });
}

describe('control socket on the real OS', () => {
  test('the socket file is 0600 in a new 0700 directory; a live path is refused, a stale one replaced', async () => {
    const path = join(dir(), 'run', 'ctl.sock');
    const a = await server(path);
    expect(a.said).toEqual({ listening: path });
    const st = statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o700);

    const b = await server(path);
    expect(b.said).toMatchObject({ code: 'EADDRINUSE', error: expect.stringContaining(`control socket ${path} is in use by a running drover`) });

    // Killed outright, the first leaves its socket file behind: stale.
    os.kill(a.pid, 'SIGKILL');
    await reap(os, a.pid);
    expect(existsSync(path)).toBe(true);
    const stale = await ctl(['--socket', path, 'status']);
    expect(stale.code).toBe(3);
    expect(stale.err).toContain(`nothing listens on ${path}: a stale socket, drover is not running`);

    const c = await server(path);
    expect(c.said).toEqual({ listening: path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await ctl(['--socket', path, 'version'])).out).toBe('drover 0.1.0-test\n');
  });

  test('malformed, oversized and abandoned input is answered or dropped, and the server keeps serving', async () => {
    const path = join(dir(), 'ctl.sock');
    await server(path);
    const big = `{"cmd":"status","pad":"${'x'.repeat(200_000)}"}`;
    // A line over the limit is the last one answered on its connection (issue 12): the rest is not read.
    const got = await raw(path, ['garbage\n', '{"cmd":"status","name":', '"scheduler","id":1}\n', big.slice(0, 70_000), big.slice(70_000) + '\n'], 3);
    expect(got[0]).toEqual({ ok: false, error: expect.stringMatching(/^invalid JSON/) });
    expect(got[1]).toMatchObject({ id: 1, ok: true, companions: [{ name: 'scheduler', state: 'RUNNING' }] });
    expect(got[2]).toEqual({ ok: false, error: expect.stringMatching(/^line too long \(\d+ bytes, limit 65536\)$/) });
    const more = await raw(path, ['[]\n', '{"cmd":"version","id":2}\n'], 2);
    expect(more[0]).toEqual({ ok: false, error: expect.stringMatching(/^a request is a JSON object/) });
    expect(more[1]).toEqual({ id: 2, ok: true, version: '0.1.0-test' });

    // Hang up mid-line, and mid-reply, then many at once.
    await new Promise<void>((resolve) => {
      const s = connect(path, () => {
        s.write('{"cmd":"stat');
        s.destroy();
        resolve();
      });
    });
    await new Promise<void>((resolve) => {
      const s = connect(path, () => {
        s.write('{"cmd":"status","name":"slow"}\n');
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 50);
      });
    });
    const many = await Promise.all(Array.from({ length: 30 }, (_, i) => raw(path, [`{"cmd":"pid","name":"scheduler","id":${i}}\n`], 1)));
    expect(many.map((r) => r[0].id)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(new Set(many.map((r) => r[0].pid)).size).toBe(1);
  });

  test('drover ctl prints a status table and exits 0, 1, 2 or 3 as documented', async () => {
    const d = dir();
    const path = join(d, 'ctl.sock');
    await server(path);

    const [status, one, json, unknown, usage, missing] = await Promise.all([
      ctl(['status', '--socket', path]),
      ctl(['-s', path, 'status', 'mailer']),
      ctl(['-s', path, '--json', 'status', 'scheduler']),
      ctl(['-s', path, 'stop', 'nope']),
      ctl(['-s', path, 'signal', 'scheduler']),
      ctl(['-s', join(d, 'none.sock'), 'status']),
    ]);
    // mailer STOPPED and flaky BACKOFF: the whole table, then exit 1 naming them (as status NAME does for one).
    expect(status.code).toBe(1);
    expect(status.out).toMatch(/^NAME +STATE +PID +UPTIME +DESCRIPTION\n/);
    expect(status.out).toMatch(/\nworker-queue +RUNNING +\d+ +0:00:\d\d +pid \d+\n/);
    expect(status.out).toMatch(/\nmailer +STOPPED +- +- +stopped by request\n/);
    expect(status.err).toBe('mailer is STOPPED, flaky is BACKOFF\n');
    expect(one).toMatchObject({ code: 1, err: 'mailer is STOPPED\n' });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ ok: true, companions: [{ name: 'scheduler', state: 'RUNNING', pid: expect.any(Number) }] });
    expect(unknown).toMatchObject({ code: 1, err: 'drover ctl: no companion named "nope"; companions: worker-queue, scheduler, mailer, flaky\n' });
    expect(usage).toMatchObject({ code: 2, err: 'drover ctl: signal takes 2 arguments, got 1: drover ctl signal NAME|all SIGNAL\n' });
    expect(missing.code).toBe(3);
    expect(missing.err).toContain(`no control socket at ${join(d, 'none.sock')}: is drover running`);

    // Acting commands: exit 1 when the companion did not end up as asked.
    expect(await ctl(['-s', path, 'stop', 'worker-queue'])).toMatchObject({ code: 0, out: 'worker-queue: stopped\n' });
    expect(await ctl(['-s', path, 'start', 'flaky'])).toMatchObject({ code: 1, err: 'flaky: not started, it is BACKOFF (exited with code 1, retrying in 2 s)\n' });

    // The socket from a config file: named with --config, or found in the working directory.
    const project = join(d, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'drover.config.json'), JSON.stringify({ app: 'app.js', control_socket: path }));
    expect(await ctl(['--config', join(project, 'drover.config.json'), 'version'])).toMatchObject({ code: 0, out: 'drover 0.1.0-test\n' });
    expect(await ctl(['pid', 'scheduler'], { cwd: project })).toMatchObject({ code: 0, out: expect.stringMatching(/^\d+\n$/) });
  });
});

describe('drover ctl against a real drover', () => {
  test('reload answers once the new generation serves; scale 3 makes 3 fast workers; top piped prints one frame with the worker pids', async () => {
    const d = dir();
    const path = join(d, 'ctl.sock');
    const drover = startDrover([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${await freePort()}`, '--workers', '2', '--min-workers', '1', '--max-workers', '4', '--control-socket', path], { XDG_RUNTIME_DIR: d });
    drovers.push(drover);
    await drover.waitFor(/worker \d+ booted[^]*worker \d+ booted/, 30_000);
    const stats = async () => JSON.parse((await ctl(['-s', path, '--json', 'stats'])).out) as { generations: { generation: number }[]; processes: { pid: number; role: string; state: string; generation: number }[] };
    expect((await stats()).generations[0]!.generation).toBe(1);

    expect(await ctl(['-s', path, 'reload'])).toEqual({ code: 0, out: 'reloaded: generation 2 serving\n', err: '' });
    const after = await stats();
    expect(after.generations[0]!.generation).toBe(2);
    expect(after.processes.filter((p) => p.role === 'fast' && p.generation === 2 && p.state === 'serving')).toHaveLength(2);

    expect(await ctl(['-s', path, 'scale', '3'])).toEqual({ code: 0, out: 'workers: 3 (min 1, max 4)\n', err: '' });
    const end = Date.now() + 20_000;
    let fast: number[] = [];
    while (Date.now() < end) {
      fast = (await stats()).processes.filter((p) => p.role === 'fast' && p.generation === 2 && p.state === 'serving').map((p) => p.pid);
      if (fast.length === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(fast).toHaveLength(3);
    expect(await ctl(['-s', path, 'scale', '9'])).toMatchObject({ code: 1, err: expect.stringMatching(/^drover ctl: scale: 9 is above max_workers \(4\)/) });

    // stdout is a pipe here: one frame, no screen clearing, exit 0.
    const top = await ctl(['-s', path, 'top']);
    expect(top).toMatchObject({ code: 0, err: '' });
    expect(top.out).not.toContain('\x1b');
    expect(top.out).toMatch(new RegExp(`^drover \\S+ {2}arbiter ${drover.pid} {2}generation 2 serving {2}\\d{4}-`));
    for (const pid of fast) expect(top.out).toMatch(new RegExp(`\\n *${pid} {2}fast {4}2 {2}serving +\\d+\\.\\d MiB `));
    expect(top.out).toMatch(/\nno companions\n$/);
  }, 60_000);
});
