// Processes of bench/companions. Every process this benchmark starts (drover,
// the peers, and through drover every companion) carries MARK_VAR=MARK in its
// environment; drover and the peers are started in their own process groups.
// At the end, and on Ctrl-C, each group is killed, and /proc is searched for
// anything still carrying the marker: a companion that outlived its manager
// would be found there, reported, and killed by its pid.
import { readFileSync } from 'node:fs';
import { atLastResort, CLK_TCK, pids, sleep, startGroup, statFields, stopGroup } from '../lib/procs.js';

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
  /** stopGroup() (bench/lib/procs.ts): the ms from TERM to the leader's exit, null if it had to be killed. */
  stop(graceMs: number): Promise<number | null>;
}

// Last resort, after the groups are killed: whatever happens to this
// process, no companion that left drover's group outlives it either.
atLastResort(() => {
  for (const p of marked()) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

export function startProc(label: string, argv: readonly string[], cwd: string): Proc {
  const { proc, pid } = startGroup(label, argv, cwd, { ...process.env, [MARK_VAR]: MARK });
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
    stop: (graceMs) => stopGroup(label, pid, exited, graceMs),
  };
}

/** Whether a process with this pid exists at all (a zombie counts: it has not been reaped). */
export function exists(pid: number): boolean {
  return statFields(pid) !== null;
}

/** CPU time (user + system, ms) one process has used so far; null without /proc. */
export function cpuMs(pid: number): number | null {
  const f = statFields(pid);
  return f === null ? null : ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** Live processes (not zombies) whose environment carries this run's marker. */
export function marked(): { pid: number; cmd: string }[] {
  const needle = `${MARK_VAR}=${MARK}`;
  const out: { pid: number; cmd: string }[] = [];
  for (const pid of pids() ?? []) {
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
