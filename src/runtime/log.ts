// Error log and access log. Each goes to stderr ('-') or to a file opened in
// append mode, so several processes can share one file line by line, and
// USR1 reopens it after logrotate moved it away.
import type { Os } from '../os/types.js';
import { clfTime, logTime } from './time-format.js';

export type Level = 'debug' | 'info' | 'warning' | 'error' | 'critical';
const RANK: Record<Level, number> = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };

/** A log destination: '-' is stderr, anything else a path. */
export class LogSink {
  private fd = -1;
  constructor(private readonly os: Os, readonly target: string) {
    this.open();
  }

  private open(): void {
    if (this.target !== '-') this.fd = this.os.fs.open(this.target, 'a', 0o644);
  }

  write(line: string): void {
    if (this.fd < 0) this.os.stderr.write(line);
    else this.os.fs.write(this.fd, line);
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
      fd = this.os.fs.open(this.target, 'a', 0o644);
    } catch (e) {
      return `cannot reopen ${this.target}, still writing to the file open before: ${errnoText(e)}`;
    }
    this.close();
    this.fd = fd;
    return null;
  }

  close(): void {
    if (this.fd >= 0) this.os.fs.close(this.fd);
    this.fd = -1;
  }
}

/** The errno of a failed file call and what it means, e.g. "ENOENT: no such directory". Anything but an errno is rethrown. */
function errnoText(e: unknown): string {
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
    os.fs.close(os.fs.open(target, 'a', 0o644));
    return null;
  } catch (e) {
    const why = errnoText(e);
    const code = why.slice(0, why.indexOf(':'));
    return `${setting} ${target}: cannot open (${why}); ${ERRNO_FIX[code] ?? 'choose another path'}`;
  }
}

/** logFileProblem for both log settings: what stops a start (or a reload) before any worker is spawned. */
export function logFileProblems(os: Os, c: { readonly error_log: string; readonly access_log: string | null }): string[] {
  return [logFileProblem(os, 'error_log', c.error_log), logFileProblem(os, 'access_log', c.access_log)].filter((p) => p !== null);
}

export class Logger {
  private readonly min: number;
  constructor(private readonly os: Os, readonly sink: LogSink, level: Level) {
    this.min = RANK[level];
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.min;
  }

  log(level: Level, message: string): void {
    if (RANK[level] < this.min) return;
    this.sink.write(`[${logTime(this.os.wallTime())}] [${this.os.pid}] [${level.toUpperCase()}] ${message}\n`);
  }

  debug(m: string): void { this.log('debug', m); }
  info(m: string): void { this.log('info', m); }
  warning(m: string): void { this.log('warning', m); }
  error(m: string): void { this.log('error', m); }
  critical(m: string): void { this.log('critical', m); }
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
}

/**
 * Common Log Format plus referer, user agent and duration in seconds —
 * gunicorn's default access format with `%(L)s` appended:
 * `127.0.0.1 - - [26/Nov/2026:07:13:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8.5.0" 0.000412`
 */
export function accessLine(e: AccessEntry): string {
  const q = (s: string | undefined) => (s === undefined || s === '' ? '-' : s.replace(/["\\\n\r]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0')));
  return `${e.remote ?? '-'} - - [${clfTime(e.start)}] "${q(`${e.method} ${e.url} HTTP/${e.httpVersion}`)}" ${e.status} ${e.bytes ?? '-'} "${q(e.referer)}" "${q(e.userAgent)}" ${(e.durationMs / 1000).toFixed(6)}\n`;
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
