// The simulator's one bound in the host's time: how long a module's import
// (Os.importModule) may stay pending (Machine.hostWork, `limitMs`). An import
// is host work, and the simulated clock stands still until it is done; a
// top-level await that never settles (a promise nobody resolves, a host
// promise that never comes, or something of the simulation itself — a
// timer, a request — which cannot run while the clock stands still) would
// hold the run for good. Nothing in the host says that such an import can
// never end (a loader still at work looks the same from here), so the bound
// is time: the host's, since that is the time an import takes.
//
// The host's setTimeout is taken as this module loads, before any simulated
// process ran: while one runs, the global is its virtual one (app-globals.ts),
// and Machine.hostWork is called from process code. The timer is unref'd: it
// never keeps the host alive by itself.
const hostSetTimeout = setTimeout;
const hostClearTimeout = clearTimeout;

/** Call `fn` after `ms` of the host's time, unless the returned function is called first. */
export function hostAlarm(ms: number, fn: () => void): () => void {
  // setTimeout fires at once (1 ms, with a warning) past 2^31-1 ms: a limit that long is as good as none.
  const t = hostSetTimeout(fn, Math.min(ms, 2 ** 31 - 1));
  t.unref();
  return () => hostClearTimeout(t);
}
