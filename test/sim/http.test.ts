// node:http in the simulator: the same seed gives the same run, and the
// one piece of host time that reaches a response (the Date header) changes
// its text, never the trace.
import { describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
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

describe('node:http in the simulator', () => {
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
    // Across the next host second boundary, so Node's cached date string changes.
    await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
    const b = await run('dated', 1);
    expect(b.stdout).not.toBe(a.stdout);
    expect(b.stdout).toHaveLength(a.stdout.length);
    expect(b.hash).toBe(a.hash);
  });
});
