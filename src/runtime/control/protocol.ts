// The control protocol: newline-delimited JSON over a Unix socket. One
// request object per line, one reply object per request line, in order.
// Pure: framing, validation and encoding, no I/O, so it can be tested byte by
// byte and property-tested without a socket.
//
//   → {"cmd":"stop","name":"worker-queue","id":7}
//   ← {"id":7,"ok":true,"companions":[{"name":"worker-queue","state":"STOPPED",...}]}
//   → {"cmd":"stats"}
//   ← {"ok":true,"lanes":true,"slowThresholdMs":500,"generations":[...],...}
//   → {"cmd":"reload"}
//   ← {"ok":true,"generation":4}          (once generation 4 serves)
//   → {"cmd":"stpo"}
//   ← {"ok":false,"error":"unknown command \"stpo\"; did you mean \"stop\"? ..."}

import { SIGNALS, type Signal } from '../../os/types.js';
import { closest } from '../config/names.js';
import type { LanesReport } from '../lanes/report.js';

/** Longest request line, in bytes without its newline (gunicorn's control messages are far smaller). */
export const MAX_LINE = 64 * 1024;
export const DEFAULT_TAIL_LINES = 50;
/** Bounds a tail reply: 10,000 lines of a chatty log is already megabytes on one line. */
export const MAX_TAIL_LINES = 10_000;
/** A sanity bound on `scale`'s number, not the real one: the arbiter holds it to min_workers and max_workers. */
export const MAX_SCALE_WORKERS = 100_000;
/** Words of the arbiter's error for a companion command when none are configured; `drover ctl top` shows "no companions" for it. */
export const NO_COMPANIONS = 'no companions are configured';

// ------------------------------------------------------------------ requests

export type StdStream = 'stdout' | 'stderr';

/** `name` is a companion's name or 'all' where the command says so. Defaults are filled in by validation. */
export type Request =
  | { readonly cmd: 'status'; readonly name: string } // 'all' when omitted
  | { readonly cmd: 'start' | 'stop' | 'restart'; readonly name: string } // or 'all'
  | { readonly cmd: 'reread' }
  | { readonly cmd: 'signal'; readonly name: string; readonly signal: Signal } // or 'all'; 'HUP' arrives as 'SIGHUP'
  | { readonly cmd: 'pid'; readonly name: string | null } // null: the manager's own pid
  // after: the sequence number of the first line wanted (tail -f asks again with the reply's `next`)
  | { readonly cmd: 'tail'; readonly name: string; readonly lines: number; readonly stream: StdStream; readonly after?: number }
  | { readonly cmd: 'version' }
  // Answered by the arbiter itself, companions or not:
  | { readonly cmd: 'stats' }
  | { readonly cmd: 'reload' } // a HUP whose outcome is the reply
  | { readonly cmd: 'scale'; readonly workers: number }; // the fast workers' target

export type Command = Request['cmd'];

/** A request as it travels: any of the above plus an optional `id` echoed in the reply. */
export type Id = string | number;
export type WireRequest = { readonly [key: string]: unknown; readonly cmd: string; readonly id?: Id };

/** Signals a companion may be sent. Not CHLD, TTIN, TTOU: they mean nothing to a companion or would stop it. */
export const COMPANION_SIGNALS: readonly Signal[] = SIGNALS.filter((s) => s !== 'SIGCHLD' && s !== 'SIGTTIN' && s !== 'SIGTTOU');

// -------------------------------------------------------------------- replies

export type CompanionState = 'STOPPED' | 'STARTING' | 'RUNNING' | 'BACKOFF' | 'STOPPING' | 'EXITED' | 'FATAL';
export const COMPANION_STATES: readonly CompanionState[] = ['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL'];

/** How a companion's last process ended. Exactly one of code and signal is non-null. */
export interface LastExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** ms between that exit and the reply. */
  readonly ago_ms: number;
}

export interface CompanionStatus {
  readonly name: string;
  readonly state: CompanionState;
  /** The live process's pid; null when none runs. */
  readonly pid: number | null;
  /** ms since the running process started; present only while a process runs. */
  readonly uptime_ms?: number;
  /** ms spent in the current state (a duration: monotonic clocks do not travel between processes' logs). */
  readonly since_ms: number;
  /** Exits seen since the manager started (asked for or not). */
  readonly exits: number;
  readonly last_exit?: LastExit;
  /** One line for people, like supervisorctl's: "pid 4242, uptime 0:03:10", "exited with code 1, retrying in 2 s". */
  readonly description: string;
}

/** The ok:true fields of each command's reply. */
export interface ReplyBodies {
  /** Every companion, in config order, or the one named. */
  status: { readonly companions: readonly CompanionStatus[] };
  /**
   * start/stop/restart: the companions acted on, in the state they reached
   * when the manager replied. The manager replies once each has settled:
   * start/restart at RUNNING (or the failure state it fell into), stop at STOPPED.
   */
  start: { readonly companions: readonly CompanionStatus[] };
  stop: { readonly companions: readonly CompanionStatus[] };
  restart: { readonly companions: readonly CompanionStatus[] };
  /** Names per group of the applied diff; the whole reread was validated first. */
  reread: {
    readonly added: readonly string[]; readonly removed: readonly string[]; readonly changed: readonly string[]; readonly unchanged: readonly string[];
    /** Of `added`, those whose removed process is still stopping: each starts once it is reaped. */
    readonly starting_later?: readonly string[];
  };
  /** The processes signalled (with 'all': the running ones). */
  signal: { readonly signalled: readonly { readonly name: string; readonly pid: number }[] };
  /** null: the companion has no process now. */
  pid: { readonly pid: number | null };
  /**
   * Lines (without newlines), oldest first, of the companion's stream; each
   * line has a sequence number, 0 for the first the manager saw. Without
   * `after`: the last `lines` lines. With it: the lines numbered `after` and
   * up; when there are more than `lines` of them, the newest `lines`. Either
   * way the lines sent are the ones just before `next`, none missing between
   * them, so asking again with `after: next` continues where this reply ended.
   */
  tail: {
    readonly name: string;
    readonly stream: StdStream;
    readonly lines: readonly string[];
    /** The sequence number the next line will get. A manager older than tail -f leaves it out. */
    readonly next?: number;
    /** With `after`: lines numbered `after` or more that this reply leaves out (gone from the manager's ring, or over `lines`); absent or 0 when none. */
    readonly dropped?: number;
  };
  /** The arbiter's pid and working directory come along: `drover ctl` finds the drover running from its directory by them. */
  version: { readonly version: string; readonly arbiter?: { readonly pid: number; readonly cwd: string } };
  /** The arbiter's lanes: per generation, the slow routes it knows, the slow_routes hints; every worker process. */
  stats: LanesReport;
  /** Sent once the new generation serves (a failed reload is an error reply, the running config still in force). */
  reload: { readonly generation: number };
  /** The fast workers' new target and the bounds it was held to; workers start or stop after the reply. */
  scale: { readonly workers: number; readonly min: number; readonly max: number };
}

export interface ErrorReply {
  readonly ok: false;
  /** Names the problem and, where there is one, the fix. */
  readonly error: string;
}

export type OkReply<C extends Command = Command> = { readonly ok: true } & ReplyBodies[C];
export type ReplyFor<C extends Command> = OkReply<C> | ErrorReply;
export type Reply = OkReply | ErrorReply;

// ------------------------------------------------------------------- framing

/** A complete line, or a line that went over the limit (its bytes were dropped, only counted). */
export type Frame = { readonly line: string } | { readonly tooLong: number };

const NL = 0x0a;

/**
 * Splits a byte stream into lines, holding at most `limit` bytes of an
 * unfinished line. A line over the limit becomes one `tooLong` frame when its
 * newline arrives; its bytes in between are counted and dropped, so a client
 * cannot make the server buffer more than the limit, and the connection
 * carries on with the next line. Bytes, not characters: a UTF-8 character
 * split across chunks is joined before decoding.
 */
export class LineDecoder {
  private parts: Uint8Array[] = [];
  private size = 0;
  private dropping = false;

  constructor(readonly limit = MAX_LINE) {}

  push(chunk: Uint8Array): Frame[] {
    const out: Frame[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(NL); nl >= 0; nl = chunk.indexOf(NL, start)) {
      const n = this.size + (nl - start);
      if (this.dropping || n > this.limit) out.push({ tooLong: n });
      else out.push({ line: this.text(chunk.subarray(start, nl)) });
      this.parts = [];
      this.size = 0;
      this.dropping = false;
      start = nl + 1;
    }
    const rest = chunk.length - start;
    if (rest > 0) {
      this.size += rest;
      if (!this.dropping && this.size > this.limit) {
        this.dropping = true;
        this.parts = [];
      }
      // A copy: the rest of a big chunk must not keep the whole chunk alive.
      if (!this.dropping) this.parts.push(new Uint8Array(chunk.subarray(start)));
    }
    return out;
  }

  /** The unfinished line is over the limit already (its bytes are being dropped): its newline need not be waited for to refuse it. */
  get overLimit(): boolean {
    return this.dropping;
  }

  /** Bytes of a line that has not ended yet (kept or dropped). */
  get pending(): number {
    return this.size;
  }

  private text(last: Uint8Array): string {
    this.parts.push(last);
    return Buffer.concat(this.parts).toString('utf8');
  }
}

export function tooLongError(bytes: number, limit = MAX_LINE): string {
  return `line too long (${bytes} bytes, limit ${limit})`;
}

// ---------------------------------------------------------------- validation

export type Decoded =
  | { readonly ok: true; readonly id: Id | undefined; readonly req: Request }
  | { readonly ok: false; readonly id: Id | undefined; readonly error: string };

const EXAMPLE = '{"cmd":"status"}';

type ArgKind = 'name' | 'one' | 'signal' | 'lines' | 'stream' | 'after' | 'workers';
interface ArgSpec { readonly kind: ArgKind; readonly required: boolean }
interface CommandSpec { readonly args: Readonly<Record<string, ArgSpec>>; readonly example: string }

const req = (kind: ArgKind): ArgSpec => ({ kind, required: true });
const opt = (kind: ArgKind): ArgSpec => ({ kind, required: false });

// 'name' takes a companion or 'all'; 'one' a single companion.
export const COMMANDS: Readonly<Record<Command, CommandSpec>> = {
  status: { args: { name: opt('name') }, example: '{"cmd":"status"} or {"cmd":"status","name":"worker"}' },
  start: { args: { name: req('name') }, example: '{"cmd":"start","name":"worker"} or {"cmd":"start","name":"all"}' },
  stop: { args: { name: req('name') }, example: '{"cmd":"stop","name":"worker"} or {"cmd":"stop","name":"all"}' },
  restart: { args: { name: req('name') }, example: '{"cmd":"restart","name":"worker"} or {"cmd":"restart","name":"all"}' },
  reread: { args: {}, example: '{"cmd":"reread"}' },
  signal: { args: { name: req('name'), signal: req('signal') }, example: '{"cmd":"signal","name":"worker","signal":"HUP"}' },
  pid: { args: { name: opt('one') }, example: '{"cmd":"pid","name":"worker"} (or {"cmd":"pid"} for the manager)' },
  tail: {
    args: { name: req('one'), lines: opt('lines'), stream: opt('stream'), after: opt('after') },
    example: '{"cmd":"tail","name":"worker","lines":100,"stream":"stderr"} (add "after":N for lines numbered N and up)',
  },
  version: { args: {}, example: '{"cmd":"version"}' },
  stats: { args: {}, example: '{"cmd":"stats"}' },
  reload: { args: {}, example: '{"cmd":"reload"}' },
  scale: { args: { workers: req('workers') }, example: '{"cmd":"scale","workers":4}' },
};
const NAMES = Object.keys(COMMANDS) as Command[];

/** A value as messages quote it: JSON, cut short. */
export function quote(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch (e) {
    // What JSON.stringify itself refuses: a cycle, a BigInt (TypeError), a string too long (RangeError).
    if (!(e instanceof TypeError) && !(e instanceof RangeError)) throw e;
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `${typeof v} ${quote(v)}`;
}

/** `'HUP'`, `'sighup'`, `'SIGHUP'` → 'SIGHUP'. */
export function signalName(raw: string): Signal | null {
  const up = raw.toUpperCase();
  const full = (up.startsWith('SIG') ? up : `SIG${up}`) as Signal;
  return COMPANION_SIGNALS.includes(full) ? full : null;
}

/** The value of one argument, or the problem with it. */
function arg(cmd: Command, key: string, kind: ArgKind, v: unknown): { value: unknown } | { error: string } {
  const bad = (what: string) => ({ error: `${cmd}: "${key}" must be ${what}, got ${kindOf(v)}; e.g. ${COMMANDS[cmd].example}` });
  switch (kind) {
    case 'name':
    case 'one':
      if (typeof v !== 'string' || v === '') return bad(kind === 'name' ? 'a companion name or "all"' : 'a companion name');
      if (kind === 'one' && v === 'all') return { error: `${cmd}: "name" must name one companion; "all" is not accepted here` };
      return { value: v };
    case 'signal': {
      const names = COMPANION_SIGNALS.map((s) => s.slice(3)).join(', ');
      if (typeof v !== 'string') return bad(`a signal name (${names})`);
      const s = signalName(v);
      return s === null ? { error: `${cmd}: unknown signal ${quote(v)}; use one of ${names}` } : { value: s };
    }
    case 'lines':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_TAIL_LINES) return bad(`a whole number from 1 to ${MAX_TAIL_LINES}`);
      return { value: v };
    case 'stream':
      if (v !== 'stdout' && v !== 'stderr') return bad('"stdout" or "stderr"');
      return { value: v };
    case 'after':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad('a line sequence number (a whole number, 0 or more): the "next" of the last tail reply');
      return { value: v };
    case 'workers':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SCALE_WORKERS) return bad(`a whole number of workers from 1 to ${MAX_SCALE_WORKERS}`);
      return { value: v };
  }
}

const DEFAULTS: Partial<Record<Command, Record<string, unknown>>> = {
  status: { name: 'all' },
  pid: { name: null },
  tail: { lines: DEFAULT_TAIL_LINES, stream: 'stdout' },
};

/** A request object checked against the command table, defaults filled in. `id` is not part of it. */
export function validateRequest(v: unknown): { ok: true; req: Request } | { ok: false; error: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { ok: false, error: `a request is a JSON object like ${EXAMPLE}, got ${kindOf(v)}` };
  }
  // Own keys only, into an object with no prototype: a key like "__proto__"
  // or "toString" is one more (unknown) argument, never something inherited.
  const o = ownKeys(v);
  if (!Object.hasOwn(o, 'cmd')) return { ok: false, error: `missing "cmd"; a request looks like ${EXAMPLE}; commands: ${NAMES.join(', ')}` };
  if (typeof o.cmd !== 'string') return { ok: false, error: `"cmd" must be a string, got ${kindOf(o.cmd)}; commands: ${NAMES.join(', ')}` };
  if (!Object.hasOwn(COMMANDS, o.cmd)) {
    const near = closest(o.cmd.toLowerCase(), NAMES);
    return { ok: false, error: `unknown command ${quote(o.cmd)}${near === null ? '' : `; did you mean "${near}"?`} commands: ${NAMES.join(', ')}` };
  }
  const cmd = o.cmd as Command;
  const spec = COMMANDS[cmd];
  const out: Record<string, unknown> = { cmd, ...DEFAULTS[cmd] };
  for (const key of Object.keys(o)) {
    if (key === 'cmd' || key === 'id') continue;
    const a = Object.hasOwn(spec.args, key) ? spec.args[key] : undefined;
    // null is "not given" for an optional argument: {"cmd":"pid","name":null} asks for the manager's pid.
    if (a !== undefined && !a.required && o[key] === null) continue;
    if (a === undefined) {
      const takes = Object.keys(spec.args);
      const near = closest(key.toLowerCase(), takes);
      return {
        ok: false,
        error: `${cmd}: unknown argument ${quote(key)}${near === null ? '' : `; did you mean "${near}"?`} ` +
          `(${takes.length === 0 ? `${cmd} takes no arguments` : `${cmd} takes ${takes.join(', ')}`}; e.g. ${spec.example})`,
      };
    }
    const r = arg(cmd, key, a.kind, o[key]);
    if ('error' in r) return { ok: false, error: r.error };
    out[key] = r.value;
  }
  for (const [key, a] of Object.entries(spec.args)) {
    if (a.required && !Object.hasOwn(o, key)) return { ok: false, error: `${cmd}: missing "${key}"; e.g. ${spec.example}` };
  }
  return { ok: true, req: out as Request };
}

/** A parsed JSON object's own enumerable keys and values, copied into a null-prototype object. */
export function ownKeys(v: object): Record<string, unknown> {
  const o = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    Object.defineProperty(o, key, { value: (v as Record<string, unknown>)[key], enumerable: true, writable: true, configurable: true });
  }
  return o;
}

function idOf(o: unknown): { id: Id | undefined; error?: string } {
  if (typeof o !== 'object' || o === null || Array.isArray(o) || !Object.hasOwn(o, 'id')) return { id: undefined };
  const id = (o as { id: unknown }).id;
  if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) return { id };
  return { id: undefined, error: `"id" must be a string or a number (it is echoed in the reply), got ${kindOf(id)}` };
}

/** One request line: parsed, its id found, validated. Never throws. */
export function parseRequest(line: string): Decoded {
  if (line.trim() === '') return { ok: false, id: undefined, error: `empty line; send one JSON request per line, e.g. ${EXAMPLE}` };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { ok: false, id: undefined, error: `invalid JSON (${why}); send one JSON object per line, e.g. ${EXAMPLE}` };
  }
  const { id, error } = idOf(v);
  if (error !== undefined) return { ok: false, id, error };
  const r = validateRequest(v);
  return r.ok ? { ok: true, id, req: r.req } : { ok: false, id, error: r.error };
}

/** A frame as the server sees it: a request for the handler, or the error to answer instead. */
export function decodeFrame(f: Frame, limit = MAX_LINE): Decoded {
  return 'tooLong' in f ? { ok: false, id: undefined, error: tooLongError(f.tooLong, limit) } : parseRequest(f.line);
}

// ------------------------------------------------------------------ encoding

/** One reply line. `id` comes first so a person reading a transcript pairs them easily. */
export function encodeReply(reply: Reply, id?: Id): string {
  return JSON.stringify(id === undefined ? reply : { id, ...reply }) + '\n';
}

export function encodeRequest(req: Request | WireRequest, id?: Id): string {
  return JSON.stringify(id === undefined ? req : { ...req, id }) + '\n';
}

/** A handler's result checked before it goes out, or a reply line's value as the client reads it: an object with a boolean `ok`, and a string `error` when not ok. */
export function checkReply(r: unknown): Reply | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return null;
  const o = r as { ok?: unknown; error?: unknown };
  return o.ok === true || (o.ok === false && typeof o.error === 'string') ? (r as Reply) : null;
}

export function parseReply(line: string): Reply | null {
  try {
    return checkReply(JSON.parse(line));
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return null;
  }
}

// ------------------------------------------------------------------ display

/** C0 controls, DEL and C1 controls: what a terminal may act on. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `s` with every control character written out: \n, \r, \t, \x1b (C0 and
 * DEL), \u009b (C1). What `drover ctl` prints from a reply goes through
 * this, so a companion name or a log line cannot move the cursor, retitle
 * the window or forge a line of output on the operator's terminal.
 */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    return NAMED[c] ?? (n < 0x80 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`);
  });
}

/** A reply value with every string in it (keys too) passed through escapeControl. */
export function escapeReply<T>(v: T): T {
  if (typeof v === 'string') return escapeControl(v) as T;
  if (Array.isArray(v)) return v.map((x) => escapeReply(x)) as T;
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const key = escapeControl(k);
      if (key === '__proto__') continue; // a reply has no such field; never set a prototype from one
      out[key] = escapeReply(x);
    }
    return out as T;
  }
  return v;
}

/**
 * A reply as --json prints it: JSON escapes C0 itself, but leaves DEL and
 * C1 as they are; they only occur inside strings, where \u escapes mean
 * the same.
 */
export function replyJson(reply: unknown): string {
  return JSON.stringify(reply).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
