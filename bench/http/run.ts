// bench/http: drover against node:cluster and a single node:http process on
// loopback, and drover reloading under load.
//
//   npm run bench:http                 full run: prints the tables, writes
//                                      bench/results/http.json and http.md
//   npm run bench:http -- --quick      short run for CI: prints, writes nothing
//
// Options: --workers N (default 2), --connections C (default 50),
// --duration S and --rounds R (throughput), --reload-seconds S (how long HUPs
// are sent), and, which print but write nothing: --only throughput|reload,
// --hup-every S (default 1), --stock-client (reload with autocannon's own
// handling of Connection: close; see load.ts).
//
// (a) Throughput: bench/http/hello.js served by drover with N workers,
//     node:cluster with N workers (round-robin, Node's default on Linux, and
//     SCHED_NONE, which accepts the way drover does) and one node:http
//     process. The same autocannon load (keep-alive connections) against
//     each, every target warmed up first, the targets interleaved in rotating
//     order over several rounds; each figure is the median over the rounds.
// (b) Reload under load: the same load against a fresh drover while its
//     arbiter gets a HUP every second; every request that did not get a 2xx
//     is counted (see load.ts) and `Reload finished` lines are counted in
//     drover's log.
// (c) The same with spare_workers = N: the new generation's workers are
//     processes started ahead, node and drover loaded, which load the app.
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad, type LoadResult, type Failure } from './load.js';
import { bootCost, type BootStage } from './boot-cost.js';
import { type Kind, type Target, groupCpuMs, machineBusyMs, startReady } from './procs.js';
import { sleep } from '../lib/procs.js';
import { cli, fmt, median, table } from '../lib/report.js';

const { progress, positive, fail } = cli('http');

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    'reload-seconds': { type: 'string' },
    'hup-every': { type: 'string', default: '1' },
    only: { type: 'string' },
    'stock-client': { type: 'boolean', default: false },
  },
  strict: true,
});
const quick = opt.quick!;
const WORKERS = positive('workers', opt.workers!);
const CONNECTIONS = positive('connections', opt.connections!);
const DURATION = positive('duration', opt.duration ?? (quick ? '2' : '6'));
const ROUNDS = positive('rounds', opt.rounds ?? (quick ? '1' : '5'));
const WARMUP = quick ? 1 : 3;
const RELOAD_SECONDS = positive('reload-seconds', opt['reload-seconds'] ?? (quick ? '3' : '20'));
const HUP_EVERY = positive('hup-every', opt['hup-every']!);
const RELOAD_TAIL = quick ? 2 : 5; // load goes on after the last HUP, while that reload completes
if (opt.only !== undefined && opt.only !== 'throughput' && opt.only !== 'reload') fail('--only: throughput or reload');
const STOCK = opt['stock-client']!; // reload with autocannon's own handling of Connection: close
const write = !quick && opt.only === undefined && !STOCK && HUP_EVERY === 1;

const ROWS: readonly { kind: Kind; label: string }[] = [
  { kind: 'drover', label: `drover, ${WORKERS} workers` },
  { kind: 'cluster-rr', label: `node:cluster, ${WORKERS} workers, round-robin (default)` },
  { kind: 'cluster-none', label: `node:cluster, ${WORKERS} workers, SCHED_NONE` },
  { kind: 'single', label: 'node:http, single process' },
];

const acVersion = (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version;
const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
const ncpu = availableParallelism();
const machine = `${ncpu} CPU(s), ${cpuModel}, Node ${process.version}, ${process.platform}`;
const loadNote = `load: autocannon ${acVersion} in this process (one thread), ${CONNECTIONS} keep-alive connections, one request in flight each, on 127.0.0.1; it shares the ${ncpu} CPU(s) with the servers`;

// ------------------------------------------------------------------ (a)

interface Run extends LoadResult {
  /** CPU time of the server's processes (all of its process group) per 2xx response, µs */
  cpuUsPerReq: number | null;
  /** share of the machine's CPU time that processes other than the server and this load generator used during the run, % */
  othersPct: number | null;
}
interface Row { kind: Kind; label: string; runs: Run[] }

let load0 = 0;

async function throughput(): Promise<{ rows: Row[]; text: string; ratios: Record<string, number> }> {
  load0 = loadavg()[0]!;
  const targets = new Map<Kind, Target>();
  try {
    for (const r of ROWS) targets.set(r.kind, await startReady(r.kind, WORKERS));
    for (const r of ROWS) {
      progress(`warm-up ${r.label} (${WARMUP} s)`);
      await runLoad({ port: targets.get(r.kind)!.port, connections: CONNECTIONS, durationSec: WARMUP, honorClose: true });
    }
    const rows: Row[] = ROWS.map((r) => ({ ...r, runs: [] }));
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so that no target always runs first or last.
      for (let i = 0; i < rows.length; i++) {
        const row = rows[(i + round) % rows.length]!;
        const target = targets.get(row.kind)!;
        const cpu0 = groupCpuMs(target.pid);
        const busy0 = machineBusyMs();
        const self0 = process.cpuUsage();
        const w0 = performance.now();
        const load = await runLoad({ port: target.port, connections: CONNECTIONS, durationSec: DURATION, honorClose: true });
        const wall = performance.now() - w0;
        const self = process.cpuUsage(self0);
        const busy1 = machineBusyMs();
        const cpu1 = groupCpuMs(target.pid);
        const server = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0;
        const others = server === null || busy0 === null || busy1 === null ? null : busy1 - busy0 - server - (self.user + self.system) / 1000;
        const res: Run = {
          ...load,
          cpuUsPerReq: server === null ? null : (server * 1000) / load.ok,
          othersPct: others === null ? null : Math.max(0, (100 * others) / (wall * ncpu)),
        };
        progress(`round ${round + 1}/${ROUNDS} ${row.label}: ${fmt(res.rps)} req/s, p50 ${res.p50.toFixed(2)} ms, p99 ${res.p99.toFixed(2)} ms, ${res.cpuUsPerReq === null ? '' : `server CPU ${res.cpuUsPerReq.toFixed(1)} µs/req, `}${res.othersPct === null ? '' : `other processes ${res.othersPct.toFixed(0)}% of the CPUs, `}failed ${res.failed}`);
        row.runs.push(res);
      }
    }
    for (const row of rows) {
      const log = targets.get(row.kind)!.log();
      if (/error|died|WORKER TIMEOUT/i.test(log.replace(/error-log/g, ''))) progress(`note: ${row.label} logged:\n${indent(log)}`);
    }
    return { rows, ...throughputReport(rows) };
  } finally {
    for (const t of targets.values()) await t.stop();
  }
}

function throughputReport(rows: Row[]): { text: string; ratios: Record<string, number> } {
  const by = (k: Kind) => rows.find((r) => r.kind === k)!;
  const rps = (k: Kind) => median(by(k).runs.map((r) => r.rps));
  // Ratios of the medians, and the same ratio round by round (same round = same conditions).
  const ratio = (a: Kind, b: Kind) => rps(a) / rps(b);
  const perRound = (a: Kind, b: Kind) => by(a).runs.map((r, i) => r.rps / by(b).runs[i]!.rps);
  const cpuOf = (r: Row) => (r.runs.some((x) => x.cpuUsPerReq === null) ? null : median(r.runs.map((x) => x.cpuUsPerReq!)));
  const cpuPerRound = (a: Kind, b: Kind) => by(a).runs.map((r, i) => r.cpuUsPerReq! / by(b).runs[i]!.cpuUsPerReq!);
  const ratios = {
    'drover/cluster-rr': ratio('drover', 'cluster-rr'),
    'drover/cluster-none': ratio('drover', 'cluster-none'),
    'drover/single': ratio('drover', 'single'),
  };
  const lines = [
    `(a) throughput: hello world (bench/http/hello.js), ${WORKERS} workers, ${DURATION} s per run, ${ROUNDS} round(s) interleaved in rotating order, median of the rounds`,
    `    ${loadNote}`,
    `    ${machine}`,
    '',
    ...table(
      ['server', 'req/s', 'req/s each round', 'p50 ms', 'p99 ms', 'CPU µs/req', 'others\' CPU % each round', 'failed', 'connections per process'],
      'lrlrrrlrl',
      rows.map((r) => [
        r.label,
        fmt(median(r.runs.map((x) => x.rps))),
        r.runs.map((x) => fmt(x.rps)).join(' '),
        median(r.runs.map((x) => x.p50)).toFixed(2),
        median(r.runs.map((x) => x.p99)).toFixed(2),
        cpuOf(r) === null ? '-' : cpuOf(r)!.toFixed(1),
        r.runs.map((x) => (x.othersPct === null ? '-' : x.othersPct.toFixed(0))).join(' '),
        String(r.runs.reduce((n, x) => n + x.failed, 0)),
        r.runs.map((x) => Object.values(x.perWorker).sort((p, q) => q - p).join('/')).join(' '),
      ]),
    ),
    '',
    ...table(
      ['ratio of req/s', 'of the medians', 'round by round', 'median of those'],
      'lrlr',
      (['cluster-rr', 'cluster-none', 'single'] as const).map((k) => [
        `drover / ${by(k).label.replace(`, ${WORKERS} workers`, '').replace(' (default)', '').replace(', single process', ' single')}`,
        `${ratio('drover', k).toFixed(3)}x`,
        perRound('drover', k).map((x) => x.toFixed(3)).join(' '),
        `${median(perRound('drover', k)).toFixed(3)}x`,
      ]),
    ),
    ...(cpuOf(by('drover')) === null
      ? []
      : [
          '',
          ...table(
            ['ratio of server CPU per request', 'of the medians', 'round by round', 'median of those'],
            'lrlr',
            (['cluster-rr', 'cluster-none', 'single'] as const).map((k) => [
              `drover / ${by(k).label.replace(`, ${WORKERS} workers`, '').replace(' (default)', '').replace(', single process', ' single')}`,
              `${(cpuOf(by('drover'))! / cpuOf(by(k))!).toFixed(3)}x`,
              cpuPerRound('drover', k).map((x) => x.toFixed(3)).join(' '),
              `${median(cpuPerRound('drover', k)).toFixed(3)}x`,
            ]),
          ),
        ]),
    '',
    `done-bar, drover at least 0.95x node:cluster (round-robin, ratio of the medians): ${ratios['drover/cluster-rr'].toFixed(3)}x -> ${ratios['drover/cluster-rr'] >= 0.95 ? 'MET' : 'NOT MET'}`,
    `issue 16, req/s at least 1.00x node:cluster round-robin (ratio of the medians): ${ratios['drover/cluster-rr'].toFixed(3)}x -> ${ratios['drover/cluster-rr'] >= 1 ? 'MET' : 'NOT MET'}`,
    ...(cpuOf(by('drover')) === null
      ? []
      : [`issue 16, server CPU per 2xx at most 1.00x node:cluster SCHED_NONE (median of the rounds' ratios): ${median(cpuPerRound('drover', 'cluster-none')).toFixed(3)}x -> ${median(cpuPerRound('drover', 'cluster-none')) <= 1 ? 'MET' : 'NOT MET'}`]),
    `1-minute load average before / after the throughput runs: ${load0.toFixed(2)} / ${loadavg()[0]!.toFixed(2)} on ${ncpu} CPU(s)${load0 > 0.5 ? ' (the CPUs were not idle: rounds may differ, compare within a round)' : ''}`,
    '',
    'round-robin is node:cluster\'s default scheduling on Linux (the primary accepts and passes each connection to a worker);',
    'SCHED_NONE and drover let the workers accept from the shared socket, and the kernel picks which one wakes.',
    `"connections per process": how the ${CONNECTIONS} keep-alive connections of each run were spread over the processes that served them;`,
    'with keep-alive, that spread is fixed for the whole run. "failed": non-2xx, timeouts and requests lost with their connection, all rounds.',
    '"CPU µs/req": user + system CPU time of all the server\'s processes (arbiter or primary included) per 2xx response, from /proc;',
    'unlike req/s it moves less when other processes take the CPUs, so it is the steadier comparison on a shared machine (lower is better).',
    '"others\' CPU %": the share of all CPUs used during that run by processes other than the server and the load generator (0 on a quiet machine).',
  ];
  return { text: lines.join('\n'), ratios };
}

// ------------------------------------------------------------------ (b)

interface Reload {
  /** spare_workers of the run (0: the default) */
  spares: number;
  load: LoadResult;
  bootCost: BootStage[];
  boots: Boots;
  hups: number;
  started: number;
  finished: number;
  /** reloads whose `Reload finished` came before the load stopped: their drain happened under load */
  finishedUnderLoad: number;
  failedReloads: Record<string, number>;
  killed: number;
  text: string;
}

/** Under load, with `spares` spare workers (spare_workers) and `cost`, the boot cost measured before. */
async function reload(spares: number, cost: BootStage[]): Promise<Reload> {
  const t = await startReady('drover', WORKERS, { env: { ...process.env, DROVER_SPARE_WORKERS: String(spares) } });
  try {
    progress(`reload: warm-up (${WARMUP} s)`);
    await runLoad({ port: t.port, connections: CONNECTIONS, durationSec: WARMUP, honorClose: true });
    const from = t.log().length;
    let hups = 0;
    const startWall = Date.now();
    progress(`reload, spare_workers ${spares}: ${RELOAD_SECONDS + RELOAD_TAIL} s of load, a HUP every ${HUP_EVERY} s for the first ${RELOAD_SECONDS} s`);
    const load = await runLoad({
      port: t.port,
      connections: CONNECTIONS,
      durationSec: RELOAD_SECONDS + RELOAD_TAIL,
      honorClose: !STOCK,
      onSecond: (s) => {
        if (s <= RELOAD_SECONDS && s % HUP_EVERY === 0) {
          t.signal('SIGHUP');
          hups++;
        }
      },
    });
    const loadEnd = Date.now();
    // Let the last reload finish (or fail) before counting: every reload
    // started has ended, and no deferred HUP has started another for 2 s.
    const count = (re: RegExp) => t.log().slice(from).match(re)?.length ?? 0;
    const settled = () => count(/Reloading: starting/g) <= count(/Reload finished/g) + count(/reload failed/g);
    const end = Date.now() + 30_000;
    let quietSince = Date.now();
    while (Date.now() < end) {
      if (!settled()) quietSince = Date.now();
      else if (Date.now() - quietSince >= 2000) break;
      await sleep(100);
    }
    const log = t.log().slice(from);
    const logFile = join(tmpdir(), `drover-bench-reload-${process.pid}-spares-${spares}.log`);
    writeFileSync(logFile, t.log());
    progress(`reload: drover's whole log is in ${logFile}`);
    const failedReloads: Record<string, number> = {};
    for (const m of log.matchAll(/reload failed, the running config stays in force: (.*)/g)) failedReloads[m[1]!] = (failedReloads[m[1]!] ?? 0) + 1;
    const r = {
      spares,
      load,
      bootCost: cost,
      boots: bootTimes(t.lines().filter((l) => l.t >= startWall).map((l) => l)),
      hups,
      started: count(/Reloading: starting/g),
      finished: count(/Reload finished/g),
      finishedUnderLoad: t.lines().filter((l) => l.t >= startWall && l.t <= loadEnd && l.text.includes('Reload finished')).length,
      failedReloads,
      killed: count(/\] Worker \d+ was killed by SIGKILL/g),
    };
    return { ...r, text: reloadReport(r, log, startWall) };
  } finally {
    await t.stop();
  }
}

function reloadReport(r: Omit<Reload, 'text'>, log: string, startWall: number): string {
  const l = r.load;
  const rows: [string, string][] = [
    ['HUPs sent to the arbiter', String(r.hups)],
    ['reloads started (`Reloading: starting`)', String(r.started)],
    ['reloads finished (`Reload finished`)', String(r.finished)],
    ['  of which before the load stopped', String(r.finishedUnderLoad)],
    ['reloads failed (`reload failed`)', String(Object.values(r.failedReloads).reduce((a, b) => a + b, 0))],
    ['new workers booted (`worker PID booted`)', String(r.boots.booted.length)],
    ['reload to the new generation serving, median / max, ms', r.boots.serving.length ? `${fmt(median(r.boots.serving))} / ${fmt(Math.max(...r.boots.serving))}` : '-'],
    ['  boot time under load, median / max, ms', r.boots.booted.length ? `${fmt(median(r.boots.booted))} / ${fmt(Math.max(...r.boots.booted))}` : '-'],
    ['workers killed by SIGKILL', String(r.killed)],
    ['  while booting (how many, median ms since spawn)', r.boots.killedBooting.length ? `${r.boots.killedBooting.length}, ${fmt(median(r.boots.killedBooting))}` : '0'],
    ['  after they had booted (serving)', String(r.boots.killedServing)],
    ['longest respawn backoff the arbiter logged', r.boots.maxBackoff === null ? '-' : `${r.boots.maxBackoff} s`],
    ['requests sent', fmt(l.sent)],
    ['requests completed (2xx)', fmt(l.ok)],
    ['failed requests', fmt(l.failed)],
    ['  non-2xx', fmt(l.non2xx)],
    ['  timeouts (10 s)', fmt(l.timeouts)],
    ['  lost with their connection (reset or closed unanswered)', fmt(l.lost)],
    ['req/s (2xx) over the run', fmt(l.rps)],
    ['p50 / p99 / max latency, ms', `${l.p50.toFixed(2)} / ${l.p99.toFixed(2)} / ${l.max.toFixed(0)}`],
    ['connections opened (50 at start)', fmt(l.connects)],
    ['  after a `Connection: close` response', fmt(l.closesHonoured)],
  ];
  const lines = [
    `(${r.spares === 0 ? 'b' : 'c'}) reload under load: drover, ${WORKERS} workers, ${r.spares === 0 ? 'no spare workers (the default)' : `spare_workers = ${r.spares}`}, a HUP every ${HUP_EVERY === 1 ? 'second' : `${HUP_EVERY} seconds`} for ${RELOAD_SECONDS} s, load for ${RELOAD_SECONDS + RELOAD_TAIL} s`,
    `    ${loadNote}`,
    STOCK
      ? '    --stock-client: autocannon as shipped, which ignores `Connection: close` and sends its next request on the closing connection'
      : '    the client honours `Connection: close` (opens a new connection for its next request), as HTTP/1.1 requires (see bench/http/load.ts)',
    '',
    ...table(['measure', 'value'], 'lr', rows),
    '',
    `failed requests: ${l.failed} (target: 0) -> ${l.failed === 0 ? 'MET' : 'NOT MET'}`,
    `a new generation serves within 500 ms (median) of its reload's start (issue 16): ${r.boots.serving.length ? `${fmt(median(r.boots.serving))} ms -> ${median(r.boots.serving) <= 500 ? 'MET' : 'NOT MET'}` : 'no reload finished -> NOT MET'}`,
  ];
  if (r.spares === 0) lines.push(
    '',
    "what a worker's boot costs in CPU, stage by stage: a fresh node process that goes that far (quiet machine, before the load; median of the runs)",
    '',
    ...table(['stage', 'CPU ms'], 'lr', r.bootCost.map((b) => [b.stage, b.cpuMs.toFixed(0)])),
    '',
    'A slow-lane worker puts its own socket into LISTEN through copies its arbiter echoes over the channel (os/node/listen.ts): no helper process.',
    'Under load a new worker shares the CPUs with the old workers and the clients: its boot takes a multiple of this in wall time.',
    'A spare worker (spare_workers, run (c)) has everything above the app behind it when the reload comes: it loads the app and serves.',
  );
  if (Object.keys(r.failedReloads).length > 0) {
    lines.push('reloads that failed, by reason:', ...Object.entries(r.failedReloads).map(([why, n]) => `  ${n} x ${why}`));
  }
  if (r.started < r.hups) {
    const n = r.hups - r.started;
    lines.push(`${n} of the ${r.hups} HUPs arrived while a reload was under way and ${n === 1 ? 'was' : 'were'} folded into a later reload (drover runs one reload at a time)`);
  }
  if (r.boots.maxBackoff !== null) {
    lines.push('the arbiter logged the workers of aborted reloads as boot failures ("killed by SIGKILL before it booted; next attempt in N s")');
  }
  if (l.failures.length > 0) lines.push(...describeFailures(l.failures, log, startWall));
  return lines.join('\n');
}

interface Boots {
  /** ms from `Booting worker with pid` to `worker PID booted`, as this process read the log */
  booted: number[];
  /** ms from `Reloading: starting` (the HUP, or the end of the reload it waited for) to `Reload finished` (the new generation serves) */
  serving: number[];
  /** ms from `Booting worker` to `Worker PID was killed by SIGKILL`, for workers that had not booted */
  killedBooting: number[];
  /** workers killed by SIGKILL after they had booted */
  killedServing: number;
  /** the longest `next attempt in N s` the arbiter logged */
  maxBackoff: number | null;
}

function bootTimes(lines: readonly { t: number; text: string }[]): Boots {
  const start = new Map<string, number>();
  const up = new Map<string, number>();
  const b: Boots = { booted: [], serving: [], killedBooting: [], killedServing: 0, maxBackoff: null };
  let reloadAt = -1;
  for (const { t, text } of lines) {
    let m: RegExpMatchArray | null;
    if ((m = text.match(/Booting worker with pid: (\d+)/))) start.set(m[1]!, t);
    else if ((m = text.match(/worker (\d+) booted \(generation/))) {
      up.set(m[1]!, t);
      const s0 = start.get(m[1]!);
      if (s0 !== undefined) b.booted.push(t - s0);
    } else if ((m = text.match(/\] Worker (\d+) was killed by SIGKILL/))) {
      if (up.has(m[1]!)) b.killedServing++;
      else {
        const s0 = start.get(m[1]!);
        if (s0 !== undefined) b.killedBooting.push(t - s0);
      }
    } else if (text.includes('Reloading: starting')) {
      reloadAt = t;
    } else if (text.includes('Reload finished') && reloadAt >= 0) {
      b.serving.push(t - reloadAt);
      reloadAt = -1;
    } else if ((m = text.match(/next attempt in ([\d.]+) s/))) {
      b.maxBackoff = Math.max(b.maxBackoff ?? 0, Number(m[1]));
    }
  }
  return b;
}

/** What the clients saw, and what drover logged about the workers involved. */
function describeFailures(failures: readonly Failure[], log: string, startWall: number): string[] {
  const out = ['', 'what the clients saw, by kind:'];
  const kinds = new Map<string, Failure[]>();
  for (const f of failures) kinds.set(f.kind, [...(kinds.get(f.kind) ?? []), f]);
  for (const [kind, fs] of kinds) out.push(`  ${fs.length} x ${kind}`);
  // Failures come in bursts; each burst with the time since the load started.
  const bursts: Failure[][] = [];
  for (const f of failures) {
    const b = bursts[bursts.length - 1];
    if (b && f.t - b[b.length - 1]!.t < 200) b.push(f);
    else bursts.push([f]);
  }
  out.push('', `in ${bursts.length} burst(s) (ms since the load started, HUPs at 1000, 2000, ...):`);
  for (const b of bursts.slice(0, 30)) {
    const pids = [...new Set(b.map((f) => f.pid ?? '?'))];
    const kindsIn = [...new Set(b.map((f) => f.kind))];
    out.push(`  t=${b[0]!.t}..${b[b.length - 1]!.t} ms: ${b.length} request(s) on ${new Set(b.map((f) => f.conn)).size} connection(s) last served by worker(s) ${pids.join(', ')}: ${kindsIn.join('; ')}`);
  }
  if (bursts.length > 30) out.push(`  ... ${bursts.length - 30} more`);
  const pids = [...new Set(failures.map((f) => f.pid).filter((p): p is string => p !== undefined))].slice(0, 8);
  if (pids.length > 0) {
    out.push('', `drover's log about those workers (load started ${new Date(startWall).toISOString()}):`);
    for (const pid of pids) {
      for (const line of log.split('\n')) if (new RegExp(`\\b${pid}\\b`).test(line)) out.push(`  ${line}`);
    }
  }
  return out;
}

// ------------------------------------------------------------------ main

const started = new Date();
progress(`bench/http${quick ? ' --quick' : ''}: ${machine}`);
let a: Awaited<ReturnType<typeof throughput>> | null = null;
let b: Reload | null = null;
let c: Reload | null = null;
let exit = 0;
try {
  if (opt.only !== 'reload') a = await throughput();
  if (opt.only !== 'throughput') {
    // Measured first, on the machine as quiet as this run leaves it.
    progress('reload: what a worker\'s boot costs, stage by stage');
    const cost = await bootCost(quick ? 3 : 9);
    b = await reload(0, cost);
    c = await reload(WORKERS, cost);
  }
} catch (e) {
  console.error(`bench/http failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  exit = 1;
}
const report = [a?.text, b?.text, c?.text].filter((x) => x !== undefined).join('\n\n');
if (report) console.log('\n' + report);
if (write && a && b && c) {
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const brief = (r: LoadResult) => ({ ...r, failures: r.failures.slice(0, 200), failuresTotal: r.failures.length });
  writeFileSync(join(dir, 'http.json'), JSON.stringify({
    bench: 'http',
    date: started.toISOString(),
    node: process.version,
    cpu: cpuModel,
    cpus: ncpu,
    autocannon: acVersion,
    settings: { workers: WORKERS, connections: CONNECTIONS, durationSec: DURATION, rounds: ROUNDS, warmupSec: WARMUP, reloadSeconds: RELOAD_SECONDS, reloadTailSec: RELOAD_TAIL },
    throughput: {
      ratios: a.ratios,
      rows: a.rows.map((r) => ({ kind: r.kind, label: r.label, rpsMedian: median(r.runs.map((x) => x.rps)), runs: r.runs.map(brief) })),
    },
    reload: { ...b, text: undefined, load: brief(b.load) },
    reloadSpares: { ...c, text: undefined, load: brief(c.load) },
  }, null, 2) + '\n');
  writeFileSync(join(dir, 'http.md'), `# bench/http\n\n\`npm run bench:http\`, ${started.toISOString().slice(0, 10)}\n\n\`\`\`\n${report}\n\`\`\`\n`);
  progress('wrote bench/results/http.json and bench/results/http.md');
}
process.exit(exit);

// ------------------------------------------------------------------ helpers

function indent(s: string): string {
  return s.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
}
