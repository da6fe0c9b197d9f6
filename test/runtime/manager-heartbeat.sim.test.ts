// The companion manager's heartbeat on the simulated kernel (issue 12),
// where time is exact: a stopped manager is killed at its timeout (within a
// tick), its companions' groups with it, and a new one starts after the
// restart backoff; a manager that beats is never killed; timeout 0 turns
// the watch off, as it does for workers. The simulator has no SIGSTOP:
// SIGTTIN, which the manager does not handle, stops it the same way.
import { expect, test } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { SIM_APP, simulate, type Ctl } from './sim.js';

const CONFIG = '/tmp/drover.json';

const commands = programs(import.meta.url, {
  // Forks a grandchild into its own group, and both wait for ever.
  parent: async (os: Os, args) => {
    if (args[0] !== 'child') os.spawn({ command: ['parent', 'child'] });
    os.timer(1e9, () => {});
  },
});

const run = (seed: number, timeout: number, body: (c: Ctl) => Promise<void>) =>
  simulate(seed, ['--config', CONFIG], body, {
    [CONFIG]: JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 1, timeout, control_socket: '/tmp/ctl.sock', companions: [{ name: 'p', command: ['parent'] }] }),
  }, [commands]);

const live = (c: Ctl, program: string) => c.k.processes().filter((p) => p.program === program && p.state !== 'zombie');

test('a stopped manager is killed within timeout + a tick with its companion group, and a new one runs after the 1 s backoff', async () => {
  await run(1, 2, async (c) => {
    await c.waitLog(/companion manager \d+ running 1 companion/);
    await c.os.sleep(1000);
    const [mgr] = live(c, 'companion-manager');
    const family = live(c, 'parent').map((p) => p.pid);
    expect(family).toHaveLength(2);
    c.os.kill(mgr!.pid, 'SIGTTIN');
    const t0 = c.os.now();
    expect(c.k.processes().find((p) => p.pid === mgr!.pid)!.state).toBe('stopped');
    const mark = c.log().length;
    await c.waitLog(new RegExp(`COMPANION MANAGER TIMEOUT \\(pid:${mgr!.pid}\\): silent for 2\\.\\d s; killing it and its 1 companion group`), 10_000, mark);
    const killedAt = c.os.now() - t0;
    // Its last beat came at most a beat (500 ms) before the stop; the arbiter looks once a tick (500 ms).
    expect(killedAt).toBeGreaterThan(2000 - 500);
    expect(killedAt).toBeLessThanOrEqual(2000 + 500 + 50);
    await c.waitLog(new RegExp(`Companion manager ${mgr!.pid} was killed by SIGKILL after its timeout; killed 1 companion group\\(s\\) it left; restarting in 1 s`), 1000, mark);
    await c.os.sleep(10);
    for (const pid of [mgr!.pid, ...family]) expect(c.k.processes().find((p) => p.pid === pid && p.state !== 'zombie'), `pid ${pid}`).toBeUndefined();
    await c.waitLog(/companion manager \d+ running 1 companion/, 5000, mark);
    const restartedAt = c.os.now() - t0;
    expect(restartedAt).toBeLessThanOrEqual(killedAt + 1000 + 500 + 100); // the backoff, then a tick
    const [fresh] = live(c, 'companion-manager');
    expect(fresh!.pid).not.toBe(mgr!.pid);
    await c.os.sleep(500);
    expect(live(c, 'parent')).toHaveLength(2);
  });
});

test('a manager that beats is never taken for a hung one, even with a short timeout', async () => {
  await run(2, 1, async (c) => {
    await c.waitLog(/companion manager \d+ running 1 companion/);
    const [mgr] = live(c, 'companion-manager');
    await c.os.sleep(20_000);
    expect(c.log()).not.toMatch(/COMPANION MANAGER TIMEOUT|Companion manager \d+ was killed/);
    expect(live(c, 'companion-manager').map((p) => p.pid)).toEqual([mgr!.pid]);
  });
});

test('timeout 0 turns the watch off, as for workers: a stopped manager is left alone', async () => {
  await run(3, 0, async (c) => {
    await c.waitLog(/companion manager \d+ running 1 companion/);
    const [mgr] = live(c, 'companion-manager');
    c.os.kill(mgr!.pid, 'SIGTTIN');
    await c.os.sleep(60_000);
    expect(c.log()).not.toMatch(/COMPANION MANAGER TIMEOUT/);
    expect(c.k.processes().find((p) => p.pid === mgr!.pid)!.state).toBe('stopped');
    c.os.kill(mgr!.pid, 'SIGKILL'); // the arbiter then replaces it as any manager that died
    await c.waitLog(new RegExp(`Companion manager ${mgr!.pid} was killed by SIGKILL; killed 1 companion group`));
  });
});

test('a manager restarted while a broken config is on disk runs the companions the arbiter runs, and says so once', async () => {
  await run(4, 2, async (c) => {
    await c.waitLog(/companion manager \d+ running 1 companion/);
    const [mgr] = live(c, 'companion-manager');
    // An edit not yet reloaded: the arbiter keeps its config, and so must a manager started now.
    c.os.fs.writeFile(CONFIG, '{"app": ');
    const mark = c.log().length;
    c.os.kill(mgr!.pid, 'SIGKILL');
    await c.waitLog(/companion manager \d+ running 1 companion/, 5000, mark);
    expect(c.log().slice(mark)).toMatch(/the config on disk is refused \(.*\); running the companions of the config the arbiter runs/);
    const [fresh] = live(c, 'companion-manager');
    expect(fresh!.pid).not.toBe(mgr!.pid);
    await c.os.sleep(2000);
    expect(live(c, 'companion-manager').map((p) => p.pid)).toEqual([fresh!.pid]);
    expect(live(c, 'parent')).toHaveLength(2);
    expect(c.k.faults.crashes).toEqual([]);
  });
});
