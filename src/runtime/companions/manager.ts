// The companion manager: one child of the arbiter that supervises the side
// processes (queue consumers, schedulers) the config lists. Each companion's
// life is the pure state machine in state.ts; this module only feeds it
// inputs (commands, exits, time) and carries out its actions with the Os.
//
// No orphans:
// - each companion leads its own process group, and every signal goes to the
//   group, so a grandchild it forked goes with it;
// - the arbiter gone (even by SIGKILL): the parent-death signal TERM makes us
//   stop every companion — stop signal, deadline, KILL — and exit;
// - we gone: commands carry a parent-death KILL (setpriv), module companions
//   arm one themselves, and the arbiter, told every companion's group, kills
//   what is left of those groups before it starts a new manager;
// - a companion never sees the arbiter's control socket or listeners (only
//   stdio crosses a spawn).
//
// The control socket is the arbiter's (src/runtime/arbiter/control.ts): it
// forwards the companion commands here over our channel, {t:'ctl', id, req},
// and we answer each with {t:'ctl-reply', id, reply}.
import { planted } from '../probe.js';
import { resolve } from 'node:path';
import type { Child, Exited, Os } from '../../os/types.js';
import { loadConfig } from '../config/index.js';
import { Logger, LogSink } from '../log.js';
import { checkReply, MAX_TAIL_LINES, quote, validateRequest, type CompanionStatus, type Reply, type Request } from '../control/protocol.js';
import { type CompanionConfig, splitModule } from './config.js';
import { LineSplitter } from './lines.js';
import { type Action, type Companion, initial, type Input, step } from './state.js';

export interface ManagerSpec {
  readonly argv: readonly string[];
  readonly cpus: number;
  readonly arbiter: number; // our parent's pid: if it is not our parent any more, it died
  /** ms between heartbeats ({t:'hb'}), as a worker's: the arbiter kills a manager silent for `timeout`. */
  readonly heartbeat: number;
}

/** What the manager tells the arbiter. `ctl-reply` answers the `ctl` of the same id. */
export type ManagerReport = { t: 'groups'; pgids: number[] } | { t: 'ready' } | { t: 'hb' } | { t: 'ctl-reply'; id: number; reply: Reply };
/**
 * What the arbiter tells the manager. `ctl`: a control request, validated by the arbiter, to answer with `ctl-reply`;
 * `heartbeat`: beat every `ms` from now on (a reload changed `timeout`).
 */
export type ToManager = { t: 'reread' } | { t: 'ctl'; id: number; req: Request } | { t: 'heartbeat'; ms: number };

const VERSION = '0.1.0';

/**
 * The last lines of one output stream, for `tail`: cut as lines.ts says (at
 * most 64 KiB held, each character looked at once), each kept to its first
 * 4096 characters, the last MAX_TAIL_LINES of them in a ring.
 */
export class Lines {
  private readonly ring: string[] = [];
  private next = 0; // where the next line goes once the ring is full
  private readonly splitter = new LineSplitter((l) => this.add(l.length > 4096 ? l.slice(0, 4096) : l));
  push(text: string): void {
    this.splitter.push(text);
  }
  /** Characters of an unfinished line held (≤ LINE_MAX). */
  get pending(): number {
    return this.splitter.pending;
  }
  private add(line: string): void {
    if (this.ring.length < MAX_TAIL_LINES) this.ring.push(line);
    else {
      this.ring[this.next] = line;
      this.next = (this.next + 1) % MAX_TAIL_LINES;
    }
  }
  last(n: number): string[] {
    const ordered = this.ring.length < MAX_TAIL_LINES ? this.ring : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return n <= 0 ? [] : ordered.slice(-n);
  }
}

/** Where one companion stream goes: a file (reopened on USR1) or the manager's own stream. */
class Output {
  readonly lines = new Lines();
  private sink: LogSink | null;
  constructor(private readonly os: Os, target: string, private readonly inherit: 'stdout' | 'stderr') {
    this.sink = target === 'inherit' ? null : new LogSink(os, target);
  }
  write(text: string): void {
    this.lines.push(text);
    if (this.sink) this.sink.write(text);
    else this.os[this.inherit].write(text);
  }
  reopen(): void {
    this.sink?.reopen();
  }
  close(): void {
    this.sink?.close();
  }
}

interface Entry {
  c: Companion;
  child: Child | null;
  startedAt: number | null;
  exits: number;
  out: { stdout: Output; stderr: Output } | null;
  removing: boolean; // reread dropped it: forget it once stopped
}

export async function manager(os: Os, args: readonly string[]): Promise<void> {
  const spec = JSON.parse(args[0]!) as ManagerSpec;
  // Started after the arbiter already died: nobody would ever stop what we start.
  if (os.ppid() !== spec.arbiter) return os.exit(0);
  if (!planted('manager-ignores-parent-death')) os.setParentDeathSignal('SIGTERM');
  // The heartbeat, from the first instant (loading the config is part of the
  // boot the arbiter times): a manager whose loop is stuck, or that was
  // SIGSTOPped, falls silent and is killed and replaced with its companions.
  let beatEvery = validBeat(spec.heartbeat) ?? 1000;
  const beat = () => {
    os.channel?.send({ t: 'hb' } satisfies ManagerReport);
    os.timer(beatEvery, beat);
  };
  beat();

  const config = await loadConfig(os, spec.argv, spec.cpus);
  const log = new Logger(os, new LogSink(os, config.error_log), config.log_level);
  const entries = new Map<string, Entry>();
  const byPid = new Map<number, Entry>();
  const waiters: Array<() => boolean> = [];
  let wake: { at: number; cancel(): void } | null = null;
  let stopping = false;

  const report = () => {
    const pgids = [...byPid.keys()];
    os.channel?.send({ t: 'groups', pgids } satisfies ManagerReport);
  };

  // ------------------------------------------------------------ the machine

  const feed = (e: Entry, input: Input) => {
    // The planted bug: a restart starts the new instance before the old one is reaped.
    if (planted('manager-restart-overlap') && input.t === 'restart' && e.c.pid !== null) spawn(e, e.c.config);
    const { next, actions } = step(e.c, input, os.now());
    e.c = next;
    for (const a of actions) act(e, a);
    if (e.removing && e.c.state === 'STOPPED' && e.c.pid === null) entries.delete(e.c.config.name);
  };

  const act = (e: Entry, a: Action) => {
    if (a.a === 'log') log.log(a.level, a.message); // state.ts names the companion
    else if (a.a === 'signal') {
      try {
        os.kill(-a.pid, a.sig);
      } catch {
        // the group is gone already; its reap is on its way
      }
    } else spawn(e, a.config);
  };

  const spawn = (e: Entry, cfg: CompanionConfig) => {
    e.out?.stdout.close();
    e.out?.stderr.close();
    e.out = { stdout: new Output(os, cfg.stdout, 'stdout'), stderr: new Output(os, cfg.stderr === 'stdout' ? 'inherit' : cfg.stderr, 'stderr') };
    const common = {
      cwd: cfg.cwd ?? undefined,
      env: { ...os.env, ...cfg.env },
      newGroup: true,
      stdout: 'pipe' as const,
      stderr: cfg.stderr === 'stdout' ? ('stdout' as const) : ('pipe' as const),
    };
    let child: Child;
    try {
      if (cfg.command) {
        child = os.spawn({ ...common, command: cfg.command, parentDeathSignal: 'SIGKILL' });
      } else {
        const { path, exportName } = splitModule(cfg.module!);
        child = os.spawn({ ...common, program: 'companion-module', args: [resolve(cfg.cwd ?? os.cwd(), path), exportName], channel: false });
      }
    } catch (err) {
      return feed(e, { t: 'spawn-failed', error: err instanceof Error ? err.message : String(err) });
    }
    e.child = child;
    e.startedAt = os.now();
    byPid.set(child.pid, e);
    const out = e.out;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => out.stdout.write(d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => out.stderr.write(d));
    feed(e, { t: 'spawned', pid: child.pid });
    report();
  };

  const exited = (x: Exited) => {
    const e = byPid.get(x.pid);
    if (!e) return;
    byPid.delete(x.pid);
    // What it left in its process group (a forked grandchild) goes with it:
    // once the companion is reaped nobody would ever stop that, so it would
    // outlive its supervisor. Found by chaos (seed 6, parent-death).
    try {
      os.kill(-x.pid, 'SIGKILL');
    } catch {
      // nothing was left
    }
    e.child = null;
    e.startedAt = null;
    e.exits++;
    feed(e, { t: 'exited', code: x.code, signal: x.signal });
    report();
  };

  /** Runs every state's timer that is due, and sleeps until the next one. */
  const tick = () => {
    const now = os.now();
    for (const e of [...entries.values()]) if (e.c.deadline !== null && e.c.deadline <= now) feed(e, { t: 'tick' });
    settle();
  };

  /** After any change: answer the control requests that waited for it, and re-arm the timer. */
  const settle = () => {
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!()) waiters.splice(i, 1);
    let next = Infinity;
    for (const e of entries.values()) if (e.c.deadline !== null) next = Math.min(next, e.c.deadline);
    if (wake && wake.at === next) return;
    wake?.cancel();
    wake = null;
    if (next === Infinity) return;
    const t = os.timer(Math.max(1, next - os.now()), () => {
      wake = null;
      tick();
    });
    wake = { at: next, cancel: () => t.cancel() };
  };

  const until = (cond: () => boolean) =>
    new Promise<void>((resolve) => {
      if (cond()) return resolve();
      waiters.push(() => {
        if (!cond()) return false;
        resolve();
        return true;
      });
    });

  const reap = () => {
    for (;;) {
      let x: Exited | null;
      try {
        x = os.waitpid(-1);
      } catch {
        break; // ECHILD
      }
      if (x === null) break;
      exited(x);
    }
    settle();
  };

  // ------------------------------------------------------------ commands

  const status = (e: Entry): CompanionStatus => {
    const now = os.now();
    const c = e.c;
    const last = c.lastExit;
    const lastText = last ? (last.signal ? `killed by ${last.signal}` : `exited with code ${last.code}`) : '';
    let description = '';
    if (c.pid !== null && e.startedAt !== null) description = `pid ${c.pid}, uptime ${clock(now - e.startedAt)}`;
    else if (c.state === 'BACKOFF' && c.deadline !== null) description = `${lastText}, retrying in ${Math.ceil((c.deadline - now) / 1000)} s`;
    else if (last) description = lastText;
    else description = 'not started';
    return {
      name: c.config.name,
      state: c.state,
      pid: c.pid,
      ...(c.pid !== null && e.startedAt !== null ? { uptime_ms: now - e.startedAt } : {}),
      since_ms: now - c.since,
      exits: e.exits,
      ...(last ? { last_exit: { code: last.code, signal: last.signal, ago_ms: now - last.at } } : {}),
      description,
    };
  };

  const pick = (name: string): Entry[] | string => {
    if (name === 'all') return [...entries.values()];
    const e = entries.get(name);
    return e ? [e] : `no companion named "${name}"; companions: ${[...entries.keys()].join(', ') || 'none'}`;
  };

  const settled = (e: Entry, goal: 'up' | 'down') =>
    goal === 'down' ? e.c.state === 'STOPPED' || e.c.state === 'EXITED' || e.c.state === 'FATAL' : e.c.state !== 'STARTING' && e.c.state !== 'STOPPING' && !e.c.restartPending;

  const handle = async (req: Request): Promise<Reply> => {
    switch (req.cmd) {
      case 'version':
        return { ok: true, version: VERSION };
      case 'status': {
        const es = pick(req.name);
        return typeof es === 'string' ? { ok: false, error: es } : { ok: true, companions: es.map(status) };
      }
      case 'start':
      case 'stop':
      case 'restart': {
        const es = pick(req.name);
        if (typeof es === 'string') return { ok: false, error: es };
        if (stopping) return { ok: false, error: 'the manager is shutting down' };
        for (const e of es) {
          feed(e, { t: req.cmd });
          // A spawn's fork and exec are synchronous (~4 ms): yield between
          // them so that `start all` does not hold up every other client.
          if (es.length > 1) await os.sleep(0);
        }
        settle();
        const goal = req.cmd === 'stop' ? 'down' : 'up';
        await until(() => es.every((e) => settled(e, goal)));
        return { ok: true, companions: es.map(status) };
      }
      case 'signal': {
        const es = pick(req.name);
        if (typeof es === 'string') return { ok: false, error: es };
        const signalled: { name: string; pid: number }[] = [];
        for (const e of es) {
          if (e.c.pid === null) continue;
          try {
            os.kill(-e.c.pid, req.signal);
            signalled.push({ name: e.c.config.name, pid: e.c.pid });
          } catch {
            // exited meanwhile
          }
        }
        return { ok: true, signalled };
      }
      case 'pid': {
        if (req.name === null) return { ok: true, pid: os.pid };
        const e = entries.get(req.name);
        return e ? { ok: true, pid: e.c.pid } : { ok: false, error: `no companion named "${req.name}"` };
      }
      case 'tail': {
        const e = entries.get(req.name);
        if (!e) return { ok: false, error: `no companion named "${req.name}"` };
        return { ok: true, name: req.name, stream: req.stream, lines: e.out ? e.out[req.stream].lines.last(req.lines) : [] };
      }
      case 'reread':
        return reread();
      case 'stats':
        // The arbiter answers stats itself; it forwards nothing but companion commands.
        return { ok: false, error: 'stats is answered by the arbiter, not the companion manager' };
    }
  };

  /** One forwarded request, answered on the channel. Never throws: a failure is an {ok:false} reply, as the socket would give. */
  const control = async (id: number, raw: unknown) => {
    const v = validateRequest(raw); // from the arbiter, which validated it; checked again all the same
    let reply: Reply;
    if (!v.ok) reply = { ok: false, error: v.error };
    else {
      try {
        reply = checkReply(await handle(v.req)) ?? { ok: false, error: `${v.req.cmd} failed inside the companion manager: it gave no {ok, ...} reply` };
      } catch (e) {
        log.error(`control: ${v.req.cmd} failed: ${e instanceof Error ? e.stack ?? e.message : quote(e)}`);
        reply = { ok: false, error: `${v.req.cmd} failed inside the companion manager: ${e instanceof Error ? e.message : quote(e)}; drover's error log has the details` };
      }
    }
    os.channel?.send({ t: 'ctl-reply', id, reply } satisfies ManagerReport);
  };

  /** Validate the whole new config first; then apply it all: added start, removed stop, changed restart. */
  const reread = async (): Promise<Reply> => {
    let next;
    try {
      next = await loadConfig(os, spec.argv, spec.cpus);
    } catch (e) {
      return { ok: false, error: `reread refused, nothing changed: ${e instanceof Error ? e.message : String(e)}` };
    }
    const now = os.now();
    const names = new Set(next.companions.map((c) => c.name));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    const unchanged: string[] = [];
    for (const [name, e] of entries) {
      if (names.has(name) || e.removing) continue;
      removed.push(name);
      e.removing = true;
      feed(e, { t: 'stop' });
    }
    for (const cfg of next.companions) {
      const e = entries.get(cfg.name);
      if (!e || e.removing) {
        if (e) continue; // still stopping under its old config; a later reread adds it again
        added.push(cfg.name);
        const fresh: Entry = { c: initial(cfg, now), child: null, startedAt: null, exits: 0, out: null, removing: false };
        entries.set(cfg.name, fresh);
        feed(fresh, { t: 'tick' });
      } else if (e.c.config.hash !== cfg.hash && e.c.pendingConfig?.hash !== cfg.hash) {
        changed.push(cfg.name);
        feed(e, { t: 'reconfigure', config: cfg });
      } else {
        unchanged.push(cfg.name);
      }
    }
    settle();
    log.info(`reread: added [${added}] removed [${removed}] changed [${changed}] unchanged [${unchanged}]`);
    return { ok: true, added, removed, changed, unchanged };
  };

  // ------------------------------------------------------------ life

  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`companion manager stopping (${why})`);
    for (const e of entries.values()) feed(e, { t: 'stop' });
    settle();
    await until(() => [...entries.values()].every((e) => e.c.pid === null));
    for (const e of entries.values()) {
      e.out?.stdout.close();
      e.out?.stderr.close();
    }
    os.timer(0, () => os.exit(0));
  };

  os.onSignal('SIGCHLD', reap);
  os.onSignal('SIGTERM', () => shutdown('TERM'));
  os.onSignal('SIGINT', () => shutdown('INT'));
  os.onSignal('SIGQUIT', () => shutdown('QUIT'));
  os.onSignal('SIGHUP', () => void reread());
  os.onSignal('SIGUSR1', () => {
    log.sink.reopen();
    for (const e of entries.values()) {
      e.out?.stdout.reopen();
      e.out?.stderr.reopen();
    }
  });
  // Installed with the companions below, in the same turn: no request can find them missing.
  os.channel?.onMessage((msg) => {
    const m = msg as ToManager;
    if (m.t === 'reread') void reread();
    else if (m.t === 'ctl') void control(m.id, m.req);
    else if (m.t === 'heartbeat') beatEvery = validBeat(m.ms) ?? beatEvery;
  });
  for (const cfg of config.companions) {
    const e: Entry = { c: initial(cfg, os.now()), child: null, startedAt: null, exits: 0, out: null, removing: false };
    entries.set(cfg.name, e);
    feed(e, { t: 'tick' });
  }
  settle();
  os.channel?.send({ t: 'ready' } satisfies ManagerReport);
  log.info(`companion manager ${os.pid} running ${entries.size} companion(s)`);
}

/** A heartbeat interval the arbiter gave, if it is one (ms). */
function validBeat(ms: unknown): number | null {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 1 ? ms : null;
}

const p2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** `0:03:10`, as supervisorctl shows uptime. */
function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 3600)}:${p2(Math.floor(s / 60) % 60)}:${p2(s % 60)}`;
}


