// Programs of the pipe conformance cases (pipes.test.ts): children that
// write into their stdout/stderr pipes in known patterns, and roots that read
// them and report what arrived, and when, as one JSON line.
import type { Readable } from 'node:stream';
import { programs, type Os } from '../../src/os/types.js';
import { emit, inbox, reap, until } from '../support/os.js';

interface Got {
  text: string;
  firstAt: number; // os.now() of the first chunk, -1 before
  endAt: number; // of 'end', -1 before
}

function collect(os: Os, r: Readable): Got {
  const got: Got = { text: '', firstAt: -1, endAt: -1 };
  r.setEncoding('utf8');
  r.on('data', (d: string) => {
    if (got.firstAt < 0) got.firstAt = os.now();
    got.text += d;
  });
  r.on('end', () => (got.endAt = os.now()));
  return got;
}

async function ended(os: Os, got: Got): Promise<void> {
  if (!(await until(os, () => got.endAt >= 0, 10_000))) throw new Error(`no EOF within 10 s; got ${JSON.stringify(got.text.slice(-200))}`);
}

function linesOf(text: string): string[] {
  const l = text.split('\n');
  l.pop();
  return l;
}

/** Repeats `fn` every `ms` for as long as the process lives. */
function every(os: Os, ms: number, fn: () => void): void {
  const tick = (): void => {
    fn();
    os.timer(ms, tick);
  };
  tick();
}

// ------------------------------------------------------------------ children

/** `line 0` .. `line n-1`, one write each, then returns (Node waits for its queue to drain). */
function pipeLines(os: Os, args: readonly string[]): void {
  for (let i = 0; i < Number(args[0]); i++) os.stdout.write(`line ${i}\n`);
}

/** n lines, alternately to stdout and stderr. */
function pipeMixed(os: Os, args: readonly string[]): void {
  for (let i = 0; i < Number(args[0]); i++) {
    if (i % 2 === 0) os.stdout.write(`out ${i}\n`);
    else os.stderr.write(`err ${i}\n`);
  }
}

/** Writes, leaves a grandchild holding the pipe (stdout 'inherit'), and exits at once. */
function pipeForker(os: Os, args: readonly string[]): void {
  os.stdout.write('child\n');
  os.spawn({ program: 'pipe-late', args: [args[0]!], channel: false });
  os.exit(0);
}

async function pipeLate(os: Os, args: readonly string[]): Promise<void> {
  await os.sleep(Number(args[0]));
  os.stdout.write('grandchild\n');
}

/** n lines in 10 writes (within the pipe's capacity unread), 'ready' on the channel, then 'more' every ms until killed. */
function pipeUntilKilled(os: Os, args: readonly string[]): void {
  const n = Number(args[0]);
  for (let b = 0; b < 10; b++) {
    let s = '';
    for (let i = (b * n) / 10; i < ((b + 1) * n) / 10; i++) s += `line ${i}\n`;
    os.stdout.write(s);
  }
  os.channel!.send('ready');
  every(os, 1, () => os.stdout.write('more\n'));
}

async function pipeSleepy(os: Os, args: readonly string[]): Promise<void> {
  os.stdout.write('hello\n');
  await os.sleep(Number(args[0]));
}

/**
 * Ticks until its stdout is lost (its reader let go), ticks three more times
 * into the broken pipe, then exits: 3 if the stream said why, as expected,
 * 4 if it said something else, 5 if it never broke within 10 s.
 */
function pipeOutliver(os: Os): void {
  const start = os.now();
  let after = -1;
  every(os, 10, () => {
    os.stdout.write('tick\n');
    const why = os.stdout.lost();
    if (why !== null && ++after === 3) os.exit(why === 'EPIPE: its reader is gone' ? 3 : 4);
    if (os.now() - start > 10_000) os.exit(5);
  });
}

// --------------------------------------------------------------------- roots

async function pipeOrder(os: Os): Promise<void> {
  const c = os.spawn({ program: 'pipe-lines', args: ['1000'], stdout: 'pipe', channel: false });
  const got = collect(os, c.stdout!);
  await ended(os, got);
  const e = await reap(os, c.pid);
  const lines = linesOf(got.text);
  emit(os, { code: e.code, count: lines.length, inOrder: lines.every((l, i) => l === `line ${i}`), stderr: c.stderr });
}

async function pipeMerge(os: Os): Promise<void> {
  const merged = os.spawn({ program: 'pipe-mixed', args: ['100'], stdout: 'pipe', stderr: 'stdout', channel: false });
  const both = collect(os, merged.stdout!);
  const split = os.spawn({ program: 'pipe-mixed', args: ['100'], stdout: 'pipe', stderr: 'pipe', channel: false });
  const out = collect(os, split.stdout!);
  const err = collect(os, split.stderr!);
  for (const g of [both, out, err]) await ended(os, g);
  await reap(os, merged.pid);
  await reap(os, split.pid);
  const expected = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? `out ${i}` : `err ${i}`));
  emit(os, {
    mergedStderr: merged.stderr,
    mergedInWriteOrder: linesOf(both.text).join() === expected.join(),
    splitOut: linesOf(out.text).join() === expected.filter((l) => l.startsWith('out')).join(),
    splitErr: linesOf(err.text).join() === expected.filter((l) => l.startsWith('err')).join(),
  });
}

/**
 * Returns at once: after the child's exit only the pipe, held open by the
 * grandchild, keeps this process alive to print its record at EOF.
 */
function pipeGrandchild(os: Os): void {
  const c = os.spawn({ program: 'pipe-forker', args: ['400'], stdout: 'pipe', channel: false });
  const got = collect(os, c.stdout!);
  let exited: { code: number | null; at: number } | null = null;
  let lateAt = -1;
  os.onSignal('SIGCHLD', () => {
    const e = os.waitpid(c.pid);
    if (e) exited = { code: e.code, at: os.now() };
  });
  c.stdout!.on('data', (d: string) => {
    if (d.includes('grandchild')) lateAt = os.now();
  });
  c.stdout!.on('end', () => {
    emit(os, { text: got.text, exited: exited !== null, code: exited?.code, endAfterExit: exited === null ? null : got.endAt - exited.at, endAfterLate: got.endAt - lateAt });
  });
}

async function pipeKilled(os: Os): Promise<void> {
  const c = os.spawn({ program: 'pipe-until-killed', args: ['1000'], stdout: 'pipe' });
  const got = collect(os, c.stdout!);
  await inbox(os, c.channel!)();
  os.kill(c.pid, 'SIGKILL');
  await ended(os, got);
  const e = await reap(os, c.pid);
  const lines = linesOf(got.text);
  emit(os, {
    signal: e.signal,
    beforeKill: lines.slice(0, 1000).every((l, i) => l === `line ${i}`),
    after: [...new Set(lines.slice(1000))],
    endsWithNewline: got.text.endsWith('\n'),
  });
}

async function pipeEofAtExit(os: Os): Promise<void> {
  const c = os.spawn({ program: 'pipe-sleepy', args: ['300'], stdout: 'pipe', channel: false });
  const got = collect(os, c.stdout!);
  await ended(os, got);
  const e = await reap(os, c.pid);
  emit(os, { text: got.text, code: e.code, eofAfterData: got.endAt - got.firstAt });
}

async function pipeUnread(os: Os): Promise<void> {
  const c = os.spawn({ program: 'pipe-lines', args: ['100'], stdout: 'pipe', channel: false });
  const t0 = os.now();
  const e = await reap(os, c.pid, 10_000);
  const ms = os.now() - t0;
  await os.sleep(100);
  emit(os, { code: e.code, within10s: ms < 10_000, ended: c.stdout!.readableEnded, buffered: c.stdout!.readableLength });
}

async function pipeEpipe(os: Os): Promise<void> {
  const c = os.spawn({ program: 'pipe-outliver', stdout: 'pipe', stderr: 'ignore', channel: false });
  c.stdout!.once('data', () => c.stdout!.destroy());
  const e = await reap(os, c.pid);
  emit(os, { code: e.code, signal: e.signal });
}

export const pipeRegistry = programs(import.meta.url, {
  'pipe-lines': pipeLines,
  'pipe-mixed': pipeMixed,
  'pipe-forker': pipeForker,
  'pipe-late': pipeLate,
  'pipe-until-killed': pipeUntilKilled,
  'pipe-sleepy': pipeSleepy,
  'pipe-outliver': pipeOutliver,
  'pipe-order': pipeOrder,
  'pipe-merge': pipeMerge,
  'pipe-grandchild': pipeGrandchild,
  'pipe-killed': pipeKilled,
  'pipe-eof-at-exit': pipeEofAtExit,
  'pipe-unread': pipeUnread,
  'pipe-epipe': pipeEpipe,
});
