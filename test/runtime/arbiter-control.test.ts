// The arbiter's control socket (src/runtime/arbiter/control.ts) on the
// simulated kernel, without an arbiter: a program opens a Control with a
// stub for the lanes and plays the companion manager's side of the channel
// by hand (or runs a fake manager as a child process), while request()
// talks to the socket as drover ctl does.
import { expect, test } from 'vitest';
import { programs, type Channel, type Os } from '../../src/os/types.js';
import { Control, MANAGER_ANSWER_MS, PROBE_EVERY_MS, REPLY_SLACK_MS, replyDeadline, type ControlDeps } from '../../src/runtime/arbiter/control.js';
import type { CompanionConfig } from '../../src/runtime/companions/config.js';
import type { ManagerReport, ToManager } from '../../src/runtime/companions/manager.js';
import { request } from '../../src/runtime/control/client.js';
import type { Reply, Request } from '../../src/runtime/control/protocol.js';
import { Kernel } from '../../src/sim/index.js';
import { reap, until } from '../support/os.js';
import { FAKE_STATS } from './control-programs.js';

const SOCK = '/run/drover/ctl.sock';

/** What a companion contributes to the deadline; the rest of its config does not matter here. */
const companion = (stop: number, reload: number, start: number) => ({ name: 'c', stop_timeout: stop, reload_timeout: reload, startsecs: start }) as unknown as CompanionConfig;

/** The manager's end of a channel, played by the test: what Control sends is kept in `sent`. */
class FakeChannel implements Channel {
  readonly sent: ToManager[] = [];
  connected = true;
  send(m: unknown): boolean {
    if (!this.connected) return false;
    this.sent.push(structuredClone(m) as ToManager);
    return true;
  }
  onMessage(): void {}
  onDisconnect(): void {}
  close(): void {
    this.connected = false;
  }
  /** The ctl messages sent so far. */
  ctl(): Extract<ToManager, { t: 'ctl' }>[] {
    return this.sent.filter((m): m is Extract<ToManager, { t: 'ctl' }> => m.t === 'ctl');
  }
}

interface World {
  os: Os;
  control: Control;
  deps: ControlDeps & { list: CompanionConfig[]; warnings: string[]; reloads: ((r: Awaited<ReturnType<ControlDeps['reload']>>) => void)[]; scaled: number[] };
  ask(req: object, timeout?: number): Promise<any>;
}

/** Runs `body` in a process of a fresh kernel, next to a Control serving SOCK; `extra` programs can be spawned from it. */
async function simulate(seed: number, body: (w: World) => Promise<void>, extra: Record<string, (os: Os, args: readonly string[]) => Promise<void> | void> = {}): Promise<Kernel> {
  const main = async (os: Os) => {
    const warnings: string[] = [];
    const deps = {
      list: [] as CompanionConfig[],
      warnings,
      // A reload waits until the test settles it; scale holds n to 2..8 as the arbiter does.
      reloads: [] as ((r: Awaited<ReturnType<ControlDeps['reload']>>) => void)[],
      scaled: [] as number[],
      stats: () => FAKE_STATS,
      companions: () => deps.list,
      version: '9.9.9',
      reload: () => new Promise<Awaited<ReturnType<ControlDeps['reload']>>>((resolve) => deps.reloads.push(resolve)),
      scale: (n: number) => {
        deps.scaled.push(n);
        return n < 2 ? { ok: false as const, error: `scale: ${n} is below min_workers (2)` } : n > 8 ? { ok: false as const, error: `scale: ${n} is above max_workers (8)` } : { ok: true as const, target: n, min: 2, max: 8 };
      },
      log: { debug: () => {}, warning: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) },
    };
    const control = await Control.open(os, SOCK, deps);
    try {
      await body({ os, control, deps, ask: (req, timeout = 600_000) => request(os, SOCK, req as Request, timeout) });
    } finally {
      control.close();
    }
  };
  const k = new Kernel({ seed, programs: [programs(import.meta.url, { main, ...extra })] });
  const root = k.spawn({ program: 'main', channel: false });
  await k.run({ stopWhen: () => k.exitStatus(root) !== undefined, until: 3_600_000 });
  const e = k.exitStatus(root);
  if (e?.code !== 0) throw new Error(`simulation (seed ${seed}) ${e ? `exited ${e.code ?? e.signal}` : 'did not finish'}:\n${k.output.stderr}\n--- last events ---\n${k.trace().slice(-30).join('\n')}`);
  return k;
}

test('without companions: stats and version are answered by the arbiter, companion commands get an error naming the fix', async () => {
  await simulate(1, async ({ os, ask }) => {
    expect((os.fs.stat(SOCK).mode & 0o777).toString(8)).toBe('600');
    expect(await ask({ cmd: 'stats', id: 1 })).toEqual({ id: 1, ok: true, ...FAKE_STATS });
    expect(await ask({ cmd: 'version' })).toEqual({ ok: true, version: '9.9.9', arbiter: { pid: os.pid, cwd: os.cwd() } });
    for (const req of [{ cmd: 'status' }, { cmd: 'stop', name: 'all' }, { cmd: 'pid' }, { cmd: 'reread' }]) {
      const r = await ask(req);
      expect(r).toEqual({
        ok: false,
        error: `${req.cmd} is a companion command, and no companions are configured: add "companions" to the config and reload drover (HUP); stats, version, reload and scale answer without them`,
      });
    }
    // Malformed input is the server's business, as before: an error, and the socket carries on.
    expect(await ask({ cmd: 'stats', name: 'x' })).toMatchObject({ ok: false, error: expect.stringMatching(/^stats: unknown argument "name"/) });
  });
});

test('reload is answered once the reload settles, with the new generation or the reason it failed; scale with the target and its bounds; neither goes to the manager', async () => {
  await simulate(7, async ({ os, control, deps, ask }) => {
    deps.list.push(companion(1000, 1000, 1000));
    const ch = new FakeChannel();
    control.setManager(ch);
    control.fromManager({ t: 'ready' });
    const t0 = os.now();
    const ok = ask({ cmd: 'reload', id: 1 });
    await until(os, () => deps.reloads.length === 1);
    // A reload that takes long holds the reply, and nothing else: other requests are answered meanwhile.
    await os.sleep(20_000);
    expect(await ask({ cmd: 'scale', workers: 4 })).toEqual({ ok: true, workers: 4, min: 2, max: 8 });
    deps.reloads[0]!({ ok: true, generation: 2 });
    expect(await ok).toEqual({ id: 1, ok: true, generation: 2 });
    expect(os.now() - t0).toBeGreaterThanOrEqual(20_000);
    const failed = ask({ cmd: 'reload' });
    await until(os, () => deps.reloads.length === 2);
    deps.reloads[1]!({ ok: false, error: 'reload failed, the running config stays in force: bad app' });
    expect(await failed).toEqual({ ok: false, error: 'reload failed, the running config stays in force: bad app' });
    expect(await ask({ cmd: 'scale', workers: 9 })).toEqual({ ok: false, error: 'scale: 9 is above max_workers (8)' });
    expect(await ask({ cmd: 'scale', workers: 1 })).toEqual({ ok: false, error: 'scale: 1 is below min_workers (2)' });
    // Refused by validation before the arbiter is asked.
    expect(await ask({ cmd: 'scale', workers: 0 })).toMatchObject({ ok: false, error: expect.stringMatching(/^scale: "workers" must be a whole number of workers from 1/) });
    expect(await ask({ cmd: 'scale' })).toMatchObject({ ok: false, error: expect.stringMatching(/^scale: missing "workers"/) });
    expect(deps.scaled).toEqual([4, 9, 1]);
    expect(ch.sent).toEqual([]);
  });
});

test('a companion command goes to the manager once it is ready, and its reply comes back with the client\'s id', async () => {
  await simulate(2, async ({ os, control, deps, ask }) => {
    deps.list.push(companion(2000, 2000, 1000));
    const ch = new FakeChannel();
    control.setManager(ch);
    // The manager is starting: the request waits for its 'ready'.
    const reply = ask({ cmd: 'status', name: 'web', id: 'a7' });
    await os.sleep(500);
    expect(ch.sent).toEqual([]);
    expect(control.fromManager({ t: 'groups', pgids: [] } satisfies ManagerReport)).toBe(false);
    expect(control.fromManager({ t: 'ready' } satisfies ManagerReport)).toBe(false);
    expect(ch.sent).toEqual([{ t: 'ctl', id: expect.any(Number), req: { cmd: 'status', name: 'web' } }]);
    const [m] = ch.ctl();
    expect(control.fromManager({ t: 'ctl-reply', id: m!.id, reply: { ok: true, companions: [] } } satisfies ManagerReport)).toBe(true);
    expect(await reply).toEqual({ id: 'a7', ok: true, companions: [] });
    // Ready now: the next one goes out at once. Replies are matched by id, not by order.
    const one = ask({ cmd: 'pid', name: 'one' });
    const two = ask({ cmd: 'pid', name: 'two' });
    await until(os, () => ch.ctl().length === 3);
    const [, a, b] = ch.ctl();
    const which = (x: typeof a) => (x!.req as { name: string }).name;
    control.fromManager({ t: 'ctl-reply', id: b!.id, reply: { ok: true, pid: which(b) === 'two' ? 2 : 1 } });
    control.fromManager({ t: 'ctl-reply', id: a!.id, reply: { ok: true, pid: which(a) === 'two' ? 2 : 1 } });
    expect(await Promise.all([one, two])).toEqual([{ ok: true, pid: 1 }, { ok: true, pid: 2 }]);
    // stats and version never go to the manager.
    expect(await ask({ cmd: 'stats' })).toMatchObject({ ok: true, lanes: true });
    expect(await ask({ cmd: 'version' })).toEqual({ ok: true, version: '9.9.9', arbiter: { pid: os.pid, cwd: os.cwd() } });
    expect(ch.ctl()).toHaveLength(3);
    // A late or unknown reply is consumed and dropped; a reply that is not one is an error for its request.
    expect(control.fromManager({ t: 'ctl-reply', id: 12345, reply: { ok: true } })).toBe(true);
    const odd = ask({ cmd: 'status' });
    await until(os, () => ch.ctl().length === 4);
    control.fromManager({ t: 'ctl-reply', id: ch.ctl()[3]!.id, reply: { ok: 'yes' } });
    expect(await odd).toEqual({ ok: false, error: 'the companion manager answered something that is not a reply: {"ok":"yes"}' });
  });
});

test('the manager exits with requests in hand: each gets an error at once, not a hang; until a new one is up, errors say it is restarting', async () => {
  await simulate(3, async ({ os, control, deps, ask }) => {
    deps.list.push(companion(2000, 2000, 1000));
    const ch = new FakeChannel();
    control.setManager(ch);
    control.fromManager({ t: 'ready' });
    const t0 = os.now();
    const stop = ask({ cmd: 'stop', name: 'web' });
    const status = ask({ cmd: 'status' });
    // The stop, the probe that goes with it (the manager's pid), the status.
    await until(os, () => ch.ctl().length === 3);
    expect(ch.ctl().map((m) => m.req)).toEqual([{ cmd: 'stop', name: 'web' }, { cmd: 'pid', name: null }, { cmd: 'status', name: 'all' }]);
    await os.sleep(300);
    ch.close();
    control.setManager(null);
    for (const r of await Promise.all([stop, status])) {
      expect(r).toEqual({ ok: false, error: expect.stringMatching(/^the companion manager exited before it answered "(stop web|status all)", and its companions were stopped with it; unless drover is stopping, the arbiter starts a new manager/) });
    }
    expect(os.now() - t0).toBeLessThan(400);
    const between = await ask({ cmd: 'status' });
    expect(between).toEqual({ ok: false, error: expect.stringMatching(/^the companion manager is not running: it exited, and unless drover is stopping the arbiter starts a new one shortly/) });
    // A manager that dies before it is ready: what waited for it gets the same "not running" answer.
    const next = new FakeChannel();
    control.setManager(next);
    const early = ask({ cmd: 'status' });
    await os.sleep(100);
    control.setManager(null);
    expect(await early).toMatchObject({ ok: false, error: expect.stringMatching(/^the companion manager is not running/) });
    expect(next.sent).toEqual([]);
    // A fresh manager answers again.
    const fresh = new FakeChannel();
    control.setManager(fresh);
    control.fromManager({ t: 'ready' });
    const again = ask({ cmd: 'status' });
    await until(os, () => fresh.ctl().length === 1);
    control.fromManager({ t: 'ctl-reply', id: fresh.ctl()[0]!.id, reply: { ok: true, companions: [] } });
    expect(await again).toEqual({ ok: true, companions: [] });
    // A channel that is already closed (the manager is on its way out): an error, no wait for the reap.
    fresh.close();
    expect(await ask({ cmd: 'pid' })).toMatchObject({ ok: false, error: expect.stringMatching(/^the companion manager is exiting and cannot take "pid"/) });
  });
});

test('a manager that never answers: "companion manager not responding" within 5 s, for quick commands and for start, stop and restart alike', async () => {
  const list = [companion(2000, 7000, 1000), companion(4000, 4000, 500)];
  expect(replyDeadline({ cmd: 'status', name: 'all' }, list)).toBe(MANAGER_ANSWER_MS);
  expect(MANAGER_ANSWER_MS).toBe(5000);
  expect(replyDeadline({ cmd: 'stop', name: 'c' }, list)).toBe(REPLY_SLACK_MS + 8000);
  expect(replyDeadline({ cmd: 'restart', name: 'all' }, [])).toBe(REPLY_SLACK_MS);
  await simulate(4, async ({ os, control, deps, ask }) => {
    deps.list.push(...list);
    const ch = new FakeChannel();
    control.setManager(ch);
    control.fromManager({ t: 'ready' });
    let t0 = os.now();
    expect(await ask({ cmd: 'tail', name: 'web' })).toEqual({
      ok: false,
      error: 'companion manager not responding: no answer to "tail web" within 5 s; it may be hung or stopped (the arbiter replaces a manager that stays silent; the error log says more)',
    });
    expect(os.now() - t0).toBeGreaterThanOrEqual(5000);
    expect(os.now() - t0).toBeLessThan(5100);
    // A restart may honestly take 38 s here; a manager that does not even answer the probe sent with it is not responding.
    t0 = os.now();
    expect(await ask({ cmd: 'restart', name: 'all' })).toMatchObject({ ok: false, error: expect.stringMatching(/^companion manager not responding: it has not answered anything for 5 s while "restart all" was in its hands/) });
    expect(os.now() - t0).toBeGreaterThanOrEqual(5000);
    expect(os.now() - t0).toBeLessThan(5100);
    expect(deps.warnings).toEqual([
      'control: the companion manager did not answer "tail web" within 5 s',
      'control: the companion manager has not answered for 5 s; failing 1 request(s) in its hands',
    ]);
    // Its late reply finds nobody waiting.
    expect(control.fromManager({ t: 'ctl-reply', id: ch.ctl()[0]!.id, reply: { ok: true, name: 'web', stream: 'stdout', lines: [] } })).toBe(true);
    // A manager that answers its probes but takes long over a restart: the request waits; after 38 s, the backstop.
    deps.warnings.length = 0;
    const answered: number[] = [];
    const answerProbes = async () => {
      for (;;) {
        for (const m of ch.ctl()) {
          if (m.req.cmd !== 'pid' || answered.includes(m.id)) continue;
          answered.push(m.id);
          control.fromManager({ t: 'ctl-reply', id: m.id, reply: { ok: true, pid: 77 } });
        }
        if (closed) return;
        await os.sleep(100);
      }
    };
    let closed = false;
    const probing = answerProbes();
    t0 = os.now();
    expect(await ask({ cmd: 'stop', name: 'all' })).toMatchObject({ ok: false, error: expect.stringMatching(/^the companion manager did not answer "stop all" within 38 s/) });
    expect(os.now() - t0).toBeGreaterThanOrEqual(38_000);
    expect(os.now() - t0).toBeLessThan(38_100);
    closed = true;
    await probing;
    // Probed every PROBE_EVERY_MS (after each answer) while the stop was out.
    expect(answered.length).toBeGreaterThanOrEqual(Math.floor(38_000 / (PROBE_EVERY_MS + 100)));
    expect(deps.warnings).toEqual(['control: the companion manager did not answer "stop all" within 38 s']);
    // A manager that answers the stop in time: no probe is left behind.
    const before = ch.ctl().length;
    const stop = ask({ cmd: 'stop', name: 'web' });
    await until(os, () => ch.ctl().length === before + 2);
    const sent = ch.ctl().slice(before);
    expect(sent.map((m) => m.req)).toEqual([{ cmd: 'stop', name: 'web' }, { cmd: 'pid', name: null }]);
    control.fromManager({ t: 'ctl-reply', id: sent[1]!.id, reply: { ok: true, pid: 77 } });
    await os.sleep(1000);
    control.fromManager({ t: 'ctl-reply', id: sent[0]!.id, reply: { ok: true, companions: [] } });
    expect(await stop).toEqual({ ok: true, companions: [] });
    await os.sleep(10_000);
    expect(ch.ctl().length).toBe(before + 2);
  });
});

test('a manager that does not become ready: requests waiting for it get "not responding" at 5 s', async () => {
  await simulate(41, async ({ os, control, deps, ask }) => {
    deps.list.push(companion(1000, 1000, 1000));
    const ch = new FakeChannel();
    control.setManager(ch);
    const t0 = os.now();
    expect(await ask({ cmd: 'stop', name: 'web' })).toEqual({
      ok: false,
      error: 'companion manager not responding: it has not become ready within 5 s, so "stop web" was not sent; try again shortly (the error log says why)',
    });
    expect(os.now() - t0).toBeGreaterThanOrEqual(5000);
    expect(os.now() - t0).toBeLessThan(5100);
    expect(ch.sent).toEqual([]);
  });
});

test('listen moves the socket to a new path only once that one listens; a path in use throws and the old one stays; close unlinks', async () => {
  const other = async (os: Os) => {
    const l = await os.listen({ path: '/run/other.sock' });
    l.accept(() => {});
    os.channel!.send('ready');
  };
  await simulate(5, async ({ os, control, deps, ask }) => {
    deps.list.push(companion(1000, 1000, 1000));
    const ch = new FakeChannel();
    control.setManager(ch);
    control.fromManager({ t: 'ready' });
    const pending = ask({ cmd: 'status' }).then(() => 'replied', (e: { code: string }) => e.code);
    await until(os, () => ch.ctl().length === 1);
    expect(control.path).toBe(SOCK);
    await control.listen('/run/drover/next.sock');
    expect(control.path).toBe('/run/drover/next.sock');
    expect(os.fs.exists(SOCK)).toBe(false);
    expect(await request(os, '/run/drover/next.sock', { cmd: 'version' }, 1000)).toEqual({ ok: true, version: '9.9.9', arbiter: { pid: os.pid, cwd: os.cwd() } });
    // The request in hand on the old socket lost its connection; the manager's answer to it goes nowhere.
    expect(await pending).toBe('ECONNRESET');
    expect(control.fromManager({ t: 'ctl-reply', id: ch.ctl()[0]!.id, reply: { ok: true, companions: [] } })).toBe(true);
    // Another live socket at the new path: refused, the current one serves on.
    const o = os.spawn({ program: 'other' });
    await until(os, () => os.fs.exists('/run/other.sock'));
    await os.sleep(10);
    await expect(control.listen('/run/other.sock')).rejects.toMatchObject({ code: 'EADDRINUSE', message: expect.stringContaining('control socket /run/other.sock is in use by a running drover') });
    expect(control.path).toBe('/run/drover/next.sock');
    expect(await request(os, '/run/drover/next.sock', { cmd: 'version' }, 1000)).toMatchObject({ ok: true });
    os.kill(o.pid, 'SIGKILL');
    await reap(os, o.pid);
    // Close: the path is gone, a request waiting for the manager is answered (to nobody) and forgotten.
    void ask({ cmd: 'status' }).catch(() => {});
    await os.sleep(10);
    control.close();
    expect(os.fs.exists('/run/drover/next.sock')).toBe(false);
    expect(control.path).toBeNull();
    await control.listen(SOCK); // closed for good: nothing
    expect(os.fs.exists(SOCK)).toBe(false);
  }, { other });
});

// A manager as a real process of the kernel: messages cross its channel, and
// its death is seen through SIGCHLD, as in the arbiter.
test('through a child process: requests cross the channel; its death fails what it had in hand', async () => {
  const manager = (os: Os) => {
    os.channel!.onMessage((msg) => {
      const m = msg as ToManager;
      if (m.t !== 'ctl') return;
      const req = m.req;
      if (req.cmd === 'stop' && req.name === 'die') return os.exit(9); // mid-request
      if (req.cmd === 'stop' && req.name === 'slow') return void os.timer(2000, () => os.channel!.send({ t: 'ctl-reply', id: m.id, reply: { ok: true, companions: [] } }));
      const reply: Reply = req.cmd === 'pid' ? { ok: true, pid: os.pid } : { ok: false, error: `fake: ${req.cmd}` };
      os.channel!.send({ t: 'ctl-reply', id: m.id, reply } satisfies ManagerReport);
    });
    os.timer(200, () => os.channel!.send({ t: 'ready' } satisfies ManagerReport));
  };
  await simulate(6, async ({ os, control, deps, ask }) => {
    deps.list.push(companion(1000, 1000, 1000));
    const spawnManager = () => {
      const child = os.spawn({ program: 'manager' });
      child.channel!.onMessage((m) => control.fromManager(m));
      control.setManager(child.channel);
      return child.pid;
    };
    const reaped: number[] = [];
    os.onSignal('SIGCHLD', () => {
      for (;;) {
        let e;
        try {
          e = os.waitpid(-1);
        } catch {
          return; // ECHILD
        }
        if (e === null) return;
        reaped.push(e.pid);
        control.setManager(null);
      }
    });
    const pid = spawnManager();
    expect(await ask({ cmd: 'pid' })).toEqual({ ok: true, pid });
    const slow = ask({ cmd: 'stop', name: 'slow' });
    await os.sleep(100);
    const dying = ask({ cmd: 'stop', name: 'die' });
    expect(await dying).toMatchObject({ ok: false, error: expect.stringMatching(/^the companion manager exited before it answered "stop die"/) });
    expect(await slow).toMatchObject({ ok: false, error: expect.stringMatching(/^the companion manager exited before it answered "stop slow"/) });
    expect(reaped).toEqual([pid]);
    const second = spawnManager();
    expect(await ask({ cmd: 'pid' })).toEqual({ ok: true, pid: second });
    expect(await ask({ cmd: 'stop', name: 'slow' })).toEqual({ ok: true, companions: [] });
    os.kill(second, 'SIGKILL');
    await until(os, () => reaped.length === 2);
  }, { manager });
});
