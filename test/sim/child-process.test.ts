// node:child_process in a simulated process (net-guard.ts): not simulated, so
// refused at the call with ERR_DROVER_NOT_SIMULATED naming the caller. A
// review's app left 9 real `sleep 1000` processes behind after drover sim
// exited, and ran execSync for real.
import cp, { execFileSync, spawn as namedSpawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { boot } from './helpers.js';

const HERE = 'test/sim/child-process.test.ts';

describe('processes on the host are not simulated', () => {
  it('each child_process entry point throws ERR_DROVER_NOT_SIMULATED in a simulated process, and starts nothing; the host\'s are its own', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'drover-cp-')), 'ran');
    const calls: Record<string, () => unknown> = {
      'child_process.spawn': () => namedSpawn('sleep', ['1000']),
      'child_process.spawnSync': () => cp.spawnSync('touch', [marker]),
      'child_process.exec': () => cp.exec(`touch ${marker}`),
      'child_process.execSync': () => cp.execSync(`touch ${marker}`),
      'child_process.execFile': () => cp.execFile('touch', [marker]),
      'child_process.execFileSync': () => cp.execFileSync('touch', [marker]),
      'child_process.fork': () => cp.fork(marker),
      'child_process.exec (promisified)': () => promisify(cp.exec)(`touch ${marker}`),
    };
    const seen: Record<string, { code: unknown; message: string }> = {};
    // Without the guard these start real processes: each is killed after the run.
    const started: { kill(sig: string): unknown }[] = [];
    const { k, pid } = boot({
      main: async () => {
        for (const [what, call] of Object.entries(calls)) {
          try {
            const r = call();
            if (r !== null && typeof r === 'object' && typeof (r as { kill?: unknown }).kill === 'function') started.push(r as (typeof started)[number]);
            await r;
            seen[what] = { code: 'none', message: String((r as { pid?: number })?.pid) };
          } catch (e) {
            seen[what] = { code: (e as { code?: string }).code, message: (e as Error).message };
          }
        }
      },
    });
    try {
      await k.run();
    } finally {
      for (const c of started) c.kill('SIGKILL');
    }
    expect(started).toEqual([]);
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    expect(Object.keys(seen)).toEqual(Object.keys(calls));
    for (const [what, s] of Object.entries(seen)) {
      expect(s, what).toEqual({
        code: 'ERR_DROVER_NOT_SIMULATED',
        message: `drover sim: processes on the host are not simulated (node:child_process): ${HERE} called ${what}(); ` +
          'run this code outside the simulator, or give the app a stand-in for it when DROVER_SIM is set',
      });
    }
    expect(existsSync(marker)).toBe(false);
    // The host's own after the run.
    execFileSync('touch', [marker]);
    expect(existsSync(marker)).toBe(true);
  });
});
