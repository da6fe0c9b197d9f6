// A real Os for one test file, and cleanup of every process a test starts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeOs } from '../../src/os/node/index.js';
import type { Child, Os, SpawnSpec } from '../../src/os/types.js';
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

export { inbox, readAll, reap, until } from '../support/os.js';

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
