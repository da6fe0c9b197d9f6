// Mapping Node/libuv failures onto the Errno set of the Os interface.

import { getSystemErrorName } from 'node:util';
import { OsError, type Errno } from '../types.js';

const KNOWN = new Set<string>([
  'ESRCH', 'ECHILD', 'EINVAL', 'EPERM', 'ENOENT', 'EEXIST', 'EADDRINUSE', 'ECONNREFUSED',
  'ECONNRESET', 'EPIPE', 'ENAMETOOLONG', 'ENOTSOCK', 'ENOTCONN', 'EMFILE', 'ENFILE',
]);

/** The errno name of a libuv status (a negative number), e.g. -98 → 'EADDRINUSE'. */
export function uvName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return `errno ${status}`;
  }
}

export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * An Errno for a system error name. EACCES becomes EPERM (the interface has
 * one "not allowed"); anything else outside the set becomes EINVAL, and the
 * message keeps the real name.
 */
export function toErrno(name: string | undefined): Errno {
  if (name !== undefined && KNOWN.has(name)) return name as Errno;
  if (name === 'EACCES') return 'EPERM';
  return 'EINVAL';
}

export function osError(name: string | undefined, message: string): OsError {
  const code = toErrno(name);
  return new OsError(code, code === name || name === undefined ? message : `${message} (${name})`);
}
