// Processes of bench/hostile besides the servers (bench/mixed/servers.ts
// starts those): the attacker child, the memory and descriptors of the
// servers' workers (/proc/PID/status and /proc/PID/fd), and the descriptor
// limit 5,000 sockets need.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttackSpec, AttackStats } from './attack.js';
import type { FromAttacker, LoopFigures, ToAttacker } from './attacker.js';
import { httpWorkerPids, slowLanePids, type Server } from '../mixed/servers.js';
import { atLastResort, groupMembers, statFields, CLK_TCK } from '../lib/procs.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ATTACKER = join(import.meta.dirname, 'attacker.ts');

// ------------------------------------------------------------------ attacker

export interface Attacker {
  readonly pid: number;
  start(spec: AttackSpec): Promise<void>;
  /** The counts so far, and the attacker's loop figures since the last `mark` (then a new window starts). */
  stats(mark?: boolean): Promise<{ stats: AttackStats; loop: LoopFigures }>;
  /** CPU time (user + system) the attacker used so far, ms; null without /proc. */
  cpuMs(): number | null;
  /** Resets every attack connection, then ends the process. */
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
atLastResort(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts the attacker process (bench/hostile/attacker.ts) and resolves once it is ready for orders. */
export async function startAttacker(): Promise<Attacker> {
  const proc = spawn(process.execPath, ['--import', 'tsx', ATTACKER], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proc);
  const exited = new Promise<void>((r) => proc.once('exit', () => {
    children.delete(proc);
    r();
  }));
  const waiting = new Map<string, (m: FromAttacker) => void>();
  proc.on('message', (m: FromAttacker) => {
    const w = waiting.get(m.t);
    waiting.delete(m.t);
    w?.(m);
  });
  const ask = <T extends FromAttacker['t']>(t: T, msg: ToAttacker | null, timeoutMs = 30_000): Promise<Extract<FromAttacker, { t: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the attacker did not answer ${t} within ${timeoutMs} ms`)), timeoutMs);
      void exited.then(() => reject(new Error(`the attacker exited while we waited for ${t}`)));
      waiting.set(t, (m) => {
        clearTimeout(timer);
        resolve(m as Extract<FromAttacker, { t: T }>);
      });
      if (msg) proc.send(msg);
    });
  await ask('ready', null);
  const pid = proc.pid!;
  return {
    pid,
    async start(spec) {
      await ask('start', { t: 'start', spec });
    },
    async stats(mark = false) {
      const m = await ask('stats', { t: 'stats', mark });
      return { stats: m.stats, loop: m.loop };
    },
    cpuMs() {
      const f = statFields(pid);
      return f === null ? null : ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
    },
    async stop() {
      await ask('stop', { t: 'stop' }).catch(() => {});
      proc.disconnect();
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

// ------------------------------------------------------------------ workers

export type Role = 'fast' | 'slow-lane' | 'worker';

/**
 * The server's worker processes now, each with its role: its process group
 * but the leader (drover's arbiter, node:cluster's primary); drover's workers
 * are the ones its log says booted, node:cluster's the node processes (tsx
 * may have an esbuild service process in the group too).
 */
export function workersOf(s: Server): Map<number, Role> {
  const out = new Map<number, Role>();
  const slow = new Set(slowLanePids(s.log()).map(Number));
  const fast = new Set(s.kind === 'cluster' ? [] : httpWorkerPids(s).map(Number));
  for (const pid of groupMembers(s.pid)) {
    if (pid === s.pid) continue;
    if (s.kind === 'cluster') {
      if (comm(pid) === 'node') out.set(pid, 'worker');
    } else if (slow.has(pid)) out.set(pid, 'slow-lane');
    else if (fast.has(pid)) out.set(pid, 'fast');
  }
  return out;
}

function comm(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return null;
  }
}

/** VmRSS of a process, KiB; null if it is gone. */
export async function rssKiB(pid: number): Promise<number | null> {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Open descriptors of a process (its sockets, mostly, under attack); null if it is gone. */
export async function fdCount(pid: number): Promise<number | null> {
  try {
    return (await readdir(`/proc/${pid}/fd`)).length;
  } catch {
    return null;
  }
}

export interface WorkerFigures {
  readonly pid: number;
  readonly role: Role;
  /** KiB; null when the worker was not there at the idle measurement */
  readonly idleRss: number | null;
  readonly peakRss: number;
  readonly lastRss: number;
  readonly idleFds: number | null;
  readonly peakFds: number;
  readonly lastFds: number;
  /** alive at the last sample */
  readonly alive: boolean;
}

export interface Idle {
  readonly rss: Map<number, number>;
  readonly fds: Map<number, number>;
}

/** The workers' RSS and descriptors at rest: the median of `n` samples `everyMs` apart. */
export async function idleOf(s: Server, n = 5, everyMs = 200): Promise<Idle> {
  const rss = new Map<number, number[]>();
  const fds = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, everyMs));
    for (const pid of workersOf(s).keys()) {
      const r = await rssKiB(pid);
      const f = await fdCount(pid);
      if (r !== null) (rss.get(pid) ?? rss.set(pid, []).get(pid)!).push(r);
      if (f !== null) (fds.get(pid) ?? fds.set(pid, []).get(pid)!).push(f);
    }
  }
  const med = (m: Map<number, number[]>) => new Map([...m].map(([p, xs]) => [p, xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!]));
  return { rss: med(rss), fds: med(fds) };
}

/**
 * Samples every worker's RSS and descriptors every `everyMs` until stopped
 * (asynchronous reads, so the fast load in this process is not held up). The
 * worker list is taken again whenever one of them has gone (a worker
 * replaced under attack is sampled too, and shows as one with no idle figure).
 */
export function sampler(s: Server, idle: Idle, everyMs = 500): { stop(): Promise<WorkerFigures[]> } {
  let roles = workersOf(s);
  const seen = new Map<number, { role: Role; peakRss: number; lastRss: number; peakFds: number; lastFds: number; alive: boolean }>();
  let stopping = false;
  const once = async () => {
    let gone = false;
    for (const [pid, role] of roles) {
      const [r, f] = await Promise.all([rssKiB(pid), fdCount(pid)]);
      const w = seen.get(pid) ?? seen.set(pid, { role, peakRss: 0, lastRss: 0, peakFds: 0, lastFds: 0, alive: true }).get(pid)!;
      if (r === null || f === null) {
        w.alive = false;
        gone = true;
        continue;
      }
      w.alive = true;
      w.lastRss = r;
      w.lastFds = f;
      w.peakRss = Math.max(w.peakRss, r);
      w.peakFds = Math.max(w.peakFds, f);
    }
    if (gone) roles = workersOf(s);
  };
  const loop = (async () => {
    while (!stopping) {
      const t = performance.now();
      await once();
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (performance.now() - t))));
    }
    await once(); // the end of the run
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      return [...seen].map(([pid, w]) => ({
        pid,
        role: w.role,
        idleRss: idle.rss.get(pid) ?? null,
        peakRss: w.peakRss,
        lastRss: w.lastRss,
        idleFds: idle.fds.get(pid) ?? null,
        peakFds: w.peakFds,
        lastFds: w.lastFds,
        alive: w.alive,
      }));
    },
  };
}

// ------------------------------------------------------------------ descriptors

/** RLIMIT_NOFILE of a process (`self` or a pid), from /proc/PID/limits; null without it. */
export function nofile(pid: number | 'self' = 'self'): { soft: number; hard: number } | null {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const m = line && /(\d+|unlimited)\s+(\d+|unlimited)/.exec(line.slice('Max open files'.length));
    if (!m) return null;
    const n = (x: string) => (x === 'unlimited' ? Infinity : Number(x));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return null;
  }
}

const RERUN = 'DROVER_BENCH_HOSTILE_PRLIMIT';

/**
 * Makes sure this process (and so the attacker and the servers, which inherit
 * it) may open `need` descriptors. Node raises its soft limit to the hard one
 * at startup, so only the hard limit can be short: then this benchmark runs
 * itself again under `prlimit --nofile=need:need` (which needs the right to
 * raise a hard limit: root, or CAP_SYS_RESOURCE) and exits with its status.
 * Returns a line for the report.
 */
export function ensureNofile(need: number, fail: (msg: string) => never): string {
  const lim = nofile();
  if (lim === null) return `descriptor limit: unknown (no /proc); ${need} needed`;
  if (lim.soft >= need) {
    return `descriptor limit (RLIMIT_NOFILE, inherited by the attacker and the servers): ${lim.soft}${process.env[RERUN] ? ' (set by prlimit)' : ''}; ${need} needed`;
  }
  if (process.env[RERUN]) fail(`prlimit did not raise the descriptor limit (${lim.soft} < ${need})`);
  process.stderr.write(`[bench:hostile] descriptor limit ${lim.soft} (hard ${lim.hard}) < ${need} needed: running again under prlimit --nofile=${need}:${need}` +
    ` (raising a hard limit takes root or CAP_SYS_RESOURCE; otherwise raise it yourself, or run fewer attackers)\n`);
  const r = spawnSync('prlimit', [`--nofile=${need}:${need}`, '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [RERUN]: '1' },
  });
  if (r.error) fail(`the descriptor limit is ${lim.soft} (hard ${lim.hard}), ${need} are needed, and prlimit could not be run (${r.error.message})`);
  process.exit(r.status ?? 1);
}
