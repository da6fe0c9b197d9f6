// Processes of bench/companions. Every process this benchmark starts (drover,
// the peers, and through drover every companion) carries MARK_VAR=MARK in its
// environment; drover and the peers are started in their own process groups.
// At the end, and on Ctrl-C, each group is killed, and /proc is searched for
// anything still carrying the marker: a companion that outlived its manager
// would be found there, reported, and killed by its pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Not DROVER_*: drover reads every DROVER_ variable as a setting. */
export const MARK_VAR = 'BENCH_COMPANIONS_RUN';
export const MARK = `${process.pid}-${Date.now()}`;

export interface Proc {
  readonly label: string;
  readonly pid: number;
  /** Everything it wrote to stdout and stderr so far. */
  log(): string;
  /** Resolves when the log has a match of `re` after `from` characters. */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /**
   * TERM to the leader; KILL to the whole group after graceMs (or at once if
   * the leader exited); waits until the group is empty. Resolves with the ms
   * from TERM to the leader's exit, null if it had to be killed.
   */
  stop(graceMs: number): Promise<number | null>;
}

const live = new Set<number>(); // process groups not yet stopped

/** Last resort: whatever happens to this process, nothing it started outlives it. */
export function killAllSync(): void {
  for (const pgid of live) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  live.clear();
  for (const p of marked()) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}

export function startProc(label: string, argv: readonly string[], cwd: string): Proc {
  const proc: ChildProcess = spawn(process.execPath, argv, {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [MARK_VAR]: MARK },
  });
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`cannot start ${label}`);
  live.add(pid);
  let text = '';
  let done = false;
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    }));
  return {
    label,
    pid,
    log: () => text,
    async waitFor(re, timeoutMs = 30_000, from = 0) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const m = text.slice(from).match(re);
        if (m) return m;
        if (done) throw new Error(`${label} exited while we waited for ${re}; its log:\n${text}`);
        if (Date.now() > end) throw new Error(`${label}: timed out waiting for ${re}; its log:\n${text}`);
        await sleep(20);
      }
    },
    exited,
    async stop(graceMs) {
      if (!live.has(pid)) return null;
      const t0 = performance.now();
      let took: number | null = null;
      try {
        process.kill(pid, 'SIGTERM');
        await Promise.race([exited.then(() => (took = performance.now() - t0)), sleep(graceMs)]);
      } catch {
        // the leader is gone; its group may not be
      }
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // the group is empty
      }
      await exited;
      const end = Date.now() + 5000;
      while (groupMembers(pid).length > 0 && Date.now() < end) await sleep(50);
      live.delete(pid);
      const left = groupMembers(pid);
      if (left.length > 0) throw new Error(`${label}: process(es) ${left.join(', ')} of group ${pid} still running after SIGKILL`);
      return took;
    },
  };
}

/** Fields of /proc/PID/stat after "(comm) ": state ppid pgrp session ... utime(11) stime(12). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

function pids(): number[] {
  try {
    return readdirSync('/proc').map(Number).filter((n) => Number.isInteger(n));
  } catch {
    return [];
  }
}

/** Live (non-zombie) processes of a process group. */
export function groupMembers(pgid: number): number[] {
  return pids().filter((pid) => {
    const f = statFields(pid);
    return f !== null && f[0] !== 'Z' && Number(f[2]) === pgid;
  });
}

/** Whether a process with this pid exists at all (a zombie counts: it has not been reaped). */
export function exists(pid: number): boolean {
  return statFields(pid) !== null;
}

const CLK_TCK = 100; // USER_HZ, what /proc counts utime and stime in on every Linux

/** CPU time (user + system, ms) one process has used so far; null without /proc. */
export function cpuMs(pid: number): number | null {
  const f = statFields(pid);
  return f === null ? null : ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** Live processes (not zombies) whose environment carries this run's marker. */
export function marked(): { pid: number; cmd: string }[] {
  const needle = `${MARK_VAR}=${MARK}`;
  const out: { pid: number; cmd: string }[] = [];
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(needle)) continue;
      if (statFields(pid)?.[0] === 'Z') continue;
      out.push({ pid, cmd: readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim().slice(0, 120) });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
