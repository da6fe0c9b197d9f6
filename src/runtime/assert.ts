// Assertions as a layer (issue item 4). An invariant that a comment states
// is asserted where it must hold; a failed assertion is a bug, never a
// runtime condition: it throws AssertionError, which no catch in drover
// handles (catches name the errors they expect, see expectCodes), so the
// process stops rather than run on with state it cannot trust.
//
// In the simulator every process runs in one host process: a failure is
// also told to probe.assertion before the throw, so a chaos run reports it
// as the invariant `assertion` with its seed, even when some catch-all on
// the way swallows the throw.
//
// Cost when the condition holds: one test. The message is a string literal
// or a function called only on failure, so no string is built on the happy
// path; on hot paths (per request) use a literal, since a closure that
// captures values may be allocated at each call.

import { probe } from './probe.js';

/** The `name` of drover's AssertionError: distinct from node:assert's, so a crash line tells them apart. */
export const ASSERTION_ERROR = 'DroverAssertionError';

/** A broken invariant. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = ASSERTION_ERROR;
  }
}

export function assert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) fail(message);
}

/** Out of line: keeps assert() small enough to inline everywhere. */
function fail(message: string | (() => string)): never {
  const text = typeof message === 'string' ? message : message();
  probe.assertion?.(text);
  throw new AssertionError(text);
}

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
