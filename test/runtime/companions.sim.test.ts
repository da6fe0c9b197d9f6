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
  // A one-shot: job CODE MS prints a line, lives MS ms and exits with CODE.
  job: async (os: Os, args) => {
    os.stdout.write(`job ${os.env.DROVER_PROCESS_NUM} running\n`);
    await os.sleep(Number(args[1] ?? 100));
    os.exit(Number(args[0] ?? 0));
  },
  // Says which copy it is, then lives on; each line written in pieces, 30 ms apart, the last without its newline.
  copy: async (os: Os) => {
    for (let i = 0; i < 3; i++) {
      os.stdout.write(`copy ${os.env.DROVER_PROCESS_NUM} `);
      await os.sleep(30);
      os.stdout.write(`line ${i}${i < 2 ? '\n' : ''}`);
      await os.sleep(30);
    }
    os.timer(1e9, () => {});
  },
  // Takes 4 s to wind down after TERM (a job to finish), then exits 0.
  slowstop: async (os: Os) => {
    os.onSignal('SIGTERM', () => {
      os.stdout.write('TERM: finishing the job\n');
      os.timer(4000, () => os.exit(0));
    });
    os.timer(1e9, () => {});
  },
  // Prints a line, then one without a newline, and exits.
  last: async (os: Os) => {
    os.stderr.write('first\nno newline');
    os.exit(0);
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

// stop_timeout is honoured on stop, as supervisord does: the manager used to
// be KILLed at graceful_timeout (1 s here), and its companions with it.
test('TERM on the arbiter gives a companion its stop_timeout even when graceful_timeout is shorter', async () => {
  const r = await run(13, [{ name: 'slowstop', command: ['slowstop'], stop_timeout: 10 }], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const pid = alive(c, 'slowstop')[0]!;
    const t0 = c.os.now();
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0 });
    expect(c.os.now() - t0).toBeGreaterThanOrEqual(4000);
    expect(c.os.now() - t0).toBeLessThan(6000);
    expect(c.log()).toMatch(new RegExp(`companion slowstop: pid ${pid} exited with code 0`));
    expect(c.log()).not.toMatch(/Companion manager \d+ still running/);
    expect(c.log()).not.toMatch(/killed by SIGKILL|on SIGKILL/);
  }, { graceful_timeout: 1 });
  expect(r.left).toEqual([]);
});

// A reread during shutdown used to start the companions it added, which
// nobody then stopped: the manager waited on them until it was KILLed.
test('a reread while the manager shuts down is refused, and starts nothing', async () => {
  const r = await run(14, [STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    c.os.fs.writeFile(CONFIG, config([STUBBORN, TICKER]));
    const manager = c.k.processes().find((p) => p.program === 'companion-manager' && p.state !== 'zombie')!.pid;
    c.signal('SIGTERM');
    await c.waitLog(/companion manager stopping/);
    c.os.kill(manager, 'SIGHUP'); // a reread, as the arbiter's HUP sends it
    await c.os.sleep(300);
    expect(alive(c, 'ticker')).toEqual([]);
    expect(await c.exited()).toMatchObject({ code: 0 });
    expect(c.log()).not.toMatch(/companion ticker: start/);
  });
  expect(r.left).toEqual([]);
});

// A companion removed by one reread and added back by the next while it was
// still stopping used to be dropped without a word, and never came back.
test('a companion added back while its removed instance is still stopping starts with the new config once reaped, and the reply says so', async () => {
  await run(15, [STUBBORN], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const old = (await ctl(c, { cmd: 'pid', name: 'stubborn' })).pid;
    c.os.fs.writeFile(CONFIG, config([]));
    expect(await ctl(c, { cmd: 'reread' })).toMatchObject({ ok: true, removed: ['stubborn'] });
    await c.os.sleep(300);
    expect((await ctl(c, { cmd: 'status', name: 'stubborn' })).companions[0].state).toBe('STOPPING'); // ignores TERM: 2 s to KILL
    c.os.fs.writeFile(CONFIG, config([{ ...STUBBORN, command: ['stubborn', 'again'] }]));
    expect(await ctl(c, { cmd: 'reread' })).toEqual({ ok: true, added: ['stubborn'], removed: [], changed: [], unchanged: [], starting_later: ['stubborn'] });
    await c.waitLog(/companion stubborn: its old process is gone; starting it again, as a reread asked/);
    await c.os.sleep(1500);
    const s = (await ctl(c, { cmd: 'status', name: 'stubborn' })).companions[0];
    expect(s.state).toBe('RUNNING');
    expect(s.pid).not.toBe(old);
    expect(c.k.processes().find((p) => p.pid === s.pid)!.args).toEqual(['again']); // the new config's
    // Unchanged from here on: a reread of the same file leaves it alone.
    expect(await ctl(c, { cmd: 'reread' })).toMatchObject({ ok: true, added: [], unchanged: ['stubborn'] });
  });
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

// ------------------------------------------------------------ one-shots, numprocs, prefixed output

const status1 = async (c: Ctl, name: string) => (await ctl(c, { cmd: 'status', name })).companions[0];
/** Lines of the drover log (the arbiter's and so the manager's stdout and stderr) that match. */
const lines = (c: Ctl, re: RegExp) => c.log().split('\n').filter((l) => re.test(l));

test('autorestart false: a job that exits 0 after startsecs is EXITED, said once, not restarted; start runs it again', async () => {
  await run(40, [{ name: 'migrate', command: ['job', '0', '1500'], autorestart: false }], async (c) => {
    await ready(c);
    await c.waitLog(/companion migrate: pid \d+ exited with code 0/);
    await c.os.sleep(5000);
    const s = await status1(c, 'migrate');
    expect(s).toMatchObject({ state: 'EXITED', pid: null, exits: 1, last_exit: { code: 0, signal: null } });
    expect(s.description).toBe('exited with code 0 (expected), not restarted');
    expect(lines(c, /companion migrate: .*exited/)).toEqual([expect.stringMatching(/\[INFO\] companion migrate: pid \d+ exited with code 0 \(expected\), not restarted \(autorestart false\); drover ctl start migrate runs it again$/)]);
    expect(lines(c, /companion migrate: .*(BACKOFF|backing off|retrying)/)).toEqual([]);
    expect(alive(c, 'job')).toEqual([]);
    const again = await ctl(c, { cmd: 'start', name: 'migrate' });
    expect(again.companions[0].state).toBe('RUNNING');
    await c.os.sleep(3000);
    expect(await status1(c, 'migrate')).toMatchObject({ state: 'EXITED', exits: 2 });
  });
});

test('autorestart "unexpected": an exit code in exitcodes stays EXITED, another one is restarted after restart_delay', async () => {
  const one = (name: string, code: number) => ({ name, command: ['job', String(code), '1200'], autorestart: 'unexpected', exitcodes: [0, 2], restart_delay: 0.5 });
  await run(41, [one('expected', 2), one('unexpected', 1)], async (c) => {
    await ready(c);
    await c.os.sleep(6000);
    const [e, u] = (await ctl(c, { cmd: 'status' })).companions;
    expect(e).toMatchObject({ name: 'expected', state: 'EXITED', exits: 1, description: 'exited with code 2 (expected), not restarted' });
    expect(u.name).toBe('unexpected');
    expect(u.exits).toBeGreaterThanOrEqual(3); // 1.2 s up, 0.5 s off: restarted every time
    expect(['RUNNING', 'STARTING', 'BACKOFF']).toContain(u.state);
    expect(c.log()).toMatch(/\[WARNING\] companion unexpected: pid \d+ exited with code 1 unexpectedly\n.*backing off 0.5 s/);
  });
});

test('autorestart true (the default) restarts even an exit 0; an exit before startsecs is a failed start whatever autorestart says', async () => {
  await run(42, [
    { name: 'daemon', command: ['job', '0', '1200'], restart_delay: 0.5 },
    { name: 'quick', command: ['job', '0', '100'], autorestart: false, startretries: 2, restart_delay: 0.2 },
  ], async (c) => {
    await ready(c);
    await c.os.sleep(5000);
    const [d, q] = (await ctl(c, { cmd: 'status' })).companions;
    expect(d.exits).toBeGreaterThanOrEqual(2);
    expect(d.state).not.toBe('EXITED');
    // 100 ms < startsecs (1 s): not a finished job but a start that failed, twice, so FATAL.
    expect(q).toMatchObject({ state: 'FATAL', exits: 2 });
  });
});

test('a command that cannot be spawned says why in its status: BACKOFF while it retries, then FATAL', async () => {
  await run(45, [
    { name: 'b', command: ['/nonexistent/bin'] },
    { name: 'f', command: ['/nonexistent/bin'], startretries: 2, restart_delay: 0.2 },
  ], async (c) => {
    await ready(c);
    await c.os.sleep(3000);
    const [b, f] = (await ctl(c, { cmd: 'status' })).companions;
    // No process ever ran, so no exit to tell: the spawn's own error is the reason.
    expect(b).toMatchObject({ state: 'BACKOFF', pid: null, exits: 0 });
    expect(b.last_exit).toBeUndefined();
    expect(b.description).toMatch(/^spawn failed: ENOENT: .*\/nonexistent\/bin.*, retrying in \d+ s$/);
    expect(f).toMatchObject({ state: 'FATAL', pid: null, exits: 0 });
    expect(f.description).toMatch(/^spawn failed: ENOENT: .*\/nonexistent\/bin/);
  });
});

test('numprocs: copies NAME:0..N-1 with DROVER_PROCESS_NUM, each supervised on its own; a group name acts on all, NAME:i on one', async () => {
  await run(43, [{ name: 'w', command: ['copy'], numprocs: 3 }, TICKER], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const s = await ctl(c, { cmd: 'status' });
    expect(s.companions.map((x: any) => [x.name, x.state])).toEqual([['w:0', 'RUNNING'], ['w:1', 'RUNNING'], ['w:2', 'RUNNING'], ['ticker', 'RUNNING']]);
    expect(new Set(s.companions.map((x: any) => x.pid)).size).toBe(4);
    expect(alive(c, 'copy')).toHaveLength(3);
    // Each copy knows its number, and its output says whose it is.
    for (const i of [0, 1, 2]) expect(c.log()).toContain(`w:${i} | copy ${i} line 0\n`);
    expect((await ctl(c, { cmd: 'status', name: 'w' })).companions.map((x: any) => x.name)).toEqual(['w:0', 'w:1', 'w:2']);
    expect((await ctl(c, { cmd: 'status', name: 'w:1' })).companions.map((x: any) => x.name)).toEqual(['w:1']);
    // One copy stopped, the others untouched.
    const pid0 = (await ctl(c, { cmd: 'pid', name: 'w:0' })).pid;
    expect((await ctl(c, { cmd: 'stop', name: 'w:1' })).companions.map((x: any) => [x.name, x.state])).toEqual([['w:1', 'STOPPED']]);
    expect(alive(c, 'copy')).toHaveLength(2);
    expect((await ctl(c, { cmd: 'pid', name: 'w:0' })).pid).toBe(pid0);
    // The group: signal, stop, start act on every copy.
    expect((await ctl(c, { cmd: 'signal', name: 'w', signal: 'WINCH' })).signalled.map((x: any) => x.name)).toEqual(['w:0', 'w:2']);
    expect((await ctl(c, { cmd: 'stop', name: 'w' })).companions.map((x: any) => x.state)).toEqual(['STOPPED', 'STOPPED', 'STOPPED']);
    expect(alive(c, 'copy')).toEqual([]);
    expect((await ctl(c, { cmd: 'start', name: 'w' })).companions.map((x: any) => x.state)).toEqual(['RUNNING', 'RUNNING', 'RUNNING']);
    expect((await ctl(c, { cmd: 'restart', name: 'w' })).companions.map((x: any) => x.state)).toEqual(['RUNNING', 'RUNNING', 'RUNNING']);
    expect(alive(c, 'copy')).toHaveLength(3);
    // pid and tail need one process.
    expect(await ctl(c, { cmd: 'pid', name: 'w' })).toEqual({ ok: false, error: 'pid needs one process, and "w" runs 3 copies (numprocs): name one, w:0 to w:2' });
    expect(await ctl(c, { cmd: 'tail', name: 'w' })).toEqual({ ok: false, error: 'tail needs one process, and "w" runs 3 copies (numprocs): name one, w:0 to w:2' });
    // The tail goes on across its processes: the stopped one's last line (no newline) came at its EOF, then the new one's.
    expect((await ctl(c, { cmd: 'tail', name: 'w:2', lines: 3 })).lines).toEqual(['copy 2 line 2', 'copy 2 line 0', 'copy 2 line 1']);
    expect(await ctl(c, { cmd: 'stop', name: 'w:7' })).toEqual({ ok: false, error: 'no companion named "w:7"; companions: w:0..w:2, ticker' });
  });
});

test('reread changing numprocs adds or removes copies; the copies that stay keep running', async () => {
  const W = (numprocs: number) => ({ name: 'w', command: ['copy'], numprocs });
  await run(44, [W(3)], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const pids = async () => Object.fromEntries((await ctl(c, { cmd: 'status' })).companions.map((x: any) => [x.name, x.pid]));
    const before = await pids();
    c.os.fs.writeFile(CONFIG, config([W(2)]));
    expect(await ctl(c, { cmd: 'reread' })).toEqual({ ok: true, added: [], removed: ['w:2'], changed: [], unchanged: ['w:0', 'w:1'] });
    await c.os.sleep(1500);
    expect(await pids()).toEqual({ 'w:0': before['w:0'], 'w:1': before['w:1'] });
    expect(alive(c, 'copy')).toHaveLength(2);
    c.os.fs.writeFile(CONFIG, config([W(4)]));
    expect(await ctl(c, { cmd: 'reread' })).toEqual({ ok: true, added: ['w:2', 'w:3'], removed: [], changed: [], unchanged: ['w:0', 'w:1'] });
    await c.os.sleep(1500);
    const after = await pids();
    expect(Object.keys(after)).toEqual(['w:0', 'w:1', 'w:2', 'w:3']);
    expect([after['w:0'], after['w:1']]).toEqual([before['w:0'], before['w:1']]);
    expect(alive(c, 'copy')).toHaveLength(4);
    expect(c.log()).toContain('w:3 | copy 3 line 0\n');
    // Back to one: the plain name, the copies gone.
    c.os.fs.writeFile(CONFIG, config([W(1)]));
    expect(await ctl(c, { cmd: 'reread' })).toMatchObject({ ok: true, added: ['w'], removed: ['w:0', 'w:1', 'w:2', 'w:3'] });
    await c.os.sleep(3000);
    expect((await ctl(c, { cmd: 'status' })).companions.map((x: any) => x.name)).toEqual(['w']);
    expect(alive(c, 'copy')).toHaveLength(1);
    expect(c.log()).toContain('w | copy 0 line 0\n');
  });
});

test('inherited output is prefixed NAME | a whole line at a time; a file gets the bytes as printed; a last line without newline comes out at EOF', async () => {
  await run(45, [
    { name: 'a', command: ['copy'] },
    { name: 'b', command: ['copy'], numprocs: 2 },
    { name: 'filed', command: ['copy'], stdout: '/tmp/filed.log' },
    { name: 'last', command: ['last'], autorestart: false, startsecs: 0 },
  ], async (c) => {
    await ready(c);
    await c.os.sleep(1500);
    const log = c.log();
    // Three writers print pieces of lines 30 ms apart: every line is whole and named.
    for (const name of ['a', 'b:0', 'b:1']) {
      const n = name === 'b:1' ? 1 : 0;
      expect(lines(c, new RegExp(`^${name} \\| `))).toEqual([`${name} | copy ${n} line 0`, `${name} | copy ${n} line 1`]);
    }
    expect(log).not.toMatch(/copy \d+ copy/);
    expect(log).not.toContain('filed |');
    expect(c.os.fs.readFile('/tmp/filed.log')).toBe('copy 0 line 0\ncopy 0 line 1\ncopy 0 line 2');
    // stderr too, and the line left without its newline when the process ended.
    expect(lines(c, /^last \| /)).toEqual(['last | first', 'last | no newline']);
    expect((await ctl(c, { cmd: 'tail', name: 'last', stream: 'stderr' })).lines).toEqual(['first', 'no newline']);
  });
});

test('tail numbers lines across restarts: next, after, and dropped', async () => {
  await run(46, [TICKER], async (c) => {
    await ready(c);
    await c.os.sleep(1050);
    const t = await ctl(c, { cmd: 'tail', name: 'ticker', lines: 3 });
    expect(t.ok).toBe(true);
    expect(t.next).toBeGreaterThanOrEqual(9);
    expect(t.lines).toEqual([`tick ${t.next - 3}`, `tick ${t.next - 2}`, `tick ${t.next - 1}`]);
    expect(t.dropped).toBeUndefined();
    await c.os.sleep(500);
    // A follower asks from its last `next`: what came since, none missing.
    const f = await ctl(c, { cmd: 'tail', name: 'ticker', lines: 100, after: t.next });
    expect(f.lines[0]).toBe(`tick ${t.next}`);
    expect(f.next).toBe(t.next + f.lines.length);
    expect(f.dropped).toBeUndefined();
    // Asking for fewer than came: the newest, and how many were skipped.
    const g = await ctl(c, { cmd: 'tail', name: 'ticker', lines: 2, after: t.next });
    expect(g).toMatchObject({ next: f.next, dropped: f.lines.length - 2, lines: f.lines.slice(-2) });
    // Nothing new yet: an empty answer with the same next.
    expect(await ctl(c, { cmd: 'tail', name: 'ticker', after: g.next + 1000 })).toMatchObject({ lines: [], next: expect.any(Number) });
    // A restart goes on counting: the new process's first line follows the old one's last.
    const before = (await ctl(c, { cmd: 'tail', name: 'ticker', lines: 1 })).next;
    await ctl(c, { cmd: 'restart', name: 'ticker' });
    await c.os.sleep(300);
    const r = await ctl(c, { cmd: 'tail', name: 'ticker', lines: 100, after: before });
    expect(r.lines).toContain('tick 0');
    expect(r.next).toBeGreaterThan(before);
  }, { companion_stdout: 'inherit' });
});
