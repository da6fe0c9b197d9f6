// Signals. A signal with a handler becomes a pending bit and an event of
// the target process: its handler runs after the target's current work,
// and a second signal of the same kind before delivery is absorbed by the
// first (standard signals do not queue). A signal without a handler takes
// its default action at once, even when the target is in the middle of a
// burn: the kernel, not the target's event loop, carries it out. SIGKILL
// has no handler and acts at once, even on a stopped process.

import { assert } from '../os/assert.js';
import { DEFAULT_ACTION, OsError, SIGNALS, type Signal } from '../os/types.js';
import type { Machine } from './machine.js';
import { die, ExitSignal, RUNNING, STOPPED, ZOMBIE, REAPED, type Proc, type ProcState } from './processes.js';
import { EV_SIGNAL } from './scheduler.js';
import { FX_KILL } from './effects.js';

export const SIGNAL_COUNT = SIGNALS.length;
const INDEX = new Map<string, number>(SIGNALS.map((s, i) => [s, i]));
export const SIGKILL_INDEX = INDEX.get('SIGKILL')!;
export const SIGCHLD_INDEX = INDEX.get('SIGCHLD')!;
const ACTION = SIGNALS.map((s) => DEFAULT_ACTION[s]);

export function signalIndex(sig: Signal): number {
  const i = INDEX.get(sig);
  if (i === undefined) throw new OsError('EINVAL', `unknown signal ${JSON.stringify(sig)}`);
  // An index fits the pending bit mask (an int32) and names the signal back.
  assert(Number.isInteger(i) && i >= 0 && i < SIGNAL_COUNT && SIGNAL_COUNT <= 31, 'signalIndex: an index into SIGNALS that fits the pending mask');
  assert(SIGNALS[i] === sig, 'signalIndex: the index names the signal');
  return i;
}

export function signalName(i: number): Signal {
  assert(Number.isInteger(i), 'signalName: a signal index is an integer');
  assert(i >= 0 && i < SIGNAL_COUNT, 'signalName: a known signal');
  return SIGNALS[i]!;
}

export function onSignal(m: Machine, p: Proc, sig: Signal, fn: (() => void) | null): void {
  const i = signalIndex(sig);
  if (i === SIGKILL_INDEX) throw new OsError('EINVAL', 'SIGKILL cannot be caught or ignored');
  // Only a live process sets a handler (its Os throws ExitSignal otherwise): die() clears them for good.
  assert(p.state === RUNNING || p.state === STOPPED, 'onSignal: a dead process sets no handler');
  assert(p !== m.init, 'onSignal: init runs no code');
  p.handlers[i] = fn;
  m.log(p, 'handler', `${sig} ${fn === null ? 'default' : 'set'}`);
}

/** Signal one process (from the kernel, another process, or itself). */
export function sendSignal(m: Machine, t: Proc, i: number): void {
  assert(Number.isInteger(i) && i >= 0 && i < SIGNAL_COUNT, 'sendSignal: a known signal');
  if (t.state === ZOMBIE || t.state === REAPED || t === m.init) return;
  if (i === SIGKILL_INDEX) {
    m.log(t, 'sig', 'SIGKILL');
    die(m, t, null, 'SIGKILL');
    // SIGKILL acts at once, even on a stopped or burning process.
    assert((t.state as ProcState) >= ZOMBIE, 'sendSignal: SIGKILL kills');
    return;
  }
  // A stopped process keeps everything but KILL pending forever: there is
  // no SIGCONT here, so that is the same as dropping it.
  if (t.state === STOPPED) return;
  // SIGKILL cannot be caught (onSignal refuses it), so it never becomes pending.
  assert(t.handlers[SIGKILL_INDEX] === null, 'sendSignal: SIGKILL has no handler');
  const handler = t.handlers[i];
  if (handler !== null && handler !== undefined && !t.exiting) {
    const bit = 1 << i;
    if ((t.pendingSignals & bit) !== 0) {
      m.log(t, 'sig', `${SIGNALS[i]} coalesced`);
      return;
    }
    // A pending bit has exactly one EV_SIGNAL: set here, cleared by its delivery.
    t.pendingSignals |= bit;
    m.log(t, 'sig', `${SIGNALS[i]} pending`);
    m.at(m.now, EV_SIGNAL, t, null, i);
    return;
  }
  m.log(t, 'sig', SIGNALS[i]!);
  defaultAction(m, t, i);
}

function defaultAction(m: Machine, t: Proc, i: number): void {
  // Callers act only on a live process other than init.
  assert(t.state === RUNNING || t.state === STOPPED, 'defaultAction: the target is alive');
  assert(t !== m.init, 'defaultAction: init takes no signal');
  switch (ACTION[i]) {
    case 'terminate':
      die(m, t, null, SIGNALS[i]!);
      assert((t.state as ProcState) >= ZOMBIE, 'defaultAction: terminate kills');
      return;
    case 'stop':
      if (t.state === RUNNING) {
        // RUNNING --SIGTTIN/TTOU default--> STOPPED, the only way into STOPPED.
        t.state = STOPPED;
        m.changes++;
        m.log(t, 'stopped', SIGNALS[i]!);
      }
      return;
    default:
      assert(ACTION[i] === 'ignore', 'defaultAction: a known default action');
      return;
  }
}

/** EV_SIGNAL: run the handler, or the default action if the handler was removed meanwhile. */
export function deliverSignal(m: Machine, p: Proc, i: number): void {
  assert(Number.isInteger(i) && i >= 0 && i < SIGNAL_COUNT && i !== SIGKILL_INDEX, 'deliverSignal: a known signal other than KILL');
  // The run loop runs a process's events only while it is runnable.
  assert(p.runnable, 'deliverSignal: the process can run');
  const bit = 1 << i;
  if ((p.pendingSignals & bit) === 0) return;
  p.pendingSignals &= ~bit;
  m.touch(p);
  const handler = p.handlers[i];
  m.log(p, 'deliver', SIGNALS[i]!);
  if (handler === null || handler === undefined) defaultAction(m, p, i);
  else m.invoke(p, handler, undefined);
}

/**
 * os.kill. Existence is checked now, so ESRCH is synchronous; a sender
 * whose clock runs ahead (it burned) sends when its clock says, as one of
 * its deferred effects (effects.ts), which die with it.
 */
export function kill(m: Machine, p: Proc, pid: number, sig: Signal): void {
  const i = signalIndex(sig);
  if (!Number.isInteger(pid)) throw new OsError('EINVAL', `kill: pid ${pid} is not an integer`);
  const target = pid === 0 ? -p.pgid : pid;
  if (target > 0) {
    if (!m.procs.has(target)) throw new OsError('ESRCH', `kill(${pid}, ${sig}): no such process`);
  } else {
    const g = m.groups.get(-target);
    if (g === undefined || g.size === 0) throw new OsError('ESRCH', `kill(${pid}, ${sig}): no such process group`);
  }
  // pid 0 is resolved to the caller's group: a target is a pid or a negated pgid.
  assert(Number.isInteger(target) && target !== 0, 'kill: a target is a pid or a group');
  if (m.deferring(p)) {
    m.log(p, 'kill', `${target} ${sig} at=${m.local(p)}`);
    m.defer(p, FX_KILL, target, i);
    assert(p.effects.length > 0, 'kill: a deferred kill waits among its effects');
    return;
  }
  m.log(p, 'kill', `${target} ${sig}`);
  signalTarget(m, target, i);
  // Signalling oneself (or one's own group) to death ends the caller here.
  if (!p.runnable) throw new ExitSignal();
}

/** Deliver to a pid (>0) or a whole group (<0), whichever still exists. */
export function signalTarget(m: Machine, target: number, i: number): void {
  assert(Number.isInteger(target) && target !== 0, 'signalTarget: a pid or a group');
  assert(Number.isInteger(i) && i >= 0 && i < SIGNAL_COUNT, 'signalTarget: a known signal');
  if (target > 0) {
    const t = m.procs.get(target);
    if (t !== undefined) sendSignal(m, t, i);
    return;
  }
  const g = m.groups.get(-target);
  if (g === undefined) return;
  // A copy: a member that dies here may be reaped and leave the set.
  for (const t of [...g]) sendSignal(m, t, i);
}
