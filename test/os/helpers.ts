// A real Os for one test file, and cleanup of every process a test starts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeOs } from '../../src/os/node/index.js';
import type { Channel, Child, Exited, Os, SpawnSpec, Stream } from '../../src/os/types.js';
import { registry } from './programs.js';

export interface Harness {
  readonly os: Os;
  /** Spawns in a new process group, so cleanup reaches grandchildren too. */
  spawn(spec: SpawnSpec): Child;
  tmp(): string;
  /** SIGKILLs every group started, collects the children, removes temp dirs. */
  cleanup(): Promise<void>;
}

export function harness(): Harness {
  const os = createNodeOs({ programs: [registry] });
  const groups: number[] = [];
  const dirs: string[] = [];
  return {
    os,
    spawn(spec) {
      const c = os.spawn({ ...spec, newGroup: true });
      groups.push(c.pid);
      return c;
    },
    tmp() {
      const d = mkdtempSync(join(tmpdir(), 'drover-'));
      dirs.push(d);
      return d;
    },
    async cleanup() {
      for (const g of groups.splice(0)) {
        try {
          process.kill(-g, 'SIGKILL');
        } catch {
          // the group is gone
        }
      }
      const end = os.now() + 5000;
      for (;;) {
        try {
          while (os.waitpid(-1) !== null);
        } catch {
          break; // ECHILD: all collected
        }
        if (os.now() > end) break;
        await os.sleep(10);
      }
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

export async function until(os: Os, cond: () => boolean, timeout = 5000): Promise<boolean> {
  const end = os.now() + timeout;
  while (!cond()) {
    if (os.now() >= end) return false;
    await os.sleep(5);
  }
  return true;
}

export async function reap(os: Os, pid: number, timeout = 10_000): Promise<Exited> {
  let got: Exited | null = null;
  if (!(await until(os, () => (got = os.waitpid(pid)) !== null, timeout))) throw new Error(`child ${pid} did not exit within ${timeout} ms`);
  return got!;
}

/** Messages from a channel, awaited one at a time. */
export function inbox(os: Os, ch: Channel): (timeout?: number) => Promise<unknown> {
  const queue: unknown[] = [];
  ch.onMessage((m) => queue.push(m));
  return async (timeout = 10_000) => {
    if (!(await until(os, () => queue.length > 0, timeout))) throw new Error(`no message within ${timeout} ms`);
    return queue.shift();
  };
}

export function readAll(s: Stream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

/** Running (not a zombie, not gone), from /proc. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

export async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

export function thrown(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected a throw');
}
