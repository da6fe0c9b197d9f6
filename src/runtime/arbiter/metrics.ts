// The arbiter's numbers, and their Prometheus text form (exposition format
// 0.0.4) for the admin listener's /metrics. Everything here comes from what
// the workers already report (counters.ts) and what the arbiter itself saw
// (boots, exits and their causes, reloads): a scrape asks no worker anything,
// so it answers while every worker is busy or restarting.
//
// Counters survive their workers: a worker's last report is folded into the
// retired totals when it is reaped, so a total only ever grows (less what a
// crashed worker did after its last report, at most FRESH_MS of answers).
import { addCounters, BUCKETS_MS, emptyCounters, LANES, TIMEOUT_KINDS, type WorkerCounters } from '../worker/counters.js';
import type { ProcessRow, SpareCounts } from '../lanes/report.js';

/** Why a worker exited, as the arbiter knows it. */
export type ExitCause = 'reload' | 'max_requests' | 'rss' | 'timeout' | 'scale' | 'unreachable' | 'stop' | 'signal' | 'error' | 'exit';

export class Metrics {
  private readonly retired = emptyCounters();
  readonly boots = { fast: 0, slow: 0 };
  readonly exits = new Map<string, number>(); // `${role} ${cause}`
  readonly reloads = { ok: 0, failed: 0 };

  /** A worker is gone: what it last reported stays counted. */
  retire(c: WorkerCounters | null): void {
    if (c !== null) addCounters(this.retired, c);
  }

  exited(role: 'fast' | 'slow', cause: ExitCause): void {
    const k = `${role} ${cause}`;
    this.exits.set(k, (this.exits.get(k) ?? 0) + 1);
  }

  /** The retired totals plus the live workers' last reports. */
  totals(live: Iterable<WorkerCounters | null>): WorkerCounters {
    const t = emptyCounters();
    addCounters(t, this.retired);
    for (const c of live) if (c !== null) addCounters(t, c);
    return t;
  }
}

export interface CompanionSample {
  readonly name: string;
  readonly state: string;
  readonly exits: number;
}

/** Everything one scrape shows. */
export interface Snapshot {
  readonly version: string;
  readonly arbiter: { readonly pid: number; readonly rss: number; readonly elu: number | null };
  readonly generation: number;
  readonly processes: readonly ProcessRow[];
  readonly totals: WorkerCounters;
  readonly metrics: Metrics;
  /** Per generation with a slow lane. */
  readonly queues: readonly { readonly generation: number; readonly queued: number; readonly running: number }[];
  readonly laneShed: { readonly full: number; readonly timeout: number; readonly noWorkers: number };
  readonly slowRoutes: number;
  /** spare_workers: processes started ahead and not given work yet, by lane. */
  readonly spares: SpareCounts;
  /** null: no companions configured; a manager that did not answer gives `up: false`. */
  readonly companions: { readonly up: boolean; readonly list: readonly CompanionSample[] } | null;
}

export const COMPANION_STATES = ['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL'] as const;

/** Label values are escaped as the format says: backslash, double quote, newline. */
function esc(v: string | number): string {
  return String(v).replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function labels(l: Readonly<Record<string, string | number>>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** A number as the format writes it: integers plainly, others with enough digits, NaN/Inf spelled its way. */
function num(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(12)));
}

class Out {
  private readonly lines: string[] = [];
  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }
  sample(name: string, l: Readonly<Record<string, string | number>>, v: number): this {
    this.lines.push(`${name}${labels(l)} ${num(v)}`);
    return this;
  }
  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

export function exposition(s: Snapshot): string {
  const o = new Out();
  const t = s.totals;
  o.family('drover_build_info', 'gauge', 'drover version; always 1').sample('drover_build_info', { version: s.version }, 1);
  o.family('drover_generation', 'gauge', 'the generation serving now (a reload starts the next)').sample('drover_generation', {}, s.generation);

  o.family('drover_workers', 'gauge', 'worker processes by lane, generation and state');
  const workers = new Map<string, { lane: string; generation: number; state: string; n: number }>();
  for (const p of s.processes) {
    const k = `${p.role} ${p.generation} ${p.state}`;
    const w = workers.get(k) ?? { lane: p.role, generation: p.generation, state: p.state, n: 0 };
    w.n++;
    workers.set(k, w);
  }
  for (const w of workers.values()) o.sample('drover_workers', { lane: w.lane, generation: w.generation, state: w.state }, w.n);
  o.family('drover_spare_workers', 'gauge', 'processes started ahead (spare_workers), node and drover loaded, no app, by lane')
    .sample('drover_spare_workers', { lane: 'fast' }, s.spares.fast)
    .sample('drover_spare_workers', { lane: 'slow' }, s.spares.slow);

  o.family('drover_responses_total', 'counter', 'answers sent, by lane and status class');
  LANES.forEach((lane, li) => {
    for (let c = 1; c <= 5; c++) o.sample('drover_responses_total', { lane, code: `${c}xx` }, t.codes[li * 5 + c - 1] ?? 0);
  });

  o.family('drover_request_duration_seconds', 'histogram', 'from a request\'s arrival to the end of its answer, by lane');
  const per = BUCKETS_MS.length + 1;
  LANES.forEach((lane, li) => {
    let cum = 0;
    for (let b = 0; b < per; b++) {
      cum += t.hist[li * per + b] ?? 0;
      o.sample('drover_request_duration_seconds_bucket', { lane, le: b < BUCKETS_MS.length ? num(BUCKETS_MS[b]! / 1000) : '+Inf' }, cum);
    }
    o.sample('drover_request_duration_seconds_sum', { lane }, (t.sumMs[li] ?? 0) / 1000);
    o.sample('drover_request_duration_seconds_count', { lane }, cum);
  });

  o.family('drover_slow_queue_depth', 'gauge', 'requests waiting for a slow-lane worker, by generation');
  for (const q of s.queues) o.sample('drover_slow_queue_depth', { generation: q.generation }, q.queued);
  o.family('drover_slow_running', 'gauge', 'requests running on slow-lane workers, by generation');
  for (const q of s.queues) o.sample('drover_slow_running', { generation: q.generation }, q.running);

  o.family('drover_shed_requests_total', 'counter', 'requests answered by drover instead of the app, by reason: 503 slow queue full, 503 queue_timeout, 503 no slow worker, 504 request_timeout')
    .sample('drover_shed_requests_total', { reason: 'queue_full' }, s.laneShed.full)
    .sample('drover_shed_requests_total', { reason: 'queue_timeout' }, s.laneShed.timeout)
    .sample('drover_shed_requests_total', { reason: 'no_slow_worker' }, s.laneShed.noWorkers)
    .sample('drover_shed_requests_total', { reason: 'request_timeout' }, t.timeouts[TIMEOUT_KINDS.indexOf('request_timeout')] ?? 0);
  o.family('drover_shed_connections_total', 'counter', 'connections closed to make room at worker_connections').sample('drover_shed_connections_total', {}, t.shed);

  o.family('drover_client_timeouts_total', 'counter', 'connections closed for a client too slow, by deadline');
  for (const kind of ['client_header_timeout', 'client_body_timeout', 'send_timeout'] as const) {
    o.sample('drover_client_timeouts_total', { kind }, t.timeouts[TIMEOUT_KINDS.indexOf(kind)] ?? 0);
  }

  o.family('drover_slow_routes', 'gauge', 'routes marked slow by what the workers measured').sample('drover_slow_routes', {}, s.slowRoutes);
  o.family('drover_reloads_total', 'counter', 'reloads (HUP, drover ctl reload), by result')
    .sample('drover_reloads_total', { result: 'ok' }, s.metrics.reloads.ok)
    .sample('drover_reloads_total', { result: 'failed' }, s.metrics.reloads.failed);
  o.family('drover_worker_boots_total', 'counter', 'workers started, by lane')
    .sample('drover_worker_boots_total', { lane: 'fast' }, s.metrics.boots.fast)
    .sample('drover_worker_boots_total', { lane: 'slow' }, s.metrics.boots.slow);
  o.family('drover_worker_exits_total', 'counter', 'workers gone, by lane and cause: reload, max_requests, rss (max_worker_rss), timeout (heartbeat), scale, unreachable (a slow worker whose socket refused a connection), stop, signal (killed otherwise), error (non-zero exit), exit');
  for (const [k, n] of [...s.metrics.exits].sort()) {
    const [lane, cause] = k.split(' ') as [string, string];
    o.sample('drover_worker_exits_total', { lane, cause }, n);
  }

  o.family('drover_process_resident_memory_bytes', 'gauge', 'resident memory of the arbiter and each worker, at its last report');
  o.sample('drover_process_resident_memory_bytes', { role: 'arbiter', pid: s.arbiter.pid, generation: '' }, s.arbiter.rss);
  for (const p of s.processes) if (p.rss !== null) o.sample('drover_process_resident_memory_bytes', { role: p.role, pid: p.pid, generation: p.generation }, p.rss);
  o.family('drover_process_event_loop_utilization', 'gauge', 'share of time the event loop was busy over the last report interval, 0..1');
  if (s.arbiter.elu !== null) o.sample('drover_process_event_loop_utilization', { role: 'arbiter', pid: s.arbiter.pid, generation: '' }, s.arbiter.elu);
  for (const p of s.processes) if (p.elu !== null) o.sample('drover_process_event_loop_utilization', { role: p.role, pid: p.pid, generation: p.generation }, p.elu);

  if (s.companions !== null) {
    o.family('drover_companion_manager_up', 'gauge', '1 when the companion manager answered this scrape').sample('drover_companion_manager_up', {}, s.companions.up ? 1 : 0);
    o.family('drover_companion_state', 'gauge', 'each companion\'s state: 1 for the state it is in');
    for (const c of s.companions.list) for (const st of COMPANION_STATES) o.sample('drover_companion_state', { name: c.name, state: st }, c.state === st ? 1 : 0);
    o.family('drover_companion_exits_total', 'counter', 'times each companion\'s process ended since the manager started (each restart follows one)');
    for (const c of s.companions.list) o.sample('drover_companion_exits_total', { name: c.name }, c.exits);
  }
  return o.text();
}
