// Errors of app code in the simulator (src/sim/app-globals.ts, net-guard.ts):
// what a tick or a microtask throws and a rejection nobody handles crash the
// simulated process that made them, never the host; the host's own keep
// reaching the host. The network outside drover fails at the call, naming the
// module that called, while a simulated process runs, and only then.
import dgram from 'node:dgram';
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, expect, it, vi } from 'vitest';
import type { Os, ProgramFn } from '../../src/os/types.js';
import { blame, droverOwn, moduleName } from '../../src/sim/net-guard.js';
import { get, OsAgent } from '../support/http.js';
import { boot } from './helpers.js';
import { calls } from './fixtures/net-calls.js';

// The host's own, taken before any kernel runs.
const hostSetTimeout = globalThis.setTimeout;
const hostSleep = (ms: number) => new Promise<void>((r) => hostSetTimeout(r, ms));
const httpNs = await import('node:http');
const originals = () => [
  net.connect, net.createConnection, net.Socket.prototype.connect, net.Server.prototype.listen, tls.connect,
  http.request, http.get, https.request, https.get, httpNs.request,
  dns.lookup, dns.resolve, dns.resolve4, dns.resolveTxt, dns.reverse, dns.promises.lookup, dns.promises.resolve4,
  dgram.createSocket, globalThis.fetch,
];
const ORIGINALS = originals();
const NET_CONNECT = net.connect;
const FIXTURE = 'test/sim/fixtures/net-calls.ts';

type Event = 'unhandledRejection' | 'uncaughtException';
type Listener = (...args: unknown[]) => void;

/** Run `fn` with `spy` (or nothing) as the host's only listener of `event`; vitest's own come back after. */
async function onlyListener<T>(event: Event, spy: Listener | null, fn: () => Promise<T>): Promise<T> {
  const saved = process.rawListeners(event) as Listener[];
  process.removeAllListeners(event);
  if (spy !== null) process.on(event, spy);
  try {
    return await fn();
  } finally {
    if (spy !== null) process.removeListener(event, spy);
    for (const l of saved) process.on(event, l);
  }
}

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('errors in app code crash its simulated process, not the host', () => {
  it('a throw in a nextTick or queueMicrotask callback crashes its process (stderr, crash list); the others keep running', async () => {
    const log: string[] = [];
    const pids: Record<string, number> = {};
    const { k } = boot({
      main: (os) => {
        for (const p of ['tick', 'microtask', 'good']) pids[p] = os.spawn({ program: p, channel: false }).pid;
      },
      tick: async (os) => {
        await os.sleep(10);
        process.nextTick(() => {
          throw new Error('tick boom');
        });
        await os.sleep(1000);
        log.push('tick survived');
      },
      microtask: (os) => {
        queueMicrotask(() => {
          throw new TypeError('microtask boom');
        });
        void os.sleep(1000).then(() => log.push('microtask survived'));
      },
      good: async (os) => {
        await os.sleep(100);
        log.push(`good at ${os.now()}`);
      },
    });
    await k.run();
    expect(log).toEqual(['good at 100']);
    expect(k.exitStatus(pids.tick!)).toMatchObject({ code: 1, signal: null });
    expect(k.exitStatus(pids.microtask!)).toMatchObject({ code: 1, signal: null });
    expect(k.exitStatus(pids.good!)).toMatchObject({ code: 0, signal: null });
    expect(k.faults.crashes).toEqual([
      { at: 0, pid: pids.microtask, program: 'microtask', message: 'TypeError: microtask boom', rejection: false },
      { at: 10, pid: pids.tick, program: 'tick', message: 'Error: tick boom', rejection: false },
    ]);
    expect(k.output.stderr).toMatch(/^Error: tick boom\n {4}at /m);
    expect(k.output.stderr).toMatch(/^TypeError: microtask boom\n {4}at /m);
  });

  it('an unhandled rejection crashes its process at its simulated time, once; the host sees none', async () => {
    const hostSpy = vi.fn();
    const log: string[] = [];
    const pids: Record<string, number> = {};
    const table: Record<string, ProgramFn> = {
      main: (os) => {
        for (const p of ['lost', 'plain', 'returned', 'timer', 'late']) pids[p] = os.spawn({ program: p, channel: false }).pid;
      },
      lost: async (os) => {
        await os.sleep(250);
        void Promise.reject(new Error('lost'));
        await os.sleep(1000);
        log.push('lost survived');
      },
      plain: async (os) => {
        await os.sleep(40);
        void Promise.reject('plain');
      },
      // Returned to the kernel, which handles it: one crash, no unhandled rejection.
      returned: async (os) => {
        await os.sleep(60);
        throw new Error('returned');
      },
      timer: (os) => {
        os.timer(70, async () => {
          await null;
          throw new Error('from a timer');
        });
      },
      // Handled before the microtasks ran out: no crash, as in Node.
      late: async (os) => {
        const p = Promise.reject(new Error('caught late'));
        await null;
        p.catch(() => {});
        await os.sleep(5);
        log.push('late ok');
      },
    };
    const { k } = boot(table);
    await onlyListener('unhandledRejection', hostSpy, () => k.run());
    expect(hostSpy).not.toHaveBeenCalled();
    expect(log).toEqual(['late ok']);
    for (const p of ['lost', 'plain', 'returned', 'timer']) expect(k.exitStatus(pids[p]!)).toMatchObject({ code: 1 });
    expect(k.exitStatus(pids.late!)).toMatchObject({ code: 0 });
    expect(k.faults.crashes).toEqual([
      {
        at: 40,
        pid: pids.plain,
        program: 'plain',
        message: 'UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block, ' +
          'or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "plain".',
        rejection: true,
      },
      { at: 60, pid: pids.returned, program: 'returned', message: 'Error: returned', rejection: true },
      { at: 70, pid: pids.timer, program: 'timer', message: 'Error: from a timer', rejection: true },
      { at: 250, pid: pids.lost, program: 'lost', message: 'Error: lost', rejection: true },
    ]);
    expect(k.output.stderr).toMatch(/^Error: lost\n {4}at /m);
  });

  it('a host rejection nobody handles during a run still reaches the host: its listeners, or else uncaughtException', async () => {
    const hostErr = new Error('the host\'s own');
    const run = async () => {
      const { k, pid } = boot({ main: async (os) => void (await os.hostWork(hostSleep(50))) });
      // A host timer: no simulated process runs when it rejects.
      hostSetTimeout(() => void Promise.reject(hostErr), 5);
      await k.run();
      expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
      expect(k.faults.crashes).toEqual([]);
    };
    // Seen while the run was under way (the guard is on), not after.
    const seen: unknown[] = [];
    const spy = (err: unknown, more: unknown) => seen.push([err, more instanceof Promise, net.connect !== NET_CONNECT]);
    await onlyListener('unhandledRejection', spy, run);
    expect(seen).toEqual([[hostErr, true, true]]);
    // Without a listener Node throws it: an uncaughtException.
    seen.length = 0;
    await onlyListener('unhandledRejection', null, () => onlyListener('uncaughtException', spy, run));
    expect(seen).toEqual([[hostErr, false, true]]);
  });
});

describe("an app's own uncaughtException and unhandledRejection listeners", () => {
  it('run as the process, which lives on as under Node; the host\'s listeners neither see nor keep them', async () => {
    const hostBefore = [process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')];
    const log: string[] = [];
    const pids: Record<string, number> = {};
    const { k } = boot({
      main: (os) => {
        for (const p of ['exc', 'rej', 'rejAsExc', 'monitor', 'throwing', 'none']) pids[p] = os.spawn({ program: p, channel: false }).pid;
      },
      // Throws from a tick, a microtask, a timer and a returned promise: each to the listener, with its origin.
      exc: async (os) => {
        process.on('uncaughtException', (err, origin) => log.push(`exc ${os.now()} ${(err as Error).message} ${origin} pid=${process.pid === os.pid}`));
        process.nextTick(() => {
          throw new Error('tick');
        });
        queueMicrotask(() => {
          throw new Error('microtask');
        });
        setTimeout(() => {
          throw new Error('timer');
        }, 20);
        os.timer(30, () => {
          throw new Error('os timer');
        });
        await os.sleep(100);
        log.push(`exc alive ${os.now()}`);
      },
      rej: async (os) => {
        process.on('unhandledRejection', (reason, promise) => log.push(`rej ${os.now()} ${(reason as Error).message} ${promise instanceof Promise}`));
        await os.sleep(10);
        void Promise.reject(new Error('lost'));
        await os.sleep(100);
        log.push(`rej alive ${os.now()}`);
      },
      // Without an unhandledRejection listener Node raises the rejection as an uncaught exception.
      rejAsExc: async (os) => {
        process.once('uncaughtException', (err, origin) => log.push(`rejAsExc ${os.now()} ${(err as Error).message} ${origin}`));
        await os.sleep(15);
        void Promise.reject(new Error('raised'));
        await os.sleep(100);
        log.push(`rejAsExc alive ${os.now()}`);
      },
      // A monitor alone sees the error, and the process still crashes.
      monitor: async (os) => {
        process.on('uncaughtExceptionMonitor', (err, origin) => log.push(`monitor ${(err as Error).message} ${origin}`));
        await os.sleep(5);
        process.nextTick(() => {
          throw new Error('watched');
        });
        await os.sleep(100);
        log.push('monitor alive');
      },
      // A listener that throws: Node exits 7.
      throwing: async (os) => {
        process.on('uncaughtException', () => {
          throw new Error('in the handler');
        });
        await os.sleep(7);
        process.nextTick(() => {
          throw new Error('first');
        });
        await os.sleep(100);
        log.push('throwing alive');
      },
      none: async (os) => {
        await os.sleep(3);
        process.nextTick(() => {
          throw new Error('unhandled');
        });
        await os.sleep(100);
        log.push('none alive');
      },
    });
    await k.run();
    expect(log.sort()).toEqual([
      'exc 0 microtask uncaughtException pid=true',
      'exc 0 tick uncaughtException pid=true',
      'exc 20 timer uncaughtException pid=true',
      'exc 30 os timer uncaughtException pid=true',
      'exc alive 100',
      'monitor watched uncaughtException',
      'rej 10 lost true',
      'rej alive 110',
      'rejAsExc 15 raised unhandledRejection',
      'rejAsExc alive 115',
    ]);
    for (const p of ['exc', 'rej', 'rejAsExc']) expect(k.exitStatus(pids[p]!), p).toMatchObject({ code: 0, signal: null });
    expect(k.exitStatus(pids.monitor!)).toMatchObject({ code: 1 });
    expect(k.exitStatus(pids.throwing!)).toMatchObject({ code: 7 });
    expect(k.exitStatus(pids.none!)).toMatchObject({ code: 1 });
    expect(k.faults.crashes.map((c) => [c.program, c.message])).toEqual([
      ['none', 'Error: unhandled'],
      ['monitor', 'Error: watched'],
      ['throwing', 'Error: in the handler'],
    ]);
    expect([process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')]).toEqual(hostBefore);
  });
});

describe('the network outside drover is not simulated', () => {
  it('a simulated process that calls it gets ERR_DROVER_NOT_SIMULATED at the call, naming the calling module', async () => {
    const port = await closedPort();
    const seen: Record<string, { sync: boolean; code: unknown; message: string; stack: string }> = {};
    const pids: Record<string, number> = {};
    const { k } = boot({
      main: (os) => {
        pids.caller = os.spawn({ program: 'caller', channel: false }).pid;
        pids.listens = os.spawn({ program: 'listens', channel: false }).pid;
      },
      caller: async () => {
        for (const [what, call] of Object.entries(calls)) {
          if (what === 'net.Server.listen') continue;
          let sync = true;
          try {
            const r = call(port);
            sync = false;
            await r;
            seen[what] = { sync, code: 'none', message: '', stack: '' };
          } catch (e) {
            const err = e as Error & { code?: string };
            seen[what] = { sync, code: err.code, message: err.message, stack: err.stack ?? '' };
          }
        }
      },
      // Not caught: the process crashes with it.
      listens: () => void calls['net.Server.listen']!(0),
    });
    await k.run();
    expect(Object.keys(seen)).toHaveLength(Object.keys(calls).length - 1);
    for (const [what, s] of Object.entries(seen)) {
      expect(s.code, what).toBe('ERR_DROVER_NOT_SIMULATED');
      expect(s.message, what).toBe(
        `drover sim: the network outside drover is not simulated: ${FIXTURE} called ${what}(); ` +
          'run this code outside the simulator, or give the app a stand-in for it when DROVER_SIM is set',
      );
      // A throw where Node throws or calls back; a rejection where Node rejects.
      expect(s.sync, what).toBe(!(what === 'fetch' || what.startsWith('dns.promises.')));
      // The stack starts at the caller, not in the guard.
      expect(s.stack.split('\n')[1], what).toContain('fixtures/net-calls.ts');
    }
    expect(k.exitStatus(pids.caller!)).toMatchObject({ code: 0 });
    expect(k.exitStatus(pids.listens!)).toMatchObject({ code: 1 });
    expect(k.faults.crashes).toEqual([
      { at: 0, pid: pids.listens, program: 'listens', message: expect.stringContaining(`${FIXTURE} called net.Server.listen();`), rejection: false },
    ]);
  });

  it('drover\'s way, node:http over Os streams (createConnection, or an Agent of its own), is let through', async () => {
    const replies: unknown[] = [];
    const { k, pid } = boot({
      main: async (os: Os) => {
        const server = http.createServer((req, res) => res.end(`ok ${req.url}`));
        const l = await os.listen({ host: '127.0.0.1', port: 80 });
        l.accept((s) => server.emit('connection', s));
        const agent = new OsAgent(os, l.address, {});
        for (const r of [await get(os, l.address, '/plain'), await get(os, l.address, '/agent', agent)]) replies.push([r.status, r.body]);
        agent.destroy();
        l.close();
        server.close();
      },
    });
    await k.run({ until: 60_000 });
    expect(replies).toEqual([[200, 'ok /plain'], [200, 'ok /agent']]);
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    expect(k.faults.crashes).toEqual([]);
  });

  it('the host calls the originals during a run, and after the last run ends every entry point is the original again', async () => {
    const port = await closedPort();
    const listenersBefore = process.rawListeners('unhandledRejection');
    const probe = async () => ({
      guarded: net.connect !== NET_CONNECT && http.request !== ORIGINALS[5] && httpNs.request === http.request,
      connect: await new Promise((r) => net.createConnection({ port, host: '127.0.0.1' }).on('error', (e: NodeJS.ErrnoException) => r(e.code))),
      httpGet: await new Promise((r) => http.get(`http://127.0.0.1:${port}/`).on('error', (e: NodeJS.ErrnoException) => r(e.code))),
      fetch: await fetch(`http://127.0.0.1:${port}/`).then(() => 'answered', (e: { cause?: { code?: string } }) => e.cause?.code),
      lookup: await new Promise((r) => dns.lookup('localhost', (e) => r(e === null ? 'ok' : e.code))),
      listen: await new Promise((r) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => s.close(() => r('listened')));
      }),
    });
    // Created by the host, run from a host timer while the simulated process waits for it.
    const hostSide = new Promise((r) => hostSetTimeout(r, 1)).then(probe);
    const a = boot({ main: async (os) => void (await os.sleep(5)) }).k;
    const b = boot({ main: async (os) => void (await os.hostWork(hostSide)) }).k;
    const bDone = b.run();
    await a.run();
    // One run is over, one is not: still guarded.
    expect(net.connect).not.toBe(NET_CONNECT);
    await bDone;
    expect(await hostSide).toEqual({ guarded: true, connect: 'ECONNREFUSED', httpGet: 'ECONNREFUSED', fetch: 'ECONNREFUSED', lookup: 'ok', listen: 'listened' });
    const now = originals();
    ORIGINALS.forEach((f, i) => expect(now[i], `entry point ${i}`).toBe(f));
    expect(process.rawListeners('unhandledRejection')).toEqual(listenersBefore);
  });

  it('blames the innermost frame outside Node and drover\'s own tree', () => {
    const own = join(import.meta.dirname, '..', '..', 'src', 'runtime', 'worker', 'app.ts');
    const frames = (...at: string[]) => ['Error: x', ...at.map((a) => `    at ${a}`)].join('\n');
    expect(blame(frames('Socket.connect (node:net:1203:10)', 'new Promise (<anonymous>)', `load (${own}:40:3)`,
      'Client.connect (file:///srv/app/node_modules/pg/lib/client.js:132:5)', '/srv/app/server.js:9:1'))).toBe('pg (node_modules/pg/lib/client.js)');
    expect(blame(frames('eval (eval at run (/srv/app/x.js:1:1), <anonymous>:1:1)', 'async Promise.all (index 0)', `${process.cwd()}/lib/db.js:3:4`))).toBe('lib/db.js');
    expect(blame(frames('connect (node:net:1:1)', `load (${own}:40:3)`))).toBe('src/runtime/worker/app.ts');
    expect(blame(frames('connect (node:net:1:1)'))).toBe('code with no file');
  });

  it('names a package by its node_modules path, other files from the working directory', () => {
    expect(moduleName('/srv/app/node_modules/pg/lib/client.js')).toBe('pg (node_modules/pg/lib/client.js)');
    expect(moduleName('/a/node_modules/x/node_modules/@scope/db/index.js')).toBe('@scope/db (node_modules/@scope/db/index.js)');
    expect(moduleName(`${process.cwd()}/lib/db.js`)).toBe('lib/db.js');
    expect(moduleName('/elsewhere/db.js')).toBe('/elsewhere/db.js');
  });
});

describe("drover's own errors", () => {
  const own = new URL('../../src/', import.meta.url).pathname;
  const err = (name: string, frames: string[]) => Object.assign(new Error('x'), { stack: [`${name}: x`, ...frames.map((f) => `    at ${f}`)].join('\n') });
  it('an error is drover\'s by the innermost frame outside Node and the simulator\'s stand-ins for it', () => {
    // drover's worker code, called from Node's timers.
    expect(droverOwn(err('TypeError', [`Timeout.sweep (${own}runtime/worker/worker.ts:10:5)`, 'listOnTimeout (node:internal/timers:581:17)']))).toBe(true);
    expect(droverOwn(err('TypeError', [`file://${own}runtime/worker/worker.js:10:5`]))).toBe(true);
    // The app's, called by drover's: the app's.
    expect(droverOwn(err('Error', ['handler (/srv/app/app.js:3:9)', `run (${own}runtime/worker/worker.ts:200:3)`]))).toBe(false);
    expect(droverOwn(err('Error', ['next (/srv/app/node_modules/express/lib/router.js:3:9)', `run (${own}runtime/worker/worker.ts:200:3)`]))).toBe(false);
    // Thrown by the stand-in for process.kill at the app's call (ESRCH), through Node's frames: the app's.
    expect(droverOwn(err('Error', [`uvError (${own}sim/app-globals.ts:772:15)`, `simKill (${own}sim/app-globals.ts:996:11)`, 'Object.kill (node:internal/x:1:1)', 'tick (/srv/app/app.js:9:11)']))).toBe(false);
    // No frame at all (libuv's), no file (eval), not an Error: not drover's.
    expect(droverOwn(err('Error', []))).toBe(false);
    expect(droverOwn(err('Error', ['eval (eval at f (unknown source), <anonymous>:1:1)']))).toBe(false);
    expect(droverOwn('a string')).toBe(false);
    expect(droverOwn(new Error('made here, in a test'))).toBe(false);
  });
});
