// bench/companions: the companions of a real drover, 50 of them: the round
// trip of its control socket (served by the arbiter, which forwards
// companion commands to the manager over IPC), and how long a stop takes to
// reap a companion and a start to bring one to RUNNING.
//
//   npm run bench:companions               full run: prints the tables, writes
//                                          bench/results/companions.json and .md
//   npm run bench:companions -- --quick    short run for CI: prints, writes nothing
//
// Options, which print but write nothing: --requests N (status requests per
// target, default 2000), --rounds R (default 5), --stops M (companions
// stopped and started one at a time, default 20).
//
// Setup: `node bin/drover.js bench/companions/app.js --config FILE` in its
// own process group, 1 worker on a free 127.0.0.1 port, and 50 companions:
// 45 `["sleep", "1000"]` and 5 `[node, bench/companions/companion.js]`, a
// Node script that exits with code 0 on TERM. `sleep` is the cheapest
// cooperative companion there is (one small exec, ~1 MB, TERM's default
// action ends it at once), so the stop figures are the manager's path and
// not a program's own shutdown, and 45 of them boot in no time on a small
// machine; the 5 Node ones are what a real companion (a queue consumer
// written in Node) looks like and cost ~40 MB each. companion_startsecs is
// 0.1 s (default 1 s): a start is answered when the companion is RUNNING,
// i.e. once it has stayed up for startsecs. The benchmark waits until all 50
// are RUNNING (polling `status`), then:
//
// (1) Control round trip: N sequential `{"cmd":"status"}` requests (reply:
//     all 50 companions, ~8 KB), one in flight, over one persistent
//     connection, over a fresh connection per request, and through drover's
//     own client (src/runtime/control/client.ts request() on a real Node Os,
//     a fresh connection each, as `drover ctl` does minus its process
//     start); each request goes client -> arbiter -> manager and back.
//     Peers, measured in the same run, interleaved in rotating
//     order: a bare node:net Unix-socket server that answers every line with
//     the very bytes of drover's status reply (the floor), and one that
//     parses the request and builds and stringifies that reply afresh (the
//     floor plus the JSON work any control server does). See peer.ts.
// (2) Stop to reaped and start to RUNNING, one companion at a time over one
//     persistent connection: `stop` is answered once the companion is
//     STOPPED, i.e. its process was reaped (checked: the old pid is gone
//     from /proc when the reply arrives). Then `stop all` / `start all`. The
//     peer: node:child_process in this process spawning the same argv
//     (setpriv --pdeathsig KILL -- ..., its own process group, piped stdio,
//     as the manager does), TERM to the group, time to the 'exit' event.
//
// Every process started carries a marker variable (procs.ts); at the end the
// arbiter gets TERM (the time it takes to stop 50 companions and its worker
// is reported), its group is killed, and /proc is searched for anything
// left with the marker: the run fails if something is.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createNodeOs } from '../../src/os/node/index.js';
import { request } from '../../src/runtime/control/client.js';
import type { CompanionStatus, Reply } from '../../src/runtime/control/protocol.js';
import { freshAsk, LineConn } from './clients.js';
import { cpuMs, exists, marked, MARK, MARK_VAR, type Proc, startProc } from './procs.js';
import { freePort, sleep } from '../lib/procs.js';
import { cli, fmt, median, table } from '../lib/report.js';

const { progress, positive, fail } = cli('companions');

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    requests: { type: 'string' },
    rounds: { type: 'string' },
    stops: { type: 'string' },
  },
  strict: true,
});
const quick = opt.quick!;
const N = positive('requests', opt.requests ?? (quick ? '200' : '2000'));
const ROUNDS = positive('rounds', opt.rounds ?? (quick ? '1' : '5'));
const SLEEPERS = 45;
const NODES = 5;
const COMPANIONS = SLEEPERS + NODES;
const M = positive('stops', opt.stops ?? (quick ? '5' : '20'));
if (M > SLEEPERS) fail(`--stops: at most ${SLEEPERS}`);
const NODE_M = quick ? 2 : NODES;
const ALL_ROUNDS = quick ? 1 : 3;
const WARMUP = quick ? 50 : 200;
const STARTSECS = 0.1;
const STOP_TIMEOUT = 5;
const write = !quick && opt.requests === undefined && opt.rounds === undefined && opt.stops === undefined;

const ROOT = join(import.meta.dirname, '..', '..');
const DROVER = join(ROOT, 'bin', 'drover.js');
const APP = join(import.meta.dirname, 'app.js');
const NODE_COMPANION = join(import.meta.dirname, 'companion.js');
const PEER = join(import.meta.dirname, 'peer.ts');

const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
const ncpu = availableParallelism();
const machine = `${ncpu} CPU(s), ${cpuModel}, Node ${process.version}, ${process.platform}`;

const sleeperName = (i: number) => `sleep-${String(i).padStart(2, '0')}`;
const nodeName = (i: number) => `node-${i}`;

// ------------------------------------------------------------------ helpers for replies

const STATUS = '{"cmd":"status"}\n';
const line = (o: object) => JSON.stringify(o) + '\n';

function parse(text: string): Reply {
  const r = JSON.parse(text) as Reply;
  if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean') throw new Error(`not a drover reply: ${text.slice(0, 200)}`);
  return r;
}

function companionsOf(r: Reply, what: string): readonly CompanionStatus[] {
  if (!r.ok) throw new Error(`${what}: ${r.error}`);
  if (!('companions' in r)) throw new Error(`${what}: no companions in the reply`);
  return r.companions;
}

const count = (s: string, needle: string) => s.split(needle).length - 1;
const RUNNING = '"state":"RUNNING"';
/** A status reply of all 50, every one RUNNING: checked on the text, a few µs, so that the check costs every row alike and little. */
const goodStatus = (s: string) => s.startsWith('{"ok":true,"companions":[') && count(s, RUNNING) === COMPANIONS;

// ------------------------------------------------------------------ (1)

type ServerKind = 'drover' | 'canned' | 'json';
type Via = 'persistent' | 'fresh' | 'client.ts';

interface LatTarget {
  readonly server: ServerKind;
  readonly via: Via;
  readonly label: string;
  readonly connection: string;
  readonly path: string;
  /** The processes that answer: drover's arbiter (it serves the socket) and its manager (status comes from it), or the peer. */
  readonly pids: readonly number[];
  conn: LineConn | null;
}

interface LatRow {
  server: ServerKind;
  via: Via;
  label: string;
  connection: string;
  samples: number[];
  wallMs: number;
  cpuMs: number | null;
  bad: number;
  roundP50: number[];
}

const os = createNodeOs({ programs: [] });

async function one(t: LatTarget): Promise<{ ms: number; ok: boolean }> {
  if (t.via === 'client.ts') {
    const t0 = performance.now();
    const r = await request(os, t.path, { cmd: 'status' }, 10_000);
    const ms = performance.now() - t0;
    return { ms, ok: r.ok && 'companions' in r && r.companions.length === COMPANIONS && r.companions.every((c) => c.state === 'RUNNING') };
  }
  if (t.via === 'fresh') {
    const r = await freshAsk(t.path, STATUS);
    return { ms: r.ms, ok: goodStatus(r.line) };
  }
  t.conn ??= await LineConn.open(t.path);
  const r = await t.conn.ask(STATUS);
  return { ms: r.ms, ok: goodStatus(r.line) };
}

async function batch(t: LatTarget, n: number): Promise<{ samples: number[]; wallMs: number; cpuMs: number | null; bad: number }> {
  const samples: number[] = [];
  let bad = 0;
  const c0 = cpu(t.pids);
  const w0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await one(t);
    samples.push(r.ms);
    if (!r.ok) bad++;
  }
  const wallMs = performance.now() - w0;
  const c1 = cpu(t.pids);
  return { samples, wallMs, cpuMs: c0 === null || c1 === null ? null : c1 - c0, bad };
}

/** CPU ms of all of `pids`, null if one cannot be read. */
function cpu(pids: readonly number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const ms = cpuMs(pid);
    if (ms === null) return null;
    sum += ms;
  }
  return sum;
}

async function latency(sock: string, droverPids: readonly number[], peers: Record<'canned' | 'json', { path: string; pid: number }>): Promise<LatRow[]> {
  const targets: LatTarget[] = [
    { server: 'drover', via: 'persistent', label: 'drover (arbiter -> manager)', connection: 'persistent (raw node:net)', path: sock, pids: droverPids, conn: null },
    { server: 'drover', via: 'fresh', label: 'drover (arbiter -> manager)', connection: 'fresh per request (raw node:net)', path: sock, pids: droverPids, conn: null },
    { server: 'drover', via: 'client.ts', label: 'drover (arbiter -> manager)', connection: 'fresh per request (client.ts request())', path: sock, pids: droverPids, conn: null },
    { server: 'canned', via: 'persistent', label: 'peer: node:net, canned reply', connection: 'persistent (raw node:net)', path: peers.canned.path, pids: [peers.canned.pid], conn: null },
    { server: 'canned', via: 'fresh', label: 'peer: node:net, canned reply', connection: 'fresh per request (raw node:net)', path: peers.canned.path, pids: [peers.canned.pid], conn: null },
    { server: 'json', via: 'persistent', label: 'peer: node:net, JSON parse + stringify', connection: 'persistent (raw node:net)', path: peers.json.path, pids: [peers.json.pid], conn: null },
    { server: 'json', via: 'fresh', label: 'peer: node:net, JSON parse + stringify', connection: 'fresh per request (raw node:net)', path: peers.json.path, pids: [peers.json.pid], conn: null },
  ];
  for (const t of targets) {
    progress(`warm-up: ${WARMUP} x status, ${t.label}, ${t.connection}`);
    await batch(t, WARMUP);
  }
  const rows: LatRow[] = targets.map((t) => ({ server: t.server, via: t.via, label: t.label, connection: t.connection, samples: [], wallMs: 0, cpuMs: 0, bad: 0, roundP50: [] }));
  const per = Math.ceil(N / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const k = (i + round) % targets.length;
      const t = targets[k]!;
      const row = rows[k]!;
      const n = Math.min(per, N - round * per);
      if (n <= 0) continue;
      const b = await batch(t, n);
      row.samples.push(...b.samples);
      row.wallMs += b.wallMs;
      row.cpuMs = row.cpuMs === null || b.cpuMs === null ? null : row.cpuMs + b.cpuMs;
      row.bad += b.bad;
      row.roundP50.push(stats(b.samples).p50);
      progress(`round ${round + 1}/${ROUNDS} ${t.label}, ${t.connection}: p50 ${stats(b.samples).p50.toFixed(3)} ms, ${fmt((1000 * n) / b.wallMs)} req/s`);
    }
  }
  for (const t of targets) t.conn?.close();
  return rows;
}

function latencyReport(rows: LatRow[], replyBytes: number): { text: string; ratios: Record<string, number> } {
  const find = (s: ServerKind, v: Via) => rows.find((r) => r.server === s && r.via === v)!;
  const p50 = (r: LatRow) => stats(r.samples).p50;
  const ratios: Record<string, number> = {
    'drover/canned persistent p50': p50(find('drover', 'persistent')) / p50(find('canned', 'persistent')),
    'drover/json persistent p50': p50(find('drover', 'persistent')) / p50(find('json', 'persistent')),
    'drover/canned fresh p50': p50(find('drover', 'fresh')) / p50(find('canned', 'fresh')),
    'drover/json fresh p50': p50(find('drover', 'fresh')) / p50(find('json', 'fresh')),
  };
  const roundRatios = (a: LatRow, b: LatRow) => a.roundP50.map((x, i) => x / b.roundP50[i]!);
  const lines = [
    `(1) control round trip: {"cmd":"status"} with ${COMPANIONS} companions RUNNING (reply ${fmt(replyBytes)} bytes), ${fmt(N)} sequential requests per row, one in flight,`,
    `    ${ROUNDS} round(s) interleaved in rotating order after ${WARMUP} warm-up requests each, percentiles over all requests of a row`,
    `    client: this process (one thread); ${machine}`,
    '',
    ...table(
      ['server', 'connection', 'requests', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'p50 each round', 'server CPU µs/req', 'bad replies'],
      'llrrrrrrlrr',
      rows.map((r) => {
        const s = stats(r.samples);
        return [
          r.label,
          r.connection,
          fmt(r.samples.length),
          fmt((1000 * r.samples.length) / r.wallMs),
          s.p50.toFixed(3),
          s.p90.toFixed(3),
          s.p99.toFixed(3),
          s.max.toFixed(2),
          r.roundP50.map((x) => x.toFixed(3)).join(' '),
          r.cpuMs === null ? '-' : ((1000 * r.cpuMs) / r.samples.length).toFixed(0),
          String(r.bad),
        ];
      }),
    ),
    '',
    ...table(
      ['ratio of p50 latency', 'all requests', 'round by round', 'median of those'],
      'lrlr',
      ([
        ['drover / canned peer, persistent connection', find('drover', 'persistent'), find('canned', 'persistent')],
        ['drover / JSON peer, persistent connection', find('drover', 'persistent'), find('json', 'persistent')],
        ['drover / canned peer, fresh connection', find('drover', 'fresh'), find('canned', 'fresh')],
        ['drover / JSON peer, fresh connection', find('drover', 'fresh'), find('json', 'fresh')],
      ] as const).map(([label, a, b]) => [label, `${(p50(a) / p50(b)).toFixed(2)}x`, roundRatios(a, b).map((x) => x.toFixed(2)).join(' '), `${median(roundRatios(a, b)).toFixed(2)}x`]),
    ),
    '',
    'req/s: requests over the wall time of the row\'s batches (sequential, so about 1000 / mean latency); the client checks every reply',
    `(all ${COMPANIONS} RUNNING) between requests, outside the latency but inside the wall time, alike for every row.`,
    '"server CPU µs/req": user + system CPU of the answering processes per request, from /proc (10 ms ticks): for drover the arbiter, which',
    'serves the socket, plus the companion manager, to which it forwards the request over IPC; for a peer, the peer.',
    'canned peer: the same reply bytes with no work at all, the floor of a Node Unix-socket round trip for this size;',
    'JSON peer: parses the request, rebuilds the 50-companion reply object and stringifies it, as any JSON control server must.',
    'client.ts request(): drover\'s own control client, as `drover ctl` uses it (connect, write, parse the reply, destroy) via createNodeOs.',
  ];
  return { text: lines.join('\n'), ratios };
}

// ------------------------------------------------------------------ (2)

interface Cycle {
  name: string;
  stopMs: number;
  startMs: number;
  /** ms from the start request to the spawn, as the reply's uptime_ms tells: startMs - uptime_ms */
  beforeSpawnMs: number;
  /** the old pid absent from /proc when the stop reply arrived (so it was reaped) */
  reaped: boolean;
  exit: string;
  ok: boolean;
  problems: string[];
}

async function cycle(conn: LineConn, name: string): Promise<Cycle> {
  const problems: string[] = [];
  const st = companionsOf(parse((await conn.ask(line({ cmd: 'status', name }))).line), `status ${name}`)[0]!;
  if (st.state !== 'RUNNING' || st.pid === null) problems.push(`${name} was ${st.state} before the stop`);
  const oldPid = st.pid;
  const s = await conn.ask(line({ cmd: 'stop', name }));
  const reaped = oldPid !== null && !exists(oldPid);
  const stopped = companionsOf(parse(s.line), `stop ${name}`)[0]!;
  if (stopped.state !== 'STOPPED' || stopped.pid !== null) problems.push(`stop ${name}: replied ${stopped.state} pid ${stopped.pid}`);
  if (!reaped) problems.push(`stop ${name}: pid ${oldPid} still in /proc at the reply`);
  const exit = stopped.last_exit ? (stopped.last_exit.signal ?? `code ${stopped.last_exit.code}`) : '?';
  const g = await conn.ask(line({ cmd: 'start', name }));
  const started = companionsOf(parse(g.line), `start ${name}`)[0]!;
  if (started.state !== 'RUNNING' || started.pid === null) problems.push(`start ${name}: replied ${started.state} pid ${started.pid}`);
  return { name, stopMs: s.ms, startMs: g.ms, beforeSpawnMs: g.ms - (started.uptime_ms ?? NaN), reaped, exit, ok: problems.length === 0, problems };
}

interface AllRound {
  stopMs: number;
  startMs: number;
  reaped: number;
  exits: Record<string, number>;
  problems: string[];
}

async function allRound(conn: LineConn): Promise<AllRound> {
  const problems: string[] = [];
  const before = companionsOf(parse((await conn.ask(STATUS)).line), 'status');
  const pids = before.map((c) => c.pid).filter((p): p is number => p !== null);
  if (pids.length !== COMPANIONS) problems.push(`only ${pids.length} companions had a pid before stop all`);
  const s = await conn.ask(line({ cmd: 'stop', name: 'all' }));
  const reaped = pids.filter((p) => !exists(p)).length;
  const stopped = companionsOf(parse(s.line), 'stop all');
  const exits: Record<string, number> = {};
  for (const c of stopped) {
    const k = `${c.name.startsWith('node') ? 'node' : 'sleep'}: ${c.last_exit ? (c.last_exit.signal ?? `code ${c.last_exit.code}`) : '?'}`;
    exits[k] = (exits[k] ?? 0) + 1;
  }
  const notStopped = stopped.filter((c) => c.state !== 'STOPPED');
  if (notStopped.length > 0) problems.push(`stop all: ${notStopped.length} not STOPPED in the reply`);
  if (reaped !== pids.length) problems.push(`stop all: ${pids.length - reaped} old pid(s) still in /proc at the reply`);
  const g = await conn.ask(line({ cmd: 'start', name: 'all' }));
  const notRunning = companionsOf(parse(g.line), 'start all').filter((c) => c.state !== 'RUNNING');
  if (notRunning.length > 0) problems.push(`start all: ${notRunning.length} not RUNNING in the reply`);
  return { stopMs: s.ms, startMs: g.ms, reaped, exits, problems };
}

interface Bare {
  startMs: number;
  stopMs: number;
  exit: string;
}

/** The peer of (2): the manager's spawn and stop done with bare node:child_process in this process. */
async function bare(command: readonly string[], waitReady: boolean): Promise<Bare> {
  const t0 = performance.now();
  const cp = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...command], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [MARK_VAR]: MARK },
  });
  const exited = once(cp, 'exit') as Promise<[number | null, string | null]>;
  await once(cp, 'spawn');
  const startMs = performance.now() - t0;
  let out = '';
  cp.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  cp.stderr!.resume();
  const ready = Date.now() + 10_000;
  if (waitReady) while (!out.includes('ready') && Date.now() < ready) await sleep(5);
  else await sleep(STARTSECS * 1000);
  const t1 = performance.now();
  process.kill(-cp.pid!, 'SIGTERM');
  const [code, signal] = await exited;
  return { startMs, stopMs: performance.now() - t1, exit: signal ?? `code ${code}` };
}

function stopStartReport(sleepers: Cycle[], nodes: Cycle[], alls: AllRound[], bareSleep: Bare[], bareNode: Bare[]): string {
  const row = (what: string, how: string, xs: number[], checks: string): string[] => {
    const s = stats(xs);
    return [what, how, String(xs.length), s.p50.toFixed(2), s.p90.toFixed(2), s.p99.toFixed(2), s.max.toFixed(2), checks];
  };
  const exitsOf = (xs: { exit: string }[]) => {
    const m = new Map<string, number>();
    for (const x of xs) m.set(x.exit, (m.get(x.exit) ?? 0) + 1);
    return [...m].map(([k, n]) => `${n} x ${k}`).join(', ');
  };
  const reapedOf = (cs: Cycle[]) => `${cs.filter((c) => c.reaped).length}/${cs.length} reaped at the reply; exits: ${exitsOf(cs)}`;
  const runningOf = (cs: Cycle[]) => `${cs.filter((c) => c.problems.every((p) => !p.startsWith('start'))).length}/${cs.length} RUNNING in the reply`;
  const allExits = (() => {
    const m: Record<string, number> = {};
    for (const a of alls) for (const [k, n] of Object.entries(a.exits)) m[k] = (m[k] ?? 0) + n;
    return Object.entries(m).map(([k, n]) => `${n} x ${k}`).join(', ');
  })();
  const nodeArgv = `[node, companion.js]`;
  const rows: string[][] = [
    row('stop -> reply (STOPPED, reaped)', 'drover: sleep 1000', sleepers.map((c) => c.stopMs), reapedOf(sleepers)),
    row('  peer: TERM to group -> exit event', 'child_process: sleep 1000', bareSleep.map((b) => b.stopMs), `exits: ${exitsOf(bareSleep)}`),
    row('stop -> reply (STOPPED, reaped)', `drover: ${nodeArgv}`, nodes.map((c) => c.stopMs), reapedOf(nodes)),
    row('  peer: TERM to group -> exit event', `child_process: ${nodeArgv}`, bareNode.map((b) => b.stopMs), `exits: ${exitsOf(bareNode)}`),
    row('start -> reply (RUNNING)', 'drover: sleep 1000', sleepers.map((c) => c.startMs), runningOf(sleepers)),
    row('  of which request -> spawn', 'drover: sleep 1000', sleepers.map((c) => c.beforeSpawnMs), 'start ms - the reply\'s uptime_ms'),
    row('  over startsecs', 'drover: sleep 1000', sleepers.map((c) => c.startMs - STARTSECS * 1000), `start ms - ${STARTSECS * 1000}`),
    row('  peer: spawn() -> spawn event', 'child_process: sleep 1000', bareSleep.map((b) => b.startMs), 'no startsecs wait'),
    row('start -> reply (RUNNING)', `drover: ${nodeArgv}`, nodes.map((c) => c.startMs), runningOf(nodes)),
    row('  over startsecs', `drover: ${nodeArgv}`, nodes.map((c) => c.startMs - STARTSECS * 1000), `start ms - ${STARTSECS * 1000}`),
    row('  peer: spawn() -> spawn event', `child_process: ${nodeArgv}`, bareNode.map((b) => b.startMs), 'no startsecs wait'),
    row(`stop all (${COMPANIONS}) -> reply`, 'drover: all', alls.map((a) => a.stopMs), `${alls.reduce((n, a) => n + a.reaped, 0)}/${alls.length * COMPANIONS} reaped at the reply; exits: ${allExits}`),
    row(`start all (${COMPANIONS}) -> reply`, 'drover: all', alls.map((a) => a.startMs), `${alls.every((a) => !a.problems.some((p) => p.startsWith('start'))) ? 'all' : 'NOT all'} RUNNING in the reply`),
  ];
  const problems = [...sleepers, ...nodes].flatMap((c) => c.problems).concat(alls.flatMap((a) => a.problems));
  return [
    `(2) stop -> reaped and start -> RUNNING, one companion at a time (status, stop, start) over one persistent connection, then stop all / start all ${ALL_ROUNDS} time(s)`,
    `    companion_startsecs ${STARTSECS} s (default 1 s: a start is answered at RUNNING, after startsecs), stop_timeout ${STOP_TIMEOUT} s (never reached: all are cooperative)`,
    '',
    ...table(['measure', 'companion', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'checks'], 'llrrrrrl', rows),
    '',
    'drover\'s stop: request line -> arbiter -> manager (IPC) -> TERM to the companion\'s process group -> libuv reaps it -> the manager\'s SIGCHLD path ->',
    'STOPPED -> reply line; "reaped at the reply": the old pid was gone from /proc when the reply arrived.',
    'peer rows: this process spawns the same argv the manager runs (setpriv --pdeathsig KILL -- ..., own process group, piped stdout/stderr)',
    'with node:child_process, sends TERM to the group and times the exit event; for the Node companion it waits for its "ready" line first.',
    'With so few samples p99 is about the max.',
    ...(problems.length > 0 ? ['', 'PROBLEMS:', ...problems.map((p) => `  ${p}`)] : []),
  ].join('\n');
}

// ------------------------------------------------------------------ main

async function waitAllRunning(sock: string, drover: Proc, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await freshAsk(sock, STATUS);
      last = r.line;
      if (goodStatus(r.line)) return r.line;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > end) throw new Error(`not all ${COMPANIONS} companions RUNNING after ${timeoutMs} ms; last status: ${last.slice(0, 500)}\nlog:\n${drover.log()}`);
    await sleep(100);
  }
}

const started = new Date();
const load0 = loadavg()[0]!;
progress(`bench/companions${quick ? ' --quick' : ''}: ${machine}`);
const dir = mkdtempSync(join(tmpdir(), 'drover-bench-comp-'));
const sock = join(dir, 'ctl.sock');
// Also on Ctrl-C: procs.ts kills the processes and exits, and this runs then.
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let drover: Proc | null = null;
const peerProcs: Proc[] = [];
let exit = 0;
let report = '';
let json: Record<string, unknown> = {};
try {
  const port = await freePort();
  const config = {
    bind: `127.0.0.1:${port}`,
    workers: 1,
    control_socket: sock,
    companion_startsecs: STARTSECS,
    companion_stop_timeout: STOP_TIMEOUT,
    companions: [
      ...Array.from({ length: SLEEPERS }, (_, i) => ({ name: sleeperName(i), command: ['sleep', '1000'] })),
      ...Array.from({ length: NODES }, (_, i) => ({ name: nodeName(i), command: [process.execPath, NODE_COMPANION] })),
    ],
  };
  const cfgPath = join(dir, 'drover.config.json');
  writeFileSync(cfgPath, JSON.stringify(config, null, 2));
  const t0 = performance.now();
  drover = startProc('drover', [DROVER, APP, '--config', cfgPath], ROOT);
  await drover.waitFor(/booted \(generation 1\)/);
  const reply = await waitAllRunning(sock, drover, 60_000);
  const bootMs = performance.now() - t0;
  progress(`all ${COMPANIONS} companions RUNNING ${fmt(bootMs)} ms after drover was started (status polled every 100 ms)`);
  const conn = await LineConn.open(sock);
  const pidReply = parse((await conn.ask(line({ cmd: 'pid' }))).line);
  if (!pidReply.ok || !('pid' in pidReply) || pidReply.pid === null) throw new Error(`pid: ${JSON.stringify(pidReply)}`);
  const managerPid = pidReply.pid;

  // The peers answer with the very reply drover gave.
  const replyFile = join(dir, 'status-reply.json');
  writeFileSync(replyFile, reply + '\n');
  const peers = {} as Record<'canned' | 'json', { path: string; pid: number }>;
  for (const mode of ['canned', 'json'] as const) {
    const path = join(dir, `peer-${mode}.sock`);
    const p = startProc(`peer ${mode}`, ['--import', 'tsx', PEER, mode, path, replyFile], ROOT);
    peerProcs.push(p);
    await p.waitFor(/^ready$/m);
    peers[mode] = { path, pid: p.pid };
  }

  const lat = await latency(sock, [drover.pid, managerPid], peers);
  const a = latencyReport(lat, Buffer.byteLength(reply) + 1);

  progress(`stop/start: ${M} sleep companions, ${NODE_M} node companions, one at a time`);
  const sleepers: Cycle[] = [];
  for (let i = 0; i < M; i++) sleepers.push(await cycle(conn, sleeperName(i)));
  const nodes: Cycle[] = [];
  for (let i = 0; i < NODE_M; i++) nodes.push(await cycle(conn, nodeName(i)));
  progress(`stop all / start all x ${ALL_ROUNDS}`);
  const alls: AllRound[] = [];
  for (let r = 0; r < ALL_ROUNDS; r++) {
    // Node companions install their TERM handler some tens of ms after RUNNING: give them time, so their exit is the cooperative one.
    await sleep(1500);
    alls.push(await allRound(conn));
  }
  conn.close();
  progress('peer of (2): bare node:child_process in this process');
  const bareSleep: Bare[] = [];
  for (let i = 0; i < M; i++) bareSleep.push(await bare(['sleep', '1000'], false));
  const bareNode: Bare[] = [];
  for (let i = 0; i < NODE_M; i++) bareNode.push(await bare([process.execPath, NODE_COMPANION], true));
  const b = stopStartReport(sleepers, nodes, alls, bareSleep, bareNode);

  // Shutdown: TERM to the arbiter stops the 50 companions and the worker.
  await sleep(1500);
  for (const p of peerProcs) await p.stop(2000);
  const d = drover;
  drover = null;
  const termMs = await d.stop(20_000);
  let left = marked();
  const end = Date.now() + 5000;
  while (left.length > 0 && Date.now() < end) {
    await sleep(100);
    left = marked();
  }
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const issues = d.log().split('\n').filter((l) => /\[(WARNING|ERROR|CRITICAL)\]/.test(l));
  const c = [
    `drover with ${COMPANIONS} companions: all RUNNING ${fmt(bootMs)} ms after \`node bin/drover.js\` was started (status polled every 100 ms);`,
    `TERM to the arbiter -> its exit (${COMPANIONS} companions and 1 worker stopped): ${termMs === null ? 'did not exit within 20 s: KILLED' : `${fmt(termMs)} ms`}`,
    `left behind with the marker ${MARK_VAR} after the arbiter's exit: ${left.length === 0 ? 'none' : left.map((p) => `${p.pid} (${p.cmd})`).join('; ')}`,
    `warnings and errors in drover's log: ${issues.length}${issues.length > 0 ? '\n' + issues.slice(0, 10).map((l) => `  ${l}`).join('\n') : ''}`,
    `1-minute load average before / after: ${load0.toFixed(2)} / ${loadavg()[0]!.toFixed(2)} on ${ncpu} CPU(s)`,
  ].join('\n');
  if (left.length > 0 || termMs === null) exit = 1;
  if (lat.some((r) => r.bad > 0) || [...sleepers, ...nodes].some((x) => !x.ok) || alls.some((x) => x.problems.length > 0)) exit = 1;
  report = [a.text, b, c].join('\n\n');

  const summary = (xs: number[]) => stats(xs);
  json = {
    bench: 'companions',
    date: started.toISOString(),
    node: process.version,
    cpu: cpuModel,
    cpus: ncpu,
    settings: { companions: COMPANIONS, sleepers: SLEEPERS, nodeCompanions: NODES, requests: N, rounds: ROUNDS, warmup: WARMUP, stops: M, nodeStops: NODE_M, allRounds: ALL_ROUNDS, startsecs: STARTSECS, stopTimeout: STOP_TIMEOUT },
    statusReplyBytes: Buffer.byteLength(reply) + 1,
    bootToAllRunningMs: bootMs,
    latency: {
      ratios: a.ratios,
      rows: lat.map((r) => ({
        server: r.server, via: r.via, label: r.label, connection: r.connection, ...summary(r.samples),
        rps: (1000 * r.samples.length) / r.wallMs, serverCpuUsPerReq: r.cpuMs === null ? null : (1000 * r.cpuMs) / r.samples.length, bad: r.bad, roundP50: r.roundP50,
      })),
    },
    stopStart: {
      sleep: { stop: summary(sleepers.map((x) => x.stopMs)), start: summary(sleepers.map((x) => x.startMs)), beforeSpawn: summary(sleepers.map((x) => x.beforeSpawnMs)), cycles: sleepers },
      node: { stop: summary(nodes.map((x) => x.stopMs)), start: summary(nodes.map((x) => x.startMs)), cycles: nodes },
      all: { stop: summary(alls.map((x) => x.stopMs)), start: summary(alls.map((x) => x.startMs)), rounds: alls },
      peer: {
        sleep: { stop: summary(bareSleep.map((x) => x.stopMs)), start: summary(bareSleep.map((x) => x.startMs)) },
        node: { stop: summary(bareNode.map((x) => x.stopMs)), start: summary(bareNode.map((x) => x.startMs)) },
      },
    },
    shutdown: { termToExitMs: termMs, leftBehind: left, logIssues: issues },
  };
} catch (e) {
  console.error(`bench/companions failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  exit = 1;
} finally {
  for (const p of peerProcs) await p.stop(2000).catch((e: unknown) => console.error(String(e)));
  if (drover) await drover.stop(20_000).catch((e: unknown) => console.error(String(e)));
  const left = marked();
  if (left.length > 0) {
    console.error(`bench/companions: killing what is left with the marker: ${left.map((p) => `${p.pid} (${p.cmd})`).join('; ')}`);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    exit = 1;
  }
  rmSync(dir, { recursive: true, force: true });
}
if (report) console.log('\n' + report);
if (write && exit === 0 && report) {
  const out = join(import.meta.dirname, '..', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'companions.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(join(out, 'companions.md'), `# bench/companions\n\n\`npm run bench:companions\`, ${started.toISOString().slice(0, 10)}\n\n\`\`\`\n${report}\n\`\`\`\n`);
  progress('wrote bench/results/companions.json and bench/results/companions.md');
}
process.exit(exit);

// ------------------------------------------------------------------ helpers

function stats(xs: readonly number[]): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  const s = [...xs].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) };
}
