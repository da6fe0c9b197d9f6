// One seed of `drover sim --config/--app`: the user's deployment
// (deployment.ts) on the simulated kernel — the real arbiter, workers, slow
// lane and companion manager, the user's app and module companions — under
// the request mix of their config and the faults of the `mixed` scenario
// that apply to it (kills of every kind of process, HUPs, TTIN/TTOU, control
// commands, a stalled manager). drover's invariants are checked as in every
// chaos run; beside them the run records what the user needs to see:
// answers by status, 5xx and lost requests by route, app code that threw
// (uncaught exceptions, unhandled rejections: the process that ran it
// crashes, as Node's default does), requests the app was handed and never
// answered, an app that failed to load, companions that outlived their
// stop_timeout. Same seed, same run.
//
// An app that cannot load halts drover at its first boot (arbiter.ts: a
// worker that never booted with a load error stops the server): the run
// ends there with the app's load error as its finding, not as the
// convergence invariant of a deployment with no arbiter left.
//
// Whose fault a request without an end is: each request carries its id in
// a header (SIM_REQUEST), which the worker's appCalled hook (os/hooks.ts)
// reads and takes off as it hands the request to the app. A request the app
// got and never ended is the app's finding; one drover never handed to the
// app, or whose answer the app ended and drover never delivered, is
// drover's: the convergence invariant.
import { Buffer } from 'node:buffer';
import type { AppRequest, Defect } from '../os/hooks.js';
import { programs, type Os, type ProgramRegistry } from '../os/types.js';
import { ASSERTION_ERROR } from '../runtime/assert.js';
import { runtimePrograms } from '../runtime/programs.js';
import { EXIT_APP_LOAD, EXIT_BOOT, stillSpare } from '../runtime/protocol.js';
import { Kernel, type AppExit, type Crash } from '../sim/index.js';
import { Conn, type Outcome } from './client.js';
import { KeptAlive, openLoop } from './load.js';
import { MOUNT, SIM_ADDR, SIM_CONFIG, SIM_LOG, SIM_SOCK, STAND_IN, type Deployment } from './deployment.js';
import { Checker, type Violation } from './invariants.js';
import { pickRequest } from './mix.js';
import { Nemesis } from './nemesis.js';
import { generate, type Fault, type FaultKind } from './scenario.js';
import { Service, settle } from './service.js';

const SETTLE_MS = 40_000;
/** The programs of drover's process tree in a user's deployment. */
const TREE: ReadonlySet<string> = new Set(['arbiter', 'worker', 'slow-worker', 'companion-manager', 'companion-module', STAND_IN]);
/** Findings kept per run (counts are whole). */
const KEEP = 20;
/** Faults of the mixed scenario that a user's deployment has: none that needs the chaos app (its /hang) or a config of our making. */
const APPLY: Partial<Record<FaultKind, FaultKind | null>> = {
  'hup-changed': 'hup', 'hup-broken-config': null, 'hup-broken-app': null, 'ctl-malformed': null, 'stall-worker': null,
};

export type FindingKind = 'load' | 'crash' | 'rejection' | 'exit' | 'drover-crash' | 'unanswered' | 'hang' | '5xx' | 'lost' | 'stop-timeout' | 'not-simulated';

/** No finding of any kind yet. */
export function noFindings(): Record<FindingKind, number> {
  return { load: 0, crash: 0, rejection: 0, exit: 0, 'drover-crash': 0, unanswered: 0, hang: 0, '5xx': 0, lost: 0, 'stop-timeout': 0, 'not-simulated': 0 };
}

/** The header that carries a request's id from the driver to the appCalled hook, which takes it off before the app runs. */
export const SIM_REQUEST = 'x-sim-request';

/** Takes the header `name` off a request: its raw lines and its parsed headers, as if it had never been sent. */
export function unmark(req: AppRequest, name: string): string | undefined {
  // node:http builds headers and headersDistinct from rawHeaders on first use, counting the lines it
  // parsed: built after a splice, they would read past its end. Built first, they are plain objects.
  const parsed = req.headers;
  const distinct = (req as { headersDistinct?: Record<string, string[]> }).headersDistinct;
  let value: string | undefined;
  for (let i = req.rawHeaders.length - 2; i >= 0; i -= 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== name) continue;
    value = req.rawHeaders[i + 1];
    req.rawHeaders.splice(i, 2);
  }
  delete parsed[name];
  if (distinct) delete distinct[name];
  return value;
}

/** Something the user should look at, at a simulated time. */
export interface Finding {
  readonly kind: FindingKind;
  readonly at: number;
  readonly text: string;
  /** "METHOD PATH" of a request, else the process or companion (as "program pid"). */
  readonly where: string;
  /** A lost request: the fault injected in the 2 s before it was sent or while it waited, if any. */
  readonly after?: string;
}

export interface AppRunReport {
  readonly violation: Violation | null;
  readonly findings: readonly Finding[];
  /** Findings by kind, however many were kept. */
  readonly counts: Record<FindingKind, number>;
  /** Every finding by kind and place (placeOf), "KIND\tPLACE": what the report groups by. */
  readonly places: Record<string, number>;
  /** Answers by status code ("200", "502", ...), and "lost" (no answer: the connection went first). */
  readonly statuses: Record<string, number>;
  readonly sent: number;
  readonly faults: readonly Fault[];
  readonly injected: Record<string, number>;
  readonly checks: Record<string, number>;
  readonly simulatedMs: number;
  readonly events: number;
  readonly traceHash: string;
  readonly timeline: readonly string[];
  readonly logTail: readonly string[];
}

/**
 * The fault a request lost at or after `since` is named after: the last kill
 * among the faults since then, else the last fault. A kill is what loses a
 * request; a signal sent a moment after one (a TTOU to the restarted
 * arbiter) is not its cause.
 */
export function blame<F extends { readonly at: number; readonly text: string }>(recent: readonly F[], since: number): F | null {
  const near = recent.filter((f) => f.at >= since);
  return near.findLast((f) => f.text.startsWith('kill-')) ?? near.at(-1) ?? null;
}

/** The faults of `seed` that apply to `d`. */
export function appFaults(d: Deployment, seed: bigint, durationMs: number): Fault[] {
  const lanes = d.resolved.lanes;
  const companions = d.companions.size > 0;
  const out: Fault[] = [];
  for (const f of generate(seed, { name: 'mixed', durationMs }).faults) {
    const kind = f.kind in APPLY ? APPLY[f.kind]! : f.kind;
    if (kind === null) continue;
    if (kind === 'kill-slow-worker' && !lanes) continue;
    if ((kind === 'kill-companion' || kind === 'kill-manager' || kind === 'stall-manager' || kind === 'ctl') && !companions) continue;
    out.push({ ...f, kind });
  }
  return out;
}

export async function runApp(
  d: Deployment,
  seed: bigint,
  opts: { durationMs: number; record?: boolean; faults?: readonly Fault[]; /** Planted drover bugs (tests of the checkers only). */ defects?: readonly Defect[] },
): Promise<AppRunReport> {
  const faults = opts.faults ?? appFaults(d, seed, opts.durationMs);
  const cfg = d.resolved;
  const maxStop = Math.max(0, ...[...d.companions.values()].map((c) => c.stopTimeoutMs));
  let driverPid = -1;
  const checker: Checker = new Checker(
    () => k.now(),
    {
      orphan: (p) => (p === 'worker' || p === 'slow-worker' ? 2000 : maxStop + 2000),
      drainMs: cfg.graceful_timeout + 3000,
      managerSilentMs: (cfg.timeout > 0 ? cfg.timeout : 30_000) + 1100,
      managerTickMs: 1100,
      policies: new Map([...d.companions].map(([name, c]) => [name, { autorestart: c.autorestart, exitcodes: c.exitcodes }])),
    },
    () => driverPid,
  );
  const k: Kernel = new Kernel({
    seed,
    programs: [...runtimePrograms, standIns(), programs(import.meta.url, { 'app-driver': driver })],
    record: opts.record === true,
    mounts: { [MOUNT]: d.root },
    // The user's app and companions run their top level in each process that imports them, as under drover.
    isolate: true,
    // An import holds the simulated clock, so its time is the host's: a module still loading after the
    // boot deadline drover gives a worker (`timeout`; 30 s when it is 0, as drover --check-config says)
    // would not have booted under drover either. It then fails as a load error of the app (never finished
    // loading), and the run ends as for any app that cannot load, rather than waiting on the host for good.
    loadLimit: { ms: cfg.timeout > 0 ? cfg.timeout : 30_000, what: 'the timeout setting' },
    hooks: checker.hooks((pid) => k.burning(pid), opts.defects ?? [], {
      appCalled: (pid, req, res) => {
        const id = Number(unmark(req, SIM_REQUEST));
        const p = pending.get(id);
        if (p !== undefined) p.app = { pid, at: k.now(), res };
      },
      appLoadFailed: (pid, message) => {
        lastLoadFailure = k.now();
        find({ kind: 'load', at: k.now(), where: `worker ${pid}`, text: message });
      },
      notSimulated: (pid, what, caller) => find({ kind: 'not-simulated', at: k.now(), where: `${caller} called ${what}()`, text: `in process ${pid}, refused with ERR_DROVER_NOT_SIMULATED` }),
      appLoading: (pid, loading) => void (loading ? loadingApp.add(pid) : loadingApp.delete(pid)),
      // A boot given up while the worker was in the app's import or factory is the app's (a factory awaiting
      // what never comes): drover backs off and tries again, and the count stays short for the app's reason.
      // One that hung in drover's own boot code is not excused: convergence says so.
      bootTimedOut: (_arbiter, pid, message) => {
        if (!loadingApp.has(pid)) return;
        lastLoadFailure = k.now();
        find({ kind: 'load', at: k.now(), where: `worker ${pid}`, text: message.replace(/^worker \d+ /, '') });
      },
    }),
  });
  const injected: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  const counts = noFindings();
  const findings: Finding[] = [];
  const places: Record<string, number> = {};
  const find = (f: Finding) => {
    counts[f.kind]++;
    const key = `${f.kind}\t${placeOf(f)}`;
    places[key] = (places[key] ?? 0) + 1;
    if (findings.length < KEEP) findings.push(f);
  };
  const timeline: string[] = [];
  /** Requests sent; each one's id is its number. */
  let sent = 0;
  let done = false;
  /** When a worker last failed to load the app (appLoadFailed, or its boot timed out in the app's load), or -1. */
  let lastLoadFailure = -1;
  /** Workers in the app's import or factory now (appLoading). */
  const loadingApp = new Set<number>();
  /** drover stopped because the app cannot load (an arbiter exited with a boot code after a load failure): the run ends. */
  let halted = false;
  /** Requests without an end, by id: what was sent, and where and when the app was handed it (appCalled). */
  const pending = new Map<number, { route: string; at: number; app?: { pid: number; at: number; res: { readonly writableEnded: boolean } } }>();
  /** Faults of the last few seconds, to name the one a lost request followed. */
  const recent: { at: number; text: string }[] = [];

  async function driver(os: Os): Promise<void> {
    driverPid = os.pid;
    const note = (text: string) => timeline.push(`${os.now()} driver ${text}`);
    for (const dir of ['/srv', '/run/drover', '/var/log']) os.fs.mkdir(dir, { recursive: true });
    os.fs.writeFile(SIM_CONFIG, JSON.stringify(d.config));
    os.fs.writeFile(SIM_LOG, '');
    // A spare (spare_workers) is not a worker until it is given work: it sets its title then.
    const live = (program: string) => k.processes().filter((p) => p.program === program && p.state === 'running' && !stillSpare(p.args, p.title));
    const service = new Service(os, k, {
      args: ['--config', SIM_CONFIG], env: { DROVER_SIM: '1' }, tree: TREE, goneMs: maxStop + 6000, note,
    });

    // ---- load: the mix, open loop, kept-alive connections (load.ts)
    const pool = new KeptAlive();
    const keepShare = os.random();
    const send = () => {
      const id = ++sent;
      const r = pickRequest(d.mix, os.random());
      const route = `${r.method} ${r.path}`;
      const slot = os.random() < keepShare ? pool.free() : -1;
      const keep = slot >= 0;
      const connect = () => new Conn(os.connect(SIM_ADDR), (what) => checker.fail('answers', `a connection carried ${what}`), (ms, fn) => void os.timer(ms, fn));
      const conn = keep ? pool.at(slot, connect) : connect();
      const at = os.now();
      pending.set(id, { route, at });
      const headers = `${Object.entries(r.headers).map(([h, v]) => `${h}: ${v}\r\n`).join('')}${SIM_REQUEST}: ${id}\r\n`;
      conn.request(r.method, r.path, headers, r.body === null ? null : Buffer.from(r.body), keep, {
        end: (o: Outcome) => {
          if (!pending.delete(id)) return;
          checker.counts.answers++;
          if ('reset' in o) {
            statuses.lost = (statuses.lost ?? 0) + 1;
            // An exit in this very batch (the connection closed at once) is not seen by stopWhen yet.
            exitsNow();
            const near = blame(recent, at - 2000);
            find({
              kind: 'lost', at: os.now(), where: route, text: `sent at ${at} ms, no answer: ${o.reset}${near ? ` (after ${near.text} at ${near.at} ms)` : ''}`,
              ...(near ? { after: near.text } : {}),
            });
            return;
          }
          statuses[o.status] = (statuses[o.status] ?? 0) + 1;
          if (o.status >= 500) {
            find({ kind: '5xx', at: os.now(), where: route, text: `${o.status} ${JSON.stringify(o.body.toString('utf8', 0, 300))}` });
          }
        },
      });
    };
    let loading = true;
    openLoop(os, d.mix.rate, () => loading, send);

    // ---- faults: the nemesis of every chaos run, on what a deployment has
    const nemesis = new Nemesis(os, {
      k, service, socket: SIM_SOCK, note,
      victims: { 'kill-worker': ['worker'], 'kill-slow-worker': ['slow-worker'], 'kill-manager': ['companion-manager'], 'kill-companion': ['companion-module', STAND_IN] },
      names: [...d.companions.keys()],
    }, (f) => {
      injected[f.kind] = (injected[f.kind] ?? 0) + 1;
      recent.push({ at: os.now(), text: f.kind });
      while (recent[0]!.at < os.now() - 60_000) recent.shift();
    });
    await nemesis.run(faults, () => checker.violation !== null);
    if (os.now() < opts.durationMs) await os.sleep(opts.durationMs - os.now());
    loading = false;
    note('faults and load stop; settling');

    // ---- settle: every request has its end, the worker counts are within the config's
    const slowWanted = cfg.lanes ? cfg.slow_workers : 0;
    const settleFrom = os.now();
    const settled = () => {
      const fast = live('worker').length;
      return pending.size === 0 && fast >= cfg.min_workers && fast <= cfg.max_workers && live('slow-worker').length === slowWanted && live('arbiter').length === 1;
    };
    await settle(os, SETTLE_MS, settled, () => checker.violation !== null);
    // A request the app was handed and never ended is the app's (request_timeout would have answered it);
    // it leaves the count, and a later close of its connection is not a loss.
    for (const [id, p] of pending) {
      if (p.app === undefined || p.app.res.writableEnded) continue;
      pending.delete(id);
      statuses.unanswered = (statuses.unanswered ?? 0) + 1;
      find({
        kind: 'unanswered', at: os.now(), where: p.route,
        text: `sent at ${p.at} ms, handed to the app in worker ${p.app.pid} at ${p.app.at} ms, never answered (${SETTLE_MS / 1000} s after the faults stopped; ` +
          `request_timeout is ${cfg.request_timeout > 0 ? `${cfg.request_timeout / 1000} s` : 'off'})`,
      });
    }
    // Workers that cannot load the app while drover tries to converge: the app's finding says why the count is short.
    // A factory that never finishes fails once a `timeout`, which may be longer than the settling: one still in it counts.
    const unloadable = lastLoadFailure >= settleFrom || (lastLoadFailure >= 0 && live('worker').some((p) => loadingApp.has(p.pid)));
    if (!checker.violation && !unloadable) {
      const lost = [...pending.values()];
      const said = lost.slice(0, 3).map((p) => `${p.route} sent at ${p.at} ms, ${p.app ? `ended by the app in worker ${p.app.pid} and never delivered` : 'never handed to the app'}`);
      checker.check('convergence', settled(), () =>
        `${SETTLE_MS / 1000} s after the faults stopped: ${live('arbiter').length} arbiter(s), ${live('worker').length} fast workers ` +
        `(expected ${cfg.min_workers}..${cfg.max_workers}), ${live('slow-worker').length} slow workers (expected ${slowWanted}), ${pending.size} request(s) without an end` +
        `${said.length > 0 ? ` (${said.join('; ')})` : ''}`);
      if (pending.size === 0) for (const a of live('arbiter')) checker.lanesIdle(a.pid, live('slow-worker').length);
    }

    // ---- TERM: everything stops within graceful_timeout and the companions' stop_timeout, nothing is left
    pool.closeAll();
    await service.stop(cfg.graceful_timeout + maxStop + 8000, (pid) => checker.stopping(pid));
    if (!checker.violation) checker.check('shutdown', service.tree().length === 0, () => `after TERM, still running: ${service.tree().map((p) => `${p.program} ${p.pid}`).join(', ')}`);
    done = true;
  }

  // ---- run
  const until = opts.durationMs + SETTLE_MS + cfg.graceful_timeout + maxStop + 60_000;
  k.spawn({ program: 'app-driver', args: [] });
  let seen = -1;
  let crashesSeen = 0;
  let exitsSeen = 0;
  await k.run({
    stopWhen: () => {
      for (; crashesSeen < k.faults.crashes.length; crashesSeen++) crashed(k.faults.crashes[crashesSeen]!);
      exitsNow();
      if (done || checker.violation) return true;
      if (k.changes === seen && k.now() < checker.due) return false;
      seen = k.changes;
      if (lastLoadFailure >= 0) {
        halted = k.processes().some((p) => p.program === 'arbiter' && p.state === 'zombie' && [EXIT_APP_LOAD, EXIT_BOOT].includes(k.exitStatus(p.pid)?.code ?? -1));
        if (halted) return true;
      }
      checker.table(k.processes());
      return checker.violation !== null;
    },
    until,
  });
  if (!done && !halted && !checker.violation) checker.fail('shutdown', `the run did not finish within ${until / 1000} simulated s`);

  function exitsNow(): void {
    for (; exitsSeen < k.faults.exits.length; exitsSeen++) exited(k.faults.exits[exitsSeen]!);
  }

  /** A worker's app code called process.exit(): the worker ends, and what it held is lost (named after it). A companion's may mean to. */
  function exited(e: AppExit): void {
    if (e.program !== 'worker' && e.program !== 'slow-worker') return;
    recent.push({ at: e.at, text: 'process.exit()' });
    find({ kind: 'exit', at: e.at, where: `${e.program} ${e.pid}`, text: `${e.program} exited ${e.code}: process.exit() called from ${e.site}` });
  }

  function crashed(c: Crash): void {
    const where = `${c.program} ${c.pid}`;
    // A failed assertion of drover's is a broken invariant, wherever it ran.
    if (c.message.startsWith(`${ASSERTION_ERROR}: `)) return checker.crash(c);
    // A crash of a process that runs none of the user's code is drover's; so is an error of drover's own code (net-guard.ts, droverOwn) where it does.
    if (c.own === true && c.program !== STAND_IN && c.program !== 'app-driver') return find({ kind: 'drover-crash', at: c.at, where, text: c.message });
    if (c.program !== 'worker' && c.program !== 'slow-worker' && c.program !== 'companion-module') {
      if (c.program !== STAND_IN && c.program !== 'app-driver') find({ kind: 'drover-crash', at: c.at, where, text: c.message });
      return;
    }
    find({ kind: c.rejection ? 'rejection' : 'crash', at: c.at, where, text: c.message });
  }

  let log = '';
  try {
    log = k.fs.readFile(SIM_LOG);
  } catch {
    // never written
  }
  // The manager's own words for a companion that outlived its stop_timeout (companions/state.ts, tick).
  for (const line of log.split('\n')) {
    const m = /companion (\S+): pid \d+ did not exit (.*) after (SIG\w+); killed it/.exec(line);
    if (m) find({ kind: 'stop-timeout', at: -1, where: `companion ${m[1]}`, text: `did not exit ${m[2]} after ${m[3]} (its stop_timeout); killed` });
  }
  // The kernel keeps a tail of stderr; say how much came before it.
  const stderr = (k.output.dropped.stderr > 0 ? `(${k.output.dropped.stderr} bytes of stderr before this were not kept)\n` : '') + k.output.stderr;
  const trace = k.trace();
  k.dispose();
  return {
    violation: checker.violation, findings, counts, places, statuses, sent, faults, injected, checks: checker.counts,
    simulatedMs: k.now(), events: k.events, traceHash: k.traceHash(),
    timeline: opts.record ? [...trace, ...timeline] : [...trace.slice(-30), ...timeline.slice(-10)],
    // drover's log, or what the processes said on stderr when it never got that far (a refused config).
    logTail: (log.trim() !== '' ? log : stderr).trimEnd().split('\n').slice(-25),
  };
}

/** Where a finding happened, as the report groups them: the route (and status, or the fault before a loss), or the program and the error. */
export function placeOf(f: Finding): string {
  if (f.kind === '5xx') return `${f.where} ${f.text.split(' ', 1)[0]}`;
  if (f.kind === 'unanswered' || f.kind === 'not-simulated') return f.where;
  if (f.kind === 'lost') return `${f.where}, ${f.after ? `after ${f.after}` : 'with no fault in the 2 s before'}`;
  return `${f.where.replace(/ \d+$/, '')}: ${f.text.split('\n', 1)[0]}`;
}

/** What a `command` companion becomes: a daemon that runs until stopped. */
function standIns(): ProgramRegistry {
  return programs(import.meta.url, {
    [STAND_IN]: async (os: Os) => {
      os.timer(1e9, () => {});
    },
  });
}
