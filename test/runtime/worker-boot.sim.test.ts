// A slow-lane worker listens on its own socket while its app loads (on
// Linux the listen starts a helper process: a reload waits for the slower of
// the two, not their sum). A socket it cannot take still fails the boot, and
// is what it says, whatever the app's load said.
import { expect, test } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { EXIT_APP_LOAD, EXIT_BOOT, type WorkerSpec } from '../../src/runtime/protocol.js';
import { runtimePrograms } from '../../src/runtime/programs.js';
import { Kernel } from '../../src/sim/index.js';
import { SIM_APP } from './sim.js';

const BROKEN = SIM_APP.replace('sim-app.js', 'broken-import.js');
const TOO_LONG = `/tmp/${'x'.repeat(120)}.sock`;

function spec(app: string, laneSocket: string): WorkerSpec {
  return {
    app, generation: 1, role: 'slow', lanes: null, laneSocket, keepAlive: 5000,
    clients: { headerTimeout: 10_000, bodyTimeout: 10_000, sendTimeout: 10_000, maxConnections: 1000, requestTimeout: 0 },
    gracefulTimeout: 1000, heartbeat: 1000, maxRequests: 0, accessLog: null, errorLog: '-', logLevel: 'info', logFormat: 'text', forwardedAllowIps: [],
  };
}

/** Starts a slow-lane worker with `s`; what it told its parent, and how it ended. */
async function boot(s: WorkerSpec): Promise<{ said: unknown[]; code: number | null }> {
  const said: unknown[] = [];
  let pid = 0;
  const main = async (os: Os) => {
    const child = os.spawn({ program: 'slow-worker', args: [JSON.stringify(s)] });
    pid = child.pid;
    child.channel!.onMessage((m) => said.push(m));
    for (let t = 0; t < 100 && os.waitpid(pid) === null; t++) await os.sleep(50);
    if (said.some((m) => (m as { t: string }).t === 'booted')) os.kill(pid, 'SIGINT');
  };
  const k = new Kernel({ seed: 1, programs: [...runtimePrograms, programs(import.meta.url, { main })] });
  k.spawn({ program: 'main' });
  await k.run();
  return { said: said.filter((m) => (m as { t: string }).t !== 'hb'), code: k.exitStatus(pid)?.code ?? null };
}

test('a slow-lane worker that cannot take its socket fails its boot with that, even when its app fails to load too', async () => {
  const r = await boot(spec(BROKEN, TOO_LONG));
  expect(r.said).toHaveLength(1);
  expect(r.said[0]).toMatchObject({ t: 'boot-error', code: EXIT_BOOT });
  expect((r.said[0] as { message: string }).message).toMatch(/^slow-lane worker cannot listen at \/tmp\/x+\.sock: ENAMETOOLONG/);
  expect(r.code).toBe(EXIT_BOOT);
});

test("a slow-lane worker with its socket and a broken app says the app's error", async () => {
  const r = await boot(spec(BROKEN, '/tmp/lane.sock'));
  expect(r.said).toHaveLength(1);
  expect(r.said[0]).toMatchObject({ t: 'boot-error', code: EXIT_APP_LOAD });
  expect(r.code).toBe(EXIT_APP_LOAD);
});

test('a slow-lane worker with its socket and its app boots', async () => {
  const r = await boot(spec(SIM_APP, '/tmp/lane.sock'));
  expect(r.said[0]).toEqual({ t: 'booted' });
});
