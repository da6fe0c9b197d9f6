// A job process's stall watch. Every simulated process runs on the job's one
// host thread, so app code that never returns (a synchronous loop in a
// handler) holds the whole simulation, and the job's parent could only kill
// it at --timeout and call it drover's hang. A thread of the job's own sees
// the stall - the job's host loop stops beating - and asks V8's inspector to
// pause the main thread, which works inside a running loop (an interrupt);
// the paused call stack says whose code it is. The thread writes it to
// stderr straight through fd 2 (a worker thread's process.stderr goes
// through the main thread, which is the one stuck), and the parent kills
// the job and reports where it was held (sim.ts, stallResult).
//
// Debugger.enable is handled only while the main thread is idle (not inside
// an interrupt, as pause is): the job waits for the watch to be armed before
// it takes its first task. With the debugger on and no breakpoint V8 runs
// code as before.
import { Worker } from 'node:worker_threads';

/** The line the watch writes to stderr: this prefix, then JSON ({ ms, frames }). */
export const STALL_LINE = 'drover-sim-stall ';

export interface StallFrame {
  readonly fn: string;
  readonly url: string;
  readonly line: number;
  readonly column: number;
}

export interface Stall {
  /** How long the job's host loop had not turned. */
  readonly ms: number;
  /** Innermost first. */
  readonly frames: readonly StallFrame[];
}

const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const { Session } = require('node:inspector');
const { writeSync } = require('node:fs');
const beat = new Int32Array(workerData.beat);
const session = new Session();
session.connectToMainThread();
const urls = new Map();
session.on('Debugger.scriptParsed', (m) => urls.set(m.params.scriptId, m.params.url));
session.on('Debugger.paused', (m) => {
  const frames = m.params.callFrames.slice(0, 12).map((f) => ({
    fn: f.functionName, url: urls.get(f.location.scriptId) || f.url, line: f.location.lineNumber + 1, column: f.location.columnNumber + 1,
  }));
  writeSync(2, ${JSON.stringify(STALL_LINE)} + JSON.stringify({ ms: workerData.stallMs, frames }) + '\\n');
  session.post('Debugger.resume');
});
let armed = false;
let seen = Atomics.load(beat, 0);
let since = Date.now();
let told = false;
// Started now, not once armed: a session's pending answer does not keep this thread's loop alive.
const watch = setInterval(() => {
  const now = Atomics.load(beat, 0);
  if (now !== seen) {
    seen = now;
    since = Date.now();
    told = false;
  } else if (armed && !told && Date.now() - since >= workerData.stallMs) {
    told = true;
    session.post('Debugger.pause');
  }
}, Math.min(500, workerData.stallMs / 4));
session.post('Debugger.enable', (err) => {
  parentPort.postMessage(err ? String(err.message) : 'armed');
  if (err) clearInterval(watch);
  armed = !err;
});
`;

/**
 * Starts the watch in this (job) process: a stall is a host loop that has
 * not turned for `stallMs`. Resolves once it is armed, or with why it could
 * not be (the runs go on unwatched: --timeout still ends a held job).
 */
export function watchStalls(stallMs: number): Promise<string | null> {
  const beat = new SharedArrayBuffer(4);
  const counter = new Int32Array(beat);
  setInterval(() => Atomics.add(counter, 0, 1), Math.min(250, stallMs / 8)).unref();
  const thread = new Worker(THREAD, { eval: true, workerData: { beat, stallMs } });
  return new Promise((resolve) => {
    thread.once('message', (m: string) => {
      thread.unref();
      resolve(m === 'armed' ? null : m);
    });
    thread.once('error', (e) => resolve(e.message));
  });
}

/** The stall a job wrote among its stderr `text`, if any (a whole line). */
export function stallIn(text: string): Stall | null {
  const at = text.indexOf(STALL_LINE);
  if (at < 0) return null;
  const end = text.indexOf('\n', at);
  if (end < 0) return null;
  try {
    return JSON.parse(text.slice(at + STALL_LINE.length, end)) as Stall;
  } catch {
    return null;
  }
}

/** A stall's stack as V8 writes one, for the frame readers of src/sim/net-guard.ts. */
export function stackOf(s: Stall): string {
  return ['Error: stall', ...s.frames.map((f) => `    at ${f.fn || '<anonymous>'} (${f.url}:${f.line}:${f.column})`)].join('\n');
}
