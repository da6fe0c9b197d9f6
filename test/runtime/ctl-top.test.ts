// `drover ctl top`'s frame as a pure function: golden output, widths that
// hold for big pids and numbers, long and hostile companion names, lines cut
// to the terminal's width, and the companions' three cases (some, none, an
// error).
import { expect, test } from 'vitest';
import type { CompanionStatus } from '../../src/runtime/control/protocol.js';
import { clip, formatTop, TOP_NAME_MAX } from '../../src/runtime/control/top.js';
import type { LanesReport, ProcessRow } from '../../src/runtime/lanes/report.js';

const NOW = 1_767_225_600_000 + 3_723_000; // 2026-01-01 01:02:03 UTC
const HEAD = { version: '0.1.0', pid: 54321 };

const proc = (over: Partial<ProcessRow> & { pid: number }): ProcessRow => ({
  role: 'fast', generation: 3, state: 'serving', rss: 52_428_800, served: 120, inflight: 1, elu: 0.25, uptimeMs: 65_000, ...over,
});

const STATS: LanesReport = {
  lanes: true,
  spares: { ready: { fast: 0, slow: 0 }, wanted: { fast: 0, slow: 0 } },
  slowThresholdMs: 500,
  generations: [
    {
      generation: 3,
      fast: { workers: 2, servedFast: 10234, servedSlow: 120 },
      slow: {
        workers: 1, queued: 3, running: 4, free: 0, shed: { full: 5, timeout: 1, noWorkers: 0 },
        enqueued: 130, assigned: 127, completed: 120, failed: 2, cancelled: 1, requeued: 0, serviceMs: 812.4,
      },
    },
    { generation: 4, fast: { workers: 1, servedFast: 0, servedSlow: 0 }, slow: null },
    { generation: 2, fast: { workers: 1, servedFast: 7, servedSlow: 0 }, slow: null },
  ],
  slowRoutes: [{ route: 'GET /users/:id/export', avgMs: 1240 }],
  hints: [],
  processes: [
    proc({ pid: 101 }),
    proc({ pid: 99_999, served: 1_234_567, inflight: 12, rss: 1_610_612_736, elu: 1, uptimeMs: 2 * 86_400_000 + 5_000 }),
    proc({ pid: 4_194_304, generation: 4, state: 'booting', rss: null, served: 0, inflight: 0, elu: null, uptimeMs: 900 }),
    proc({ pid: 77, generation: 2, state: 'draining', elu: 0.004 }),
    proc({ pid: 102, role: 'slow', rss: 61_865_984, served: 7, inflight: 0, elu: 0.5, uptimeMs: 64_000 }),
  ],
};

const companion = (over: Partial<CompanionStatus> & { name: string }): CompanionStatus => ({
  state: 'RUNNING', pid: 4000, uptime_ms: 3_725_000, since_ms: 3_725_000, exits: 0, description: 'pid 4000, uptime 1:02:05', ...over,
});

test('a frame: header, every process, a line per generation, the companions', () => {
  const frame = formatTop(STATS, {
    companions: [
      companion({ name: 'worker-queue' }),
      companion({ name: 'mailer', state: 'BACKOFF', pid: null, uptime_ms: undefined, description: 'exited with code 1, retrying in 2 s' }),
    ],
  }, NOW, HEAD);
  expect(frame).toBe([
    'drover 0.1.0  arbiter 54321  generation 3 serving, 4 starting  2026-01-01 01:02:03 +0000',
    '',
    '    PID  ROLE  GEN  STATE            RSS     REQS  INFLIGHT   ELU      UPTIME',
    '    101  fast    3  serving     50.0 MiB      120         1   25%     0:01:05',
    '  99999  fast    3  serving   1536.0 MiB  1234567        12  100%  2d 0:00:05',
    '4194304  fast    4  booting            -        0         0     -     0:00:00',
    '     77  fast    2  draining    50.0 MiB      120         1    0%     0:01:05',
    '    102  slow    3  serving     59.0 MiB        7         0   50%     0:01:04',
    '',
    'lanes on, slow_threshold 500 ms; 1 route learned slow',
    '  gen 3 serving   fast 2 workers, served 10234 fast/120 slow; slow 1 worker: 3 queued, 4 running, shed 6',
    '  gen 4 starting  fast 1 worker, served 0 fast/0 slow; slow lane off',
    '  gen 2 draining  fast 1 worker, served 7 fast/0 slow; slow lane off',
    '',
    'companions',
    '  NAME          STATE     PID   UPTIME  DESCRIPTION',
    '  worker-queue  RUNNING  4000  1:02:05  pid 4000, uptime 1:02:05',
    '  mailer        BACKOFF     -        -  exited with code 1, retrying in 2 s',
    '',
  ].join('\n'));
});

test('columns line up for 5-digit pids whatever else grows, and no line ends in a blank', () => {
  const frame = formatTop(STATS, { companions: [] }, NOW, HEAD);
  const table = frame.split('\n').slice(2, 8);
  // Every row's PID ends where the header's does, and so does every right-aligned column.
  const ends = (line: string) => [...line.matchAll(/\S+/g)].map((m) => m.index + m[0].length);
  const head = ends(table[0]!);
  for (const row of table.slice(1)) {
    const e = ends(row.replace(/(\d+\.\d) MiB/, '$1_MiB').replace(/2d 0/, '2d_0'));
    expect([e[0], e[2], e[4], e[5], e[6], e[7], e[8]]).toEqual([head[0], head[2], head[4], head[5], head[6], head[7], head[8]]);
  }
  for (const line of frame.split('\n')) expect(line).toBe(line.trimEnd());
});

test('companion names: long ones cut with an ellipsis, control characters escaped (in every string from a reply)', () => {
  const long = 'a-very-long-companion-name-that-goes-on-and-on';
  const frame = formatTop({ ...STATS, processes: [proc({ pid: 5, state: 'serving\x1b[2J' as ProcessRow['state'] })] }, {
    companions: [
      companion({ name: long }),
      companion({ name: 'w\x1b]0;x\x07\u009b', description: 'up\r\nFAKE  RUNNING\x7f', state: 'RUNNING' }),
      // Escaped first, then cut: what is cut is the escape's text, never a raw control character.
      companion({ name: '\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J', pid: 4001 }),
    ],
  }, NOW, { version: '1\x1b[31m', pid: 1 });
  expect(frame).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  expect(frame).toContain(`  ${long.slice(0, TOP_NAME_MAX - 1)}…  RUNNING`);
  expect(frame).toMatch(/\n {2}w\\x1b\]0;x\\x07\\u009b +RUNNING {2}4000 {2}1:02:05 {2}up\\r\\nFAKE {2}RUNNING\\x7f\n/);
  expect(frame).toContain(`  ${'\\x1b[2J'.repeat(3)}\\x…  RUNNING  4001`);
  expect(frame).toContain('serving\\x1b[2J');
  expect(frame.startsWith('drover 1\\x1b[31m  arbiter 1')).toBe(true);
  // One line per companion: nothing in a name or description breaks a line.
  expect(frame.split('\n').filter((l) => / RUNNING  400\d /.test(l))).toHaveLength(3);
  expect(clip('abcdef', 4)).toBe('abc…');
  expect(clip('abcd', 4)).toBe('abcd');
  expect(clip('😀😀😀😀😀', 3)).toBe('😀😀…'); // cut between characters, never inside one
});

test('no companions configured, a status error, no processes, lanes off; lines cut to the terminal width', () => {
  const idle: LanesReport = { lanes: false, slowThresholdMs: 500, slowRoutes: [], hints: [], processes: [], generations: [], spares: { ready: { fast: 0, slow: 0 }, wanted: { fast: 0, slow: 0 } } };
  expect(formatTop(idle, { companions: [] }, 0, { version: '0.1.0', pid: null })).toBe(
    'drover 0.1.0  arbiter -  no generation serving  1970-01-01 00:00:00 +0000\n\nno worker processes\n\nlanes off\n\nno companions\n',
  );
  const err = formatTop(idle, { error: 'companion manager not responding: no answer to "status all" within 5 s' }, 0, HEAD);
  expect(err.endsWith('\n\ncompanions: companion manager not responding: no answer to "status all" within 5 s\n')).toBe(true);
  const narrow = formatTop(STATS, { companions: [companion({ name: 'worker-queue' })] }, NOW, HEAD, 40);
  for (const line of narrow.split('\n')) expect([...line].length).toBeLessThanOrEqual(40);
  expect(narrow.split('\n')[0]).toBe('drover 0.1.0  arbiter 54321  generation…');
});
