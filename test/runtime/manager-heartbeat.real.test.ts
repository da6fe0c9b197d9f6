// The companion manager's heartbeat on the real OS (issue 12): a manager that
// is SIGSTOPped falls silent; within `timeout` and a tick the arbiter kills
// it, and its companions' process groups with it (a grandchild too), says so
// in the log, and starts a new manager with its companions after the
// restart backoff. Before the heartbeat nothing ever replaced it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { alive } from '../os/helpers.js';
import { APPS, freePort, group, removeTmp, startDrover, tmp, type Drover } from './drover.js';

const running: Drover[] = [];
const dirs: string[] = [];
/** Process groups of companions this test saw: killed at the end whatever happened (a stopped manager leaves them). */
const groups = new Set<number>();
const stopped = new Set<number>();
afterEach(async () => {
  for (const pid of stopped) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  stopped.clear();
  for (const d of running.splice(0)) await d.cleanup();
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  groups.clear();
  for (const d of dirs.splice(0)) removeTmp(d);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

// A shell that ignores TERM and forks a grandchild (in its group) that ignores it too.
const STUBBORN = ['sh', '-c', 'trap "" TERM; sh -c \'trap "" TERM; while :; do sleep 0.2; done\' & while :; do sleep 0.2; done'];
// Long enough for a worker to boot on a loaded machine (the suite runs two files at a time), short enough to wait out.
const TIMEOUT_S = 4;

test('a SIGSTOPped manager is killed within timeout + a tick, with its companion and the grandchild in its group, and a new manager runs the companion again', { timeout: 60_000 }, async () => {
  const dir = tmp();
  dirs.push(dir);
  const cfg = join(dir, 'drover.config.json');
  writeFileSync(cfg, JSON.stringify({
    app: join(APPS, 'basic.js'), bind: [`127.0.0.1:${await freePort()}`], workers: 1, timeout: TIMEOUT_S,
    control_socket: join(dir, 'ctl.sock'), companions: [{ name: 'stubborn', command: STUBBORN, stop_timeout: 1, startsecs: 0.2 }],
  }));
  const d = startDrover(['--config', cfg]);
  running.push(d);

  const manager = Number((await d.waitFor(/companion manager (\d+) running 1 companion/))[1]);
  const companion = Number((await d.waitFor(/companion stubborn: started \(pid (\d+)\)/))[1]);
  groups.add(companion);
  await until('the companion and its grandchild run', () => group(companion).length >= 2, 10_000);
  // Well past a heartbeat or two: a manager that beats is left alone.
  await sleep(TIMEOUT_S * 1000 + 500);
  expect(d.log()).not.toMatch(/COMPANION MANAGER TIMEOUT/);
  expect(alive(manager)).toBe(true);

  process.kill(manager, 'SIGSTOP');
  stopped.add(manager);
  const at = Date.now();
  const mark = d.log().length;
  // timeout, then at most one arbiter tick (timeout / 4), and room for a loaded machine.
  await d.waitFor(new RegExp(`COMPANION MANAGER TIMEOUT \\(pid:${manager}\\): silent for \\d+\\.\\d s; killing it and its 1 companion group`), TIMEOUT_S * 1000 + 500 + 4000, mark);
  const noticed = Date.now() - at;
  expect(noticed).toBeGreaterThanOrEqual(TIMEOUT_S * 1000 - 600); // not before its timeout (its last beat came up to a beat before the stop)
  await d.waitFor(new RegExp(`Companion manager ${manager} was killed by SIGKILL after its timeout; killed 1 companion group\\(s\\) it left; restarting in 1 s`), 5000, mark);
  await until('the stopped manager is gone', () => !alive(manager), 5000);
  // No stray process: the companion and the grandchild it forked went with their manager.
  await until('the companion group is empty', () => group(companion).length === 0, 3000);

  // Replaced, after the backoff: a new manager with the companion running again.
  const next = await d.waitFor(/Booting companion manager with pid: (\d+)/, 10_000, mark);
  const fresh = Number(next[1]);
  expect(fresh).not.toBe(manager);
  await d.waitFor(new RegExp(`companion manager ${fresh} running 1 companion`), 10_000, mark);
  const again = Number((await d.waitFor(/companion stubborn: started \(pid (\d+)\)/, 10_000, mark))[1]);
  groups.add(again);
  expect(again).not.toBe(companion);
  await until('the new companion runs', () => group(again).length >= 1, 5000);
  expect(alive(fresh)).toBe(true);
  expect(alive(d.pid)).toBe(true);
});
