// A JS config whose default export returns a promise that never settles.
// The arbiter used to await it without a limit: at boot Node exited 13
// without a word; after a HUP the arbiter heard no TERM, reaped nothing and
// checked no heartbeat, for good. Now loading gives up after LOAD_LIMIT_MS,
// and a reload reads its config while the loop goes on.
//
// A JS config is imported by Node from the real disk, and found through the
// simulated one: each file here is written to both, at the same path.
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { afterAll, expect, test } from 'vitest';
import { LOAD_LIMIT_MS } from '../../src/runtime/config/load.js';
import { SIM_APP, simulate } from './sim.js';

const made: string[] = [];
afterAll(() => made.forEach((p) => rmSync(p, { force: true })));

/**
 * A config file on the host's disk, returned with its content for the
 * simulated one. In /tmp (which the simulated disk has), under a name nobody
 * can guess and created exclusively: a fixed name there is another local
 * user's to take first.
 */
function hostFile(name: string, text: string): [string, string] {
  const path = `/tmp/drover-${randomUUID()}-${name}`;
  writeFileSync(path, text, { flag: 'wx', mode: 0o600 });
  made.push(path);
  return [path, text];
}

// Taken before any simulated process runs: inside one, the global setTimeout is its virtual one (src/sim/app-clock.ts).
const { setTimeout: hostTimeout } = globalThis;

/**
 * The driver changes a host file mid-run. A simulated process's own writes
 * to the host's files are refused (src/sim/net-guard.ts), so the write is
 * the host's, on a turn of its own, and host work the driver's clock waits
 * for.
 */
function rewrite(c: { os: { hostWork<T>(work: Promise<T>): Promise<T> } }, path: string, text: string): Promise<void> {
  return c.os.hostWork(new Promise<void>((done) => hostTimeout(() => done(writeFileSync(path, text)), 0)));
}

const GOOD = `export default ${JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 2 })};`;
const HANG = 'export default async function () { return new Promise(() => {}); }';

test('boot: a config that never finishes loading is refused after the limit, with a message naming the file and what to do; exit 2', async () => {
  const [path, text] = hostFile('boot-hang.mjs', HANG);
  await simulate(41, ['--config', path], async (c) => {
    const e = await c.exited(LOAD_LIMIT_MS + 5000);
    expect(e).toMatchObject({ code: 2 });
    expect(c.os.now()).toBeGreaterThanOrEqual(LOAD_LIMIT_MS);
    expect(c.log()).toContain(`drover: config file ${path} did not finish loading within 10 s: its module, or the promise its default export returned, never settled; make whatever it awaits`);
  }, { [path]: text });
});

test('HUP onto a config that never settles: signals, reaping and heartbeats go on; the reload fails at the limit and the old generation serves', async () => {
  const [path, text] = hostFile('reload-hang.mjs', GOOD);
  await simulate(42, ['--config', path], async (c) => {
    await c.booted(2);
    await rewrite(c, path, HANG);
    const hupAt = c.os.now();
    c.signal('SIGHUP');
    await c.os.sleep(500);
    // A worker killed while the config loads is reaped and replaced meanwhile.
    const [victim] = c.workers();
    const from = c.log().length;
    c.os.kill(victim!, 'SIGKILL');
    await c.booted(1, from, 3000);
    expect(c.os.now() - hupAt).toBeLessThan(LOAD_LIMIT_MS);
    expect(c.log()).not.toMatch(/reload failed/);
    const m = await c.waitLog(/reload failed, the running config stays in force: config file (\S+) did not finish loading within 10 s/, LOAD_LIMIT_MS + 2000);
    expect(m[1]).toBe(path);
    expect(c.os.now() - hupAt).toBeGreaterThanOrEqual(LOAD_LIMIT_MS);
    expect((await c.get('/')).status).toBe(200);
    expect(c.workers()).toHaveLength(2);
    // The file fixed, the next HUP reloads.
    await rewrite(c, path, GOOD);
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished: generation 2 serving/);
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0 });
  }, { [path]: text });
});

test('TERM while a reload waits on its config stops drover at once, not after the load', async () => {
  const [path, text] = hostFile('term-hang.mjs', GOOD);
  const r = await simulate(43, ['--config', path], async (c) => {
    await c.booted(2);
    await rewrite(c, path, HANG);
    c.signal('SIGHUP');
    await c.os.sleep(500);
    const t0 = c.os.now();
    c.signal('SIGTERM');
    expect(await c.exited(LOAD_LIMIT_MS * 2)).toMatchObject({ code: 0 });
    expect(c.os.now() - t0).toBeLessThan(2000);
    expect(c.log()).toMatch(/Handling signal: term/);
  }, { [path]: text });
  expect(r.left).toEqual([]);
});
