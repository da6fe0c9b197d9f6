// Value readers, one per kind of setting. Each takes a raw value and whether
// it arrived as text (CLI, environment) or typed (a config file), and returns
// the value or the problem in words: what was expected, what was given.
// Callers prefix the problem with where it came from.

import type { Parsed } from './types.js';
import { closest, show, typeName } from './names.js';

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const bad = (...problems: string[]): Parsed<never> => ({ ok: false, problems });

/** "expected X, got Y", with the type named when a typed value has the wrong one. */
export function expected(what: string, raw: unknown, text: boolean, wrongType = false): Parsed<never> {
  const note = !text && wrongType ? ` (${typeName(raw)})` : '';
  return bad(`expected ${what}, got ${show(raw)}${note}`);
}

// Decimal digits only: Number() would also take '', ' 4', '0x10', '1e3' and 'Infinity'.
const INT_TEXT = /^\d+$/;
const DECIMAL_TEXT = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

export function wholeNumber(min: number): (raw: unknown, text: boolean) => Parsed<number> {
  const what = `a whole number >= ${min}`;
  return (raw, text) => {
    let n: number;
    if (text) {
      if (typeof raw !== 'string' || !INT_TEXT.test(raw)) return expected(what, raw, text);
      n = Number(raw);
    } else {
      if (typeof raw !== 'number') return expected(what, raw, text, true);
      n = raw;
    }
    if (!Number.isSafeInteger(n) || n < min) return expected(what, raw, text);
    return ok(n);
  };
}

/**
 * Node's timers hold at most 2^31-1 ms; a longer delay silently becomes 1 ms
 * (with a warning), which would turn a long timeout into an instant one.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Seconds in, whole milliseconds out. A positive value that would round to
 * 0 ms is refused rather than rounded: 0 means "disabled" for some settings,
 * and 0.0001 s surely did not mean that.
 */
export function duration(raw: unknown, text: boolean): Parsed<number> {
  const what = 'a number of seconds >= 0 (fractions allowed, e.g. 0.5)';
  let s: number;
  if (text) {
    if (typeof raw !== 'string') return expected(what, raw, text);
    if (!DECIMAL_TEXT.test(raw)) {
      // 1e-9, -0, +5: numbers >= 0 all the same, which "expected >= 0" alone did not explain.
      const n = Number(raw.trim());
      if (raw.trim() !== '' && Number.isFinite(n) && n >= 0) return bad(`expected ${what}, written as a plain decimal without sign or exponent, got ${show(raw)}`);
      return expected(what, raw, text);
    }
    s = Number(raw);
  } else {
    if (typeof raw !== 'number') return expected(what, raw, text, true);
    s = raw;
  }
  if (!Number.isFinite(s) || s < 0) return expected(what, raw, text);
  const ms = Math.round(s * 1000);
  if (s > 0 && ms === 0) return bad(`expected 0 or at least 0.001 seconds, got ${show(raw)}`);
  if (ms > MAX_DURATION_MS) return bad(`expected at most ${MAX_DURATION_MS / 1000} seconds (about 24.8 days, the longest timer Node keeps), got ${show(raw)}`);
  return ok(ms);
}

export function oneOf<T extends string>(values: readonly T[]): (raw: unknown, text: boolean) => Parsed<T> {
  const what = `one of ${values.join(', ')}`;
  return (raw, text) => {
    if (typeof raw !== 'string') return expected(what, raw, text, true);
    const v = raw.toLowerCase();
    if ((values as readonly string[]).includes(v)) return ok(v as T);
    const near = closest(v, values);
    const hint = near === null ? '' : `; did you mean "${near}"?`;
    return bad(`expected ${what}, got ${show(raw)}${hint}`);
  };
}

function pathProblem(raw: string): string | null {
  if (raw.includes('\0')) return `a path cannot contain a NUL byte, got ${show(raw)}`;
  return null;
}

/** A non-empty string (the app module). */
export function nonEmpty(what: string): (raw: unknown, text: boolean) => Parsed<string> {
  return (raw, text) => {
    if (typeof raw !== 'string') return expected(what, raw, text, true);
    if (raw === '') return expected(what, raw, text);
    const p = pathProblem(raw);
    return p === null ? ok(raw) : bad(p);
  };
}

/**
 * A file path, or off. Off is null in a file and the empty string in text
 * (`--pid ''`, `DROVER_ACCESS_LOG=`), so a higher-precedence source can
 * switch off what a lower one switched on. `dash` allows '-' (stderr).
 */
export function optionalPath(dash: boolean): (raw: unknown, text: boolean) => Parsed<string | null> {
  const what = dash ? '"-" (stderr), a file path, or "" or null (off)' : 'a file path, or "" or null (off)';
  return (raw, text) => {
    if (raw === null && !text) return ok(null);
    if (typeof raw !== 'string') return expected(what, raw, text, true);
    if (raw === '') return ok(null);
    if (raw === '-' && !dash) return bad(`expected a file path, got "-" (stderr is not a file here)`);
    const p = pathProblem(raw);
    return p === null ? ok(raw) : bad(p);
  };
}

/** '-' (stderr) or a file path; never off. */
export function logTarget(raw: unknown, text: boolean): Parsed<string> {
  const what = '"-" (stderr) or a file path';
  if (typeof raw !== 'string') return expected(what, raw, text, true);
  if (raw === '') return expected(what, raw, text);
  const p = pathProblem(raw);
  return p === null ? ok(raw) : bad(p);
}

/** A switch: true/false in a file; on/off, true/false, yes/no, 1/0 as text. */
export function onOff(raw: unknown, text: boolean): Parsed<boolean> {
  const what = text ? 'on or off (also true/false, yes/no, 1/0)' : 'true or false';
  if (!text) return typeof raw === 'boolean' ? ok(raw) : expected(what, raw, text, true);
  if (typeof raw !== 'string') return expected(what, raw, text);
  const v = raw.toLowerCase();
  if (v === 'on' || v === 'true' || v === 'yes' || v === '1') return ok(true);
  if (v === 'off' || v === 'false' || v === 'no' || v === '0') return ok(false);
  return expected(what, raw, text);
}

const SIZE_TEXT = /^(\d+)\s*([kmg]?)(?:i?b)?$/i;
const UNITS: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size in bytes: a whole number, or with a binary unit as text ('512K', '8M', '1GiB'). Bounded: each is memory drover holds. */
export function byteSize(min: number, max: number): (raw: unknown, text: boolean) => Parsed<number> {
  const what = `a size in bytes from ${min} to ${max} (a whole number, or with K, M or G: 1M = 1048576)`;
  return (raw, text) => {
    let n: number;
    if (typeof raw === 'number' && !text) n = raw;
    else if (typeof raw === 'string') {
      const m = SIZE_TEXT.exec(raw.trim());
      if (m === null) return expected(what, raw, text);
      n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
    } else return expected(what, raw, text, true);
    if (!Number.isSafeInteger(n) || n < min || n > max) return expected(what, raw, text);
    return ok(n);
  };
}
