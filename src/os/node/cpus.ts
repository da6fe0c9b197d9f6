// The CPUs drover may use: the default worker count. Node 20's
// availableParallelism() counts the CPUs this process may run on (affinity,
// so a cpuset is seen) but not a CFS quota: a container given 2 CPUs on a
// 64-CPU host would start 64 workers that share 2 CPUs of time. The quota is
// read the way the kernel publishes it:
//
//   /proc/self/cgroup   v2: "0::/path"; v1: "N:cpu,cpuacct:/path"
//   cgroup v2           ROOT/path/cpu.max: "max 100000" (none) or "200000 100000" (2 CPUs)
//   cgroup v1           ROOT/cpu,cpuacct/path/cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us
//
// A parent's limit binds its children, so the path and each ancestor up to
// the root are read and the smallest limit wins; a level that does not exist
// is skipped (a container without its own cgroup namespace sees its own
// cgroup mounted at the root while /proc/self/cgroup names the host's path,
// so the limit is found at the root). Anything unreadable or malformed is no
// limit: the count falls back to the CPUs, never fails.
//
// ROOT is /sys/fs/cgroup unless DROVER_CGROUP_ROOT names another directory,
// and DROVER_PROC_CGROUP may name a file to read instead of /proc/self/cgroup
// (for tests: a fake cgroup tree in a temp directory). Both are also options.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** The environment variables read here; config/env.ts lets them pass its check for unknown DROVER_* names. */
export const ENV_CGROUP_ROOT = 'DROVER_CGROUP_ROOT';
export const ENV_PROC_CGROUP = 'DROVER_PROC_CGROUP';

export interface CpuCountOptions {
  /** Where the cgroup filesystem is mounted. Default $DROVER_CGROUP_ROOT, else /sys/fs/cgroup. */
  readonly root?: string;
  /** The membership file. Default $DROVER_PROC_CGROUP, else /proc/self/cgroup. */
  readonly procCgroup?: string;
  /** The CPUs the process may run on. Default availableParallelism(). */
  readonly cpus?: number;
  /** Where the two variables are read. Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The smaller of the CPUs and the cgroup CPU quota, rounded up, at least 1. */
export function cpuCount(opts: CpuCountOptions = {}): number {
  const cpus = opts.cpus ?? availableParallelism();
  const quota = cpuQuota(opts);
  const n = quota === null ? cpus : Math.min(cpus, quota);
  return Number.isFinite(n) ? Math.max(1, Math.ceil(n)) : 1;
}

/** The CFS quota in CPUs (1.5 for "150000 100000"), the smallest on the way to the root; null when there is none. */
export function cpuQuota(opts: CpuCountOptions = {}): number | null {
  const env = opts.env ?? process.env;
  const root = opts.root ?? nonEmpty(env[ENV_CGROUP_ROOT]) ?? '/sys/fs/cgroup';
  const membership = read(opts.procCgroup ?? nonEmpty(env[ENV_PROC_CGROUP]) ?? '/proc/self/cgroup');
  if (membership === null) return null;
  let least: number | null = null;
  const consider = (q: number | null): void => {
    if (q !== null && (least === null || q < least)) least = q;
  };
  for (const line of membership.split('\n')) {
    // hierarchy-ID:controller-list:path; the path may itself hold colons.
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
    if (m === null) continue;
    const [, id, controllers, path] = m as unknown as [string, string, string, string];
    if (id === '0' && controllers === '') {
      for (const dir of ancestors(root, path)) consider(v2Quota(dir));
    } else if (controllers.split(',').includes('cpu')) {
      // The hierarchy is mounted under the name of its controller list (cpu,cpuacct), with a cpu link beside it.
      for (const mount of [...new Set([controllers, 'cpu'])]) {
        for (const dir of ancestors(join(root, mount), path)) consider(v1Quota(dir));
      }
    }
  }
  return least;
}

/** base/path, then each parent directory of it down to base itself. */
function ancestors(base: string, path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.' && p !== '..');
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push(join(base, ...parts.slice(0, i)));
  return out;
}

/** cpu.max: "$MAX $PERIOD", MAX "max" for none; the period may be left out (100000). */
function v2Quota(dir: string): number | null {
  const text = read(join(dir, 'cpu.max'));
  if (text === null) return null;
  const f = text.trim().split(/\s+/);
  if (f.length > 2 || f[0] === 'max') return null;
  return ratio(f[0], f[1] ?? '100000');
}

/** cpu.cfs_quota_us over cpu.cfs_period_us; a quota of -1 is none. */
function v1Quota(dir: string): number | null {
  const quota = read(join(dir, 'cpu.cfs_quota_us'));
  if (quota === null) return null;
  return ratio(quota.trim(), read(join(dir, 'cpu.cfs_period_us'))?.trim());
}

/** A positive whole number of µs over another; anything else (-1, garbage) is no limit. */
function ratio(quota: string | undefined, period: string | undefined): number | null {
  if (quota === undefined || period === undefined || !/^\d+$/.test(quota) || !/^\d+$/.test(period)) return null;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : null;
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
