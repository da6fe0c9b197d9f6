// Companions on the simulated kernel: the real arbiter starts the real
// companion manager, which supervises simulated commands; a scenario drives
// it through the control socket (the arbiter's, which forwards companion
// commands to the manager) and with signals and kills.
import { expect, test } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { request } from '../../src/runtime/control/client.js';
import type { Reply } from '../../src/runtime/control/protocol.js';
import { SIM_APP, simulate, type Ctl } from './sim.js';

const SOCK = '/tmp/ctl.sock';
const CONFIG = '/tmp/drover.json';

/** Simulated commands: argv[0] names one of these. */
const commands = programs(import.meta.url, {
  // Writes a line every 100 ms, for ever.
  ticker: async (os: Os) => {
    for (let i = 0; ; i++) {
      os.stdout.write(`tick ${i}\n`);
      await os.sleep(100);
    }
  },
  // Ignores TERM, and forks a grandchild (same group) that ignores it too.
  stubborn: async (os: Os, args) => {
    os.onSignal('SIGTERM', () => os.stdout.write('TERM ignored\n'));
    if (args[0] !== 'child') os.spawn({ command: ['stubborn', 'child'] });
    os.timer(1e9, () => {});
  },
  // Dies 200 ms after it starts.
  crasher: async (os: Os) => {
    await os.sleep(200);
    os.stderr.write('crashing\n');
    os.exit(3);
  },
});

function config(companions: object[], extra: object = {}): string {
  return JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 1, control_socket: SOCK, companion_stop_timeout: 2, ...extra, companions });
}

const TICKER = { name: 'ticker', command: ['ticker'], stdout: '/tmp/ticker.log' };
const STUBBORN = { name: 'stubborn', command: ['stubborn'] };
const CRASHER = { name: 'crasher', command: ['crasher'], restart_delay: 1 };

async function ctl(c: Ctl, req: object): Promise<any> {
  return (await request(c.os, SOCK, req as never, 30_000)) as Reply;
}

async function ready(c: Ctl): Promise<void> {
  await c.waitLog(/companion manager \d+ running/);
  await c.booted(1);
}

/** Companion processes (pid → program) that are alive, from the kernel's table. */
function alive(c: Ctl, program: string): number[] {
  return c.k.processes().filter((p) => p.program === program && p.state !== 'zombie').map((p) => p.pid);
}

const run = (seed: number, companions: object[], body: (c: Ctl) => Promise<void>, extra: object = {}) =>
  simulate(seed, ['--config', CONFIG], body, { [CONFIG]: config(companions, extra) }, [commands]);

test('companions start with the server, reach RUNNING after startsecs, and their output is logged and tailed', async () => {
  const r = await run(1, [TICKER, STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const s = await ctl(c, { cmd: 'status' });
    expect(s.ok).toBe(true);
    expect(s.companions.map((x: any) => [x.name, x.state])).toEqual([['ticker', 'RUNNING'], ['stubborn', 'RUNNING']]);
    expect(c.os.fs.readFile('/tmp/ticker.log')).toMatch(/^tick 0\ntick 1\n/);
    const t = await ctl(c, { cmd: 'tail', name: 'ticker', lines: 2 });
    expect(t.lines).toHaveLength(2);
    expect(t.lines[1]).toMatch(/^tick \d+$/);
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0 });
  });
  expect(r.left).toEqual([]);
});

test('stop: a companion that ignores TERM is KILLed at stop_timeout, with the grandchild it forked; it stays stopped', async () => {
  await run(2, [STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    expect(alive(c, 'stubborn')).toHaveLength(2);
    const t0 = c.os.now();
    const r = await ctl(c, { cmd: 'stop', name: 'stubborn' });
    expect(r.companions[0].state).toBe('STOPPED');
    expect(c.os.now() - t0).toBeGreaterThanOrEqual(2000); // stop_timeout, then KILL
    expect(c.os.now() - t0).toBeLessThan(3000);
    expect(alive(c, 'stubborn')).toEqual([]);
    expect(c.log()).toMatch(/companion stubborn: .*kill/i);
    await c.os.sleep(5000);
    expect((await ctl(c, { cmd: 'status', name: 'stubborn' })).companions[0].state).toBe('STOPPED');
    const s = await ctl(c, { cmd: 'start', name: 'stubborn' });
    expect(s.companions[0].state).toBe('RUNNING');
  });
});

test('a companion that dies on its own takes the grandchild it forked with it (found by chaos seed 6)', async () => {
  await run(6, [STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const [leader, grandchild] = alive(c, 'stubborn');
    c.os.kill(leader!, 'SIGKILL');
    await c.os.sleep(50);
    expect(alive(c, 'stubborn')).not.toContain(grandchild);
    expect(c.k.processes().some((p) => p.pid === grandchild && p.state !== 'zombie')).toBe(false);
  });
});

test('an exit nobody asked for backs off, then restarts; restart respawns once the old one is reaped', async () => {
  await run(3, [CRASHER, TICKER], async (c) => {
    await ready(c);
    await c.waitLog(/companion crasher: .*exit.*code 3/i);
    const s = await ctl(c, { cmd: 'status', name: 'crasher' });
    expect(['BACKOFF', 'STARTING']).toContain(s.companions[0].state);
    await c.os.sleep(3000);
    expect((await ctl(c, { cmd: 'status', name: 'crasher' })).companions[0].exits).toBeGreaterThanOrEqual(2);
    const before = (await ctl(c, { cmd: 'pid', name: 'ticker' })).pid;
    const r = await ctl(c, { cmd: 'restart', name: 'ticker' });
    expect(r.companions[0].state).toBe('RUNNING');
    expect(r.companions[0].pid).not.toBe(before);
    expect(alive(c, 'ticker')).toEqual([r.companions[0].pid]);
  });
});

test('the arbiter SIGKILLed: the manager stops every companion (TERM, deadline, KILL) and exits; nothing is left', async () => {
  const r = await run(4, [TICKER, STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    c.signal('SIGKILL');
    await c.exited();
    const t0 = c.os.now();
    // stop_timeout is 2 s: everything must be gone by then plus one second.
    await c.os.sleep(3000);
    expect(c.k.processes().filter((p) => p.state !== 'zombie' && p.pid !== 100).map((p) => p.program)).toEqual([]);
    expect(c.os.now() - t0).toBeLessThanOrEqual(3000);
  });
  expect(r.left).toEqual([]);
});

test('the manager SIGKILLed: its companions and their children die with it, the arbiter starts a new manager; ctl answers throughout', async () => {
  await run(5, [TICKER, STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const old = { ticker: alive(c, 'ticker'), stubborn: alive(c, 'stubborn') };
    const [mgr] = alive(c, 'companion-manager');
    expect(await ctl(c, { cmd: 'pid' })).toEqual({ ok: true, pid: mgr });
    // A stop in the manager's hands: stubborn ignores TERM, so 300 ms in it is still waiting for stop_timeout.
    const t0 = c.os.now();
    const stopping = ctl(c, { cmd: 'stop', name: 'stubborn' });
    await c.os.sleep(300);
    c.os.kill(mgr!, 'SIGKILL');
    // Answered with an error as soon as the arbiter reaps the manager, not at some deadline.
    expect(await stopping).toEqual({ ok: false, error: expect.stringMatching(/^the companion manager exited before it answered "stop stubborn", and its companions were stopped with it/) });
    expect(c.os.now() - t0).toBeLessThan(1000);
    await c.waitLog(/Companion manager \d+ was killed by SIGKILL; killed 2 companion group\(s\)/);
    // Until the new manager is up, the arbiter answers for it; stats as ever.
    expect(await ctl(c, { cmd: 'status' })).toEqual({ ok: false, error: expect.stringMatching(/^the companion manager is not running: it exited, and unless drover is stopping the arbiter starts a new one shortly/) });
    expect(await ctl(c, { cmd: 'stats' })).toMatchObject({ ok: true, generations: [{ generation: 1 }] });
    await c.os.sleep(100);
    for (const pid of [...old.ticker, ...old.stubborn]) expect(c.k.processes().find((p) => p.pid === pid && p.state !== 'zombie')).toBeUndefined();
    await c.waitLog(/companion manager \d+ running/, 30_000, c.log().indexOf('was killed by SIGKILL'));
    await c.os.sleep(1500);
    expect(alive(c, 'ticker')).toHaveLength(1);
    expect(alive(c, 'stubborn')).toHaveLength(2);
    // The same socket now reaches the new manager: fresh processes, all RUNNING.
    const [fresh] = alive(c, 'companion-manager');
    expect(fresh).not.toBe(mgr);
    expect(await ctl(c, { cmd: 'pid' })).toEqual({ ok: true, pid: fresh });
    const s = await ctl(c, { cmd: 'status' });
    expect(s.companions.map((x: any) => [x.name, x.state])).toEqual([['ticker', 'RUNNING'], ['stubborn', 'RUNNING']]);
    expect(s.companions.map((x: any) => x.pid)).toEqual([alive(c, 'ticker')[0], expect.any(Number)]);
  });
});

test('HUP applies the companion diff: changed restart, unchanged keep their pid, added start, removed stop', async () => {
  await run(6, [TICKER, STUBBORN, CRASHER], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const tickerPid = (await ctl(c, { cmd: 'pid', name: 'ticker' })).pid;
    const stubbornPid = (await ctl(c, { cmd: 'pid', name: 'stubborn' })).pid;
    const added = { name: 'ticker2', command: ['ticker'] };
    c.os.fs.writeFile(CONFIG, config([{ ...TICKER }, { ...STUBBORN, env: { CHANGED: '1' } }, added]));
    c.signal('SIGHUP');
    await c.waitLog(/reread: added \[ticker2\] removed \[crasher\] changed \[stubborn\] unchanged \[ticker\]/);
    await c.os.sleep(4000);
    const s = await ctl(c, { cmd: 'status' });
    const by = Object.fromEntries(s.companions.map((x: any) => [x.name, x]));
    expect(Object.keys(by).sort()).toEqual(['stubborn', 'ticker', 'ticker2']);
    expect(by.ticker.pid).toBe(tickerPid);
    expect(by.stubborn.pid).not.toBe(stubbornPid);
    expect(by.stubborn.state).toBe('RUNNING');
    expect(by.ticker2.state).toBe('RUNNING');
  });
});

test('a reread with a broken config changes nothing; malformed control input never takes the manager down', async () => {
  await run(7, [TICKER], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const pid = (await ctl(c, { cmd: 'pid', name: 'ticker' })).pid;
    c.os.fs.writeFile(CONFIG, config([TICKER, TICKER]));
    const r = await ctl(c, { cmd: 'reread' });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/companion name "ticker" is used by .*give each companion its own name/);
    const s = await c.os.connect({ path: SOCK });
    s.write('{not json\n' + 'x'.repeat(70_000) + '\n');
    s.destroy();
    expect((await ctl(c, { cmd: 'pid', name: 'ticker' })).pid).toBe(pid);
    expect((await ctl(c, { cmd: 'status' })).companions[0].state).toBe('RUNNING');
  });
});

test('USR1 to the arbiter reopens companion log files (logrotate)', async () => {
  await run(8, [TICKER], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    c.os.fs.rename('/tmp/ticker.log', '/tmp/ticker.log.1');
    c.signal('SIGUSR1');
    await c.os.sleep(500);
    expect(c.os.fs.readFile('/tmp/ticker.log.1')).toMatch(/^tick 0\n/);
    expect(c.os.fs.readFile('/tmp/ticker.log')).toMatch(/^tick \d+\n/);
  });
});

test('a companion inherits neither the control socket nor the listening sockets', async () => {
  const probe = programs(import.meta.url, {
    probe: (os: Os) => {
      os.stdout.write(JSON.stringify({ listeners: os.listeners.length, channel: os.channel !== null }) + '\n');
      os.timer(1e9, () => {});
    },
  });
  await simulate(9, ['--config', CONFIG], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    expect(JSON.parse(c.os.fs.readFile('/tmp/probe.log'))).toEqual({ listeners: 0, channel: false });
  }, { [CONFIG]: config([{ name: 'probe', command: ['probe'], stdout: '/tmp/probe.log' }]) }, [commands, probe]);
});

test('cwd and env apply to a companion; stderr can join stdout', async () => {
  const envProbe = programs(import.meta.url, {
    'env-probe': (os: Os) => {
      os.stdout.write(`cwd=${os.cwd()} X=${os.env.X ?? ''} Y=${os.env.Y ?? ''}\n`);
      os.stderr.write('on stderr\n');
      os.timer(1e9, () => {});
    },
  });
  await simulate(10, ['--config', CONFIG], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    expect(c.os.fs.readFile('/tmp/env.log')).toBe('cwd=/tmp X=1 Y=2\non stderr\n');
  }, {
    [CONFIG]: config([{ name: 'env', command: ['env-probe'], cwd: '/tmp', env: { X: '1' }, stdout: '/tmp/env.log', stderr: 'stdout' }], { companion_env: { Y: '2' } }),
  }, [commands, envProbe]);
});

test('a reread that changes a manually stopped companion leaves it stopped, with the new config for its next start', async () => {
  await run(11, [TICKER], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    await ctl(c, { cmd: 'stop', name: 'ticker' });
    c.os.fs.writeFile(CONFIG, config([{ ...TICKER, stdout: '/tmp/ticker-new.log' }]));
    const r = await ctl(c, { cmd: 'reread' });
    expect(r).toMatchObject({ ok: true, changed: ['ticker'] });
    await c.os.sleep(2000);
    expect((await ctl(c, { cmd: 'status', name: 'ticker' })).companions[0].state).toBe('STOPPED');
    expect(c.os.fs.exists('/tmp/ticker-new.log')).toBe(false);
    expect((await ctl(c, { cmd: 'start', name: 'ticker' })).companions[0].state).toBe('RUNNING');
    await c.os.sleep(500);
    expect(c.os.fs.readFile('/tmp/ticker-new.log')).toMatch(/^tick 0\n/);
  });
});

// The arbiter killed outright at each point of a companion's life: whatever the
// phase, nothing of it is alive stop_timeout (2 s) + 1 s later.
for (const phase of ['STARTING', 'RUNNING', 'BACKOFF', 'STOPPING'] as const) {
  test(`the arbiter SIGKILLed while a companion is ${phase}: nothing outlives stop_timeout + 1 s`, async () => {
    const r = await run(20 + phase.length, [phase === 'BACKOFF' ? { ...CRASHER, restart_delay: 5 } : STUBBORN], async (c) => {
      await ready(c);
      const name = phase === 'BACKOFF' ? 'crasher' : 'stubborn';
      if (phase === 'RUNNING') await c.os.sleep(1500);
      if (phase === 'BACKOFF') await c.waitLog(/companion crasher: .*exit/i);
      if (phase === 'STOPPING') {
        await c.os.sleep(1500);
        void ctl(c, { cmd: 'stop', name }).catch(() => {});
        await c.os.sleep(300);
      }
      expect((await ctl(c, { cmd: 'status', name })).companions[0].state).toBe(phase);
      c.signal('SIGKILL');
      await c.exited();
      await c.os.sleep(3000);
      expect(c.k.processes().filter((p) => p.state !== 'zombie' && p.pid !== 100).map((p) => `${p.pid} ${p.program}`)).toEqual([]);
    });
    expect(r.left).toEqual([]);
  });
}

test('TERM on the arbiter stops companions and workers within graceful_timeout', async () => {
  const r = await run(12, [TICKER, STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const t0 = c.os.now();
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0 });
    // stubborn ignores TERM: it costs its stop_timeout (2 s), well inside graceful_timeout (30 s).
    expect(c.os.now() - t0).toBeLessThan(3000);
  });
  expect(r.left).toEqual([]);
});

test('a companion scenario replays bit for bit from its seed', async () => {
  const once = async () => {
    const r = await run(30, [TICKER, STUBBORN, CRASHER], async (c) => {
      await ready(c);
      await c.os.sleep(1200);
      await ctl(c, { cmd: 'restart', name: 'ticker' });
      await ctl(c, { cmd: 'stop', name: 'stubborn' });
      c.signal('SIGKILL');
      await c.exited();
      await c.os.sleep(3000);
    });
    return r.k.traceHash();
  };
  expect(await once()).toBe(await once());
});
