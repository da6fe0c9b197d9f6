// net.Socket's idle timeout and ref/unref on simulated streams, in virtual
// time. node:http relies on both: keepAliveTimeout is a socket setTimeout,
// and a keep-alive Agent unrefs the sockets it keeps free.
import { describe, expect, it } from 'vitest';
import type { Os, ProgramFn, Stream } from '../../src/os/types.js';
import type { SimStream } from '../../src/sim/sockets.js';
import { boot as bootMain } from './helpers.js';

/** A peer process on port 7000 that writes what main asks for, when asked: `<delay> <text>` per line. */
async function peer(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 7000 });
  l.accept((s) => {
    s.setEncoding('utf8');
    s.on('data', (line: string) => {
      for (const cmd of line.split('\n').filter(Boolean)) {
        const [ms, text] = cmd.split(' ') as [string, string];
        os.timer(Number(ms), () => s.write(text));
      }
    });
    s.on('end', () => s.end());
  });
}

/** `main` and, beside it rather than as its child (a live child would hold main), the peer. */
function boot(table: Record<string, ProgramFn>, seed = 1) {
  const b = bootMain({ peer, ...table }, seed);
  b.k.spawn({ program: 'peer' });
  return b;
}

async function pair(os: Os): Promise<Stream> {
  await os.sleep(1); // the peer listens at 0
  return os.connect({ host: '127.0.0.1', port: 7000 });
}

describe('stream idle timeout (setTimeout) in virtual time', () => {
  it('fires after `ms` without reads or writes; reads and writes push it back; it fires once per idle spell', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const s = await pair(os);
        const t0 = os.now();
        const at = () => os.now() - t0;
        s.on('data', (d: Buffer) => log.push(`data ${d} @${at()}`));
        s.on('timeout', () => log.push(`timeout @${at()}`));
        log.push(s.setTimeout(100) === s ? 'chained' : 'not chained');
        // A write at 50 moves the deadline to 150 (the event queued for 100 re-checks then).
        await os.sleep(50);
        s.write('\n'); // an empty command: the peer ignores it
        await os.sleep(150);
        // Fired at 150. The next write, at 200, re-arms it for 300.
        s.write('200 late\n'); // the peer answers 200 ms later: a read at ~400 moves it again
        await os.sleep(600);
        s.setTimeout(0);
        s.write('10 x\n');
        await os.sleep(300);
        s.end();
      },
    });
    await k.run();
    // The peer's answer arrives 200 ms (+ 0-2 ms of latency) after the write at 200.
    const read = Number(/data late @(\d+)/.exec(log.join(' '))![1]);
    expect(read).toBeGreaterThanOrEqual(400);
    expect(read).toBeLessThanOrEqual(402);
    // Disabled at 800: the reply to the last write is read, and no timeout follows it.
    expect(log).toEqual(['chained', 'timeout @150', 'timeout @300', `data late @${read}`, `timeout @${read + 100}`, expect.stringMatching(/^data x @81\d$/)]);
    expect(k.trace().filter((l) => / timeout /.test(l))).toHaveLength(3);
  });

  it('setTimeout(ms, cb) adds cb once; setTimeout(0, cb) disables and removes it; `timeout` keeps the last value; bad durations throw', async () => {
    const got: unknown[] = [];
    const { k } = boot({
      main: async (os) => {
        // `timeout` is net.Socket's, not in Stream: http's Agent reads it.
        const s = (await pair(os)) as SimStream;
        got.push(s.timeout);
        const cb = () => got.push(`cb @${os.now()}`);
        s.setTimeout(30, cb);
        got.push(s.timeout, s.listenerCount('timeout'));
        await os.sleep(100);
        got.push(s.listenerCount('timeout')); // once: gone after it fired
        s.setTimeout(30, cb);
        s.setTimeout(0, cb);
        got.push(s.timeout, s.listenerCount('timeout'));
        for (const bad of [-1, Infinity, '5' as unknown as number]) {
          try {
            s.setTimeout(bad);
          } catch (e) {
            got.push((e as { code: string }).code);
          }
        }
        // As Node's timers: under 1 ms is 1 ms, fractions are cut, and past 2^31-1 is 2^31-1 (not 1).
        for (const ms of [0.2, 2.9, 3e9]) {
          const t = os.now();
          s.setTimeout(ms, () => got.push(`${ms} +${os.now() - t}`));
          await os.sleep(50);
          s.setTimeout(0);
        }
        s.destroy();
        got.push(s.setTimeout(10) === s, s.timeout);
      },
    });
    await k.run();
    expect(got).toEqual([
      undefined, 30, 1, expect.stringMatching(/^cb @3\d$/), 0, 0, 0,
      'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_TYPE', '0.2 +1', '2.9 +2', true, 0,
    ]);
  });

  it('destroy cancels a pending timeout; a dead process gets none', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const s = await pair(os);
        s.on('timeout', () => log.push('timeout'));
        s.setTimeout(50);
        await os.sleep(20);
        s.destroy();
        os.spawn({ program: 'dies', channel: false });
        await os.sleep(200);
      },
      dies: async (os) => {
        const s = await os.connect({ host: '127.0.0.1', port: 7000 });
        s.setTimeout(30, () => log.push('dead timeout'));
        await os.sleep(10);
        os.exit(0);
      },
    });
    await k.run();
    expect(log).toEqual([]);
    expect(k.trace().filter((l) => / timeout /.test(l))).toEqual([]);
  });

  it('an idle timeout never keeps a process alive, and an unref\'d stream does not either; ref takes the hold back', async () => {
    const seen: string[] = [];
    const { k, pid } = boot({
      main: async (os) => {
        const s = await pair(os);
        s.on('timeout', () => seen.push('timeout'));
        s.setTimeout(1000);
        s.unref();
        s.ref(); // held again: the stream keeps us here until its timeout ends it
        s.on('timeout', () => s.unref());
        s.on('close', () => seen.push('close'));
        os.timer(5000, () => seen.push('never')).unref();
      },
    });
    await k.run();
    const exit = k.trace().find((l) => l.includes(` ${pid} exit `))!;
    // Ref'd: alive until the timeout at ~1000 unrefs the stream; then nothing holds the process.
    expect(seen).toEqual(['timeout']);
    expect(Number(exit.split(' ')[0])).toBeGreaterThanOrEqual(1000);
    expect(Number(exit.split(' ')[0])).toBeLessThan(1010);
    expect(k.trace().some((l) => / unref \d+$/.test(l))).toBe(true);
  });

  it('an unref\'d stream with a pending timeout lets its process exit at once', async () => {
    const { k, pid } = boot({
      main: async (os) => {
        const s = await pair(os);
        s.setTimeout(500, () => os.stdout.write('fired\n'));
        s.unref();
      },
    });
    await k.run();
    const exit = k.trace().find((l) => l.includes(` ${pid} exit `))!;
    expect(Number(exit.split(' ')[0])).toBeLessThan(10);
    expect(k.output.stdout).toBe('');
  });

  it('gives the same trace for the same seed', async () => {
    const run = async (seed: number) => {
      const { k } = boot(
        {
          main: async (os) => {
            const s = await pair(os);
            s.on('timeout', () => s.write('5 ping\n'));
            s.setTimeout(40);
            await os.sleep(400);
            s.end();
          },
        },
        seed,
      );
      await k.run();
      return k.traceHash();
    };
    expect(await run(3)).toBe(await run(3));
    expect(await run(3)).not.toBe(await run(4));
  });
});
