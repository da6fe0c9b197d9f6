// Process groups for the benchmarks that start real processes (bench/http,
// bench/companions). Each process they start leads its own process group, so
// that everything it forks in turn (drover's workers, companions) can be
// killed as one: at stop, and as a last resort when this process exits or
// gets a signal. Linux; /proc is read where it is there.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const live = new Set<number>(); // process groups not yet stopped
const lastResorts: (() => void)[] = [];

/** Runs `fn` after the groups are killed when this process exits or gets a signal (bench/companions sweeps its marker). */
export function atLastResort(fn: () => void): void {
  lastResorts.push(fn);
}

/** Last resort: whatever happens to this process, no group it started outlives it. */
function killAllSync(): void {
  for (const pgid of live) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  live.clear();
  for (const fn of lastResorts) fn();
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}

/** `node ...argv` as the leader of a new process group, stdout and stderr piped; the group is killed at the latest when this process exits. */
export function startGroup(label: string, argv: readonly string[], cwd: string, env?: NodeJS.ProcessEnv): { proc: ChildProcess; pid: number } {
  const proc = spawn(process.execPath, argv, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`cannot start ${label}`);
  live.add(pid);
  return { proc, pid };
}

/**
 * TERM to the leader; KILL to the whole group after graceMs (or at once if
 * the leader is gone); waits until the group is empty, and throws if it is
 * not within 5 s: a process that survives its group's KILL is a finding.
 * `exited` is the leader's exit. Resolves with the ms from TERM to the
 * leader's exit, null if it had to be killed (or was stopped already).
 */
export async function stopGroup(label: string, pid: number, exited: Promise<unknown>, graceMs: number): Promise<number | null> {
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
}

export const CLK_TCK = 100; // USER_HZ: what /proc/PID/stat counts utime and stime in, on every Linux

/** The pids in /proc; null where there is no /proc. */
export function pids(): number[] | null {
  try {
    return readdirSync('/proc').map(Number).filter((n) => Number.isInteger(n));
  } catch {
    return null;
  }
}

/** Fields of /proc/PID/stat after "(comm) ": state ppid pgrp session ... utime(11) stime(12); null if it is gone. */
export function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Live (non-zombie) processes of a process group, from /proc. */
export function groupMembers(pgid: number): number[] {
  const all = pids();
  if (all === null) {
    // No /proc: ask the kernel whether the group has anyone left at all.
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  return all.filter((pid) => {
    const f = statFields(pid);
    return f !== null && f[0] !== 'Z' && Number(f[2]) === pgid;
  });
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

/**
 * waitFor of a started server: resolves once its log (`text()`) has `count`
 * matches of `re`; fails at once if it exited, and at the timeout.
 */
export function logWaiter(label: string, text: () => string, exited: () => boolean) {
  return async (re: RegExp, count = 1, timeoutMs = 30_000): Promise<void> => {
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
    const end = Date.now() + timeoutMs;
    for (;;) {
      if ((text().match(g)?.length ?? 0) >= count) return;
      if (exited()) throw new Error(`${label} exited while we waited for ${re}; its log:\n${text()}`);
      if (Date.now() > end) throw new Error(`${label}: timed out waiting for ${count} x ${re}; its log:\n${text()}`);
      await sleep(20);
    }
  };
}
