// One chaos run: the scenario's topology as a drover config, the real
// arbiter, workers, slow lane and companion manager on the simulated kernel,
// a driver process that sends the load and injects the faults, and the
// checker watching every batch of events. Same seed, same run, same trace.
import { fileURLToPath } from 'node:url';
import { programs, type Os, type ProgramRegistry } from '../os/types.js';
import { ASSERTION_ERROR } from '../runtime/assert.js';
import { request as ctlRequest } from '../runtime/control/client.js';
import { plant, probe, type Defect } from '../runtime/probe.js';
import { runtimePrograms } from '../runtime/programs.js';
import { Kernel } from '../sim/index.js';
import { OS_FAULTS, type OsFault } from '../sim/faults.js';
import { Conn, type Outcome } from './client.js';
import { Checker, INVARIANTS, type Invariant, type Violation } from './invariants.js';
import { ledger } from './ledger.js';
import { Attackers } from './hostile.js';
import { describeFault, FAULT_KINDS, hostileSlotMs, type Fault, type FaultKind, type Scenario } from './scenario.js';

const CONFIG = '/srv/drover.json';
const SOCK = '/run/drover/ctl.sock';
const LOG = '/var/log/drover.log';
/** Written only where the kernel fails writes (the faults scenario): its write may fail too. */
const PIDFILE = '/run/drover/drover.pid';
/** drover's own programs: the kernel fails their calls (the driver and the chaos companions are the harness). */
const FAULTED = ['arbiter', 'worker', 'slow-worker', 'companion-manager', 'companion-module'];
const ADDR = { host: '127.0.0.1', port: 8000 };
const STOP_TIMEOUT_MS = 2000;
const GRACEFUL_MS = 5000;
const SETTLE_MS = 40_000;
const KEEP_ALIVE_MS = 2000;
const FAULT_GAP_MS = 100;
/** drover's `timeout` in every run, and the arbiter's loop tick that follows from it (min(1000, timeout / 4)). */
const TIMEOUT_MS = 2000;
const TICK_MS = 500;
/** Programs of a drover process tree (the driver and init are not). */
const TREE = new Set(['arbiter', 'worker', 'slow-worker', 'companion-manager', 'companion-module', 'chaos-companion', 'chaos-grandchild']);
const GOOD_VERSIONS = ['v1', 'v2', 'v3'];

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
/** The apps as the simulated drover sees them: a mount of src/chaos/apps, so no trace names the checkout's path. */
const APPS = '/srv/apps';
const appPath = (v: string) => `${APPS}/${v}${ext}`;

export interface RunOptions {
  /** Switch on planted defects for this run (tests of the checkers). */
  readonly defects?: readonly Defect[];
  /** Keep every trace line (for --trace). */
  readonly record?: boolean;
  /** Replace the scenario's fault schedule (shrinking). */
  readonly faults?: readonly Fault[];
}

export interface RunReport {
  readonly scenario: Scenario;
  readonly faults: readonly Fault[];
  readonly violation: Violation | null;
  readonly simulatedMs: number;
  readonly events: number;
  /**
   * The driver's faults by kind; with the kernel's faults on, also
   * `os:KIND` for each kind the scenario turned on (how often it fired) and
   * `path:PLACE:CODE` for each error path that ran (probe.errorPath), so
   * that they travel with a job's result as they are.
   */
  readonly injected: Record<string, number>;
  /** The kernel's faults: their rates, how often each fired, the error paths that ran; null when none was on. */
  readonly kernel: {
    readonly rates: Partial<Record<OsFault, number>>;
    readonly fired: Record<OsFault, number>;
    readonly paths: Record<string, number>;
    /**
     * The talking companions' lines as they came out: through the manager's
     * stdout (whole, however the pipes split them) and through its file
     * (whole, or cut where a write failed).
     */
    readonly talk: { readonly whole: number; readonly cut: number; readonly broken: readonly string[] };
  } | null;
  readonly checks: Record<Invariant, number>;
  readonly requests: { sent: number; ok: number; shed: number; badGateway: number; reset: number; left: number; hostile: number };
  readonly traceHash: string;
  /** Timeline: the driver's own lines (faults, restarts) merged with the kernel's trace when recorded, else its last lines. */
  readonly timeline: readonly string[];
  /** The tail of drover's error log. */
  readonly logTail: readonly string[];
}

interface Cfg {
  version: string;
  workers: number;
  min: number;
  max: number;
  slowWorkers: number;
  broken: 'config' | 'app' | null;
}

export async function runScenario(s: Scenario, opts: RunOptions = {}): Promise<RunReport> {
  const faults = opts.faults ?? s.faults;
  const topo = s.topology;
  const osFaulty = Object.values(s.osFaults).some((r) => (r ?? 0) > 0);
  /** Error paths that ran, "place:code" (probe.errorPath). */
  const paths: Record<string, number> = {};
  const pathRan = (key: string) => void (paths[key] = (paths[key] ?? 0) + 1);
  const k: Kernel = new Kernel({
    seed: s.seed,
    programs: [runtimePrograms, chaosPrograms(), driverRegistry()],
    record: opts.record === true,
    mounts: { [APPS]: fileURLToPath(new URL('./apps', import.meta.url)) },
    ...(osFaulty ? { faults: { rates: s.osFaults, programs: FAULTED } } : {}),
  });
  let driverPid = -1;
  // The max_workers of the good config that last named each app (the driver's writes; apps alternate, see writeGood).
  const maxByApp = new Map<string, number>();
  const checker = new Checker(
    () => k.now(),
    {
      orphan: (p) => (p === 'worker' || p === 'slow-worker' ? 2000 : STOP_TIMEOUT_MS + 2000),
      maxWorkers: (app) => maxByApp.get(app) ?? null,
      // A drained surplus worker gets graceful_timeout, then KILL a second later, seen at the next tick (≤ 1 s).
      drainMs: GRACEFUL_MS + 3000,
      // Hostile runs have no stalled workers, so a slot's hold has a bound.
      ...(topo.clients !== null && hostileSlotMs(topo, s.load) !== null ? { slotMs: hostileSlotMs(topo, s.load)! } : {}),
      // The app answers /f at once: whatever its clients do, it is never slow.
      fastRoutes: new Set(['GET /f', 'POST /f']),
      // A stopped manager's last beat came before it stopped; the arbiter sees the silence at a tick, and a
      // beat in flight may land a little after the stop. A new one is started at the first tick after the backoff.
      managerSilentMs: TIMEOUT_MS + TICK_MS + 100,
      managerTickMs: TICK_MS + 100,
      policies: new Map(topo.oneShots.map((j) => [j.name, { autorestart: j.autorestart, exitcodes: j.exitcodes }])),
    },
    () => driverPid,
  );
  const injected = Object.fromEntries(FAULT_KINDS.map((f) => [f, 0])) as Record<FaultKind, number>;
  const req = { sent: 0, ok: 0, shed: 0, badGateway: 0, reset: 0, left: 0, hostile: 0 };
  const timeline: string[] = [];
  let done = false;

  function driverRegistry(): ProgramRegistry {
    return programs(import.meta.url, { 'chaos-driver': driver });
  }

  function configText(c: Cfg): string {
    const base: Record<string, unknown> = {
      app: c.broken === 'app' ? appPath('broken') : appPath(c.version),
      bind: ['127.0.0.1:8000'],
      workers: c.workers,
      min_workers: c.min,
      max_workers: c.max,
      timeout: TIMEOUT_MS / 1000,
      graceful_timeout: GRACEFUL_MS / 1000,
      keep_alive: KEEP_ALIVE_MS / 1000,
      lanes: true,
      slow_threshold: 0.1,
      slow_workers: c.slowWorkers,
      slow_concurrency: topo.slowConcurrency,
      slow_queue: topo.slowQueue,
      queue_timeout: topo.queueTimeoutMs / 1000,
      control_socket: SOCK,
      error_log: LOG,
      ...(osFaulty ? { pid: PIDFILE } : {}),
      companion_stop_timeout: STOP_TIMEOUT_MS / 1000,
      companion_startsecs: 0.5,
      companion_restart_delay: 1,
      companions: [
        // With the kernel's faults on, the companions talk (through pipes the kernel splits), the first into a file (whose writes fail).
        ...topo.companions.map((p, i) => ({
          name: p.name, command: ['chaos-companion', p.name, p.behaviour, ...(osFaulty ? ['talk'] : [])],
          ...(osFaulty && i === 0 ? { stdout: companionLog(p.name) } : {}),
        })),
        ...topo.oneShots.map((j) => ({
          name: j.name, command: ['chaos-companion', j.name, 'one-shot', j.codes.join(','), String(j.runMs[0]), String(j.runMs[1])],
          autorestart: j.autorestart, exitcodes: j.exitcodes,
        })),
      ],
    };
    if (topo.clients !== null) {
      base.client_header_timeout = topo.clients.header / 1000;
      base.client_body_timeout = topo.clients.body / 1000;
      base.send_timeout = topo.clients.send / 1000;
    }
    if (c.broken === 'config') base.keep_alive = 'two seconds'; // refused: the whole file is
    return JSON.stringify(base);
  }

  async function driver(os: Os): Promise<void> {
    driverPid = os.pid;
    const note = (text: string) => timeline.push(`${os.now()} driver ${text}`);
    for (const d of ['/srv', '/run/drover', '/var/log']) os.fs.mkdir(d, { recursive: true });
    let good: Cfg = { version: 'v1', workers: topo.workers, min: topo.minWorkers, max: topo.maxWorkers, slowWorkers: topo.slowWorkers, broken: null };
    const seen = new Set<string>(['v1']); // versions a good config has named
    maxByApp.set(appPath(good.version), good.max);
    os.fs.writeFile(CONFIG, configText(good));
    os.fs.writeFile(LOG, '');
    const live = (program: string) => k.processes().filter((p) => p.program === program && p.state === 'running');
    const tree = () => k.processes().filter((p) => TREE.has(p.program) && p.state !== 'zombie');
    let arbiter = os.spawn({ program: 'arbiter', args: ['--config', CONFIG], channel: false });
    note(`spawned arbiter ${arbiter.pid}`);
    const reapArbiter = () => {
      try {
        os.waitpid(arbiter.pid);
      } catch {
        // reaped already
      }
    };
    const pick = <T>(xs: readonly T[], n: number): T | undefined => (xs.length === 0 ? undefined : xs[n % xs.length]);
    /** Managers this driver stopped (stall-manager). */
    const stalled = new Set<number>();
    const kill = (pid: number, sig: Parameters<Os['kill']>[1]) => {
      try {
        os.kill(pid, sig);
      } catch {
        // gone already
      }
    };

    // ---- load: open loop, each request checked on its own
    // Kept-alive connections, one request at a time each; when all are busy a
    // request opens its own (as a browser does), so the client never queues
    // on its side: an open loop must not turn into a closed one.
    const pool: (Conn | null)[] = Array.from({ length: 8 }, (): Conn | null => null);
    let n = 0;
    // What the report of a request that never ended says; built only then.
    // `before`: the request sent before it on its kept-alive connection
    // (null: none; undefined: not kept alive), dropped once this one ends.
    type Sent = { readonly id: string; readonly at: number; readonly path: string; readonly pause: number; before: Sent | null | undefined; on: number; status: number; began: number; end: string };
    const describe = (r: Sent) =>
      `${r.id} sent at ${r.at} ms: GET ${r.path}` +
      (r.before === undefined ? '' : ` (keep-alive, after ${r.before === null ? 'none' : `${r.before.id}, which ended ${r.before.end || 'never'}`})`) +
      (r.pause > 0 ? ` (reads after ${r.pause} ms)` : '') +
      (r.on >= 0 ? `, on a connection at ${r.on} ms` : '') +
      (r.began >= 0 ? `, answer ${r.status} began at ${r.began} ms` : '');
    const pending = new Map<string, Sent>(); // in the order sent: the first is the oldest
    let lastAnswer = 0; // when any request last got an answer (serving-through-faults)
    const lastOn: Sent[] = []; // per pooled connection, the request sent on it last
    const connect = (after: () => string) =>
      new Conn(os.connect(ADDR), (what) => checker.fail('answers', `a connection (its last request ${after()}) carried ${what}`), (ms, fn) => void os.timer(ms, fn));
    const send = () => {
      const id = `r${++n}`;
      const slow = os.random() < s.load.slowShare;
      const ms = s.load.slowMsMin + Math.floor(os.random() * (s.load.slowMsMax - s.load.slowMsMin + 1));
      const kb = os.random() < s.load.bigShare ? 64 * (1 + Math.floor(os.random() * 16)) : 0;
      const pause = os.random() < s.load.slowReaderShare ? 100 + Math.floor(os.random() * 1900) : 0;
      const path = (slow ? `/s?id=${id}&ms=${ms}` : `/f?id=${id}`) + (kb > 0 ? `&kb=${kb}` : '');
      const wantKeep = os.random() < s.load.keepAliveShare;
      // A slot is free when its connection is idle, or done with nothing in flight (a closing one finishes its answer first).
      const slot = wantKeep ? pool.findIndex((c) => c === null || c.idle || (c.done && !c.busy)) : -1;
      const keep = slot >= 0;
      const leave = os.random() < s.load.leaveShare && !keep ? Math.floor(os.random() * 500) : -1;
      req.sent++;
      const sent: Sent = { id, at: os.now(), path, pause, before: keep ? (lastOn[slot] ?? null) : undefined, on: -1, status: 0, began: -1, end: '' };
      if (keep) lastOn[slot] = sent;
      pending.set(id, sent);
      let conn: Conn;
      if (keep) {
        const c = pool[slot]!;
        conn = c !== null && c.idle ? c : (pool[slot] = connect(() => lastOn[slot]!.id));
      } else conn = connect(() => id);
      let settled = false;
      const end = (how: 'ok' | 'shed' | 'badGateway' | 'reset' | 'left') => {
        if (settled) return;
        settled = true;
        if (how === 'ok' || how === 'shed' || how === 'badGateway') lastAnswer = os.now();
        pending.delete(id);
        sent.end = `${how} at ${os.now()} ms`;
        sent.before = sent.before && null; // keeps no chain of ended requests alive
        req[how]++;
      };
      conn.get(path, keep, {
        sent: () => (sent.on = os.now()),
        head: (status) => {
          sent.status = status;
          sent.began = os.now();
        },
        end: (o: Outcome) => {
          if (settled) return;
          if ('reset' in o) return end('reset');
          checker.counts.answers++;
          const start = o.body.toString('utf8', 0, 80);
          if (o.status === 200) {
            const [rid, version] = start.split(' ');
            checker.check('answers', rid === id, () => `request ${id} got the answer of ${JSON.stringify(start.slice(0, 60))}`);
            checker.check('answers', o.body.length >= kb * 1024, () => `request ${id} got ${o.body.length} bytes of an answer of more than ${kb * 1024}`);
            checker.check('broken-reload', seen.has(version ?? ''), () => `request ${id} was answered by app ${version}, which no good config named (a broken reload took effect)`);
            end('ok');
          } else if (o.status === 503) end('shed');
          else if (o.status === 502) end('badGateway');
          else {
            checker.fail('answers', `request ${id} got status ${o.status}: ${start}`);
            end('reset');
          }
        },
      }, pause);
      if (leave >= 0) {
        os.timer(leave, () => {
          if (settled) return;
          end('left');
          conn.destroy();
        });
      }
    };
    let loading = s.load.rate > 0; // a rate of 0: no load (bench/sim's idle row)
    void (async () => {
      while (loading) {
        await os.sleep(Math.max(1, Math.round((-Math.log(1 - os.random()) * 1000) / s.load.rate)));
        if (loading) send();
      }
    })();
    // ---- hostile clients, beside the load (hostile.ts)
    const clients = topo.clients;
    const attackers = clients === null ? null : new Attackers({
      os, addr: ADDR,
      limits: { ...clients, keepAlive: KEEP_ALIVE_MS, queue: topo.queueTimeoutMs },
      slotMs: hostileSlotMs(topo, s.load) ?? 3 * s.load.slowMsMax,
      slackMs: Math.min(1000, Math.floor(Math.min(clients.header, clients.body, clients.send) / 4)) + 2 * s.load.slowMsMax + 1000,
      check: (ok, message) => checker.check('client-deadline', ok, message),
      note,
    });
    let attacking = attackers !== null && s.load.attacks > 0;
    void (async () => {
      while (attacking) {
        await os.sleep(Math.max(1, Math.round((-Math.log(1 - os.random()) * 1000) / s.load.attacks)));
        if (!attacking) break;
        attackers!.launch(Math.floor(os.random() * 1e6), Math.floor(os.random() * 1e6));
        req.hostile++;
      }
    })();

    // ---- faults
    const ctl = (r: object) => ctlRequest(os, SOCK, r as never, 10_000).catch(() => null);
    let restarting = false;
    const restart = async (why: string) => {
      restarting = true;
      // The whole old tree must go first (systemd waits for the cgroup to empty); the checker times the orphans.
      const deadline = os.now() + STOP_TIMEOUT_MS + 4000;
      while (tree().length > 0 && os.now() < deadline) await os.sleep(100);
      reapArbiter();
      if (good.broken === null) os.fs.writeFile(CONFIG, configText(good));
      arbiter = os.spawn({ program: 'arbiter', args: ['--config', CONFIG], channel: false });
      // As a service manager does: no signal before the process has started
      // at all (Node's own boot has no handlers; the arbiter queues signals
      // from its first line on).
      await os.sleep(1);
      restarting = false;
      note(`restarted arbiter as ${arbiter.pid} (${why})`);
    };
    // With the kernel's faults on, an arbiter may refuse to start (its
    // pidfile cannot be written): the driver starts it again, as systemd's
    // Restart=on-failure would, until the TERM at the end.
    let terminating = false;
    if (osFaulty) {
      void (async () => {
        while (!terminating) {
          await os.sleep(100);
          const st = k.exitStatus(arbiter.pid);
          if (terminating || restarting || st === undefined) continue;
          await restart(`it exited with ${st.signal ?? `code ${st.code}`}; restarted as Restart=on-failure does`);
        }
      })();
      // serving-through-faults, a look every quarter second until the TERM (requests sent last must be answered too).
      void (async () => {
        while (!terminating && !checker.violation) {
          await os.sleep(250);
          const oldest = pending.values().next();
          if (!terminating) checker.serving(oldest.done ? null : oldest.value.at, lastAnswer, () => (oldest.done ? '' : describe(oldest.value)));
        }
      })();
    }
    const writeGood = (f: Fault) => {
      const versions = GOOD_VERSIONS.filter((v) => v !== good.version);
      const workers = 1 + (f.pick % 4);
      const scaling = topo.minWorkers < topo.maxWorkers;
      good = {
        version: versions[(f.pick >>> 4) % versions.length]!, workers, min: scaling ? Math.max(1, workers - 1) : workers,
        max: scaling ? workers + 1 : workers, slowWorkers: 1 + ((f.pick >>> 8) % 2), broken: null,
      };
      seen.add(good.version);
      maxByApp.set(appPath(good.version), good.max);
      os.fs.writeFile(CONFIG, configText(good));
    };
    const inject = async (f: Fault) => {
      injected[f.kind]++;
      note(`fault ${describeFault(f)}`);
      switch (f.kind) {
        case 'kill-worker':
        case 'kill-slow-worker':
        case 'kill-manager':
        case 'kill-companion': {
          const program = { 'kill-worker': 'worker', 'kill-slow-worker': 'slow-worker', 'kill-manager': 'companion-manager', 'kill-companion': 'chaos-companion' }[f.kind];
          const p = pick(live(program), f.pick);
          if (p) kill(p.pid, 'SIGKILL');
          return;
        }
        case 'kill-arbiter': {
          // A manager we stopped cannot act on its parent-death TERM until it
          // is continued (on Linux too), and the simulator has no SIGCONT: we
          // end our own stall first, the only way the simulator has, and give
          // the arbiter a fault's gap to reap it and kill its companions'
          // groups, as it does for any manager that dies (killed in one
          // millisecond with the arbiter, a forked grandchild would be left
          // to nobody: seed 0x2b of parent-death; see FAULT_GAP_MS).
          const ended = k.processes().filter((p) => stalled.has(p.pid) && p.state === 'stopped');
          for (const p of ended) {
            kill(p.pid, 'SIGKILL');
            note(`ended the stall of manager ${p.pid} before killing its arbiter`);
          }
          if (ended.length > 0) await os.sleep(FAULT_GAP_MS);
          kill(arbiter.pid, 'SIGKILL');
          return restart('after its SIGKILL');
        }
        case 'hup':
          return kill(arbiter.pid, 'SIGHUP');
        case 'hup-changed':
          writeGood(f);
          return kill(arbiter.pid, 'SIGHUP');
        case 'hup-broken-config':
        case 'hup-broken-app': {
          // Another app and a worker count outside the good config's range: a half-applied reload shows.
          const workers = good.max + 1 + (f.pick % 2);
          os.fs.writeFile(CONFIG, configText({ ...good, version: 'v9', workers, min: workers, max: workers, broken: f.kind === 'hup-broken-app' ? 'app' : 'config' }));
          kill(arbiter.pid, 'SIGHUP');
          // The next good write puts a good file back; a restart restores it too.
          return;
        }
        case 'ttin':
          return kill(arbiter.pid, 'SIGTTIN');
        case 'ttou':
          return kill(arbiter.pid, 'SIGTTOU');
        case 'ctl': {
          const name = pick([...topo.companions, ...topo.oneShots], f.pick)?.name ?? 'none';
          const cmds = [{ cmd: 'status' }, { cmd: 'stats' }, { cmd: 'restart', name }, { cmd: 'stop', name }, { cmd: 'start', name }];
          await ctl(cmds[(f.pick >>> 3) % cmds.length]!);
          return;
        }
        case 'ctl-malformed': {
          const junk = ['{"cmd":\n', 'not json at all\n', `${'x'.repeat(70_000)}\n`, '{"cmd":"stop"}\n'][f.pick % 4]!;
          try {
            const sock = await os.connect({ path: SOCK });
            sock.on('error', () => {});
            sock.end(junk);
            os.timer(2000, () => sock.destroy());
          } catch {
            // no control socket right now (a restart)
          }
          return;
        }
        case 'stall-worker': {
          connect(() => `hang${f.pick}`).get(`/hang?id=hang${f.pick}`, false, { end: () => {} });
          return;
        }
        case 'stall-manager': {
          // SIGSTOP, never continued. The simulator has neither SIGSTOP nor
          // SIGCONT: SIGTTIN, which the manager does not handle, stops it the
          // same way (its default action). The arbiter must hear the silence.
          const p = pick(live('companion-manager'), f.pick);
          if (!p) return;
          kill(p.pid, 'SIGTTIN');
          stalled.add(p.pid);
          return;
        }
      }
    };
    // Faults due while the driver was busy (a restart waits for the old tree
    // to go) are spread out again, FAULT_GAP_MS apart: independent faults do
    // not land in one millisecond, and three KILLs at once (a companion, its
    // manager, the arbiter) leave no drover process alive to reap and clean
    // up after the first (seed 123 before this rule: an artefact of the
    // driver, not of drover).
    let last = -Infinity;
    for (const f of faults) {
      if (checker.violation) break;
      const at = Math.max(f.at, last + FAULT_GAP_MS);
      if (at > os.now()) await os.sleep(at - os.now());
      last = os.now();
      await inject(f);
    }
    if (os.now() < s.durationMs) await os.sleep(s.durationMs - os.now());
    loading = false;
    attacking = false;
    note('faults and load stop; settling');

    // ---- settle: the counts reach the good config's, every request has its end
    const expectFast = (c: number) => (good.min === good.max ? c === good.workers : c >= good.min && c <= good.max);
    const settled = () =>
      pending.size === 0 && expectFast(live('worker').length) && live('slow-worker').length === good.slowWorkers && live('arbiter').length === 1;
    // An arbiter may be gone or stopped (a signal that came before its handlers did): say so.
    const arbiters = () => k.processes().filter((p) => p.program === 'arbiter' && p.state !== 'zombie').map((p) => `${p.pid} ${p.state}`).join(', ') || 'none';
    const settleEnd = os.now() + SETTLE_MS;
    let stableSince = -1;
    while (os.now() < settleEnd && !checker.violation) {
      if (settled()) {
        if (stableSince < 0) stableSince = os.now();
        if (os.now() - stableSince >= 3000) break;
      } else stableSince = -1;
      await os.sleep(250);
    }
    if (!checker.violation) {
      checker.check('convergence', settled(), () =>
        `${SETTLE_MS / 1000} s after the faults stopped: arbiter ${arbiters()}, ${live('worker').length} fast workers (expected ${good.min === good.max ? good.workers : `${good.min}..${good.max}`}), ` +
        `${live('slow-worker').length} slow workers (expected ${good.slowWorkers}), ${pending.size} request(s) without an end (${[...pending.values()].slice(0, 3).map(describe).join('; ')})`);
      for (const id of ledgerIds(n)) checker.check('answers', ledger.times(id) <= 1, () => `request ${id} was run ${ledger.times(id)} times`);
      if (pending.size === 0) for (const a of live('arbiter')) checker.lanesIdle(a.pid, live('slow-worker').length);
    }

    // ---- TERM: everything stops, nothing is left
    for (const c of pool) c?.destroy();
    attackers?.closeAll(); // what is still open has had its deadline checked, or is within it
    while (restarting) await os.sleep(50); // the TERM goes to the arbiter that runs
    note('TERM');
    terminating = true;
    checker.stopping(arbiter.pid);
    kill(arbiter.pid, 'SIGTERM');
    const stopEnd = os.now() + GRACEFUL_MS + STOP_TIMEOUT_MS + 8000;
    while (tree().length > 0 && os.now() < stopEnd) await os.sleep(100);
    reapArbiter();
    if (!checker.violation) checker.check('shutdown', tree().length === 0, () => `after TERM, still running: ${tree().map((p) => `${p.program} ${p.pid}`).join(', ')}`);
    done = true;
  }

  // ---- run
  ledger.reset();
  plant(opts.defects ?? []);
  probe.transition = (name, from, to, cause) => checker.transition(name, from, to, cause);
  probe.lane = (a, g, s, limit) => checker.lane(a, g, s, limit);
  probe.laneClosed = (a, g) => checker.laneClosed(a, g);
  probe.laneAssigned = (g, pid, running) => checker.laneAssigned(g, pid, running, k.burning(pid));
  probe.laneHeld = (g, ms) => checker.laneHeld(g, ms);
  probe.route = (route, slow, avgMs) => checker.route(route, slow, avgMs);
  probe.managerGone = (arbiter, pid, ms) => checker.managerGone(arbiter, pid, ms);
  probe.assertion = (message) => checker.assertion(message);
  probe.errorPath = (path, code) => pathRan(`${path}:${code}`);
  probe.spawnFailed = (parent, program, ms) => checker.spawnFailed(parent, program, ms);
  if (osFaulty) {
    // The manager's own spawn failures come back as its state machine's 'spawn-failed' input; in a chaos run the only refusal is EAGAIN.
    probe.transition = (name, from, to, cause) => {
      if (cause === 'spawn-failed') pathRan('companion-spawn:EAGAIN');
      checker.transition(name, from, to, cause);
    };
  }
  // Programs by pid, as the table showed them: a crashed process may be reaped before its assertion is named.
  const programOf = new Map<number, string>();
  /** The process whose crash line carries this AssertionError, as the kernel traced it. */
  const asserted = (message: string): string => {
    const crash = ` crash ${ASSERTION_ERROR}: ${message}`;
    const lines = k.trace();
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!;
      if (!line.endsWith(crash)) continue;
      const pid = Number(line.split(' ', 2)[1]);
      const program = programOf.get(pid) ?? k.processes().find((p) => p.pid === pid)?.program ?? startedAs(lines, pid);
      return `${program} ${pid} crashed`;
    }
    // Thrown and caught inside the process (a catch-all turned it into a reply or a log line).
    return 'a simulated process swallowed it';
  };
  try {
    k.spawn({ program: 'chaos-driver', args: [] });
    // The table is looked at after every batch of events that changed it, and
    // when a deadline it holds comes due; in between it is the same table.
    let seen = -1;
    let crashesSeen = 0;
    let stderrSeen = 0;
    await k.run({
      stopWhen: () => {
        checker.assertions(asserted);
        if (k.faults.crashes.length > crashesSeen) {
          checker.crashes(k.faults.crashes, crashesSeen);
          crashesSeen = k.faults.crashes.length;
        }
        if (k.output.stderr.length !== stderrSeen) {
          stderrSeen = k.output.stderr.length;
          checker.logReports(k.output.stderr);
        }
        if (done || checker.violation) return true;
        if (k.changes === seen && k.now() < checker.due) return false;
        seen = k.changes;
        const procs = k.processes();
        for (const p of procs) programOf.set(p.pid, p.program);
        checker.counts['no-crash']++;
        checker.table(procs);
        return checker.violation !== null;
      },
      until: s.durationMs + SETTLE_MS + 60_000,
    });
    if (!done && !checker.violation) checker.fail('shutdown', `the run did not finish within ${(s.durationMs + SETTLE_MS + 60_000) / 1000} simulated s`);
  } finally {
    plant([]);
    probe.transition = undefined;
    probe.lane = undefined;
    probe.laneClosed = undefined;
    probe.laneAssigned = undefined;
    probe.laneHeld = undefined;
    probe.route = undefined;
    probe.managerGone = undefined;
    probe.assertion = undefined;
    probe.errorPath = undefined;
    probe.spawnFailed = undefined;
  }
  let logTail: string[] = [];
  try {
    logTail = k.fs.readFile(LOG).trimEnd().split('\n').slice(-25);
  } catch {
    // no log written
  }
  const talk = osFaulty ? talkLines(k, topo.companions[0]?.name ?? null) : null;
  if (talk !== null && checker.violation === null) checker.wholeLines(readOr(k, LOG), talk.broken);
  const trace = k.trace();
  k.dispose();
  const merged = opts.record ? [...trace, ...timeline].sort(byTime) : [...trace.slice(-40), ...timeline.slice(-10)].sort(byTime);
  const fired = { ...k.faults.fired };
  const all: Record<string, number> = { ...injected };
  if (osFaulty) {
    for (const kind of OS_FAULTS) if ((s.osFaults[kind] ?? 0) > 0) all[`os:${kind}`] = fired[kind];
    for (const [key, v] of Object.entries(paths)) all[`path:${key}`] = v;
  }
  return {
    scenario: s, faults, violation: checker.violation, simulatedMs: k.now(), events: k.events, injected: all, checks: checker.counts,
    requests: req, traceHash: k.traceHash(), timeline: merged, logTail,
    kernel: osFaulty ? { rates: s.osFaults, fired, paths, talk: talk! } : null,
  };
}

/** The program a trace's start line gives `pid` ("T PID start PROGRAM ARGS"), else 'process'. */
function startedAs(lines: readonly string[], pid: number): string {
  const head = ` ${pid} start `;
  for (const line of lines) {
    const at = line.indexOf(head);
    if (at >= 0 && at === line.indexOf(' ')) return line.slice(at + head.length).split(' ', 1)[0]!;
  }
  return 'process';
}

const byTime = (a: string, b: string) => Number(a.slice(0, a.indexOf(' '))) - Number(b.slice(0, b.indexOf(' ')));

function ledgerIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `r${i + 1}`);
}

/** What a talking companion says (see chaos-companion): each line whole, wherever the kernel split its bytes. */
export function talkLine(name: string, n: number): string {
  return `${name} says ${n}: é ✓ 𝄞\n`;
}

/**
 * Lines of the talking companions: on stdout each must be one whole line
 * ("NAME | " and what it said); in the first companion's file, a line may
 * also be a prefix of one (a write failed in it), never anything else.
 */
function talkLines(k: Kernel, filed: string | null): { whole: number; cut: number; broken: string[] } {
  const out = { whole: 0, cut: 0, broken: [] as string[] };
  const judge = (line: string, mayCut: boolean) => {
    // Its companion and number as far as they go (a cut may fall inside either), and what that line would be.
    const m = /^(c\d+)(?: says (\d*))?/.exec(line);
    const want = talkLine(m?.[1] ?? 'c0', Number(m?.[2] || 0)).slice(0, -1);
    if (want === line) out.whole++;
    else if (mayCut && want.startsWith(line.replace(/\ufffd+$/, ''))) out.cut++; // cut inside a character: its bytes decode as U+FFFD
    else if (out.broken.length < 5) out.broken.push(line);
  };
  for (const line of k.output.stdout.split('\n')) {
    const bar = line.indexOf(' | ');
    if (bar >= 0 && line.includes(' says ')) judge(line.slice(bar + 3), false);
  }
  if (filed !== null) {
    let text = '';
    try {
      text = k.fs.readFile(companionLog(filed));
    } catch {
      // never opened (the companion never started)
    }
    for (const line of text.split('\n')) if (line !== '') judge(line, true);
  }
  return out;
}

function readOr(k: Kernel, path: string): string {
  try {
    return k.fs.readFile(path);
  } catch {
    return '';
  }
}

/** The file a talking companion's output goes to, when it goes to one. */
export function companionLog(name: string): string {
  return `/var/log/companion-${name}.log`;
}

/** The companions' behaviours, and a grandchild that ignores TERM. */
function chaosPrograms(): ProgramRegistry {
  return programs(import.meta.url, {
    'chaos-companion': async (os: Os, args) => {
      const behaviour = args[1];
      if (args[2] === 'talk') {
        // A line every 0.2 to 0.7 s, with characters of 2, 3 and 4 bytes for a split read to fall inside.
        let n = 0;
        const talk = () => {
          os.stdout.write(talkLine(args[0]!, ++n));
          os.timer(200 + Math.floor(os.random() * 500), talk).unref();
        };
        talk();
      }
      if (behaviour === 'one-shot') {
        // one-shot CODES LO HI: a job of LO..HI ms that exits with one of CODES.
        const codes = args[2]!.split(',').map(Number);
        const [lo, hi] = [Number(args[3]), Number(args[4])];
        await os.sleep(lo + Math.floor(os.random() * (hi - lo + 1)));
        os.exit(codes[Math.floor(os.random() * codes.length)]!);
      }
      if (behaviour === 'ignores-term' || behaviour === 'forks') os.onSignal('SIGTERM', () => {});
      if (behaviour === 'forks') os.spawn({ command: ['chaos-grandchild'] });
      if (behaviour === 'slow-start') await os.sleep(800);
      if (behaviour === 'crashing') {
        await os.sleep(300 + Math.floor(os.random() * 3000));
        os.exit(1);
      }
      os.timer(1e9, () => {});
    },
    'chaos-grandchild': async (os: Os) => {
      os.onSignal('SIGTERM', () => {});
      os.timer(1e9, () => {});
    },
  });
}

export { INVARIANTS };
