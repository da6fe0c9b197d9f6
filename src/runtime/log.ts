// Error log and access log. Each goes to stderr ('-') or to a file opened in
// append mode, so several processes can share one file line by line, and
// USR1 reopens it after logrotate moved it away.
import type { Os, Stat } from '../os/types.js';
import type { LogFormat } from './config/types.js';
import { clfTime, isoTime, logTime } from './time-format.js';
import { planted } from '../os/hooks.js';

export type Level = 'debug' | 'info' | 'warning' | 'error' | 'critical';
const RANK: Record<Level, number> = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };

/**
 * A log destination: '-' is stderr, anything else a path.
 *
 * A log that cannot be written (ENOSPC, EIO, a disk gone read-only) never
 * stops the process that logs: the line is dropped, and the outage is said
 * once on stderr; once a write succeeds again, or the process's last sink
 * of that file is closed, how many lines were lost is said there too. One
 * outage per process and file, whichever of its sinks of that file (a
 * manager has one per companion process's output) meets it. A short write
 * (the disk filled mid-line) is finished; a line cut off by a failure is
 * ended by a newline before the next one, and the rest of a line whose
 * write failed is dropped with it (a companion's output comes in chunks,
 * not lines), so every line in the file is whole or the start of one.
 */
export class LogSink {
  private fd = -1;
  private file: FileState | null = null; // null for stderr
  constructor(private readonly os: Os, readonly target: string) {
    this.open();
  }

  private open(): void {
    if (this.target === '-') return;
    this.fd = openLogFile(this.os, this.target);
    let files = FILES.get(this.os);
    if (files === undefined) FILES.set(this.os, (files = new Map()));
    let f = files.get(this.target);
    if (f === undefined) files.set(this.target, (f = { sinks: 0, failing: false, dropped: 0, open: false, cut: false, skip: false }));
    f.sinks++;
    this.file = f;
  }

  write(line: string): void {
    const f = this.file;
    if (f === null || this.fd < 0) {
      this.os.stderr.write(line);
      return;
    }
    if (f.skip) {
      // The rest of a line whose start was dropped.
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      f.skip = false;
      line = line.slice(nl + 1);
      if (line === '') return;
    }
    try {
      this.put(f.cut ? `\n${line}` : line, f);
    } catch (e) {
      const code = (e as { code?: unknown } | null)?.code;
      // Not an errno (a process unwinding as it exits, say): not ours to swallow.
      if (typeof code !== 'string' || planted(this.os.hooks, 'log-write-throws')) throw e;
      f.dropped++;
      // A line begun in the file will not be finished: ended now if the file lets us (before another
      // process appends to it), else before our next line.
      if (f.open) f.cut = !this.endLine(f);
      f.skip = !line.endsWith('\n');
      this.os.hooks.errorPath?.('log', code);
      if (f.failing && !planted(this.os.hooks, 'log-reports-every-line')) return;
      f.failing = true;
      this.say(`cannot write ${this.target} (${(e as Error).message}); dropping log lines until it can be written again`);
      return;
    }
    f.cut = false;
    if (f.failing) {
      if (!planted(this.os.hooks, 'log-reports-every-line')) this.say(`writing ${this.target} again; ${f.dropped} line(s) were dropped`);
      f.failing = false;
      f.dropped = 0;
    }
  }

  /** All of `text`, however many writes it takes; a write that takes nothing is EIO. */
  private put(text: string, f: FileState): void {
    const n = this.os.fs.write(this.fd, text);
    if (n >= Buffer.byteLength(text) || planted(this.os.hooks, 'log-ignores-short-write')) {
      // The count is in bytes.
      f.open = !text.endsWith('\n');
      return;
    }
    // Short: the rest goes as bytes (a cut may fall inside a character).
    const bytes = Buffer.from(text, 'utf8');
    let at = n;
    f.open = at > 0 ? bytes[at - 1] !== 0x0a : f.open;
    while (at < bytes.length) {
      const k = this.os.fs.write(this.fd, bytes.subarray(at));
      if (!(k > 0)) throw Object.assign(new Error(`EIO: write to ${this.target} took no bytes`), { code: 'EIO' });
      at += k;
      f.open = bytes[at - 1] !== 0x0a;
    }
    this.os.hooks.errorPath?.('log', 'short');
  }

  /** One newline, best effort: whether it went. */
  private endLine(f: FileState): boolean {
    try {
      if (!(this.os.fs.write(this.fd, '\n') > 0)) return false;
    } catch (e) {
      if (typeof (e as { code?: unknown } | null)?.code !== 'string') throw e;
      return false;
    }
    f.open = false;
    return true;
  }

  /** stderr may be gone as well (a closed terminal): then nothing more can be said. */
  private say(text: string): void {
    try {
      this.os.stderr.write(`drover: [${this.os.pid}] ${text}\n`);
    } catch (e) {
      if (typeof (e as { code?: unknown } | null)?.code !== 'string') throw e;
    }
  }

  /**
   * Open again by name: after a rotation the name points at a new file. The
   * new file is opened before the old one is closed, so a name that cannot
   * be opened now (its directory was removed) keeps the old file and says
   * why; it never throws.
   */
  reopen(): string | null {
    if (this.target === '-') return null;
    let fd: number;
    try {
      fd = openLogFile(this.os, this.target);
    } catch (e) {
      return `cannot reopen ${this.target}, still writing to the file open before: ${errnoText(e)}`;
    }
    if (this.fd >= 0) this.os.fs.close(this.fd);
    this.fd = fd;
    return null;
  }

  close(): void {
    if (this.fd >= 0) this.os.fs.close(this.fd);
    this.fd = -1;
    const f = this.file;
    if (f === null) return;
    this.file = null;
    if (--f.sinks > 0) return;
    if (f.failing) this.say(`closing ${this.target}, which could not be written; ${f.dropped} line(s) were dropped`);
    f.failing = false;
    f.dropped = 0;
    f.skip = false;
    // A line left unfinished (its writer died mid-line: a companion's output) is ended before this process writes the file again.
    if (f.open) f.cut = true;
    else FILES.get(this.os)?.delete(this.target);
  }
}

/** What a process's sinks of one file share: how many are open, and the outage they are in. */
interface FileState {
  sinks: number;
  failing: boolean;
  dropped: number;
  open: boolean; // what was written last does not end a line
  cut: boolean; // that line will not be finished (a write failed): a newline goes before the next
  skip: boolean; // the last write failed inside a line: its rest is dropped too
}

/**
 * Per process (its Os: in the simulator many processes share this module)
 * and file. A WeakMap, so a process gone takes its entries with it.
 */
const FILES = new WeakMap<Os, Map<string, FileState>>();

/** A log path drover will not open: what is there, or its directory, lets another user choose where the lines go. */
export class LogPathError extends Error {}

/**
 * Opens a log file for append, creating it if missing. Another user who can
 * write into the log's directory (a shared /tmp) could put a symlink there,
 * to a file of drover's user (root then appends client-chosen text to any
 * file), or a FIFO (the open blocks: the server stops, and so did the
 * arbiter's reopen on USR1); a review did both. So in a directory that
 * anyone but its owner (this uid or root) can write into, what is at the
 * path must be a regular file of this uid or root's, never followed; a
 * missing one is created with O_EXCL (which never follows a symlink), and
 * then nobody else can swap it: such a directory must be sticky, where only
 * an entry's owner may rename or remove it. One anyone can write and not
 * sticky is refused. In a directory only its owner writes (/dev, /var/log/app)
 * the path is opened as it is: /dev/stdout, a FIFO to a log shipper.
 */
export function openLogFile(os: Os, target: string): number {
  const cut = target.lastIndexOf('/');
  const dir = cut < 0 ? '.' : cut === 0 ? '/' : target.slice(0, cut);
  let d: Stat | null = null;
  try {
    d = os.fs.stat(dir);
  } catch (e) {
    errnoText(e); // an errno (the open below says which), or a bug, rethrown
  }
  const shared = d !== null && ((d.mode & 0o022) !== 0 || (d.uid !== os.uid && d.uid !== 0));
  if (!shared) return os.fs.open(target, 'a', 0o644);
  if ((d!.mode & 0o002) !== 0 && (d!.mode & 0o1000) === 0) {
    throw new LogPathError(`its directory ${dir} (mode ${(d!.mode & 0o7777).toString(8).padStart(3, '0')}) is writable by any user and not sticky: ` +
      'another user could put a symlink or a FIFO in the log\'s place; choose a directory of your own');
  }
  for (let tries = 0; ; tries++) {
    let st: Stat;
    try {
      st = os.fs.lstat(target);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
      try {
        os.fs.close(os.fs.open(target, 'wx', 0o644));
      } catch (e2) {
        // Made by someone else in between: look at what it is.
        if ((e2 as { code?: unknown }).code !== 'EEXIST' || tries > 0) throw e2;
      }
      continue;
    }
    // A directory: the open says EISDIR, with its fix (nothing to fear from opening one).
    if (st.isDirectory()) return os.fs.open(target, 'a', 0o644);
    if (st.isSymbolicLink() || !st.isFile()) {
      throw new LogPathError(`it is ${st.isSymbolicLink() ? `a symlink (owned by uid ${st.uid})` : 'a FIFO, socket or device'} ` +
        `in ${dir}, which other users can write into: drover does not follow or open it there; remove it, or choose a directory of your own`);
    }
    if (st.uid !== os.uid && st.uid !== 0) {
      throw new LogPathError(`the file belongs to uid ${st.uid}, not to drover's user (uid ${os.uid}) or root, in ${dir}, which other users can write into: ` +
        `remove it, or chown it to uid ${os.uid}`);
    }
    return os.fs.open(target, 'a', 0o644);
  }
}

/** The errno of a failed file call and what it means, e.g. "ENOENT: no such directory". Anything but an errno is rethrown. */
function errnoText(e: unknown): string {
  if (e instanceof LogPathError) return e.message;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') throw e;
  return `${code}: ${ERRNO_MEANING[code] ?? (e as Error).message.replace(/^[A-Z]+: /, '').replace(/, open .*$/, '')}`;
}

// On open(path, 'a'), which creates a missing file, ENOENT can only mean a directory on the way is missing.
const ERRNO_MEANING: Readonly<Record<string, string>> = {
  ENOENT: 'no such directory',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
};

const ERRNO_FIX: Readonly<Record<string, string>> = {
  ENOENT: 'create the directory or choose another path',
  EISDIR: 'name a file in it or choose another path',
  EACCES: "give drover's user write access or choose another path",
  EPERM: "give drover's user write access or choose another path",
};

/**
 * Why the log file a setting names cannot be opened, in one line naming the
 * setting, the path, the errno and the fix; null when it can (stderr and
 * off always can). It is opened for append, as the server would open it
 * (so a missing file is created), and closed again.
 */
export function logFileProblem(os: Os, setting: 'access_log' | 'error_log', target: string | null): string | null {
  if (target === null || target === '-') return null;
  try {
    os.fs.close(openLogFile(os, target));
    return null;
  } catch (e) {
    if (e instanceof LogPathError) return `${setting} ${target}: ${e.message}`;
    const why = errnoText(e);
    const code = why.slice(0, why.indexOf(':'));
    return `${setting} ${target}: cannot open (${why}); ${ERRNO_FIX[code] ?? 'choose another path'}`;
  }
}

/** logFileProblem for both log settings: what stops a start (or a reload) before any worker is spawned. */
export function logFileProblems(os: Os, c: { readonly error_log: string; readonly access_log: string | null }): string[] {
  return [logFileProblem(os, 'error_log', c.error_log), logFileProblem(os, 'access_log', c.access_log)].filter((p) => p !== null);
}

export type LogRole = 'arbiter' | 'worker' | 'slow-worker' | 'manager';

/** Structured context for a log line: `key=value` pairs in text, keys of the object in JSON. */
export type LogFields = Readonly<Record<string, string | number | boolean | null>>;

export interface LoggerOptions {
  format?: LogFormat; // default 'text'
  role?: LogRole; // default 'arbiter'; JSON only, text lines stay gunicorn's
}

const STREAMS = ['stdout', 'stderr'] as const;
/** Per process (its Os), the streams whose loss its error log has told (Logger.tellLost): a reload's new Logger does not tell again. */
const TOLD = new WeakMap<Os, Set<(typeof STREAMS)[number]>>();

// A JSON line's own keys: fields of the same name are dropped, not allowed to forge them.
const RESERVED: ReadonlySet<string> = new Set(['ts', 'level', 'pid', 'role', 'msg']);

/**
 * The error log. Text: gunicorn's `[2026-11-26 07:13:00 +0000] [123] [INFO] message`
 * then ` key=value` per field. JSON: one object a line, ts, level, pid, role,
 * msg, then the fields. Either way one message is one line: text escapes
 * control characters, CR and LF as \x0d and \x0a (a stack trace becomes one long line, which
 * grep and log shippers keep together), JSON.stringify escapes every control
 * character and lone surrogate.
 */
export class Logger {
  private readonly min: number;
  readonly format: LogFormat;
  readonly role: LogRole;
  constructor(private readonly os: Os, readonly sink: LogSink, level: Level, opts: LoggerOptions = {}) {
    this.min = RANK[level];
    this.format = opts.format ?? 'text';
    this.role = opts.role ?? 'arbiter';
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.min;
  }

  log(level: Level, message: string, fields?: LogFields): void {
    if (RANK[level] < this.min) return;
    if (RANK.warning >= this.min) this.tellLost();
    this.sink.write(this.format === 'json' ? this.json(level, message, fields) : this.text(level, message, fields));
  }

  /**
   * A stdout or stderr of this process's that broke (its reader went away:
   * `| head`, a killed `| tee`) drops what is written there from then on
   * (Writer.lost), and the process keeps serving. That is said once per
   * process and stream, ahead of the next line of this log, unless this log
   * is that stream itself: with error_log '-' a lost stderr leaves nowhere to
   * say it (until a reload points error_log at a file). Every process says
   * it for itself: each loses its own output.
   */
  private tellLost(): void {
    for (const name of STREAMS) {
      const why = this.os[name].lost();
      if (why === null) continue;
      let told = TOLD.get(this.os);
      if (told === undefined) TOLD.set(this.os, (told = new Set()));
      // Not told yet: a reload that points error_log at a file tells it there.
      if (told.has(name) || (name === 'stderr' && this.sink.target === '-')) continue;
      told.add(name);
      const what = name === 'stderr' ? "the app's output, logs set to '-'" : "the app's output";
      const message = `${name} cannot be written (${why}): what this process writes there (${what}) is dropped from now on, and it keeps serving; ` +
        `to keep those lines, restart drover with its ${name} going to a reader that stays (a file, journald)`;
      this.sink.write(this.format === 'json' ? this.json('warning', message, undefined) : this.text('warning', message, undefined));
    }
  }

  private text(level: Level, message: string, fields: LogFields | undefined): string {
    let line = `[${logTime(this.os.wallTime())}] [${this.os.pid}] [${level.toUpperCase()}] ${oneLine(message)}`;
    if (fields !== undefined) {
      for (const k in fields) line += ` ${oneLine(k)}=${textValue(fields[k] ?? null)}`;
    }
    return line + '\n';
  }

  private json(level: Level, message: string, fields: LogFields | undefined): string {
    let line = `{"ts":"${isoTime(this.os.wallTime())}","level":"${level}","pid":${this.os.pid},"role":"${this.role}","msg":${JSON.stringify(message)}`;
    if (fields !== undefined) {
      for (const k in fields) if (!RESERVED.has(k)) line += `,${JSON.stringify(k)}:${JSON.stringify(fields[k] ?? null)}`; // undefined from untyped callers would not be JSON
    }
    return line + '}\n';
  }

  debug(m: string, fields?: LogFields): void { this.log('debug', m, fields); }
  info(m: string, fields?: LogFields): void { this.log('info', m, fields); }
  warning(m: string, fields?: LogFields): void { this.log('warning', m, fields); }
  error(m: string, fields?: LogFields): void { this.log('error', m, fields); }
  critical(m: string, fields?: LogFields): void { this.log('critical', m, fields); }
}

// Module-level patterns and replacers: nothing is compiled or closed over per line.
// Control characters: C0 but the tab, DEL and C1. A line break would forge a
// line; ESC and CSI (0x9b) would drive the terminal of whoever runs tail -f
// (an app error carrying client text wrote a raw ESC, a review found).
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
const QUOTED_SPECIAL = /["\\\x00-\x1f\x7f-\x9f]/;
const QUOTED_SPECIALS = /["\\\x00-\x1f\x7f-\x9f]/g;
const NEEDS_QUOTES = /[\s"\\=\x00-\x1f\x7f-\x9f]/;
const hexEscape = (c: string): string => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0');

/** The text with control characters (CONTROL) as \xNN: CR and LF as \x0d and \x0a; the same string when it has none. */
function oneLine(s: string): string {
  return CONTROL.test(s) ? s.replace(CONTROLS, hexEscape) : s;
}

/** Inside a double-quoted field: ", \\ and control characters as \xNN, as gunicorn's access log does for ", \\, CR and LF. */
function quotable(s: string): string {
  return QUOTED_SPECIAL.test(s) ? s.replace(QUOTED_SPECIALS, hexEscape) : s;
}

/** A text-format field value: bare when it can be, else quoted; null is `-`, as in the access log. */
function textValue(v: string | number | boolean | null): string {
  if (v === null) return '-';
  if (typeof v !== 'string') return String(v);
  return v === '' || NEEDS_QUOTES.test(v) ? `"${quotable(v)}"` : v;
}

export interface AccessEntry {
  remote: string | undefined;
  start: number; // epoch ms
  method: string;
  url: string;
  httpVersion: string;
  status: number;
  bytes: number | null;
  referer: string | undefined;
  userAgent: string | undefined;
  durationMs: number;
  /** The lane that served the request; null (or absent) when lanes are off. */
  lane?: 'fast' | 'slow' | null;
  /** The route key string (`GET /users/:id`, route-key.ts's routeKeyString); null (or absent) when not computed. */
  route?: string | null;
}

/**
 * One access log line. Text: Common Log Format plus referer, user agent and
 * duration in seconds — gunicorn's default access format with `%(L)s`
 * appended:
 * `127.0.0.1 - - [26/Nov/2026:07:13:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8.5.0" 0.000412`
 * and, only when the request has a lane or a route (lanes on), ` lane=fast
 * route="GET /users/:id" duration_ms=0.412`, so that lanes-off lines are
 * unchanged. JSON needs the writer's pid (and role, 'worker' unless said):
 * `{"ts","level":"info","pid","role","msg":"access","remote","method","url",
 * "http_version","status","bytes","referer","user_agent","lane","route","duration_ms"}`,
 * ts being the request's start as in the text line, absent values null.
 */
export function accessLine(e: AccessEntry, format?: 'text'): string;
export function accessLine(e: AccessEntry, format: LogFormat, pid: number, role?: LogRole): string;
export function accessLine(e: AccessEntry, format: LogFormat = 'text', pid = 0, role: LogRole = 'worker'): string {
  const lane = e.lane ?? null;
  const route = e.route ?? null;
  if (format === 'json') {
    return `{"ts":"${isoTime(e.start)}","level":"info","pid":${pid},"role":"${role}","msg":"access"` +
      `,"remote":${jsonOrNull(e.remote)},"method":${JSON.stringify(e.method)},"url":${JSON.stringify(e.url)}` +
      `,"http_version":${JSON.stringify(e.httpVersion)},"status":${e.status},"bytes":${e.bytes ?? 'null'}` +
      `,"referer":${jsonOrNull(e.referer)},"user_agent":${jsonOrNull(e.userAgent)}` +
      `,"lane":${lane === null ? 'null' : `"${lane}"`},"route":${jsonOrNull(route)},"duration_ms":${JSON.stringify(roundMs(e.durationMs))}}\n`;
  }
  const line = `${e.remote ?? '-'} - - [${clfTime(e.start)}] "${quotable(`${e.method} ${e.url} HTTP/${e.httpVersion}`)}" ${e.status} ${e.bytes ?? '-'} "${clfField(e.referer)}" "${clfField(e.userAgent)}" ${(e.durationMs / 1000).toFixed(6)}`;
  if (lane === null && route === null) return line + '\n';
  return `${line} lane=${lane ?? '-'} route=${route === null ? '-' : `"${quotable(route)}"`} duration_ms=${e.durationMs.toFixed(3)}\n`;
}

function clfField(s: string | undefined): string {
  return s === undefined || s === '' ? '-' : quotable(s);
}

function jsonOrNull(s: string | null | undefined): string {
  return s === undefined || s === null ? 'null' : JSON.stringify(s);
}

/** Milliseconds to the microsecond, as the text line's seconds; never NaN in JSON (stringify makes it null). */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * At most one line a second per kind, whatever a flood of clients does; the
 * lines held back are counted into the next one that passes.
 */
export class Throttle {
  private readonly last = new Map<string, { at: number; held: number }>();
  constructor(private readonly now: () => number, private readonly log: (m: string) => void, private readonly everyMs = 1000) {}

  say(kind: string, message: string): void {
    const now = this.now();
    const k = this.last.get(kind);
    if (k !== undefined && now - k.at < this.everyMs) {
      k.held++;
      return;
    }
    const held = k?.held ?? 0;
    this.last.set(kind, { at: now, held: 0 });
    this.log(held > 0 ? `${message} (and ${held} more like it since the last such line)` : message);
  }
}
