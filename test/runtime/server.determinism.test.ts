// The server on the simulated kernel replays bit for bit from its seed: the
// same scenario (boot, load, HUP, a killed worker, TERM) run twice gives the
// same trace hash; another seed gives another trace.
import { expect, test } from 'vitest';
import { SIM_APP, simulate } from './sim.js';

async function hash(seed: number): Promise<string> {
  const r = await simulate(seed, [SIM_APP, '--bind', '127.0.0.1:8000', '--workers', '2', '--keep-alive', '1'], async (c) => {
    await c.booted(2);
    const l = c.load(3, '/slow?ms=5');
    const fresh = c.load(1, '/burn?ms=3', true);
    await c.os.sleep(700);
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/);
    c.os.kill(c.workers()[0]!, 'SIGKILL');
    await c.os.sleep(1500);
    await l.stop();
    await fresh.stop();
    c.signal('SIGTERM');
    await c.exited();
  });
  return r.k.traceHash();
}

test('same seed, same server trace; different seed, different trace', async () => {
  for (const seed of [1, 2, 3]) {
    const a = await hash(seed);
    expect(await hash(seed), `seed ${seed}`).toBe(a);
  }
  expect(await hash(4)).not.toBe(await hash(5));
});
