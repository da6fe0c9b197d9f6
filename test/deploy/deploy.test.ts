// The files in deploy/ are documentation that runs: each one's drover
// command line is taken out of it and run (with this repository's drover
// and a test app put in place of the installed ones), the systemd pair is
// played by systemd-socket-activate, and the numbers that must agree
// (grace periods, ports, probes) are checked against each other.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { SETTINGS } from '../../src/runtime/config/index.js';
import { APPS, freePort, get, group, perTest } from '../runtime/drover.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
const BIN = join(ROOT, 'bin', 'drover.js');
const APP = join(APPS, 'basic.js');
const read = (name: string) => readFileSync(join(DEPLOY, name), 'utf8');
const GRACEFUL_DEFAULT_S = (SETTINGS.find((s) => s.name === 'graceful_timeout')!.default as number) / 1000;

const run = perTest();
const started: ChildProcess[] = [];
afterEach(() => {
  for (const p of started.splice(0)) {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** This repository's node, drover and test app in place of the installed ones; `extra` replaces other words. */
function local(argv: readonly string[], extra: Record<string, string> = {}): string[] {
  return argv.map((a, i) => {
    if (i === 0 && /(^|\/)node$/.test(a)) return process.execPath;
    if (a.endsWith('node_modules/drover/bin/drover.js')) return BIN;
    if (a === 'server.js') return APP;
    return extra[a] ?? a;
  });
}

function checkConfig(argv: readonly string[], env: Record<string, string>): { status: number | null; out: string } {
  const cwd = run.dir();
  const [file, ...args] = local(argv);
  const r = spawnSync(file!, [...args, '--check-config'], { cwd, encoding: 'utf8', env: { PATH: process.env.PATH!, DROVER_TEST_RUN: process.env.DROVER_TEST_RUN ?? '', ...env }, timeout: 60_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** The value after `flag` in an argv, or undefined. */
const flag = (argv: readonly string[], name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
};

// ---------------------------------------------------------------- Dockerfile

function dockerfile() {
  const text = read('Dockerfile').replace(/\\\n/g, ' ');
  const instr = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());
  const env: Record<string, string> = {};
  for (const line of instr('ENV')) for (const kv of line.split(/\s+/)) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  return {
    from: instr('FROM'),
    user: instr('USER'),
    stopsignal: instr('STOPSIGNAL'),
    entrypoint: JSON.parse(instr('ENTRYPOINT')[0] ?? '[]') as string[],
    cmd: JSON.parse(instr('CMD')[0] ?? '[]') as string[],
    env,
  };
}

describe('Dockerfile', () => {
  test('node:20-slim, a user that is not root, STOPSIGNAL SIGTERM, tini as PID 1 in exec form', () => {
    const d = dockerfile();
    expect(d.from).toEqual(['node:20-slim']);
    expect(d.user).toHaveLength(1);
    expect(d.user[0]).not.toMatch(/^(root|0)(:|$)/);
    expect(d.stopsignal).toEqual(['SIGTERM']);
    expect(d.entrypoint).toEqual(['/usr/bin/tini', '--']);
    expect(read('Dockerfile')).toMatch(/apt-get install[^\n]* tini/);
  });

  test('its CMD passes --check-config with the image\'s environment: bound on 0.0.0.0:$PORT', () => {
    const d = dockerfile();
    expect(d.env.PORT).toMatch(/^\d+$/);
    expect(flag(d.cmd, '--bind')).toBeUndefined(); // PORT is what binds it
    const r = checkConfig(d.cmd, d.env);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`bind 0.0.0.0:${d.env.PORT}`);
    // WEB_CONCURRENCY, as a platform sets it, is taken.
    expect(checkConfig(d.cmd, { ...d.env, WEB_CONCURRENCY: '3' }).out).toContain('3 worker(s)');
  });
});

// ------------------------------------------------------------------ systemd

/** `[Section]` → key → values (a key may repeat), with systemd's line continuations joined. */
function unit(name: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let cur: Map<string, string[]> | null = null;
  for (const raw of read(name).replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) sections.set(s[1]!, (cur = new Map()));
    else if (cur) {
      const k = line.slice(0, line.indexOf('='));
      cur.set(k, [...(cur.get(k) ?? []), line.slice(line.indexOf('=') + 1)]);
    }
  }
  return sections;
}

/** An ExecStart= line as argv: words split on blanks, "double quotes" kept together. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

const seconds = (v: string): number => {
  const m = /^(\d+)\s*(s|sec|min)?$/.exec(v.trim());
  if (!m) throw new Error(`not a time span this test reads: ${v}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
};

describe('drover.service and drover.socket', () => {
  test('Type=notify with NotifyAccess=all, the watchdog, HUP for reload, KillMode=mixed, and a stop timeout above graceful_timeout', () => {
    const svc = unit('drover.service').get('Service')!;
    const one = (k: string) => svc.get(k)?.[0];
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('all');
    expect(seconds(one('WatchdogSec')!)).toBeGreaterThan(0);
    expect(one('ExecReload')).toMatch(/kill -HUP \$MAINPID$/);
    expect(one('KillMode')).toBe('mixed');
    const argv = words(one('ExecStart')!);
    const graceful = Number(flag(argv, '--graceful-timeout') ?? GRACEFUL_DEFAULT_S);
    expect(seconds(one('TimeoutStopSec')!)).toBeGreaterThan(graceful);
    // The main pid is the arbiter: ExecStart runs node itself, not a shell or npx.
    expect(argv[0]).toMatch(/^\/.*\/node$/);
    expect(unit('drover.service').get('Unit')!.get('Requires')).toEqual(['drover.socket']);
  });

  test('its ExecStart passes --check-config', () => {
    const svc = unit('drover.service').get('Service')!;
    const env = Object.fromEntries((svc.get('Environment') ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const argv = local(words(svc.get('ExecStart')![0]!), { '/run/drover/ctl.sock': join(run.dir(), 'ctl.sock') });
    const r = checkConfig(argv, env);
    expect(r.status, r.out).toBe(0);
  });

  test('played by systemd-socket-activate: drover serves the passed socket, says READY=1, and TERM leaves nothing behind', async () => {
    const svc = unit('drover.service').get('Service')!;
    const listen = unit('drover.socket').get('Socket')!.get('ListenStream')!;
    expect(listen).toHaveLength(1);
    const port = await freePort();
    const admin = await freePort();
    const dir = run.dir();
    // The socket's address with a free port on loopback in place of 0.0.0.0:8000.
    const address = listen[0]!.replace(/^(?:.*:)?\d+$/, `127.0.0.1:${port}`);
    const argv = local(words(svc.get('ExecStart')![0]!), { '/run/drover/ctl.sock': join(dir, 'ctl.sock') });
    const at = argv.indexOf('--admin-bind');
    if (at >= 0) argv[at + 1] = `127.0.0.1:${admin}`;
    const notify = await datagrams(join(dir, 'notify.sock'));
    const env = [
      ...(svc.get('Environment') ?? []),
      `NOTIFY_SOCKET=${notify.path}`,
      `WATCHDOG_USEC=${seconds(svc.get('WatchdogSec')![0]!) * 1_000_000}`,
      'DROVER_TEST_RUN',
    ];
    const sa = spawn('systemd-socket-activate', ['-l', address, ...env.flatMap((e) => ['-E', e]), ...argv], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(sa);
    let log = '';
    sa.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    sa.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => sa.on('exit', (code, signal) => r({ code, signal })));
    for (const end = Date.now() + 10_000; !log.includes('Listening on'); ) {
      if (Date.now() > end) throw new Error(`systemd-socket-activate did not listen: ${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // The first connection starts drover (systemd-socket-activate execs it in its own place); it is answered once drover serves.
    const first = await get(port);
    expect(first.status, log).toBe(200);
    expect(log).toMatch(/socket\(s\) from systemd \(LISTEN_FDS\)/);
    await notify.waitFor('READY=1', (m) => m.includes('READY=1'));
    expect((await get(admin, '/readyz')).status).toBe(200);
    process.kill(sa.pid!, 'SIGTERM');
    expect(await exited, log).toEqual({ code: 0, signal: null });
    expect(notify.got.some((m) => m.includes('STOPPING=1'))).toBe(true);
    // No worker, sender or other child of drover outlives it.
    await new Promise((r) => setTimeout(r, 300));
    expect(group(sa.pid!)).toEqual([]);
  });
});

/** A unix datagram socket at `path` standing in for systemd's notify socket (see test/os/sd-notify.real.test.ts). */
async function datagrams(path: string): Promise<{ path: string; got: string[]; waitFor(what: string, cond: (m: string) => boolean): Promise<void> }> {
  const reader = `import { read } from 'node:fs'; const b = Buffer.alloc(65536);
    const next = () => read(3, b, 0, b.length, null, (e, n) => { if (e) process.exit(1); process.stdout.write(JSON.stringify(b.toString('utf8', 0, n)) + '\\n'); next(); }); next();`;
  const p = spawn('systemd-socket-activate', ['--datagram', '-l', path, process.execPath, '--input-type=module', '-e', reader], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  started.push(p);
  const got: string[] = [];
  let rest = '';
  p.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    for (const l of lines) got.push(JSON.parse(l) as string);
  });
  for (const end = Date.now() + 10_000; !existsSync(path); ) {
    if (Date.now() > end) throw new Error(`no datagram socket at ${path}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    path,
    got,
    async waitFor(what, cond) {
      for (const end = Date.now() + 20_000; !got.some(cond); ) {
        if (Date.now() > end) throw new Error(`no ${what}; got ${JSON.stringify(got)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

// --------------------------------------------------------------- Kubernetes

function pod() {
  const text = read('kubernetes.yaml');
  const num = (key: string) => Number(new RegExp(`^\\s*${key}:\\s*(\\d+)\\s*$`, 'm').exec(text)?.[1]);
  const env = Object.fromEntries([...text.matchAll(/- name: (\w+)\n\s+value: "([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const ports = Object.fromEntries([...text.matchAll(/- name: (\w+)\n\s+containerPort: (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  const probe = (kind: string) => {
    const m = new RegExp(`${kind}:\\n\\s+httpGet:\\n\\s+path: (\\S+)\\n\\s+port: (\\S+)`).exec(text);
    return m === null ? null : { path: m[1]!, port: m[2]! };
  };
  return {
    grace: num('terminationGracePeriodSeconds'),
    args: JSON.parse(/^\s*args:\s*(\[.*\])\s*$/m.exec(text)?.[1] ?? '[]') as string[],
    command: /^\s+command:\s*\[.*\]\s*$/m.test(text.replace(/preStop:[\s\S]*$/, '')),
    preStop: JSON.parse(/preStop:\n\s+exec:\n\s+command:\s*(\[.*\])/.exec(text)?.[1] ?? '[]') as string[],
    env,
    ports,
    readiness: probe('readinessProbe'),
    liveness: probe('livenessProbe'),
  };
}

describe('kubernetes.yaml', () => {
  test('terminationGracePeriodSeconds covers the preStop wait and graceful_timeout', () => {
    const p = pod();
    const graceful = Number(flag(p.args, '--graceful-timeout') ?? GRACEFUL_DEFAULT_S);
    const wait = p.preStop[0] === 'sleep' ? Number(p.preStop[1]) : 0;
    expect(p.grace).toBeGreaterThan(graceful + wait);
  });

  test('probes: readiness on /readyz and liveness on /healthz, on the admin port drover is told to bind', () => {
    const p = pod();
    expect(p.readiness).toEqual({ path: '/readyz', port: 'admin' });
    expect(p.liveness).toEqual({ path: '/healthz', port: 'admin' });
    expect(flag(p.args, '--admin-bind')).toBe(`0.0.0.0:${p.ports.admin}`);
    expect(p.ports.http).toBe(Number(p.env.PORT));
    // args, not command: tini from the image stays PID 1.
    expect(p.command).toBe(false);
  });

  test('its args pass --check-config with the pod\'s environment: bound on 0.0.0.0:$PORT', () => {
    const p = pod();
    const r = checkConfig(p.args, p.env);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`bind 0.0.0.0:${p.env.PORT}`);
  });
});

// ------------------------------------------------------------- PID 1 claims

/** Processes whose parent is `ppid`, with their state and name, from /proc. */
function children(ppid: number): { pid: number; state: string; comm: string }[] {
  const out: { pid: number; state: string; comm: string }[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === ppid) out.push({ pid: Number(name), state: f[0]!, comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // gone
    }
  }
  return out;
}

const canUnshare = spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;

describe('drover as PID 1 (what the Dockerfile says about tini)', () => {
  test.skipIf(!canUnshare)('handles TERM as PID 1 and exits cleanly, but leaves an orphaned grandchild a zombie: hence tini', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const dir = run.dir();
    const config = { app: APP, workers: 1, lanes: false, bind: [`127.0.0.1:${port}`], control_socket: join(dir, 'ctl.sock'),
      // A companion that leaves a background job behind as it exits: the job is re-parented to PID 1.
      companions: [{ name: 'leaky', command: ['sh', '-c', 'sleep 0.3 & exit 0'], startsecs: 0, autorestart: false }] };
    const file = join(dir, 'drover.config.json');
    writeFileSync(file, JSON.stringify(config));
    const u = spawn('unshare', ['--pid', '--fork', '--kill-child', process.execPath, BIN, '--config', file], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(u);
    let log = '';
    u.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    u.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    const exited = new Promise<number | null>((r) => u.on('exit', (code) => r(code)));
    for (const end = Date.now() + 30_000; !/pid \d+ exited with code 0/.test(log); ) {
      if (Date.now() > end) throw new Error(`the companion did not run and exit:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(log).toMatch(/\[1\] \[INFO\]/); // the arbiter is PID 1 in its namespace
    const arbiter = children(u.pid!)[0]!.pid;
    expect((await get(port)).status).toBe(200);
    // The orphaned job ends and stays a zombie: Node waits only for children it started. The job is
    // `sh`'s fork for `sleep 0.3 &`, which is named sleep once it has exec'd; the manager kills the
    // companion's group as its leader exits, and on a loaded machine that can come before the exec.
    let zombie: { state: string; comm: string } | undefined;
    const job = (c: { state: string; comm: string }) => c.state === 'Z' && (c.comm === 'sleep' || c.comm === 'sh');
    for (const end = Date.now() + 20_000; !(zombie = children(arbiter).find(job)) && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(zombie, `a zombie job under PID 1; its children: ${JSON.stringify(children(arbiter))}\n${log}`).toBeDefined();
    // TERM from outside the namespace, as docker stop sends it: PID 1 gets only signals it handles, and drover handles it.
    process.kill(arbiter, 'SIGTERM');
    expect(await exited, log).toBe(0);
    expect(log).toMatch(/Shutdown complete/);
  });
});
