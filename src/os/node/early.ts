// The first code a drover program's process runs, before tsx or the entry
// module load (`--import data:...`, see spawn.ts). Loading those takes long
// enough that two things would go wrong without it:
// - Node opens the inspector on SIGUSR1 until a listener exists, and the Os
//   contract says USR1's default is "ignore";
// - messages the parent sends right after spawn would be emitted on
//   `process` before any listener, and dropped.
// It installs a no-op USR1 listener and buffers messages; entry.ts takes both
// over (signals.ts, channel.ts).

const GUARD = 'drover.usr1Guard';
const QUEUE = 'drover.earlyMessages';

const SOURCE =
  `const f=()=>{};globalThis[Symbol.for('${GUARD}')]=f;process.on('SIGUSR1',f);` +
  `if(process.send){const q=[],h=(m)=>q.push(m);process.on('message',h);globalThis[Symbol.for('${QUEUE}')]={q,h};}`;

export const EARLY_IMPORT = `data:text/javascript,${encodeURIComponent(SOURCE)}`;

type Slots = {
  [k: symbol]: unknown;
};

/** Removes the early SIGUSR1 listener (the caller has installed its own). */
export function dropEarlyUsr1Guard(): void {
  const g = globalThis as Slots;
  const key = Symbol.for(GUARD);
  const f = g[key];
  if (typeof f === 'function') process.removeListener('SIGUSR1', f as () => void);
  delete g[key];
}

const SIGNALS = 'drover.earlySignals';

/**
 * Removes bin/drover.js's early listener for `sig`, if there is one, and
 * returns how many times `sig` came before (it queues the server's signals
 * from its first lines, while drover loads).
 */
export function takeEarlySignals(sig: string): number {
  const early = (globalThis as Slots)[Symbol.for(SIGNALS)] as { q: string[]; fns: Map<string, () => void> } | undefined;
  const fn = early?.fns.get(sig);
  if (!early || !fn) return 0;
  process.removeListener(sig, fn);
  early.fns.delete(sig);
  const n = early.q.filter((s) => s === sig).length;
  early.q = early.q.filter((s) => s !== sig);
  return n;
}

/** Removes the early message listener and returns what it buffered. */
export function takeEarlyMessages(): unknown[] {
  const g = globalThis as Slots;
  const key = Symbol.for(QUEUE);
  const early = g[key] as { q: unknown[]; h: (m: unknown) => void } | undefined;
  delete g[key];
  if (!early) return [];
  process.removeListener('message', early.h);
  return early.q;
}
