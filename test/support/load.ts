// A load of looping HTTP clients, for the real OS and the simulator alike:
// `once` makes one request; every answer and every failure is counted.

export interface LoadStats {
  ok: number;
  failed: number;
  errors: string[];
  /** Bodies of the 200 answers (the test apps answer with the worker's pid). */
  pids: Set<string>;
}

export interface Load {
  readonly stats: LoadStats;
  stop(): Promise<LoadStats>;
}

/** `concurrency` loops of `once(loop)`; after a failure a loop waits with `pause` before the next request. */
export function loops(concurrency: number, once: (loop: number) => Promise<{ status: number; body: string }>, pause: () => Promise<void>, done: () => void = () => {}): Load {
  const stats: LoadStats = { ok: 0, failed: 0, errors: [], pids: new Set() };
  let running = true;
  const all = Array.from({ length: concurrency }, async (_, i) => {
    while (running) {
      try {
        const r = await once(i);
        if (r.status === 200) {
          stats.ok++;
          stats.pids.add(r.body);
        } else {
          stats.failed++;
          stats.errors.push(`status ${r.status}`);
        }
      } catch (e) {
        stats.failed++;
        stats.errors.push((e as Error).message);
        await pause();
      }
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(all);
      done();
      return stats;
    },
  };
}
