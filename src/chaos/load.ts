// What the chaos workloads (workload.ts, app-run.ts) share: an open loop,
// and a client's kept-alive connections.
import type { Os } from '../os/types.js';
import type { Conn } from './client.js';

/**
 * `fn` at exponentially spaced times, `rate` a simulated second on average,
 * while `going()`: an open loop, which sends on schedule whether or not
 * answers came (a closed one would slow down with the server it measures).
 */
export function openLoop(os: Os, rate: number, going: () => boolean, fn: () => void): void {
  void (async () => {
    while (going()) {
      await os.sleep(Math.max(1, Math.round((-Math.log(1 - os.random()) * 1000) / rate)));
      if (going()) fn();
    }
  })();
}

/**
 * Kept-alive connections, one request at a time each; when all are busy a
 * request opens its own (as a browser does), so the client never queues on
 * its side: an open loop must not turn into a closed one.
 */
export class KeptAlive {
  private readonly conns: (Conn | null)[] = Array.from({ length: 8 }, (): Conn | null => null);

  /** A slot free for a request: its connection idle, or done with nothing in flight (a closing one finishes its answer first); -1 when none is. */
  free(): number {
    return this.conns.findIndex((c) => c === null || c.idle || (c.done && !c.busy));
  }

  /** The connection of a free slot: its own if idle, else a new one from `connect`. */
  at(slot: number, connect: () => Conn): Conn {
    const c = this.conns[slot]!;
    return c !== null && c.idle ? c : (this.conns[slot] = connect());
  }

  closeAll(): void {
    for (const c of this.conns) c?.destroy();
  }
}
