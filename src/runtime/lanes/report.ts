// What `drover ctl stats` shows of the lanes: plain data (JSON) the arbiter
// builds from its per-generation lanes and the routes its workers reported
// slow.
import type { LaneStats } from './queue.js';

/** A lane's counts, as SlowLane.stats() gives them (queue depth, slots, shed requests, totals, mean service time). */
export type LaneCounts = LaneStats;

export interface GenerationReport {
  readonly generation: number;
  /** Fast (public) workers of this generation and what they served, by lane, per their last heartbeat. */
  readonly fast: { readonly workers: number; readonly servedFast: number; readonly servedSlow: number };
  /** null when lanes are off in this generation. */
  readonly slow: LaneCounts | null;
}

export interface SlowRouteReport {
  /** `GET /users/:id/export`: the route key string (ids folded). */
  readonly route: string;
  readonly avgMs: number;
}

export interface LanesReport {
  readonly lanes: boolean;
  readonly slowThresholdMs: number;
  /** The serving generation first, then older ones still draining. */
  readonly generations: readonly GenerationReport[];
  /**
   * Routes currently marked slow by what the workers observed (static slow_routes hints are listed in hints):
   * those asked for in the slow lane since they were learned, the most recent first, then the others, newest first.
   */
  readonly slowRoutes: readonly SlowRouteReport[];
  readonly hints: readonly string[];
  /** Every worker process, fast then slow, oldest first; the serving generation is `generations[0]`. */
  readonly processes: readonly ProcessRow[];
  /** spare_workers: the spares ready now, and how many the arbiter keeps, by lane. */
  readonly spares: { readonly ready: SpareCounts; readonly wanted: SpareCounts };
}

export interface SpareCounts {
  readonly fast: number;
  readonly slow: number;
}

/** One process under the arbiter, for `drover ctl top` and the per-process metrics. */
export interface ProcessRow {
  readonly pid: number;
  readonly role: 'fast' | 'slow';
  readonly generation: number;
  readonly state: 'booting' | 'serving' | 'draining' | 'aborting';
  /** Bytes of resident memory at its last report; null before the first. */
  readonly rss: number | null;
  /** Requests it has taken (a fast worker: all its public requests; a slow worker: those it ran). */
  readonly served: number;
  readonly inflight: number;
  /** Event-loop utilisation, 0..1, over its last report interval; null before two reports. */
  readonly elu: number | null;
  readonly uptimeMs: number;
}
