// drover sim (src/cli/sim.ts): its options, the shrinker it uses, the trace
// file's process views, and the command itself run as a child process: a
// passing seed with --trace, a planted defect caught, replayed and shrunk,
// the determinism mode, and bad options.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FAULT_KINDS, generate, SCENARIOS, type Fault } from '../../src/chaos/scenario.js';
import { formatSchedule, parseSchedule, shrinkSchedule } from '../../src/chaos/shrink.js';
import { againCommand, batchTasks, EXIT, helpText, parseRegressions, parseSimArgs, UsageError } from '../../src/cli/sim.js';
import { stallResult, whose } from '../../src/cli/sim-run.js';
import { stallIn, STALL_LINE } from '../../src/cli/sim-stall.js';
import { duration, processTree, replayCommand, visualTimeline } from '../../src/cli/sim-report.js';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/drover.js');

function drover(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'sim', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('drover sim options', () => {
  const usage = (argv: string[]) => {
    try {
      parseSimArgs(argv);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error(`${argv.join(' ')} was accepted`);
  };

  test('defaults: 100 seeds from a random base, 30 s, no defects, shrinking on', () => {
    const o = parseSimArgs([]);
    expect(o).toMatchObject({ mode: 'seeds', count: 100, durationMs: 30_000, defects: [], shrink: true, json: false });
    expect(o.from).toBeUndefined();
  });

  test('each flag, with a space or an =', () => {
    expect(parseSimArgs(['--seeds', '5', '--from=0x10', '--scenario', 'queue-load', '--duration=2.5', '--jobs', '3'])).toMatchObject({
      mode: 'seeds', count: 5, from: 16n, name: 'queue-load', durationMs: 2500, jobs: 3,
    });
    expect(parseSimArgs(['--seed', '0xffffffffffffffff', '--trace', 't.txt', '--faults', '2000:kill-worker:7,1.5s:hup:1'])).toMatchObject({
      mode: 'seed', seed: (1n << 64n) - 1n, trace: 't.txt', faults: [{ at: 1500, kind: 'hup', pick: 1 }, { at: 2000, kind: 'kill-worker', pick: 7 }],
    });
    expect(parseSimArgs(['--determinism', '20', '--defect', 'arbiter-skips-reap,lane-queue-overflow', '--no-shrink', '--json'])).toMatchObject({
      mode: 'determinism', count: 20, defects: ['arbiter-skips-reap', 'lane-queue-overflow'], shrink: false, json: true,
    });
    expect(parseSimArgs(['--regressions', 'r.txt'])).toMatchObject({ mode: 'regressions', regressions: 'r.txt' });
    expect(parseSimArgs(['--seeds', '1500', '--budget', '240'])).toMatchObject({ mode: 'seeds', count: 1500, budgetSeconds: 240 });
  });

  test('--help names every option, within 79 columns', () => {
    expect(parseSimArgs(['--help']).help).toBe(true);
    const text = helpText();
    for (const f of ['--seeds', '--from', '--budget', '--seed ', '--regressions', '--determinism', '--scenario', '--duration', '--faults', '--jobs', '--timeout', '--trace', '--no-shrink', '--shrink-runs', '--shrink-time', '--json', '--defect']) {
      expect(text).toContain(f);
    }
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(79);
  });

  test('bad options name the flag and the fix', () => {
    expect(usage(['--seeds', 'many'])).toMatch(/--seeds takes a whole number, not "many"/);
    expect(usage(['--seeds', '0'])).toMatch(/--seeds 0 is out of range/);
    expect(usage(['--seed', '1'.repeat(21)])).toMatch(/--seed: seed .* does not fit in 64 bits/);
    expect(usage(['--seed', '-3'])).toMatch(/--seed: a seed is an unsigned 64-bit integer/);
    expect(usage(['--scenario', 'storm'])).toBe(`--scenario storm: no such scenario (one of ${SCENARIOS.join(', ')})`);
    expect(usage(['--duration', '30s'])).toMatch(/--duration takes seconds, a number like 30/);
    expect(usage(['--jobs'])).toMatch(/--jobs needs a value/);
    expect(usage(['--defect', 'typo'])).toMatch(/--defect typo: no such planted defect \(one of manager-ignores-parent-death, /);
    expect(usage(['--faults', '1000:explode:1', '--seed', '1'])).toMatch(/--faults: unknown fault kind "explode"/);
    expect(usage(['--seeds', '5', '--seed', '1'])).toMatch(/--seeds and --seed cannot be combined/);
    expect(usage(['--seeds', '5', '--trace', 'x'])).toMatch(/--trace writes one run: give it with --seed SEED/);
    expect(usage(['--faults', 'none'])).toMatch(/--faults .* give it with --seed SEED/);
    expect(usage(['--seed', '1', '--from', '2'])).toMatch(/--from goes with --seeds or --determinism/);
    expect(usage(['--determinism', '3', '--budget', '60'])).toMatch(/--budget goes with --seeds/);
    expect(usage(['--sedes', '5'])).toMatch(/unknown option --sedes/);
    expect(usage(['5'])).toMatch(/unexpected argument "5"/);
    expect(usage(['--jobs', '2', '--jobs', '3'])).toMatch(/--jobs is given twice/);
  });

  test('the regression file: seeds, options, comments; a bad line is named', () => {
    expect(parseRegressions('# header\n6  # a bug\n\n0x19 scenario=queue-load duration=10 # another\n', 'r.txt')).toEqual([
      { seed: 6n, note: 'a bug' },
      { seed: 25n, name: 'queue-load', durationMs: 10_000, note: 'another' },
    ]);
    expect(() => parseRegressions('6\nseven\n', 'r.txt')).toThrow(/r\.txt:2: a seed is an unsigned 64-bit integer/);
    expect(() => parseRegressions('6 scenario=nope\n', 'r.txt')).toThrow(/r\.txt:1: no such scenario nope/);
    expect(() => parseRegressions('6 speed=2\n', 'r.txt')).toThrow(/r\.txt:1: "speed=2" is not scenario=NAME or duration=SECONDS/);
  });

  test('the committed regression list parses, and names the bugs its seeds found', () => {
    const text = readFileSync(join(ROOT, 'test/chaos/regressions.txt'), 'utf8');
    const list = parseRegressions(text, 'regressions.txt');
    expect(list.map((r) => r.seed)).toEqual(expect.arrayContaining([6n, 25n, 36n]));
    for (const r of list) expect(r.note).not.toBe('');
  });

  test('a schedule round-trips through its command-line form, picks whole', () => {
    const faults = generate(12345n).faults;
    expect(parseSchedule(formatSchedule(faults))).toEqual(faults);
    expect(formatSchedule([])).toBe('none');
    expect(parseSchedule('none')).toEqual([]);
    expect(() => parseSchedule('1000:hup:4294967296')).toThrow(/32-bit/);
    expect(() => parseSchedule('kill-worker')).toThrow(/AT:KIND:PICK/);
  });

  test('the replay command names --scenario only when it was given (a named scenario is another run)', () => {
    const a = generate(6n);
    const b = generate(6n, { name: a.name });
    expect(b.faults).not.toEqual(a.faults);
    expect(replayCommand({ seed: 6n, durationMs: 30_000, defects: [] })).toBe('npx drover sim --seed 0x6 --duration 30');
    expect(replayCommand({ seed: '25', name: 'queue-load', durationMs: 2500, defects: ['lane-queue-overflow'], faults: [{ at: 3000, kind: 'hup', pick: 9 }] }))
      .toBe('npx drover sim --seed 0x19 --scenario queue-load --duration 2.5 --defect lane-queue-overflow --faults 3000:hup:9');
  });
});

test('durations round once: never 60 seconds in a minute', () => {
  expect([59_940, 59_960, 60_000, 119_500, 179_600, 3_599_600, 3_600_000, 7_380_000].map(duration)).toEqual(
    ['59.9s', '1m 00s', '1m 00s', '2m 00s', '3m 00s', '1h 00m', '1h 00m', '2h 03m']);
});

describe('shrinking a schedule with fast-check', () => {
  const schedule: Fault[] = Array.from({ length: 24 }, (_, i) => ({ at: 2000 + i * 500, kind: FAULT_KINDS[i % FAULT_KINDS.length]!, pick: i }));

  test('starts from the failing schedule as its example and ends on the faults that matter', async () => {
    const tried: number[] = [];
    const out = await shrinkSchedule(schedule, {
      fails: async (s) => {
        tried.push(s.length);
        return s.includes(schedule[7]!) && s.includes(schedule[19]!);
      },
    });
    expect(out.schedule).toEqual([schedule[7], schedule[19]]);
    expect(out.cut).toBe(false);
    // The full schedule is known to fail and is not run again; every run is a strict subset of it.
    expect(Math.max(...tried)).toBeLessThan(schedule.length);
    expect(out.runs).toBe(tried.length);
    expect(out.runs).toBeLessThan(60);
  });

  test('one fault that matters is found alone; no fault at all when none matters', async () => {
    expect((await shrinkSchedule(schedule, { fails: async (s) => s.includes(schedule[23]!) })).schedule).toEqual([schedule[23]]);
    expect((await shrinkSchedule(schedule, { fails: async () => true })).schedule).toEqual([]);
  });

  test('a run budget or a stop ends it with the shortest failing schedule seen', async () => {
    // fast-check tries the empty schedule, then the last half (which holds fault 20), then the budget is spent.
    const byRuns = await shrinkSchedule(schedule, { fails: async (s) => s.includes(schedule[20]!), maxRuns: 2 });
    expect(byRuns.runs).toBe(2);
    expect(byRuns.cut).toBe(true);
    expect(byRuns.schedule).toEqual(schedule.slice(12));
    let calls = 0;
    const stopped = await shrinkSchedule(schedule, { fails: async (s) => s.length > 0, stop: () => ++calls > 1 });
    expect(stopped.runs).toBe(1);
    expect(stopped.cut).toBe(true);
  });

  test('a schedule that stops failing on every removal stays whole', async () => {
    const out = await shrinkSchedule(schedule.slice(0, 5), { fails: async (s) => s.length === 5 });
    expect(out.schedule).toHaveLength(5);
    // Every smaller subset it tries passes; each is run once.
    expect(out.runs).toBeLessThan(16);
  });
});

describe('the process views of a trace', () => {
  const lines = [
    '0 1 spawn 100 chaos-driver pgid=1',
    '0 100 spawn 101 arbiter pgid=1',
    '0 101 spawn 102 worker pgid=1',
    '0 101 spawn 103 companion-manager pgid=1',
    '0 103 spawn 104 chaos-companion pgid=104',
    '5000 driver fault 5.000s kill-arbiter#1',
    '5000 101 exit SIGKILL',
    '5000 102 orphan was=101',
    '5000 103 orphan was=101',
    '5100 102 exit 0',
    '7000 103 exit 1',
    '10000 100 wake',
  ];

  test('the tree indents each process under the one that spawned it, with its life', () => {
    expect(processTree(lines).map((l) => l.replace(/ +/g, ' '))).toEqual([
      '100 chaos-driver 0.000s -> running at the end',
      ' 101 arbiter 0.000s -> 5.000s SIGKILL',
      ' 102 worker 0.000s -> 5.100s exit 0 (orphaned at 5.000s)',
      ' 103 companion-manager 0.000s -> 7.000s exit 1 (orphaned at 5.000s)',
      ' 104 chaos-companion 0.000s -> running at the end',
    ]);
  });

  test('the timeline draws lives across the run: running, orphaned, how each ended, the faults', () => {
    const rows = visualTimeline(lines, [{ at: 5000, kind: 'kill-arbiter', pick: 1 }], 20);
    const row = (label: string) => rows.find((r) => r.includes(label))!.slice(31);
    expect(row('faults')).toBe(`${' '.repeat(10)}^${' '.repeat(9)}`);
    expect(row('chaos-driver')).toBe('='.repeat(20));
    expect(row('arbiter')).toBe(`${'='.repeat(10)}x`);
    expect(row('worker')).toBe(`${'='.repeat(10)}|`);
    expect(row('companion-manager')).toBe(`${'='.repeat(10)}~~~~!`);
  });
});

describe('drover sim, the command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-sim-'));

  test('bad options: exit 2 and a message naming the flag', async () => {
    const r = await drover(['--seeds', 'lots']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('drover sim: --seeds takes a whole number, not "lots" (e.g. --seeds 1)\n');
    const file = join(dir, 'bad-regressions.txt');
    writeFileSync(file, '6\n12 scenario=bogus\n');
    const r2 = await drover(['--regressions', file]);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/bad-regressions\.txt:2: no such scenario bogus/);
  });

  test('--require-faults: a batch without the kernel faults fails; a faults batch whose kinds fired passes and lists them', async () => {
    expect(parseSimArgs(['--require-faults']).requireFaults).toBe(true);
    expect(parseSimArgs([]).requireFaults).toBe(false);
    const none = await drover(['--seeds', '1', '--from', '1', '--scenario', 'reload-storm', '--duration', '2', '--jobs', '1', '--require-faults']);
    expect(none.code).toBe(1);
    expect(none.out).toMatch(/--require-faults: no run of this batch turned on any of the kernel's faults/);
    const some = await drover(['--seeds', '2', '--from', '3', '--scenario', 'faults', '--duration', '10', '--jobs', '1', '--json']);
    expect(some.code).toBe(0);
    const j = JSON.parse(some.out) as { kernelFaults: { kind: string; fired: number }[]; neverFired: string[] };
    expect(j.kernelFaults.length).toBeGreaterThanOrEqual(8);
    expect(j.kernelFaults.find((k) => k.kind === 'stream-split')!.fired).toBeGreaterThan(0);
  }, 120_000);

  test('one passing seed: its line, the summary table, and --trace writes the timeline with the process tree', async () => {
    const trace = join(dir, 'trace.txt');
    const r = await drover(['--seed', '1', '--duration', '5', '--trace', trace]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^drover sim: seed 0x1 \(mixed, 5 s\): pass, trace hash [0-9a-f]{16}\n/);
    expect(r.out).toMatch(/drover sim summary\n {2}runs +1 \(1 passed, 0 failed\)\n/);
    for (const row of ['scenarios', 'simulated time', 'events', 'wall time', 'requests', 'faults injected', 'invariant checks', '  orphans', '  shutdown']) {
      expect(r.out).toContain(`  ${row}`);
    }
    const text = readFileSync(trace, 'utf8');
    expect(text).toContain('# drover sim trace: seed 0x1, scenario mixed');
    expect(text).toContain('# replay: npx drover sim --seed 0x1 --duration 5');
    expect(text).toMatch(/## Process tree[^\n]*\n100 chaos-driver +0\.000s -> \S+ exit 0\n {2}101 arbiter/);
    expect(text).toMatch(/## Timeline of the processes/);
    expect(text).toMatch(/\n\d+ driver TERM\n/);
    expect(text.split('\n').length).toBeGreaterThan(500);
  });

  test('a planted defect: the seed, the invariant, the last events, the replay command, and the shrunk schedule that replays', async () => {
    const r = await drover(['--seed', '4', '--duration', '10', '--defect', 'arbiter-no-slow-respawn']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL seed 0x4 \(queue-load, 10 s\): invariant convergence broken at [\d.]+s simulated\n {2}40 s after the faults stopped: .*0 slow workers \(expected 2\)/);
    expect(r.out).toMatch(/process events and faults before it \(simulated ms, pid, event\):\n( {4}\d+ .*\n)*? {4}\d+ \d+ exit SIGKILL\n( {4}\d+ .*\n)*/);
    expect(r.out).toMatch(/ {4}\d+ driver fault [\d.]+s kill-slow-worker#\d+\n/);
    expect(r.out).toMatch(/last events \(wake-ups, timers, reads and writes left out\):\n( {4}\d+ .*\n)+/);
    expect(r.out).toContain("drover's error log, last lines:");
    expect(r.out).toContain('  replay: npx drover sim --seed 0x4 --duration 10 --defect arbiter-no-slow-respawn\n');
    const shrunk = /SHRUNK seed 0x4: (\d+) of (\d+) faults still break convergence[^\n]*\n(?: {2}[\d.]+s \S+\n)+ {2}replay: (npx drover sim [^\n]*--faults (\S+))\n/.exec(r.out);
    expect(shrunk, r.out).not.toBeNull();
    expect(Number(shrunk![1])).toBeLessThan(Number(shrunk![2]));
    expect(Number(shrunk![1])).toBe(1);
    expect(parseSchedule(shrunk![4]!)[0]!.kind).toBe('kill-slow-worker');
    expect(r.out).toMatch(/drover sim summary\n {2}runs +1 \(0 passed, 1 failed\)/);
    expect(r.out).toMatch(/\ndrover sim: exit 1: drover broke in 1 of 1 seed\(s\): a bug in drover \(see above for the replay command\)\n$/);
    // The shrunk command replays the failure.
    const again = await drover([...shrunk![3]!.replace('npx drover sim ', '').split(' '), '--no-shrink']);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/FAIL seed 0x4 \(queue-load, 10 s\): invariant convergence broken/);
    expect(again.out).toMatch(/fault schedule \(1\):\n {4}[\d.]+s kill-slow-worker#\d+\n/);
  });

  test('determinism: seeds run twice across two jobs give identical trace hashes; --json carries the summary', async () => {
    const r = await drover(['--determinism', '2', '--from', '1', '--duration', '3', '--jobs', '2', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as Record<string, unknown>;
    expect(j).toMatchObject({ from: '0x1', runs: 4, passed: 4, failed: 0, jobs: 2, determinism: { seeds: 2, identical: 2, differ: [] }, failures: [] });
    expect(r.err).toContain('drover sim: 2 seeds 0x1 .. 0x2, each run twice (this batch again: npx drover sim --determinism 2 --from 0x1 --duration 3)');
  });
});

describe('drover sim on the user\'s own deployment', () => {
  const usage = (argv: string[]) => {
    try {
      parseSimArgs(argv);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error(`${argv.join(' ')} was accepted`);
  };

  test('--config and --app: one of them, and not with the options of drover\'s own scenarios', () => {
    expect(parseSimArgs(['--config', 'drover.config.js', '--seeds', '3'])).toMatchObject({ target: { config: 'drover.config.js' }, mode: 'seeds', count: 3, durationGiven: false });
    expect(parseSimArgs(['--app=app.js', '--duration', '5'])).toMatchObject({ target: { app: 'app.js' }, durationMs: 5000, durationGiven: true });
    expect(usage(['--config', 'a.js', '--app', 'b.js'])).toBe('--config and --app cannot be combined: the config names its app');
    expect(usage(['--config', 'a.js', '--scenario', 'mixed'])).toMatch(/^--scenario picks one of drover's own scenarios; with --config/);
    expect(usage(['--app', 'a.js', '--regressions', 'r.txt'])).toMatch(/^--regressions replays drover's own scenarios; with --app, replay a seed with --seed/);
    expect(usage(['--app', 'a.js', '--defect', 'arbiter-skips-reap'])).toMatch(/^--defect plants bugs in drover's own chaos runs/);
  });

  test('whose fault a failure is: drover\'s for an invariant, a crash of drover, a run that crashed or hung; the app\'s for its findings', () => {
    expect(whose({ kind: 'violation', invariant: 'convergence', message: '', at: 0 })).toBe('drover');
    expect(whose({ kind: 'hung', message: '' })).toBe('drover');
    expect(whose({ kind: 'crash', message: '' })).toBe('drover');
    expect(whose({ kind: 'app', finding: 'drover-crash', message: '', at: 0 })).toBe('drover');
    for (const finding of ['load', 'crash', 'rejection', 'unanswered', 'stop-timeout'] as const) expect(whose({ kind: 'app', finding, message: '', at: 0 })).toBe('app');
    expect(EXIT).toEqual({ pass: 0, drover: 1, usage: 2, app: 3 });
    expect(helpText()).toMatch(/Exit status:\n {2}0 .*\n[\s\S]* {2}1 {2}drover broke[\s\S]* {2}2 {2}bad options[\s\S]* {2}3 {2}\(--config\/--app\) drover held, and your app's findings failed seeds/);
  });

  test("a job held by a loop: the app's finding where the innermost frame outside Node is the app's (or a package's), drover's hang where it is drover's", () => {
    const frame = (url: string, line: number) => ({ fn: 'f', url, line, column: 1 });
    const task = { id: 0, seed: '1', durationMs: 1000, defects: [], target: { app: 'app.js', cwd: process.cwd() } };
    const stall = (top: string) => stallIn(`noise\n${STALL_LINE}${JSON.stringify({ ms: 3000, frames: [frame('node:internal/timers', 9), frame(top, 7), frame(new URL('../../src/runtime/worker/worker.ts', import.meta.url).href, 200)] })}\nmore`)!;
    const app = stallResult(task, stall(`file://${process.cwd()}/app.js?drover-sim=3`), 10);
    expect(app.failure).toMatchObject({ kind: 'app', finding: 'hang', message: expect.stringMatching(/^hang: app\.js:7: held the host 3 s without returning/) });
    expect(app.app?.counts.hang).toBe(1);
    expect(whose(app.failure!)).toBe('app');
    const own = stallResult(task, stall(new URL('../../src/sim/kernel.ts', import.meta.url).href), 10);
    expect(own.failure).toMatchObject({ kind: 'hung', message: expect.stringMatching(/^drover's code held the host 3 s .*, at .*src\/sim\/kernel\.ts:7/) });
    expect(whose(own.failure!)).toBe('drover');
    expect(stallIn(`${STALL_LINE}{"ms":3000,"fra`)).toBeNull(); // not a whole line yet
  });

  test('a passing batch: exit 0, what the app did, and the command for the batch', async () => {
    const r = await drover(['--config', 'examples/express.config.js', '--seeds', '2', '--from', '5', '--duration', '4', '--jobs', '1'], 120_000);
    expect(r.err).not.toMatch(/FAIL/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^drover sim: --config examples\/express\.config\.js: app examples\/express-app\.js, 2 worker\(s\), lanes with 1 slow worker\(s\), 1 companion\(s\); 4 request kind\(s\) at 30\/s$/m);
    expect(r.out).toContain('this batch again: npx drover sim --config examples/express.config.js --seeds 2 --from 0x5 --duration 4');
    expect(r.out).toMatch(/drover sim: what your app did\n {2}requests: [\d,]+ sent; answers 200 ×[\d,]+, 201 ×[\d,]+/);
    expect(r.out).toContain('uncaught exceptions in app code: none');
    expect(r.out).toMatch(/\ndrover sim: exit 0: every seed passed: drover's invariants held, and your app had no finding that fails a seed\n$/);
  });

  const inUserApp = async (args: string[]) => {
    const child = spawn(process.execPath, [BIN, 'sim', ...args], { cwd: join(ROOT, 'test/chaos/fixtures/user-app'), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { code, out };
  };

  test('a seed whose app code throws: exit 3 (the app\'s, not drover\'s), under the app\'s heading, with its seed, simulated time and replay command', async () => {
    const { code, out } = await inUserApp(['--config', 'boom.config.json', '--seed', '1', '--no-shrink']);
    expect(code).toBe(3);
    expect(out).toMatch(/\n== your app's findings failed 1 of 1 seed\(s\): drover's invariants held there; the replay command reproduces each ==\n\nAPP seed 0x1 \(app, 3 s\): uncaught exceptions in app code at \d+\.\d{3}s simulated\n {2}crash: worker \d+: Error: boom from a timer/);
    expect(out).not.toMatch(/drover broke|FAIL seed/);
    expect(out).toMatch(/runs +1 \(0 passed, 1 failed: 0 by drover, 1 by the app's findings\)/);
    expect(out).toMatch(/\ndrover sim: exit 3: drover's invariants held in all 1 seed\(s\); your app's findings failed 1 of them\n$/);
    expect(out).toContain('replay: npx drover sim --config boom.config.json --seed 0x1 --duration 3');
    expect(out).toMatch(/uncaught exceptions in app code: [\d,]+ in 1 of 1 seeds \(each fails its seed\)\n {4}worker: Error: boom from a timer ×[\d,]+\n {4}first: seed 0x1 at/);
  });

  test('an app whose top level throws: exit 3, "your app failed to load" with the error drover logged', async () => {
    const { code, out } = await inUserApp(['--config', 'unloadable.config.json', '--seed', '1', '--no-shrink']);
    expect(code).toBe(3);
    expect(out).toMatch(/\nAPP seed 0x1 \(app, 2 s\): your app failed to load at \d+\.\d{3}s simulated\n {2}load: worker \d+: cannot load app \S+unloadable\.js: Error: DATABASE_URL is not set\n/);
    expect(out).toMatch(/\n {2}your app failed to load: [\d,]+ in 1 of 1 seeds \(each fails its seed\)\n {4}worker: cannot load app \S+unloadable\.js: Error: DATABASE_URL is not set ×[\d,]+\n/);
    expect(out).toMatch(/^drover sim: seed 0x1 \(app, 2 s\): your app's findings, trace hash [0-9a-f]{16}$/m);
    expect(out).not.toMatch(/invariant \S+ broken|drover broke|FAIL/);
    expect(out).toContain('drover sim: exit 3: ');
  });

  // Each simulated process imported the app under a URL of its own; for a CommonJS file that threw, Node 20's loader failed
  // an internal assertion in all but one of the workers that imported it at once, and that was what drover sim reported.
  test('a CommonJS app that fails to load: every worker of every seed reports the app\'s own error, at its line; never Node\'s internal assertion', async () => {
    const boom = await inUserApp(['--app', 'commonjs/throws.js', '--seeds', '3', '--from', '1', '--duration', '2', '--no-shrink']);
    expect(boom.out).not.toContain('ERR_INTERNAL_ASSERTION');
    expect(boom.code).toBe(3);
    expect(boom.out).toMatch(/\nAPP seed 0x1 \(app, 2 s\): your app failed to load at \d+\.\d{3}s simulated\n {2}load: worker \d+: cannot load app \S+\/commonjs\/throws\.js: Error: boom\n {6}at Object\.<anonymous> \(\S+\/commonjs\/throws\.js:2:7\)\n/);
    // One line for every failed load of every seed: none failed in another way.
    expect(boom.out).toMatch(/\n {2}your app failed to load: ([\d,]+) in 3 of 3 seeds \(each fails its seed\)\n {4}worker: cannot load app \S+\/commonjs\/throws\.js: Error: boom ×\1\n {4}first: /);

    const syntax = await inUserApp(['--app', 'commonjs/syntax.cjs', '--seeds', '3', '--from', '1', '--duration', '2', '--no-shrink']);
    expect(syntax.out).not.toContain('ERR_INTERNAL_ASSERTION');
    expect(syntax.code).toBe(3);
    expect(syntax.out).toMatch(/\n {2}load: worker \d+: cannot load app \S+\/commonjs\/syntax\.cjs: \S+\/commonjs\/syntax\.cjs:2\n {2}const x = ;\n {2} +\^\n {2}\n {2}SyntaxError: Unexpected token ';'\n/);
    expect(syntax.out).toMatch(/\n {2}your app failed to load: ([\d,]+) in 3 of 3 seeds \(each fails its seed\)\n {4}worker: cannot load app \S+\/commonjs\/syntax\.cjs: \S+\/commonjs\/syntax\.cjs:2 ×\1\n {4}first: /);
  });

  test('a CommonJS app that loads (it requires a file of its own) answers, and its seed gives the same trace hash twice', async () => {
    const runs = await Promise.all([1, 2].map(() => inUserApp(['--app', 'commonjs/app.js', '--seed', '1', '--duration', '2', '--no-shrink'])));
    const hashes = runs.map((r) => {
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/\n {2}requests: [\d,]+ sent; answers 200 ×[\d,]+\n {2}your app failed to load: none\n/);
      return /^drover sim: seed 0x1 \(app, 2 s\): pass, trace hash ([0-9a-f]{16})$/m.exec(r.out)?.[1];
    });
    expect(hashes[0]).toMatch(/^[0-9a-f]{16}$/);
    expect(hashes[1]).toBe(hashes[0]);
  });

  // It held the simulated clock for good (an import is host work): the run hung until --timeout, and was blamed on drover.
  test('an app whose top-level await never settles: exit 3, "your app failed to load", its module never finished loading', async () => {
    const { code, out } = await inUserApp(['--config', 'never.config.json', '--seed', '1', '--no-shrink']);
    expect(code).toBe(3);
    expect(out).toMatch(/\nAPP seed 0x1 \(app, 2 s\): your app failed to load at 0\.000s simulated\n {2}load: worker \d+: cannot load app \S+never\.js: Error: the module never finished loading: a top-level await \(in it, or in a module it imports\) did not settle within 0\.3 s of the host's time \(the timeout setting\)/);
    expect(out).toContain('replay: npx drover sim --config never.config.json --seed 0x1 --duration 2');
    expect(out).not.toMatch(/invariant \S+ broken|drover broke|FAIL|hung:/);
    expect(out).toMatch(/\ndrover sim: exit 3: drover's invariants held in all 1 seed\(s\); your app's findings failed 1 of them\n$/);
  });

  test('an app whose factory never finishes: exit 3, "your app failed to load", the boot drover timed out; not a broken convergence', async () => {
    const { code, out } = await inUserApp(['--config', 'stuck.config.json', '--seed', '1', '--no-shrink']);
    expect(code).toBe(3);
    expect(out).toMatch(/\nAPP seed 0x1 \(app, 4 s\): your app failed to load at [\d.]+s simulated\n {2}load: worker \d+: did not boot within 1 s \(the app's module or factory never finished: see what it waits for\)\n/);
    expect(out).not.toMatch(/invariant \S+ broken|drover broke|FAIL/);
    expect(out).toMatch(/\ndrover sim: exit 3: drover's invariants held in all 1 seed\(s\); your app's findings failed 1 of them\n$/);
  });

  test('a route that never ends its answers: exit 3, the requests the app never answered by route, not a broken invariant', async () => {
    const { code, out } = await inUserApp(['--config', 'forget.config.json', '--seeds', '1', '--from', '1', '--jobs', '1', '--no-shrink']);
    expect(code).toBe(3);
    expect(out).toMatch(/\n {2}requests the app never answered \(end every response, or set request_timeout\): [\d,]+ in 1 of 1 seeds \(each fails its seed\)\n {4}GET \/forget ×[\d,]+\n {4}first: seed 0x1 at [\d.]+s simulated, GET \/forget: sent at \d+ ms, handed to the app in worker \d+ at \d+ ms, never answered/);
    expect(out).toMatch(/answers 200 ×[\d,]+, unanswered ×[\d,]+/);
    expect(out).not.toMatch(/invariant convergence|drover broke/);
  });

  test('--trace of a --config run: its header is the deployment, the mix and the faults that ran, not a chaos scenario of the same seed', async () => {
    const trace = join(mkdtempSync(join(tmpdir(), 'drover-sim-')), 'app-trace.txt');
    const r = await drover(['--config', 'examples/express.config.js', '--seed', '3', '--duration', '4', '--trace', trace, '--no-shrink'], 120_000);
    expect(r.code).toBe(0);
    const text = readFileSync(trace, 'utf8');
    const head = text.slice(0, text.indexOf('\n\n'));
    expect(head).toMatch(/^# drover sim trace: seed 0x3, --config examples\/express\.config\.js, 4 s of faults and load\n/);
    expect(head).toContain('\n# replay: npx drover sim --config examples/express.config.js --seed 0x3 --duration 4\n');
    expect(head).toContain('\n# deployment: app examples/express-app.js, 2 worker(s), lanes with 1 slow worker(s), 1 companion(s)\n');
    expect(head).toContain('\n# load: 30 requests/s, open loop, drawn by weight: GET / ×40%, GET /users/7 ×40%, GET /report ×10%, POST /users ×10%\n');
    // Nothing of drover's own chaos scenarios, which this run is not.
    expect(head).not.toMatch(/scenario|topology|"rate":40|behaviour/);
    const faults = /\n# fault schedule \((\d+)\):/.exec(head);
    expect(Number(faults?.[1])).toBeGreaterThan(0);
    expect(head.split('\n').filter((l) => l.startsWith('#   '))).toHaveLength(Number(faults![1]));
  }, 150_000);

  test('a handler that loops forever is the app\'s finding, named where it loops, at half of --timeout (a stall, seen from a thread of the job); nothing is left running', async () => {
    const dir = join(ROOT, 'test/chaos/fixtures/user-app');
    // Its own process group, so that whatever it started can be found and killed.
    const child = spawn(process.execPath, [BIN, 'sim', '--config', 'loop.config.json', '--seed', '1', '--timeout', '6', '--no-shrink'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const group = child.pid!;
    const alive = () => {
      try {
        process.kill(-group, 0);
        return true;
      } catch {
        return false;
      }
    };
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => process.kill(-group, 'SIGKILL'), 30_000);
    try {
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      // Before: "hung: no result after 6 s of wall time (--timeout)", exit 1: drover blamed for the app's loop.
      expect(out).toMatch(/^drover sim: seed 0x1 \(app, 2 s\): your app's hang: loop\.js:4: held the host 3 s without returning to the event loop/m);
      expect(out).toMatch(/at app \(file:\/\/.*\/loop\.js\?drover-sim=\d+:4:\d+\)/);
      expect(out).toContain('replay: npx drover sim --config loop.config.json --seed 0x1 --duration 2');
      // Seen by the stall watch (3 s), not by --timeout (6 s), which would have said "hung: no result".
      expect(code).toBe(3);
      // The job it killed, and tsx's esbuild service, are gone within moments.
      for (let i = 0; i < 40 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(alive()).toBe(false);
    } finally {
      clearTimeout(timer);
      if (alive()) process.kill(-group, 'SIGKILL');
    }
  }, 40_000);

  test('a huge batch makes its tasks as it hands them out: --seeds 100000000 --budget 1 runs in a 256 MB heap', async () => {
    // All 100 million tasks built first took 4.5 GB of heap before any seed ran.
    const args = ['sim', '--seeds', '100000000', '--from', '1', '--budget', '1', '--scenario', 'reload-storm', '--duration', '1', '--jobs', '1', '--json'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=256' } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    expect(code).toBe(0);
    const report = JSON.parse(out) as { budget: { ran: number; of: number; again?: string } };
    expect(report.budget.of).toBe(100_000_000);
    expect(report.budget.ran).toBeLessThan(1000);
    const o = parseSimArgs(['--determinism', '100000000']);
    const tasks = batchTasks(o, 7n, []);
    expect(tasks.length).toBe(200_000_000);
    expect(tasks.at(100_000_005)).toMatchObject({ id: 100_000_005, seed: '12' }); // the second run of seed 7 + 5
    expect(batchTasks(parseSimArgs(['--seeds', '3']), (1n << 64n) - 1n, []).at(2).seed).toBe('1'); // wraps at 64 bits
  }, 90_000);

  test('a budget that ran out before any seed prints no command to run them again (--seeds 0 is refused)', () => {
    const o = parseSimArgs(['--seeds', '50', '--budget', '1', '--scenario', 'hostile', '--duration', '2']);
    expect(againCommand(o, 0, 0x10n)).toBeNull();
    expect(againCommand(o, 7, 0x10n)).toBe('npx drover sim --seeds 7 --from 0x10 --scenario hostile --duration 2');
  });

  test('a deployment that cannot be simulated: exit 2 with every problem', async () => {
    const dir = join(ROOT, 'test/chaos/fixtures/user-app');
    const child = spawn(process.execPath, [BIN, 'sim', '--config', 'outside.config.json', '--seed', '1'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(2);
    expect(err).toMatch(/^drover sim: --config outside\.config\.json: the deployment cannot be simulated:\n {2}app \.\.\/\.\.\/\.\.\/\.\.\/examples\/hello\.js is outside /);
  });
});
