// The nemesis of a chaos run (VOPR's word): it plays the fault schedule the
// seed drew against drover, from the driver process — KILLs, signals,
// control commands, stalls, config changes — and leaves the load to the
// workload and the judging to the checker. The same nemesis runs drover's
// own scenarios (run.ts) and a user's deployment (app-run.ts); what differs
// is the target: which programs each KILL picks from, and whether configs
// of our making and a hanging route exist.
import type { Os } from '../os/types.js';
import { request as ctlRequest } from '../runtime/control/client.js';
import type { Kernel, ProcessInfo } from '../sim/index.js';
import { describeFault, type Fault } from './scenario.js';
import { kill, type Service } from './service.js';

/**
 * Faults due while the driver was busy (a restart waits for the old tree to
 * go) are spread out again, this far apart: independent faults do not land
 * in one millisecond, and three KILLs at once (a companion, its manager,
 * the arbiter) leave no drover process alive to reap and clean up after the
 * first (seed 123 before this rule: an artefact of the driver, not of
 * drover).
 */
export const FAULT_GAP_MS = 100;

type KillKind = 'kill-worker' | 'kill-slow-worker' | 'kill-manager' | 'kill-companion';

export interface Target {
  readonly k: Kernel;
  readonly service: Service;
  /** drover's control socket. */
  readonly socket: string;
  /** The programs each KILL picks its victim from. */
  readonly victims: Readonly<Record<KillKind, readonly string[]>>;
  /** The names `ctl` commands name (companions; 'none' when there are none). */
  readonly names: readonly string[];
  /** hup-changed: write another good config (the nemesis sends the HUP). Without it the kind is skipped. */
  readonly writeChanged?: (f: Fault) => void;
  /** hup-broken-config, hup-broken-app: write a config that must be refused whole. */
  readonly writeBroken?: (f: Fault) => void;
  /** stall-worker: a request that holds a worker for ever. */
  readonly stallWorker?: (f: Fault) => void;
  readonly note: (text: string) => void;
}

export class Nemesis {
  /** Managers stopped by stall-manager. */
  private readonly stalled = new Set<number>();

  constructor(
    private readonly os: Os,
    private readonly t: Target,
    /** Told of each fault as it is played (the run counts them). */
    private readonly played: (f: Fault) => void,
  ) {}

  /** Plays `faults` in order, each at its time or FAULT_GAP_MS after the last, until `stop()`. */
  async run(faults: readonly Fault[], stop: () => boolean): Promise<void> {
    let last = -Infinity;
    for (const f of faults) {
      if (stop()) break;
      const at = Math.max(f.at, last + FAULT_GAP_MS);
      if (at > this.os.now()) await this.os.sleep(at - this.os.now());
      last = this.os.now();
      await this.inject(f);
    }
  }

  private live(programs: readonly string[]): ProcessInfo[] {
    return this.t.k.processes().filter((p) => programs.includes(p.program) && p.state === 'running');
  }

  private async inject(f: Fault): Promise<void> {
    const { os, t } = this;
    this.played(f);
    t.note(`fault ${describeFault(f)}`);
    switch (f.kind) {
      case 'kill-worker':
      case 'kill-slow-worker':
      case 'kill-manager':
      case 'kill-companion': {
        const p = pick(this.live(t.victims[f.kind]), f.pick);
        if (p) kill(os, p.pid, 'SIGKILL');
        return;
      }
      case 'kill-arbiter': {
        // A manager we stopped cannot act on its parent-death TERM until it
        // is continued (on Linux too), and the simulator has no SIGCONT: we
        // end our own stall first, the only way the simulator has, and give
        // the arbiter a fault's gap to reap it and kill its companions'
        // groups, as it does for any manager that dies (killed in one
        // millisecond with the arbiter, a forked grandchild would be left
        // to nobody: seed 0x2b of parent-death).
        const ended = t.k.processes().filter((p) => this.stalled.has(p.pid) && p.state === 'stopped');
        for (const p of ended) {
          kill(os, p.pid, 'SIGKILL');
          t.note(`ended the stall of manager ${p.pid} before killing its arbiter`);
        }
        if (ended.length > 0) await os.sleep(FAULT_GAP_MS);
        t.service.signal('SIGKILL');
        return t.service.restart('after its SIGKILL');
      }
      case 'hup':
        return t.service.signal('SIGHUP');
      case 'hup-changed':
        if (!t.writeChanged) return;
        t.writeChanged(f);
        return t.service.signal('SIGHUP');
      case 'hup-broken-config':
      case 'hup-broken-app':
        if (!t.writeBroken) return;
        // The next good write puts a good file back; a restart restores it too.
        t.writeBroken(f);
        return t.service.signal('SIGHUP');
      case 'ttin':
        return t.service.signal('SIGTTIN');
      case 'ttou':
        return t.service.signal('SIGTTOU');
      case 'ctl': {
        const name = pick(t.names, f.pick) ?? 'none';
        const cmds = [{ cmd: 'status' }, { cmd: 'stats' }, { cmd: 'restart', name }, { cmd: 'stop', name }, { cmd: 'start', name }];
        // No answer (a restart took the socket away, a stalled manager) is the nemesis's business only.
        await ctlRequest(os, t.socket, cmds[(f.pick >>> 3) % cmds.length] as never, 10_000).catch(() => null);
        return;
      }
      case 'ctl-malformed': {
        const junk = ['{"cmd":\n', 'not json at all\n', `${'x'.repeat(70_000)}\n`, '{"cmd":"stop"}\n'][f.pick % 4]!;
        try {
          const sock = await os.connect({ path: t.socket });
          sock.on('error', () => {});
          sock.end(junk);
          os.timer(2000, () => sock.destroy());
        } catch {
          // no control socket right now (a restart)
        }
        return;
      }
      case 'stall-worker':
        t.stallWorker?.(f);
        return;
      case 'stall-manager': {
        // SIGSTOP, never continued. The simulator has neither SIGSTOP nor
        // SIGCONT: SIGTTIN, which the manager does not handle, stops it the
        // same way (its default action). The arbiter must hear the silence.
        const p = pick(this.live(['companion-manager']), f.pick);
        if (!p) return;
        kill(os, p.pid, 'SIGTTIN');
        this.stalled.add(p.pid);
        return;
      }
    }
  }
}

function pick<T>(xs: readonly T[], n: number): T | undefined {
  return xs.length === 0 ? undefined : xs[n % xs.length];
}
