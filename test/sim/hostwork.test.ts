// Os.hostWork: work the host does outside the Os (a dynamic import, say)
// takes host time, never virtual time. The host timers in this file stand in
// for that host work; the kernel never sees them.
import { describe, expect, it } from 'vitest';
import { programs, type Os, type ProgramFn } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';
import { boot } from './helpers.js';

// Taken before any simulated process runs: inside one, the global setTimeout and performance.now are its virtual ones (src/sim/app-clock.ts).
const { setTimeout: hostTimeout } = globalThis;
const hostNow = performance.now.bind(performance);
const hostDelay = <T>(ms: number, value: T): Promise<T> => new Promise((r) => hostTimeout(() => r(value), ms));

/** A ticker that counts ticks of virtual time in `ticks.n`, every 1 ms from 1.5 ms on (never at a whole ms), until it is killed. */
function ticker(ticks: { n: number }): ProgramFn {
  return (os: Os) => {
    const tick = () => {
      ticks.n++;
      os.timer(1, tick);
    };
    os.timer(1.5, tick);
  };
}

describe('hostWork', () => {
  it('virtual time stands still while host work is pending, and the run replays', async () => {
    const once = async () => {
      const ticks = { n: 0 };
      const seen: string[] = [];
      const { k, pid } = boot({
        main: async (os) => {
          const t = os.spawn({ program: 'ticker', channel: false });
          await os.sleep(10);
          const before = { now: os.now(), ticks: ticks.n };
          const hostStart = hostNow();
          const v = await os.hostWork(hostDelay(50, 'imported'));
          const hostMs = hostNow() - hostStart;
          seen.push(`${v} host>=45:${hostMs >= 45} now ${before.now}->${os.now()} ticks ${before.ticks}->${ticks.n}`);
          await os.sleep(5);
          seen.push(`later now=${os.now()} ticks=${ticks.n}`);
          os.kill(t.pid, 'SIGKILL');
        },
        ticker: ticker(ticks),
      });
      await k.run();
      expect(k.exitStatus(pid)).toEqual({ pid, code: 0, signal: null });
      return { seen, hash: k.traceHash(), trace: k.trace() };
    };
    const a = await once();
    expect(a.seen).toEqual(['imported host>=45:true now 10->10 ticks 9->9', 'later now=15 ticks=14']);
    expect(a.trace.filter((l) => / host(-done)? /.test(l))).toEqual(['10 100 host 1', '10 100 host-done 1 ok']);
    const b = await once();
    expect(b.hash).toBe(a.hash);
    expect(b.seen).toEqual(a.seen);
  });

  it('results come back in the order the work started, whatever the host took, so the trace does not depend on it', async () => {
    const run = async (msA: number, msB: number) => {
      const out: string[] = [];
      const ticks = { n: 0 };
      const k = new Kernel({
        seed: 7,
        record: true,
        programs: [
          programs(import.meta.url, {
            a: async (os) => {
              await os.sleep(3);
              out.push(`a ${await os.hostWork(hostDelay(msA, 'A'))} @${os.now()} ticks=${ticks.n}`);
            },
            b: async (os) => {
              await os.sleep(3);
              out.push(`b ${await os.hostWork(hostDelay(msB, 'B'))} @${os.now()} ticks=${ticks.n}`);
            },
            ticker: ticker(ticks),
          }),
        ],
      });
      const t = k.spawn({ program: 'ticker' });
      k.spawn({ program: 'a' });
      k.spawn({ program: 'b' });
      await k.run({ stopWhen: () => k.exitStatus(t + 1) !== undefined && k.exitStatus(t + 2) !== undefined });
      return { out, hash: k.traceHash() };
    };
    const slowA = await run(40, 5);
    const slowB = await run(5, 40);
    expect(slowA.out).toHaveLength(2);
    for (const line of slowA.out) expect(line).toMatch(/^[ab] [AB] @3 ticks=2$/);
    expect(slowB.out).toEqual(slowA.out);
    expect(slowB.hash).toBe(slowA.hash);
  });

  it('a rejection comes back as a rejection, at the same virtual time', async () => {
    const { k } = boot({
      main: async (os) => {
        await os.sleep(3);
        try {
          await os.hostWork(hostDelay(10, null).then(() => Promise.reject(new Error('cannot load'))));
        } catch (e) {
          os.stdout.write(`${(e as Error).message} @${os.now()}`);
        }
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('cannot load @3');
    expect(k.trace()).toContain('3 100 host-done 1 error');
  });

  it('work already settled, or settling during a drain, is not lost', async () => {
    const { k } = boot({
      main: async (os) => {
        const a = await os.hostWork(Promise.resolve(1));
        const b = await os.hostWork(Promise.resolve().then(() => 2));
        os.stdout.write(`${a + b} @${os.now()}`);
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('3 @0');
  });

  it('pending host work keeps its process alive, like a ref', async () => {
    const { k, pid } = boot({
      main: (os) => {
        // No program promise, no timer: only the host work holds the process.
        void os.hostWork(hostDelay(20, 'x')).then((v) => os.stdout.write(`${v} @${os.now()}`));
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('x @0');
    expect(k.exitStatus(pid)?.code).toBe(0);
  });

  it('a process that dies with host work pending does not wedge the kernel; its continuation never runs', async () => {
    let after = 0;
    const { k, pid } = boot({
      main: (os) => {
        // Never settles: the kernel must not wait for it once its process is gone.
        void os.hostWork(new Promise<never>(() => {})).then(() => after++);
        // Settles later, after the death: nothing of it runs.
        void os.hostWork(hostDelay(20, 0)).then(() => after++);
        os.spawn({ program: 'killer', args: [String(os.pid)], channel: false });
      },
      killer: async (os, args) => {
        os.kill(Number(args[0]), 'SIGKILL');
        await os.sleep(100);
        os.stdout.write(`killer done @${os.now()}`);
      },
    });
    await k.run();
    expect(k.exitStatus(pid)).toEqual({ pid, code: null, signal: 'SIGKILL' });
    expect(k.output.stdout).toBe('killer done @100');
    await hostDelay(40, null);
    expect(after).toBe(0);
    expect(k.trace().filter((l) => l.includes('host-drop'))).toEqual(['0 100 host-drop 1', '0 100 host-drop 2']);
  });

  it('run({until}) waits for host work instead of spinning, and does not move the clock past it', async () => {
    let drains = 0;
    const k = new Kernel({
      seed: 1,
      record: true,
      drain: () => {
        drains++;
        return new Promise<void>((r) => setImmediate(r));
      },
      programs: [
        programs(import.meta.url, {
          main: async (os) => {
            os.stdout.write(`${await os.hostWork(hostDelay(30, 'done'))} @${os.now()}`);
            await os.sleep(1000);
          },
        }),
      ],
    });
    k.spawn({ program: 'main' });
    const r = await k.run({ until: 50 });
    expect(k.output.stdout).toBe('done @0');
    expect(r).toMatchObject({ reason: 'until', now: 50 });
    expect(drains).toBeLessThan(10);
  });

  it('stopWhen is checked while host work is pending', async () => {
    let started = false;
    const { k } = boot({
      main: async (os) => {
        started = true;
        await os.hostWork(hostDelay(20, null));
        os.stdout.write('back');
      },
    });
    const r = await k.run({ stopWhen: () => started });
    expect(r.reason).toBe('stopWhen');
    expect(k.output.stdout).toBe('');
    await k.run();
    expect(k.output.stdout).toBe('back');
  });
});

describe('importModule and mounts', () => {
  it('a simulated path under a mount imports the host file behind it; other paths are host paths; a mount matches whole segments', async () => {
    const hostDir = new URL('../conformance', import.meta.url).pathname;
    const got: unknown[] = [];
    const k = new Kernel({
      seed: 1,
      record: true,
      mounts: { '/srv/m': hostDir },
      programs: [
        programs(import.meta.url, {
          main: async (os: Os) => {
            const viaMount = await os.importModule('/srv/m/module-fixture.js');
            const direct = await os.importModule(`${hostDir}/module-fixture.js`);
            got.push(viaMount.answer, viaMount === direct);
            got.push(await os.importModule('/srv/mx/module-fixture.js').then(() => 'loaded', (e: { code?: string }) => e.code));
          },
        }),
      ],
    });
    k.spawn({ program: 'main' });
    await k.run();
    expect(got).toEqual([42, true, 'ERR_MODULE_NOT_FOUND']);
    expect(k.trace().some((l) => l.includes(hostDir))).toBe(false);
  });

  it('paths resolve against the process\'s cwd, a mount key may end in a slash, and a failed import names the simulated path only', async () => {
    const hostDir = new URL('../conformance', import.meta.url).pathname;
    const checkout = new URL('../..', import.meta.url).pathname;
    const got: unknown[] = [];
    const k = new Kernel({
      seed: 1,
      mounts: { '/srv/m/': hostDir },
      programs: [
        programs(import.meta.url, {
          main: async (os: Os) => {
            got.push((await os.importModule('m/module-fixture.js')).answer);
            const e = await os.importModule('/srv/m/module-broken.js').then(() => null, (err: Error) => err);
            // No path of the checkout at all: not the module's, not the loader's or drover's frames (a log line of it
            // must be the same bytes from any clone, or the trace hash differs).
            got.push(e?.message, String(e?.stack).includes('/srv/m/module-broken.js'), String(e?.stack).includes(checkout));
          },
        }),
      ],
    });
    k.fs.mkdir('/srv', { recursive: true });
    k.spawn({ program: 'main', cwd: '/srv' });
    await k.run();
    expect(got).toEqual([42, 'broken on purpose', true, false]);
  });

  it('a mount of / keeps the separator: /module-fixture.js is the host directory\'s file (it was "DIRmodule-fixture.js")', async () => {
    const hostDir = new URL('../conformance', import.meta.url).pathname.replace(/\/$/, '');
    const got: unknown[] = [];
    const k = new Kernel({
      seed: 1,
      mounts: { '/': hostDir },
      programs: [programs(import.meta.url, { main: async (os: Os) => void got.push((await os.importModule('/module-fixture.js')).answer) })],
    });
    k.spawn({ program: 'main' });
    await k.run();
    expect(got).toEqual([42]);
  });
});
