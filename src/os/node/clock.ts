// Time. hrtime is CLOCK_MONOTONIC on Linux, so `now()` values from different
// processes on the machine compare (the Os contract needs that).

import type { Timer } from '../types.js';

// setTimeout turns anything longer into 1 ms (with a warning); "forever"
// timers are common, so longer waits are chained.
const MAX_TIMEOUT = 2 ** 31 - 1;

export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => timer(ms, resolve));
}

export function timer(ms: number, fn: () => void): Timer {
  let t: NodeJS.Timeout;
  let refed = true;
  const arm = (left: number): void => {
    t = left > MAX_TIMEOUT ? setTimeout(() => arm(left - MAX_TIMEOUT), MAX_TIMEOUT) : setTimeout(fn, left);
    if (!refed) t.unref();
  };
  arm(ms > 0 ? ms : 0);
  return {
    cancel: () => clearTimeout(t),
    unref() {
      refed = false;
      t.unref();
      return this;
    },
  };
}

/** Spin on the monotonic clock: the point is to hold this event loop. */
export function burn(ms: number): void {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < end) {
    // busy
  }
}
