// process.stdout and process.stderr of a process drover runs, as Writers
// that outlive their reader (Writer.lost in ../types.ts).
//
// Every process of a server writes to the arbiter's stderr: the arbiter's
// log, the workers' (and their app's output), the companion manager's. When
// its reader goes away (`drover app 2>&1 | head`, a `| tee` that was killed,
// journald restarting, a FIFO whose reader exited) the next write fails with
// EPIPE, and Node emits it as an 'error' on the stream; with nobody
// listening, that is an uncaught exception: the process exits 1, and the
// arbiter took every worker with it. A log destination that fails must not
// stop a server (gunicorn, PM2 drop it), so the error is taken here and the
// stream is marked lost: drover's writes to it are dropped from then on.

import type { Writer } from '../types.js';

type Name = 'stdout' | 'stderr';

/** Per stream, why it can no longer be written; null while it can. One process, one pair of streams. */
const LOST: Record<Name, string | null> = { stdout: null, stderr: null };
let kept = false;

/**
 * From now on, this process's stdout and stderr failing (EPIPE, EIO, ENOSPC)
 * never ends it. Called first thing by every process drover runs (entry.ts,
 * the server's CLI), before any app code: an app's console.log meets the
 * same broken pipe, and its 'error' lands on the same stream. `drover ctl`
 * and tests do not call it: a command line tool piped into `head` may die
 * of it, as any Node program does.
 */
export function keepStdio(): void {
  if (kept) return;
  kept = true;
  for (const name of ['stdout', 'stderr'] as const) {
    process[name].on('error', (e: Error & { code?: unknown }) => {
      LOST[name] ??= e.code === 'EPIPE' ? 'EPIPE: its reader is gone' : e.message;
    });
  }
}

/** process.stdout or process.stderr; drops writes once the stream was lost. */
export class StdWriter implements Writer {
  constructor(private readonly name: Name) {}

  write(text: string): void {
    // A write to the destroyed stream would be dropped by Node too; this skips the work.
    if (LOST[this.name] === null) process[this.name].write(text);
  }

  backlog(): number {
    return LOST[this.name] === null ? process[this.name].writableLength : 0;
  }

  lost(): string | null {
    return LOST[this.name];
  }
}
