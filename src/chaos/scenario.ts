// A chaos scenario, entirely determined by one 64-bit seed (DESIGN.md,
// "Simulation and chaos"; issue 6): the topology (workers, slow lane,
// companions and how each behaves), the load (fast and slow routes,
// keep-alive or not, clients that leave early) and the fault schedule.
// The same seed also seeds the simulated kernel, so a seed is a whole run.
//
// Named scenarios weight the draw: `reload-storm` is mostly HUPs (changed,
// unchanged, broken) with TTIN/TTOU, `parent-death` kills the arbiter, the
// manager and companions, `queue-load` drives the slow lane hard and kills
// its workers, `mixed` draws from everything, `companions` is mostly control
// commands (restart, stop, start) and companion kills, with the manager
// stalled (stall-manager, also in parent-death and mixed), `hostile` adds
// hostile clients (hostile.ts) to a load with kills and reloads, under short
// client deadlines. `faults` turns on the kernel's own faults (src/sim/faults.ts:
// EMFILE on accept, ENOSPC and EIO on writes, EAGAIN on spawn, resets, short
// reads, latency, clock jumps), each at its rate (OS_RATES) times a factor
// drawn per seed, under a load with reloads, worker kills and companions, and
// a pidfile. Without a name the seed picks one of the first four.
import { Rng } from '../sim/random.js';
import { OS_FAULTS, type FaultRates, type OsFault } from '../sim/faults.js';

export const SCENARIOS = ['reload-storm', 'parent-death', 'queue-load', 'mixed', 'companions', 'hostile', 'faults'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
/** The scenarios a seed without a name picks from: fixed, so that a seed keeps naming the same run as scenarios are added. */
const DRAWN: readonly ScenarioName[] = ['reload-storm', 'parent-death', 'queue-load', 'mixed'];

export const FAULT_KINDS = [
  'kill-worker', 'kill-slow-worker', 'kill-manager', 'kill-arbiter', 'kill-companion',
  'hup', 'hup-changed', 'hup-broken-config', 'hup-broken-app', 'ttin', 'ttou',
  'ctl', 'ctl-malformed', 'stall-worker', 'stall-manager',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const BEHAVIOURS = ['cooperative', 'crashing', 'ignores-term', 'forks', 'slow-start'] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

/** One fault: what, when (simulated ms from the start), and a number that picks its target or variant. */
export interface Fault {
  readonly at: number;
  readonly kind: FaultKind;
  readonly pick: number;
}

export interface CompanionPlan {
  readonly name: string;
  readonly behaviour: Behaviour;
}

/**
 * A companion that is a job, not a daemon: it runs a while (runMs, drawn per
 * run; some runs end before startsecs) and exits with one of `codes` (drawn
 * per run by the kernel's seeded random). One with autorestart false, one
 * with "unexpected" and its exitcodes: the `one-shot` invariant watches what
 * the manager does after each exit.
 */
export interface OneShotPlan {
  readonly name: string;
  readonly autorestart: false | 'unexpected';
  readonly exitcodes: readonly number[];
  readonly codes: readonly number[];
  readonly runMs: readonly [number, number];
}

export interface Topology {
  readonly workers: number;
  /** TTIN/TTOU room: min_workers..max_workers around `workers` (equal when the schedule has no TTIN/TTOU). */
  readonly minWorkers: number;
  readonly maxWorkers: number;
  readonly slowWorkers: number;
  /** spare_workers: 0 in most runs (drawn last of all: no earlier draw of any seed changed). */
  readonly spareWorkers: number;
  readonly slowConcurrency: number;
  readonly slowQueue: number;
  readonly queueTimeoutMs: number;
  readonly companions: readonly CompanionPlan[];
  /** Jobs beside the daemons (none where no companions are wanted). */
  readonly oneShots: readonly OneShotPlan[];
  /** Client deadlines in ms (client_header_timeout, client_body_timeout, send_timeout); null: drover's defaults. */
  readonly clients: { readonly header: number; readonly body: number; readonly send: number } | null;
}

export interface LoadPlan {
  /** Requests a simulated second, open loop (arrivals do not wait for answers); 0: none. */
  readonly rate: number;
  /** Share of requests to slow (CPU-burning) routes. */
  readonly slowShare: number;
  readonly slowMsMin: number;
  readonly slowMsMax: number;
  /** Share sent on a kept-alive connection (the rest open one each). */
  readonly keepAliveShare: number;
  /** Share of clients that give up before their answer. */
  readonly leaveShare: number;
  /** Share of requests that ask for a big answer (64 KiB to 1 MiB): what flow control and the slow lane's streaming carry. */
  readonly bigShare: number;
  /** Share of clients that stop reading for a while (0.1 to 2 s) once their answer's head has come. */
  readonly slowReaderShare: number;
  /** Hostile clients a simulated second (hostile.ts); 0: none. */
  readonly attacks: number;
}

export interface Scenario {
  readonly seed: bigint;
  readonly name: ScenarioName;
  /** Faults and load run this long; then the system must settle. */
  readonly durationMs: number;
  readonly topology: Topology;
  readonly load: LoadPlan;
  readonly faults: readonly Fault[];
  /** The kernel's own faults and their rates (empty: none; only the `faults` scenario has any). */
  readonly osFaults: FaultRates;
}

export interface ScenarioOptions {
  readonly name?: ScenarioName;
  readonly durationMs?: number;
}

/** How often each kind is drawn, per scenario (weights, 0: never). */
const WEIGHTS: Record<ScenarioName, Partial<Record<FaultKind, number>>> = {
  'reload-storm': { hup: 3, 'hup-changed': 4, 'hup-broken-config': 2, 'hup-broken-app': 2, ttin: 2, ttou: 2, 'kill-worker': 1, ctl: 1 },
  'parent-death': { 'kill-arbiter': 3, 'kill-manager': 3, 'kill-companion': 3, 'kill-worker': 1, ctl: 2, 'ctl-malformed': 1 },
  'queue-load': { 'kill-slow-worker': 4, 'kill-worker': 1, 'stall-worker': 1, hup: 1 },
  mixed: {
    'kill-worker': 2, 'kill-slow-worker': 2, 'kill-manager': 1, 'kill-arbiter': 1, 'kill-companion': 2, hup: 1, 'hup-changed': 2,
    'hup-broken-config': 1, 'hup-broken-app': 1, ttin: 1, ttou: 1, ctl: 2, 'ctl-malformed': 1, 'stall-worker': 1,
  },
  // A restart, stop or start by ctl while the companion runs, crashes or backs off; the manager killed under it.
  companions: { ctl: 6, 'kill-companion': 2, 'kill-manager': 1, 'ctl-malformed': 1, 'kill-worker': 1 },
  // No stall: a hung worker holds its clients past any deadline until the heartbeat kills it, which is the timeout's business.
  hostile: { 'kill-worker': 2, 'kill-slow-worker': 2, hup: 1, 'hup-changed': 2, ttin: 1, ttou: 1 },
  // Nothing that stops serving for long (no arbiter or manager kills, no stalls): requests must keep being answered through the
  // kernel's faults. Broken configs are drawn last (see generate).
  faults: { 'kill-worker': 2, 'kill-slow-worker': 1, hup: 1, 'hup-changed': 2, ttin: 1, ttou: 1, ctl: 2, 'kill-companion': 1 },
};

/**
 * The `faults` scenario's rate of each kernel fault, per opportunity (an
 * accept, a file write, a spawn, a chunk, a delivery, a move of the clock),
 * before its factor per seed. Chosen so that a 30 s run sees most kinds a
 * few times to a few hundred times, and none so often that nothing works.
 */
export const OS_RATES: Readonly<Record<OsFault, number>> = {
  'accept-emfile': 0.02, 'accept-enfile': 0.005, 'write-enospc': 0.02, 'write-eio': 0.01, 'write-short': 0.02,
  'spawn-eagain': 0.05, 'stream-reset': 0.002, 'stream-epipe': 0.002, 'stream-split': 0.05, 'pipe-split': 0.2,
  latency: 0.02, 'clock-jump': 0.001,
};

export const DEFAULT_DURATION_MS = 30_000;

/** Seeds are unsigned 64-bit: decimal or 0x hex text. */
export function parseSeed(text: string): bigint {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) throw new RangeError(`a seed is an unsigned 64-bit integer (decimal or 0x hex), not ${JSON.stringify(text)}`);
  const v = BigInt(t);
  if (v >= 1n << 64n) throw new RangeError(`seed ${text} does not fit in 64 bits`);
  return v;
}

export function generate(seed: bigint, opts: ScenarioOptions = {}): Scenario {
  // A stream of its own, so that the kernel's (seeded with the same number) is unrelated.
  const r = new Rng(seed ^ 0x5ca1ab1e0ddba11n);
  const int = (lo: number, hi: number) => lo + r.below(hi - lo + 1);
  const chance = (p: number) => r.float() < p;
  const name = opts.name ?? DRAWN[r.below(DRAWN.length)]!;
  const durationMs = opts.durationMs ?? DEFAULT_DURATION_MS;
  const weights = WEIGHTS[name];

  const kinds = (Object.keys(weights) as FaultKind[]).filter((k) => (weights[k] ?? 0) > 0);
  const total = kinds.reduce((n, k) => n + weights[k]!, 0);
  const draw = (): FaultKind => {
    let x = r.below(total);
    for (const k of kinds) if ((x -= weights[k]!) < 0) return k;
    return kinds[kinds.length - 1]!;
  };
  const perMinute = name === 'reload-storm' ? int(20, 40) : name === 'queue-load' ? int(6, 16) : int(10, 24);
  const n = Math.max(1, Math.round((perMinute * durationMs) / 60_000));
  const faults: Fault[] = [];
  // Faults after the first boot (2 s) and until the end of the duration.
  for (let i = 0; i < n; i++) faults.push({ at: int(2000, Math.max(2000, durationMs)), kind: draw(), pick: r.u32() });
  faults.sort((a, b) => a.at - b.at);

  const scaling = faults.some((f) => f.kind === 'ttin' || f.kind === 'ttou');
  const workers = int(1, 4);
  const needsCompanions = name === 'parent-death' || name === 'mixed' || name === 'companions' || name === 'faults' || faults.some((f) => f.kind === 'kill-manager' || f.kind === 'kill-companion');
  const companions: CompanionPlan[] = [];
  const nc = needsCompanions ? int(1, 3) : chance(0.3) ? 1 : 0;
  for (let i = 0; i < nc; i++) companions.push({ name: `c${i}`, behaviour: BEHAVIOURS[r.below(BEHAVIOURS.length)]! });
  const topology: Omit<Topology, 'clients' | 'oneShots' | 'spareWorkers'> = {
    workers,
    minWorkers: scaling ? Math.max(1, workers - 1) : workers,
    maxWorkers: scaling ? workers + 1 : workers,
    slowWorkers: int(1, 2),
    slowConcurrency: chance(0.7) ? 1 : 2,
    slowQueue: name === 'queue-load' ? int(0, 6) : int(2, 16),
    queueTimeoutMs: int(1, 4) * 1000,
    companions,
  };
  const load: LoadPlan = {
    rate: name === 'queue-load' ? int(20, 60) : int(10, 40),
    slowShare: name === 'queue-load' ? 0.3 + r.float() * 0.3 : 0.05 + r.float() * 0.15,
    slowMsMin: 150,
    slowMsMax: int(200, 600),
    keepAliveShare: r.float(),
    leaveShare: name === 'queue-load' ? 0.1 : 0.03,
    // Drawn last, so that adding them changed no earlier draw of any seed (the regression seeds keep their scenarios).
    bigShare: r.float() * 0.02,
    slowReaderShare: r.float() * 0.1,
    attacks: 0,
  };
  // The companion manager stopped (SIGSTOP) and never continued: the arbiter
  // must notice its silent heartbeat, kill it with its companions and start
  // another (issue 12). Not a weight of its own: drawn after everything
  // else, and only in the scenarios that always run companions, so that no
  // earlier draw of any seed changed (a seed's topology, load and other
  // faults are what they were; these scenarios gain a fault or two).
  // One stall at most, in half the runs of `companions` and a quarter of the others: a stalled manager
  // takes the companions away for timeout + a restart, which would leave the faults that need them
  // (ctl, kill-companion, crashes) little to act on in a short run.
  const stallShare = name === 'companions' ? 0.5 : name === 'parent-death' || name === 'mixed' ? 0.25 : 0;
  const stalls = stallShare > 0 && chance(stallShare) ? 1 : 0;
  for (let i = 0; i < stalls; i++) faults.push({ at: int(2000, Math.max(2000, durationMs)), kind: 'stall-manager', pick: r.u32() });
  if (stalls > 0) faults.sort((a, b) => a.at - b.at);
  if (name !== 'hostile') {
    const shots = oneShots(r, needsCompanions);
    const osFaults = name === 'faults' ? osRates(r) : {};
    // Broken reloads under the kernel's faults (a manager restarted while one is on disk must run the
    // arbiter's companions, not die of the file): drawn after everything else, so no earlier draw changed.
    if (name === 'faults') {
      for (let i = int(0, 2); i > 0; i--) faults.push({ at: int(2000, Math.max(2000, durationMs)), kind: chance(0.5) ? 'hup-broken-config' : 'hup-broken-app', pick: r.u32() });
      faults.sort((a, b) => a.at - b.at);
    }
    return { seed, name, durationMs, topology: { ...topology, clients: null, oneShots: shots, spareWorkers: spares(r) }, load, faults, osFaults };
  }
  // Drawn after everything else, and only here, so that no other scenario's draws changed.
  const header = int(1, 3) * 1000;
  const body = int(2, 4) * 1000;
  // Longer than a slot may be held (hostileSlotMs), so that a slot waiting on a client that never reads is seen.
  const send = (hostileSlotMs(topology, load) ?? 2 * load.slowMsMax) + int(1, 3) * 1000;
  const hostileLoad = { ...load, bigShare: 0.02 + r.float() * 0.08, attacks: 0.5 + r.float() * 2.5 };
  const shots = oneShots(r, needsCompanions);
  return {
    seed, name, durationMs, faults,
    topology: { ...topology, clients: { header, body, send }, oneShots: shots, spareWorkers: spares(r) },
    load: hostileLoad, osFaults: {},
  };
}

/** spare_workers, drawn last of all: 1 or 2 in a third of the runs. */
function spares(r: Rng): number {
  return r.float() < 1 / 3 ? 1 + r.below(2) : 0;
}

/** Each kind at its OS_RATES times a factor of 1/4 to 2 (log-uniform), or off in one seed of ten: drawn last of all. */
function osRates(r: Rng): FaultRates {
  const out: Record<string, number> = {};
  for (const k of OS_FAULTS) {
    const off = r.float() < 0.1;
    const factor = 2 ** (r.float() * 3 - 2);
    if (!off) out[k] = Math.min(1, OS_RATES[k] * factor);
  }
  return out;
}

/**
 * The one-shots, drawn last of all (no earlier draw of any seed changed):
 * where companions are wanted, a job with autorestart false and one with
 * "unexpected", exiting with codes of {0..3}, some in its exitcodes, some not.
 */
function oneShots(r: Rng, wanted: boolean): OneShotPlan[] {
  if (!wanted) return [];
  const codes = (): number[] => {
    const all = [0, 1, 2, 3].filter(() => r.float() < 0.5);
    return all.length > 0 ? all : [r.below(4)];
  };
  // Runs of 0.2 to 3 s against startsecs 0.5 s: most finish as jobs, some fail to start.
  const runMs = (): [number, number] => [200, 1000 + r.below(2001)];
  return [
    { name: 'j0', autorestart: false, exitcodes: [0], codes: codes(), runMs: runMs() },
    { name: 'j1', autorestart: 'unexpected', exitcodes: r.float() < 0.5 ? [0] : [0, 2], codes: codes(), runMs: runMs() },
  ];
}

/**
 * The longest a slow-lane slot may be held in a run whose slow workers run
 * one request at a time: the app's burn, plus one burn of the fast worker
 * that must hear the answer (its loop may be running an unlearned slow
 * route), plus delivery. With two at a time there is no such bound: a big
 * answer is written a window at a time, and between windows the slow
 * worker's loop may run the other request's burn, again and again (seed
 * 0x728a869e66898511 of hostile: 4 windows, 1850 ms), which is the server's
 * work, not a client's; null then.
 */
export function hostileSlotMs(t: Pick<Topology, 'slowConcurrency'>, l: Pick<LoadPlan, 'slowMsMax'>): number | null {
  return t.slowConcurrency === 1 ? 2 * l.slowMsMax + 250 : null;
}

/** One line per fault, for reports and traces. */
export function describeFault(f: Fault): string {
  return `${(f.at / 1000).toFixed(3)}s ${f.kind}#${f.pick % 1000}`;
}
