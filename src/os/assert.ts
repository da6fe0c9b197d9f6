// One assert helper for the runtime and the simulated kernel (issue 15,
// item 4): a failed assertion is a bug, never a runtime condition. It
// throws AssertionError, which no catch in drover handles (catches name the
// errors they expect), so the process stops rather than run on with state
// it cannot trust. In a simulated process that is a crash the chaos
// checker reports as the invariant `assertion`, with its seed; in the
// kernel's own code it ends the run, which reports it with its seed.
//
// Cost when the condition holds: one test. The message is a string literal
// or a function called only on failure, so no string is built on the happy
// path; on hot paths (per request, per kernel event) use a literal, since a
// closure that captures values may be allocated at each call.

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
  throw new AssertionError(text);
}

