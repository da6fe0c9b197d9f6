// What the arbiter and its workers say to each other over the channel.
import { basename } from 'node:path';
import type { SlowRoute } from './lanes/predictor.js';
import type { Level } from './log.js';
import type { LogFormat } from './config/types.js';
import type { WorkerCounters } from './worker/counters.js';

/**
 * A fast worker's lane settings: it classifies every request and hands the
 * slow ones to the arbiter's slow lane.
 */
export interface LaneSpec {
  readonly slowThreshold: number; // ms
  readonly slowRoutes: readonly string[]; // static hints
  readonly learned: readonly SlowRoute[]; // what earlier workers learned: survives HUP and recycling
  readonly bodyMax: number; // bytes of a slow request's body read before it takes a slot
  readonly buffer: number; // bytes of a slow answer held for a slow reader
}

/** Deadlines and bounds a worker holds its clients to (worker/clients.ts). */
export interface ClientLimits {
  readonly headerTimeout: number; // ms
  readonly bodyTimeout: number; // ms
  readonly sendTimeout: number; // ms
  readonly maxConnections: number;
  readonly requestTimeout: number; // ms; 0 = off
}

/**
 * Everything a worker needs, fixed at spawn (or, for a spare, when the
 * arbiter takes it: the 'go' message): a HUP starts new workers with a new spec.
 */
export interface WorkerSpec {
  readonly app: string; // absolute path of the app module
  readonly generation: number;
  /**
   * fast: accepts the public connections (and, with `lanes`, classifies);
   * slow: a slow-lane worker, serving only fast workers on its own Unix
   * socket `laneSocket`, one request per connection.
   */
  readonly role: 'fast' | 'slow';
  readonly lanes: LaneSpec | null; // fast workers with lanes on
  readonly laneSocket: string | null; // slow workers
  readonly keepAlive: number; // ms
  readonly clients: ClientLimits;
  readonly gracefulTimeout: number; // ms
  readonly heartbeat: number; // ms between heartbeats
  readonly maxRequests: number; // 0 = never recycle; jitter already applied
  readonly accessLog: string | null;
  readonly errorLog: string;
  readonly logLevel: Level;
  readonly logFormat: LogFormat;
  /** Peers whose X-Forwarded-For names the client in the access log. */
  readonly forwardedAllowIps: readonly string[];
}

/** gunicorn's exit codes for a worker that could not start. */
export const EXIT_APP_LOAD = 4;
export const EXIT_BOOT = 3;

/** A route's learned state, as a fast worker reports it and the arbiter passes it on. */
export interface RouteNews {
  readonly key: number;
  readonly route: string; // routeKeyString, for stats and logs
  readonly avgMs: number;
  readonly slow: boolean;
}

export type ToArbiter =
  | { t: 'booted' }
  // busy: os.loopBusy(); slow: requests handed to the slow lane; rss: os.rss(); counters: counters.ts
  | { t: 'hb'; inflight: number; served: number; busy: number; slow: number; rss: number; counters: WorkerCounters | null }
  // the same without the heartbeat's busy time and resident size: sent soon after answers, so that stats are current
  | { t: 'stats'; inflight: number; served: number; slow: number; counters: WorkerCounters | null }
  | { t: 'boot-error'; code: number; message: string }
  | { t: 'retiring'; served: number }
  // fast worker -> slow lane: a slot for request `seq` (numbered per worker) of route `key`, it is cancelled (client gone), it is done with its slot
  | { t: 'lane-want'; seq: number; key: number }
  | { t: 'lane-cancel'; seq: number }
  | { t: 'lane-done'; seq: number }
  // ... the slow worker named for it refused the connection (gone or going): nothing reached it, the request waits again
  | { t: 'lane-refused'; seq: number }
  // ... it is done with the request, but cut the connection before its slow worker let go: ask that worker (lane-orphans)
  | { t: 'lane-cut'; seq: number }
  // slow worker -> slow lane: it has let go of these requests (lane ids) the arbiter asked about
  | { t: 'lane-let-go'; ids: number[] }
  | ({ t: 'route' } & RouteNews);

/** A worker program's only argument when it starts as a spare (spare_workers): its spec comes later, in 'go'. */
export const SPARE = '--spare';
/** What ps shows for a spare until it is given work (a worker then titles itself by its generation: workerTitle). */
export const SPARE_TITLE = 'drover: spare worker';

/** What ps shows for a worker: "drover: worker gen 2 [app.js]", "drover: slow worker gen 2". */
export function workerTitle(spec: Pick<WorkerSpec, 'role' | 'generation' | 'app'>): string {
  return spec.role === 'slow' ? `drover: slow worker gen ${spec.generation}` : `drover: worker gen ${spec.generation} [${basename(spec.app)}]`;
}

/** workerTitle read back (app: the file's name, null for a slow worker); null when `title` is not a worker's. */
export function parseWorkerTitle(title: string): { role: 'fast' | 'slow'; generation: number; app: string | null } | null {
  const m = /^drover: (slow )?worker gen (\d+)(?: \[(.+)\])?$/.exec(title);
  if (m === null || (m[1] === undefined) !== (m[3] !== undefined)) return null;
  return { role: m[1] === undefined ? 'fast' : 'slow', generation: Number(m[2]), app: m[3] ?? null };
}

/**
 * A process started as a spare that has not become a worker yet, by its
 * argv and title (the simulator's process table; `ps` on the real OS): it
 * keeps the spare's argv for life, and titles itself as a worker once given work.
 */
export function stillSpare(args: readonly string[], title: string): boolean {
  return args[0] === SPARE && parseWorkerTitle(title) === null;
}

export type ToWorker =
  // arbiter -> spare: become this worker (sent once, first)
  | { t: 'go'; spec: WorkerSpec }
  | { t: 'drain' }
  // slow lane -> fast worker: stream request `seq` to the slow worker at `path`, or answer 503
  | { t: 'lane-go'; seq: number; path: string }
  | { t: 'lane-no'; seq: number; retryAfter: number; reason: string }
  // slow lane -> slow worker: the fast workers of these requests died, or cut their connections (lane-cut); say when you have let go of each
  | { t: 'lane-orphans'; ids: number[] }
  | ({ t: 'route' } & RouteNews);

/** The header a fast worker sends the client's address in (`ADDR PORT`); a slow worker takes it off before the app sees the request. */
export const CLIENT_HEADER = 'x-drover-client';
/** The header a fast worker sends a forwarded request's lane id in; taken off like CLIENT_HEADER. */
export const LANE_HEADER = 'x-drover-lane';

/** Sequence numbers a fast worker gives its slow-lane requests stay below this. */
export const SEQ_LIMIT = 2 ** 31;

/** A slow-lane request's id, unique across fast workers: a safe integer for every pid below 2^22. */
export function laneId(pid: number, seq: number): number {
  return pid * SEQ_LIMIT + seq;
}
