// node:http in the simulator: the same seed gives the same run, and the
// one piece of host time that reaches a response (the Date header) changes
// its text, never the trace.
import { describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { programs } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';
import { httpRegistry } from '../conformance/http-programs.js';

async function run(program: string, seed: number): Promise<{ hash: string; stdout: string; now: number }> {
  const k = new Kernel({ seed, programs: [httpRegistry, dated] });
  k.spawn({ program });
  await k.run();
  return { hash: k.traceHash(), stdout: k.output.stdout, now: k.now() };
}

/** A server that keeps Node's Date header, and one request to it, in one process. */
const dated = programs(import.meta.url, {
  dated: async (os) => {
    const server = http.createServer((_req, res) => res.end('ok'));
    const l = await os.listen({ host: '127.0.0.1', port: 80 });
    l.accept((s) => server.emit('connection', s));
    const date = await new Promise<string>((resolve, reject) => {
      const createConnection = (_o: unknown, cb: (e: Error | null, s: Duplex) => void): undefined =>
        void os.connect(l.address).then((s) => cb(null, s), (e: Error) => cb(e, undefined as never));
      http.get({ path: '/', createConnection }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers.date!));
      }).on('error', reject);
    });
    l.close();
    os.stdout.write(date + '\n');
  },
});

/** A server killed halfway through reading a request, and its client, also killed halfway through its answer. */
const killed = programs(import.meta.url, {
  'half-request': async (os) => {
    const server = http.createServer((_req, res) => res.write('part of an answer'));
    const l = await os.listen({ host: '127.0.0.1', port: 80 });
    l.accept((s) => server.emit('connection', s));
    const child = os.spawn({ program: 'half-client', channel: false });
    await os.sleep(50);
    os.kill(child.pid, 'SIGKILL');
    os.exit(0); // with a connection open in the middle of a request
  },
  'half-client': async (os) => {
    const createConnection = (_o: unknown, cb: (e: Error | null, s: Duplex) => void): undefined =>
      void os.connect({ host: '127.0.0.1', port: 80 }).then((s) => cb(null, s), (e: Error) => cb(e, undefined as never));
    http.get({ path: '/', createConnection }, (res) => res.on('data', () => {}));
    const half = await os.connect({ host: '127.0.0.1', port: 80 });
    half.write('GET /half HTTP/1.1\r\nhost: x\r\n');
    await os.sleep(1000);
  },
});

describe('node:http in the simulator', () => {
  it('a process killed with HTTP requests half read, on both sides, leaves nothing of the kernel reachable; nor does a disposed kernel stopped mid-run', async () => {
    // node:http's parsers are held by Node's own handles until freed; the
    // kernel frees a dead process's, or every run would keep its whole machine.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const one = async (seed: number) => {
      const k = new Kernel({ seed, programs: [killed] });
      k.spawn({ program: 'half-request' });
      expect((await k.run()).reason).toBe('idle');
      // The machine behind the Kernel: what a leaked stream would hold (the Kernel itself is only a face on it).
      return new WeakRef((k as unknown as { m: object }).m);
    };
    // And one stopped with its processes alive, halfway through: dispose lets go of their side too.
    const stopped = async () => {
      const k = new Kernel({ seed: 4, programs: [killed] });
      k.spawn({ program: 'half-request' });
      expect((await k.run({ until: 20 })).reason).toBe('until');
      expect(k.processes().map((p) => p.program)).toEqual(['half-request', 'half-client']);
      k.dispose();
      // (not expect(...).rejects: vitest keeps hold of the promise it was given)
      const again = await k.run().then(() => null, (e: Error) => e.message);
      expect(again).toMatch(/disposed/);
      return new WeakRef((k as unknown as { m: object }).m);
    };
    const refs = [await one(1), await one(2), await one(3), await stopped()];
    for (let i = 0; i < 5 && refs.some((r) => r.deref() !== undefined); i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    expect(refs.map((r) => r.deref() !== undefined)).toEqual([false, false, false, false]);
  });

  it('gives the same trace and output for the same seed, and another trace for another seed', async () => {
    for (const program of ['http-keepalive', 'http-bodies', 'http-post', 'http-idle-close', 'http-client-abort', 'http-server-killed']) {
      const a = await run(program, 9);
      expect(await run(program, 9)).toEqual(a);
      expect(a.stdout).toMatch(/^\{/);
    }
    expect((await run('http-keepalive', 10)).hash).not.toBe((await run('http-keepalive', 9)).hash);
  });

  it('the Date header carries host time, but a trace records byte counts: two runs a host second apart differ only in that text', async () => {
    const a = await run('dated', 1);
    // Across the next host second boundary, so Node's cached date string changes. A timer may
    // fire early by the time a long synchronous stretch held the loop (libuv's clock is read
    // once a turn): the host clock says when the boundary is passed.
    const second = Math.floor(Date.now() / 1000);
    while (Math.floor((Date.now() - 5) / 1000) === second) await new Promise((r) => setTimeout(r, 10));
    const b = await run('dated', 1);
    expect(b.stdout).not.toBe(a.stdout);
    expect(b.stdout).toHaveLength(a.stdout.length);
    expect(b.hash).toBe(a.hash);
  });
});
