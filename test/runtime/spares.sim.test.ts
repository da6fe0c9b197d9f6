// spare_workers on the simulated kernel: processes started ahead, node and
// drover loaded, the app not; a reload or a respawn gives them the app.
import { expect, test } from 'vitest';
import { SIM_APP, simulate, type Ctl } from './sim.js';
import { get } from '../support/http.js';

const base = (...more: string[]) => [SIM_APP, '--bind', '127.0.0.1:8000', ...more];

/** Running spares by role: started as spares (the arbiter's log) and not given work yet. */
function spares(c: Ctl): { fast: number[]; slow: number[] } {
  const log = c.log();
  const taken = new Set([...log.matchAll(/with pid: (\d+) \(a spare\)/g)].map((m) => Number(m[1])));
  const running = new Set(c.k.processes().filter((p) => p.state === 'running').map((p) => p.pid));
  const of = (re: RegExp) => [...log.matchAll(re)].map((m) => Number(m[1])).filter((pid) => running.has(pid) && !taken.has(pid));
  return { fast: of(/Spare worker started with pid: (\d+)/g), slow: of(/Spare slow-lane worker started with pid: (\d+)/g) };
}

async function sparesUp(c: Ctl, fast: number, slow: number, timeout = 10_000): Promise<{ fast: number[]; slow: number[] }> {
  const end = c.os.now() + timeout;
  while (c.os.now() < end) {
    const s = spares(c);
    if (s.fast.length === fast && s.slow.length === slow) return s;
    await c.os.sleep(20);
  }
  throw new Error(`spares: ${JSON.stringify(spares(c))}, wanted ${fast} fast and ${slow} slow:\n${c.log()}`);
}

test('a HUP gives the new generation to the spares, the pool fills again once it serves, and TERM leaves nothing', async () => {
  const r = await simulate(31, base('--workers', '2', '--spare-workers', '2', '--keep-alive', '1'), async (c) => {
    await c.booted(2);
    // Lanes are on by default with one slow worker: one slow spare (up to slow_workers), two fast ones.
    const before = await sparesUp(c, 2, 1);
    const l = c.load(4);
    await c.os.sleep(300);
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, from);
    const reload = c.log().slice(from);
    for (const pid of before.fast) expect(reload).toContain(`Booting worker with pid: ${pid} (a spare)`);
    expect(reload).toContain(`Booting slow-lane worker with pid: ${before.slow[0]} (a spare)`);
    // Nothing was spawned fresh for the reload.
    expect(reload).not.toMatch(/Booting (?:slow-lane )?worker with pid: \d+\n/);
    // The spares are the new generation, and answer with the app.
    const pids = new Set<number>();
    for (let i = 0; i < 20; i++) pids.add(Number((await c.get()).body));
    expect([...pids].sort()).toEqual([...before.fast].sort());
    const after = await sparesUp(c, 2, 1);
    for (const pid of [...after.fast, ...after.slow]) expect([...before.fast, ...before.slow]).not.toContain(pid);
    const stats = await l.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.ok).toBeGreaterThan(50);
    const stopAt = c.os.now();
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0, signal: null });
    // The spares are told to go at once: nobody waits out graceful_timeout (30 s) for them.
    expect(c.os.now() - stopAt).toBeLessThan(5000);
    expect(c.log()).not.toMatch(/still running after graceful_timeout|before it was given work/);
  });
  expect(r.left).toEqual([]);
});

test('a killed worker is replaced by a spare; a spare killed by someone is replaced after a pause, with a warning', async () => {
  await simulate(32, base('--workers', '2', '--spare-workers', '1', '--lanes', 'off'), async (c) => {
    await c.booted(2);
    const [spare] = (await sparesUp(c, 1, 0)).fast;
    const victim = c.workers().find((p) => p !== spare)!;
    let from = c.log().length;
    c.os.kill(victim, 'SIGKILL');
    await c.waitLog(new RegExp(`Booting worker with pid: ${spare} \\(a spare\\)`), 5_000, from);
    await c.waitLog(new RegExp(`worker ${spare} booted`), 5_000, from);
    const [next] = (await sparesUp(c, 1, 0)).fast;
    expect(next).not.toBe(spare);
    from = c.log().length;
    const t0 = c.os.now();
    c.os.kill(next!, 'SIGKILL');
    await c.waitLog(new RegExp(`Spare worker ${next} was killed by SIGKILL before it was given work; next spare in 1 s`), 5_000, from);
    await c.waitLog(/Spare worker started with pid: \d+/, 5_000, from);
    expect(c.os.now() - t0).toBeGreaterThanOrEqual(1000);
    expect((await c.get()).status).toBe(200);
  });
});

test('a reload that binds elsewhere, with fewer spares, lets go of those that no longer fit, silently', async () => {
  const cfg = (port: number, spare: number) => JSON.stringify({ app: SIM_APP, bind: [`127.0.0.1:${port}`], workers: 1, spare_workers: spare });
  await simulate(33, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(1);
    const before = await sparesUp(c, 2, 1);
    c.os.fs.writeFile('/tmp/drover.json', cfg(8001, 1));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, from);
    const reload = c.log().slice(from);
    // The fast spares hold port 8000 only: the new worker is spawned fresh. The slow spare holds no listener: it is used.
    for (const pid of before.fast) expect(reload).not.toContain(`Booting worker with pid: ${pid}`);
    expect(reload).toMatch(/Booting worker with pid: \d+\n/);
    expect(reload).toContain(`Booting slow-lane worker with pid: ${before.slow[0]} (a spare)`);
    const after = await sparesUp(c, 1, 1);
    for (const pid of before.fast) expect(c.k.processes().some((p) => p.pid === pid && p.state === 'running')).toBe(false);
    expect(before.fast).not.toContain(after.fast[0]);
    expect(c.log()).not.toMatch(/before it was given work/);
  }, { '/tmp/drover.json': cfg(8000, 2) });
});

test('a spare that dies once given work, before it says a word, is replaced by a fresh worker: the reload goes through, no boot failure', async () => {
  await simulate(34, base('--workers', '2', '--spare-workers', '2', '--lanes', 'off'), async (c) => {
    await c.booted(2);
    const { fast } = await sparesUp(c, 2, 0);
    // Stopped (TTIN's default action; the simulator has no SIGSTOP), it cannot hear its 'go'; killed once it was given work, it never said anything.
    c.os.kill(fast[0]!, 'SIGTTIN');
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(new RegExp(`Booting worker with pid: ${fast[0]} \\(a spare\\)`), 5_000, from);
    c.os.kill(fast[0]!, 'SIGKILL');
    await c.waitLog(/Reload finished|reload failed/, 30_000, from);
    const reload = c.log().slice(from);
    expect(reload).toContain('Reload finished');
    expect(reload).toContain(`Worker ${fast[0]} (a spare) was killed by SIGKILL before it said anything; starting another in its place`);
    expect(reload).toContain(`Booting worker with pid: ${fast[1]} (a spare)`);
    // The fresh one in the dead spare's place.
    expect(reload).toMatch(/Booting worker with pid: \d+\n/);
    expect(reload).not.toMatch(/before it booted|reload failed/);
    expect(c.workers()).toHaveLength(2);
    expect((await c.get()).status).toBe(200);
  });
});

test('a new worker that booted and died while its reload still waited (a slow-lane spawn refused) is started again: the reload never finishes without a fast worker', async () => {
  // Found by chaos (faults, seeds 0x302ae807a7f248cd and 0xceea9ef0e6d7eb29): the reload finished with
  // its slow-lane workers alone and a target of 0, so nothing answered. Spares let the fast worker boot
  // while the OS refuses every spawn, so the reload waits on the second slow-lane worker only.
  await simulate(35, base('--workers', '1', '--spare-workers', '1', '--slow-workers', '2'), async (c) => {
    await c.booted(1);
    await sparesUp(c, 1, 1);
    c.k.faults.set({ rates: { 'spawn-eagain': 1 }, programs: ['arbiter'] });
    const from = c.log().length;
    c.signal('SIGHUP');
    const [, pid] = (await c.waitLog(/(?<!lane )worker (\d+) booted \(generation 2\)/, 5_000, from))!;
    await c.waitLog(/cannot start a slow-lane worker: .*EAGAIN/, 5_000, from);
    c.os.kill(Number(pid), 'SIGKILL');
    await c.os.sleep(100);
    expect(c.log().slice(from)).not.toContain('Reload finished');
    c.k.faults.set({});
    await c.waitLog(/Reload finished/, 30_000, from);
    const reload = c.log().slice(from);
    // Its place is taken within the reload: a fresh worker of generation 2 booted before it finished.
    const again = reload.match(/Booting worker with pid: (\d+)\n/);
    expect(again).not.toBeNull();
    expect(reload.indexOf(`worker ${again![1]} booted (generation 2)`)).toBeLessThan(reload.indexOf('Reload finished'));
    expect(c.workers()).toEqual([Number(again![1])]);
    for (let i = 0; i < 5; i++) expect((await c.get()).status).toBe(200);
  });
});

test('a new worker that retires (max_requests) before its reload finishes is replaced within the reload', async () => {
  const cfg = (maxRequests: number) => JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 1, spare_workers: 1, slow_workers: 2, max_requests: maxRequests });
  await simulate(36, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(1);
    await sparesUp(c, 1, 1);
    c.os.fs.writeFile('/tmp/drover.json', cfg(3));
    c.k.faults.set({ rates: { 'spawn-eagain': 1 }, programs: ['arbiter'] });
    const from = c.log().length;
    c.signal('SIGHUP');
    const pid = Number((await c.waitLog(/(?<!lane )worker (\d+) booted \(generation 2\)/, 5_000, from))[1]);
    // Requests that overlap: it retires with some in hand, and drains them before it exits.
    const l = c.load(4, '/slow?ms=200');
    await c.waitLog(new RegExp(`worker ${pid} served 3 requests \\(max_requests\\): retiring`), 10_000, from);
    const retired = c.os.now();
    await c.waitLog(new RegExp(`Worker ${pid} exited with code 0`), 10_000, from);
    expect(c.os.now() - retired).toBeGreaterThan(50);
    expect(c.log().slice(from)).not.toContain('Reload finished');
    c.k.faults.set({});
    await c.waitLog(/Reload finished/, 30_000, from);
    expect((await l.stop()).errors).toEqual([]);
    const reload = c.log().slice(from);
    const again = reload.match(/Booting worker with pid: (\d+)\n/);
    expect(again).not.toBeNull();
    expect(reload.indexOf(`worker ${again![1]} booted (generation 2)`)).toBeLessThan(reload.indexOf('Reload finished'));
    expect((await c.get()).status).toBe(200);
  }, { '/tmp/drover.json': cfg(0) });
});

test('a reload whose new workers keep dying after they boot fails after LOST_MAX deaths a worker; the old generation serves on', async () => {
  const crash = SIM_APP.replace(/sim-app\.js$/, 'crash-on-request.js');
  const cfg = (app: string) => JSON.stringify({ app, bind: ['127.0.0.1:8000'], workers: 2, lanes: false });
  await simulate(37, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    const old = c.workers().sort();
    const l = c.load(4, '/', true); // a connection a request: the new workers get some
    c.os.fs.writeFile('/tmp/drover.json', cfg(crash));
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/reload failed/, 30_000, from);
    await l.stop();
    const reload = c.log().slice(from);
    // Two workers wanted, the second still booting (5 s): the first is replaced as it dies, and the seventh death fails the reload.
    expect(reload).toContain('reload failed, the running config stays in force: 7 new workers died after they booted');
    expect(reload.match(/(?<!lane )worker \d+ booted \(generation 2\)/g)).toHaveLength(7);
    expect(reload).not.toContain('Reload finished');
    expect(c.workers().sort()).toEqual(old);
    expect(old).toContain(Number((await c.get()).body));
  }, { '/tmp/drover.json': cfg(SIM_APP) });
});

test('a new worker that retired with a request in hand finishes it when its reload fails', async () => {
  const hang = SIM_APP.replace(/sim-app\.js$/, 'hang-second-boot.js');
  // The new generation on a port of its own, so that only its workers answer there.
  const cfg = (app: string, port: number, maxRequests: number) =>
    JSON.stringify({ app, bind: [`127.0.0.1:${port}`], workers: 2, lanes: false, timeout: 2, max_requests: maxRequests });
  await simulate(38, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    c.os.fs.writeFile('/tmp/drover.json', cfg(hang, 8001, 1));
    const from = c.log().length;
    c.signal('SIGHUP');
    const pid = Number((await c.waitLog(/(?<!lane )worker (\d+) booted \(generation 2\)/, 5_000, from))[1]);
    const at = { host: '127.0.0.1', port: 8001 };
    const slow = get(c.os, at, '/slow?ms=3000');
    // Its one request (max_requests 1) taken, it retires with it in hand; a worker boots in its place.
    await c.waitLog(new RegExp(`worker ${pid} served 1 requests \\(max_requests\\): retiring`), 5_000, from);
    // The other new worker never boots: the reload fails on its timeout while this one drains.
    await c.waitLog(/reload failed, the running config stays in force: new workers did not boot within 2 s/, 10_000, from);
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.body).toBe(String(pid));
    await c.waitLog(new RegExp(`Worker ${pid} exited with code 0`), 10_000, from);
  }, { '/tmp/drover.json': cfg(SIM_APP, 8000, 0) });
});

test('refused spawns fail a reload after 60 s of them', async () => {
  await simulate(39, base('--workers', '1', '--lanes', 'off'), async (c) => {
    await c.booted(1);
    c.k.faults.set({ rates: { 'spawn-eagain': 1 }, programs: ['arbiter'] });
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.os.sleep(59_000);
    expect(c.log().slice(from)).not.toContain('reload failed');
    await c.waitLog(/reload failed/, 5_000, from);
    expect(c.log().slice(from)).toContain('reload failed, the running config stays in force: 1 new worker(s) could not be started within 60 s: the OS refused their spawn');
    c.k.faults.set({});
    expect((await c.get()).status).toBe(200);
  });
});

test('the 60 s of refused spawns count from the first refusal, not from the reload start', async () => {
  const cfg = JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 2, spare_workers: 2, lanes: false, timeout: 120 });
  await simulate(40, ['--config', '/tmp/drover.json'], async (c) => {
    await c.booted(2);
    const { fast } = await sparesUp(c, 2, 0);
    // Stopped, the second spare never boots: the reload stays under way for up to 120 s.
    c.os.kill(fast[1]!, 'SIGTTIN');
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(new RegExp(`worker ${fast[0]} booted \\(generation 2\\)`), 5_000, from);
    await c.os.sleep(70_000);
    // 70 s into the reload its booted worker dies, and the OS refuses the replacement for a while.
    c.k.faults.set({ rates: { 'spawn-eagain': 1 }, programs: ['arbiter'] });
    c.os.kill(fast[0]!, 'SIGKILL');
    await c.waitLog(/cannot start a worker: .*EAGAIN/, 5_000, from);
    await c.os.sleep(2_000);
    c.k.faults.set({});
    const again = Number((await c.waitLog(/Booting worker with pid: (\d+)\n/, 5_000, from))[1]);
    await c.waitLog(new RegExp(`worker ${again} booted \\(generation 2\\)`), 5_000, from);
    // However the stopped spare ends the reload, the refusals did not.
    await c.waitLog(/Reload finished|reload failed/, 60_000, from);
    expect(c.log().slice(from)).not.toContain('could not be started');
  }, { '/tmp/drover.json': cfg });
});
