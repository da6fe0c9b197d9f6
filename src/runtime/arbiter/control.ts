// The control socket, owned by the arbiter. It is there whether or not
// companions are configured, so that `drover ctl stats` always has someone
// to answer it. The arbiter answers what it knows itself (stats, version)
// and does what is its own to do (reload, scale);
// every companion command goes to the companion manager over its channel as
// {t:'ctl', id, req} and comes back as {t:'ctl-reply', id, reply}.
//
// A forwarded request always gets exactly one reply, whatever the manager does:
// - no companions configured, so no manager: an error naming the fix;
// - a manager that is starting: the request waits for its 'ready' (before
//   it, the manager has no companions to report on);
// - a manager that is not running (between an exit and its restart), or
//   that exits with requests in hand: an error, at once;
// - a manager that does not answer (hung, stopped): "companion manager not
//   responding" within MANAGER_ANSWER_MS. Quick commands must be answered
//   in that time; while a start, stop or restart (which waits on companions)
//   is in the manager's hands, the manager is asked for its pid every
//   PROBE_EVERY_MS, and a probe unanswered for MANAGER_ANSWER_MS fails every
//   request sent to it. A long command also has a backstop deadline, long
//   enough for the slowest honest answer, see replyDeadline.
import type { Channel, Os, Timer } from '../../os/types.js';
import type { CompanionConfig } from '../companions/config.js';
import type { ManagerReport, ToManager } from '../companions/manager.js';
import { checkReply, NO_COMPANIONS, quote, type Reply, type Request } from '../control/protocol.js';
import { serveControl, type ControlLog, type ControlServer } from '../control/server.js';
import type { LanesReport } from '../lanes/report.js';

export interface ControlDeps {
  /** The lanes as they are now, for `stats`. */
  stats(): LanesReport;
  /**
   * The companions of the config in force. None: there is no manager to
   * ask, and the error says so. Their timeouts bound how long the manager
   * may take over a start, stop or restart.
   */
  companions(): readonly CompanionConfig[];
  /** What `version` answers. */
  readonly version: string;
  /** `reload`: a HUP; settles when the new generation serves, or with the reason the reload failed. */
  reload(): Promise<{ ok: true; generation: number } | { ok: false; error: string }>;
  /** `scale N`: the fast workers' target, within [min_workers, max_workers]; out of them, the error names the bound. */
  scale(n: number): { ok: true; target: number; min: number; max: number } | { ok: false; error: string };
  readonly log: ControlLog;
}

/** Time for the manager to answer anything, beyond what its companions make it wait for. */
export const REPLY_SLACK_MS = 30_000;
/**
 * A manager that takes longer than this to answer what needs no waiting on
 * a companion (a status, a pid probe), or to be ready for a request, is not
 * responding: the request gets an error instead of hanging ctl.
 */
export const MANAGER_ANSWER_MS = 5_000;
/** How often a manager busy with a start, stop or restart is probed (asked for its pid). */
export const PROBE_EVERY_MS = 2_500;

const isLong = (req: Request): boolean => req.cmd === 'start' || req.cmd === 'stop' || req.cmd === 'restart';

/**
 * How long the manager may take to answer `req`. status, pid, tail, signal
 * and reread are answered without waiting on any process; start, stop and
 * restart are answered once each companion has settled: a stop waits up to
 * stop_timeout (reload_timeout when it applies a reread's config) and the
 * reap, a start waits startsecs, a restart both. The longest over all the
 * companions, whichever are named: this is a backstop against a hung
 * manager, not a schedule.
 */
export function replyDeadline(req: Request, companions: readonly CompanionConfig[]): number {
  if (!isLong(req)) return MANAGER_ANSWER_MS;
  let longest = 0;
  for (const c of companions) longest = Math.max(longest, Math.max(c.stop_timeout, c.reload_timeout) + c.startsecs);
  return REPLY_SLACK_MS + longest;
}

interface Pending {
  readonly id: number;
  readonly req: Request;
  readonly resolve: (reply: Reply) => void;
  /** Until it is sent: MANAGER_ANSWER_MS from its arrival. Once sent: replyDeadline. */
  timer: Timer;
  /** Handed to the manager (false: waiting for it to be ready). */
  sent: boolean;
}

/** `stop worker`, `status all`, `reread`: a request as messages name it. */
function what(req: Request): string {
  const name = 'name' in req && req.name !== null ? ` ${req.name}` : '';
  return `"${req.cmd}${name}"`;
}

export class Control {
  private server: ControlServer | null = null;
  private manager: { readonly channel: Channel; ready: boolean } | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** The pid probe in the manager's hands, or the wait before the next one: only while a long request is sent. */
  private probe: { readonly id: number; readonly timer: Timer } | null = null;
  private probeNext: Timer | null = null;

  constructor(private readonly os: Os, private readonly deps: ControlDeps) {}

  /**
   * A Control serving on `path`. Throws what serveControl throws (an
   * OsError EADDRINUSE when a live drover has the path). The arbiter had
   * better make its Control once, with `new`, and `listen`: a Control made
   * later, after a manager was spawned, has never been told of it
   * (setManager) and would answer that none runs.
   */
  static async open(os: Os, path: string, deps: ControlDeps): Promise<Control> {
    const c = new Control(os, deps);
    await c.listen(path);
    return c;
  }

  /** The path served, or null when none is. */
  get path(): string | null {
    return this.server?.path ?? null;
  }

  /**
   * Serves on `path`: the first time, or after a reload changed
   * control_socket, or to try again after a failure. The socket served
   * before (on another path) is closed only once the new one listens, so a
   * path that cannot be served throws and leaves the old one in service.
   */
  async listen(path: string): Promise<void> {
    if (this.closed || this.server?.path === path) return;
    const next = await serveControl(this.os, path, (req) => this.handle(req), this.deps.log);
    if (this.closed || this.server?.path === path) {
      next.close(); // closed, or served already, while this one was opening
      return;
    }
    this.server?.close();
    this.server = next;
  }

  /**
   * The arbiter calls this with a manager's channel right after spawning
   * it, and with null once it has exited. Requests the old manager had in
   * hand get an error reply; those still waiting for a manager to be ready
   * go to the new one.
   */
  setManager(channel: Channel | null): void {
    if (this.manager?.channel === channel) return;
    this.stopProbing();
    this.manager = channel === null ? null : { channel, ready: false };
    for (const p of [...this.pending.values()]) {
      if (p.sent) {
        this.settle(p.id, {
          ok: false,
          error: `the companion manager exited before it answered ${what(p.req)}, and its companions were stopped with it; ` +
            'unless drover is stopping, the arbiter starts a new manager (the error log says why the old one ended): drover ctl status shows where things stand',
        });
      } else if (channel === null) {
        this.settle(p.id, { ok: false, error: this.noManager(p.req) });
      }
    }
  }

  /**
   * Every message from the manager's channel goes through here first. True
   * when it was a reply to a forwarded request, consumed; false for what
   * the arbiter handles itself ('ready' is seen here too: queued requests
   * go out then).
   */
  fromManager(msg: unknown): boolean {
    if (typeof msg !== 'object' || msg === null) return false;
    const m = msg as ManagerReport;
    if (m.t === 'ready') {
      if (this.manager !== null && !this.manager.ready) {
        this.manager.ready = true;
        for (const p of [...this.pending.values()]) if (!p.sent) this.send(p);
      }
      return false;
    }
    if (m.t !== 'ctl-reply') return false;
    if (this.probe !== null && m.id === this.probe.id) {
      // Alive: probe again in a while if a long request is still out.
      this.probe.timer.cancel();
      this.probe = null;
      this.probeNext = this.os.timer(PROBE_EVERY_MS, () => this.sendProbe());
      return true;
    }
    // An id nobody waits for any more (it timed out, or a manager that already counts as gone answered late): dropped.
    if (!this.pending.has(m.id)) return true;
    const reply = checkReply(m.reply) ?? { ok: false, error: `the companion manager answered something that is not a reply: ${quote(m.reply)}` };
    this.settle(m.id, reply);
    return true;
  }

  /** Stops serving: the socket is unlinked, open connections dropped, waiting requests answered (to nobody) and forgotten. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopProbing();
    this.server?.close();
    this.server = null;
    for (const p of [...this.pending.values()]) this.settle(p.id, { ok: false, error: 'drover is stopping' });
  }

  // ------------------------------------------------------------ requests

  /** A request of the arbiter's own (a /metrics scrape asks the companions' status), settled within `ms`. */
  ask(req: Request, ms: number): Promise<Reply> {
    return new Promise((resolve) => {
      const t = this.os.timer(ms, () => resolve({ ok: false, error: `no answer within ${ms} ms` }));
      void this.handle(req).then((r) => {
        t.cancel();
        resolve(r);
      });
    });
  }

  private async handle(req: Request): Promise<Reply> {
    switch (req.cmd) {
      case 'stats':
        return { ok: true, ...this.deps.stats() };
      case 'version':
        // pid and cwd: how drover ctl, run without --config, tells which drover runs from its directory.
        return { ok: true, version: this.deps.version, arbiter: { pid: this.os.pid, cwd: this.os.cwd() } };
      case 'reload': {
        // No deadline here: the arbiter aborts a reload whose workers do not boot within `timeout`, and that settles this.
        const r = await this.deps.reload();
        return r.ok ? { ok: true, generation: r.generation } : { ok: false, error: r.error };
      }
      case 'scale': {
        const r = this.deps.scale(req.workers);
        return r.ok ? { ok: true, workers: r.target, min: r.min, max: r.max } : { ok: false, error: r.error };
      }
      default:
        return this.forward(req);
    }
  }

  private forward(req: Request): Promise<Reply> {
    const m = this.manager;
    if (m === null || this.closed) return Promise.resolve({ ok: false, error: this.closed ? 'drover is stopping' : this.noManager(req) });
    return new Promise<Reply>((resolve) => {
      const id = this.nextId++;
      const timer = this.os.timer(MANAGER_ANSWER_MS, () => {
        const p = this.pending.get(id);
        if (p === undefined) return;
        const s = MANAGER_ANSWER_MS / 1000;
        this.deps.log.warning(`control: the companion manager did not ${p.sent ? 'answer' : 'get ready for'} ${what(req)} within ${s} s`);
        this.settle(id, {
          ok: false,
          error: p.sent
            ? `companion manager not responding: no answer to ${what(req)} within ${s} s; it may be hung or stopped (the arbiter replaces a manager that stays silent; the error log says more)`
            : `companion manager not responding: it has not become ready within ${s} s, so ${what(req)} was not sent; try again shortly (the error log says why)`,
        });
      });
      const p: Pending = { id, req, resolve, timer, sent: false };
      this.pending.set(id, p);
      if (m.ready) this.send(p);
    });
  }

  private send(p: Pending): void {
    p.sent = true;
    const ok = this.manager?.channel.send({ t: 'ctl', id: p.id, req: p.req } satisfies ToManager) ?? false;
    // The channel is gone: the manager is exiting; its reap will follow.
    if (!ok) {
      this.settle(p.id, { ok: false, error: `the companion manager is exiting and cannot take ${what(p.req)}: the arbiter starts a new one; try again in a few seconds` });
      return;
    }
    if (!isLong(p.req)) return; // its MANAGER_ANSWER_MS timer runs on
    // A start, stop or restart may honestly take as long as its companions do: a backstop for it, and probes meanwhile.
    p.timer.cancel();
    const ms = replyDeadline(p.req, this.deps.companions());
    p.timer = this.os.timer(ms, () => {
      this.deps.log.warning(`control: the companion manager did not answer ${what(p.req)} within ${ms / 1000} s`);
      this.settle(p.id, { ok: false, error: `the companion manager did not answer ${what(p.req)} within ${ms / 1000} s: it may be hung; the error log may say why` });
    });
    if (this.probe === null && this.probeNext === null) this.sendProbe();
  }

  /** Asks the manager for its pid while a long request is in its hands; no answer in MANAGER_ANSWER_MS fails every request sent to it. */
  private sendProbe(): void {
    this.probeNext = null;
    const m = this.manager;
    if (m === null || this.closed || ![...this.pending.values()].some((p) => p.sent && isLong(p.req))) return;
    const id = this.nextId++;
    if (!m.channel.send({ t: 'ctl', id, req: { cmd: 'pid', name: null } } satisfies ToManager)) return; // exiting: setManager(null) answers
    const timer = this.os.timer(MANAGER_ANSWER_MS, () => {
      this.probe = null;
      const sent = [...this.pending.values()].filter((p) => p.sent);
      this.deps.log.warning(`control: the companion manager has not answered for ${MANAGER_ANSWER_MS / 1000} s; failing ${sent.length} request(s) in its hands`);
      for (const p of sent) {
        this.settle(p.id, {
          ok: false,
          error: `companion manager not responding: it has not answered anything for ${MANAGER_ANSWER_MS / 1000} s while ${what(p.req)} was in its hands; ` +
            'it may be hung or stopped (the arbiter replaces a manager that stays silent): drover ctl status shows where things stand',
        });
      }
    });
    this.probe = { id, timer };
  }

  private stopProbing(): void {
    this.probe?.timer.cancel();
    this.probe = null;
    this.probeNext?.cancel();
    this.probeNext = null;
  }

  private settle(id: number, reply: Reply): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    p.timer.cancel();
    p.resolve(reply);
  }

  private noManager(req: Request): string {
    if (this.deps.companions().length === 0) {
      return `${req.cmd} is a companion command, and ${NO_COMPANIONS}: add "companions" to the config and reload drover (HUP); ` +
        'stats, version, reload and scale answer without them';
    }
    return 'the companion manager is not running: it exited, and unless drover is stopping the arbiter starts a new one shortly (the error log says why); try again in a few seconds';
  }
}
