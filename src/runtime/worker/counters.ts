// What a worker counts of its requests for the arbiter's /metrics and `ctl
// stats`: answers by lane and status class, a duration histogram by lane,
// client timeouts and requests cut off. Plain arrays of numbers, cumulative
// since the worker started, sent whole with every report: the arbiter keeps
// the last report of each worker and folds it into its totals when the
// worker is gone, so a report lost to a crash loses only what came after it.
//
// A report goes with each heartbeat, and FRESH_MS after a request ends when
// none is on its way: `ctl stats` is current within 100 ms of an answer, at
// the cost of one timer per FRESH_MS of traffic, not one per request.
import type { Os, Timer } from '../../os/types.js';

/** Upper bounds of the duration histogram's buckets, ms (Prometheus's default buckets); one more bucket takes the rest. */
export const BUCKETS_MS: readonly number[] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
const BUCKETS = BUCKETS_MS.length + 1;
export const LANES = ['fast', 'slow'] as const;
export type LaneIndex = 0 | 1;
export const TIMEOUT_KINDS = ['client_header_timeout', 'client_body_timeout', 'send_timeout', 'request_timeout'] as const;
export type TimeoutKind = (typeof TIMEOUT_KINDS)[number];
export const FRESH_MS = 50;

/** The wire form: indices as the constants above say. */
export interface WorkerCounters {
  /** [lane * 5 + class - 1]: answers whose head was sent, by status class 1xx..5xx. */
  readonly codes: number[];
  /** [lane * BUCKETS + bucket]: not cumulative. */
  readonly hist: number[];
  /** [lane]: total ms of the answers counted. */
  readonly sumMs: number[];
  /** [TIMEOUT_KINDS index]. */
  readonly timeouts: number[];
  /** Connections closed to make room at worker_connections. */
  shed: number;
}

export function emptyCounters(): WorkerCounters {
  return { codes: new Array(LANES.length * 5).fill(0), hist: new Array(LANES.length * BUCKETS).fill(0), sumMs: [0, 0], timeouts: new Array(TIMEOUT_KINDS.length).fill(0), shed: 0 };
}

/** a += b, element-wise: the arbiter's totals. */
export function addCounters(a: WorkerCounters, b: WorkerCounters): void {
  const add = (x: number[], y: readonly number[]) => {
    for (let i = 0; i < x.length && i < y.length; i++) x[i]! += Number(y[i]) || 0;
  };
  add(a.codes, b.codes);
  add(a.hist, b.hist);
  add(a.sumMs, b.sumMs);
  add(a.timeouts, b.timeouts);
  a.shed += Number(b.shed) || 0;
}

export function bucketOf(ms: number): number {
  let b = 0;
  while (b < BUCKETS_MS.length && ms > BUCKETS_MS[b]!) b++;
  return b;
}

export class Counters {
  readonly c = emptyCounters();
  private pending: Timer | null = null;

  constructor(private readonly os: Os, private readonly report: () => void) {}

  /** An answer ended (its head sent) after `ms`. */
  answered(lane: LaneIndex, status: number, ms: number): void {
    const cls = status < 100 ? 1 : status >= 600 ? 5 : Math.floor(status / 100);
    this.c.codes[lane * 5 + cls - 1]!++;
    this.c.hist[lane * BUCKETS + bucketOf(ms)]!++;
    this.c.sumMs[lane]! += ms;
    this.soon();
  }

  timedOut(kind: TimeoutKind): void {
    this.c.timeouts[TIMEOUT_KINDS.indexOf(kind)]!++;
    this.soon();
  }

  /** A report is on its way now (a heartbeat): no need for another. */
  sent(): void {
    this.pending?.cancel();
    this.pending = null;
  }

  private soon(): void {
    if (this.pending !== null) return;
    this.pending = this.os.timer(FRESH_MS, () => {
      this.pending = null;
      this.report();
    });
  }
}
