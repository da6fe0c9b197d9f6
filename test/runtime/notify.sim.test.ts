// What the arbiter tells a Notifier (systemd's sd_notify, the API's parent),
// on the simulated kernel: READY=1 once the first generation serves, STATUS=
// on each change, RELOADING=1 then READY=1 around a HUP, STOPPING=1 on TERM,
// and WATCHDOG=1 on its cadence, all in virtual time. The sim's own
// `arbiter` program takes no notifier, so this file registers one that does
// ahead of the runtime's (the kernel takes the first registry's program of a
// name); workers still come from the runtime's registry.
import { expect, test } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { arbiter } from '../../src/runtime/arbiter/arbiter.js';
import type { Notifier, NotifyFields } from '../../src/runtime/notify.js';
import { runtimePrograms } from '../../src/runtime/programs.js';
import { Kernel } from '../../src/sim/index.js';
import { get } from '../support/http.js';
import { reap, until } from '../support/os.js';
import { SIM_APP } from './sim.js';

const ADDR = { host: '127.0.0.1', port: 8000 };
const LOG = '/tmp/drover.log';

interface Said {
  readonly at: number;
  readonly fields: NotifyFields;
}

/** Runs `body` against an arbiter whose notifier records what it is told, with the arbiter's virtual time. */
async function run(seed: number, argv: string[], watchdogMs: number | null, body: (os: Os, said: Said[], pid: number) => Promise<void>): Promise<Said[]> {
  const said: Said[] = [];
  const arbiterWithNotifier = (os: Os, args: readonly string[]) => {
    const recorder: Notifier = { watchdogMs, send: (fields) => void said.push({ at: os.now(), fields: { ...fields } }) };
    return arbiter(os, args, { cpus: 2, notify: [recorder] });
  };
  const scenario = async (os: Os) => {
    os.fs.writeFile(LOG, '');
    const a = os.spawn({ program: 'arbiter', args: argv, channel: false, stdout: { file: LOG }, stderr: { file: LOG } });
    try {
      await body(os, said, a.pid);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- drover log ---\n${os.fs.readFile(LOG)}`);
    } finally {
      try {
        os.kill(a.pid, 'SIGKILL');
        await reap(os, a.pid);
      } catch {
        // already collected
      }
    }
  };
  const k = new Kernel({ seed, programs: [programs(import.meta.url, { arbiter: arbiterWithNotifier, scenario }), ...runtimePrograms] });
  const root = k.spawn({ program: 'scenario', channel: false });
  await k.run({ stopWhen: () => k.exitStatus(root) !== undefined, until: 3_600_000 });
  const e = k.exitStatus(root);
  if (!e || e.code !== 0) throw new Error(`scenario (seed ${seed}) ${e ? `exited ${e.code ?? e.signal}` : 'did not finish'}:\n${k.output.stderr}`);
  return said;
}

const wait = async (os: Os, said: Said[], what: string, cond: (s: Said) => boolean, from = 0, timeout = 30_000): Promise<number> => {
  let i = -1;
  if (!(await until(os, () => (i = said.findIndex((s, j) => j >= from && cond(s))) >= 0, timeout))) {
    throw new Error(`no ${what} within ${timeout} ms; said: ${JSON.stringify(said.filter((s) => !s.fields.WATCHDOG))}`);
  }
  return i;
};
const has = (key: string) => (s: Said) => s.fields[key] !== undefined;

test('READY once serving, STATUS on a change, RELOADING then READY around a HUP, STOPPING on TERM', async () => {
  const said = await run(11, [SIM_APP, '--bind', '127.0.0.1:8000', '--workers', '2', '--max-workers', '3'], null, async (os, said, pid) => {
    const ready = await wait(os, said, 'READY=1', has('READY'));
    // READY=1 comes when the server answers, not before.
    expect((await get(os, ADDR, '/')).status).toBe(200);
    expect(said[ready]!.fields.STATUS).toBe('generation 1 serving, 2+1 workers');

    os.kill(pid, 'SIGTTIN');
    await wait(os, said, 'STATUS with 3 workers', (s) => s.fields.STATUS === 'generation 1 serving, 3+1 workers', ready + 1);

    const before = said.length;
    os.kill(pid, 'SIGHUP');
    const reloading = await wait(os, said, 'RELOADING=1', has('RELOADING'), before);
    const again = await wait(os, said, 'READY=1 after the reload', has('READY'), reloading + 1);
    expect(said[again]!.fields.STATUS).toMatch(/^generation 2 serving, 3\+1 workers$/);
    // Still serving all along.
    expect((await get(os, ADDR, '/')).status).toBe(200);

    const stopAt = said.length;
    os.kill(pid, 'SIGTERM');
    await wait(os, said, 'STOPPING=1', has('STOPPING'), stopAt);
    expect((await reap(os, pid, 60_000)).code).toBe(0);
  });
  // The whole sequence, WATCHDOG aside (no watchdog was asked for: none sent).
  expect(said.filter(has('WATCHDOG'))).toEqual([]);
  const kinds = said.map((s) => (s.fields.READY ? 'READY' : s.fields.RELOADING ? 'RELOADING' : s.fields.STOPPING ? 'STOPPING' : 'STATUS'));
  const squeezed = kinds.filter((k, i) => k !== 'STATUS' || kinds[i - 1] !== 'STATUS');
  expect(squeezed).toEqual(['READY', 'STATUS', 'RELOADING', 'READY', 'STOPPING']);
  // Every STATUS= says something new; READY=1 is said once per generation.
  const statuses = said.map((s) => s.fields.STATUS).filter((s) => s !== undefined);
  for (let i = 1; i < statuses.length; i++) expect(statuses[i]).not.toBe(statuses[i - 1]);
  expect(said.filter(has('READY'))).toHaveLength(2);
});

test('WATCHDOG=1 keeps its cadence in virtual time: never sooner than asked, never late enough for systemd to act', async () => {
  const dog = 400; // WATCHDOG_USEC=800000: systemd acts on a gap of 800 ms
  const said = await run(12, [SIM_APP, '--bind', '127.0.0.1:8000', '--workers', '2', '--max-workers', '3'], dog, async (os, said, pid) => {
    await wait(os, said, 'READY=1', has('READY'));
    await os.sleep(3000);
    // A reload and a TTIN in between do not starve it.
    os.kill(pid, 'SIGTTIN');
    os.kill(pid, 'SIGHUP');
    const from = said.length;
    await wait(os, said, 'READY=1 after the reload', (s) => s.fields.READY !== undefined && s.fields.STATUS?.startsWith('generation 2') === true, from);
    await os.sleep(3000);
  });
  const pings = said.filter(has('WATCHDOG')).map((s) => s.at);
  expect(pings.length).toBeGreaterThan(12);
  const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
  for (const g of gaps) {
    expect(g).toBeGreaterThanOrEqual(dog);
    expect(g).toBeLessThan(2 * dog);
  }
  // Pings are WATCHDOG=1 alone: nothing else rides on them.
  for (const s of said.filter(has('WATCHDOG'))) expect(s.fields).toEqual({ WATCHDOG: '1' });
});
