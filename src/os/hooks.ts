// What a simulation watches from inside drover, and its planted defects:
// `Os.hooks`, one object per kernel.
//
// In the simulator every simulated process runs in one host process, so the
// checker can watch what no outside observer could see: each companion
// state change, the slow lane's queue depth after every decision. Each
// kernel carries its own hooks (KernelOptions.hooks), handed to every
// process's Os, so two kernels run side by side in one process without
// hearing each other. The real OS's are NO_HOOKS, and each call costs one
// property read.
//
// A planted defect is a known bug switched on by name for one chaos run, so
// that a test can show each invariant's checker finds its kind of bug
// (issue 6: "a checker that cannot fail is a defect"). Nothing switches one
// on outside those tests; each is one `planted(...)` test at the place the
// bug would be.

export interface Hooks {
  /** A companion changed state (companions/state.ts), as the manager `pid` applies it; `cause`: the input ('start', 'tick', 'exit 0', 'exit SIGKILL', ...). */
  transition?(name: string, from: string, to: string, cause: string): void;
  /** A slow lane of arbiter `arbiter` after each change (arbiter/lanes.ts): requests queued and running, slow workers taking requests; and slow_queue. */
  lane?(arbiter: number, generation: number, s: { readonly queued: number; readonly running: number; readonly workers: number }, limit: number): void;
  /** That lane is gone: no worker of its generation is left. */
  laneClosed?(arbiter: number, generation: number): void;
  /** A slow lane gave slow worker `pid` a request; it had counted `running` others on it. */
  laneAssigned?(generation: number, pid: number, running: number): void;
  /** A slow-lane slot was freed after being held `ms` since its assignment. */
  laneHeld?(generation: number, ms: number): void;
  /** Arbiter `arbiter` reaped its companion manager `pid` and starts a new one in `restartInMs` (its backoff). */
  managerGone?(arbiter: number, pid: number, restartInMs: number): void;
  /** A fast worker reported route news to the arbiter. */
  route?(route: string, slow: boolean, avgMs: number): void;
  /**
   * An error the OS returned reached the code that handles it (the code
   * probes of the simulator's injected faults): `path` names the place
   * ('accept', 'log', 'pidfile', 'spawn', 'conn'), `code` the errno, or
   * 'short' for a short write made whole.
   */
  errorPath?(path: string, code: string): void;
  /** Arbiter `parent` could not start a `program` (its spawn failed) and tries again in `retryInMs`. */
  spawnFailed?(parent: number, program: string, retryInMs: number): void;
  /**
   * Worker `pid` is about to call the app with a request (worker.ts), in
   * that process: what the app was handed is the app's to answer. `res` is
   * read later (`writableEnded`: did the app end it). A run that marks its
   * requests may take its mark off `req` here, before the app sees it.
   */
  appCalled?(pid: number, req: AppRequest, res: { readonly writableEnded: boolean }): void;
  /** Worker `pid` could not load the app (its import threw, its factory failed, no request listener): `message` as drover logs it. */
  appLoadFailed?(pid: number, message: string): void;
  /** App code in simulated process `pid` (module `caller`) called `what`, which drover sim does not simulate: it got ERR_DROVER_NOT_SIMULATED. */
  notSimulated?(pid: number, what: string, caller: string): void;
  /** Worker `pid` begins (true) or is done (false) loading the app: its import and its factory, drover's part of the boot before and after. */
  appLoading?(pid: number, loading: boolean): void;
  /** Arbiter `arbiter` gives up on worker `worker`, which did not boot within `timeout` (`message` as drover logs it). */
  bootTimedOut?(arbiter: number, worker: number, message: string): void;
  /** Planted defects switched on for this run; none on the real OS. */
  readonly defects?: ReadonlySet<Defect>;
}

/** What a hook sees of a request handed to the app (node:http's IncomingMessage). */
export interface AppRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly rawHeaders: string[];
}

/** The real OS's hooks, and a kernel's by default: nobody listens, nothing is planted. */
export const NO_HOOKS: Hooks = Object.freeze({});

export const DEFECTS = [
  'manager-ignores-parent-death', // orphans: companions outlive the arbiter
  'arbiter-skips-reap', // zombies: exited workers are not waited for
  'manager-restart-overlap', // one instance per name: a restart starts the new one before the old is reaped
  'worker-answers-twice', // answers: a response followed by a stray second one
  'reload-half-config', // broken reload: the worker count of a config that failed is kept
  'arbiter-no-slow-respawn', // convergence: a dead slow worker is not replaced
  'companion-skips-backoff', // transitions: a crash goes RUNNING -> STARTING
  'companion-restarts-one-shot', // one-shot: an exit past startsecs is restarted whatever autorestart and exitcodes say
  'lane-queue-overflow', // queue bound: one request more than slow_queue waits
  'lane-frees-orphans', // slow cap: a dead fast worker's running request frees its slot at once
  'lane-ignores-done', // lane slots: every fifth lane-done is not heard, its slot never freed
  'arbiter-ignores-term', // shutdown: TERM is logged and nothing stops
  'no-client-deadlines', // client deadline: the workers' deadline sweep does nothing
  'slot-waits-on-client', // slot hold: a slow answer is paused for the client at its first full write, holding the slot
  'learn-client-time', // learned fast: a route is timed from 'request' to 'finish', the client's pace included
  'no-manager-heartbeat', // hung manager: the arbiter does not watch the manager's heartbeat, so a stopped manager is never replaced
  'log-write-throws', // no crash: a log write that fails (ENOSPC, EIO) throws into the code that logged, as before issue 15
  'log-reports-every-line', // log reported: a log that cannot be written is reported on stderr at every failure, as if each began an outage, and no end is said
  'accept-never-resumes', // serving through faults: a worker that got EMFILE from accept pauses its listeners and never resumes them
  'log-ignores-short-write', // whole lines: a log write that took only part of a line is taken as whole (as before issue 15): the next line is glued to the cut one
  'queue-double-assign', // assertion: the slow lane assigns a queued request without taking it off the queue
  'worker-timer-type-error', // no crash: a worker's timer calls a method of null 250 ms after it booted (a TypeError in drover's code, for drover sim --app to tell from the app's)
  'worker-drops-request', // convergence: a worker takes every seventh request it would hand to the app and does nothing with it: no app, no answer
] as const;

export type Defect = (typeof DEFECTS)[number];

/** Is defect `d` planted in this kernel's run? */
export function planted(h: Hooks, d: Defect): boolean {
  return h.defects !== undefined && h.defects.has(d);
}
