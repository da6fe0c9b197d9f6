// Log formats (text, JSON), log fields, the access line with lanes, and the
// client address behind a proxy (forwarded_allow_ips + X-Forwarded-For).
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Os } from '../../src/os/types.js';
import { canonicalIP, clientAddress } from '../../src/runtime/client-addr.js';
import { accessLine, LogSink, Logger, type AccessEntry, type LoggerOptions } from '../../src/runtime/log.js';
import { clfTime } from '../../src/runtime/time-format.js';

const T = 1_796_524_200_123; // 2026-12-06T02:30:00.123Z

/** A Logger writing to a fake stderr; `out` holds what it wrote. */
function logger(opts?: LoggerOptions, level: 'debug' | 'info' = 'info') {
  const out: string[] = [];
  const os = { pid: 123, wallTime: () => T, stdout: { lost: () => null }, stderr: { write: (s: string) => void out.push(s), lost: () => null } } as unknown as Os;
  return { log: new Logger(os, new LogSink(os, '-'), level, opts), out };
}

/** Exactly one line, ended by its only newline. */
function oneLine(s: string): void {
  expect(s.endsWith('\n')).toBe(true);
  expect(s.indexOf('\n')).toBe(s.length - 1);
  expect(s.includes('\r')).toBe(false);
}

/** Well-formed UTF-16, so that its UTF-8 bytes are exactly it (no U+FFFD substitution). */
function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

describe('error log', () => {
  test('text is gunicorn\'s line, unchanged; the level threshold holds', () => {
    const { log, out } = logger();
    log.info('Listening at: http://127.0.0.1:8000 (123)');
    log.debug('not shown');
    log.critical('WORKER TIMEOUT (pid:7)');
    expect(out).toEqual([
      '[2026-12-06 02:30:00 +0000] [123] [INFO] Listening at: http://127.0.0.1:8000 (123)\n',
      '[2026-12-06 02:30:00 +0000] [123] [CRITICAL] WORKER TIMEOUT (pid:7)\n',
    ]);
  });

  test('the default options are text and role arbiter; an empty options object is the same', () => {
    const a = logger();
    const b = logger({});
    a.log.warning('x');
    b.log.warning('x');
    expect(a.out).toEqual(b.out);
    expect(a.log.format).toBe('text');
    expect(a.log.role).toBe('arbiter');
  });

  test('JSON: one object a line with ts, level, pid, role and msg, in that order', () => {
    const { log, out } = logger({ format: 'json', role: 'worker' });
    log.warning('slow request');
    log.debug('not shown');
    expect(out).toHaveLength(1);
    oneLine(out[0]!);
    const o = JSON.parse(out[0]!);
    expect(Object.keys(o)).toEqual(['ts', 'level', 'pid', 'role', 'msg']);
    expect(o).toEqual({ ts: '2026-12-06T02:30:00.123Z', level: 'warning', pid: 123, role: 'worker', msg: 'slow request' });
    expect(o.ts).toBe(new Date(T).toISOString());
  });

  test.each(['arbiter', 'worker', 'slow-worker', 'manager'] as const)('JSON role %s', (role) => {
    const { log, out } = logger({ format: 'json', role });
    log.error('e');
    expect(JSON.parse(out[0]!).role).toBe(role);
  });

  test('JSON role defaults to arbiter', () => {
    const { log, out } = logger({ format: 'json' });
    log.info('up');
    expect(JSON.parse(out[0]!)).toMatchObject({ role: 'arbiter', level: 'info' });
  });

  test('text fields are key=value pairs, quoted when they hold blanks, quotes, backslashes or =', () => {
    const { log, out } = logger({}, 'debug');
    log.info('worker exited', { pid: 42, code: 0, signal: null, clean: true, reason: 'max requests', plain: 'ok-1.2' });
    log.debug('d', { q: 'say "hi"', b: 'a\\b', eq: 'k=v', empty: '', nl: 'one\ntwo\r' });
    expect(out).toEqual([
      '[2026-12-06 02:30:00 +0000] [123] [INFO] worker exited pid=42 code=0 signal=- clean=true reason="max requests" plain=ok-1.2\n',
      '[2026-12-06 02:30:00 +0000] [123] [DEBUG] d q="say \\x22hi\\x22" b="a\\x5cb" eq="k=v" empty="" nl="one\\x0atwo\\x0d"\n',
    ]);
  });

  test('JSON fields are keys after msg; they never override ts, level, pid, role or msg', () => {
    const { log, out } = logger({ format: 'json', role: 'manager' });
    log.error('companion died', { name: 'web', code: 1, ok: false, signal: null, ts: 'forged', level: 'debug', pid: 1, role: 'arbiter', msg: 'forged' });
    oneLine(out[0]!);
    const o = JSON.parse(out[0]!);
    expect(Object.keys(o)).toEqual(['ts', 'level', 'pid', 'role', 'msg', 'name', 'code', 'ok', 'signal']);
    expect(o).toEqual({ ts: '2026-12-06T02:30:00.123Z', level: 'error', pid: 123, role: 'manager', msg: 'companion died', name: 'web', code: 1, ok: false, signal: null });
  });

  test('JSON: a field that is not a finite number or is undefined is null, never invalid JSON', () => {
    const { log, out } = logger({ format: 'json' });
    log.info('m', { nan: NaN, inf: Infinity, undef: undefined as unknown as null });
    expect(JSON.parse(out[0]!)).toMatchObject({ nan: null, inf: null, undef: null });
  });

  const HOSTILE = 'a\nb\r\nc "quoted" back\\slash \u0000\u001b[31m \u2028 \ud800 lone \udc00 \ud83d\ude00\n[2026-12-06 02:30:00 +0000] [1] [CRITICAL] forged';

  test('hostile message in text: one line, CR and LF as \\x0d \\x0a, the rest kept', () => {
    const { log, out } = logger();
    log.error(HOSTILE, { [`k\ney`]: HOSTILE });
    oneLine(out[0]!);
    expect(out[0]!.startsWith('[2026-12-06 02:30:00 +0000] [123] [ERROR] a\\x0ab\\x0d\\x0ac "quoted" back\\slash')).toBe(true);
    expect(out[0]).toContain('\\x0a[2026-12-06 02:30:00 +0000] [1] [CRITICAL] forged k\\x0aey="a\\x0ab');
  });

  test('hostile message in JSON: one line of well-formed text that parses back to the message', () => {
    const { log, out } = logger({ format: 'json' });
    log.error(HOSTILE, { [`k"\ney`]: HOSTILE });
    oneLine(out[0]!);
    expect(wellFormed(out[0]!)).toBe(true);
    const o = JSON.parse(out[0]!);
    expect(o.msg).toBe(HOSTILE);
    expect(o['k"\ney']).toBe(HOSTILE);
  });

  test('any string as message and field, in both formats: one line; JSON parses back', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 20 }), (m, v) => {
      const t = logger();
      t.log.info(m, { f: v });
      oneLine(t.out[0]!);
      const j = logger({ format: 'json' });
      j.log.info(m, { f: v });
      oneLine(j.out[0]!);
      expect(wellFormed(j.out[0]!)).toBe(true);
      expect(JSON.parse(j.out[0]!)).toMatchObject({ msg: m, f: v });
    }), { numRuns: 500 });
  });

  test('a 1 MB message full of newlines is one line in both formats', () => {
    const big = 'x\n"\ud800'.repeat(256 * 1024);
    const t = logger();
    t.log.info(big);
    oneLine(t.out[0]!);
    const j = logger({ format: 'json' });
    j.log.info(big);
    oneLine(j.out[0]!);
    expect(JSON.parse(j.out[0]!).msg).toBe(big);
  });
});

describe('a lost stdout or stderr (its reader went away)', () => {
  /** An Os whose streams can be lost, and a sink named `target` that records its lines. */
  function world(target: string) {
    const lost: { stdout: string | null; stderr: string | null } = { stdout: null, stderr: null };
    const os = { pid: 7, wallTime: () => T, stdout: { lost: () => lost.stdout }, stderr: { lost: () => lost.stderr } } as unknown as Os;
    const lines: string[] = [];
    const sink = { target, write: (l: string) => void lines.push(l) } as unknown as LogSink;
    return { os, lost, lines, sink };
  }
  const TOLD = (name: string) =>
    `[2026-12-06 02:30:00 +0000] [7] [WARNING] ${name} cannot be written (EPIPE: its reader is gone): what this process writes there (the app's output${name === 'stderr' ? ", logs set to '-'" : ''}) ` +
    `is dropped from now on, and it keeps serving; to keep those lines, restart drover with its ${name} going to a reader that stays (a file, journald)\n`;

  test('an error log in a file tells each lost stream once per process, ahead of its next line, whichever Logger of the process writes it', () => {
    const w = world('/var/log/drover/error.log');
    const log = new Logger(w.os, w.sink, 'info');
    log.info('one');
    w.lost.stderr = 'EPIPE: its reader is gone';
    log.info('two');
    log.info('three');
    // A reload's new Logger, same process: not told again.
    const again = new Logger(w.os, w.sink, 'info');
    w.lost.stdout = 'EPIPE: its reader is gone';
    again.info('four');
    again.info('five');
    expect(w.lines.map((l) => (l.includes('[WARNING]') ? l : l.slice(l.lastIndexOf('] ') + 2)))).toEqual([
      'one\n', TOLD('stderr'), 'two\n', 'three\n', TOLD('stdout'), 'four\n', 'five\n',
    ]);
  });

  test("an error log on stderr cannot tell stderr's loss (it is dropped there too), but tells stdout's, and a reload to a file tells stderr's", () => {
    const w = world('-');
    const log = new Logger(w.os, w.sink, 'info');
    w.lost.stderr = 'EPIPE: its reader is gone';
    log.info('one');
    w.lost.stdout = 'EPIPE: its reader is gone';
    log.info('two');
    expect(w.lines.filter((l) => l.includes('[WARNING]'))).toEqual([TOLD('stdout')]);
    const file = world('/var/log/drover/error.log');
    new Logger(w.os, file.sink, 'info').info('three');
    expect(file.lines.filter((l) => l.includes('[WARNING]'))).toEqual([TOLD('stderr')]);
  });

  test('a log_level above warning does not tell it; JSON tells it as a warning object', () => {
    const w = world('/var/log/drover/error.log');
    w.lost.stderr = 'EPIPE: its reader is gone';
    new Logger(w.os, w.sink, 'error').error('one');
    expect(w.lines).toHaveLength(1);
    const j = world('/var/log/drover/error.log');
    j.lost.stderr = 'EPIPE: its reader is gone';
    new Logger(j.os, j.sink, 'info', { format: 'json' }).info('one');
    expect(j.lines.map((l) => JSON.parse(l))).toMatchObject([{ level: 'warning', pid: 7, msg: expect.stringMatching(/^stderr cannot be written \(EPIPE: its reader is gone\)/) }, { msg: 'one' }]);
  });
});

const ENTRY: AccessEntry = {
  remote: '127.0.0.1',
  start: 1_795_677_180_000,
  method: 'GET',
  url: '/users/42?x=1',
  httpVersion: '1.1',
  status: 200,
  bytes: 12,
  referer: undefined,
  userAgent: 'curl/8.5.0',
  durationMs: 0.412,
};

// accessLine as it was before lanes: lanes-off text lines must stay byte for byte this.
function before(e: AccessEntry): string {
  const q = (s: string | undefined) => (s === undefined || s === '' ? '-' : s.replace(/["\\\x00-\x1f\x7f-\x9f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0')));
  return `${e.remote ?? '-'} - - [${clfTime(e.start)}] "${q(`${e.method} ${e.url} HTTP/${e.httpVersion}`)}" ${e.status} ${e.bytes ?? '-'} "${q(e.referer)}" "${q(e.userAgent)}" ${(e.durationMs / 1000).toFixed(6)}\n`;
}

test('text: control characters in a message or a field (ESC, CSI 0x9b, DEL, NUL) are written \\xNN, a tab as it is; JSON escapes them its way', () => {
  const { log, out } = logger();
  log.error('GET /throw\nforged\x1b[31m\u009b2J\x7f\x00\tend', { ua: 'a\x1bb' });
  expect(out[0]).toContain('[ERROR] GET /throw\\x0aforged\\x1b[31m\\x9b2J\\x7f\\x00\tend ua="a\\x1bb"');
  expect(out[0]!.slice(0, -1)).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/);
  const j = logger({ format: 'json' });
  j.log.error('a\x1bb\u009b');
  expect(JSON.parse(j.out[0]!).msg).toBe('a\x1bb\u009b');
});

describe('access log', () => {
  test('text without lanes: gunicorn\'s line, as before', () => {
    expect(accessLine(ENTRY)).toBe('127.0.0.1 - - [26/Nov/2026:07:13:00 +0000] "GET /users/42?x=1 HTTP/1.1" 200 12 "-" "curl/8.5.0" 0.000412\n');
    expect(accessLine({ ...ENTRY, lane: null, route: null }, 'text')).toBe(accessLine(ENTRY));
  });

  test('text without lanes equals a reference accessLine for any entry (quotes, backslashes and control characters as \\xNN)', () => {
    const str = fc.string({ unit: 'binary', maxLength: 30 });
    fc.assert(fc.property(
      fc.record({
        remote: fc.option(str, { nil: undefined }), start: fc.integer({ min: 0, max: 4_102_444_800_000 }), method: str, url: str, httpVersion: str,
        status: fc.integer({ min: 100, max: 999 }), bytes: fc.option(fc.nat(), { nil: null }), referer: fc.option(str, { nil: undefined }),
        userAgent: fc.option(str, { nil: undefined }), durationMs: fc.double({ min: 0, max: 1e7, noNaN: true }),
      }),
      (e) => { expect(accessLine(e)).toBe(before(e)); },
    ), { numRuns: 500 });
  });

  test('text with lanes appends lane, route and duration_ms', () => {
    const e = { ...ENTRY, lane: 'slow' as const, route: 'GET /users/:id', durationMs: 1234.5678 };
    expect(accessLine(e)).toBe('127.0.0.1 - - [26/Nov/2026:07:13:00 +0000] "GET /users/42?x=1 HTTP/1.1" 200 12 "-" "curl/8.5.0" 1.234568 lane=slow route="GET /users/:id" duration_ms=1234.568\n');
    expect(accessLine({ ...ENTRY, lane: 'fast', route: null })).toMatch(/ 0\.000412 lane=fast route=- duration_ms=0\.412\n$/);
  });

  test('hostile request line, referer, agent and route stay one text line', () => {
    const e = { ...ENTRY, url: '/a"\r\nb\\', referer: 'x\ny', userAgent: '"', lane: 'fast' as const, route: 'GET /a"\nb' };
    const line = accessLine(e);
    oneLine(line);
    expect(line).toContain('"GET /a\\x22\\x0d\\x0ab\\x5c HTTP/1.1" 200 12 "x\\x0ay" "\\x22" 0.000412 lane=fast route="GET /a\\x22\\x0ab"');
  });

  test('JSON: the keys in order, absent values null, lanes off', () => {
    const line = accessLine({ ...ENTRY, remote: undefined, bytes: null }, 'json', 77);
    oneLine(line);
    const o = JSON.parse(line);
    expect(Object.keys(o)).toEqual(['ts', 'level', 'pid', 'role', 'msg', 'remote', 'method', 'url', 'http_version', 'status', 'bytes', 'referer', 'user_agent', 'lane', 'route', 'duration_ms']);
    expect(o).toEqual({
      ts: '2026-11-26T07:13:00.000Z', level: 'info', pid: 77, role: 'worker', msg: 'access', remote: null, method: 'GET', url: '/users/42?x=1',
      http_version: '1.1', status: 200, bytes: null, referer: null, user_agent: 'curl/8.5.0', lane: null, route: null, duration_ms: 0.412,
    });
  });

  test('JSON with lanes, a role, and hostile strings', () => {
    const e = { ...ENTRY, url: '/a"\r\nb\\\ud800', referer: 'r', lane: 'slow' as const, route: 'GET /a', durationMs: 2.0004999 };
    const line = accessLine(e, 'json', 9, 'slow-worker');
    oneLine(line);
    expect(wellFormed(line)).toBe(true);
    expect(JSON.parse(line)).toMatchObject({ pid: 9, role: 'slow-worker', url: e.url, referer: 'r', lane: 'slow', route: 'GET /a', duration_ms: 2 });
  });

  test('JSON duration that is not a number is null, not invalid JSON', () => {
    expect(JSON.parse(accessLine({ ...ENTRY, durationMs: NaN }, 'json', 1)).duration_ms).toBeNull();
  });
});

describe('clientAddress', () => {
  const LOCAL = ['127.0.0.1'];
  const TWO = ['127.0.0.1', '10.0.0.5'];

  test('no X-Forwarded-For, or no peer: the peer', () => {
    expect(clientAddress('127.0.0.1', undefined, LOCAL)).toBe('127.0.0.1');
    expect(clientAddress(undefined, '203.0.113.7', LOCAL)).toBeUndefined();
    expect(clientAddress('127.0.0.1', '203.0.113.7', [])).toBe('127.0.0.1');
  });

  test('a Unix-socket peer (no address, nginx on unix:) is trusted by * alone', () => {
    // Before: the header was ignored whatever the setting, and the access log said '-'.
    expect(clientAddress(undefined, '203.0.113.7', ['*'])).toBe('203.0.113.7');
    expect(clientAddress(undefined, '198.51.100.2, 203.0.113.7', ['*'])).toBe('203.0.113.7');
    expect(clientAddress(undefined, 'unknown', ['*'])).toBeUndefined();
    expect(clientAddress(undefined, '203.0.113.7', TWO)).toBeUndefined();
  });

  test('a trusted peer: the X-Forwarded-For address', () => {
    expect(clientAddress('127.0.0.1', '203.0.113.7', LOCAL)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', ' 2001:db8::7 ', LOCAL)).toBe('2001:db8::7');
  });

  test('an untrusted peer sending X-Forwarded-For: ignored', () => {
    expect(clientAddress('198.51.100.2', '127.0.0.1', LOCAL)).toBe('198.51.100.2');
    expect(clientAddress('198.51.100.2', '203.0.113.7', TWO)).toBe('198.51.100.2');
  });

  test('an address the client put in front of the header is not believed: the rightmost untrusted one is', () => {
    expect(clientAddress('127.0.0.1', '6.6.6.6, 203.0.113.7', LOCAL)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '6.6.6.6, 203.0.113.7, 10.0.0.5', TWO)).toBe('203.0.113.7');
    // A chain of trusted proxies is walked through.
    expect(clientAddress('127.0.0.1', ['6.6.6.6, 203.0.113.7', ...Array<string>(20).fill('10.0.0.5')].join(','), TWO)).toBe('203.0.113.7');
  });

  test('every entry trusted: the leftmost (a request from a proxy host itself)', () => {
    expect(clientAddress('127.0.0.1', '10.0.0.5, 127.0.0.1', TWO)).toBe('10.0.0.5');
  });

  test('* trusts any peer, but inside the chain only listed addresses are proxies', () => {
    expect(clientAddress('198.51.100.2', '6.6.6.6, 203.0.113.7', ['*'])).toBe('203.0.113.7');
    expect(clientAddress('198.51.100.2', '203.0.113.7, 10.0.0.5', ['*', '10.0.0.5'])).toBe('203.0.113.7');
    expect(clientAddress('198.51.100.2', undefined, ['*'])).toBe('198.51.100.2');
  });

  test('IPv4-mapped IPv6 is its IPv4 address; IPv6 compares by value', () => {
    expect(clientAddress('::ffff:127.0.0.1', '203.0.113.7', LOCAL)).toBe('203.0.113.7');
    expect(clientAddress('::FFFF:127.0.0.1', '203.0.113.7', LOCAL)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '203.0.113.7, ::ffff:10.0.0.5', TWO)).toBe('203.0.113.7');
    expect(clientAddress('::1', '203.0.113.7', ['0:0:0:0:0:0:0:1'])).toBe('203.0.113.7');
    expect(clientAddress('::ffff:198.51.100.2', '203.0.113.7', LOCAL)).toBe('::ffff:198.51.100.2');
    expect(canonicalIP('::ffff:7f00:1')).toBe('127.0.0.1');
    expect(canonicalIP('2001:DB8:0:0::1')).toBe('2001:db8:0:0:0:0:0:1');
    expect(canonicalIP('fe80::1%eth0')).toBe('fe80:0:0:0:0:0:0:1%eth0');
    expect(canonicalIP('127.000.0.01')).toBe('127.0.0.1');
    expect(canonicalIP('localhost')).toBeNull();
  });

  test('several headers are one list in header order', () => {
    expect(clientAddress('127.0.0.1', ['6.6.6.6', '203.0.113.7, 10.0.0.5'], TWO)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', ['203.0.113.9', '10.0.0.5'], TWO)).toBe('203.0.113.9');
    expect(clientAddress('127.0.0.1', ['203.0.113.9', ''], TWO)).toBe('203.0.113.9');
    expect(clientAddress('127.0.0.1', [], TWO)).toBe('127.0.0.1');
  });

  test('garbage reached before an untrusted address: the peer', () => {
    for (const g of ['unknown', '1.2.3.4:80', '[::1]', '_hidden', '<script>', '256.1.1.1', '1.2.3', ' , ,', '', '203.0.113.7 10.0.0.5', '10.0.0.5, garbage']) {
      expect(clientAddress('127.0.0.1', g, TWO), g).toBe('127.0.0.1');
    }
    // Garbage left of the client is never looked at.
    expect(clientAddress('127.0.0.1', 'garbage, 203.0.113.7', TWO)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', ',,203.0.113.7,', TWO)).toBe('203.0.113.7');
  });

  test('whatever is returned is the peer or an IP address, so it is safe in a log line', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (x) => {
      const got = clientAddress('127.0.0.1', x, ['*', '10.0.0.5'])!;
      expect(got === '127.0.0.1' || canonicalIP(got) !== null).toBe(true);
    }), { numRuns: 2000 });
  });

  test('10,000 entries: bounded, the peer when no untrusted one is near the right', () => {
    const trustedChain = Array<string>(10_000).fill('10.0.0.5');
    // The client at the far left is past the bound: not walked to.
    expect(clientAddress('127.0.0.1', ['203.0.113.7', ...trustedChain].join(', '), TWO)).toBe('127.0.0.1');
    // 10,000 untrusted ones: the rightmost, found at once.
    expect(clientAddress('127.0.0.1', Array<string>(10_000).fill('6.6.6.6').join(', ') + ', 203.0.113.7', TWO)).toBe('203.0.113.7');
    // A megabyte without a comma, and 100,000 empty elements.
    expect(clientAddress('127.0.0.1', '1'.repeat(1 << 20), TWO)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '203.0.113.7' + ','.repeat(100_000), TWO)).toBe('127.0.0.1');
  });

  test('10,000 headers: only a bounded number at the right are read', () => {
    let reads = 0;
    const headers = new Proxy(Array<string>(10_000).fill('10.0.0.5'), {
      get(target, p, r) {
        if (typeof p === 'string' && /^\d+$/.test(p)) reads++;
        return Reflect.get(target, p, r);
      },
    });
    expect(clientAddress('127.0.0.1', headers, TWO)).toBe('127.0.0.1');
    expect(reads).toBeLessThanOrEqual(40);
    reads = 0;
    const empty = new Proxy(Array<string>(10_000).fill(''), { get: (t, p, r) => ((typeof p === 'string' && /^\d+$/.test(p) && reads++), Reflect.get(t, p, r)) });
    expect(clientAddress('127.0.0.1', empty, TWO)).toBe('127.0.0.1');
    expect(reads).toBeLessThanOrEqual(40);
  });
});
