// sd_notify on the real OS: drover started as systemd starts a Type=notify
// service (NOTIFY_SOCKET, WATCHDOG_USEC), and a datagram socket standing in
// for systemd that records what arrives. The socket is made by
// systemd-socket-activate (installed with systemd, as systemd-notify is):
// it binds the address, and on the first datagram execs a small node reader
// that gets it as fd 3 and reads one datagram per read(2). read(2) takes no
// ancillary data, so the descriptor each BARRIER=1 carries is closed at
// once, as systemd closes it, and systemd-notify's wait for it ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { childEnv } from '../../src/os/node/spawn.js';
import { encode, sdNotifier, watchdogMs } from '../../src/os/node/sd-notify.js';
import { APPS, freePort, get, perTest } from '../runtime/drover.js';

const READER = `
import { read } from 'node:fs';
const buf = Buffer.alloc(65536);
const next = () => read(3, buf, 0, buf.length, null, (err, n) => {
  if (err) { process.stderr.write('reader: ' + err.message + '\\n'); process.exit(1); }
  process.stdout.write(JSON.stringify({ at: Date.now(), text: buf.toString('utf8', 0, n) }) + '\\n');
  next();
});
next();`;

interface Datagram {
  readonly at: number;
  readonly fields: Record<string, string>;
}

interface Listener {
  readonly address: string;
  /** Every datagram so far, BARRIER=1 (systemd-notify's, not drover's) left out. */
  readonly got: Datagram[];
  waitFor(what: string, cond: (d: Datagram) => boolean, from?: number, timeout?: number): Promise<number>;
}

const listeners: ChildProcess[] = [];
afterEach(() => {
  for (const p of listeners.splice(0)) {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** A datagram socket at `address` (a path, or @name in the abstract namespace). */
async function listen(address: string): Promise<Listener> {
  const p = spawn('systemd-socket-activate', ['--datagram', '-l', address, process.execPath, '--input-type=module', '-e', READER], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  listeners.push(p);
  const got: Datagram[] = [];
  let log = '';
  let rest = '';
  p.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const m = JSON.parse(line) as { at: number; text: string };
      if (m.text === 'BARRIER=1') continue;
      got.push({ at: m.at, fields: Object.fromEntries(m.text.split('\n').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)])) });
    }
  });
  p.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const bound = () => (address.startsWith('@') ? readFileSync('/proc/net/unix', 'latin1').includes(` ${address}\n`) : existsSync(address));
  for (const end = Date.now() + 10_000; !bound(); ) {
    if (Date.now() > end) throw new Error(`systemd-socket-activate did not bind ${address}: ${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    address,
    got,
    async waitFor(what, cond, from = 0, timeout = 20_000) {
      for (const end = Date.now() + timeout; ; ) {
        const i = got.findIndex((d, j) => j >= from && cond(d));
        if (i >= 0) return i;
        if (Date.now() > end) throw new Error(`no ${what} within ${timeout} ms; got ${JSON.stringify(got.filter((d) => !d.fields.WATCHDOG))}\n${log}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** Processes whose environment holds NOTIFY_SOCKET=`address`: senders left running, or children that were not stripped. */
function holders(address: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (!readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(`NOTIFY_SOCKET=${address}`)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      out.push(`${name} ${readFileSync(`/proc/${name}/cmdline`, 'latin1').replaceAll('\0', ' ')}`);
    } catch {
      // gone
    }
  }
  return out;
}

const run = perTest();
const has = (key: string) => (d: Datagram) => d.fields[key] !== undefined;

describe('drover under a Type=notify service', () => {
  test('a path socket: READY with STATUS, RELOADING with MONOTONIC_USEC then READY around a HUP, WATCHDOG on time, STOPPING on TERM', async () => {
    const l = await listen(join(run.dir(), 'notify.sock'));
    const port = await freePort();
    const d = run.drover([join(APPS, 'basic.js'), '--workers', '2', '--bind', `127.0.0.1:${port}`], { NOTIFY_SOCKET: l.address, WATCHDOG_USEC: '400000' });

    const ready = await l.waitFor('READY=1', has('READY'));
    expect(l.got[ready]!.fields.STATUS).toMatch(/^generation 1 serving, 2(\+1)? workers$/);
    const worker = await get(port);
    expect(worker.status).toBe(200);
    // The arbiter speaks for the service: its workers do not have the socket (nor the watchdog).
    const env = readFileSync(`/proc/${worker.body}/environ`, 'latin1').split('\0');
    expect(env.filter((v) => /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=/.test(v))).toEqual([]);
    expect(holders(l.address).filter((h) => h.startsWith(`${worker.body} `))).toEqual([]);

    // WATCHDOG=1 every 200 ms (half of 400 ms); over a second and a half, several, spaced about that.
    const before = l.got.filter(has('WATCHDOG')).length;
    await new Promise((r) => setTimeout(r, 1500));
    const pings = l.got.filter(has('WATCHDOG'));
    expect(pings.length - before).toBeGreaterThanOrEqual(4);
    for (const p of pings) expect(p.fields).toEqual({ WATCHDOG: '1' });

    const from = l.got.length;
    const t0 = process.hrtime.bigint() / 1000n;
    d.kill('SIGHUP');
    const reloading = await l.waitFor('RELOADING=1', has('RELOADING'), from);
    // CLOCK_MONOTONIC, in µs: the same clock as ours, taken after the HUP was sent.
    const mono = BigInt(l.got[reloading]!.fields.MONOTONIC_USEC ?? 'x');
    expect(mono >= t0 && mono < t0 + 30_000_000n).toBe(true);
    const again = await l.waitFor('READY=1 after RELOADING=1', has('READY'), reloading + 1);
    expect(l.got[again]!.fields.STATUS).toMatch(/^generation 2 serving/);

    const stop = l.got.length;
    d.kill('SIGTERM');
    await l.waitFor('STOPPING=1', has('STOPPING'), stop);
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    // Nothing of drover's is left holding the socket: no sender, no child.
    await new Promise((r) => setTimeout(r, 300));
    expect(holders(l.address)).toEqual([]);
    // In order, WATCHDOG aside: READY, (STATUS...), RELOADING, READY, STOPPING.
    const kinds = l.got.filter((g) => !g.fields.WATCHDOG).map((g) => ['READY', 'RELOADING', 'STOPPING'].find((k) => g.fields[k]) ?? 'STATUS');
    expect(kinds.filter((k) => k !== 'STATUS')).toEqual(['READY', 'RELOADING', 'READY', 'STOPPING']);
  });

  test('an abstract socket (@name): READY, then STOPPING; no watchdog unless WATCHDOG_PID is ours', async () => {
    const l = await listen(`@drover-test-${process.pid}-${Date.now()}`);
    const port = await freePort();
    // WATCHDOG_PID names another process (a wrapper that did not exec): the watchdog is not ours to feed.
    const d = run.drover([join(APPS, 'basic.js'), '--workers', '1', '--bind', `127.0.0.1:${port}`], { NOTIFY_SOCKET: l.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' });
    await l.waitFor('READY=1', has('READY'));
    expect((await get(port)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    d.kill('SIGTERM');
    await l.waitFor('STOPPING=1', has('STOPPING'));
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    expect(l.got.filter(has('WATCHDOG'))).toEqual([]);
  });
});

describe('the notifier itself', () => {
  test('messages arrive one at a time, in the order sent; a queued WATCHDOG=1 or STATUS= is not sent twice', async () => {
    const l = await listen(join(run.dir(), 'order.sock'));
    const n = sdNotifier({ NOTIFY_SOCKET: l.address, PATH: process.env.PATH })!;
    for (let i = 0; i < 5; i++) n.send({ STATUS: `step ${i}`, X: String(i) });
    n.send({ WATCHDOG: '1' });
    n.send({ WATCHDOG: '1' });
    n.send({ STATUS: 'only a' });
    n.send({ STATUS: 'only b' });
    n.send({ READY: '1' });
    await l.waitFor('READY=1', has('READY'));
    expect(l.got.map((g) => g.fields)).toEqual([
      { STATUS: 'step 0', X: '0' }, { STATUS: 'step 1', X: '1' }, { STATUS: 'step 2', X: '2' }, { STATUS: 'step 3', X: '3' }, { STATUS: 'step 4', X: '4' },
      { WATCHDOG: '1' }, { STATUS: 'only b' }, { READY: '1' },
    ]);
  });

  test('a sender that cannot start is said once, and nothing is thrown', async () => {
    const said: string[] = [];
    const n = sdNotifier({ NOTIFY_SOCKET: '/nonexistent/notify.sock' }, { command: '/nonexistent/systemd-notify', warn: (l) => said.push(l) })!;
    expect(() => {
      n.send({ READY: '1' });
      n.send({ STATUS: 'x' });
    }).not.toThrow();
    await new Promise((r) => setTimeout(r, 300));
    n.send({ STOPPING: '1' });
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/NOTIFY_SOCKET=\/nonexistent\/notify\.sock is set, but notifications may not reach it: .*cannot be started \(ENOENT\); install systemd/);
  });

  test('a socket nobody listens on: systemd-notify fails, said once', async () => {
    const said: string[] = [];
    const n = sdNotifier({ NOTIFY_SOCKET: join(run.dir(), 'nobody.sock'), PATH: process.env.PATH }, { warn: (l) => said.push(l) })!;
    n.send({ READY: '1' });
    n.send({ STATUS: 'a' });
    for (const end = Date.now() + 5000; said.length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/systemd-notify exited with 1: .*No such file or directory/);
  });

  test('NOTIFY_SOCKET unset: no notifier; WATCHDOG_USEC is halved only when the watchdog is ours', () => {
    expect(sdNotifier({})).toBeNull();
    expect(sdNotifier({ NOTIFY_SOCKET: '' })).toBeNull();
    expect(watchdogMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
    expect(watchdogMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '41' }, 42)).toBeNull();
    expect(watchdogMs({ WATCHDOG_USEC: '0' }, 42)).toBeNull();
    expect(watchdogMs({ WATCHDOG_USEC: 'soon' }, 42)).toBeNull();
    expect(watchdogMs({}, 42)).toBeNull();
    expect(sdNotifier({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '400000' }, { pid: 7 })!.watchdogMs).toBe(200);
  });

  test('RELOADING=1 carries MONOTONIC_USEC; a newline in a value cannot start a field', () => {
    const before = process.hrtime.bigint() / 1000n;
    const lines = encode({ RELOADING: '1', STATUS: 'reloading\nREADY=1' });
    expect(lines[0]).toBe('RELOADING=1');
    expect(lines[1]).toMatch(/^MONOTONIC_USEC=\d+$/);
    expect(BigInt(lines[1]!.slice('MONOTONIC_USEC='.length)) >= before).toBe(true);
    expect(lines[2]).toBe('STATUS=reloading READY=1');
    expect(encode({ READY: '1' })).toEqual(['READY=1']);
  });

  test('children never inherit NOTIFY_SOCKET or WATCHDOG_*; a companion env that sets its own keeps it', () => {
    const parent = { PATH: '/bin', NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '1', WATCHDOG_PID: '9', DROVER_TEST_RUN: 't' };
    expect(childEnv(parent, undefined, {})).toEqual({ PATH: '/bin', DROVER_TEST_RUN: 't' });
    // A manager's companion env is built over the manager's own: what was copied through goes.
    expect(childEnv(parent, { ...parent, A: '1' }, {})).toEqual({ PATH: '/bin', DROVER_TEST_RUN: 't', A: '1' });
    expect(childEnv(parent, { NOTIFY_SOCKET: '/run/other' }, {})).toEqual({ NOTIFY_SOCKET: '/run/other', DROVER_TEST_RUN: 't' });
  });
});
