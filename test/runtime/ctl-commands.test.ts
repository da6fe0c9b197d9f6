// drover ctl reload, scale, tail -f and top against the fake server of
// control-programs.ts, on the simulated kernel: ctl runs as its own process
// (top on a terminal runs in-process, on a stand-in terminal), and is ended
// the way a person ends it, by a signal or a key.
import { expect, test } from 'vitest';
import type { Os } from '../../src/os/types.js';
import { request } from '../../src/runtime/control/client.js';
import { ctl, FOLLOW_EVERY_MS, POLL_TIMEOUT_MS, TOP_EVERY_MS } from '../../src/runtime/control/ctl.js';
import type { Terminal } from '../../src/runtime/control/top.js';
import { inbox, reap } from '../support/os.js';
import { besideServer } from './control-programs.js';

const SOCK = '/run/drover/ctl.sock';
const PLAN = `${SOCK}.reload`;

interface Sim {
  os: Os;
  server: number;
  /** `drover ctl ARGS` as a process: its exit status and what it printed (stdout and stderr together). */
  run(args: string[], opts?: { until?: (pid: number) => Promise<void> }): Promise<{ code: number | null; out: string; ms: number }>;
}

/** Runs `body` next to a control-server on SOCK on a fresh kernel; rejects with the simulation's stderr. */
async function simulate(seed: number, body: (s: Sim) => Promise<void>, extra: Record<string, (os: Os, args: readonly string[]) => Promise<void>> = {}): Promise<void> {
  await besideServer(seed, SOCK, [], async (os, server) => {
    let n = 0;
    const run: Sim['run'] = async (args, opts = {}) => {
      const out = `/tmp/ctl-${++n}.out`;
      const t0 = os.now();
      const { pid } = os.spawn({ program: 'ctl', args, channel: false, stdout: { file: out }, stderr: 'stdout' });
      await opts.until?.(pid);
      const e = await reap(os, pid, 600_000);
      return { code: e.code, out: os.fs.readFile(out), ms: os.now() - t0 };
    };
    await body({ os, server, run });
  }, extra);
}

test('reload: the new generation, or the reason it failed (exit 1); ctl waits as long as the config\'s timeout says a reload may take', async () => {
  await simulate(1, async ({ os, run }) => {
    expect(await run(['-s', SOCK, 'reload'])).toMatchObject({ code: 0, out: 'reloaded: generation 4 serving\n' });
    expect(await run(['-s', SOCK, 'reload'])).toMatchObject({ code: 0, out: 'reloaded: generation 5 serving\n' });
    os.fs.writeFile(PLAN, JSON.stringify({ ms: 2000, error: 'app.js: cannot import: SyntaxError' }));
    expect(await run(['-s', SOCK, 'reload'])).toMatchObject({ code: 1, out: 'drover ctl: reload failed, the running config stays in force: app.js: cannot import: SyntaxError\n' });
    expect(await run(['-s', SOCK, '--json', 'reload'])).toMatchObject({ code: 1, out: '{"ok":false,"error":"reload failed, the running config stays in force: app.js: cannot import: SyntaxError"}\n' });
    // A reload that takes 80 s (workers slow to boot under timeout = 90): the default 60 s is too short for it...
    os.fs.writeFile(PLAN, JSON.stringify({ ms: 80_000 }));
    const short = await run(['-s', SOCK, 'reload']);
    expect(short).toMatchObject({ code: 3, out: expect.stringMatching(/^drover ctl: no reply from \/run\/drover\/ctl.sock within 60 s/) });
    expect(short.ms).toBeGreaterThanOrEqual(60_000);
    // ...but ctl that read the config waits timeout + 30 s, and --timeout says otherwise when given.
    os.fs.mkdir('/srv');
    os.fs.writeFile('/srv/drover.json', JSON.stringify({ app: 'app.js', control_socket: SOCK, timeout: 90 }));
    const long = await run(['--config', '/srv/drover.json', 'reload']);
    expect(long).toMatchObject({ code: 0, out: 'reloaded: generation 7 serving\n' });
    expect(long.ms).toBeGreaterThanOrEqual(80_000);
    expect(await run(['--config', '/srv/drover.json', '--timeout', '5', 'reload'])).toMatchObject({ code: 3, out: expect.stringMatching(/within 5 s/) });
  });
});

test('scale N: the target and its bounds; out of them, the error names the bound (exit 1); N that is not a number is a usage error', async () => {
  await simulate(2, async ({ run }) => {
    expect(await run(['-s', SOCK, 'scale', '4'])).toMatchObject({ code: 0, out: 'workers: 4 (min 2, max 8)\n' });
    expect(await run(['-s', SOCK, 'scale', '9'])).toMatchObject({ code: 1, out: 'drover ctl: scale: 9 is above max_workers (8); raise max_workers in the config and reload first\n' });
    expect(await run(['-s', SOCK, 'scale', '1'])).toMatchObject({ code: 1, out: 'drover ctl: scale: 1 is below min_workers (2); lower min_workers in the config and reload first\n' });
    expect(await run(['-s', SOCK, 'scale', 'lots'])).toMatchObject({ code: 2, out: 'drover ctl: scale: N is a whole number of workers from 1 to 100000, got "lots": drover ctl scale 4\n' });
    expect(await run(['-s', SOCK, '--json', 'scale', '8'])).toMatchObject({ code: 0, out: '{"ok":true,"workers":8,"min":2,"max":8}\n' });
  });
});

/** The numbers of "NAME N" lines, and the notes between them, in order. */
function parseTail(out: string, name: string): { seqs: number[]; dropped: number; text: string[] } {
  const seqs: number[] = [];
  let dropped = 0;
  let expected: number | null = null;
  const text: string[] = [];
  for (const line of out.split('\n').slice(0, -1)) {
    const d = /^\[(\d+) lines? dropped\]$/.exec(line);
    if (d !== null) {
      dropped += Number(d[1]);
      expected = (expected ?? 0) + Number(d[1]);
      continue;
    }
    const m = new RegExp(`^${name} (\\d+)$`).exec(line);
    if (m === null) {
      text.push(line);
      continue;
    }
    const n = Number(m[1]);
    // No line twice, none skipped without a note saying so.
    if (expected !== null) expect(n).toBe(expected);
    expected = n + 1;
    seqs.push(n);
  }
  return { seqs, dropped, text };
}

test('tail -f prints the last lines, then each new line once, in order, until SIGINT or SIGTERM (exit 0)', async () => {
  await simulate(3, async ({ os, run }) => {
    await os.sleep(1000); // ticker: 10 lines so far
    let signalledAt = 0;
    const stopAfter = (ms: number, sig: 'SIGINT' | 'SIGTERM') => async (pid: number) => {
      await os.sleep(ms);
      signalledAt = os.now();
      os.kill(pid, sig);
    };
    const r = await run(['-s', SOCK, 'tail', 'ticker', '-n', '3', '-f'], { until: stopAfter(2000, 'SIGINT') });
    expect(r.code).toBe(0);
    const t = parseTail(r.out, 'ticker');
    expect(t.text).toEqual([]);
    expect(t.dropped).toBe(0);
    expect(t.seqs.slice(0, 3)).toEqual([7, 8, 9]);
    // About 2 s at 10 lines a second went by while it followed; polled every 250 ms, at most that much is still unprinted.
    expect(t.seqs.length).toBeGreaterThanOrEqual(3 + 20 - Math.ceil(FOLLOW_EVERY_MS / 100) - 1);
    expect(t.seqs.length).toBeLessThanOrEqual(3 + 21);
    expect(os.now() - signalledAt).toBeLessThan(50); // at once, not at the next poll
    // Fewer than the default 50 so far: all of them, then more.
    const term = await run(['-s', SOCK, '--follow', 'tail', 'ticker'], { until: stopAfter(700, 'SIGTERM') });
    expect(term.code).toBe(0);
    const all = parseTail(term.out, 'ticker').seqs;
    expect(all[0]).toBe(0);
    expect(all.length).toBeGreaterThanOrEqual(t.seqs.at(-1)! + 1 + 7 - 3);
  });
});

test('tail -f says how many lines the manager\'s ring lost between polls, and the numbers account for every line', async () => {
  await simulate(4, async ({ os, run }) => {
    // burst: 30 lines per 100 ms, 40 kept: each 250 ms poll finds lines already gone.
    const r = await run(['-s', SOCK, 'tail', 'burst', '-n', '5', '-f'], { until: async (pid) => (await os.sleep(1000), os.kill(pid, 'SIGINT')) });
    expect(r.code).toBe(0);
    const t = parseTail(r.out, 'burst'); // checks that dropped + printed leave no gap
    expect(t.text).toEqual([]);
    expect(t.dropped).toBeGreaterThan(0);
    expect(r.out).toMatch(/^\[\d+ lines dropped\]$/m);
  });
});

test('tail -f against a manager that does not number its lines, or a drover that goes away: a message and exit 1', async () => {
  await simulate(5, async ({ os, server, run }) => {
    expect(await run(['-s', SOCK, 'tail', 'scheduler', '-n', '2', '-f'])).toEqual({
      code: 1,
      ms: expect.any(Number),
      out: 'stdout line 1\nstdout line 2\ndrover ctl: the companion manager does not number its lines (no "next" in its tail reply): it is older than this drover ctl; ' +
        'restart drover with the release ctl came with\n',
    });
    const gone = await run(['-s', SOCK, 'tail', 'ticker', '-f'], { until: async () => (await os.sleep(600), os.kill(server, 'SIGKILL')) });
    expect(gone.code).toBe(1);
    expect(gone.out).toMatch(/\ndrover ctl: stopped following ticker: nothing listens on \/run\/drover\/ctl.sock: a stale socket, drover is not running\n$/);
    expect(gone.ms).toBeLessThan(600 + FOLLOW_EVERY_MS + 100);
    expect(await run(['-s', SOCK, '--json', 'tail', 'ticker', '-f'])).toMatchObject({ code: 2, out: 'drover ctl: --json is not for tail -f\n' });
  });
});

test('the tail request with after: the lines from there on, the newest when there are more than asked for, and next', async () => {
  await simulate(6, async ({ os }) => {
    await os.sleep(1050); // ticker: lines 0..9
    const ask = (after: number | undefined, lines: number) => request(os, SOCK, { cmd: 'tail', name: 'ticker', lines, stream: 'stdout', ...(after === undefined ? {} : { after }) }, 5000);
    expect(await ask(undefined, 3)).toEqual({ ok: true, name: 'ticker', stream: 'stdout', lines: ['ticker 7', 'ticker 8', 'ticker 9'], next: 10 });
    expect(await ask(8, 50)).toEqual({ ok: true, name: 'ticker', stream: 'stdout', lines: ['ticker 8', 'ticker 9'], next: 10 });
    expect(await ask(10, 50)).toEqual({ ok: true, name: 'ticker', stream: 'stdout', lines: [], next: 10 });
    expect(await ask(2, 3)).toEqual({ ok: true, name: 'ticker', stream: 'stdout', lines: ['ticker 7', 'ticker 8', 'ticker 9'], next: 10, dropped: 5 });
  });
});

test('top with stdout not a terminal: one frame (the workers, the lanes, the companions), no screen clearing, exit 0', async () => {
  await simulate(7, async ({ run }) => {
    const r = await run(['-s', SOCK, 'top']);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('\x1b');
    expect(r.out).toMatch(/^drover 0\.1\.0-test {2}arbiter - {2}generation 3 serving {2}2026-01-01 \d\d:\d\d:\d\d \+0000\n\n {4}PID {2}ROLE/);
    expect(r.out).toContain('\n    101  fast    2  serving    50.0 MiB     120         1   25%   0:01:05\n    102  slow    2  serving    59.0 MiB       7         0   50%   0:01:04\n');
    expect(r.out).toContain('\n  gen 3 serving   fast 4 workers, served 10234 fast/120 slow; slow 2 workers: 3 queued, 4 running, shed 6\n');
    expect(r.out).toMatch(/\ncompanions\n {2}NAME +STATE +PID +UPTIME +DESCRIPTION\n {2}worker-queue +RUNNING +4000 /);
    expect(r.out.split('drover 0.1.0-test')).toHaveLength(2);
    expect(await run(['-s', SOCK, 'top', '--json'])).toMatchObject({ code: 2, out: expect.stringMatching(/^drover ctl: --json is not for top/) });
    expect(await run(['-s', '/tmp/none.sock', 'top'])).toMatchObject({ code: 3, out: expect.stringMatching(/^drover ctl: no control socket at \/tmp\/none.sock/) });
  });
});

/**
 * top-tty QUIT_MS [KEY]: drover ctl top in this process on a stand-in
 * terminal; KEY (default q) is pressed after QUIT_MS ('-': never). Writes
 * what happened to /tmp/tty.json: the exit status, when, how often the
 * terminal was taken into raw mode and put back.
 */
const topTty = async (os: Os, args: readonly string[]) => {
  const events: string[] = [];
  let press: ((key: string) => void) | null = null;
  const term: Terminal = {
    isTTY: true,
    columns: 60,
    keys(fn) {
      events.push('raw');
      press = fn;
      return () => events.push('restored');
    },
  };
  if (args[0] !== '-') os.timer(Number(args[0]), () => press?.(args[1] ?? 'q'));
  const t0 = os.now();
  const code = await ctl(os, ['-s', SOCK, 'top'], term);
  os.fs.writeFile('/tmp/tty.json', JSON.stringify({ code, ms: os.now() - t0, events }));
  os.exit(0);
};

test('top on a terminal: cleared and redrawn every second until q or Ctrl-C, the terminal put back; a drover that goes away ends it with exit 1', async () => {
  await simulate(8, async ({ os, server }) => {
    const tty = async (args: string[], during?: (pid: number) => Promise<void>) => {
      const { pid } = os.spawn({ program: 'top-tty', args, channel: false, stdout: { file: '/tmp/tty.out' }, stderr: 'stdout' });
      await during?.(pid);
      expect(await reap(os, pid, 60_000)).toMatchObject({ code: 0 });
      return { ...JSON.parse(os.fs.readFile('/tmp/tty.json')), out: os.fs.readFile('/tmp/tty.out') } as { code: number; ms: number; events: string[]; out: string };
    };
    const q = await tty(['2500']);
    expect(q).toMatchObject({ code: 0, events: ['raw', 'restored'] });
    expect(q.ms).toBeGreaterThanOrEqual(2500);
    expect(q.ms).toBeLessThan(2500 + 50); // q ends the wait for the next frame at once
    const frames = q.out.split('\x1b[H\x1b[2J').slice(1);
    expect(frames).toHaveLength(Math.floor(2500 / TOP_EVERY_MS) + 1);
    for (const f of frames) {
      expect(f).toMatch(/^drover 0\.1\.0-test {2}arbiter - {2}generation 3 serving/);
      expect(f.endsWith('\nq or Ctrl-C quits\n')).toBe(true);
      for (const line of f.split('\n')) expect([...line].length).toBeLessThanOrEqual(60);
    }
    expect(q.out.startsWith('\x1b[H\x1b[2J')).toBe(true);
    // Ctrl-C in raw mode is a byte, not a signal.
    expect(await tty(['1200', '\x03'])).toMatchObject({ code: 0, events: ['raw', 'restored'] });
    // Other keys do nothing; SIGINT (stdin not a terminal) and SIGTERM end it the same way.
    const other = await tty(['300', 'x'], async (pid) => (await os.sleep(1500), os.kill(pid, 'SIGTERM')));
    expect(other).toMatchObject({ code: 0, events: ['raw', 'restored'] });
    expect(other.ms).toBeGreaterThanOrEqual(1500);
    // The drover goes away: exit 1, said on a line of its own, the terminal put back all the same.
    const gone = await tty(['-'], async () => (await os.sleep(1500), os.kill(server, 'SIGKILL')));
    expect(gone).toMatchObject({ code: 1, events: ['raw', 'restored'] });
    expect(gone.out).toMatch(/\nq or Ctrl-C quits\n\ndrover ctl: drover stopped answering: nothing listens on \/run\/drover\/ctl.sock: a stale socket, drover is not running\n$/);
    expect(gone.ms).toBeLessThan(2 * TOP_EVERY_MS + 100);
  }, { 'top-tty': topTty });
});

test('top and tail -f polls wait 10 s for an answer unless --timeout says', async () => {
  expect(POLL_TIMEOUT_MS).toBe(10_000);
  const mute = async (os: Os) => {
    const l = await os.listen({ path: '/tmp/mute.sock' });
    l.accept(() => {});
    os.channel!.send('ready');
  };
  await simulate(9, async ({ os, run }) => {
    const m = os.spawn({ program: 'mute' });
    await inbox(os, m.channel!)();
    const top = await run(['-s', '/tmp/mute.sock', 'top']);
    expect(top).toMatchObject({ code: 3, out: expect.stringMatching(/^drover ctl: no reply from \/tmp\/mute.sock within 10 s/) });
    expect(top.ms).toBeLessThan(10_100);
    expect(await run(['-s', '/tmp/mute.sock', '--timeout', '2', 'tail', 'ticker', '-f'])).toMatchObject({ code: 3, out: expect.stringMatching(/within 2 s/) });
    os.kill(m.pid, 'SIGKILL');
    await reap(os, m.pid);
  }, { mute });
});
