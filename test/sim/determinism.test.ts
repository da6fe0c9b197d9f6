import { describe, expect, it } from 'vitest';
import type { Os, Stream } from '../../src/os/types.js';
import { boot } from './helpers.js';

// A little of everything: messages, sleeps, burns, signals, sockets, files.
const table = {
  main: async (os: Os) => {
    const l = await os.listen({ host: '127.0.0.1', port: 0 });
    const kids = [0, 1, 2, 3].map((i) => os.spawn({ program: 'worker', args: [String(i)], listeners: [l] }));
    for (const c of kids) c.channel!.onMessage((m) => os.stdout.write(`${c.pid}:${JSON.stringify(m)} `));
    os.onSignal('SIGCHLD', () => {
      while (os.waitpid(-1) !== null);
    });
    os.spawn({ program: 'client', args: [String((l.address as { port: number }).port)], channel: false });
    await os.sleep(300);
    for (const c of kids) os.kill(c.pid, 'SIGTERM');
    for (const c of kids) c.channel!.close();
    l.close();
  },
  worker: (os: Os, args: readonly string[]) => {
    os.onSignal('SIGTERM', () => os.exit(0));
    os.listeners[0]!.accept((s: Stream) => {
      s.on('data', (d: Buffer) => {
        if (os.random() < 0.3) os.burn(os.random() * 5);
        s.end(`${args[0]}:${d.length}`);
      });
    });
    const tick = (): void => {
      os.channel!.send({ t: os.now(), r: Math.floor(os.random() * 1000) });
      if (os.now() < 200) os.timer(1 + Math.floor(os.random() * 20), tick);
    };
    tick();
  },
  client: async (os: Os, args: readonly string[]) => {
    for (let i = 0; i < 20; i++) {
      const s = await os.connect({ host: '127.0.0.1', port: Number(args[0]) });
      s.write('x'.repeat(i + 1));
      await new Promise<void>((r) => s.on('data', () => {}).on('end', r));
      os.fs.appendFile('/tmp/client.log', `${i} @${os.now()}\n`);
      await os.sleep(os.random() * 10);
    }
  },
};

async function run(seed: number | bigint): Promise<{ hash: string; trace: readonly string[]; out: string }> {
  const { k } = boot(table, seed);
  await k.run();
  expect(k.processes()).toEqual([]);
  return { hash: k.traceHash(), trace: k.trace(), out: k.output.stdout + k.fs.readFile('/tmp/client.log') };
}

describe('determinism', () => {
  it('gives the same trace, bit for bit, for the same seed', async () => {
    const a = await run(12345);
    const b = await run(12345);
    expect(b.trace).toEqual(a.trace);
    expect(b.hash).toBe(a.hash);
    expect(b.out).toBe(a.out);
    expect(a.trace.length).toBeGreaterThan(300);
  });

  it('gives different traces for different seeds', async () => {
    const hashes = new Set<string>();
    for (const seed of [1, 2, 3, 2n ** 63n + 5n]) hashes.add((await run(seed)).hash);
    expect(hashes.size).toBe(4);
  });

  it('keeps only the last 256 lines unless asked to record', async () => {
    const { Kernel } = await import('../../src/sim/index.js');
    const { programs } = await import('../../src/os/types.js');
    const k = new Kernel({ seed: 12345, programs: [programs(import.meta.url, table)] });
    k.spawn({ program: 'main' });
    await k.run();
    const full = await run(12345);
    expect(k.trace()).toEqual(full.trace.slice(-256));
    expect(k.traceHash()).toBe(full.hash);
  });
});
