// Server processes of bench/http: each target is started in its own process
// group (detached), waited for until it answers, and its whole group is
// killed at the end — on success, on failure, and on Ctrl-C.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { CLK_TCK, freePort, pids, sleep, startGroup, statFields, stopGroup, logWaiter } from '../lib/procs.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DROVER = join(ROOT, 'bin', 'drover.js');
const SERVER = join(import.meta.dirname, 'server.ts');
export const APP = join(import.meta.dirname, 'hello.js');

export type Kind = 'drover' | 'cluster-rr' | 'cluster-none' | 'single';

export interface Target {
  readonly kind: Kind;
  readonly port: number;
  readonly pid: number;
  /** Everything the process group wrote to stdout and stderr so far. */
  log(): string;
  /** The same, line by line, each with the time (Date.now()) this process read it. */
  lines(): readonly { readonly t: number; readonly text: string }[];
  /** Resolves when the log has `count` matches of `re`. */
  waitFor(re: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  signal(sig: NodeJS.Signals): void;
  /** TERM to the leader, then KILL to the whole group after graceMs; waits for the group to be empty. */
  stop(graceMs?: number): Promise<void>;
}

/** `drover`: another checkout's bin/drover.js (bench/http/profile.ts compares two); `env`: the target's whole environment. */
export interface TargetOptions {
  readonly drover?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export function startTarget(kind: Kind, port: number, workers: number, o: TargetOptions = {}): Target {
  const argv =
    kind === 'drover'
      ? [o.drover ?? DROVER, APP, '--bind', `127.0.0.1:${port}`, '--workers', String(workers)]
      : kind === 'single'
        ? ['--import', 'tsx', SERVER, 'single', String(port)]
        : ['--import', 'tsx', SERVER, 'cluster', String(port), String(workers), kind === 'cluster-rr' ? 'rr' : 'none'];
  const { proc, pid } = startGroup(kind, argv, ROOT, o.env);
  let text = '';
  const lines: { t: number; text: string }[] = [];
  const reader = () => {
    let partial = '';
    return (d: string) => {
      text += d;
      const t = Date.now();
      const parts = (partial + d).split('\n');
      partial = parts.pop()!;
      for (const p of parts) lines.push({ t, text: p });
    };
  };
  proc.stdout!.setEncoding('utf8').on('data', reader());
  proc.stderr!.setEncoding('utf8').on('data', reader());
  let exited = false;
  const exit = new Promise<void>((resolve) => proc.on('exit', () => {
    exited = true;
    resolve();
  }));

  const t: Target = {
    kind,
    port,
    pid,
    log: () => text,
    lines: () => lines,
    waitFor: logWaiter(kind, () => text, () => exited),
    signal(sig) {
      process.kill(pid, sig);
    },
    async stop(graceMs = 5000) {
      await stopGroup(kind, pid, exit, graceMs);
    },
  };
  return t;
}

/** Starts a target and resolves once it serves with all its workers. */
export async function startReady(kind: Kind, workers: number, o: TargetOptions = {}): Promise<Target> {
  const port = await freePort();
  const t = startTarget(kind, port, workers, o);
  try {
    if (kind === 'drover') await t.waitFor(/booted \(generation 1\)/, workers);
    else await t.waitFor(/^ready$/m);
    await answers(port);
  } catch (e) {
    await t.stop(0).catch(() => {});
    throw e;
  }
  return t;
}

/** Resolves when GET / on the port returns 200. */
export async function answers(port: number, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.resume().on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.setTimeout(2000, () => req.destroy());
      req.end();
    });
    if (status === 200) return;
    if (Date.now() > end) throw new Error(`port ${port} did not answer 200 within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * CPU time (user + system, ms) used so far by the live processes of a
 * process group, from /proc; null where there is no /proc. Unlike requests
 * per second, CPU per request does not drop when other processes take the
 * CPUs: on a shared machine it is the steadier measure of a server's cost.
 */
export function groupCpuMs(pgid: number): number | null {
  const all = pids();
  if (all === null) return null;
  let ticks = 0;
  for (const pid of all) {
    const f = statFields(pid); // null: gone while we looked
    if (f !== null && Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks * 1000) / CLK_TCK;
}

/** CPU time (ms) processes of the whole machine have used so far, from /proc/stat; null without it. */
export function machineBusyMs(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n')[0]!;
    // cpu user nice system idle iowait irq softirq steal ...: user, nice and
    // system only, the time processes use (interrupt time may be the
    // benchmark's own loopback traffic, whoever it is accounted to).
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = f[0]! + f[1]! + f[2]!;
    return (busy * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}
