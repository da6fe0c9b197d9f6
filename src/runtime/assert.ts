// Assertions as a layer (issue 15, item 4): assert() and AssertionError are
// src/os/assert.ts, shared with the simulated kernel; here, what the
// runtime's catches need — the errno of an error, catches that name the
// errnos they expect, and catch-alls that let an AssertionError through.

import { AssertionError } from '../os/assert.js';

export { assert, AssertionError, ASSERTION_ERROR } from '../os/assert.js';

/**
 * The errno of a system error ('ENOENT', 'ESRCH', ...: an OsError, or a
 * node:fs error carrying its code), else undefined. Node's own
 * ERR_SOMETHING codes are programming errors, not errnos.
 */
export function errnoOf(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/**
 * A catch's filter: returns the errno when `e` is a system error with one of
 * `codes` (any errno when none are given), and rethrows anything else (a
 * bug, an AssertionError, an errno nobody expected here).
 *
 *   try { os.kill(pid, 'SIGTERM'); } catch (e) { expectCodes(e, 'ESRCH'); }
 */
export function expectCodes(e: unknown, ...codes: string[]): string {
  const code = errnoOf(e);
  if (code === undefined || (codes.length > 0 && !codes.includes(code))) throw e;
  return code;
}

/** fn(), or undefined when it throws a system error with one of `codes`; anything else propagates. */
export function ignoring<T>(codes: readonly string[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    expectCodes(e, ...codes);
    return undefined;
  }
}

/** For catch-alls that turn an error into a reply or a log line: an AssertionError goes on up. */
export function rethrowAssertion(e: unknown): void {
  if (e instanceof AssertionError) throw e;
}

/**
 * The same for a catch-all at the top of a task nobody awaits (`void pump()`):
 * rethrown there, the error would be a rejected promise that escapes the
 * simulator to its host. An AssertionError is thrown again from a timer of
 * the process's own event loop instead, where it crashes the process as any
 * uncaught error does, on both Os; answers whether it was one (the caller
 * then stops).
 */
export function crashOnAssertion(os: { timer(ms: number, fn: () => void): unknown }, e: unknown): boolean {
  if (!(e instanceof AssertionError)) return false;
  os.timer(0, () => {
    throw e;
  });
  return true;
}
