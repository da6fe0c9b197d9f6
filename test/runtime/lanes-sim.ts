// Helpers of the lanes scenarios (lanes.sim.test.ts, lanes.property.test.ts):
// an HTTP client that records everything a lane could change (status and
// reason, raw headers and trailers, body bytes, when each chunk came, the
// client's own port) and never rejects, so that "no answer" is a value a
// test can assert on; and who is who among drover's processes.
import * as http from 'node:http';
import { join } from 'node:path';
import type { Os } from '../../src/os/types.js';
import { OsAgent, viaOs } from '../support/http.js';
import { until } from '../support/os.js';
import { ADDR, type Ctl } from './sim.js';

export const LANES_APP = join(import.meta.dirname, '..', 'apps', 'lanes-app.js');

export interface Answer {
  /** 0 when no (complete) answer came: see `error`. */
  status: number;
  reason: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  rawTrailers: string[];
  body: Buffer;
  text: string;
  /** Virtual times at which body chunks arrived. */
  chunks: number[];
  /** Sent, answered (or failed), in virtual ms. */
  t0: number;
  t1: number;
  /** The client's own port on the connection (what the app should see as remotePort). */
  port: number | undefined;
  error: string | null;
}

export interface AskOptions {
  method?: string;
  /** Raw request headers, [name, value, name, value...]. */
  headers?: string[];
  /** One buffer: sent with Content-Length. Several: sent chunked, 10 ms apart. */
  body?: Buffer | Buffer[];
  agent?: http.Agent;
  /** The client goes away this many ms after sending, unless answered by then. */
  abortAfter?: number;
}

/** One request over an Os stream; resolves with what came back, never rejects. */
export function ask(os: Os, path: string, o: AskOptions = {}): Promise<Answer> {
  const t0 = os.now();
  return new Promise((resolve) => {
    const a: Answer = {
      status: 0, reason: '', headers: {}, rawHeaders: [], rawTrailers: [], body: Buffer.alloc(0), text: '',
      chunks: [], t0, t1: t0, port: undefined, error: null,
    };
    let settled = false;
    const settle = (error: string | null) => {
      if (settled) return;
      settled = true;
      a.t1 = os.now();
      a.error = error;
      if (error !== null) a.status = 0;
      resolve(a);
    };
    const headers: Record<string, string | string[]> = {};
    const raw = o.headers ?? [];
    for (let i = 0; i < raw.length; i += 2) {
      const prev = headers[raw[i]!];
      headers[raw[i]!] = prev === undefined ? raw[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), raw[i + 1]!];
    }
    const req = http.request({
      method: o.method ?? 'GET',
      path,
      headers,
      ...(o.agent ? { agent: o.agent } : { createConnection: viaOs(os, ADDR) }),
    }, (res) => {
      a.status = res.statusCode!;
      a.reason = res.statusMessage ?? '';
      a.headers = res.headers;
      a.rawHeaders = res.rawHeaders;
      a.port = (req.socket as { localPort?: number } | null)?.localPort;
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => {
        parts.push(d);
        a.chunks.push(os.now());
      });
      res.on('end', () => {
        a.body = Buffer.concat(parts);
        a.text = a.body.toString('utf8');
        a.rawTrailers = res.rawTrailers;
        settle(null);
      });
      res.on('aborted', () => settle('aborted'));
      res.on('error', (e) => settle(e.message));
      res.on('close', () => settle(res.complete ? null : 'closed before the end'));
    });
    req.on('error', (e) => settle(e.message));
    if (o.abortAfter !== undefined) {
      void os.sleep(o.abortAfter).then(() => {
        if (settled) return;
        settle('aborted by the client');
        req.destroy();
      });
    }
    const body = o.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) {
      req.setHeader('content-length', String(body.length));
      req.end(body);
    } else {
      void (async () => {
        for (const piece of body) {
          req.write(piece);
          await os.sleep(10);
        }
        req.end();
      })();
    }
  });
}

/** What the app's default route answers: `PID URL START`. */
export function ran(a: Answer): { pid: number; url: string; start: number } {
  const [pid, url, start] = a.text.split(' ');
  return { pid: Number(pid), url: url ?? '', start: Number(start) };
}

/** The pid that answered (default route), or NaN. */
export const pidOf = (a: Answer) => ran(a).pid;

/** Live slow-lane workers. */
export function slowPids(c: Ctl): number[] {
  return c.k.processes().filter((p) => p.program === 'slow-worker' && p.state === 'running').map((p) => p.pid);
}

/** Resolves when `n` slow-lane workers have booted since log offset `from`. */
export async function slowBooted(c: Ctl, n: number, from = 0, timeout = 30_000): Promise<void> {
  const count = () => (c.log().slice(from).match(/slow-lane worker \d+ booted/g) ?? []).length;
  if (!(await until(c.os, () => count() >= n, timeout))) throw new Error(`${count()} of ${n} slow-lane workers booted within ${timeout} ms:\n${c.log()}`);
}

/** Settles with `p`, or with 'hang' if `p` has not settled after `ms` of virtual time. */
export function within<T>(os: Os, p: Promise<T>, ms: number): Promise<T | 'hang'> {
  return Promise.race([p, os.sleep(ms).then(() => 'hang' as const)]);
}

export function keepAlive(c: Ctl): OsAgent {
  return new OsAgent(c.os, ADDR, { keepAlive: true, maxSockets: 1 });
}

/**
 * Keep-alive agents, one on each live fast worker (a kept-alive connection
 * stays with the worker that accepted it): opens connections until every
 * worker has one. The others are destroyed.
 */
export async function agentsOnEveryWorker(c: Ctl): Promise<Map<number, OsAgent>> {
  const want = c.workers();
  const out = new Map<number, OsAgent>();
  for (let i = 0; i < 60 && out.size < want.length; i++) {
    const agent = keepAlive(c);
    const pid = pidOf(await ask(c.os, '/whoami', { agent }));
    if (out.has(pid) || !want.includes(pid)) agent.destroy();
    else out.set(pid, agent);
  }
  if (out.size < want.length) throw new Error(`connections reached ${out.size} of ${want.length} fast workers`);
  return out;
}

/** Raw headers without those that differ between two answers of the same app by nature. */
export function comparable(raw: readonly string[], drop: readonly string[] = ['date', 'x-pid', 'connection', 'keep-alive']): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!drop.includes(raw[i]!.toLowerCase())) out.push(raw[i]!.toLowerCase(), raw[i + 1]!);
  return out;
}
