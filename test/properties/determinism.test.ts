// Same seed, same trace, bit for bit; different seeds, different traces.
import { expect, test } from 'vitest';
import { Kernel } from '../../src/sim/index.js';
import { chatterPrograms } from './chatter.js';

async function traceOf(seed: number): Promise<{ hash: string; events: number; exited: unknown }> {
  const k = new Kernel({ seed, programs: [chatterPrograms] });
  const pid = k.spawn({ program: 'chatter', channel: false });
  await k.run({ until: 60_000 });
  return { hash: k.traceHash(), events: k.events, exited: k.exitStatus(pid) };
}

test('200 seeds, each run twice: identical trace hashes; distinct seeds: distinct traces', async () => {
  const hashes = new Set<string>();
  for (let seed = 1; seed <= 200; seed++) {
    const a = await traceOf(seed);
    const b = await traceOf(seed);
    expect(a.exited, `seed ${seed}`).toEqual({ pid: expect.any(Number), code: 0, signal: null });
    expect(b, `seed ${seed}: replay diverged`).toEqual(a);
    expect(a.events).toBeGreaterThan(100);
    hashes.add(a.hash);
  }
  expect(hashes.size).toBe(200);
});

test('a 64-bit seed is honoured in full: seeds that differ only above bit 32 give different traces', async () => {
  const k1 = new Kernel({ seed: 5n, programs: [chatterPrograms] });
  const k2 = new Kernel({ seed: 5n + (1n << 40n), programs: [chatterPrograms] });
  for (const k of [k1, k2]) {
    k.spawn({ program: 'chatter', channel: false });
    await k.run({ until: 60_000 });
  }
  expect(k1.traceHash()).not.toBe(k2.traceHash());
});
