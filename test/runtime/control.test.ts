// The control socket: framing and validation as pure functions (with a
// property over arbitrary chunkings), `drover ctl`'s command line and
// output, and the server, client and ctl as programs on the simulated kernel.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { Control } from '../../src/runtime/arbiter/control.js';
import { ControlError, request } from '../../src/runtime/control/client.js';
import { commandRequest, CTL_USAGE, formatDuration, formatStats, formatStatus, parseCtlArgv, render } from '../../src/runtime/control/ctl.js';
import { locateSocket, SocketUnknown } from '../../src/runtime/control/locate.js';
import {
  COMMANDS, decodeFrame, encodeReply, escapeControl, LineDecoder, MAX_LINE, parseReply, parseRequest, validateRequest,
  type CompanionStatus, type OkReply, type Request,
} from '../../src/runtime/control/protocol.js';
import { defaultControlSocket } from '../../src/runtime/config/index.js';
import { Kernel } from '../../src/sim/index.js';
import { inbox, reap } from '../support/os.js';
import { besideServer, FAKE_STATS } from './control-programs.js';

const enc = (s: string) => new TextEncoder().encode(s);

// ------------------------------------------------------------------ framing

describe('LineDecoder', () => {
  test('splits on newlines, joins lines across chunks, and keeps a UTF-8 character split between chunks whole', () => {
    const d = new LineDecoder();
    const bytes = enc('{"a":"é€😀"}\nsecond');
    const frames = [...d.push(bytes.subarray(0, 7)), ...d.push(bytes.subarray(7, 9)), ...d.push(bytes.subarray(9))];
    expect(frames).toEqual([{ line: '{"a":"é€😀"}' }]);
    expect(d.pending).toBe(6);
    expect(d.push(enc(' line\n\nthird\n'))).toEqual([{ line: 'second line' }, { line: '' }, { line: 'third' }]);
    expect(d.pending).toBe(0);
  });

  test('a line of exactly the limit passes; one byte more is too long, counted whole, and the next line is read normally', () => {
    const d = new LineDecoder(10);
    expect(d.push(enc('0123456789\n'))).toEqual([{ line: '0123456789' }]);
    expect(d.push(enc('0123456789A'))).toEqual([]);
    expect(d.pending).toBe(11);
    expect(d.push(enc('more and more'))).toEqual([]);
    expect(d.push(enc('!\nok\n'))).toEqual([{ tooLong: 25 }, { line: 'ok' }]);
    // Over the limit within one chunk, too.
    expect(d.push(enc('x'.repeat(30) + '\nyes\n'))).toEqual([{ tooLong: 30 }, { line: 'yes' }]);
  });

  test('the default limit is 64 KiB and the error says so', () => {
    expect(MAX_LINE).toBe(65536);
    const d = new LineDecoder();
    const [f] = d.push(enc('y'.repeat(70_000) + '\n'));
    expect(decodeFrame(f!)).toEqual({ ok: false, id: undefined, error: 'line too long (70000 bytes, limit 65536)' });
  });
});

// --------------------------------------------------------------- validation

describe('parseRequest', () => {
  test('every command, with its defaults filled in', () => {
    const ok = (line: string) => {
      const d = parseRequest(line);
      if (!d.ok) throw new Error(d.error);
      return d.req;
    };
    expect(ok('{"cmd":"status"}')).toEqual({ cmd: 'status', name: 'all' });
    expect(ok('{"cmd":"status","name":"web"}')).toEqual({ cmd: 'status', name: 'web' });
    for (const cmd of ['start', 'stop', 'restart']) expect(ok(`{"cmd":"${cmd}","name":"all"}`)).toEqual({ cmd, name: 'all' });
    expect(ok('{"cmd":"reread"}')).toEqual({ cmd: 'reread' });
    expect(ok('{"cmd":"signal","name":"web","signal":"hup"}')).toEqual({ cmd: 'signal', name: 'web', signal: 'SIGHUP' });
    expect(ok('{"cmd":"signal","name":"all","signal":"SIGUSR1"}')).toEqual({ cmd: 'signal', name: 'all', signal: 'SIGUSR1' });
    expect(ok('{"cmd":"pid"}')).toEqual({ cmd: 'pid', name: null });
    expect(ok('{"cmd":"pid","name":"web"}')).toEqual({ cmd: 'pid', name: 'web' });
    expect(ok('{"cmd":"tail","name":"web"}')).toEqual({ cmd: 'tail', name: 'web', lines: 50, stream: 'stdout' });
    expect(ok('{"cmd":"tail","name":"web","lines":100,"stream":"stderr"}')).toEqual({ cmd: 'tail', name: 'web', lines: 100, stream: 'stderr' });
    expect(ok(' {"cmd":"version"} \r')).toEqual({ cmd: 'version' });
    expect(ok('{"cmd":"stats"}')).toEqual({ cmd: 'stats' });
    expect(ok('{"cmd":"tail","name":"web","after":0}')).toEqual({ cmd: 'tail', name: 'web', lines: 50, stream: 'stdout', after: 0 });
    expect(ok('{"cmd":"tail","name":"web","after":1234,"lines":10000}')).toEqual({ cmd: 'tail', name: 'web', lines: 10000, stream: 'stdout', after: 1234 });
    expect(ok('{"cmd":"tail","name":"web","after":null}')).toEqual({ cmd: 'tail', name: 'web', lines: 50, stream: 'stdout' });
    expect(ok('{"cmd":"reload"}')).toEqual({ cmd: 'reload' });
    expect(ok('{"cmd":"scale","workers":1}')).toEqual({ cmd: 'scale', workers: 1 });
    expect(ok('{"cmd":"scale","workers":100000}')).toEqual({ cmd: 'scale', workers: 100000 });
    expect(Object.keys(COMMANDS).sort()).toEqual(['pid', 'reload', 'reread', 'restart', 'scale', 'signal', 'start', 'stats', 'status', 'stop', 'tail', 'version']);
  });

  test('the id is echoed: it comes back with a good request and with a refused one', () => {
    expect(parseRequest('{"cmd":"version","id":7}')).toMatchObject({ ok: true, id: 7 });
    expect(parseRequest('{"cmd":"nope","id":"a"}')).toMatchObject({ ok: false, id: 'a' });
    expect(parseRequest('{"cmd":"version","id":{}}')).toMatchObject({ ok: false, id: undefined, error: expect.stringMatching(/"id" must be a string or a number/) });
    expect(encodeReply({ ok: true, version: '1' }, 7)).toBe('{"id":7,"ok":true,"version":"1"}\n');
    expect(encodeReply({ ok: false, error: 'x' })).toBe('{"ok":false,"error":"x"}\n');
  });

  test.each([
    ['', /^empty line; send one JSON request per line, e.g. \{"cmd":"status"\}/],
    ['{"cmd":"status"', /^invalid JSON \(.+\); send one JSON object per line/],
    ['[1,2]', /^a request is a JSON object like \{"cmd":"status"\}, got an array/],
    ['"status"', /^a request is a JSON object .* got string "status"/],
    ['{"name":"web"}', /^missing "cmd"; .* commands: status, start, stop, restart, reread, signal, pid, tail, version/],
    ['{"cmd":5}', /^"cmd" must be a string, got number 5/],
    ['{"cmd":"stpo","name":"web"}', /^unknown command "stpo"; did you mean "stop"\?/],
    ['{"cmd":"stop"}', /^stop: missing "name"; e\.g\. \{"cmd":"stop","name":"worker"\}/],
    ['{"cmd":"stop","name":""}', /^stop: "name" must be a companion name or "all", got string ""/],
    ['{"cmd":"stop","name":["a"]}', /^stop: "name" must be a companion name or "all", got an array/],
    ['{"cmd":"status","nmae":"web"}', /^status: unknown argument "nmae"; did you mean "name"\? \(status takes name;/],
    ['{"cmd":"reread","all":true}', /^reread: unknown argument "all" \(reread takes no arguments/],
    ['{"cmd":"stats","name":"web"}', /^stats: unknown argument "name" \(stats takes no arguments; e\.g\. \{"cmd":"stats"\}\)/],
    ['{"cmd":"signal","name":"web"}', /^signal: missing "signal"/],
    ['{"cmd":"signal","name":"web","signal":"CHLD"}', /^signal: unknown signal "CHLD"; use one of HUP, INT, QUIT, ABRT, KILL, USR1, USR2, TERM, WINCH/],
    ['{"cmd":"signal","name":"web","signal":9}', /^signal: "signal" must be a signal name/],
    ['{"cmd":"tail","name":"all"}', /^tail: "name" must name one companion; "all" is not accepted here/],
    ['{"cmd":"tail","name":"web","lines":0}', /^tail: "lines" must be a whole number from 1 to 10000, got number 0/],
    ['{"cmd":"tail","name":"web","lines":2.5}', /"lines" must be a whole number/],
    ['{"cmd":"tail","name":"web","stream":"both"}', /^tail: "stream" must be "stdout" or "stderr", got string "both"/],
    ['{"cmd":"pid","name":"all"}', /^pid: "name" must name one companion/],
    ['{"cmd":"toString"}', /^unknown command "toString"/],
    ['{"cmd":"tail","name":"web","after":-1}', /^tail: "after" must be a line sequence number \(a whole number, 0 or more\): the "next" of the last tail reply, got number -1/],
    ['{"cmd":"tail","name":"web","after":1.5}', /^tail: "after" must be a line sequence number/],
    ['{"cmd":"tail","name":"web","after":"7"}', /^tail: "after" must be a line sequence number .*, got string "7"/],
    ['{"cmd":"tail","name":"web","after":1e300}', /^tail: "after" must be a line sequence number/],
    ['{"cmd":"tail","name":"web","aftr":3}', /^tail: unknown argument "aftr"; did you mean "after"\?/],
    ['{"cmd":"reload","generation":2}', /^reload: unknown argument "generation" \(reload takes no arguments; e\.g\. \{"cmd":"reload"\}\)/],
    ['{"cmd":"reloda"}', /^unknown command "reloda"; did you mean "reload"\?/],
    ['{"cmd":"scale"}', /^scale: missing "workers"; e\.g\. \{"cmd":"scale","workers":4\}/],
    ['{"cmd":"scale","workers":0}', /^scale: "workers" must be a whole number of workers from 1 to 100000, got number 0/],
    ['{"cmd":"scale","workers":2.5}', /^scale: "workers" must be a whole number of workers/],
    ['{"cmd":"scale","workers":"4"}', /^scale: "workers" must be a whole number of workers .*, got string "4"/],
    ['{"cmd":"scale","workers":100001}', /^scale: "workers" must be a whole number of workers from 1 to 100000, got number 100001/],
    ['{"cmd":"scale","workers":null}', /^scale: "workers" must be a whole number of workers from 1 to 100000, got null/],
  ])('%j is refused: %s', (line, re) => {
    const d = parseRequest(line);
    expect(d.ok).toBe(false);
    expect(!d.ok && d.error).toMatch(re);
  });

  test('validateRequest is what ctl uses to build requests too', () => {
    expect(validateRequest({ cmd: 'tail', name: 'web', lines: 5 })).toEqual({ ok: true, req: { cmd: 'tail', name: 'web', lines: 5, stream: 'stdout' } });
    expect(validateRequest(null)).toMatchObject({ ok: false });
  });

  test('parseReply accepts {ok:true,...} and {ok:false,error}, nothing else', () => {
    expect(parseReply('{"ok":true,"pid":3}')).toEqual({ ok: true, pid: 3 });
    expect(parseReply('{"ok":false,"error":"no"}')).toEqual({ ok: false, error: 'no' });
    for (const bad of ['{"ok":false}', '[]', 'HTTP/1.1 400 Bad Request', '{"ok":"yes"}']) expect(parseReply(bad)).toBeNull();
  });
});

// ----------------------------------------------------------------- property

describe('property: any chunking of any mix of lines', () => {
  const LIMIT = 200;
  type Line = { kind: 'valid'; text: string } | { kind: 'invalid'; text: string } | { kind: 'long'; text: string };
  const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 10 });
  const valid = fc.oneof(
    fc.constant({ cmd: 'status' }),
    name.map((n) => ({ cmd: 'stop', name: n })),
    fc.tuple(name, fc.integer({ min: 1, max: 10_000 })).map(([n, lines]) => ({ cmd: 'tail', name: n, lines })),
    fc.tuple(name, fc.constantFrom('HUP', 'term', 'SIGUSR1')).map(([n, signal]) => ({ cmd: 'signal', name: n, signal })),
    fc.constant({ cmd: 'version' }),
  );
  // Lines that are not valid requests, none containing a newline.
  const invalid = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }).map((s) => '{' + s.replace(/\n/g, '')),
    fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => JSON.stringify(v)),
    fc.constantFrom('', '   ', '{"cmd":"nope"}', '{"cmd":"stop"}', '{"cmd":"tail","name":"all"}', '{"cmd":"status","id":[1]}'),
  );
  const long = fc.integer({ min: LIMIT + 1, max: 3 * LIMIT }).map((n) => `{"cmd":"status","pad":"${'p'.repeat(n)}"}`);
  const line: fc.Arbitrary<Line> = fc.oneof(
    { weight: 3, arbitrary: valid.map((v) => ({ kind: 'valid' as const, text: JSON.stringify(v) })) },
    { weight: 2, arbitrary: invalid.map((text) => ({ kind: 'invalid' as const, text })) },
    { weight: 1, arbitrary: long.map((text) => ({ kind: 'long' as const, text })) },
  );

  test('one reply per line, in order, never a throw', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }), (lines, cuts) => {
        // Valid lines carry their index as id, so order is checked line by line.
        const texts = lines.map((l, i) => (l.kind === 'valid' ? JSON.stringify({ ...JSON.parse(l.text), id: i }) : l.text));
        const bytes = enc(texts.map((t) => t + '\n').join(''));
        const at = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
        const d = new LineDecoder(LIMIT);
        const replies: string[] = [];
        let from = 0;
        for (const to of [...at, bytes.length]) {
          for (const f of d.push(bytes.subarray(from, to))) {
            const r = decodeFrame(f, LIMIT);
            replies.push(encodeReply(r.ok ? { ok: true, version: 'x' } : { ok: false, error: r.error }, r.id));
          }
          from = to;
        }
        expect(d.pending).toBe(0);
        expect(replies).toHaveLength(lines.length);
        replies.forEach((text, i) => {
          expect(text.endsWith('\n') && !text.slice(0, -1).includes('\n')).toBe(true);
          const r = JSON.parse(text);
          const l = lines[i]!;
          if (l.kind === 'valid') expect(r).toEqual({ id: i, ok: true, version: 'x' });
          else if (l.kind === 'long') expect(r).toEqual({ ok: false, error: `line too long (${enc(texts[i]!).length} bytes, limit ${LIMIT})` });
          else expect(r).toMatchObject({ ok: false, error: expect.any(String) });
        });
      }),
      { numRuns: 400 },
    );
  });
});

// --------------------------------------------------------------- drover ctl

const row = (over: Partial<CompanionStatus> & { name: string }): CompanionStatus => ({
  state: 'RUNNING', pid: 4242, uptime_ms: 190_000, since_ms: 190_000, exits: 0, description: 'pid 4242, uptime 0:03:10', ...over,
});

describe('drover ctl, without a socket', () => {
  test('nothing at the socket path: ENOENT at once and no connect, so a socket another user makes in between is never asked', async () => {
    let connects = 0;
    const enoent = Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
    const fake = {
      uid: 1000,
      fs: { lstat: () => { throw enoent; }, stat: () => { throw enoent; } },
      timer: () => ({ cancel() {}, unref() { return this; } }),
      connect: () => {
        connects++;
        return new Promise(() => {});
      },
    } as unknown as Os;
    await expect(request(fake, '/tmp/shared/drover.sock', { cmd: 'version' }, 1000)).rejects.toMatchObject({
      code: 'ENOENT',
      message: 'no control socket at /tmp/shared/drover.sock: is drover running, and with this socket?',
    });
    expect(connects).toBe(0);
  });

  test('options anywhere, in every spelling; problems all reported', () => {
    expect(parseCtlArgv(['--socket', '/s', 'status', '--json'])).toMatchObject({ ok: true, args: { socket: '/s', json: true, words: ['status'] } });
    expect(parseCtlArgv(['-s/s', 'tail', 'w', '-n', '100'])).toMatchObject({ ok: true, args: { socket: '/s', lines: 100, words: ['tail', 'w'] } });
    expect(parseCtlArgv(['--config=d.json', '--timeout', '2.5', 'pid'])).toMatchObject({ ok: true, args: { config: 'd.json', timeoutMs: 2500 } });
    expect(parseCtlArgv(['--', 'stop', '-weird-name'])).toMatchObject({ ok: true, args: { words: ['stop', '-weird-name'] } });
    expect(parseCtlArgv(['--sokcet', 'x', '--json=1', '-n', '0', '--timeout', 'soon', '--socket', 'a', '--config', 'b'])).toEqual({
      ok: false,
      problems: [
        'unknown option --sokcet; did you mean --socket?',
        '--json takes no value',
        '-n must be a whole number from 1 to 10000, got "0"',
        '--timeout must be a number of seconds over 0, got "soon"',
        'give --socket or --config, not both: --socket names the socket, --config a file that names it',
      ],
    });
    expect(parseCtlArgv(['--socket'])).toEqual({ ok: false, problems: ['--socket needs a value'] });
    expect(parseCtlArgv(['tail', 'w', '-f'])).toMatchObject({ ok: true, args: { follow: true, timeoutMs: null, words: ['tail', 'w'] } });
    expect(parseCtlArgv(['--follow', 'tail', 'w'])).toMatchObject({ ok: true, args: { follow: true } });
    expect(parseCtlArgv(['tail', 'w', '--follow=yes'])).toEqual({ ok: false, problems: ['--follow takes no value'] });
  });

  test('each command line becomes its request, or a usage problem', () => {
    const req = (...w: string[]) => commandRequest(w, null);
    expect(req('status')).toEqual({ ok: true, req: { cmd: 'status', name: 'all' } });
    expect(req('restart', 'all')).toEqual({ ok: true, req: { cmd: 'restart', name: 'all' } });
    expect(req('signal', 'worker-queue', 'HUP')).toEqual({ ok: true, req: { cmd: 'signal', name: 'worker-queue', signal: 'SIGHUP' } });
    expect(commandRequest(['tail', 'w', 'stderr'], 100)).toEqual({ ok: true, req: { cmd: 'tail', name: 'w', lines: 100, stream: 'stderr' } });
    expect(req('pid')).toEqual({ ok: true, req: { cmd: 'pid', name: null } });
    expect(req()).toMatchObject({ ok: false, problem: expect.stringMatching(/^no command given; commands: status, start/) });
    expect(req('statz')).toMatchObject({ ok: false, problem: expect.stringMatching(/^unknown command "statz"; did you mean stats\?/) });
    expect(req('stats')).toEqual({ ok: true, req: { cmd: 'stats' } });
    expect(req('stats', 'all')).toEqual({ ok: false, problem: 'stats takes 0 arguments, got 1: drover ctl stats' });
    expect(req('stop')).toEqual({ ok: false, problem: 'stop takes 1 argument, got 0: drover ctl stop NAME|all' });
    expect(req('signal', 'w', 'BOOM')).toMatchObject({ ok: false, problem: expect.stringMatching(/^unknown signal "BOOM"; use one of HUP/) });
    expect(req('tail', 'all')).toMatchObject({ ok: false, problem: 'tail takes one companion name, not all' });
    expect(req('tail', 'w', 'both')).toMatchObject({ ok: false, problem: 'tail: the stream is stdout or stderr, got "both"' });
    expect(commandRequest(['status'], 5)).toEqual({ ok: false, problem: '-n/--lines is for tail, not status' });
    for (const cmd of [...Object.keys(COMMANDS), 'top']) expect(CTL_USAGE).toContain(`\n  ${cmd}`);
    // reload, scale, top, tail -f.
    expect(req('reload')).toEqual({ ok: true, req: { cmd: 'reload' } });
    expect(req('reload', 'now')).toEqual({ ok: false, problem: 'reload takes 0 arguments, got 1: drover ctl reload' });
    expect(req('scale', '4')).toEqual({ ok: true, req: { cmd: 'scale', workers: 4 } });
    expect(req('scale')).toEqual({ ok: false, problem: 'scale takes 1 argument, got 0: drover ctl scale N' });
    for (const bad of ['0', '-1', '2.5', 'four', '100001', '']) {
      expect(req('scale', bad)).toEqual({ ok: false, problem: `scale: N is a whole number of workers from 1 to 100000, got ${JSON.stringify(bad)}: drover ctl scale 4` });
    }
    expect(req('top')).toEqual({ ok: true, req: { cmd: 'top' } });
    expect(req('top', 'now')).toEqual({ ok: false, problem: 'top takes 0 arguments, got 1: drover ctl top' });
    expect(req('tpo')).toMatchObject({ ok: false, problem: expect.stringMatching(/^unknown command "tpo"; did you mean top\? commands: status, .*, stats, reload, scale, top$/) });
    expect(req('relaod')).toMatchObject({ ok: false, problem: expect.stringMatching(/did you mean reload\?/) });
    expect(commandRequest(['tail', 'w'], 5, true)).toEqual({ ok: true, req: { cmd: 'tail', name: 'w', lines: 5, stream: 'stdout' } });
    expect(commandRequest(['status'], null, true)).toEqual({ ok: false, problem: '-f/--follow is for tail, not status' });
    expect(commandRequest(['top'], null, true)).toEqual({ ok: false, problem: '-f/--follow is for tail, not top (top follows by itself)' });
    expect(CTL_USAGE).toContain('tail NAME [-n LINES] [-f] [stdout|stderr]');
  });

  test('status is a table people can read', () => {
    const out = formatStatus([
      row({ name: 'worker-queue' }),
      row({ name: 'mailer', state: 'STOPPED', pid: null, uptime_ms: undefined, description: 'stopped by request' }),
      row({ name: 'ws', uptime_ms: 2 * 86_400_000 + 5_000, description: '' }),
    ]);
    expect(out).toBe([
      'NAME          STATE    PID   UPTIME      DESCRIPTION',
      'worker-queue  RUNNING  4242  0:03:10     pid 4242, uptime 0:03:10',
      'mailer        STOPPED  -     -           stopped by request',
      'ws            RUNNING  4242  2d 0:00:05',
      '',
    ].join('\n'));
    expect(formatStatus([])).toBe('no companions are configured\n');
    expect(formatDuration(7_999)).toBe('0:00:07');
    expect(formatDuration(3_600_000 * 25)).toBe('1d 1:00:00');
  });

  test('stats: a small table per generation, the slow routes, the hints', () => {
    expect(formatStats(FAKE_STATS)).toBe([
      'lanes on, slow_threshold 500 ms',
      '',
      'generation 3 (serving)',
      '  fast lane   4 workers; served 10234 fast, 120 slow',
      '  slow lane   2 workers; 3 queued, 4 running, 0 free',
      '  shed (503)  5 queue full, 1 queue timeout, 0 no workers',
      '  finished    120 completed, 2 failed, 1 cancelled; mean service 812 ms',
      '',
      'generation 2 (draining)',
      '  fast lane  1 worker; served 7 fast, 0 slow',
      '  slow lane  off',
      '',
      'slow routes',
      '  ROUTE                  AVG',
      '  GET /users/:id/export  1.24 s',
      '  POST /import           641 ms',
      'hints (slow_routes): GET /reports/*',
      '',
    ].join('\n'));
    // Lanes off, nothing learned, no hints, no completion yet.
    const idle = formatStats({
      lanes: false, slowThresholdMs: 500, slowRoutes: [], hints: [], processes: [],
      generations: [{ generation: 1, fast: { workers: 2, servedFast: 0, servedSlow: 0 }, slow: null }],
      spares: { ready: { fast: 0, slow: 0 }, wanted: { fast: 0, slow: 0 } },
    });
    expect(idle).toBe('lanes off: every request runs on the fast workers\n\ngeneration 1 (serving)\n  fast lane  2 workers; served 0 fast, 0 slow\n  slow lane  off\n\nslow routes: none learned\n');
    // spare_workers on: how many are ready of how many kept, the slow lane's only with lanes on.
    const spares = (ready: [number, number], wanted: [number, number]) => formatStats({ ...FAKE_STATS, spares: { ready: { fast: ready[0], slow: ready[1] }, wanted: { fast: wanted[0], slow: wanted[1] } } });
    expect(spares([1, 1], [2, 1])).toContain('\n\nspare workers: 1 of 2 ready, slow lane 1 of 1\n\nslow routes\n');
    expect(spares([2, 0], [2, 0])).toContain('\n\nspare workers: 2 of 2 ready\n\nslow routes\n');
    expect(spares([0, 0], [0, 0])).not.toContain('spare');
    const fresh = { ...FAKE_STATS, generations: [{ ...FAKE_STATS.generations[0]!, slow: { ...FAKE_STATS.generations[0]!.slow!, serviceMs: null } }] };
    expect(formatStats(fresh)).toContain('mean service -\n');
    // During a reload: the new generation is starting, the older one draining.
    const g = (generation: number) => ({ generation, fast: { workers: 1, servedFast: 0, servedSlow: 0 }, slow: null });
    expect(formatStats({ ...FAKE_STATS, generations: [g(3), g(4), g(2)] }).match(/^generation .*$/gm)).toEqual(['generation 3 (serving)', 'generation 4 (starting)', 'generation 2 (draining)']);
    expect(render({ cmd: 'stats' }, { ok: true, ...FAKE_STATS })).toEqual({ out: formatStats(FAKE_STATS), err: '', ok: true });
  });

  test('acting commands succeed only when each companion ends up where they wanted it', () => {
    const ok = (req: Request, reply: object) => render(req, { ok: true, ...reply } as OkReply);
    expect(ok({ cmd: 'start', name: 'all' }, { companions: [row({ name: 'a' }), row({ name: 'b', state: 'STARTING' })] })).toEqual({ out: 'a: started\nb: started\n', err: '', ok: true });
    expect(ok({ cmd: 'start', name: 'f' }, { companions: [row({ name: 'f', state: 'BACKOFF', pid: null, description: 'exited with code 1' })] }))
      .toEqual({ out: '', err: 'f: not started, it is BACKOFF (exited with code 1)\n', ok: false });
    expect(ok({ cmd: 'stop', name: 'a' }, { companions: [row({ name: 'a', state: 'STOPPED', pid: null })] }).ok).toBe(true);
    expect(ok({ cmd: 'stop', name: 'a' }, { companions: [row({ name: 'a', state: 'STOPPING' })] }).ok).toBe(false);
    expect(ok({ cmd: 'status', name: 'a' }, { companions: [row({ name: 'a', state: 'BACKOFF' })] })).toMatchObject({ ok: false, err: 'a is BACKOFF\n' });
    // status and status all: the same rule for every companion listed, so a script can tell (STOPPED by hand counts, as in supervisorctl).
    expect(ok({ cmd: 'status', name: 'all' }, { companions: [row({ name: 'a', state: 'BACKOFF' }), row({ name: 'b' }), row({ name: 'c', state: 'FATAL' })] }))
      .toMatchObject({ ok: false, err: 'a is BACKOFF, c is FATAL\n' });
    expect(ok({ cmd: 'status', name: 'all' }, { companions: [row({ name: 's', state: 'STOPPED', pid: null })] })).toMatchObject({ ok: false, err: 's is STOPPED\n' });
    expect(ok({ cmd: 'status', name: 'all' }, { companions: [row({ name: 'a' }), row({ name: 'b' })] })).toMatchObject({ ok: true, err: '' });
    expect(ok({ cmd: 'pid', name: 'a' }, { pid: null })).toEqual({ out: '', err: 'a is not running\n', ok: false });
    expect(ok({ cmd: 'reread' }, { added: ['n'], removed: ['o'], changed: ['c'], unchanged: ['u'] }).out).toBe('n: added\nc: changed\no: removed\n');
    expect(ok({ cmd: 'reread' }, { added: [], removed: [], changed: [], unchanged: ['u'] }).out).toBe('no changes (1 unchanged)\n');
    expect(ok({ cmd: 'reread' }, { added: ['n', 'jobs'], removed: [], changed: [], unchanged: [], starting_later: ['jobs'] }).out)
      .toBe('n: added\njobs: added (starts once its old process has stopped)\n');
    expect(ok({ cmd: 'signal', name: 'all', signal: 'SIGHUP' }, { signalled: [{ name: 'a', pid: 9 }] }).out).toBe('a: sent SIGHUP (pid 9)\n');
    expect(ok({ cmd: 'tail', name: 'a', lines: 2, stream: 'stdout' }, { name: 'a', stream: 'stdout', lines: ['x', 'y'] }).out).toBe('x\ny\n');
    expect(ok({ cmd: 'reload' }, { generation: 3 })).toEqual({ out: 'reloaded: generation 3 serving\n', err: '', ok: true });
    expect(ok({ cmd: 'scale', workers: 4 }, { workers: 4, min: 2, max: 8 })).toEqual({ out: 'workers: 4 (min 2, max 8)\n', err: '', ok: true });
  });
});

// ---------------------------------------------------------------- simulator

const SOCK = '/run/drover/ctl.sock';

interface Sim {
  os: Os;
  server: number;
}

/**
 * Runs `body` as a program on a fresh kernel, next to a control-server on
 * SOCK (args: its extra arguments). Resolves with the kernel when the body
 * is done and the server stopped; rejects with the simulation's stderr.
 */
function simulate(seed: number, body: (s: Sim) => Promise<void>, serverArgs: string[] = [], extra: Record<string, (os: Os, args: readonly string[]) => Promise<void>> = {}): Promise<Kernel> {
  return besideServer(seed, SOCK, serverArgs, (os, server) => body({ os, server }), extra);
}

/** Writes `chunks` (pausing `gap` ms between them) and collects `n` reply lines. */
async function exchange(os: Os, chunks: readonly (string | Uint8Array)[], n: number, gap = 0): Promise<any[]> {
  const s = await os.connect({ path: SOCK });
  const got: any[] = [];
  const d = new LineDecoder(1 << 26);
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Uint8Array) => {
      for (const f of d.push(c)) got.push(JSON.parse((f as { line: string }).line));
      if (got.length >= n) resolve();
    });
    s.on('error', reject);
    s.on('close', () => resolve());
  });
  for (const c of chunks) {
    s.write(c);
    if (gap > 0) await os.sleep(gap);
  }
  await done;
  s.destroy();
  return got;
}

const line = (o: object) => JSON.stringify(o) + '\n';

describe('control socket on the simulated kernel', () => {
  test('every command round-trips through request(); the socket file is 0600', async () => {
    await simulate(1, async ({ os, server }) => {
      expect((os.fs.stat(SOCK).mode & 0o777).toString(8)).toBe('600');
      expect((os.fs.stat('/run/drover').mode & 0o777).toString(8)).toBe('700');
      const ask = (req: Request) => request(os, SOCK, req, 5000);
      const st = await ask({ cmd: 'status', name: 'all' });
      expect(st).toMatchObject({ ok: true, companions: [{ name: 'worker-queue', state: 'RUNNING' }, { name: 'scheduler' }, { name: 'mailer', state: 'STOPPED', pid: null }, { name: 'flaky' }] });
      expect(await ask({ cmd: 'stop', name: 'worker-queue' })).toMatchObject({ ok: true, companions: [{ name: 'worker-queue', state: 'STOPPED' }] });
      expect(await ask({ cmd: 'start', name: 'mailer' })).toMatchObject({ ok: true, companions: [{ name: 'mailer', state: 'RUNNING' }] });
      expect(await ask({ cmd: 'restart', name: 'nope' })).toEqual({ ok: false, error: 'no companion named "nope"; companions: worker-queue, scheduler, mailer, flaky' });
      expect(await ask({ cmd: 'reread' })).toMatchObject({ ok: true, added: ['websocket'], changed: ['scheduler'] });
      expect(await ask({ cmd: 'signal', name: 'all', signal: 'SIGHUP' })).toMatchObject({ ok: true, signalled: [{ name: 'scheduler' }, { name: 'mailer' }] });
      expect(await ask({ cmd: 'pid', name: null })).toEqual({ ok: true, pid: server });
      expect(await ask({ cmd: 'tail', name: 'mailer', lines: 2, stream: 'stderr' })).toEqual({ ok: true, name: 'mailer', stream: 'stderr', lines: ['stderr line 1', 'stderr line 2'] });
      expect(await ask({ cmd: 'version' })).toEqual({ ok: true, version: '0.1.0-test' });
      // A raw id rides along.
      expect(await request(os, SOCK, { cmd: 'version', id: 'x1' }, 5000)).toEqual({ id: 'x1', ok: true, version: '0.1.0-test' });
    });
  });

  test('malformed lines each get an error, in order, and the connection carries on', async () => {
    await simulate(2, async ({ os }) => {
      const got = await exchange(os, ['not json\n', '[1]\n', '{"name":"x"}\n', '{"cmd":"statu","id":3}\n', '\n', '{"cmd":"stop","name":7,"id":5}\n', line({ cmd: 'version', id: 6 })], 7);
      expect(got.map((r) => [r.id, r.ok])).toEqual([[undefined, false], [undefined, false], [undefined, false], [3, false], [undefined, false], [5, false], [6, true]]);
      expect(got[3].error).toMatch(/did you mean "status"/);
      expect(got[5].error).toMatch(/^stop: "name" must be a companion name/);
    });
  });

  test('an oversized line is answered with the limit as soon as it is passed, and the connection is closed after that reply', async () => {
    await simulate(3, async ({ os }) => {
      const big = `{"cmd":"status","pad":"${'p'.repeat(100_000)}"}`;
      // 1 KiB chunks: the limit is crossed mid-stream, not in one read; the reply comes before the newline is ever sent.
      const chunks: string[] = [];
      for (let i = 0; i < big.length; i += 1024) chunks.push(big.slice(i, i + 1024));
      const got = await exchange(os, [line({ cmd: 'version', id: 1 }), ...chunks, '\n' + line({ cmd: 'version', id: 2 })], 3, 1);
      expect(got).toEqual([{ id: 1, ok: true, version: '0.1.0-test' }, { ok: false, error: expect.stringMatching(/^line too long \(6\d{4} bytes, limit 65536\)$/) }]);
      // Exactly at the limit is fine.
      const pad = 65536 - line({ cmd: 'version', id: 3 }).length + 1;
      const exact = `{"cmd":"version","id":3}${' '.repeat(pad)}`;
      expect(enc(exact).length).toBe(65536);
      expect(await exchange(os, [exact + '\n'], 1)).toEqual([{ id: 3, ok: true, version: '0.1.0-test' }]);
    });
  });

  test('a configured smaller limit', async () => {
    await simulate(4, async ({ os }) => {
      expect(await exchange(os, ['{"cmd":"status","name":"scheduler"}\n', '{"cmd":"version"}\n'], 2)).toEqual([
        { ok: false, error: 'line too long (35 bytes, limit 20)' },
      ]);
    }, ['20']);
  });

  test('a handler that throws or returns garbage is an error reply, not an outage', async () => {
    await simulate(5, async ({ os }) => {
      const got = await exchange(os, [line({ cmd: 'status', name: 'boom', id: 1 }), line({ cmd: 'stop', name: 'bad', id: 2 }), line({ cmd: 'version', id: 3 })], 3);
      expect(got).toEqual([
        { id: 1, ok: false, error: "status failed inside drover: the fake manager blew up; drover's error log has the details" },
        { id: 2, ok: false, error: "stop failed inside drover: the handler returned no {ok, ...} reply; drover's error log has the details" },
        { id: 3, ok: true, version: '0.1.0-test' },
      ]);
    });
  });

  test('one request at a time per connection, replies in order; connections do not wait for each other', async () => {
    await simulate(6, async ({ os }) => {
      const t0 = os.now();
      const pipelined = exchange(os, [line({ cmd: 'status', name: 'slow', id: 1 }) + line({ cmd: 'version', id: 2 })], 2);
      await os.sleep(10);
      const other = await exchange(os, [line({ cmd: 'version', id: 9 })], 1);
      expect(other).toEqual([{ id: 9, ok: true, version: '0.1.0-test' }]);
      expect(os.now() - t0).toBeLessThan(100);
      expect((await pipelined).map((r) => r.id)).toEqual([1, 2]);
      expect(os.now() - t0).toBeGreaterThanOrEqual(500);
    });
  });

  test('a client that pipelines thousands of requests before reading gets every reply, in order', async () => {
    await simulate(7, async ({ os }) => {
      const text = Array.from({ length: 2000 }, (_, i) => line({ cmd: 'pid', name: 'scheduler', id: i })).join('');
      const got = await exchange(os, [text], 2000);
      expect(got.map((r) => r.id)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
      // Slow requests, one write each: the queue passes 32, the server stops reading, and must start again.
      const slow = await exchange(os, Array.from({ length: 100 }, (_, i) => line({ cmd: 'status', name: 'slow', id: i })), 100, 1);
      expect(slow.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    });
  });

  test('clients that leave mid-line or mid-reply cost nothing; a complete line runs even if its sender left', async () => {
    await simulate(8, async ({ os }) => {
      const a = await os.connect({ path: SOCK });
      a.write('{"cmd":"stop","na');
      await os.sleep(5);
      a.destroy();
      const b = await os.connect({ path: SOCK });
      b.end(line({ cmd: 'status', name: 'slow' })); // half-closes: no reply can reach it
      b.resume();
      const c = await os.connect({ path: SOCK });
      c.write(line({ cmd: 'stop', name: 'worker-queue' }));
      c.destroy();
      await os.sleep(1000);
      const [st] = await exchange(os, [line({ cmd: 'status', name: 'worker-queue' })], 1);
      expect(st).toMatchObject({ ok: true, companions: [{ name: 'worker-queue', state: 'STOPPED' }] });
    });
  });

  test('many clients at once, as separate processes', async () => {
    const client = async (os: Os, args: readonly string[]) => {
      const i = Number(args[0]);
      for (let j = 0; j < 5; j++) {
        const r = await request(os, SOCK, { cmd: 'tail', name: 'scheduler', lines: i + 1, stream: 'stdout', id: i * 100 + j }, 5000);
        if (r.ok !== true || (r as unknown as { id: number }).id !== i * 100 + j || (r as OkReply<'tail'>).lines.length !== i + 1) throw new Error(`client ${i}: ${JSON.stringify(r)}`);
      }
    };
    await simulate(9, async ({ os }) => {
      const kids = Array.from({ length: 40 }, (_, i) => os.spawn({ program: 'client', args: [String(i)], channel: false }).pid);
      for (const pid of kids) expect(await reap(os, pid)).toMatchObject({ code: 0 });
    }, [], { client });
  });

  test('client errors: no socket (ENOENT), a stale one (ECONNREFUSED), no reply in time (ETIMEDOUT)', async () => {
    const mute = async (os: Os) => {
      const l = await os.listen({ path: '/tmp/mute.sock' });
      l.accept(() => {});
      os.channel!.send('ready');
    };
    await simulate(10, async ({ os }) => {
      const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: ControlError) => `${e.code}: ${e.message}`);
      expect(await code(request(os, '/tmp/none.sock', { cmd: 'version' }, 1000))).toBe('ENOENT: no control socket at /tmp/none.sock: is drover running, and with this socket?');
      os.fs.writeFile('/tmp/file', 'not a socket');
      expect(await code(request(os, '/tmp/file', { cmd: 'version' }, 1000))).toBe("ECONNREFUSED: /tmp/file is not a socket: is that the control socket's path?");
      const m = os.spawn({ program: 'mute' });
      await inbox(os, m.channel!)();
      const t0 = os.now();
      expect(await code(request(os, '/tmp/mute.sock', { cmd: 'version' }, 1500))).toMatch(/^ETIMEDOUT: no reply from \/tmp\/mute.sock within 1.5 s/);
      expect(os.now() - t0).toBe(1500);
      os.kill(m.pid, 'SIGKILL');
      await reap(os, m.pid);
      expect(await code(request(os, '/tmp/mute.sock', { cmd: 'version' }, 1000))).toMatch(/^ECONNREFUSED: nothing listens on \/tmp\/mute.sock: a stale socket, drover is not running/);
    }, [], { mute });
  });

  test('a live socket path is refused with a message about control_socket; a stale one is replaced', async () => {
    await simulate(11, async ({ os, server }) => {
      const second = os.spawn({ program: 'control-server', args: [SOCK] });
      expect(await inbox(os, second.channel!)()).toEqual({
        error: `EADDRINUSE: control socket ${SOCK} is in use by a running drover (drover ctl --socket ${SOCK} status talks to it); stop that one, or give this one another control_socket`,
        code: 'EADDRINUSE',
      });
      os.kill(second.pid, 'SIGKILL');
      await reap(os, second.pid);
      // The first dies without closing: its socket file stays behind, stale.
      os.kill(server, 'SIGKILL');
      await reap(os, server);
      expect(os.fs.exists(SOCK)).toBe(true);
      const third = os.spawn({ program: 'control-server', args: [SOCK] });
      expect(await inbox(os, third.channel!)()).toEqual({ listening: SOCK });
      expect(await request(os, SOCK, { cmd: 'version' }, 1000)).toMatchObject({ ok: true });
      os.kill(third.pid, 'SIGTERM');
      expect(await reap(os, third.pid)).toMatchObject({ code: 0 });
      expect(os.fs.exists(SOCK)).toBe(false);
    });
  });

  test('drover ctl: output and exit status for each outcome', async () => {
    const results: Record<string, { code: number | null; out: string }> = {};
    await simulate(12, async ({ os }) => {
      let n = 0;
      const run = async (key: string, args: string[], env?: Record<string, string>) => {
        const out = `/tmp/ctl-${++n}.out`;
        const { pid } = os.spawn({ program: 'ctl', args, channel: false, stdout: { file: out }, stderr: 'stdout', ...(env ? { env } : {}) });
        const e = await reap(os, pid);
        results[key] = { code: e.code, out: os.fs.readFile(out) };
      };
      await run('status', ['--socket', SOCK, 'status']);
      await run('status-one-down', ['-s', SOCK, 'status', 'mailer']);
      await run('json', ['-s', SOCK, '--json', 'pid', 'scheduler']);
      await run('stop', ['-s', SOCK, 'stop', 'worker-queue']);
      await run('start-flaky', ['-s', SOCK, 'start', 'flaky']);
      await run('unknown', ['-s', SOCK, 'restart', 'nope']);
      await run('tail', ['-s', SOCK, 'tail', 'scheduler', '-n', '3', 'stderr']);
      await run('signal', ['-s', SOCK, 'signal', 'scheduler', 'HUP']);
      await run('usage', ['-s', SOCK, 'stop']);
      await run('nosock', ['-s', '/tmp/none.sock', 'status']);
      os.fs.mkdir('/srv');
      os.fs.writeFile('/srv/drover.json', JSON.stringify({ app: 'app.js', control_socket: SOCK }));
      await run('config', ['--config', '/srv/drover.json', 'version']);
      await run('config-env', ['version'], { DROVER_CONFIG: '/srv/drover.json' });
      await run('badconfig', ['--config', '/srv/missing.json', 'version']);
      await run('stats', ['-s', SOCK, 'stats']);
      await run('stats-json', ['-s', SOCK, 'stats', '--json']);
    });
    // Not every companion RUNNING: the table, then who is not, and exit 1 (as status NAME).
    expect(results.status!.code).toBe(1);
    expect(results.status!.out).toBe([
      'NAME          STATE    PID   UPTIME   DESCRIPTION',
      'worker-queue  RUNNING  4000  0:00:00  pid 4000',
      'scheduler     RUNNING  4001  0:00:00  pid 4001',
      'mailer        STOPPED  -     -        stopped by request',
      'flaky         BACKOFF  -     -        exited with code 1, retrying in 2 s',
      'mailer is STOPPED, flaky is BACKOFF',
      '',
    ].join('\n'));
    expect(results['status-one-down']).toEqual({ code: 1, out: expect.stringMatching(/mailer +STOPPED[^]*mailer is STOPPED\n$/) });
    expect(results.json).toEqual({ code: 0, out: '{"ok":true,"pid":4001}\n' });
    expect(results.stop).toEqual({ code: 0, out: 'worker-queue: stopped\n' });
    expect(results['start-flaky']).toEqual({ code: 1, out: 'flaky: not started, it is BACKOFF (exited with code 1, retrying in 2 s)\n' });
    expect(results.unknown).toEqual({ code: 1, out: 'drover ctl: no companion named "nope"; companions: worker-queue, scheduler, mailer, flaky\n' });
    expect(results.tail).toEqual({ code: 0, out: 'stderr line 1\nstderr line 2\nstderr line 3\n' });
    expect(results.signal).toEqual({ code: 0, out: 'scheduler: sent SIGHUP (pid 4001)\n' });
    expect(results.usage).toEqual({ code: 2, out: 'drover ctl: stop takes 1 argument, got 0: drover ctl stop NAME|all\n' });
    expect(results.nosock).toEqual({ code: 3, out: 'drover ctl: no control socket at /tmp/none.sock: is drover running, and with this socket?\n  (socket /tmp/none.sock, from --socket)\n' });
    expect(results.config).toEqual({ code: 0, out: 'drover 0.1.0-test\n' });
    expect(results['config-env']).toEqual({ code: 0, out: 'drover 0.1.0-test\n' });
    expect(results.stats).toEqual({ code: 0, out: formatStats(FAKE_STATS) });
    expect(results['stats-json']!.code).toBe(0);
    expect(JSON.parse(results['stats-json']!.out)).toEqual({ ok: true, ...FAKE_STATS });
    expect(results.badconfig!.code).toBe(2);
    expect(results.badconfig!.out).toMatch(/config file \/srv\/missing.json does not exist[^]*name it with --socket PATH[^]*\n  --socket \S+\/ctl-[0-9a-f]{8}\.sock  \(the default for \/srv\/missing.json\)\n$/);
  });
});

describe('control socket bounds (issue 12)', () => {
  /** Connects and resolves with the reply lines the server sent before it closed, and whether it closed. */
  const watch = async (os: Os, send = '') => {
    const s = await os.connect({ path: SOCK });
    const lines: any[] = [];
    const d = new LineDecoder(1 << 26);
    let closedAt: number | null = null;
    s.on('data', (c: Uint8Array) => {
      for (const f of d.push(c)) lines.push(JSON.parse((f as { line: string }).line));
    });
    s.on('error', () => {});
    s.on('close', () => {
      closedAt = os.now();
    });
    if (send !== '') s.write(send);
    return { s, lines, closedAt: () => closedAt };
  };

  test('a {"__proto__":...} argument is an unknown argument, answered; no inherited key is read as an argument', async () => {
    // Pure: own keys of a null-prototype copy only.
    expect(parseRequest('{"cmd":"status","__proto__":{"name":"x"}}')).toEqual({ ok: false, id: undefined, error: expect.stringMatching(/^status: unknown argument "__proto__"/) });
    expect(parseRequest('{"cmd":"status","__proto__":{"name":"x"},"id":4}')).toMatchObject({ ok: false, id: 4 });
    expect(parseRequest('{"__proto__":{"cmd":"stop","name":"all"}}')).toMatchObject({ ok: false, error: expect.stringMatching(/^missing "cmd"/) });
    expect(parseRequest('{"cmd":"stop","__proto__":{"name":"all"}}')).toMatchObject({ ok: false });
    expect(parseRequest('{"cmd":"status","toString":"x"}')).toMatchObject({ ok: false, error: expect.stringMatching(/unknown argument "toString"/) });
    expect(parseRequest('{"cmd":"status","constructor":1}')).toMatchObject({ ok: false, error: expect.stringMatching(/unknown argument "constructor"/) });
    const inherited = Object.create({ name: 'all' }) as object;
    expect(validateRequest(Object.assign(inherited, { cmd: 'stop' }))).toMatchObject({ ok: false, error: 'stop: missing "name"; e.g. {"cmd":"stop","name":"worker"} or {"cmd":"stop","name":"all"}' });
    await simulate(20, async ({ os }) => {
      const got = await exchange(os, ['{"cmd":"status","__proto__":{"name":"x"},"id":1}\n', line({ cmd: 'version', id: 2 })], 2);
      expect(got).toEqual([{ id: 1, ok: false, error: expect.stringMatching(/^status: unknown argument "__proto__"/) }, { id: 2, ok: true, version: '0.1.0-test' }]);
    });
  });

  test('a line over 1 MiB with no newline is refused with an error reply at once, and its connection closed', async () => {
    await simulate(21, async ({ os }) => {
      const c = await watch(os, '{"cmd":"status","pad":"');
      const MiB = 'p'.repeat(1 << 20);
      c.s.write(MiB);
      c.s.write(MiB);
      await os.sleep(200);
      expect(c.lines).toEqual([{ ok: false, error: expect.stringMatching(/^line too long \(\d+ bytes, limit 65536\)$/) }]);
      await os.sleep(2000);
      expect(c.closedAt()).not.toBeNull();
    });
  });

  test('the 65th connection gets an error reply and is closed; once one closes, a new one is served', async () => {
    await simulate(22, async ({ os }) => {
      const held = [];
      for (let i = 0; i < 64; i++) held.push(await watch(os));
      await os.sleep(50);
      const extra = await watch(os, line({ cmd: 'version' }));
      await os.sleep(2000);
      expect(extra.lines).toEqual([{ ok: false, error: 'too many control connections (64 open): try again when one has closed' }]);
      expect(extra.closedAt()).not.toBeNull();
      // The 64 are served.
      held[0]!.s.write(line({ cmd: 'version', id: 1 }));
      await os.sleep(50);
      expect(held[0]!.lines).toEqual([{ id: 1, ok: true, version: '0.1.0-test' }]);
      held[1]!.s.destroy();
      await os.sleep(50);
      expect(await exchange(os, [line({ cmd: 'version', id: 2 })], 1)).toEqual([{ id: 2, ok: true, version: '0.1.0-test' }]);
      for (const h of held) h.s.destroy();
    });
  });

  test('idle connections are closed after 30 s; trickling a line does not count as activity; a request being handled does', async () => {
    await simulate(23, async ({ os }) => {
      const t0 = os.now();
      const silent = await watch(os);
      const trickle = await watch(os);
      const working = await watch(os, line({ cmd: 'version', id: 1 }));
      for (let i = 0; i < 12; i++) {
        trickle.s.write('{');
        await os.sleep(2_000);
        if (i === 6) working.s.write(line({ cmd: 'version', id: 2 })); // at 14 s: its clock starts again
      }
      await os.sleep(8_000); // 32 s
      expect(silent.closedAt()! - t0).toBeGreaterThanOrEqual(30_000);
      expect(silent.closedAt()! - t0).toBeLessThan(30_100);
      expect(trickle.closedAt()! - t0).toBeLessThan(30_100);
      expect(working.closedAt()).toBeNull();
      expect(working.lines.map((r) => r.id)).toEqual([1, 2]);
      await os.sleep(15_000);
      expect(working.closedAt()).not.toBeNull();
    });
    // With a 300 ms idle limit: a 500 ms request keeps its connection.
    await simulate(24, async ({ os }) => {
      const c = await watch(os, line({ cmd: 'status', name: 'slow', id: 1 }));
      await os.sleep(600);
      expect(c.lines).toEqual([{ id: 1, ok: true, companions: [] }]);
      expect(c.closedAt()).toBeNull();
      await os.sleep(400);
      expect(c.closedAt()).not.toBeNull();
    }, ['-', '-', '300']);
  });

  test('drover ctl escapes control characters in everything it prints from a reply', async () => {
    expect(escapeControl('a\x1b[31mb\u009b2J\x7f\r\n\t\x00é€😀')).toBe('a\\x1b[31mb\\u009b2J\\x7f\\r\\n\\t\\x00é€😀');
    const results: Record<string, { code: number | null; out: string }> = {};
    await simulate(25, async ({ os }) => {
      let n = 0;
      const run = async (key: string, args: string[]) => {
        const out = `/tmp/ctl-${++n}.out`;
        const { pid } = os.spawn({ program: 'ctl', args, channel: false, stdout: { file: out }, stderr: 'stdout' });
        results[key] = { code: (await reap(os, pid)).code, out: os.fs.readFile(out) };
      };
      await run('status', ['-s', SOCK, 'status', 'evil']);
      await run('json', ['-s', SOCK, '--json', 'status', 'evil']);
      await run('error', ['-s', SOCK, 'status', 'evil-error']);
      await run('error-json', ['-s', SOCK, '--json', 'status', 'evil-error']);
    });
    for (const r of Object.values(results)) expect(r.out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(results.status!.out).toContain('w\\x1b]0;pwned\\x07\\u009b31m  RUNNING');
    expect(results.status!.out).toContain('up\\r\\nFAKE  RUNNING\\x7f');
    expect(results.status!.out.split('\n')).toHaveLength(3); // header, one row, the final newline
    expect(results.error).toEqual({ code: 1, out: 'drover ctl: no\\x1b[2J\\u0085 such companion\n' });
    // --json: still JSON, meaning the same strings.
    expect(JSON.parse(results.json!.out).companions[0].name).toBe('w\x1b]0;pwned\x07\u009b31m');
    expect(JSON.parse(results['error-json']!.out)).toEqual({ ok: false, error: 'no\x1b[2J\u0085 such companion' });
  });
});

/** A Control as the arbiter serves it, on the socket args[0]: version tells its pid and cwd. */
async function arbiterLike(os: Os, args: readonly string[]): Promise<void> {
  const log = { debug: () => {}, warning: () => {}, error: () => {} };
  const reload = async () => ({ ok: false as const, error: 'not here' });
  const scale = () => ({ ok: false as const, error: 'not here' });
  await Control.open(os, args[0]!, { stats: () => FAKE_STATS, companions: () => [], version: '7.7.7', reload, scale, log });
  os.channel!.send('ready');
}

describe('drover ctl without --config finds the drover running from its directory', () => {
  test('none: the default path in the error; exactly one: used; several: listed, exit 2', async () => {
    const results: Record<string, { code: number | null; out: string }> = {};
    await simulate(26, async ({ os }) => {
      const rundir = '/xdg/drover';
      os.fs.mkdir('/xdg', { mode: 0o700 });
      os.fs.mkdir('/srv', { mode: 0o755 });
      os.fs.mkdir('/elsewhere', { mode: 0o755 });
      const env = { XDG_RUNTIME_DIR: '/xdg' };
      const kids: number[] = [];
      const start = async (path: string, cwd: string) => {
        const c = os.spawn({ program: 'arbiter-like', args: [path], env, cwd });
        kids.push(c.pid);
        await inbox(os, c.channel!)();
        return c.pid;
      };
      let n = 0;
      const run = async (key: string, args: string[]) => {
        const out = `/tmp/ctl-${++n}.out`;
        const { pid } = os.spawn({ program: 'ctl', args, channel: false, stdout: { file: out }, stderr: 'stdout', env, cwd: '/srv' });
        results[key] = { code: (await reap(os, pid)).code, out: os.fs.readFile(out) };
      };
      await run('none', ['version']);
      // Started from /srv with a config elsewhere: its socket is not /srv's default.
      const a = await start(`${rundir}/ctl-aaaaaaaa.sock`, '/srv');
      await start(`${rundir}/ctl-bbbbbbbb.sock`, '/elsewhere');
      await run('one', ['version']);
      const b = await start(`${rundir}/ctl-cccccccc.sock`, '/srv');
      await run('two', ['version']);
      results.pids = { code: null, out: `${a} ${b}` };
      for (const pid of kids) {
        os.kill(pid, 'SIGKILL');
        await reap(os, pid);
      }
    }, [], { 'arbiter-like': arbiterLike });
    expect(results.none).toEqual({ code: 3, out: expect.stringMatching(/^drover ctl: no control socket at \/xdg\/drover\/ctl-[0-9a-f]{8}\.sock/) });
    const [a, b] = results.pids!.out.split(' ');
    expect(results.one).toEqual({ code: 0, out: 'drover 7.7.7\n' });
    expect(results.two!.code).toBe(2);
    expect(results.two!.out).toBe(
      `drover ctl: no control socket at ${results.none!.out.match(/at (\S+):/)![1]} (the default (no config file found)), and 2 drovers of yours run from /srv; pick one with --socket PATH:\n` +
        `  --socket /xdg/drover/ctl-aaaaaaaa.sock  (pid ${a})\n  --socket /xdg/drover/ctl-cccccccc.sock  (pid ${b})\n`,
    );
  });
});

describe('locateSocket', () => {
  test('--socket, else DROVER_CONTROL_SOCKET, else the config file\'s control_socket, else the default for that file', async () => {
    const got: unknown[] = [];
    const main = async (os: Os) => {
      os.fs.mkdir('/p');
      os.fs.writeFile('/p/with.json', JSON.stringify({ control_socket: '/run/x.sock', timeout: 90 }));
      os.fs.writeFile('/p/without.json', JSON.stringify({ workers: 2 }));
      got.push(await locateSocket(os, { socket: '/a.sock', config: '/p/with.json' }));
      got.push(await locateSocket(os, { socket: null, config: '/p/with.json' }));
      const d = await locateSocket(os, { socket: null, config: '/p/without.json' });
      // The server's own fallback: ctl finds the socket `drover -c /p/without.json` made.
      got.push(d.from, d.path === defaultControlSocket('/', '/p/without.json', { XDG_RUNTIME_DIR: '/xdg' }, os.uid), d.path.startsWith('/xdg/drover/ctl-'));
      const none = await locateSocket(os, { socket: null, config: null });
      got.push(none.from, none.path === defaultControlSocket('/', null, { XDG_RUNTIME_DIR: '/xdg' }, os.uid));
      // A timeout the server would refuse is not ctl's business: left out, not an error.
      os.fs.writeFile('/p/badtimeout.json', JSON.stringify({ timeout: 'soon' }));
      got.push((await locateSocket(os, { socket: null, config: '/p/badtimeout.json' })).timeout);
      os.fs.writeFile('/p/bad.json', JSON.stringify({ control_socket: 5 }));
      got.push(await locateSocket(os, { socket: null, config: '/p/bad.json' }).catch((e: SocketUnknown) => [e.problems, e.candidates]));
      got.push(await locateSocket(os, { socket: null, config: '/p/nope.json' }).catch((e: SocketUnknown) => [e.problems, e.candidates]));
      // A file there that cannot be loaded costs only its control_socket: the default for its path, with why.
      os.fs.writeFile('/p/broken.json', '{"workers": 2,}');
      const broken = await locateSocket(os, { socket: null, config: '/p/broken.json' });
      got.push(broken.path === defaultControlSocket('/', '/p/broken.json', { XDG_RUNTIME_DIR: '/xdg' }, os.uid), broken.from, broken.notes);
    };
    const env = async (os: Os) => {
      got.push(await locateSocket(os, { socket: null, config: '/p/with.json' }));
    };
    const k = new Kernel({ seed: 1, programs: [programs(import.meta.url, { main, env })] });
    const root = k.spawn({ program: 'main', channel: false, env: { XDG_RUNTIME_DIR: '/xdg' } });
    await k.run();
    expect(k.exitStatus(root)).toMatchObject({ code: 0 });
    const second = k.spawn({ program: 'env', channel: false, env: { DROVER_CONTROL_SOCKET: '/env.sock', DROVER_TIMEOUT: '45' } });
    await k.run();
    expect(k.exitStatus(second)).toMatchObject({ code: 0 });
    expect(got).toEqual([
      { path: '/a.sock', from: '--socket' },
      { path: '/run/x.sock', from: 'control_socket in /p/with.json', timeout: 90_000 },
      'the default for /p/without.json', true, true,
      'the default (no config file found)', true,
      undefined,
      [[expect.stringMatching(/^\/p\/bad.json: control_socket: expected a Unix socket path/)], [{ path: expect.stringMatching(/^\/xdg\/drover\/ctl-/), for: '/p/bad.json' }]],
      [[expect.stringMatching(/^config file \/p\/nope.json does not exist/)], [{ path: expect.stringMatching(/^\/xdg\/drover\/ctl-/), for: '/p/nope.json' }]],
      true, 'the default for /p/broken.json, which could not be read',
      [expect.stringMatching(/^\/p\/broken.json: invalid JSON/), expect.stringMatching(/^so ctl cannot read its control_socket and uses the default socket for \/p\/broken.json, \/xdg\/drover\/ctl-.*--socket PATH$/)],
      { path: '/env.sock', from: 'DROVER_CONTROL_SOCKET', timeout: 45_000 },
    ]);
  });
});

describe('drover ctl with a config file it cannot read (the socket is named by the file\'s path)', () => {
  test('a broken file: the default socket for its path, said on stderr; two files or a bad control_socket: exit 2 with the candidates', async () => {
    const results: Record<string, { code: number | null; out: string }> = {};
    const socks: Record<string, string> = {};
    await simulate(27, async ({ os }) => {
      os.fs.mkdir('/xdg', { mode: 0o700 });
      os.fs.mkdir('/srv', { mode: 0o755 });
      const env = { XDG_RUNTIME_DIR: '/xdg' };
      socks.json = defaultControlSocket('/srv', '/srv/drover.config.json', env, os.uid);
      socks.js = defaultControlSocket('/srv', '/srv/drover.config.js', env, os.uid);
      // A drover started from a good drover.config.json; then someone leaves a trailing comma in it.
      os.fs.writeFile('/srv/drover.config.json', '{ "workers": 2, }');
      const arbiter = os.spawn({ program: 'arbiter-like', args: [socks.json], env, cwd: '/srv' });
      await inbox(os, arbiter.channel!)();
      let n = 0;
      const run = async (key: string, args: string[]) => {
        const out = `/tmp/ctl-${++n}.out`;
        const { pid } = os.spawn({ program: 'ctl', args, channel: false, stdout: { file: out }, stderr: 'stdout', env, cwd: '/srv' });
        results[key] = { code: (await reap(os, pid)).code, out: os.fs.readFile(out) };
      };
      await run('found', ['version']);
      await run('named', ['-c', '/srv/drover.config.json', 'version']);
      os.fs.writeFile('/srv/drover.config.json', JSON.stringify({ control_socket: 5 }));
      await run('badSocket', ['version']);
      os.fs.writeFile('/srv/drover.config.json', '{}');
      os.fs.writeFile('/srv/drover.config.js', 'export default {}');
      await run('two', ['version']);
      os.kill(arbiter.pid, 'SIGKILL');
      await reap(os, arbiter.pid);
    }, [], { 'arbiter-like': arbiterLike });
    const note =
      'drover ctl: /srv/drover.config.json: invalid JSON at line 1, column 17: Expected double-quoted property name in JSON at position 16\n' +
      `drover ctl: so ctl cannot read its control_socket and uses the default socket for /srv/drover.config.json, ${socks.json}; if drover runs with control_socket set, pass that path with --socket PATH\n`;
    expect(results.found).toEqual({ code: 0, out: `${note}drover 7.7.7\n` });
    expect(results.named).toEqual({ code: 0, out: `${note}drover 7.7.7\n` });
    expect(results.badSocket!.code).toBe(2);
    expect(results.badSocket!.out).toMatch(/^drover ctl: \/srv\/drover.config.json: control_socket: expected a Unix socket path/m);
    expect(results.badSocket!.out).toContain(
      'drover ctl: cannot tell which control socket to use; name it with --socket PATH. Without control_socket, drover listens at:\n' +
        `  --socket ${socks.json}  (the default for /srv/drover.config.json)\n`,
    );
    expect(results.two!.code).toBe(2);
    expect(results.two!.out).toContain(
      'drover ctl: cannot tell which control socket to use; name it with --socket PATH. Without control_socket, drover listens at:\n' +
        `  --socket ${socks.js}  (the default for /srv/drover.config.js)\n` +
        `  --socket ${socks.json}  (the default for /srv/drover.config.json)\n`,
    );
  });
});
