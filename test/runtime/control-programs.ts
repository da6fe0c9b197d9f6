// Programs for the control socket tests, run in the simulator and as real
// processes: a server with a fake companion manager behind serveControl, and
// `drover ctl` itself. They use nothing but their Os.
import { programs, type Os } from '../../src/os/types.js';
import { ctl } from '../../src/runtime/control/ctl.js';
import type { CompanionState, CompanionStatus, Reply, Request } from '../../src/runtime/control/protocol.js';
import type { LanesReport } from '../../src/runtime/lanes/report.js';
import { serveControl, type Handler } from '../../src/runtime/control/server.js';
import { Kernel } from '../../src/sim/index.js';
import { inbox, reap } from '../support/os.js';

/** What the fake answers to stats: a serving generation with lanes and a draining one without. */
export const FAKE_STATS: LanesReport = {
  lanes: true,
  spares: { ready: { fast: 0, slow: 0 }, wanted: { fast: 0, slow: 0 } },
  processes: [
    { pid: 101, role: 'fast', generation: 2, state: 'serving', rss: 52_428_800, served: 120, inflight: 1, elu: 0.25, uptimeMs: 65_000 },
    { pid: 102, role: 'slow', generation: 2, state: 'serving', rss: 61_865_984, served: 7, inflight: 0, elu: 0.5, uptimeMs: 64_000 },
  ],
  slowThresholdMs: 500,
  generations: [
    {
      generation: 3,
      fast: { workers: 4, servedFast: 10234, servedSlow: 120 },
      slow: {
        workers: 2, queued: 3, running: 4, free: 0, shed: { full: 5, timeout: 1, noWorkers: 0 },
        enqueued: 130, assigned: 127, completed: 120, failed: 2, cancelled: 1, requeued: 0, serviceMs: 812.4,
      },
    },
    { generation: 2, fast: { workers: 1, servedFast: 7, servedSlow: 0 }, slow: null },
  ],
  slowRoutes: [{ route: 'GET /users/:id/export', avgMs: 1240 }, { route: 'POST /import', avgMs: 640.6 }],
  hints: ['GET /reports/*'],
};

interface Fake {
  state: CompanionState;
  pid: number | null;
  started: number;
  exits: number;
}

/** The fake's scale bounds, as min_workers and max_workers. */
export const FAKE_MIN = 2;
export const FAKE_MAX = 8;

/**
 * A log that grows with time, numbered as the manager numbers lines:
 * `rate` lines every 100 ms from the fake's start, the newest `ring` kept.
 * Answers a tail request as the protocol says: without `after` the last
 * `lines`; with it those from `after` on (the newest `lines` when more),
 * and `dropped` for the ones left out.
 */
function growingTail(os: Os, t0: number, rate: number, ring: number, req: Extract<Request, { cmd: 'tail' }>): Reply {
  const next = Math.floor((os.now() - t0) / 100) * rate;
  const oldest = Math.max(0, next - ring);
  const start = req.after === undefined ? oldest : Math.min(Math.max(req.after, oldest), next);
  const from = Math.max(start, next - req.lines);
  const lines = Array.from({ length: next - from }, (_, i) => `${req.name} ${from + i}`);
  const dropped = req.after !== undefined && req.after < from ? from - req.after : 0;
  return { ok: true, name: req.name, stream: req.stream, lines, next, ...(dropped > 0 ? { dropped } : {}) };
}

/**
 * A manager's worth of answers over an in-memory table. Special names:
 * `boom` throws, `bad` returns no reply, `slow` takes 500 ms, `flaky` never
 * stays up (start ends in BACKOFF). tail: `ticker` grows a line every 100
 * ms, `burst` 30 (its ring keeps 40); other names answer as a manager from
 * before tail -f (no `next`). reload: generation 4, 5, ... after `ms` (0),
 * or fails with `error`, as the JSON in the file `reloadPlan` (if given and
 * there) says. scale: within FAKE_MIN..FAKE_MAX.
 */
export function fakeHandler(os: Os, calls: Request[] = [], reloadPlan?: string): Handler {
  const t0 = os.now();
  let generation = 3;
  let nextPid = 4000;
  const table = new Map<string, Fake>();
  const add = (name: string, state: CompanionState) =>
    table.set(name, { state, pid: state === 'RUNNING' ? nextPid++ : null, started: os.now(), exits: 0 });
  add('worker-queue', 'RUNNING');
  add('scheduler', 'RUNNING');
  add('mailer', 'STOPPED');
  add('flaky', 'BACKOFF');
  const status = (name: string, f: Fake): CompanionStatus => ({
    name,
    state: f.state,
    pid: f.pid,
    ...(f.pid === null ? {} : { uptime_ms: os.now() - f.started }),
    since_ms: os.now() - f.started,
    exits: f.exits,
    ...(f.exits === 0 ? {} : { last_exit: { code: 0, signal: null, ago_ms: os.now() - f.started } }),
    description: f.pid !== null ? `pid ${f.pid}` : f.state === 'BACKOFF' ? 'exited with code 1, retrying in 2 s' : 'stopped by request',
  });
  const pick = (name: string): [string, Fake][] | string => {
    if (name === 'all') return [...table];
    const f = table.get(name);
    return f === undefined ? `no companion named "${name}"; companions: ${[...table.keys()].join(', ')}` : [[name, f]];
  };
  const set = (f: Fake, state: CompanionState, name: string) => {
    if (f.pid !== null) f.exits++;
    const up = state === 'RUNNING' && name !== 'flaky';
    f.state = up ? 'RUNNING' : state === 'RUNNING' ? 'BACKOFF' : state;
    f.pid = up ? nextPid++ : null;
    f.started = os.now();
  };
  return async (req) => {
    calls.push(req);
    const name = 'name' in req ? req.name : null;
    if (name === 'boom') throw new Error('the fake manager blew up');
    if (name === 'bad') return undefined as unknown as Reply;
    // Control characters in every string a reply can carry to ctl's terminal.
    if (name === 'evil') {
      return { ok: true, companions: [{ ...status('w\x1b]0;pwned\x07\u009b31m', table.get('scheduler')!), description: 'up\r\nFAKE  RUNNING\x7f' }] };
    }
    if (name === 'evil-error') return { ok: false, error: 'no\x1b[2J\u0085 such companion' };
    if (name === 'slow') {
      await os.sleep(500);
      return { ok: true, companions: [] };
    }
    switch (req.cmd) {
      case 'status':
      case 'start':
      case 'stop':
      case 'restart': {
        const got = pick(req.name);
        if (typeof got === 'string') return { ok: false, error: got };
        if (req.cmd !== 'status') for (const [n, f] of got) set(f, req.cmd === 'stop' ? 'STOPPED' : 'RUNNING', n);
        return { ok: true, companions: got.map(([n, f]) => status(n, f)) };
      }
      case 'reread':
        return { ok: true, added: ['websocket'], removed: [], changed: ['scheduler'], unchanged: ['worker-queue', 'mailer', 'flaky'] };
      case 'signal': {
        const got = pick(req.name);
        if (typeof got === 'string') return { ok: false, error: got };
        return { ok: true, signalled: got.filter(([, f]) => f.pid !== null).map(([n, f]) => ({ name: n, pid: f.pid! })) };
      }
      case 'pid': {
        if (req.name === null) return { ok: true, pid: os.pid };
        const got = pick(req.name);
        return typeof got === 'string' ? { ok: false, error: got } : { ok: true, pid: got[0]![1].pid };
      }
      case 'tail':
        if (req.name === 'ticker') return growingTail(os, t0, 1, 1000, req);
        if (req.name === 'burst') return growingTail(os, t0, 30, 40, req);
        return { ok: true, name: req.name, stream: req.stream, lines: Array.from({ length: req.lines }, (_, i) => `${req.stream} line ${i + 1}`) };
      case 'version':
        return { ok: true, version: '0.1.0-test' };
      case 'stats':
        return { ok: true, ...FAKE_STATS };
      case 'reload': {
        const plan = (reloadPlan !== undefined && os.fs.exists(reloadPlan) ? JSON.parse(os.fs.readFile(reloadPlan)) : {}) as { ms?: number; error?: string };
        if (plan.ms !== undefined) await os.sleep(plan.ms);
        if (plan.error !== undefined) return { ok: false, error: `reload failed, the running config stays in force: ${plan.error}` };
        return { ok: true, generation: ++generation };
      }
      case 'scale':
        if (req.workers < FAKE_MIN) return { ok: false, error: `scale: ${req.workers} is below min_workers (${FAKE_MIN}); lower min_workers in the config and reload first` };
        if (req.workers > FAKE_MAX) return { ok: false, error: `scale: ${req.workers} is above max_workers (${FAKE_MAX}); raise max_workers in the config and reload first` };
        return { ok: true, workers: req.workers, min: FAKE_MIN, max: FAKE_MAX };
    }
  };
}

export const controlPrograms = programs(import.meta.url, {
  /**
   * control-server PATH [MAX_LINE|-] [MAX_CONNECTIONS] [IDLE_MS]: serves the fake handler on PATH (its reload plan
   * in PATH.reload); says
   * {listening} (or {error, code}, then idles) on its channel; TERM closes it and exits.
   */
  'control-server': async (os, args) => {
    const log = { debug: () => {}, warning: (m: string) => os.stderr.write(`${m}\n`), error: (m: string) => os.stderr.write(`${m}\n`) };
    try {
      const num = (i: number) => (args[i] === undefined || args[i] === '-' ? undefined : Number(args[i]));
      const opts = { maxLine: num(1), maxConnections: num(2), idleMs: num(3) };
      const server = await serveControl(os, args[0]!, fakeHandler(os, [], `${args[0]}.reload`), log, Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)));
      os.onSignal('SIGTERM', () => {
        server.close();
        os.exit(0);
      });
      os.channel?.send({ listening: args[0] });
    } catch (e) {
      // No exit here: a real process could exit before the message is out. The test ends it.
      os.channel?.send({ error: (e as Error).message, code: (e as { code?: string }).code });
    }
  },
  /** drover ctl ARGS, exiting with its status. */
  ctl: async (os, args) => os.exit(await ctl(os, args)),
});

/**
 * Runs `body` as a program on a fresh kernel, next to a control-server at
 * `sock` (its extra arguments: `serverArgs`), and stops the server after.
 * Resolves with the kernel; rejects with the simulation's stderr.
 */
export async function besideServer(
  seed: number, sock: string, serverArgs: string[],
  body: (os: Os, server: number) => Promise<void>,
  extra: Record<string, (os: Os, args: readonly string[]) => Promise<void>> = {},
): Promise<Kernel> {
  const main = async (os: Os) => {
    const srv = os.spawn({ program: 'control-server', args: [sock, ...serverArgs] });
    const said = await inbox(os, srv.channel!)();
    if ((said as { listening?: string }).listening !== sock) throw new Error(`control-server said ${JSON.stringify(said)}`);
    try {
      await body(os, srv.pid);
    } finally {
      try {
        os.kill(srv.pid, 'SIGKILL');
        await reap(os, srv.pid);
      } catch {
        // the body already ended and reaped it
      }
    }
  };
  const k = new Kernel({ seed, programs: [controlPrograms, programs(import.meta.url, { main, ...extra })] });
  const root = k.spawn({ program: 'main', channel: false });
  await k.run({ stopWhen: () => k.exitStatus(root) !== undefined, until: 3_600_000 });
  const e = k.exitStatus(root);
  if (e?.code !== 0) throw new Error(`simulation (seed ${seed}) ${e ? `exited ${e.code ?? e.signal}` : 'did not finish'}:\n${k.output.stderr}\n--- last events ---\n${k.trace().slice(-30).join('\n')}`);
  return k;
}
