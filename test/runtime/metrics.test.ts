import { spawnSync } from 'node:child_process';
import { expect, test } from 'vitest';
import { exposition, Metrics, type Snapshot } from '../../src/runtime/arbiter/metrics.js';
import { bucketOf, emptyCounters, type WorkerCounters } from '../../src/runtime/worker/counters.js';

function counters(f: (c: WorkerCounters) => void): WorkerCounters {
  const c = emptyCounters();
  f(c);
  return c;
}

function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  const metrics = new Metrics();
  return {
    version: '9.9.9', arbiter: { pid: 1, rss: 1000, elu: null }, generation: 1, processes: [], totals: emptyCounters(), metrics,
    queues: [], laneShed: { full: 0, timeout: 0, noWorkers: 0 }, slowRoutes: 0, spares: { fast: 0, slow: 0 }, companions: null, ...over,
  };
}

test('buckets: a duration goes in the first bucket whose bound it does not exceed', () => {
  expect([0, 5, 5.01, 10, 9999, 10_000, 10_001].map(bucketOf)).toEqual([0, 0, 1, 1, 10, 10, 11]);
});

test('a retired worker\'s counts stay in the totals; live ones are added on top', () => {
  const m = new Metrics();
  m.retire(counters((c) => (c.codes[1] = 5)));
  m.retire(null); // a slow worker reports none
  const live = counters((c) => {
    c.codes[1] = 2;
    c.shed = 3;
  });
  const t = m.totals([live, null]);
  expect(t.codes[1]).toBe(7);
  expect(t.shed).toBe(3);
  // Garbage from a worker (a shorter array, a string) adds nothing rather than NaN.
  const odd = { codes: ['x', 1], hist: [], sumMs: [], timeouts: [], shed: 'no' } as unknown as WorkerCounters;
  expect(m.totals([odd]).codes.slice(0, 2)).toEqual([0, 6]);
});

test('histogram buckets are cumulative and end in +Inf = _count; sums are in seconds', () => {
  const totals = counters((c) => {
    c.hist[0] = 2; // fast, <= 5 ms
    c.hist[3] = 1; // fast, <= 50 ms
    c.hist[11] = 1; // fast, over 10 s
    c.sumMs[0] = 12_040;
  });
  const text = exposition(snapshot({ totals }));
  expect(text).toContain('drover_request_duration_seconds_bucket{lane="fast",le="0.005"} 2\n');
  expect(text).toContain('drover_request_duration_seconds_bucket{lane="fast",le="0.025"} 2\n');
  expect(text).toContain('drover_request_duration_seconds_bucket{lane="fast",le="0.05"} 3\n');
  expect(text).toContain('drover_request_duration_seconds_bucket{lane="fast",le="10"} 3\n');
  expect(text).toContain('drover_request_duration_seconds_bucket{lane="fast",le="+Inf"} 4\n');
  expect(text).toContain('drover_request_duration_seconds_count{lane="fast"} 4\n');
  expect(text).toContain('drover_request_duration_seconds_sum{lane="fast"} 12.04\n');
});

test('spares are a gauge by lane, 0 when there are none', () => {
  expect(exposition(snapshot())).toContain('drover_spare_workers{lane="fast"} 0\ndrover_spare_workers{lane="slow"} 0\n');
  expect(exposition(snapshot({ spares: { fast: 2, slow: 1 } }))).toContain('drover_spare_workers{lane="fast"} 2\ndrover_spare_workers{lane="slow"} 1\n');
});

test('label values are escaped: a companion named with quotes, backslashes and a newline cannot break a line', () => {
  const name = 'we"ird\\na\nme';
  const text = exposition(snapshot({ companions: { up: true, list: [{ name, state: 'EXITED', exits: 2 }] } }));
  expect(text).toContain('drover_companion_state{name="we\\"ird\\\\na\\nme",state="EXITED"} 1\n');
  expect(text).toContain('drover_companion_state{name="we\\"ird\\\\na\\nme",state="RUNNING"} 0\n');
  expect(text).toContain('drover_companion_exits_total{name="we\\"ird\\\\na\\nme"} 2\n');
  for (const line of text.trimEnd().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{.*\})? \S+)$/);
});

test('exits by cause, reloads and boots; no companions: no companion families', () => {
  const s = snapshot();
  s.metrics.exited('fast', 'rss');
  s.metrics.exited('fast', 'rss');
  s.metrics.exited('slow', 'timeout');
  s.metrics.reloads.failed++;
  s.metrics.boots.fast += 3;
  const text = exposition(s);
  expect(text).toContain('drover_worker_exits_total{lane="fast",cause="rss"} 2\n');
  expect(text).toContain('drover_worker_exits_total{lane="slow",cause="timeout"} 1\n');
  expect(text).toContain('drover_reloads_total{result="failed"} 1\n');
  expect(text).toContain('drover_worker_boots_total{lane="fast"} 3\n');
  expect(text).not.toContain('drover_companion');
});

test('promtool accepts a full exposition (apt-get install prometheus; .ci/run does)', () => {
  const s = snapshot({
    processes: [{ pid: 7, role: 'fast', generation: 2, state: 'serving', rss: 5e7, served: 3, inflight: 0, elu: 0.1234567891234, uptimeMs: 1 }],
    queues: [{ generation: 2, queued: 1, running: 1 }],
    companions: { up: false, list: [] },
  });
  s.metrics.exited('fast', 'reload');
  const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition(s), encoding: 'utf8' });
  expect(r.error, 'promtool is needed: apt-get install prometheus').toBeUndefined();
  expect(`${r.stdout}${r.stderr}`).toBe('');
  expect(r.status).toBe(0);
});
