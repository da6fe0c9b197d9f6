// The control socket against hostile neighbours (issue 12), on the real OS:
// another local user (uid 65534, via setpriv) squatting the path drover or
// `drover ctl` would use, reply strings that carry terminal escapes, and a
// peer that holds connections, sends an endless line, or a line whose
// "__proto__" key used to kill its connection. Every process started here is
// killed (the squatters by their own pid) and every temp dir removed in afterEach.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { defaultControlSocket } from '../../src/runtime/config/index.js';
import { APPS, freePort, removeTmp, startDrover, tmp, type Drover } from './drover.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const APP = join(APPS, 'basic.js');
const NOBODY = 65534;

/** Whether a process can be run as uid 65534 here: root and util-linux's setpriv are needed. */
function secondUid(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root: cannot start a process as another uid';
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', 'process.stdout.write(String(process.getuid()))'], { encoding: 'utf8' });
  if (r.error || r.stdout !== String(NOBODY)) return `setpriv cannot run node as uid ${NOBODY} (${r.error?.message ?? r.stderr.trim()})`;
  return null;
}
const noSecondUid = secondUid();
if (noSecondUid !== null) console.warn(`control-neighbours: tests that need a second uid are skipped: ${noSecondUid}`);

const procs: ChildProcess[] = [];
const droves: Drover[] = [];
const dirs: string[] = [];
const socks: Socket[] = [];
afterEach(async () => {
  for (const s of socks.splice(0)) s.destroy();
  for (const d of droves.splice(0)) await d.cleanup();
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
  }
  for (const d of dirs.splice(0)) removeTmp(d);
});

/** A temp dir of the test's, traversable by other users (a squatter has to reach into it). */
function dir(mode = 0o755): string {
  const d = tmp();
  dirs.push(d);
  chmodSync(d, mode);
  return d;
}

/** A sticky world-writable directory, /tmp's mode, inside a fresh temp dir. */
function stickyDir(): string {
  const d = join(dir(), 'shared');
  mkdirSync(d);
  chmodSync(d, 0o1777);
  return d;
}

/**
 * A fake drover listening on `path`: every byte it receives is appended to
 * `path`.got, and each line is answered with `reply`. As uid 65534 (a
 * squatter) or as ourselves. Resolves once it listens.
 */
async function fake(path: string, reply: object, asNobody: boolean): Promise<{ got: () => string }> {
  const log = `${path}.got`;
  const code = `
    const net = require('net'), fs = require('fs');
    const [path, log, reply] = process.argv.slice(1);
    fs.writeFileSync(log, '');
    net.createServer((s) => s.on('data', (d) => { fs.appendFileSync(log, d); s.write(reply + '\\n'); }))
      .listen(path, () => { fs.chmodSync(path, 0o777); process.stdout.write('ready\\n'); });`;
  const argv = [process.execPath, '-e', code, path, log, JSON.stringify(reply)];
  const p = asNobody
    ? spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('ready') && resolve());
    p.on('exit', (c) => reject(new Error(`the fake server exited (${c})`)));
  });
  return { got: () => readFileSync(log, 'utf8') };
}

/** `drover ctl ARGS` as a real process. */
function ctl(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, 'ctl', ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

const EVIL = 'w\x1b]0;pwned\x07\x1b[2J\u009b31m';

describe('squatters: another user at the control socket path', () => {
  test.skipIf(noSecondUid !== null)('a user-set control_socket where another uid already listens: drover refuses to start (exit 2, naming the path)', async () => {
    const path = join(stickyDir(), 'ctl.sock');
    const squatter = await fake(path, { ok: true, companions: [] }, true);
    const d = startDrover([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--control-socket', path], { XDG_RUNTIME_DIR: dir(0o700) });
    droves.push(d);
    // Before: a warning, and drover served on without a control socket.
    expect(await d.exited(20_000)).toEqual({ code: 2, signal: null });
    expect(d.log()).toContain(`control socket ${path} is already there and belongs to uid ${NOBODY}`);
    expect(d.log().trim().split('\n')).toHaveLength(1);
    expect(squatter.got()).toBe('');
  });

  test('a user-set control_socket in a directory other users can write (not sticky): drover refuses to start', async () => {
    const shared = join(dir(), 'open');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const path = join(shared, 'ctl.sock');
    const d = startDrover([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--control-socket', path], { XDG_RUNTIME_DIR: dir(0o700) });
    droves.push(d);
    expect(await d.exited(20_000)).toEqual({ code: 2, signal: null });
    expect(d.log()).toMatch(new RegExp(`^drover: control socket ${path}: its directory ${shared} \\(mode 777\\) is writable by other users`));
    expect(existsSync(path)).toBe(false);
  });

  test.skipIf(noSecondUid !== null)('drover ctl refuses a socket another uid owns, and sends it nothing: given with --socket, or at the default path', async () => {
    const path = join(stickyDir(), 'ctl.sock');
    const squatter = await fake(path, { ok: true, companions: [] }, true);
    // Before: ctl talked to it, printed its (forged) answer and exited 0.
    const r = await ctl(['--socket', path, 'stop', 'all']);
    expect(r.code).toBe(3);
    expect(r.err).toContain(`refusing to talk to ${path}: the socket belongs to uid ${NOBODY}, not to you (uid 0) or root`);
    expect(r.out).toBe('');
    // The default path, in a runtime dir another user made (XDG_RUNTIME_DIR pointing at a shared place).
    const xdg = stickyDir();
    const cwd = dir();
    const def = defaultControlSocket(cwd, null, { XDG_RUNTIME_DIR: xdg }, 0);
    mkdirSync(join(def, '..'), { mode: 0o755 });
    spawnSync('chown', [`${NOBODY}:${NOBODY}`, join(def, '..')]);
    const squatter2 = await fake(def, { ok: true, version: 'forged' }, true);
    const r2 = await ctl(['version'], { cwd, env: { XDG_RUNTIME_DIR: xdg } });
    expect(r2.code).toBe(3);
    expect(r2.err).toContain(`refusing to talk to ${def}: the socket belongs to uid ${NOBODY}`);
    expect(r2.out).toBe('');
    expect(squatter.got()).toBe('');
    expect(squatter2.got()).toBe('');
  });
});

test('drover ctl refuses a socket of its own in a directory other users can write (not sticky), and sends it nothing: another user could swap it', async () => {
  const shared = join(dir(), 'shared');
  mkdirSync(shared);
  const path = join(shared, 'ctl.sock');
  const ours = await fake(path, { ok: true, version: 'maybe forged' }, false);
  chmodSync(shared, 0o777);
  const r = await ctl(['--socket', path, 'version']);
  expect(r.code).toBe(3);
  expect(r.err).toContain(`refusing to talk to ${path}: its directory ${shared} (mode 777, writable by other users) lets another user replace the socket`);
  expect(r.out).toBe('');
  expect(ours.got()).toBe('');
  // The same socket once the directory is ours alone again: answered.
  chmodSync(shared, 0o755);
  const ok = await ctl(['--socket', path, 'version']);
  expect(ok.out).toContain('maybe forged');
});

test('drover ctl escapes control characters in reply strings (names, descriptions, errors)', async () => {
  const d = dir(0o700);
  const ok = join(d, 'ok.sock');
  const bad = join(d, 'bad.sock');
  await fake(ok, { ok: true, companions: [{ name: EVIL, state: 'RUNNING', pid: 1, since_ms: 0, exits: 0, description: 'up\r\nFAKE  RUNNING' }] }, false);
  await fake(bad, { ok: false, error: `no \u001b[31mred\u0085 here` }, false);
  const a = await ctl(['--socket', ok, 'status']);
  const b = await ctl(['--socket', bad, 'status']);
  const c = await ctl(['--socket', ok, '--json', 'status']);
  for (const r of [a, b, c]) expect(r.out + r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  expect(a.code).toBe(0);
  expect(a.out).toContain('w\\x1b]0;pwned\\x07\\x1b[2J\\u009b31m  RUNNING');
  expect(a.out).toContain('up\\r\\nFAKE  RUNNING');
  expect(b).toMatchObject({ code: 1, err: 'drover ctl: no \\x1b[31mred\\u0085 here\n' });
  expect(JSON.parse(c.out).companions[0].name).toBe(EVIL);
});

describe('a real drover\'s control socket under a hostile peer', () => {
  let d: Drover;
  let path: string;
  let base: string;
  beforeAll(async () => {
    base = tmp();
    path = join(base, 'ctl.sock');
    d = startDrover([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--control-socket', path], { XDG_RUNTIME_DIR: base });
    await d.waitFor(/worker \d+ booted/, 30_000);
    await d.waitFor(/Control socket: /);
  }, 60_000);
  afterAll(async () => {
    await d?.cleanup();
    if (base) removeTmp(base);
  });

  /** A raw connection: its reply lines, and whether the server closed it. */
  async function open(): Promise<{ s: Socket; lines: () => string[]; closed: () => boolean; next: (ms?: number) => Promise<string> }> {
    const s = connect(path);
    socks.push(s);
    let text = '';
    let closed = false;
    s.setEncoding('utf8').on('data', (x: string) => (text += x));
    s.on('error', () => {});
    s.on('close', () => (closed = true));
    await new Promise((r) => s.once('connect', r));
    const lines = () => text.split('\n').slice(0, -1);
    return {
      s,
      lines,
      closed: () => closed,
      async next(ms = 3000) {
        const n = lines().length;
        const end = Date.now() + ms;
        while (lines().length === n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        if (lines().length === n) throw new Error(`no reply within ${ms} ms (closed: ${closed}, got ${JSON.stringify(text)})`);
        return lines()[n]!;
      },
    };
  }

  test('65 connections at once: the 65th gets a one-line error and is closed; the first 64 are served', async () => {
    const held = [];
    for (let i = 0; i < 64; i++) held.push(await open());
    await new Promise((r) => setTimeout(r, 200));
    const extra = await open();
    expect(JSON.parse(await extra.next())).toEqual({ ok: false, error: 'too many control connections (64 open): try again when one has closed' });
    const end = Date.now() + 3000;
    while (!extra.closed() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(extra.closed()).toBe(true);
    held[63]!.s.write('{"cmd":"version"}\n');
    expect(JSON.parse(await held[63]!.next())).toMatchObject({ ok: true });
    for (const h of held) h.s.destroy();
    // The server sees those closes soon after: then a new connection is served again (and the next test has its slots).
    for (let i = 0; ; i++) {
      const c = await open();
      c.s.write('{"cmd":"version"}\n');
      const r = JSON.parse(await c.next());
      c.s.destroy();
      if (r.ok === true) break;
      expect(i).toBeLessThan(50);
      await new Promise((res) => setTimeout(res, 50));
    }
  });

  test('{"cmd":"status","__proto__":{"name":"x"}} gets a reply, and the connection carries on', async () => {
    const c = await open();
    c.s.write('{"cmd":"status","__proto__":{"name":"x"},"id":1}\n');
    expect(JSON.parse(await c.next())).toMatchObject({ id: 1, ok: false, error: expect.stringMatching(/^status: unknown argument "__proto__"/) });
    c.s.write('{"cmd":"version","id":2}\n');
    expect(JSON.parse(await c.next())).toMatchObject({ id: 2, ok: true });
  });

  test('a line over 1 MiB, its newline never sent, gets an error reply and the connection is closed', async () => {
    const c = await open();
    c.s.write('{"cmd":"status","pad":"' + 'p'.repeat((1 << 20) + 1));
    expect(JSON.parse(await c.next())).toEqual({ ok: false, error: expect.stringMatching(/^line too long \(\d+ bytes, limit \d+\)$/) });
    const end = Date.now() + 3000;
    while (!c.closed() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(c.closed()).toBe(true);
  });
});

test('a stopped (hung) companion manager: drover ctl status answers "companion manager not responding" within 5 s and exits non-zero', async () => {
  const base = dir(0o700);
  const path = join(base, 'ctl.sock');
  const cfg = join(base, 'drover.json');
  writeFileSync(cfg, JSON.stringify({ app: APP, bind: [`127.0.0.1:${await freePort()}`], workers: 1, control_socket: path, companions: [{ name: 'idle', command: ['sleep', '1000'] }] }));
  const d = startDrover(['--config', cfg], { XDG_RUNTIME_DIR: base });
  droves.push(d);
  await d.waitFor(/worker \d+ booted/, 30_000);
  let pid = 0;
  for (let i = 0; i < 100 && pid === 0; i++) {
    const r = await ctl(['--socket', path, 'pid']);
    if (r.code === 0) pid = Number(r.out.trim());
    else await new Promise((res) => setTimeout(res, 100));
  }
  expect(pid).toBeGreaterThan(0);
  process.kill(pid, 'SIGSTOP');
  try {
    const t0 = Date.now();
    // ctl's own timeout is 10 s: before the change it waited the arbiter's 30 s out and gave up at that.
    const r = await ctl(['--socket', path, '--timeout', '10', 'status']);
    const took = Date.now() - t0;
    expect(r.code).toBe(1);
    expect(r.err).toContain('companion manager not responding');
    expect(took).toBeLessThan(7000);
  } finally {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // replaced meanwhile
    }
    await d.cleanup();
  }
}, 60_000);
