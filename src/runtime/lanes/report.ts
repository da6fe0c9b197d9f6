// What `drover ctl stats` shows of the lanes: plain data (JSON) the arbiter
// builds from its per-generation lanes and the routes its workers reported
// slow.

export interface LaneCounts {
  /** Slow workers taking requests (booted, not retiring). */
  readonly workers: number;
  readonly queued: number;
  readonly running: number;
  /** Free slots: workers × slow_concurrency − running. */
  readonly free: number;
  /** Requests answered 503 by the lane: queue full, waited past queue_timeout, no slow worker will come. */
  readonly shed: { readonly full: number; readonly timeout: number; readonly noWorkers: number };
  readonly enqueued: number;
  readonly assigned: number;
  readonly completed: number;
  /** Running when their slow worker died: answered 502 or reset. */
  readonly failed: number;
  /** Client gone while queued. */
  readonly cancelled: number;
  /** Mean service time (ms, EWMA), null before the first completion. */
  readonly serviceMs: number | null;
}

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
  /** Routes currently marked slow by what the workers observed (static slow_routes hints are listed in hints). */
  readonly slowRoutes: readonly SlowRouteReport[];
  readonly hints: readonly string[];
}
