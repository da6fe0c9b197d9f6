// Node's HTTP server and client over Os streams, on both worlds (the
// programs, and what of node:http touches host time, are in
// http-programs.ts). Where timing differs between the worlds, the case says
// its bound: the simulator's is virtual time and tight, the real one allows
// for a loaded machine.
import { expect, test } from 'vitest';
import { conformance, type RunResult } from './worlds.js';
import { httpRegistry } from './http-programs.js';

function ok(r: RunResult): any {
  expect({ code: r.code, signal: r.signal, stderr: r.stderr, leftovers: r.leftovers }).toEqual({ code: 0, signal: null, stderr: '', leftovers: [] });
  return r.records[0];
}

conformance(
  'http over Os streams',
  (world) => {
    test('(a) keep-alive: five requests over one connection, answered in order', async () => {
      expect(ok(await world().run('http-keepalive'))).toEqual({
        bodies: [1, 2, 3, 4, 5].map((seq) => ({ conn: 1, seq })),
        // Node sets reusedSocket only for a socket taken from the free pool;
        // the queued ones are handed the busy socket as it frees up.
        reused: [false, true, false, false, false],
      });
    });

    test('(b) a chunked response with trailers and a Content-Length one: status, raw headers and bodies exact', async () => {
      expect(ok(await world().run('http-bodies'))).toEqual({
        chunked: {
          status: 200,
          raw: ['Content-Type', 'text/plain', 'Trailer', 'X-Checksum', 'Connection', 'close', 'Transfer-Encoding', 'chunked'],
          body: 'part-0\npart-1\npart-2\npart-3\n',
          trailers: { 'x-checksum': '28' },
        },
        fixed: { status: 203, message: 'Made Up', raw: ['Content-Length', '10000', 'X-Kind', 'fixed', 'Connection', 'close'], exact: true },
      });
    });

    test('(c) a 1 MiB POST written in 64 KiB pieces is echoed back intact', async () => {
      expect(ok(await world().run('http-post'))).toEqual({ status: 200, length: 1 << 20, exact: true });
    });

    // Bound: Node arms keepAliveTimeout + 1000 ms when the response finishes.
    // sim: 1200 ms of virtual time, give or take the 0-1 ms latency of each
    // hop; node: no earlier than the timer, at most 3 s on a loaded machine.
    test('(d) keepAliveTimeout 200 ms: the server closes the idle connection at 1200 ms, the client sees it and dials anew', async () => {
      const r = ok(await world().run('http-idle-close'));
      const [lo, hi] = world().name === 'sim' ? [1198, 1203] : [1190, 3000];
      expect(r.idleCloseMs).toBeGreaterThanOrEqual(lo);
      expect(r.idleCloseMs).toBeLessThanOrEqual(hi);
      expect({ ...r, idleCloseMs: 0 }).toEqual({ idleCloseMs: 0, serverClosed: 1, second: { conn: 2, seq: 1 }, reused: false });
    });

    test('(e) a client that destroys the socket mid-response: the server sees close and abort, nothing hangs', async () => {
      expect(ok(await world().run('http-client-abort', [], { timeout: 10_000 }))).toEqual({
        client: ['data', 'res aborted', 'close'],
        server: { finished: false, aborted: true, socketDestroyed: true },
      });
    });

    // Bound: the error follows the kill within 10 ms (sim) / 1 s (node).
    test('(f) a server SIGKILLed while it holds a request: the client gets ECONNRESET, never a hang', async () => {
      const r = ok(await world().run('http-server-killed', [], { timeout: 10_000 }));
      expect(r).toMatchObject({ server: 'SIGKILL', code: 'ECONNRESET', message: 'socket hang up' });
      expect(r.ms).toBeLessThan(world().name === 'sim' ? 10 : 1000);
    });
  },
  [httpRegistry],
);
