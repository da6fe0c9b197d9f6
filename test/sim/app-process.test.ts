// `process` and `console` for app code in the simulator (src/sim/app-globals.ts):
// while a simulated process runs, process.pid, ppid, env, stdout, stderr,
// exit, exitCode, kill, hrtime, uptime, process.on & co. for signals and
// 'exit', and the global console are that process's; the host's `process`
// and `console` are untouched, and are exactly the host's again after a run.
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { programs, type ProgramFn } from '../../src/os/types.js';
import { runtimePrograms } from '../../src/runtime/programs.js';
import { Kernel } from '../../src/sim/index.js';
import { boot } from './helpers.js';
import { simulate } from '../runtime/sim.js';

const ROOT = join(import.meta.dirname, '..', '..');
const QUEUE_WORKER = join(ROOT, 'examples', 'companions', 'queue-worker.js');
const HELLO = join(ROOT, 'examples', 'hello.js');
const COMPANION = join(import.meta.dirname, 'fixtures', 'signal-companion.js');

// The host's own, taken before any kernel runs.
const hostSetTimeout = globalThis.setTimeout;
const hostSleep = (ms: number) => new Promise<void>((r) => hostSetTimeout(r, ms));
const hostNow = performance.now.bind(performance);
const HOST_PID = process.pid;

/** What a run must leave exactly as it was: the host's own descriptors of process's properties, console and its methods. */
const KEYS = [
  'pid', 'ppid', 'env', 'stdout', 'stderr', 'exit', 'exitCode', 'kill', 'hrtime', 'uptime', 'nextTick', 'argv', 'title',
  'on', 'once', 'addListener', 'prependListener', 'prependOnceListener', 'off', 'removeListener', 'removeAllListeners',
  'listeners', 'rawListeners', 'listenerCount', 'emit',
] as const;
function snapshot() {
  const own: Record<string, PropertyDescriptor | undefined> = {};
  const seen: Record<string, unknown> = {};
  for (const k of KEYS) {
    own[k] = Object.getOwnPropertyDescriptor(process, k);
    seen[k] = (process as unknown as Record<string, unknown>)[k];
  }
  const con = globalThis.console as unknown as Record<string, unknown>;
  return {
    own,
    seen,
    hrtimeBigint: process.hrtime.bigint,
    console: globalThis.console,
    consoleDesc: Object.getOwnPropertyDescriptor(globalThis, 'console'),
    consoleMethods: Object.fromEntries(Object.keys(con).map((k) => [k, con[k]])),
    listeners: Object.fromEntries(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2', 'exit', 'unhandledRejection'].map((e) => [e, process.rawListeners(e)])),
  };
}
/** Each field is the very same (===) as in `a`. */
function expectSame(a: ReturnType<typeof snapshot>, b: ReturnType<typeof snapshot>): void {
  for (const k of KEYS) {
    expect(b.seen[k], k).toBe(a.seen[k]);
    const da = a.own[k];
    const db = b.own[k];
    expect(db === undefined, `${k} own`).toBe(da === undefined);
    if (da === undefined || db === undefined) continue;
    for (const f of ['value', 'get', 'set', 'writable', 'enumerable', 'configurable'] as const) expect(db[f], `${k}.${f}`).toBe(da[f]);
  }
  expect(b.hrtimeBigint).toBe(a.hrtimeBigint);
  expect(b.console).toBe(a.console);
  expect(b.consoleDesc).toEqual(a.consoleDesc);
  expect(Object.keys(b.consoleMethods)).toEqual(Object.keys(a.consoleMethods));
  for (const k of Object.keys(a.consoleMethods)) expect(b.consoleMethods[k], `console.${k}`).toBe(a.consoleMethods[k]);
  for (const [e, l] of Object.entries(a.listeners)) {
    expect(b.listeners[e]!.length, `${e} listeners`).toBe(l.length);
    l.forEach((f, i) => expect(b.listeners[e]![i], `${e} listener ${i}`).toBe(f));
  }
}

/**
 * `probe` run by the host (from a host timer) once a simulated process calls
 * `open`; the process awaits `probed` as host work. Made by the host: a
 * promise made in a simulated process would continue as that process.
 */
function hostProbe<T>(probe: () => T): { open: () => void; probed: Promise<T> } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  return { open, probed: gate.then(() => hostSleep(1)).then(probe) };
}

function kernel(table: Record<string, ProgramFn>, seed = 1): { k: Kernel; pid: number } {
  const k = new Kernel({ seed, programs: [...runtimePrograms, programs(import.meta.url, table)], record: true });
  return { k, pid: k.spawn({ program: 'main' }) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('app code sees its own simulated process', () => {
  it('a module companion\'s process.on(\'SIGTERM\') handler runs on a simulated SIGTERM, its console.log and process.exit are the process\'s; the host gets no listener', async () => {
    const before = snapshot();
    const hostTerm = process.listenerCount('SIGTERM');
    // The host, while the run is under way and the companion listens: its own pid and listeners.
    const { open, probed } = hostProbe(() => ({ pid: process.pid, term: process.listenerCount('SIGTERM'), on: process.on === before.seen.on }));
    let companion = 0;
    const { k } = kernel({
      main: async (os) => {
        // Run as drover runs a `module:` companion: examples/companions/queue-worker.js.
        companion = os.spawn({ program: 'companion-module', args: [QUEUE_WORKER], channel: false }).pid;
        await os.sleep(2500);
        open();
        await os.hostWork(probed);
        await os.sleep(1000);
        os.kill(companion, 'SIGTERM');
      },
    });
    const r = await k.run();
    expect(r.reason).toBe('idle');
    expect(k.output.stdout).toBe('processed job 1\nprocessed job 2\nprocessed job 3\nstopping after 3 jobs\n');
    // process.exit(0) in the handler: it exited 0, not killed by the signal.
    expect(k.exitStatus(companion)).toEqual({ pid: companion, code: 0, signal: null });
    expect(k.trace()).toContain(`3500 ${companion} deliver SIGTERM`);
    expect(k.trace()).toContain(`3500 ${companion} exit() 0`);
    // During the run the methods are wrappers that give the host its own.
    expect(await probed).toEqual({ pid: HOST_PID, term: hostTerm, on: false });
    expect(process.listenerCount('SIGTERM')).toBe(hostTerm);
    expectSame(before, snapshot());
  });

  it('signal listeners follow Node\'s rules: once, off, several in order after the Os\'s handler; the last one gone restores the default action', async () => {
    const log: string[] = [];
    const pids: Record<string, number> = {};
    const { k } = boot({
      main: async (os) => {
        for (const p of ['once', 'off', 'both', 'kill']) pids[p] = os.spawn({ program: p, channel: false }).pid;
        await os.sleep(10);
        for (const p of ['once', 'off', 'both']) os.kill(pids[p]!, 'SIGTERM');
        await os.sleep(10);
        for (const p of ['once', 'off', 'both']) if (os.alive(pids[p]!)) os.kill(pids[p]!, 'SIGTERM');
      },
      // A once() listener runs once; the second SIGTERM finds none: the default action kills it.
      once: () => {
        process.once('SIGTERM', (sig: string) => log.push(`once ${sig} ${String(process.listenerCount('SIGTERM'))}`));
        setInterval(() => {}, 1000);
      },
      // Removed before the signal: the default action again.
      off: () => {
        const h = () => log.push('off: never');
        process.on('SIGTERM', h);
        process.on('SIGINT', h);
        process.off('SIGTERM', h);
        log.push(`off ${process.listenerCount('SIGTERM')} ${process.listenerCount('SIGINT')}`);
        setInterval(() => {}, 1000);
      },
      // The Os's handler (as drover's runtime sets it) first, then the app's listeners in the order added.
      both: (os) => {
        os.onSignal('SIGTERM', () => log.push('both os'));
        process.on('SIGTERM', () => log.push('both a'));
        process.prependListener('SIGTERM', () => log.push('both first'));
        process.addListener('SIGTERM', () => {
          log.push('both b');
          process.exit(7);
        });
        setInterval(() => {}, 1000);
      },
      // SIGKILL cannot be listened to; process.kill is the kernel's kill, and 0 checks a pid exists.
      kill: async () => {
        try {
          process.on('SIGKILL', () => {});
        } catch (e) {
          log.push(`SIGKILL ${(e as Error).message} ${process.listenerCount('SIGKILL')}`);
        }
        try {
          process.kill(99999, 0);
        } catch (e) {
          log.push(`kill 0 ${(e as NodeJS.ErrnoException).code}`);
        }
        process.on('SIGUSR2', () => log.push(`usr2 ${process.kill(process.pid, 0)}`));
        process.kill(process.pid, 'SIGUSR2');
        await new Promise((r) => setTimeout(r, 5));
        process.removeAllListeners();
        process.kill(process.pid, 'SIGUSR2');
        log.push('kill: not reached');
      },
    });
    await k.run();
    expect([...log].sort()).toEqual([
      'SIGKILL uv_signal_start EINVAL 0', 'both a', 'both b', 'both first', 'both os', 'kill 0 ESRCH', 'off 0 1', 'once SIGTERM 0', 'usr2 true',
    ].sort());
    expect(log.filter((l) => l.startsWith('both'))).toEqual(['both os', 'both first', 'both a', 'both b']);
    expect(k.exitStatus(pids.once!)).toMatchObject({ code: null, signal: 'SIGTERM' });
    expect(k.exitStatus(pids.off!)).toMatchObject({ code: null, signal: 'SIGTERM' });
    expect(k.exitStatus(pids.both!)).toMatchObject({ code: 7, signal: null });
    expect(k.exitStatus(pids.kill!)).toMatchObject({ code: null, signal: 'SIGUSR2' });
  });

  it('process.exit(3) ends that process with code 3 and nothing after it runs; the host and the other processes go on', async () => {
    const log: string[] = [];
    const pids: Record<string, number> = {};
    const hostExits = process.listenerCount('exit');
    const { k } = boot({
      main: (os) => {
        for (const p of ['three', 'code', 'natural', 'listener', 'other']) pids[p] = os.spawn({ program: p, channel: false }).pid;
      },
      three: async () => {
        await new Promise((r) => setTimeout(r, 20));
        process.exit(3);
        log.push('three: not reached');
      },
      // process.exitCode, as Node honours it: by exit() with no code...
      code: async () => {
        process.exitCode = 5;
        await new Promise((r) => setTimeout(r, 30));
        log.push(`code sees ${String(process.exitCode)}`);
        process.exit();
      },
      // ...and when the loop empties.
      natural: () => {
        process.exitCode = 4;
        setTimeout(() => log.push(`natural sees ${String(process.exitCode)}`), 40);
      },
      // 'exit' listeners run once, with the code, and may change it; the host gets none.
      listener: () => {
        process.on('exit', (code: number) => {
          log.push(`listener exit ${code} ${process.pid === pids.listener}`);
          console.log('bye');
          process.exitCode = 9;
        });
        setTimeout(() => process.exit(2), 50);
      },
      other: async (os) => {
        await os.sleep(100);
        log.push(`other ${process.exitCode === undefined} ${os.now()}`);
      },
    });
    await k.run();
    expect(log).toEqual(['code sees 5', 'natural sees 4', `listener exit 2 true`, 'other true 100']);
    expect(k.exitStatus(pids.three!)).toMatchObject({ code: 3, signal: null });
    expect(k.exitStatus(pids.code!)).toMatchObject({ code: 5 });
    expect(k.exitStatus(pids.natural!)).toMatchObject({ code: 4 });
    expect(k.exitStatus(pids.listener!)).toMatchObject({ code: 9 });
    expect(k.exitStatus(pids.other!)).toMatchObject({ code: 0 });
    expect(k.output.stdout).toBe('bye\n');
    expect(k.faults.crashes).toEqual([]);
    // The host: still here, its exit code and 'exit' listeners its own.
    expect(process.exitCode).toBeUndefined();
    expect(process.listenerCount('exit')).toBe(hostExits);
  });

  it('an uncaught exception runs the process\'s \'exit\' listeners with 1, as Node does', async () => {
    const seen: unknown[] = [];
    const { k, pid } = boot({
      main: () => {
        process.on('exit', (code: number) => seen.push(code));
        setTimeout(() => {
          throw new Error('boom');
        }, 5);
      },
    });
    await k.run();
    expect(seen).toEqual([1]);
    expect(k.exitStatus(pid)).toMatchObject({ code: 1 });
  });

  it('process.pid and ppid are the simulated process\'s, through callbacks, continuations and ticks', async () => {
    const seen: string[] = [];
    const pids: number[] = [];
    const { k, pid } = boot({
      main: (os) => {
        seen.push(`main ${process.pid} ${process.ppid}`);
        for (const n of ['a', 'b']) pids.push(os.spawn({ program: 'child', args: [n], channel: false }).pid);
      },
      child: async (os, args) => {
        const me = `${args[0]} ${os.pid} ${os.ppid()}`;
        seen.push(`${me}: ${process.pid} ${process.ppid}`);
        await os.sleep(5);
        process.nextTick(() => seen.push(`${me}: tick ${process.pid}`));
        setTimeout(() => seen.push(`${me}: timer ${process.pid}`), 5);
        await null;
        seen.push(`${me}: await ${process.pid}`);
      },
    });
    await k.run();
    expect(pids[0]).not.toBe(pids[1]);
    const [a, b] = pids;
    expect(seen.sort()).toEqual([
      `a ${a} ${pid}: ${a} ${pid}`, `a ${a} ${pid}: await ${a}`, `a ${a} ${pid}: tick ${a}`, `a ${a} ${pid}: timer ${a}`,
      `b ${b} ${pid}: ${b} ${pid}`, `b ${b} ${pid}: await ${b}`, `b ${b} ${pid}: tick ${b}`, `b ${b} ${pid}: timer ${b}`,
      `main ${pid} 1`,
    ].sort());
    expect(process.pid).toBe(HOST_PID);
  });

  it('console and process.stdout/stderr write to the process\'s stdout and stderr (the kernel\'s output), not the host\'s', async () => {
    const hostLog = vi.spyOn(console, 'log');
    const hostError = vi.spyOn(console, 'error');
    const hostOut = vi.spyOn(process.stdout, 'write');
    const hostErr = vi.spyOn(process.stderr, 'write');
    const { k, pid } = boot({
      main: async (os) => {
        console.log('n=%d s=%s', 42, 'x', { a: [1, 2] });
        console.info('info');
        console.debug('debug');
        console.warn('warn %o', 'w');
        console.error(new Error('shown').message);
        process.stdout.write('out ');
        process.stdout.write(Buffer.from('buffer\n'));
        process.stderr.write('err\n');
        await os.sleep(5);
        console.log(`later ${process.pid}`);
        console.count();
        console.count();
      },
    });
    await k.run();
    expect(k.output.stdout).toBe(`n=42 s=x { a: [ 1, 2 ] }\ninfo\ndebug\nout buffer\nlater ${pid}\ndefault: 1\ndefault: 2\n`);
    expect(k.output.stderr).toBe(`warn 'w'\nshown\nerr\n`);
    for (const spy of [hostLog, hostError, hostOut, hostErr]) expect(spy).not.toHaveBeenCalled();
  });

  it('process.env is the simulated environment, a copy the process may change', async () => {
    const seen: unknown[] = [];
    const hostHome = process.env.HOME;
    expect(hostHome).toBeDefined();
    const { k } = boot({
      main: async (os) => {
        seen.push(['main', { ...process.env }]);
        const a = os.spawn({ program: 'child', args: ['a'], env: { GREETING: 'hi', N: '1' }, channel: false });
        await os.sleep(5);
        os.spawn({ program: 'child', args: ['b'], env: { GREETING: 'hey' }, channel: false });
        seen.push(['a alive', os.alive(a.pid)]);
      },
      child: async (os, args) => {
        process.env.ADDED = 5 as unknown as string;
        delete process.env.N;
        await os.sleep(10);
        seen.push([args[0], { ...process.env }, typeof process.env.ADDED, os.env]);
      },
    });
    await k.run();
    expect(seen).toEqual([
      ['main', {}],
      ['a alive', true],
      ['a', { GREETING: 'hi', ADDED: '5' }, 'string', { GREETING: 'hi', N: '1' }],
      ['b', { GREETING: 'hey', ADDED: '5' }, 'string', { GREETING: 'hey' }],
    ]);
    expect(process.env.HOME).toBe(hostHome);
    expect(process.env.ADDED).toBeUndefined();
  });

  it('process.hrtime, hrtime.bigint and uptime follow virtual time: a 5 s sleep is 5 s to them and no wall time', async () => {
    const seen: Record<string, unknown> = {};
    const { k } = boot({
      main: async (os) => {
        await os.sleep(1500);
        const u0 = process.uptime();
        const h0 = process.hrtime();
        const b0 = process.hrtime.bigint();
        await os.sleep(5000);
        seen.u0 = u0;
        seen.grew = process.uptime() - u0;
        seen.diff = process.hrtime(h0);
        seen.bigint = process.hrtime.bigint() - b0;
        seen.h0 = h0;
      },
    });
    const t0 = hostNow();
    await k.run();
    expect(hostNow() - t0).toBeLessThan(1000);
    expect(seen).toEqual({ u0: 1.5, grew: 5, diff: [5, 0], bigint: 5_000_000_000n, h0: [1, 500_000_000] });
  });

  it('after runs, the host\'s process and console are exactly what they were; during one, the host\'s code sees its own', async () => {
    const before = snapshot();
    const { open, probed } = hostProbe(() => ({
      pid: process.pid, env: process.env.X, exitCode: process.exitCode, console: globalThis.console === before.console,
      stdout: process.stdout === before.seen.stdout, hup: process.listenerCount('SIGHUP'), exit: process.exit === before.seen.exit,
    }));
    const { k, pid } = boot({
      main: async (os) => {
        process.on('SIGHUP', () => {});
        process.on('exit', () => {});
        process.exitCode = 3;
        process.env.X = 'y';
        console.log(`pid ${process.pid}`);
        open();
        await os.hostWork(probed);
        process.exit();
      },
    });
    await k.run();
    expect(await probed).toEqual({ pid: HOST_PID, env: undefined, exitCode: undefined, console: true, stdout: true, hup: before.listeners.SIGHUP!.length, exit: true });
    expect(k.exitStatus(pid)).toMatchObject({ code: 3 });
    expectSame(before, snapshot());
    // Two kernels at once, one stopped midway and run again.
    const a = boot({ main: async (os) => void (await os.sleep(10), process.on('SIGTERM', () => {})) }).k;
    const b = boot({ main: async (os) => void (await os.sleep(20), console.log('b')) }).k;
    await a.run({ until: 5 });
    expectSame(before, snapshot());
    await Promise.all([a.run(), b.run()]);
    expectSame(before, snapshot());
  });
});

describe('one seed, one run', () => {
  it('a program that prints process.pid gives the same trace hash and output twice', async () => {
    const run = async (seed: number) => {
      const { k } = boot({
        main: (os) => {
          for (let i = 0; i < 3; i++) os.spawn({ program: 'printer', channel: false });
        },
        printer: async (os) => {
          console.log(`I am ${process.pid} of ${process.ppid}`);
          await os.sleep(Math.floor(os.random() * 10));
          os.stdout.write(`${process.pid} at ${Math.round(process.uptime() * 1000)}\n`);
        },
      }, seed);
      await k.run();
      return { hash: k.traceHash(), out: k.output.stdout };
    };
    const a = await run(5);
    expect(a.out).not.toContain(String(HOST_PID));
    expect(a.out).toMatch(/^I am 101 of 100$/m);
    expect(await run(5)).toEqual(a);
  });

  it('examples/hello.js under the real arbiter and workers answers with the worker\'s simulated pid, the same twice', async () => {
    const once = async () => {
      const bodies: string[] = [];
      let workers: number[] = [];
      const r = await simulate(8, [HELLO, '--bind', '127.0.0.1:8000', '--workers', '2'], async (c) => {
        await c.booted(2);
        workers = c.workers();
        for (let i = 0; i < 4; i++) bodies.push((await c.get('/')).body);
        c.signal('SIGTERM');
        await c.exited();
      });
      return { bodies, workers, hash: r.k.traceHash() };
    };
    const a = await once();
    for (const body of a.bodies) {
      const pid = Number(/^Hello from worker (\d+)\n$/.exec(body)?.[1]);
      expect(a.workers).toContain(pid);
    }
    expect(await once()).toEqual(a);
  });

  it('two copies of a companion module each get their own signals, and exit with their own process.exitCode', async () => {
    const run = async () => {
      const pids: number[] = [];
      const { k, pid } = kernel({
        main: async (os) => {
          for (let i = 0; i < 2; i++) pids.push(os.spawn({ program: 'companion-module', args: [COMPANION], channel: false }).pid);
          await os.sleep(10);
          for (let i = 0; i < 2; i++) {
            os.kill(pids[0]!, 'SIGHUP');
            await os.sleep(10);
          }
          for (const p of pids) os.kill(p, 'SIGTERM');
        },
      }, 3);
      await k.run();
      return { pids, main: pid, out: k.output.stdout, exits: pids.map((p) => k.exitStatus(p)), hash: k.traceHash() };
    };
    const a = await run();
    const [one, two] = a.pids;
    expect(a.out.split('\n').slice(0, 2).sort()).toEqual([`${one} listening, parent ${a.main}`, `${two} listening, parent ${a.main}`]);
    expect(a.out.split('\n').slice(2).join('\n')).toMatch(
      new RegExp(`^${one} reloaded 1\n${one} reloaded 2\n(${one} stopping after 2 reloads\n${two} stopping after 0 reloads|${two} stopping after 0 reloads\n${one} stopping after 2 reloads)\n$`),
    );
    expect(a.exits).toEqual([{ pid: one, code: 2, signal: null }, { pid: two, code: 0, signal: null }]);
    expect(await run()).toEqual(a);
  });
});

describe('process.getuid and getgid during a run', () => {
  it("are the host's ids, read once as the run starts, and the host's own functions again after it", async () => {
    const hostGetuid = process.getuid;
    const hostGetgid = process.getgid;
    const seen: unknown[] = [];
    const { k } = boot({
      main: (os) => {
        // memfs asks at each path step; the process sees the host's ids, not a system call's each time.
        os.fs.writeFile('/tmp/x', 'x');
        seen.push(process.getuid === hostGetuid, process.getuid!(), process.getgid!());
      },
    });
    await k.run();
    expect(seen).toEqual([false, hostGetuid!(), hostGetgid!()]);
    expect(process.getuid).toBe(hostGetuid);
    expect(process.getgid).toBe(hostGetgid);
  });
});
