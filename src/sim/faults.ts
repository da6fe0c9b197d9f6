// Faults from inside the kernel (issue 15, item 3): the calls a real OS
// fails now and then, failed on purpose, each kind with its own probability
// per opportunity (FoundationDB's BUGGIFY, TigerBeetle's VOPR). All zero
// unless a kernel is given rates, so every run without them is what it was:
// the draws come from a generator of their own, seeded from the kernel's
// seed, and the kernel's own generator never sees them.
//
//   accept-emfile, accept-enfile  accept(2) fails: the connection stays in the
//                   backlog, the listener's onError hears EMFILE or ENFILE,
//                   and the kernel offers the connection again 1 ms later
//   write-enospc, write-eio       a file write fails whole: nothing written
//   write-short     a file write takes only a prefix and says how many bytes
//   spawn-eagain    fork fails with EAGAIN before anything is allocated
//   stream-reset    a connection is reset under its data: the chunk is lost,
//                   both sides get ECONNRESET after what is already on its way
//   stream-epipe    a socket write fails with EPIPE; the peer gets a reset
//   stream-split    a chunk arrives in 2 to 4 pieces, cut at random bytes
//   pipe-split      the same for a write into a pipe
//   latency         a delivery (socket, pipe, connect) takes 2 to maxLatencyMs
//                   more than the usual 0-1 ms; order on a stream is kept
//   clock-jump      when time moves, it moves 1 to maxJumpMs further (a host
//                   stall: every timer due meanwhile runs late)
//
// Calls of processes outside `programs` never fail (the chaos driver is
// the harness, not drover); a connection is in scope when either end is.

import { assert } from '../os/assert.js';
import type { Child, SpawnSpec } from '../os/types.js';
import type { Machine } from './machine.js';
import { SimOs } from './os.js';
import type { Proc } from './processes.js';
import { Rng } from './random.js';

export const OS_FAULTS = [
  'accept-emfile', 'accept-enfile', 'write-enospc', 'write-eio', 'write-short', 'spawn-eagain',
  'stream-reset', 'stream-epipe', 'stream-split', 'pipe-split', 'latency', 'clock-jump',
] as const;
export type OsFault = (typeof OS_FAULTS)[number];
export type FaultRates = Partial<Record<OsFault, number>>;

export interface FaultOptions {
  /** Probability per opportunity, 0..1 (absent: 0). */
  readonly rates?: FaultRates;
  /** Programs whose calls may fail (absent: every process but init). */
  readonly programs?: readonly string[];
  /** The longest extra delivery delay of `latency` (default 50 ms). */
  readonly maxLatencyMs?: number;
  /** The longest `clock-jump` (default 100 ms). */
  readonly maxJumpMs?: number;
}

/** A process that died of an uncaught error (Machine.fault): what the chaos checker calls a crash. */
/** A process.exit() of app code: its process, the code it asked for, and where it was called (`file:line`). */
export interface AppExit {
  readonly at: number;
  readonly pid: number;
  readonly program: string;
  readonly code: number;
  readonly site: string;
}

export interface Crash {
  readonly at: number;
  readonly pid: number;
  readonly program: string;
  readonly message: string;
  /** An unhandled rejection, not a throw. */
  readonly rejection: boolean;
  /** An error of drover's own code (net-guard.ts, droverOwn), never handed to app code's listeners. */
  readonly own?: boolean;
}

const zeros = (): Record<OsFault, number> => {
  const r = Object.fromEntries(OS_FAULTS.map((k) => [k, 0])) as Record<OsFault, number>;
  // A record keyed by kind: a kind named twice would share (and double-count) one slot.
  assert(Object.keys(r).length === OS_FAULTS.length, 'OS_FAULTS names each kind once');
  return r;
};

export class Faults {
  readonly rate: Record<OsFault, number> = zeros();
  /** How often each kind fired. */
  readonly fired: Record<OsFault, number> = zeros();
  /** Some rate is above 0: the one test the hot paths make when faults are off. */
  on = false;
  maxLatencyMs = 50;
  maxJumpMs = 100;
  readonly crashes: Crash[] = [];
  /** process.exit() calls of app code (not drover's own), in the order made (app-globals.ts). */
  readonly exits: AppExit[] = [];
  private programs: ReadonlySet<string> | null = null;
  private readonly rng: Rng;

  constructor(seed: bigint, opts: FaultOptions = {}) {
    assert(seed >= 0n && seed < 1n << 64n, () => `fault seed ${seed}: the kernel's seeds are 64-bit unsigned (seedToBigInt)`);
    this.rng = new Rng(seed ^ 0xfa0175b0d5eedn);
    this.set(opts);
    assert(OS_FAULTS.every((k) => this.fired[k] === 0), 'a new kernel has fired no fault');
  }

  /** New rates (and scope); kinds not named go to 0. Counts are kept. */
  set(opts: FaultOptions): void {
    for (const k of OS_FAULTS) {
      const r = opts.rates?.[k] ?? 0;
      if (!(r >= 0 && r <= 1)) throw new RangeError(`fault rate ${k}=${r}: a probability is 0..1`);
      this.rate[k] = r;
    }
    this.on = OS_FAULTS.some((k) => this.rate[k] > 0);
    this.programs = opts.programs === undefined ? null : new Set(opts.programs);
    if (opts.maxLatencyMs !== undefined) this.maxLatencyMs = Math.max(2, Math.floor(opts.maxLatencyMs));
    if (opts.maxJumpMs !== undefined) this.maxJumpMs = Math.max(1, Math.floor(opts.maxJumpMs));
    // delay() draws in [2, maxLatencyMs] and jump() through below(maxJumpMs): both want finite integers (NaN or
    // Infinity from a caller would make deliveries or the clock land at NaN or never).
    assert(Number.isSafeInteger(this.maxLatencyMs) && this.maxLatencyMs >= 2, () => `maxLatencyMs ${opts.maxLatencyMs}: a finite number of ms`);
    assert(Number.isSafeInteger(this.maxJumpMs) && this.maxJumpMs >= 1 && this.maxJumpMs < 2 ** 32, () => `maxJumpMs ${opts.maxJumpMs}: a finite number of ms`);
  }

  /** Calls of `p` may fail. */
  covers(p: Proc | null): boolean {
    // Only asked behind the `on` test (the hot paths' one test when faults are off).
    assert(this.on, 'fault scope asked with every rate at 0');
    assert(p === null || (Number.isInteger(p.pid) && p.pid >= 1), 'a process has a positive pid');
    return p !== null && p.pid !== 1 && (this.programs === null || this.programs.has(p.program));
  }

  /** Whether `kind` fires at this opportunity (scope already checked by the caller); counted when it does. */
  hit(kind: OsFault): boolean {
    const r = this.rate[kind];
    // set() keeps every rate a probability; undefined (not a kind) would fail both tests below and always fire.
    assert(r >= 0 && r <= 1, 'a fault rate is a probability in [0, 1]');
    assert(r === 0 || this.on, 'a kind with a rate above 0 has `on` set');
    if (r <= 0 || (r < 1 && this.rng.float() >= r)) return false;
    this.fired[kind]++;
    assert(this.fired[kind] >= 1, 'a fired count only grows');
    return true;
  }

  /** Uniform integer in [0, n). */
  below(n: number): number {
    // Rng.below wants an integer in [1, 2^32): below(0) would be NaN, a cut at NaN bytes.
    assert(Number.isInteger(n) && n >= 1 && n < 2 ** 32, 'below(n) wants an integer n in [1, 2^32)');
    const r = this.rng.below(n);
    assert(Number.isInteger(r) && r >= 0 && r < n, 'below(n) draws an integer in [0, n)');
    return r;
  }

  /** A late delivery's extra delay: log-uniform in [2, maxLatencyMs], so most are short and a few long. */
  delay(): number {
    assert(this.maxLatencyMs >= 2, 'maxLatencyMs is at least 2');
    const d = Math.floor(2 * (this.maxLatencyMs / 2) ** this.rng.float());
    assert(d >= 2 && d <= this.maxLatencyMs, 'a late delivery is 2 to maxLatencyMs late');
    return d;
  }

  /** A clock jump: 1 to maxJumpMs. */
  jump(): number {
    assert(Number.isInteger(this.maxJumpMs) && this.maxJumpMs >= 1, 'maxJumpMs is a positive integer');
    const j = 1 + this.rng.below(this.maxJumpMs);
    assert(j >= 1 && j <= this.maxJumpMs, 'a clock jump is 1 to maxJumpMs');
    return j;
  }
}

const ERRNO: Readonly<Record<string, [number, string]>> = {
  EAGAIN: [-11, 'resource temporarily unavailable'],
  EIO: [-5, 'i/o error'],
  ENOSPC: [-28, 'no space left on device'],
  EMFILE: [-24, 'too many open files'],
  ENFILE: [-23, 'file table overflow'],
  EPIPE: [-32, 'broken pipe'],
};

/** An error shaped as Node's own for a failed call: `ENOSPC: no space left on device, write`, with code, errno and syscall. */
export function errnoError(code: keyof typeof ERRNO & string, syscall: string, what = ''): Error & { code: string; errno: number; syscall: string } {
  const entry = ERRNO[code];
  assert(entry !== undefined, () => `errnoError: no errno for ${code}`);
  const [errno, text] = entry;
  assert(Number.isInteger(errno) && errno < 0, 'a libuv errno is a negative integer');
  return Object.assign(new Error(`${code}: ${text}, ${syscall}${what === '' ? '' : ` ${what}`}`), { code, errno, syscall });
}

/** A process's Os whose spawn may fail with EAGAIN, as fork(2) does when the system is out of processes or memory. */
export class FaultyOs extends SimOs {
  constructor(
    private readonly machine: Machine,
    private readonly proc: Proc,
  ) {
    // Machine.addProc makes one per process, init excepted: init's calls never fail.
    assert(proc.pid !== 1, 'init has a plain SimOs');
    assert(proc.os === undefined, 'a process gets one Os');
    super(machine, proc);
  }

  override spawn(spec: SpawnSpec): Child {
    const f = this.machine.faults;
    const p = this.proc;
    // Before anything is allocated, as a failed fork leaves nothing behind.
    if (f.on && p.runnable && f.covers(p) && f.hit('spawn-eagain')) {
      assert(f.fired['spawn-eagain'] >= 1, 'a fault that hit is counted');
      const name = 'command' in spec ? (spec.command[0] ?? '') : spec.program;
      this.machine.log(p, 'fault', `spawn-eagain ${name}`);
      throw errnoError('EAGAIN', 'spawn', name);
    }
    assert(p.pid !== 1, 'init has a plain SimOs');
    return super.spawn(spec);
  }
}

/** The error each kind makes a call fail with ('short': a short write; null: none, the data or the time is what changes). */
export const FAULT_ERRNO: Readonly<Record<OsFault, string | null>> = {
  'accept-emfile': 'EMFILE', 'accept-enfile': 'ENFILE', 'write-enospc': 'ENOSPC', 'write-eio': 'EIO', 'write-short': 'short',
  'spawn-eagain': 'EAGAIN', 'stream-reset': 'ECONNRESET', 'stream-epipe': 'EPIPE', 'stream-split': null, 'pipe-split': null,
  latency: null, 'clock-jump': null,
};
