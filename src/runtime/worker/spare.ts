// A spare worker (spare_workers): node and the worker's code are loaded, the
// app is not. It waits, idle, for the arbiter's 'go' with the spec a freshly
// spawned worker gets as its argument, and from there boots as one. Most of
// a worker's boot on a busy machine is node's own start, which a spare has
// behind it; the app is loaded after 'go', so a reload still runs new app
// code (drover's own code is what the spare started with).
import { assert } from '../assert.js';
import type { Os } from '../../os/types.js';
import { EXIT_BOOT, SPARE_TITLE, type ToWorker, type WorkerSpec } from '../protocol.js';

/** Where a worker hears the arbiter after 'go': every later message, in order, from its first onMessage on. */
export interface Inbox {
  onMessage(fn: (message: unknown) => void): void;
}

export function awaitGo(os: Os): Promise<{ spec: WorkerSpec; inbox: Inbox }> {
  const ch = os.channel;
  if (ch === null) {
    os.stderr.write('drover: a spare worker is started by its arbiter, over a channel, and this one has none\n');
    os.exit(EXIT_BOOT);
  }
  os.setTitle(SPARE_TITLE);
  // Until the worker installs its own: stopping is all a spare has to do; HUP
  // is the arbiter's business and USR1 reopens logs a spare has not opened.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) os.onSignal(sig, () => os.exit(0));
  os.onSignal('SIGHUP', () => {});
  os.onSignal('SIGUSR1', () => {});
  // The arbiter gone before it gave us work: nothing is lost (the parent-death signal does the same).
  ch.onDisconnect(() => {
    if (spec === null) os.exit(0);
  });
  let spec: WorkerSpec | null = null;
  let later: ((message: unknown) => void) | null = null;
  const early: unknown[] = [];
  const inbox: Inbox = {
    onMessage(fn) {
      assert(later === null, 'Inbox.onMessage: one handler, the worker\'s');
      later = fn;
      for (const m of early.splice(0)) fn(m);
    },
  };
  return new Promise((resolve) => {
    ch.onMessage((m) => {
      if (spec !== null) {
        if (later !== null) later(m);
        else early.push(m);
        return;
      }
      const msg = m as ToWorker;
      // The arbiter's first word to a spare is 'go', and it says it once.
      assert(msg.t === 'go', 'awaitGo: the first message to a spare is go');
      spec = msg.t === 'go' ? msg.spec : null;
      if (spec !== null) resolve({ spec, inbox });
    });
  });
}
