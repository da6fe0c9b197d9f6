// Virtual time for app code (src/sim/app-clock.ts, src/sim/app-globals.ts):
// inside a simulated process, setTimeout, setInterval, setImmediate, Date and
// performance.now are the process's virtual ones, through its callbacks,
// promise continuations and ticks; outside, the host's own.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { Os, ProgramFn } from '../../src/os/types.js';
import { boot } from './helpers.js';
import { simulate } from '../runtime/sim.js';

// The host's own, taken before any simulated process runs.
const host = {
  setTimeout: globalThis.setTimeout,
  setImmediate: globalThis.setImmediate,
  Date: globalThis.Date,
  perfNow: performance.now,
  nextTick: process.nextTick,
  queueMicrotask: globalThis.queueMicrotask,
};
const hostNow = performance.now.bind(performance);
const hostSleep = (ms: number) => new Promise<void>((r) => host.setTimeout(r, ms));
const hostGlobals = () =>
  globalThis.setTimeout === host.setTimeout && globalThis.setImmediate === host.setImmediate && globalThis.Date === host.Date &&
  performance.now === host.perfNow && process.nextTick === host.nextTick && globalThis.queueMicrotask === host.queueMicrotask;
/** The kernel's epoch (src/sim/os.ts). */
const EPOCH_MS = Date.UTC(2026, 0, 1);
/** Virtual ms since the kernel's epoch, as the running code's Date sees it. */
const vnow = () => Date.now() - EPOCH_MS;

const tmp = mkdtempSync(join(tmpdir(), 'drover-app-time-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('app timers and clocks run on the kernel clock', () => {
  it('a 10 s setTimeout takes 10 s of virtual time and no wall time; Date and performance.now follow the kernel clock from its epoch', async () => {
    const seen: unknown[] = [];
    const { k, pid } = boot({
      main: (os) => {
        const p0 = performance.now();
        seen.push(['start', os.now(), Date.now(), new Date().getTime(), p0]);
        setTimeout((a: string, b: number) => {
          seen.push(['fired', a, b, os.now(), Date.now(), performance.now() - p0, Date(), new Date().toISOString()]);
        }, 10_000, 'x', 2);
      },
    });
    const t0 = hostNow();
    const r = await k.run();
    expect(hostNow() - t0).toBeLessThan(1000);
    expect(r.reason).toBe('idle');
    expect(seen).toEqual([
      ['start', 0, EPOCH_MS, EPOCH_MS, 0],
      ['fired', 'x', 2, 10_000, EPOCH_MS + 10_000, 10_000, new host.Date(EPOCH_MS + 10_000).toString(), '2026-01-01T00:00:10.000Z'],
    ]);
    // The pending timer held the process, as a Node loop with a timer is not empty.
    expect(k.now()).toBe(10_000);
    expect(k.exitStatus(pid)).toEqual({ pid, code: 0, signal: null });
    expect(k.trace().filter((l) => l.includes('app-timer'))).toEqual([`10000 ${pid} app-timer Timeout 0`]);
  });

  it("a process's Date is Date: arguments, subclasses, instanceof and prototype work as they do on the host; only 'now' is virtual", async () => {
    const seen: unknown[] = [];
    const { k } = boot({
      main: (os) => {
        setTimeout(() => {
          class Stamp extends Date {
            iso(): string {
              return this.toISOString();
            }
          }
          const now = new Date();
          const given = new Date(0);
          const parts = new Date(2020, 1, 3, 4, 5, 6, 7);
          const text = new Date('2021-05-06T07:08:09.010Z');
          const sub = new Stamp();
          const subAt = new Stamp(86_400_000);
          seen.push(
            os.now(), now.getTime(), now instanceof Date, now instanceof host.Date, Object.getPrototypeOf(now) === host.Date.prototype,
            given.getTime(), parts.getTime() === new host.Date(2020, 1, 3, 4, 5, 6, 7).getTime(), text.getTime(),
            sub instanceof Stamp, sub instanceof Date, sub.iso(), subAt.iso(), typeof Date(), Date.name, Date.length,
          );
        }, 1_500);
      },
    });
    await k.run();
    expect(seen).toEqual([
      1_500, EPOCH_MS + 1_500, true, true, true,
      0, true, Date.UTC(2021, 4, 6, 7, 8, 9, 10),
      true, true, '2026-01-01T00:00:01.500Z', '1970-01-02T00:00:00.000Z', 'string', 'Date', 7,
    ]);
  });

  it('setInterval, setImmediate, clearTimeout/clearInterval, unref, refresh and util.promisify keep Node\'s rules', async () => {
    const log: string[] = [];
    const { k, pid } = boot({
      main: async (os) => {
        const at = (what: string) => () => log.push(`${what}@${vnow()}`);
        let n = 0;
        const iv = setInterval(() => {
          log.push(`iv@${vnow()}`);
          if (++n === 3) clearTimeout(iv); // either clear clears either
        }, 25);
        setTimeout(at('zero'), 0); // under 1 ms is 1 ms
        setImmediate(at('immediate'));
        const gone = setTimeout(at('cleared'), 5);
        clearInterval(gone);
        setTimeout(at('unref'), 500).unref(); // does not hold the process
        const late = setTimeout(at('refreshed'), 40);
        setTimeout(() => late.refresh(), 30); // now due at 70
        clearTimeout(setImmediate(at('not cleared by clearTimeout')) as unknown as NodeJS.Timeout);
        const sleep = promisify(setTimeout);
        await sleep(90);
        log.push(`promisified@${vnow()}`);
      },
    });
    await k.run();
    expect(log).toEqual(['immediate@0', 'not cleared by clearTimeout@0', 'zero@1', 'iv@25', 'iv@50', 'refreshed@70', 'iv@75', 'promisified@90']);
    expect(k.exitStatus(pid)).toEqual({ pid, code: 0, signal: null });
    expect(k.now()).toBe(90);
  });

  it('a throw in a timer crashes its process, as an uncaught exception does', async () => {
    const { k, pid } = boot({
      main: () => {
        setTimeout(() => {
          throw new Error('boom');
        }, 7);
      },
    });
    await k.run();
    expect(k.exitStatus(pid)).toEqual({ pid, code: 1, signal: null });
    expect(k.trace()).toContain(`7 ${pid} crash Error: boom`);
  });

  it('promise continuations, nextTick and queueMicrotask keep the process that started them', async () => {
    const seen: string[] = [];
    const child: ProgramFn = (os, args) => {
      const name = args[0]!;
      // Both start at 0; `a` burns 30 ms first, so its clock says 30 where `b`'s says 0.
      if (name === 'a') os.burn(30);
      const mark = (what: string) => seen.push(`${name} ${what} ${vnow()} ${Math.round(performance.now())}`);
      Promise.resolve().then(() => mark('then'));
      process.nextTick(() => mark('tick'));
      queueMicrotask(() => mark('microtask'));
      void (async () => {
        await null;
        await os.sleep(5);
        mark('after sleep');
        await new Promise((r) => setTimeout(r, 10));
        mark('after setTimeout');
      })();
    };
    const { k } = boot({
      main: (os) => {
        os.spawn({ program: 'child', args: ['a'], channel: false });
        os.spawn({ program: 'child', args: ['b'], channel: false });
      },
      child,
    });
    await k.run();
    const of = (n: string) => seen.filter((s) => s.startsWith(n));
    expect(of('a').sort()).toEqual(['a after setTimeout 45 45', 'a after sleep 35 35', 'a microtask 30 30', 'a then 30 30', 'a tick 30 30']);
    expect(of('b').sort()).toEqual(['b after setTimeout 15 15', 'b after sleep 5 5', 'b microtask 0 0', 'b then 0 0', 'b tick 0 0']);
  });

  it('two processes\' timers interleave by virtual time; ties go the way the seed says, the same way every time', async () => {
    const run = async (seed: number) => {
      const log: string[] = [];
      const timers: ProgramFn = (_os: Os, args) => {
        for (const ms of args.slice(1)) setTimeout(() => log.push(`${args[0]}${ms}@${vnow()}`), Number(ms));
      };
      const { k } = boot({
        main: (os) => {
          os.spawn({ program: 'timers', args: ['a', '10', '30', '100'], channel: false });
          os.spawn({ program: 'timers', args: ['b', '40', '20', '100'], channel: false });
        },
        timers,
      }, seed);
      await k.run();
      return { log, hash: k.traceHash() };
    };
    const orders = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const { log, hash } = await run(seed);
      expect(log.slice(0, 4)).toEqual(['a10@10', 'b20@20', 'a30@30', 'b40@40']);
      expect(log.slice(4).sort()).toEqual(['a100@100', 'b100@100']);
      orders.add(log.slice(4).join());
      expect(await run(seed)).toEqual({ log, hash });
    }
    expect(orders.size).toBe(2);
  });

  it('a killed process\'s intervals stop firing, and an interval alone keeps a process alive', async () => {
    const ticks: number[] = [];
    const { k } = boot({
      main: async (os) => {
        const c = os.spawn({ program: 'ticker', channel: false });
        await os.sleep(55);
        os.kill(c.pid, 'SIGKILL');
        await os.sleep(100);
        os.stdout.write(`ticker ${os.alive(c.pid) ? 'alive' : 'dead'} @${os.now()}`);
      },
      ticker: () => {
        setInterval(() => ticks.push(vnow()), 10);
      },
    });
    await k.run();
    expect(ticks).toEqual([10, 20, 30, 40, 50]);
    expect(k.output.stdout).toBe('ticker dead @155');
    expect(k.trace().filter((l) => l.includes('app-timer')).length).toBe(5);
  });

  it('the same seed gives the same trace twice, with app timers in it; another seed another trace', async () => {
    const run = async (seed: number) => {
      const worker: ProgramFn = (os, args) => {
        let left = 6;
        const iv = setInterval(() => {
          os.stdout.write(`${args[0]}:iv@${vnow()} `);
          if (--left === 0) clearInterval(iv);
        }, 3 + Math.floor(os.random() * 10));
        const again = () => {
          os.stdout.write(`${args[0]}:t@${Date.now() - EPOCH_MS} `);
          if (os.random() < 0.3) os.burn(os.random() * 4);
          if (vnow() < 60) setTimeout(() => setImmediate(again), Math.floor(os.random() * 8));
        };
        again();
      };
      const { k } = boot({
        main: (os) => {
          for (const n of ['a', 'b', 'c']) os.spawn({ program: 'worker', args: [n], channel: false });
        },
        worker,
      }, seed);
      await k.run();
      return { hash: k.traceHash(), trace: k.trace(), out: k.output.stdout };
    };
    const a = await run(77);
    const b = await run(77);
    expect(b.trace).toEqual(a.trace);
    expect(b.hash).toBe(a.hash);
    expect(b.out).toBe(a.out);
    expect(a.trace.filter((l) => l.includes('app-timer')).length).toBeGreaterThan(30);
    expect((await run(78)).hash).not.toBe(a.hash);
  });

  it('the host keeps its own timers and clock around and during a run', async () => {
    expect(hostGlobals()).toBe(true);
    let inside: boolean | null = null;
    let during: { globals: boolean; wall: number } | null = null;
    // Set before the run, fires while the run waits for host work.
    host.setTimeout(() => (during = { globals: hostGlobals(), wall: Date.now() }), 5);
    const { k } = boot({
      main: async (os) => {
        inside = globalThis.setTimeout !== host.setTimeout;
        setTimeout(() => {}, 1000);
        await os.hostWork(hostSleep(40));
      },
    });
    const r = await k.run({ until: 500 });
    expect(r.reason).toBe('until');
    expect(inside).toBe(true);
    expect(during).not.toBeNull();
    expect(during!.globals).toBe(true);
    expect(Math.abs(during!.wall - host.Date.now())).toBeLessThan(10_000);
    // Stopped with a process's timer pending: still the host's.
    expect(hostGlobals()).toBe(true);
    const t0 = hostNow();
    await new Promise((r) => setTimeout(r, 20));
    expect(hostNow() - t0).toBeGreaterThanOrEqual(15);
    await k.run();
    expect(k.now()).toBe(1000);
    expect(hostGlobals()).toBe(true);
  });

  it('a module\'s top level runs on its importer\'s clock, and replays, though it runs in host time', async () => {
    const run = async (file: string) => {
      writeFileSync(file, [
        'export const loadedAt = Date.now();',
        'export const later = new Promise((r) => setTimeout(() => r(Date.now()), 250));',
        'setInterval(() => {}, 1000).unref();',
      ].join('\n'));
      const { k, pid } = boot({
        main: async (os) => {
          await os.sleep(3);
          const mod = await os.importModule(file);
          os.stdout.write(`loaded ${(mod.loadedAt as number) - EPOCH_MS} later ${((await mod.later) as number) - EPOCH_MS} @${os.now()}`);
        },
      });
      await k.run();
      expect(k.exitStatus(pid)).toEqual({ pid, code: 0, signal: null });
      return { out: k.output.stdout, hash: k.traceHash() };
    };
    // Two files: a host imports a module once.
    const a = await run(join(tmp, 'top-a.mjs'));
    expect(a.out).toBe('loaded 3 later 253 @253');
    expect(await run(join(tmp, 'top-b.mjs'))).toEqual(a);
  });

  it('a timer set from host work, in host time, lands in the same place however long the host took', async () => {
    // `gate` continues as its process (it was made there) whenever the host's
    // timer fires, as a module's top level does during its import; meanwhile
    // another process spins on setImmediate at the same virtual time, and six
    // more wait with timers due when the gated one is: their order is drawn
    // from the kernel's generator.
    const run = async (hostMs: number) => {
      const order: string[] = [];
      const { k } = boot({
        main: (os) => {
          for (let i = 0; i < 6; i++) os.spawn({ program: 'waiter', args: [`w${i}`], channel: false });
          os.spawn({ program: 'spinner', channel: false });
          os.spawn({ program: 'gated', channel: false });
        },
        waiter: (_os, args) => {
          setTimeout(() => order.push(args[0]!), 10);
        },
        spinner: () => {
          let n = 0;
          const spin = () => {
            if (++n < 3000) setImmediate(spin);
          };
          spin();
        },
        gated: async (os) => {
          const gate = hostSleep(hostMs).then(() => setTimeout(() => order.push('gated'), 10));
          await os.hostWork(gate);
        },
      });
      await k.run();
      return { order, hash: k.traceHash() };
    };
    const a = await run(1);
    expect(a.order).toHaveLength(7);
    expect(await run(25)).toEqual(a);
  });

  it('examples/timers-app.js under the real arbiter and workers: answers in virtual time, and one seed replays it', async () => {
    const app = join(import.meta.dirname, '..', '..', 'examples', 'timers-app.js');
    const once = async () => {
      const bodies: string[] = [];
      const r = await simulate(21, [app, '--bind', '127.0.0.1:8000', '--workers', '2'], async (c) => {
        await c.booted(2);
        const t0 = c.os.now();
        const replies = await Promise.all([c.get('/?ms=250'), c.get('/ticks?n=3&ms=100'), c.get('/?ms=10000')]);
        for (const reply of replies) bodies.push(reply.body);
        bodies.push(`took ${c.os.now() - t0}`);
        c.signal('SIGTERM');
        await c.exited();
      });
      return { bodies, hash: r.k.traceHash() };
    };
    const t0 = hostNow();
    const a = await once();
    expect(hostNow() - t0).toBeLessThan(20_000);
    const [slow, ticks, long] = a.bodies.slice(0, 3).map((b) => JSON.parse(b) as { asked: number; answered: number; waited: number; ticks?: number; at: string });
    expect(slow!.answered - slow!.asked).toBe(250);
    expect(slow!.waited).toBe(250);
    expect(ticks).toMatchObject({ ticks: 3, waited: 300 });
    expect(long!.answered - long!.asked).toBe(10_000);
    expect(new host.Date(long!.answered).toISOString()).toBe(long!.at);
    expect(long!.asked).toBeGreaterThanOrEqual(EPOCH_MS);
    expect(long!.asked).toBeLessThan(EPOCH_MS + 60_000);
    expect(a.bodies[3]).toMatch(/^took 100\d\d$/);
    expect(await once()).toEqual(a);
  });
});
