// A parent-death signal without prctl(PR_SET_PDEATHSIG). Two ways to notice:
// - the IPC channel's 'disconnect', a few ms after the parent dies;
// - a ppid poll every 100 ms, for processes without a channel and as a
//   backstop.
// A disconnect alone is not proof: the parent may just have closed the
// channel. The kernel closes a dying process's fds before it re-parents its
// children, so after a disconnect the ppid is polled fast for a while and
// the signal is sent only once the ppid has changed.

import type { Signal } from '../types.js';
import type { IpcChannel } from './channel.js';

const POLL_MS = 100;
const FAST_POLL_MS = 5;
const FAST_POLL_FOR_MS = 1_000;

export class ParentDeathWatch {
  readonly #parent: number;
  #sig: Signal | null = null;
  #poll: NodeJS.Timeout | null = null;
  #fast: NodeJS.Timeout | null = null;
  #fired = false;

  /** `parent`: the pid this process was started by (not necessarily today's ppid). */
  constructor(parent: number, channel: IpcChannel | null) {
    this.#parent = parent;
    channel?.onPeerGone(() => this.#pollFast());
  }

  arm(sig: Signal): void {
    this.#sig = sig;
    if (this.#fired || this.#poll) return;
    this.#poll = setInterval(() => this.#check(), POLL_MS).unref();
    // The parent may be gone already.
    setImmediate(() => this.#check());
  }

  #pollFast(): void {
    if (this.#fired || this.#fast) return;
    const until = process.hrtime.bigint() + BigInt(FAST_POLL_FOR_MS * 1e6);
    this.#fast = setInterval(() => {
      this.#check();
      if (this.#fast && process.hrtime.bigint() > until) {
        clearInterval(this.#fast);
        this.#fast = null;
      }
    }, FAST_POLL_MS).unref();
  }

  #check(): void {
    if (this.#fired || this.#sig === null || process.ppid === this.#parent) return;
    this.#fired = true;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#fast) clearInterval(this.#fast);
    // Through the kernel, so the program's handler runs or the default applies.
    process.kill(process.pid, this.#sig);
  }
}
