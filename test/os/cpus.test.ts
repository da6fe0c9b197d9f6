// The default worker count under a CPU quota: a fake cgroup tree in a temp
// directory stands in for /sys/fs/cgroup and /proc/self/cgroup.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { cpuCount, cpuQuota } from '../../src/os/node/cpus.js';
import { isPlumbing, resolveConfig } from '../../src/runtime/config/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A cgroup root with `files` (paths relative to it) and a membership file saying `membership`. */
function tree(membership: string, files: Record<string, string>) {
  const root = mkdtempSync(join(tmpdir(), 'drover-cgroup-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, 'fs', path)), { recursive: true });
    writeFileSync(join(root, 'fs', path), text);
  }
  writeFileSync(join(root, 'self-cgroup'), membership);
  return { root: join(root, 'fs'), procCgroup: join(root, 'self-cgroup'), env: {} };
}

const V2 = '0::/kubepods/pod1/ctr\n';
const V1 = '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n';

describe('cgroup v2', () => {
  test('a quota of 2 CPUs on an 8-CPU host: 2', () => {
    const t = tree(V2, { 'kubepods/pod1/ctr/cpu.max': '200000 100000\n' });
    expect(cpuQuota(t)).toBe(2);
    expect(cpuCount({ ...t, cpus: 8 })).toBe(2);
  });

  test('"max": no quota, the CPUs', () => {
    const t = tree(V2, { 'kubepods/pod1/ctr/cpu.max': 'max 100000\n' });
    expect(cpuQuota(t)).toBeNull();
    expect(cpuCount({ ...t, cpus: 8 })).toBe(8);
  });

  test('a fraction rounds up: 1.5 CPUs is 2 workers; 0.1 is 1', () => {
    expect(cpuCount({ ...tree(V2, { 'kubepods/pod1/ctr/cpu.max': '150000 100000' }), cpus: 8 })).toBe(2);
    expect(cpuCount({ ...tree(V2, { 'kubepods/pod1/ctr/cpu.max': '10000 100000' }), cpus: 8 })).toBe(1);
    // A period other than the usual one.
    expect(cpuCount({ ...tree(V2, { 'kubepods/pod1/ctr/cpu.max': '300000 50000' }), cpus: 8 })).toBe(6);
  });

  test('a quota above the CPUs: the CPUs', () => {
    expect(cpuCount({ ...tree(V2, { 'kubepods/pod1/ctr/cpu.max': '1600000 100000' }), cpus: 4 })).toBe(4);
  });

  test('nested: the smallest limit on the way to the root binds, wherever it is set', () => {
    const t = tree(V2, {
      'kubepods/cpu.max': '400000 100000',
      'kubepods/pod1/cpu.max': '300000 100000', // the pod's limit
      'kubepods/pod1/ctr/cpu.max': 'max 100000', // the container sets none of its own
    });
    expect(cpuCount({ ...t, cpus: 16 })).toBe(3);
    const deeper = tree(V2, { 'kubepods/cpu.max': '100000 100000', 'kubepods/pod1/ctr/cpu.max': '400000 100000' });
    expect(cpuCount({ ...deeper, cpus: 16 })).toBe(1);
  });

  test('a container with its own cgroup namespace ("0::/") reads the root', () => {
    expect(cpuCount({ ...tree('0::/\n', { 'cpu.max': '250000 100000' }), cpus: 16 })).toBe(3);
  });

  test('a path that is not there (the host\'s name for our cgroup, mounted at the root): the root\'s limit', () => {
    expect(cpuCount({ ...tree('0::/system.slice/docker-abc.scope\n', { 'cpu.max': '200000 100000' }), cpus: 16 })).toBe(2);
  });

  test('a path with colons in it is read whole', () => {
    expect(cpuCount({ ...tree('0::/a:b/c\n', { 'a:b/c/cpu.max': '100000 100000' }), cpus: 16 })).toBe(1);
  });
});

describe('cgroup v1', () => {
  test('cfs_quota_us over cfs_period_us, under the controller list\'s mount', () => {
    const t = tree(V1, { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '150000\n', 'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n' });
    expect(cpuQuota(t)).toBe(1.5);
    expect(cpuCount({ ...t, cpus: 8 })).toBe(2);
  });

  test('-1: no quota', () => {
    const t = tree(V1, { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '-1\n', 'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n' });
    expect(cpuQuota(t)).toBeNull();
    expect(cpuCount({ ...t, cpus: 8 })).toBe(8);
  });

  test('the cpu link when the list has no directory of its name; a container\'s own cgroup at the mount root', () => {
    const t = tree('3:cpu:/docker/abc\n', { 'cpu/cpu.cfs_quota_us': '200000', 'cpu/cpu.cfs_period_us': '100000' });
    expect(cpuCount({ ...t, cpus: 8 })).toBe(2);
  });

  test('a hybrid host (v2 line without cpu.max, v1 cpu controller): v1 is read', () => {
    const t = tree(`0::/\n${V1}`, { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '300000', 'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000' });
    expect(cpuCount({ ...t, cpus: 8 })).toBe(3);
  });

  test('a line without the cpu controller is not read for it', () => {
    const t = tree('4:cpuacct:/x\n', { 'cpuacct/x/cpu.cfs_quota_us': '100000', 'cpuacct/x/cpu.cfs_period_us': '100000' });
    expect(cpuQuota(t)).toBeNull();
  });
});

describe('anything odd falls back to the CPUs', () => {
  test.each([
    ['cpu.max garbage', V2, { 'kubepods/pod1/ctr/cpu.max': 'lots\n' }],
    ['cpu.max with a zero quota', V2, { 'kubepods/pod1/ctr/cpu.max': '0 100000' }],
    ['cpu.max with a zero period', V2, { 'kubepods/pod1/ctr/cpu.max': '100000 0' }],
    ['cpu.max with a negative quota', V2, { 'kubepods/pod1/ctr/cpu.max': '-5 100000' }],
    ['cpu.max with three fields', V2, { 'kubepods/pod1/ctr/cpu.max': '1 2 3' }],
    ['cpu.max empty', V2, { 'kubepods/pod1/ctr/cpu.max': '' }],
    ['v1 quota without a period', V1, { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '100000' }],
    ['v1 period garbage', V1, { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '100000', 'cpu,cpuacct/docker/abc/cpu.cfs_period_us': 'x' }],
    ['a membership file of garbage', 'hello\nworld\n', { 'cpu.max': '100000 100000' }],
    ['an empty membership file', '', { 'cpu.max': '100000 100000' }],
  ])('%s', (_what, membership, files) => {
    expect(cpuCount({ ...tree(membership, files), cpus: 6 })).toBe(6);
  });

  test('no cgroup filesystem, no membership file', () => {
    expect(cpuCount({ root: '/nonexistent/cgroup', procCgroup: '/nonexistent/cgroup-self', cpus: 3, env: {} })).toBe(3);
  });

  test('a host that reports nonsense: at least 1', () => {
    const none = { root: '/nonexistent', procCgroup: '/nonexistent', env: {} };
    expect(cpuCount({ ...none, cpus: 0 })).toBe(1);
    expect(cpuCount({ ...none, cpus: Number.NaN })).toBe(1);
  });
});

test('DROVER_CGROUP_ROOT and DROVER_PROC_CGROUP point it elsewhere, and the config scan lets them pass', () => {
  const t = tree(V2, { 'kubepods/pod1/ctr/cpu.max': '100000 100000' });
  expect(cpuCount({ cpus: 8, env: { DROVER_CGROUP_ROOT: t.root, DROVER_PROC_CGROUP: t.procCgroup } })).toBe(1);
  // Options win over the variables.
  expect(cpuCount({ cpus: 8, root: '/nonexistent', env: { DROVER_CGROUP_ROOT: t.root, DROVER_PROC_CGROUP: t.procCgroup } })).toBe(8);
  expect(isPlumbing('DROVER_CGROUP_ROOT') && isPlumbing('DROVER_PROC_CGROUP')).toBe(true);
  const c = resolveConfig({ argv: ['app.js'], env: { DROVER_CGROUP_ROOT: t.root, DROVER_PROC_CGROUP: t.procCgroup }, file: null, cpus: 1, cwd: '/srv' });
  expect(c.workers).toBe(1);
});

test('this machine: between 1 and its CPUs', () => {
  const n = cpuCount();
  expect(n).toBeGreaterThanOrEqual(1);
  expect(n).toBeLessThanOrEqual(Math.max(1, availableParallelism()));
});

test('drover --check-config counts the quota: 1.5 CPUs on this machine is 2 workers, 0.5 is 1, and WEB_CONCURRENCY wins over both', () => {
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
  const app = join(import.meta.dirname, '..', 'apps', 'basic.js');
  const check = (max: string, more: Record<string, string> = {}) => {
    const t = tree('0::/\n', { 'cpu.max': max });
    const r = spawnSync(process.execPath, [bin, app, '--check-config'], { encoding: 'utf8', env: { ...process.env, DROVER_CGROUP_ROOT: t.root, DROVER_PROC_CGROUP: t.procCgroup, ...more } });
    expect(r.status, r.stderr).toBe(0);
    return /(\d+) worker\(s\)/.exec(r.stdout)?.[1];
  };
  expect(check('50000 100000')).toBe('1');
  expect(check('150000 100000')).toBe(String(Math.min(2, availableParallelism())));
  expect(check('50000 100000', { WEB_CONCURRENCY: '3' })).toBe('3');
});
