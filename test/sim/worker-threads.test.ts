// node:worker_threads in a simulated process (net-guard.ts): a Worker is a
// thread on the host, outside virtual time, that no seed decides and no kill
// of its process stops. Refused at the call with ERR_DROVER_NOT_SIMULATED
// naming the caller, as node:child_process is.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as wtNs from 'node:worker_threads';
import wt, { Worker as NamedWorker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { boot } from './helpers.js';

const HERE = 'test/sim/worker-threads.test.ts';
const HOST_WORKER = wt.Worker;

describe('threads on the host are not simulated', () => {
  it('new Worker() throws ERR_DROVER_NOT_SIMULATED in a simulated process and starts no thread; the host\'s Worker is its own', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'drover-wt-')), 'ran');
    const code = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`;
    const calls: Record<string, () => unknown> = {
      'worker_threads.Worker': () => new wt.Worker(code, { eval: true }),
      'worker_threads.Worker (named import)': () => new NamedWorker(code, { eval: true }),
      'worker_threads.Worker (subclass)': () => new (class extends wtNs.Worker {})(code, { eval: true }),
    };
    const seen: Record<string, { code: unknown; message: string }> = {};
    // Without the guard these start real threads: each is ended after the run.
    const started: { terminate(): Promise<number> }[] = [];
    const { k, pid } = boot({
      main: async () => {
        for (const [what, call] of Object.entries(calls)) {
          try {
            started.push(call() as (typeof started)[number]);
            seen[what] = { code: 'none', message: '' };
          } catch (e) {
            seen[what] = { code: (e as { code?: string }).code, message: (e as Error).message };
          }
        }
      },
    });
    await k.run();
    const ran = await Promise.all(started.map((w) => new Promise((r) => (w as unknown as NodeJS.EventEmitter).once('exit', r))));
    expect(ran).toEqual([]);
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    expect(Object.keys(seen)).toEqual(Object.keys(calls));
    for (const [what, s] of Object.entries(seen)) {
      expect(s, what).toEqual({
        code: 'ERR_DROVER_NOT_SIMULATED',
        message: `drover sim: threads on the host are not simulated (node:worker_threads): ${HERE} called worker_threads.Worker(); ` +
          'run this code outside the simulator, or give the app a stand-in for it when DROVER_SIM is set',
      });
    }
    expect(existsSync(marker)).toBe(false);
    // After the run: the host's own Worker, which runs.
    expect(wt.Worker).toBe(HOST_WORKER);
    expect(NamedWorker).toBe(HOST_WORKER);
    const w = new wt.Worker(code, { eval: true });
    await new Promise((r) => w.once('exit', r));
    expect(readFileSync(marker, 'utf8')).toBe('ran');
  });
});
