// The arbiter's service manager in a chaos run, as systemd is on a host: it
// starts the arbiter, starts it again after a KILL once the whole old tree
// is gone (systemd waits for the cgroup to empty), and at the end stops it
// with a TERM and waits for every process of the tree.
import type { Child, Os } from '../os/types.js';
import { ignoring } from '../runtime/assert.js';
import type { Kernel, ProcessInfo } from '../sim/index.js';

export interface ServiceOptions {
  /** The arbiter's command line. */
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** The programs of the arbiter's process tree. */
  readonly tree: ReadonlySet<string>;
  /** How long a restart waits for the old tree to go. */
  readonly goneMs: number;
  /** Called before each start after the first (a run puts a good config back). */
  readonly beforeRestart?: () => void;
  readonly note: (text: string) => void;
}

export class Service {
  private child: Child;
  /** A restart is under way: a signal now would go to an arbiter on its way out, or not started yet. */
  restarting = false;

  constructor(
    private readonly os: Os,
    private readonly k: Kernel,
    private readonly o: ServiceOptions,
  ) {
    this.child = this.start();
    o.note(`spawned arbiter ${this.child.pid}`);
  }

  get pid(): number {
    return this.child.pid;
  }

  /** The tree's processes not yet reaped. */
  tree(): ProcessInfo[] {
    return this.k.processes().filter((p) => this.o.tree.has(p.program) && p.state !== 'zombie');
  }

  /** How the arbiter ended, if it has (and is not reaped). */
  exited(): { code: number | null; signal: string | null } | undefined {
    return this.k.exitStatus(this.child.pid);
  }

  /** The arbiter is gone (killed, or it exited): wait for its tree, then start it again. */
  async restart(why: string): Promise<void> {
    this.restarting = true;
    const deadline = this.os.now() + this.o.goneMs;
    while (this.tree().length > 0 && this.os.now() < deadline) await this.os.sleep(100);
    this.reap();
    this.o.beforeRestart?.();
    this.child = this.start();
    // As a service manager does: no signal before the process has started
    // at all (Node's own boot has no handlers; the arbiter queues signals
    // from its first line on).
    await this.os.sleep(1);
    this.restarting = false;
    this.o.note(`restarted arbiter as ${this.child.pid} (${why})`);
  }

  /**
   * Restart=on-failure: while `on()`, an arbiter that exits (its pidfile
   * cannot be written, say) is started again.
   */
  async restartOnFailure(on: () => boolean): Promise<void> {
    while (on()) {
      await this.os.sleep(100);
      const st = this.exited();
      if (!on() || this.restarting || st === undefined) continue;
      await this.restart(`it exited with ${st.signal ?? `code ${st.code}`}; restarted as Restart=on-failure does`);
    }
  }

  /** A signal to the arbiter that runs now; one already gone is no error. */
  signal(sig: Parameters<Os['kill']>[1]): void {
    kill(this.os, this.child.pid, sig);
  }

  /** The TERM at the end: waits out a restart first (the TERM goes to the arbiter that runs), then up to `waitMs` for the tree. */
  async stop(waitMs: number, before: (pid: number) => void): Promise<void> {
    while (this.restarting) await this.os.sleep(50);
    this.o.note('TERM');
    before(this.child.pid);
    this.signal('SIGTERM');
    const end = this.os.now() + waitMs;
    while (this.tree().length > 0 && this.os.now() < end) await this.os.sleep(100);
    this.reap();
  }

  private start(): Child {
    return this.os.spawn({ program: 'arbiter', args: [...this.o.args], channel: false, ...(this.o.env ? { env: this.o.env } : {}) });
  }

  private reap(): void {
    ignoring(['ECHILD'], () => this.os.waitpid(this.child.pid)); // reaped already
  }
}

/** kill(2) from the harness: a process that is gone already is no error. */
export function kill(os: Os, pid: number, sig: Parameters<Os['kill']>[1]): void {
  ignoring(['ESRCH'], () => os.kill(pid, sig));
}

/**
 * After the faults: wait up to `ms` for `settled()` to hold for 3 s on end
 * (looked at every 250 ms), or for `stop()`.
 */
export async function settle(os: Os, ms: number, settled: () => boolean, stop: () => boolean): Promise<void> {
  const end = os.now() + ms;
  let stableSince = -1;
  while (os.now() < end && !stop()) {
    if (settled()) {
      if (stableSince < 0) stableSince = os.now();
      if (os.now() - stableSince >= 3000) break;
    } else stableSince = -1;
    await os.sleep(250);
  }
}
