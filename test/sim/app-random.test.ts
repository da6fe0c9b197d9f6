// Randomness in app code (app-globals.ts, "random"): Math.random and
// node:crypto's random functions drawn by a simulated process come from its
// own stream, derived from the seed; the host's are its own.
import crypto, { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { boot } from './helpers.js';

async function run(seed: number): Promise<{ out: string; hash: string }> {
  const worker = async (os: { stdout: { write(s: string): void }; sleep(ms: number): Promise<void> }) => {
    const said: unknown[] = [Math.random(), Math.random()];
    await os.sleep(5);
    said.push(randomBytes(8).toString('hex'), randomUUID(), globalThis.crypto.randomUUID());
    said.push(Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(6))).toString('hex'));
    said.push(Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString('hex'));
    said.push(crypto.randomInt(1000), crypto.randomFillSync(Buffer.alloc(4)).toString('hex'));
    os.stdout.write(`${JSON.stringify(said)}\n`);
    // The callback form is called back in the process (the host's threadpool would call back outside any run).
    os.stdout.write(`async ${await new Promise((resolve) => crypto.randomBytes(4, (_e, b) => resolve(b.toString('hex'))))}\n`);
  };
  const { k } = boot({
    main: (os) => {
      for (let i = 0; i < 3; i++) os.spawn({ program: 'worker', channel: false });
    },
    worker,
  }, seed);
  await k.run();
  expect(k.output.stderr).toBe('');
  return { out: k.output.stdout, hash: k.traceHash() };
}

describe('randomness in app code', () => {
  it('is the same for the same seed, differs for another seed and between processes, and is the host\'s outside a run', async () => {
    const a = await run(5);
    const b = await run(5);
    const c = await run(6);
    expect(b.out).toBe(a.out);
    expect(c.out).not.toBe(a.out);
    const lines = a.out.trim().split('\n').filter((l) => !l.startsWith('async '));
    expect(lines).toHaveLength(3);
    expect(a.out.match(/^async [0-9a-f]{8}$/gm)).toHaveLength(3);
    expect(new Set(lines).size).toBe(3); // each process its own stream
    const said = JSON.parse(lines[0]!) as [number, number, string, string, string, string, string, number, string];
    expect(said[0]).toBeGreaterThanOrEqual(0);
    expect(said[0]).toBeLessThan(1);
    expect(said[3]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Drawing more or less in app code moves none of drover's own draws: the trace is the seed's.
    expect(b.hash).toBe(a.hash);
    // The host's again after the run.
    expect(Math.random()).not.toBe(Math.random());
    expect(randomUUID()).not.toBe(randomUUID());
  });

  it("wrong arguments get Node's own errors, as outside the simulator, and draw nothing from the stream", async () => {
    const errs: string[] = [];
    const { k } = boot({
      main: (os) => {
        const tryIt = (f: () => unknown) => {
          try {
            f();
            errs.push('none');
          } catch (e) {
            errs.push((e as { code?: string }).code ?? String(e));
          }
        };
        tryIt(() => randomBytes(-1));
        tryIt(() => crypto.randomFillSync(Buffer.alloc(4), 8));
        tryIt(() => crypto.randomInt(5, 5));
        tryIt(() => crypto.getRandomValues('x' as unknown as Uint8Array));
        os.stdout.write(`${Math.random()}\n`);
      },
    }, 7);
    await k.run();
    // Before: assertion failures inside the simulator, blamed on drover.
    expect(errs).toEqual(['ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE', 17]); // 17: the DOMException TypeMismatchError Web Crypto throws
    const { k: k2 } = boot({ main: (os) => os.stdout.write(`${Math.random()}\n`) }, 7);
    await k2.run();
    expect(k.output.stdout).toBe(k2.output.stdout); // the refused calls moved nothing
  });
});
