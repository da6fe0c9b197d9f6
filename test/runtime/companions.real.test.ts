// Companions on the real OS: real processes, a real control socket (the
// arbiter's, forwarding companion commands to the manager), and the
// no-orphan guarantee under SIGKILL of the arbiter.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect, test } from 'vitest';
import { APPS, freePort, group, removeTmp, startDrover, tmp, type Drover } from './drover.js';
import { alive } from '../os/helpers.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const running: Drover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.cleanup();
  for (const d of dirs.splice(0)) removeTmp(d);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function ctl(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'ctl', ...args]);
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout + err.stderr };
  }
}

// A shell that ignores TERM and forks a grandchild that ignores it too.
const STUBBORN = ['sh', '-c', 'trap "" TERM; sh -c \'trap "" TERM; while :; do sleep 0.2; done\' & while :; do sleep 0.2; done'];

/** drover on basic.js with one worker, a control socket and these companions, in a fresh dir of its own. */
async function withCompanions(companions: (dir: string) => object[]): Promise<{ dir: string; sock: string; cfg: string; d: Drover }> {
  const dir = tmp();
  dirs.push(dir);
  const sock = join(dir, 'ctl.sock');
  const cfg = join(dir, 'drover.config.json');
  writeFileSync(cfg, JSON.stringify({ app: join(APPS, 'basic.js'), bind: [`127.0.0.1:${await freePort()}`], workers: 1, control_socket: sock, companions: companions(dir) }));
  const d = startDrover(['--config', cfg]);
  running.push(d);
  return { dir, sock, cfg, d };
}

test('SIGKILL of the arbiter: a companion that ignores TERM and forked a grandchild is gone within stop_timeout + 1 s', async () => {
  const { dir, sock, d } = await withCompanions((dir) => [
    { name: 'stubborn', command: STUBBORN, stop_timeout: 1, startsecs: 0.2 },
    { name: 'logger', command: ['sh', '-c', 'while :; do echo tick; sleep 0.1; done'], stdout: join(dir, 'logger.log'), startsecs: 0.2 },
  ]);
  await d.waitFor(/companion manager \d+ running/);
  let status = { code: 1, out: '' };
  for (let i = 0; i < 50 && !/stubborn\s+RUNNING[^]*logger\s+RUNNING/.test(status.out); i++) {
    await sleep(100);
    status = await ctl('--socket', sock, 'status');
  }
  expect(status.code).toBe(0);
  expect(status.out).toMatch(/^NAME\s+STATE\s+PID\s+UPTIME\s+DESCRIPTION/);
  expect((statSync(sock).mode & 0o777).toString(8)).toBe('600');
  const pid = Number((await ctl('--socket', sock, '--json', 'pid', 'stubborn')).out.match(/"pid":\s*(\d+)/)![1]);
  await sleep(500);
  const members = group(pid);
  expect(members.length).toBeGreaterThanOrEqual(2); // the shell and its grandchild, at least
  expect(readFileSync(join(dir, 'logger.log'), 'utf8')).toMatch(/^tick\n/);

  d.kill('SIGKILL');
  await d.exited();
  await sleep(1000 + 1000); // stop_timeout + 1 s
  expect(members.filter(alive)).toEqual([]);
  expect(group(pid)).toEqual([]);
});

test('drover ctl: stop and start by name, a clear error for an unknown one, exit 3 without a server', async () => {
  const { sock, cfg, d } = await withCompanions(() => [{ name: 'sleeper', command: ['sleep', '1000'], startsecs: 0.2 }]);
  await d.waitFor(/companion manager \d+ running/);
  await sleep(500);
  const stop = await ctl('--config', cfg, 'stop', 'sleeper');
  expect(stop.code).toBe(0);
  expect(stop.out).toBe('sleeper: stopped\n');
  const start = await ctl('--config', cfg, 'start', 'sleeper');
  expect(start.code).toBe(0);
  expect(start.out).toBe('sleeper: started\n');
  const unknown = await ctl('--config', cfg, 'stop', 'nobody');
  expect(unknown.code).toBe(1);
  expect(unknown.out).toMatch(/no companion named "nobody"/);
  d.kill('SIGTERM');
  expect((await d.exited()).code).toBe(0);
  expect((await ctl('--socket', sock, 'status')).code).toBe(3);
});

test('a companion holds no descriptor but its stdio: not the control socket, not the listening sockets', async () => {
  const dir = tmp();
  dirs.push(dir);
  const cfg = join(dir, 'drover.config.json');
  const out = join(dir, 'fds.log');
  writeFileSync(cfg, JSON.stringify({
    app: join(APPS, 'basic.js'), bind: [`127.0.0.1:${await freePort()}`], workers: 1, control_socket: join(dir, 'ctl.sock'),
    companions: [{ name: 'fds', command: ['sh', '-c', 'ls -l /proc/$$/fd; exec sleep 1000'], stdout: out, startsecs: 0.2 }],
  }));
  const d = startDrover(['--config', cfg]);
  running.push(d);
  await d.waitFor(/companion fds: .*running/i);
  // ls lists the shell's descriptors. 1 and 2 are the manager's pipes (libuv
  // makes them socketpairs); past stdio, no socket may be there. (This sandbox
  // leaks a pipe of its own into every process; it is not a socket.)
  const fds = [...readFileSync(out, 'utf8').matchAll(/ (\d+) -> (.*)$/gm)].map((m) => [Number(m[1]), m[2]!] as const);
  expect(fds.map(([fd]) => fd)).toEqual(expect.arrayContaining([0, 1, 2]));
  expect(fds.filter(([fd, what]) => fd > 2 && what.startsWith('socket:'))).toEqual([]);
});

test('drover ctl without companions: stats shows the lanes, status exits 1 saying how to add companions', async () => {
  const { sock, cfg, d } = await withCompanions(() => []);
  await d.waitFor(/worker \d+ booted/);
  expect((statSync(sock).mode & 0o777).toString(8)).toBe('600');
  const stats = await ctl('--config', cfg, 'stats');
  expect(stats.code).toBe(0);
  expect(stats.out).toMatch(/^lanes on, slow_threshold \d.*\n\ngeneration 1 \(serving\)\n  fast lane +1 worker; served \d+ fast, \d+ slow\n/);
  const json = await ctl('--socket', sock, '--json', 'stats');
  expect(JSON.parse(json.out)).toMatchObject({ ok: true, lanes: true, generations: [{ generation: 1, fast: { workers: 1 } }] });
  const status = await ctl('--socket', sock, 'status');
  expect(status.code).toBe(1);
  expect(status.out).toMatch(/^drover ctl: status is a companion command, and no companions are configured: add "companions" to the config and reload drover \(HUP\)/);
  d.kill('SIGTERM');
  expect((await d.exited()).code).toBe(0);
  expect((await ctl('--socket', sock, 'stats')).code).toBe(3);
});

test('the manager SIGKILLed during a stop: ctl gets an error at once, then the new manager answers on the same socket', async () => {
  // No grandchild here: the test ends with a graceful stop, which waits stop_timeout for this one.
  const { sock, d } = await withCompanions(() => [{ name: 'stubborn', command: ['sh', '-c', 'trap "" TERM; while :; do sleep 0.2; done'], stop_timeout: 4, startsecs: 0.2 }]);
  await d.waitFor(/companion manager \d+ running/);
  const pidOf = async (...name: string[]) => Number((await ctl('--socket', sock, '--json', 'pid', ...name)).out.match(/"pid":\s*(\d+)/)?.[1]);
  const manager = await pidOf();
  expect(manager).toBeGreaterThan(0);
  // stubborn ignores TERM: the stop would take stop_timeout (4 s).
  const stopping = ctl('--socket', sock, 'stop', 'stubborn');
  // The manager has the stop in hand once stubborn is STOPPING.
  for (let i = 0; i < 100 && !/stubborn\s+STOPPING/.test((await ctl('--socket', sock, 'status')).out); i++) await sleep(50);
  const killed = Date.now();
  process.kill(manager, 'SIGKILL');
  const stop = await stopping;
  expect(Date.now() - killed).toBeLessThan(3000);
  expect(stop.code).toBe(1);
  expect(stop.out).toMatch(/^drover ctl: the companion manager exited before it answered "stop stubborn", and its companions were stopped with it/);
  await d.waitFor(/Companion manager \d+ was killed by SIGKILL/);
  const from = d.log().indexOf('was killed by SIGKILL');
  await d.waitFor(/companion manager \d+ running/, 15_000, from);
  let status = { code: 1, out: '' };
  for (let i = 0; i < 50 && !/stubborn\s+RUNNING/.test(status.out); i++) {
    await sleep(100);
    status = await ctl('--socket', sock, 'status');
  }
  expect(status.code).toBe(0);
  const fresh = await pidOf();
  expect(fresh).not.toBe(manager);
  expect(fresh).toBeGreaterThan(0);
  d.kill('SIGTERM');
  expect((await d.exited(20_000)).code).toBe(0);
});

// ------------------------------------------------------------ one-shots, numprocs, prefixed output

const NODE = process.execPath;
const statusJson = async (sock: string, name?: string) => JSON.parse((await ctl('--socket', sock, '--json', 'status', ...(name ? [name] : []))).out);

/** Waits until `cond` holds, polling every 100 ms for up to `ms`. */
async function until(cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) if (await cond()) return true;
  return cond();
}

test('a real one-shot (node -e "process.exit(0)") reaches EXITED and is not restarted; start runs it again', async () => {
  const { sock, d } = await withCompanions(() => [
    { name: 'migrate', command: [NODE, '-e', 'process.exit(0)'], autorestart: false, startsecs: 0 },
    { name: 'checker', command: [NODE, '-e', 'setTimeout(() => process.exit(3), 300)'], autorestart: 'unexpected', exitcodes: [0, 3], startsecs: 0.1 },
  ]);
  await d.waitFor(/companion manager \d+ running/);
  expect(await until(async () => (await statusJson(sock)).companions.every((c: any) => c.state === 'EXITED'))).toBe(true);
  await sleep(2000); // restart_delay is 1 s: a restart would have come by now
  const s = await statusJson(sock);
  expect(s.companions.map((c: any) => [c.name, c.state, c.exits, c.description])).toEqual([
    ['migrate', 'EXITED', 1, 'exited with code 0 (expected), not restarted'],
    ['checker', 'EXITED', 1, 'exited with code 3 (expected), not restarted'],
  ]);
  expect(d.log().match(/companion migrate: pid \d+ exited/g)).toHaveLength(1);
  expect(d.log()).toMatch(/companion migrate: pid \d+ exited with code 0 \(expected\), not restarted \(autorestart false\); drover ctl start migrate runs it again/);
  const start = await ctl('--socket', sock, 'start', 'migrate');
  expect(start.code).toBe(0);
  expect(await until(async () => (await statusJson(sock, 'migrate')).companions[0].exits === 2)).toBe(true);
  expect((await statusJson(sock, 'migrate')).companions[0].state).toBe('EXITED');
  d.kill('SIGTERM');
  expect((await d.exited()).code).toBe(0);
});

test('numprocs 2 runs two real processes with DROVER_PROCESS_NUM 0 and 1; inherited lines come out whole, prefixed with the copy\'s name', async () => {
  // Each copy prints its number and, 40 ms apart, the two halves of a line; the manager's title is set.
  const script = 'const n = process.env.DROVER_PROCESS_NUM; console.log("num=" + n); process.stdout.write("half " + n + " "); ' +
    'setTimeout(() => process.stdout.write("whole\\n"), 40); setInterval(() => {}, 1000)';
  const { dir, sock, d } = await withCompanions((dir) => [
    { name: 'w', command: [NODE, '-e', script], numprocs: 2, startsecs: 0.2 },
    { name: 'filed', command: [NODE, '-e', script], stdout: join(dir, 'filed.log'), startsecs: 0.2 },
  ]);
  await d.waitFor(/companion manager \d+ running/);
  const filed = () => (existsSync(join(dir, 'filed.log')) ? readFileSync(join(dir, 'filed.log'), 'utf8') : '');
  expect(await until(() => /w:0 \| half 0 whole\n/.test(d.log()) && /w:1 \| half 1 whole\n/.test(d.log()) && filed().endsWith('whole\n'))).toBe(true);
  const log = d.log();
  expect(log).toContain('w:0 | num=0\n');
  expect(log).toContain('w:1 | num=1\n');
  expect(log).not.toMatch(/half \d+ (?!whole)/); // no line broken by another's
  expect(log).not.toContain('filed |');
  expect(filed()).toBe('num=0\nhalf 0 whole\n');
  const s = await statusJson(sock);
  expect(s.companions.map((c: any) => [c.name, c.state])).toEqual([['w:0', 'RUNNING'], ['w:1', 'RUNNING'], ['filed', 'RUNNING']]);
  const pids = s.companions.slice(0, 2).map((c: any) => c.pid as number);
  expect(new Set(pids).size).toBe(2);
  expect(pids.every(alive)).toBe(true);
  const manager = Number((await ctl('--socket', sock, '--json', 'pid')).out.match(/"pid":\s*(\d+)/)![1]);
  expect(execFileSync('ps', ['-o', 'args=', '-p', String(manager)], { encoding: 'utf8' }).trim()).toBe('drover: companion manager');
  expect((await ctl('--socket', sock, 'stop', 'w')).code).toBe(0);
  expect(await until(() => !pids.some(alive))).toBe(true);
  d.kill('SIGTERM');
  expect((await d.exited()).code).toBe(0);
  expect(alive(s.companions[2].pid)).toBe(false);
});
