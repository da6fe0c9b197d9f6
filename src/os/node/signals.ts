// One handler per signal, over process.on. SIGCHLD never reaches process.on:
// libuv owns the real SIGCHLD to reap children, so the handler is called from
// the child table when a child's exit is queued.

import { OsError, type Signal } from '../types.js';
import { dropEarlyUsr1Guard, takeEarlySignals } from './early.js';

// Node opens the inspector on an unhandled SIGUSR1; the Os contract says
// USR1's default is "ignore", so "no handler" means this no-op.
const noop = (): void => {};

export class SignalTable {
  readonly #installed = new Map<Signal, { fn: () => void; ignored: boolean }>();
  #chld: (() => void) | null = null;

  /** Install `fn`, or restore the default (null). Replaces the previous handler. */
  set(sig: Signal, fn: (() => void) | null): void {
    if (sig === 'SIGKILL') throw new OsError('EINVAL', 'SIGKILL cannot be caught or ignored');
    if (sig === 'SIGCHLD') {
      this.#chld = fn;
      return;
    }
    const prev = this.#installed.get(sig);
    this.#installed.delete(sig);
    // Dropped first when it was the no-op of "no handler" (USR1): a signal
    // sent while ignored is not the new handler's, as on the kernel.
    if (prev?.ignored) process.removeListener(sig, prev.fn);
    const next = fn ?? (sig === 'SIGUSR1' ? noop : null);
    if (next) {
      // A fresh wrapper each time, so removing it never removes a listener
      // that someone else registered with the same function.
      const wrapper = (): void => next();
      process.on(sig, wrapper);
      this.#installed.set(sig, { fn: wrapper, ignored: fn === null });
    }
    // A handler replaced after its successor is in: with no listener for a
    // moment Node closes the signal's handle, and a signal caught but not yet
    // handed to JS is lost (a TERM while drover loads was).
    if (prev && !prev.ignored) process.removeListener(sig, prev.fn);
    if (sig === 'SIGUSR1') dropEarlyUsr1Guard();
    // What came before drover had loaded (bin/drover.js queued it) is the new handler's.
    for (let n = takeEarlySignals(sig); n > 0 && next; n--) next();
  }

  /** Called after a child's exit was queued. */
  childExited(): void {
    this.#chld?.();
  }
}
