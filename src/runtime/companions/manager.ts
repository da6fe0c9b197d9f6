// The companion manager: one child of the arbiter that supervises the side
// processes (queue consumers, schedulers) the config lists. Each companion's
// life is the pure state machine in state.ts; this module only feeds it
// inputs (commands, exits, time) and carries out its actions with the Os.
// A companion with numprocs N is N supervised processes (copies.ts), each
// with its own machine; control commands take a copy (NAME:i), a group
// (NAME: all its copies) or 'all'. Output goes where output.ts says.
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
import { planted } from '../../os/hooks.js';
import { resolve } from 'node:path';
import { crashOnAssertion, errnoOf, expectCodes } from '../assert.js';
import { ConfigError } from '../config/errors.js';
import { programs, type Child, type Exited, type Os } from '../../os/types.js';
import { loadConfig } from '../config/index.js';
import type { Config } from '../config/types.js';
import { Logger, LogSink } from '../log.js';
import { checkReply, quote, validateRequest, type CompanionStatus, type Reply, type Request, type StdStream } from '../control/protocol.js';
import { type CompanionConfig, splitModule } from './config.js';
import { copies, listNames, type Copy } from './copies.js';
import { VERSION } from '../../version.js';
import { Lines, Output } from './output.js';
import { type Action, type Companion, exitExpected, initial, type Input, step } from './state.js';

export interface ManagerSpec {
  readonly argv: readonly string[];
  readonly cpus: number;
  readonly arbiter: number; // our parent's pid: if it is not our parent any more, it died
  /** ms between heartbeats ({t:'hb'}), as a worker's: the arbiter kills a manager silent for `timeout`. */
  readonly heartbeat: number;
  /**
   * The arbiter's config as it runs (its last good load): what a manager
   * started while the file on disk is refused (a broken edit, not yet
   * reloaded) runs instead of dying of it.
   */
  readonly config: Pick<Config, 'companions' | 'error_log' | 'log_level' | 'log_format'>;
}

/** What the manager tells the arbiter. `ctl-reply` answers the `ctl` of the same id. */
export type ManagerReport = { t: 'groups'; pgids: number[] } | { t: 'ready' } | { t: 'hb' } | { t: 'ctl-reply'; id: number; reply: Reply };
/**
 * What the arbiter tells the manager. `ctl`: a control request, validated by the arbiter, to answer with `ctl-reply`;
 * `heartbeat`: beat every `ms` from now on (a reload changed `timeout`).
 */
export type ToManager = { t: 'reread' } | { t: 'ctl'; id: number; req: Request } | { t: 'heartbeat'; ms: number };

/** One supervised process: a companion, or one copy of one (numprocs). */
interface Entry {
  c: Companion;
  /** The configured companion's name; `c.config.name` is this copy's. */
  readonly group: string;
  child: Child | null;
  startedAt: number | null;
  exits: number;
  /** Why its last spawn was refused (no such command...), until a spawn succeeds: a start that never ran has no exit to tell. */
  spawnError: string | null;
  /** What `tail` reads, kept across its processes. */
  readonly lines: Record<StdStream, Lines>;
  /** The streams of its processes not ended yet (a reaped child's may still be draining). */
  readonly outs: Set<Output>;
  removing: boolean; // reread dropped it: forget it once stopped
  /** A reread added it back while it was stopping: started anew, with this config, once its old process is reaped. */
  readd: Copy | null;
}

const entryOf = (copy: Copy, now: number): Entry => ({
  c: initial(copy.config, now), group: copy.group, child: null, startedAt: null, exits: 0, spawnError: null,
  lines: { stdout: new Lines(), stderr: new Lines() }, outs: new Set(), removing: false, readd: null,
});

export async function manager(os: Os, args: readonly string[]): Promise<void> {
  const spec = JSON.parse(args[0]!) as ManagerSpec;
  // Started after the arbiter already died: nobody would ever stop what we start.
  if (os.ppid() !== spec.arbiter) return os.exit(0);
  os.setTitle('drover: companion manager');
  if (!planted(os.hooks, 'manager-ignores-parent-death')) os.setParentDeathSignal('SIGTERM');
  // The heartbeat, from the first instant (loading the config is part of the
  // boot the arbiter times): a manager whose loop is stuck, or that was
  // SIGSTOPped, falls silent and is killed and replaced with its companions.
  let beatEvery = validBeat(spec.heartbeat) ?? 1000;
  const beat = () => {
    os.channel?.send({ t: 'hb' } satisfies ManagerReport);
    os.timer(beatEvery, beat);
  };
  beat();

  let refused: string | null = null;
  let config: ManagerSpec['config'];
  try {
    config = await loadConfig(os, spec.argv, spec.cpus);
  } catch (e) {
    // Only a refused config (or a file that cannot be read) is the arbiter's to hold: anything else is a bug.
    if (!(e instanceof ConfigError) && errnoOf(e) === undefined) throw e;
    refused = (e as Error).message.split('\n', 1)[0]!;
    config = spec.config;
  }
  const log = new Logger(os, new LogSink(os, config.error_log), config.log_level, { format: config.log_format, role: 'manager' });
  if (refused !== null) log.warning(`the config on disk is refused (${refused}); running the companions of the config the arbiter runs`);
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
    if (planted(os.hooks, 'manager-restart-overlap') && input.t === 'restart' && e.c.pid !== null) spawn(e, e.c.config);
    const { next, actions } = step(e.c, input, os.now(), os.hooks);
    e.c = next;
    for (const a of actions) act(e, a);
    if (e.removing && e.c.state === 'STOPPED' && e.c.pid === null) {
      entries.delete(e.c.config.name);
      // Its tail goes on (numbers continue, as across restarts); nothing new starts once the manager is stopping.
      if (e.readd !== null && !stopping) {
        const fresh = { ...entryOf(e.readd, os.now()), lines: e.lines };
        entries.set(e.readd.config.name, fresh);
        log.info(`companion ${e.readd.config.name}: its old process is gone; starting it again, as a reread asked`);
        feed(fresh, { t: 'tick' });
      }
    }
  };

  const act = (e: Entry, a: Action) => {
    if (a.a === 'log') log.log(a.level, a.message); // state.ts names the companion
    else if (a.a === 'signal') {
      try {
        os.kill(-a.pid, a.sig);
      } catch (err) {
        // ESRCH: the group is gone already; its reap is on its way.
        if (expectCodes(err, 'ESRCH', 'EPERM') === 'EPERM') log.error(`companion ${e.c.config.name}: ${a.sig} to its process group ${a.pid} not allowed (a member runs as another user?): ${(err as Error).message}`);
      }
    } else spawn(e, a.config);
  };

  const spawn = (e: Entry, cfg: CompanionConfig) => {
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
      // What the OS refuses (no such command or cwd, no permission, out of processes) is a failed start; a bug is not.
      if (errnoOf(err) === undefined) throw err;
      e.spawnError = (err as Error).message;
      return feed(e, { t: 'spawn-failed', error: e.spawnError });
    }
    e.spawnError = null;
    e.child = child;
    e.startedAt = os.now();
    byPid.set(child.pid, e);
    // Each stream its own Output (its own line splitter and file), until its EOF.
    const prefix = `${cfg.name} | `;
    const ended = (o: Output) => void e.outs.delete(o);
    const follow = (stream: typeof child.stdout, out: Output) => {
      if (stream === null) return;
      e.outs.add(out);
      stream.setEncoding('utf8').on('data', (d: string) => out.write(d));
      stream.on('end', () => out.end());
    };
    follow(child.stdout, new Output(os, cfg.stdout, 'stdout', e.lines.stdout, prefix, ended));
    // stderr joined to stdout arrives in the stdout pipe (its Output above).
    if (cfg.stderr !== 'stdout') follow(child.stderr, new Output(os, cfg.stderr, 'stderr', e.lines.stderr, prefix, ended));
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
    } catch (err) {
      // ESRCH: nothing was left.
      if (expectCodes(err, 'ESRCH', 'EPERM') === 'EPERM') log.error(`companion ${e.c.config.name}: left a process in group ${x.pid} that may not be killed: ${(err as Error).message}`);
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
      } catch (err) {
        expectCodes(err, 'ECHILD'); // no children
        break;
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
    // A refused spawn is newer than any exit (a successful spawn clears it), and the only reason when nothing ever ran.
    const lastText = e.spawnError !== null ? `spawn failed: ${e.spawnError}` : last ? (last.signal ? `killed by ${last.signal}` : `exited with code ${last.code}`) : '';
    let description = '';
    if (c.pid !== null && e.startedAt !== null) description = `pid ${c.pid}, uptime ${clock(now - e.startedAt)}`;
    else if (c.state === 'BACKOFF' && c.deadline !== null) description = `${lastText}, retrying in ${Math.ceil((c.deadline - now) / 1000)} s`;
    else if (c.state === 'EXITED' && last) description = `${lastText} (${exitExpected(c.config, last.code, last.signal) ? 'expected' : 'unexpected'}), not restarted`;
    else if (lastText !== '') description = lastText;
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

  const names = () => listNames([...entries.values()].map((e) => ({ group: e.group, name: e.c.config.name })));
  const unknown = (name: string) => `no companion named "${name}"; companions: ${names() || 'none'}`;

  /** 'all', a companion (or one copy) by name, or a group: all its copies. */
  const pick = (name: string): Entry[] | string => {
    if (name === 'all') return [...entries.values()];
    const e = entries.get(name);
    if (e) return [e];
    const group = [...entries.values()].filter((x) => x.group === name);
    return group.length > 0 ? group : unknown(name);
  };

  /** One process: a companion, or one copy by its NAME:i. */
  const one = (cmd: string, name: string): Entry | string => {
    const e = entries.get(name);
    if (e) return e;
    const group = [...entries.values()].filter((x) => x.group === name);
    if (group.length === 0) return unknown(name);
    const first = group[0]!.c.config.name;
    const last = group[group.length - 1]!.c.config.name;
    return `${cmd} needs one process, and "${name}" runs ${group.length} copies (numprocs): name one, ${first} to ${last}`;
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
          } catch (err) {
            expectCodes(err, 'ESRCH'); // exited meanwhile; EPERM goes back as the command's error
          }
        }
        return { ok: true, signalled };
      }
      case 'pid': {
        if (req.name === null) return { ok: true, pid: os.pid };
        const e = one('pid', req.name);
        return typeof e === 'string' ? { ok: false, error: e } : { ok: true, pid: e.c.pid };
      }
      case 'tail':
        return tail(req);
      case 'reread':
        return reread();
      case 'stats':
      case 'reload':
      case 'scale':
        // The arbiter answers these itself; it forwards nothing but companion commands.
        return { ok: false, error: `${req.cmd} is answered by the arbiter, not the companion manager` };
    }
  };

  /**
   * The last `lines` lines of a stream, and `next`, the number the next line
   * will get. With `after` (a follower's last `next`): the lines numbered
   * `after` and on, at most `lines` of them, and `dropped` when some of those
   * are not in the reply (gone from the ring, or over `lines`).
   */
  const tail = (req: Extract<Request, { cmd: 'tail' }>): Reply => {
    const e = one('tail', req.name);
    if (typeof e === 'string') return { ok: false, error: e };
    const lines = e.lines[req.stream];
    const base = { ok: true as const, name: req.name, stream: req.stream, next: lines.next };
    if (req.after === undefined) return { ...base, lines: lines.last(req.lines) };
    const { lines: got, dropped } = lines.since(req.after, req.lines);
    return { ...base, lines: got, ...(dropped > 0 ? { dropped } : {}) };
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
        if (crashOnAssertion(os, e)) return; // its state is not to be trusted: the manager stops, the arbiter starts another
        log.error(`control: ${v.req.cmd} failed: ${e instanceof Error ? e.stack ?? e.message : quote(e)}`);
        reply = { ok: false, error: `${v.req.cmd} failed inside the companion manager: ${e instanceof Error ? e.message : quote(e)}; drover's error log has the details` };
      }
    }
    os.channel?.send({ t: 'ctl-reply', id, reply } satisfies ManagerReport);
  };

  /**
   * Validate the whole new config first; then apply it all: added start,
   * removed stop, changed restart. Per process: a numprocs change adds or
   * removes copies and leaves the others alone (copies.ts).
   */
  const reread = async (): Promise<Reply> => {
    // What it would start, nobody would stop: shutdown waits only for what runs now.
    if (stopping) return { ok: false, error: 'reread refused: the companion manager is shutting down' };
    let next;
    try {
      next = await loadConfig(os, spec.argv, spec.cpus);
    } catch (e) {
      // A bad file is refused; anything else is a bug, answered as one (control above).
      if (!(e instanceof ConfigError) && errnoOf(e) === undefined) throw e;
      return { ok: false, error: `reread refused, nothing changed: ${(e as Error).message}` };
    }
    // It may have begun while the config loaded.
    if (stopping) return { ok: false, error: 'reread refused: the companion manager is shutting down' };
    const now = os.now();
    const wanted = next.companions.flatMap(copies);
    const names = new Set(wanted.map((c) => c.config.name));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    const unchanged: string[] = [];
    const later: string[] = [];
    for (const [name, e] of entries) {
      if (names.has(name)) continue;
      if (e.removing) {
        // Stopping already; added back by an earlier reread, and now not wanted after all.
        if (e.readd !== null) removed.push(name);
        e.readd = null;
        continue;
      }
      removed.push(name);
      e.removing = true;
      feed(e, { t: 'stop' });
    }
    for (const copy of wanted) {
      const cfg = copy.config;
      const e = entries.get(cfg.name);
      if (!e || e.removing) {
        if (e) {
          // Still stopping under its old config: it starts with this one once reaped (feed).
          added.push(cfg.name);
          later.push(cfg.name);
          e.readd = copy;
          continue;
        }
        added.push(cfg.name);
        const fresh = entryOf(copy, now);
        entries.set(cfg.name, fresh);
        feed(fresh, { t: 'tick' });
      } else if (e.c.config.hash !== cfg.hash && e.c.pendingConfig?.hash !== cfg.hash) {
        changed.push(cfg.name);
        feed(e, { t: 'reconfigure', config: cfg });
      } else {
        unchanged.push(cfg.name);
      }
    }
    // Config order for status (a copy added by a numprocs change next to its group), the leaving ones last.
    const order = [...wanted.map((c) => c.config.name), ...entries.keys()];
    const ordered = new Map<string, Entry>();
    for (const name of order) {
      const e = entries.get(name);
      if (e && !ordered.has(name)) ordered.set(name, e);
    }
    entries.clear();
    for (const [name, e] of ordered) entries.set(name, e);
    settle();
    const when = later.length > 0 ? ` ([${later}] once the old process, still stopping, is reaped)` : '';
    log.info(`reread: added [${added}]${when} removed [${removed}] changed [${changed}] unchanged [${unchanged}]`);
    // `starting_later`: the added ones that start once their old process is reaped (not an error: they will run).
    return { ok: true, added, removed, changed, unchanged, ...(later.length > 0 ? { starting_later: later } : {}) };
  };

  // ------------------------------------------------------------ life

  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`companion manager stopping (${why})`);
    for (const e of entries.values()) feed(e, { t: 'stop' });
    settle();
    await until(() => [...entries.values()].every((e) => e.c.pid === null));
    for (const e of entries.values()) for (const o of e.outs) o.close();
    os.timer(0, () => os.exit(0));
  };

  os.onSignal('SIGCHLD', reap);
  os.onSignal('SIGTERM', () => shutdown('TERM'));
  os.onSignal('SIGINT', () => shutdown('INT'));
  os.onSignal('SIGQUIT', () => shutdown('QUIT'));
  os.onSignal('SIGHUP', () => void reread());
  os.onSignal('SIGUSR1', () => {
    log.sink.reopen();
    for (const e of entries.values()) for (const o of e.outs) o.reopen();
  });
  // Installed with the companions below, in the same turn: no request can find them missing.
  os.channel?.onMessage((msg) => {
    const m = msg as ToManager;
    if (m.t === 'reread') void reread();
    else if (m.t === 'ctl') void control(m.id, m.req);
    else if (m.t === 'heartbeat') beatEvery = validBeat(m.ms) ?? beatEvery;
  });
  for (const copy of config.companions.flatMap(copies)) {
    const e = entryOf(copy, os.now());
    entries.set(copy.config.name, e);
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

/** Its registry: the manager's process imports its own graph, not the arbiter's or a worker's. */
export const managerPrograms = programs(import.meta.url, { 'companion-manager': manager });
