// Companion config: one table of fields (FIELDS) drives the per-companion
// parse, the global `companion_*` defaults (settings.ts turns every field
// marked `global` into a setting), the unknown-key check and the hash.
//
// Units: input durations are seconds like every drover setting; the parsed
// CompanionConfig holds milliseconds. Relative paths (cwd, stdout, stderr,
// the module path) are kept as given: the manager reads them against its own
// working directory, like every other path in drover's config.
//
// parseCompanions never throws: every problem of every companion is
// collected, each naming the companion, the field, the source, what was
// given and the fix. A non-empty problem list refuses the whole list (a
// reread applies all-or-nothing).

import { createHash } from 'node:crypto';
import { isAbsolute, join, normalize } from 'node:path';
import { SIGNALS, UNIX_PATH_MAX, type Signal } from '../../os/types.js';
import { closest, show, snake, typeName } from '../config/names.js';
import { runtimeDirPath } from '../rundir.js';
import type { Parsed } from '../config/types.js';
import { bad, duration, expected, ok, oneOf, wholeNumber } from '../config/values.js';

export interface CompanionConfig {
  readonly name: string;
  readonly command: readonly string[] | null;
  /** 'path#export', normalized: the export is always spelled out ('#default' when the input had none). */
  readonly module: string | null;
  readonly cwd: string | null;
  readonly env: Readonly<Record<string, string>>;
  readonly stdout: string;
  readonly stderr: string;
  readonly stop_signal: Signal;
  readonly stop_timeout: number;
  readonly reload_timeout: number;
  readonly startsecs: number;
  readonly restart_delay: number;
  readonly startretries: number | null;
  readonly backoff: 'fixed' | 'exponential';
  readonly backoff_max: number;
  readonly autostart: boolean;
  /** After an exit past startsecs: restart it (true), leave it EXITED (false), or restart only when the exit is not expected ('unexpected'). */
  readonly autorestart: Autorestart;
  /** Exit codes that count as expected: sorted, each once. */
  readonly exitcodes: readonly number[];
  /** Copies to run (copies.ts): NAME:0 .. NAME:N-1, or NAME alone when 1. */
  readonly numprocs: number;
  readonly hash: string;
}

export type Autorestart = boolean | 'unexpected';

export type CompanionKey = Exclude<keyof CompanionConfig, 'hash'>;
export type Backoff = CompanionConfig['backoff'];
export const BACKOFFS: readonly Backoff[] = ['fixed', 'exponential'];

/** Fields with a global `companion_<key>` default. */
export const GLOBAL_KEYS = [
  'cwd', 'env', 'stdout', 'stderr', 'stop_signal', 'stop_timeout', 'reload_timeout',
  'startsecs', 'restart_delay', 'startretries', 'backoff', 'backoff_max', 'autorestart', 'exitcodes',
] as const;
export type GlobalKey = (typeof GLOBAL_KEYS)[number];

/** The global defaults, resolved. reload_timeout null = each companion's own stop_timeout. */
export type CompanionDefaults = { readonly [K in GlobalKey]: K extends 'reload_timeout' ? number | null : CompanionConfig[K] };

/**
 * Built in: supervisord's stopwaitsecs (10), startsecs (1) and exitcodes (0);
 * the seed's retry-for-ever with a fixed 1 s delay, so autorestart true
 * (supervisord's default is "unexpected": a daemon here is restarted whatever
 * its exit code, as before autorestart existed).
 */
export const COMPANION_DEFAULTS: CompanionDefaults = Object.freeze({
  cwd: null,
  env: Object.freeze({}),
  stdout: 'inherit',
  stderr: 'inherit',
  stop_signal: 'SIGTERM',
  stop_timeout: 10_000,
  reload_timeout: null,
  startsecs: 1_000,
  restart_delay: 1_000,
  startretries: null,
  backoff: 'fixed',
  backoff_max: 60_000,
  autorestart: true,
  exitcodes: Object.freeze([0]),
});

// ------------------------------------------------------------------ readers
// (raw, text) like every setting reader: text = from the CLI or environment
// (only for the global defaults), typed = from a config file.

type Reader<T> = (raw: unknown, text: boolean) => Parsed<T>;

const NUL = (s: string): boolean => s.includes('\0');

export const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_WHAT = '1 to 64 letters, digits, "_", "." or "-", e.g. "worker"';

const readName: Reader<string> = (raw) => {
  if (typeof raw !== 'string') return expected(`a name of ${NAME_WHAT}`, raw, false, true);
  if (raw.length > 64) return bad(`a name is at most 64 characters, got ${raw.length}: ${show(raw)}`);
  if (!NAME_RE.test(raw)) {
    const fix = raw === '' ? '' : `; e.g. ${show(raw.replace(/[^A-Za-z0-9_.-]+/g, '-'))}`;
    return bad(`expected a name of ${NAME_WHAT}, got ${show(raw)}${fix}`);
  }
  // `drover ctl stop all` means every companion; a companion called "all" would be unreachable by name.
  if (raw === 'all') return bad('"all" is reserved (drover ctl uses it for every companion); choose another name');
  // Names may end up in file names and socket replies; "." and ".." read as directories.
  if (raw === '.' || raw === '..') return bad(`${show(raw)} is not a usable name; choose a word, e.g. "worker"`);
  return ok(raw);
};

const ARGV_EG = '["node", "worker.js"]';

const readCommand: Reader<readonly string[] | null> = (raw) => {
  if (raw === null) return ok(null);
  if (typeof raw === 'string') {
    // A string would need a shell to split; drover runs argv directly, so say how to get either.
    const words = raw.trim().split(/\s+/).filter((w) => w !== '');
    const eg = words.length > 0 ? show(words) : ARGV_EG;
    return bad(`expected an argv array, e.g. ${eg}, got ${show(raw)} (a string); drover runs no shell: split the words, or use ["sh", "-c", ${show(raw)}]`);
  }
  if (!Array.isArray(raw)) return expected(`an argv array, e.g. ${ARGV_EG}`, raw, false, true);
  if (raw.length === 0) return bad(`expected a non-empty argv array, e.g. ${ARGV_EG}, got []`);
  const problems: string[] = [];
  raw.forEach((w, i) => {
    if (typeof w !== 'string') problems.push(`argv[${i}] must be a string, got ${show(w)} (${typeName(w)})${typeof w === 'number' ? `; write "${w}"` : ''}`);
    else if (NUL(w)) problems.push(`argv[${i}] cannot contain a NUL byte, got ${show(w)}`);
  });
  if (raw[0] === '') problems.push('argv[0], the program to run, cannot be empty');
  return problems.length > 0 ? bad(...problems) : ok(Object.freeze([...(raw as string[])]));
};

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** 'path#export' → its parts; the last '#' separates them (a path may contain '#'); no '#' means the default export. */
export function splitModule(spec: string): { path: string; exportName: string } {
  const at = spec.lastIndexOf('#');
  return at < 0 ? { path: spec, exportName: 'default' } : { path: spec.slice(0, at), exportName: spec.slice(at + 1) };
}

const readModule: Reader<string | null> = (raw) => {
  if (raw === null) return ok(null);
  const what = 'a module "path#export", e.g. "jobs/worker.js#run" (no "#": the default export)';
  if (typeof raw !== 'string') return expected(what, raw, false, true);
  if (NUL(raw)) return bad(`a module path cannot contain a NUL byte, got ${show(raw)}`);
  const { path, exportName } = splitModule(raw);
  if (path === '') return bad(`expected ${what}, got ${show(raw)}: the path is empty`);
  if (exportName === '') return bad(`an export name must follow "#", got ${show(raw)}; drop the "#" for the default export`);
  if (!IDENT.test(exportName)) return bad(`${show(exportName)} in ${show(raw)} is not an export name (a JavaScript identifier, e.g. "run")`);
  // One spelling per meaning, so "w.js" and "w.js#default" hash alike.
  return ok(`${path}#${exportName}`);
};

/** A path, or null (off / the manager's own); "" is null too, so a CLI flag or variable can say "none". */
const readCwd: Reader<string | null> = (raw, text) => {
  if (raw === null && !text) return ok(null);
  if (typeof raw !== 'string') return expected('a directory path, or null (the manager\'s working directory)', raw, text, true);
  if (raw === '') return ok(null);
  if (NUL(raw)) return bad(`a path cannot contain a NUL byte, got ${show(raw)}`);
  return ok(raw);
};

const ENV_KEY_RE = /^[^=\0]+$/;

const readEnv: Reader<Readonly<Record<string, string>>> = (raw, text) => {
  const what = 'an object of environment variables, e.g. { "QUEUE": "mail" }';
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return expected(what, raw, text, true);
  const problems: string[] = [];
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!ENV_KEY_RE.test(k)) problems.push(`environment variable name ${show(k)} is empty or contains "=" or a NUL byte`);
    if (typeof v !== 'string') {
      const fix = typeof v === 'number' || typeof v === 'boolean' ? `; write "${v}"` : '';
      problems.push(`environment values are strings: ${k} is ${show(v)} (${typeName(v)})${fix}`);
    } else if (NUL(v)) problems.push(`the value of ${k} cannot contain a NUL byte`);
    else out[k] = v;
  }
  return problems.length > 0 ? bad(...problems) : ok(Object.freeze(out));
};

/** 'inherit' | 'stdout' (stderr only) | a file path, appended to. Keywords in any case. */
function readStream(stream: 'stdout' | 'stderr'): Reader<string> {
  const forms = stream === 'stdout' ? '"inherit" or a file path' : '"inherit", "stdout" or a file path';
  return (raw, text) => {
    if (typeof raw !== 'string') return expected(forms, raw, text, true);
    const kw = raw.toLowerCase();
    if (kw === 'inherit' || (stream === 'stderr' && kw === 'stdout')) return ok(kw);
    if (raw === '') return expected(forms, raw, text);
    // Elsewhere in drover "-" means stderr; here it would be a file named "-", which nobody means.
    if (raw === '-') return bad(`expected ${forms}, got "-"; for the manager's own ${stream} write "inherit"`);
    if (kw === stream) return bad(`${stream} cannot be sent to itself; use ${forms}`);
    if (kw === 'stderr') return bad(`stdout cannot join stderr (stderr can join stdout: stderr: "stdout"); use ${forms}`);
    if (NUL(raw)) return bad(`a path cannot contain a NUL byte, got ${show(raw)}`);
    return ok(raw);
  };
}

/** Signals a stop may send: the Os's set minus KILL, which is the escalation, not a request. */
export const STOP_SIGNALS: readonly Signal[] = SIGNALS.filter((s) => s !== 'SIGKILL');
const SHORT = STOP_SIGNALS.map((s) => s.slice(3));

export const readSignal: Reader<Signal> = (raw, text) => {
  const what = `a signal name: one of ${SHORT.join(', ')} (with or without "SIG")`;
  if (typeof raw !== 'string') return bad(`expected ${what}, got ${show(raw)}${text ? '' : ` (${typeName(raw)})`}; use the name, e.g. "TERM"`);
  const up = raw.trim().toUpperCase();
  const sig = (up.startsWith('SIG') ? up : `SIG${up}`) as Signal;
  if (sig === 'SIGKILL') {
    return bad('KILL cannot be the stop signal: it leaves no graceful stop, and it is what drover sends when stop_timeout runs out; use TERM (the default) or the signal the program handles');
  }
  if (STOP_SIGNALS.includes(sig)) return ok(sig);
  const near = closest(sig.slice(3), SHORT);
  return bad(`expected ${what}, got ${show(raw)}${near === null ? '' : `; did you mean "${near}"?`}`);
};

/** null (or "" as text) = the companion's own stop_timeout. */
const readReloadTimeout: Reader<number | null> = (raw, text) => {
  if ((raw === null && !text) || (text && raw === '')) return ok(null);
  return duration(raw, text);
};

const atLeastOne = wholeNumber(1);
/** null (or "" as text) = retry for ever. */
const readStartretries: Reader<number | null> = (raw, text) => {
  if ((raw === null && !text) || (text && raw === '')) return ok(null);
  const r = atLeastOne(raw, text);
  if (r.ok) return r;
  return bad(`expected a whole number >= 1 (FATAL after that many failed starts) or ${text ? '""' : 'null'} (retry for ever), got ${show(raw)}`);
};

const readBoolean: Reader<boolean> = (raw, text) => (typeof raw === 'boolean' ? ok(raw) : expected('true or false', raw, text, true));

const AUTORESTART_WHAT = 'true (restart after any exit), false (never) or "unexpected" (only after an exit code not in exitcodes)';
const TEXT_TRUE = ['true', 'on', 'yes', '1'];
const TEXT_FALSE = ['false', 'off', 'no', '0'];

/** supervisord's three values; as text (a companion_autorestart flag or variable) also on/off, yes/no, 1/0. */
const readAutorestart: Reader<Autorestart> = (raw, text) => {
  if (typeof raw === 'boolean' && !text) return ok(raw);
  if (typeof raw !== 'string') return expected(AUTORESTART_WHAT, raw, text, true);
  const v = raw.trim().toLowerCase();
  if (v === 'unexpected') return ok('unexpected');
  if (text && TEXT_TRUE.includes(v)) return ok(true);
  if (text && TEXT_FALSE.includes(v)) return ok(false);
  // A supervisord ini says autorestart=true; in JSON the quotes make it a string.
  if (v === 'true' || v === 'false') return bad(`expected ${AUTORESTART_WHAT}, got ${show(raw)} (a string); write ${v} without quotes`);
  const near = closest(v, ['unexpected']);
  return bad(`expected ${AUTORESTART_WHAT}, got ${show(raw)}${near === null ? '' : `; did you mean "${near}"?`}`);
};

export const EXIT_CODE_MAX = 255;
const EXITCODES_WHAT = `a list of exit codes from 0 to ${EXIT_CODE_MAX}, e.g. [0, 2]`;

/** A non-empty list of exit statuses (one byte each); as text comma-separated. Sorted, each once, so [2, 0] and [0, 2, 0] hash alike. */
const readExitcodes: Reader<readonly number[]> = (raw, text) => {
  let list: unknown[];
  if (text) {
    if (typeof raw !== 'string') return expected(`${EXITCODES_WHAT} (comma-separated: 0,2)`, raw, text);
    list = raw.split(',').map((w) => w.trim());
    if (list.some((w) => !/^\d+$/.test(w as string))) return bad(`expected exit codes separated by commas, e.g. 0,2, got ${show(raw)}`);
    list = list.map(Number);
  } else {
    if (typeof raw === 'number') return bad(`expected ${EXITCODES_WHAT}, got ${show(raw)} (a number); write [${raw}]`);
    if (!Array.isArray(raw)) return expected(EXITCODES_WHAT, raw, text, true);
    list = raw;
  }
  // Every code may appear once: a longer list is a generated mistake, not a policy.
  if (list.length > EXIT_CODE_MAX + 1) return bad(`expected at most ${EXIT_CODE_MAX + 1} exit codes (each of 0..${EXIT_CODE_MAX} once), got a list of ${list.length}`);
  if (list.length === 0) {
    return bad(`expected at least one exit code, e.g. [0], got []; an empty list would make every exit unexpected: for that, use autorestart true`);
  }
  const problems: string[] = [];
  list.forEach((c, i) => {
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c > EXIT_CODE_MAX) {
      const fix = typeof c === 'string' && /^\d+$/.test(c) ? `; write ${c}` : c === -1 || (typeof c === 'number' && c > EXIT_CODE_MAX) ? '; an exit status is one byte, and a death by a signal is never expected' : '';
      problems.push(`exitcodes[${i}] must be a whole number from 0 to ${EXIT_CODE_MAX}, got ${show(c)}${typeof c === 'number' ? '' : ` (${typeName(c)})`}${fix}`);
    }
  });
  return problems.length > 0 ? bad(...problems) : ok(Object.freeze([...new Set(list as number[])].sort((a, b) => a - b)));
};

/** Each copy is a process the manager supervises, and a name in every status: more than this is a typo (1000 for 10), not a plan. */
export const NUMPROCS_MAX = 64;

const readNumprocs: Reader<number> = (raw, text) => {
  const what = `a whole number from 1 to ${NUMPROCS_MAX} (copies to run)`;
  if (typeof raw !== 'number' || !Number.isInteger(raw)) {
    const fix = typeof raw === 'string' && /^\d+$/.test(raw) ? `; write ${raw}` : '';
    return bad(`expected ${what}, got ${show(raw)}${text ? '' : ` (${typeName(raw)})`}${fix}`);
  }
  if (raw < 1) return bad(`expected ${what}, got ${raw}; to run none, set autostart false or remove the companion`);
  if (raw > NUMPROCS_MAX) return bad(`expected ${what}, got ${raw}; run at most ${NUMPROCS_MAX} copies of one companion (split them into several companions if you truly need more)`);
  return ok(raw);
};

// -------------------------------------------------------------------- table

export interface FieldSpec<T = unknown> {
  readonly key: CompanionKey;
  /** One line of meaning, for help (and for the `companion_<key>` setting). */
  readonly help: string;
  readonly metavar: string;
  /** A valid value as typed on the CLI, for the global setting's "needs a value" message. */
  readonly example: string;
  readonly defaultText: string;
  /** Has a global `companion_<key>` default setting. */
  readonly global: boolean;
  /** The global setting can be given only in a file (it is not a scalar). */
  readonly fileOnly?: boolean;
  readonly parse: Reader<T>;
}

const field = <T>(f: FieldSpec<T>): FieldSpec => f as FieldSpec;

export const FIELDS: readonly FieldSpec[] = [
  field({ key: 'name', help: `unique name: ${NAME_WHAT}`, metavar: 'NAME', example: 'worker', defaultText: 'none, required', global: false, parse: readName }),
  field({ key: 'command', help: 'argv to run, e.g. ["celery", "worker"]; exactly one of command and module', metavar: 'ARGV', example: '["node", "w.js"]', defaultText: 'none', global: false, parse: readCommand }),
  field({ key: 'module', help: 'a Node module "path#export" run as its own process (no "#": the default export)', metavar: 'PATH#EXPORT', example: 'w.js#run', defaultText: 'none', global: false, parse: readModule }),
  field({ key: 'cwd', help: 'working directory (none: the manager\'s)', metavar: 'DIR', example: '/srv/app', defaultText: 'the manager\'s', global: true, parse: readCwd }),
  field({ key: 'env', help: 'environment variables added over the manager\'s; a companion\'s own env is merged over this one', metavar: 'OBJECT', example: '{}', defaultText: '{}', global: true, fileOnly: true, parse: readEnv }),
  field({ key: 'stdout', help: '"inherit" or a file (appended to, reopened on USR1)', metavar: 'PATH', example: 'inherit', defaultText: 'inherit', global: true, parse: readStream('stdout') }),
  field({ key: 'stderr', help: '"inherit", "stdout" (join it) or a file', metavar: 'PATH', example: 'stdout', defaultText: 'inherit', global: true, parse: readStream('stderr') }),
  field({ key: 'stop_signal', help: 'signal asking its process group to stop (TERM or SIGTERM; not KILL)', metavar: 'SIGNAL', example: 'TERM', defaultText: 'TERM', global: true, parse: readSignal }),
  field({ key: 'stop_timeout', help: 'time a stop waits for the exit before KILL', metavar: 'SECONDS', example: '10', defaultText: '10', global: true, parse: duration }),
  field({ key: 'reload_timeout', help: 'the stop deadline when a reload or reread restarts it', metavar: 'SECONDS', example: '30', defaultText: 'its stop_timeout', global: true, parse: readReloadTimeout }),
  field({ key: 'startsecs', help: 'time a new process must stay up to count as started (RUNNING)', metavar: 'SECONDS', example: '1', defaultText: '1', global: true, parse: duration }),
  field({ key: 'restart_delay', help: 'wait before restarting after an exit nobody asked for', metavar: 'SECONDS', example: '1', defaultText: '1', global: true, parse: duration }),
  field({ key: 'startretries', help: 'FATAL (no more restarts) after this many consecutive failed starts', metavar: 'INT', example: '3', defaultText: 'none: retry for ever', global: true, parse: readStartretries }),
  field({ key: 'backoff', help: `restart delay policy: ${BACKOFFS.join(' or ')} (doubles restart_delay per consecutive failure)`, metavar: 'POLICY', example: 'exponential', defaultText: 'fixed', global: true, parse: oneOf(BACKOFFS) }),
  field({ key: 'backoff_max', help: 'cap of the exponential restart delay', metavar: 'SECONDS', example: '60', defaultText: '60', global: true, parse: duration }),
  field({ key: 'autostart', help: 'start it with the manager (false: only drover ctl start does)', metavar: 'BOOL', example: 'true', defaultText: 'true', global: false, parse: readBoolean }),
  field({ key: 'autorestart', help: 'after an exit past startsecs: true restarts it, false leaves it EXITED, "unexpected" restarts it only if its exit code is not in exitcodes', metavar: 'WHEN', example: 'unexpected', defaultText: 'true', global: true, parse: readAutorestart }),
  field({ key: 'exitcodes', help: `exit codes that are expected (0 to ${EXIT_CODE_MAX}; as text comma-separated); a signal never is`, metavar: 'CODES', example: '0,2', defaultText: '0', global: true, parse: readExitcodes }),
  field({ key: 'numprocs', help: `copies to run (1 to ${NUMPROCS_MAX}), named NAME:0 .. NAME:N-1, each with DROVER_PROCESS_NUM; 1: one, named NAME`, metavar: 'N', example: '4', defaultText: '1', global: false, parse: readNumprocs }),
];

const BY_KEY = new Map<string, FieldSpec>(FIELDS.map((f) => [f.key, f]));
const KEYS = FIELDS.map((f) => f.key);

/** supervisord's names for the same things, so a ported program section gets a pointed hint. */
const SUPERVISORD: Readonly<Record<string, string>> = {
  stopwaitsecs: 'use "stop_timeout" (seconds)',
  stopsignal: 'use "stop_signal"',
  directory: 'use "cwd"',
  environment: 'use "env" (an object)',
  stdout_logfile: 'use "stdout"',
  stderr_logfile: 'use "stderr"',
  redirect_stderr: 'use "stderr": "stdout"',
  process_name: 'remove it: the copies numprocs runs are named NAME:0, NAME:1, ...',
  numprocs_start: 'remove it: copies are numbered from 0 (DROVER_PROCESS_NUM)',
  cmd: 'use "command" (an argv array)',
  args: 'put the arguments in "command" (an argv array)',
};

function unknownKey(key: string): string {
  let normal = snake(key);
  // A global default's name used inside a companion: companion_stop_timeout → stop_timeout.
  if (normal.startsWith('companion_') && BY_KEY.has(normal.slice(10))) normal = normal.slice(10);
  const hint = SUPERVISORD[normal];
  if (!BY_KEY.has(normal) && hint !== undefined) return `unknown key ${show(key)}; ${hint}`;
  const near = BY_KEY.has(normal) ? normal : closest(normal, KEYS);
  return `unknown key ${show(key)}; ${near === null ? `the keys are ${KEYS.join(', ')}` : `did you mean "${near}"?`}`;
}

// --------------------------------------------------------------------- hash

/** JSON with object keys sorted at every level: one text per value, whatever order it was written in. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** sha256 (hex) of every field but `hash` itself: same config, same hash; any field changed, another. */
export function companionHash(c: Omit<CompanionConfig, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...fields } = c;
  return hashOf(fields);
}

/** sha256 (hex) of canonicalJson(v). */
export function hashOf(v: unknown): string {
  return createHash('sha256').update(canonicalJson(v)).digest('hex');
}

// -------------------------------------------------------------------- parse

export interface ParsedCompanions {
  /** The companions that parsed, in order. Use them only when `problems` is empty. */
  readonly companions: CompanionConfig[];
  readonly problems: string[];
}

const OBJ_EG = '{ "name": "worker", "command": ["node", "worker.js"] }';

/**
 * A list of companions from `source` (a file path, or any label), with
 * `defaults` (the resolved `companion_*` settings) filling omitted fields.
 * Messages: `FIELD of companion "NAME" in SOURCE: ...` for a field,
 * `companion "NAME" in SOURCE: ...` for the whole entry; an entry without a
 * usable name is `companions[INDEX]`.
 */
export function parseCompanions(raw: unknown, defaults: Partial<CompanionDefaults>, source: string): ParsedCompanions {
  const d: CompanionDefaults = { ...COMPANION_DEFAULTS, ...defaults };
  if (!Array.isArray(raw)) {
    return { companions: [], problems: [`companions in ${source}: expected a list of companions, e.g. [${OBJ_EG}], got ${show(raw)} (${typeName(raw)})`] };
  }
  const companions: CompanionConfig[] = [];
  const problems: string[] = [];
  const byName = new Map<string, number[]>();
  raw.forEach((entry, i) => {
    const r = parseOne(entry, i, d, source);
    problems.push(...r.problems);
    if (r.name !== null) byName.set(r.name, [...(byName.get(r.name) ?? []), i]);
    if (r.companion !== null) companions.push(r.companion);
  });
  for (const [name, at] of byName) {
    if (at.length < 2) continue;
    const list = at.map((i) => `companions[${i}]`);
    const said = `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
    problems.push(`companion name ${show(name)} is used by ${said} in ${source}; give each companion its own name`);
  }
  return { companions, problems };
}

function parseOne(
  entry: unknown,
  i: number,
  d: CompanionDefaults,
  source: string,
): { companion: CompanionConfig | null; name: string | null; problems: string[] } {
  const problems: string[] = [];
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    problems.push(`companions[${i}] in ${source}: expected an object, e.g. ${OBJ_EG}, got ${show(entry)} (${typeName(entry)})`);
    return { companion: null, name: null, problems };
  }
  const obj = entry as Record<string, unknown>;
  const nameRead = obj.name === undefined ? null : readName(obj.name, false);
  const name = nameRead?.ok ? nameRead.value : null;
  const who = name === null ? `companions[${i}]` : `companion ${show(name)}`;
  const whole = (p: string): void => void problems.push(`${who} in ${source}: ${p}`);
  const of = (key: string, p: string): void => void problems.push(`${key} of ${who} in ${source}: ${p}`);

  if (nameRead === null) whole('needs a name, e.g. "name": "worker"');
  for (const key of Object.keys(obj)) if (!BY_KEY.has(key) && obj[key] !== undefined) whole(unknownKey(key));

  const got: Partial<Record<CompanionKey, unknown>> = {};
  for (const f of FIELDS) {
    const v = obj[f.key];
    // undefined: a JS config computing a value may leave it out, as for settings.
    if (v === undefined) continue;
    const r = f.key === 'name' ? nameRead! : f.parse(v, false);
    if (r.ok) got[f.key] = r.value;
    else for (const p of r.problems) of(f.key, p);
  }

  const hasCommand = got.command !== undefined && got.command !== null;
  const hasModule = got.module !== undefined && got.module !== null;
  const commandBad = obj.command !== undefined && obj.command !== null && !hasCommand;
  const moduleBad = obj.module !== undefined && obj.module !== null && !hasModule;
  if (hasCommand && hasModule) whole('give command or module, not both');
  else if (!hasCommand && !hasModule && !commandBad && !moduleBad) {
    whole(`needs command (an argv array, e.g. ${ARGV_EG}) or module (a Node module, e.g. "worker.js#run")`);
  }

  if (problems.length > 0 || name === null) return { companion: null, name, problems };

  const pick = <K extends GlobalKey>(k: K): CompanionDefaults[K] => (got[k] !== undefined ? (got[k] as CompanionDefaults[K]) : d[k]);
  const stop_timeout = pick('stop_timeout');
  const fields: Omit<CompanionConfig, 'hash'> = {
    name,
    command: hasCommand ? (got.command as readonly string[]) : null,
    module: hasModule ? (got.module as string) : null,
    cwd: pick('cwd'),
    env: Object.freeze({ ...d.env, ...((got.env as Record<string, string> | undefined) ?? {}) }),
    stdout: pick('stdout'),
    stderr: pick('stderr'),
    stop_signal: pick('stop_signal'),
    stop_timeout,
    // An explicit null in the companion means "my stop_timeout", overriding a global reload_timeout.
    reload_timeout: 'reload_timeout' in got ? ((got.reload_timeout as number | null) ?? stop_timeout) : (d.reload_timeout ?? stop_timeout),
    startsecs: pick('startsecs'),
    restart_delay: pick('restart_delay'),
    startretries: pick('startretries'),
    backoff: pick('backoff'),
    backoff_max: pick('backoff_max'),
    autostart: got.autostart !== undefined ? (got.autostart as boolean) : true,
    autorestart: pick('autorestart'),
    exitcodes: pick('exitcodes'),
    numprocs: got.numprocs !== undefined ? (got.numprocs as number) : 1,
  };
  return { companion: Object.freeze({ ...fields, hash: companionHash(fields) }), name, problems };
}

// ------------------------------------------------------------ control socket

/** Default control sockets are named `ctl-<tag>.sock` in drover's runtime directory. */
export const CONTROL_SOCKET_PREFIX = 'ctl-';

/**
 * The control socket when none is configured: one per config file (one per
 * working directory without a file), in drover's private runtime directory
 * ($XDG_RUNTIME_DIR/drover, else /tmp/drover-<uid>: see rundir.ts), which
 * the arbiter checks (a real directory, this uid's, mode 0700) before it
 * serves there. The tag is sha256 of the absolute config path, so `drover
 * ctl --config FILE` run from anywhere finds the socket `drover -c FILE`
 * made. A runtime dir too long for a Unix socket path falls back to
 * /tmp/drover-<uid>, private and checked the same way.
 */
export function defaultControlSocket(cwd: string, configPath: string | null, env: Readonly<Record<string, string | undefined>>, uid: number): string {
  // One spelling per place: /srv, /srv/ and /srv/./x/.. hash alike.
  const key = normalize(configPath === null ? cwd : isAbsolute(configPath) ? configPath : join(cwd, configPath)).replace(/(.)\/+$/, '$1');
  const name = `${CONTROL_SOCKET_PREFIX}${createHash('sha256').update(key).digest('hex').slice(0, 8)}.sock`;
  const path = join(runtimeDirPath(env, uid), name);
  return new TextEncoder().encode(path).length <= UNIX_PATH_MAX ? path : join(runtimeDirPath({}, uid), name);
}

/** The control_socket setting: a Unix socket path that fits the OS limit. */
export const readSocketPath: Reader<string> = (raw, text) => {
  const what = 'a Unix socket path, e.g. /run/drover/ctl.sock';
  if (typeof raw !== 'string') return expected(what, raw, text, true);
  if (raw === '') return expected(what, raw, text);
  if (NUL(raw)) return bad(`a path cannot contain a NUL byte, got ${show(raw)}`);
  const n = new TextEncoder().encode(raw).length;
  if (n > UNIX_PATH_MAX) return bad(`a Unix socket path is at most ${UNIX_PATH_MAX} bytes, ${show(raw)} has ${n}; use a shorter path`);
  return ok(raw);
};

/** The `companions` setting's own check: a list (its entries are checked by parseCompanions, with the defaults). */
export const readCompanionList: Reader<readonly unknown[]> = (raw, text) =>
  Array.isArray(raw) ? ok(raw) : expected(`a list of companions, e.g. [${OBJ_EG}]`, raw, text, true);
