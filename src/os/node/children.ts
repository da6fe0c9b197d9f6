// waitpid over libuv. libuv reaps every child itself, so the kernel's zombie
// is gone by the time JS hears of the exit; this table keeps one in its place
// until waitpid collects it. Until then the pid stays "ours": kill on it must
// not reach the kernel, where the number may already belong to someone else.

import { constants } from 'node:os';
import { OsError, SIGNALS, type Exited, type Signal } from '../types.js';

export class ChildTable {
  readonly #running = new Set<number>();
  readonly #zombies: Exited[] = [];

  started(pid: number): void {
    this.#running.add(pid);
  }

  exited(pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    this.#running.delete(pid);
    this.#zombies.push(toExited(pid, code, signal));
  }

  isZombie(pid: number): boolean {
    return this.#zombies.some((e) => e.pid === pid);
  }

  waitpid(pid: number): Exited | null {
    if (pid === 0 || pid < -1) throw new OsError('EINVAL', `waitpid(${pid}): process groups are not supported; use -1 or a pid`);
    const i = pid === -1 ? (this.#zombies.length > 0 ? 0 : -1) : this.#zombies.findIndex((e) => e.pid === pid);
    if (i >= 0) return this.#zombies.splice(i, 1)[0] ?? null;
    if (pid === -1 ? this.#running.size > 0 : this.#running.has(pid)) return null;
    throw new OsError('ECHILD', pid === -1 ? 'no child processes' : `pid ${pid} is not a child of this process (or was already collected)`);
  }
}

/**
 * Exited.signal is typed as drover's Signal set; a child killed by any other
 * signal (SIGSEGV, SIGPIPE...) is reported the way a shell does: code 128+n.
 */
function toExited(pid: number, code: number | null, signal: NodeJS.Signals | null): Exited {
  if (signal === null) return { pid, code: code ?? 0, signal: null };
  if ((SIGNALS as readonly string[]).includes(signal)) return { pid, code: null, signal: signal as Signal };
  return { pid, code: 128 + (constants.signals[signal] ?? 0), signal: null };
}
