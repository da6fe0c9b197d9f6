// drover ctl against the real arbiter on the simulated kernel: the control
// socket is the arbiter's, companions or not. stats is answered by the
// arbiter; companion commands without companions get an error naming the
// fix; a second drover on the same socket; a reload that moves the socket;
// reload, scale and top against the arbiter, tail -f through the manager.
import { expect, test } from 'vitest';
import { request } from '../../src/runtime/control/client.js';
import type { Reply } from '../../src/runtime/control/protocol.js';
import { programs, type Os } from '../../src/os/types.js';
import { reap, until } from '../support/os.js';
import { controlPrograms } from './control-programs.js';
import { SIM_APP, simulate, type Ctl } from './sim.js';

const SOCK = '/tmp/ctl.sock';
const CONFIG = '/tmp/drover.json';

const config = (extra: object = {}) => JSON.stringify({ app: SIM_APP, bind: ['127.0.0.1:8000'], workers: 1, control_socket: SOCK, ...extra });

async function ask(c: Ctl, req: object, path = SOCK): Promise<any> {
  return (await request(c.os, path, req as never, 30_000)) as Reply;
}

/** `drover ctl ARGS` as a process of the kernel: its exit status and what it printed. */
async function ctl(c: Ctl, args: string[]): Promise<{ code: number | null; out: string }> {
  const out = `/tmp/ctl-${c.os.now()}-${args.join('-').replace(/\W/g, '')}.out`;
  const { pid } = c.os.spawn({ program: 'ctl', args, channel: false, stdout: { file: out }, stderr: 'stdout' });
  const e = await reap(c.os, pid);
  return { code: e.code, out: c.os.fs.readFile(out) };
}

/** A companion command that does nothing, for ever. */
const commands = programs(import.meta.url, { idle: (os: Os) => void os.timer(1e9, () => {}) });

const run = (seed: number, files: Record<string, string>, body: (c: Ctl) => Promise<void>) => simulate(seed, ['--config', CONFIG], body, files, [controlPrograms, commands]);

test('without companions: the arbiter serves the socket; stats answers, status says no companions are configured and how to add them', async () => {
  const r = await run(1, { [CONFIG]: config() }, async (c) => {
    await c.booted(1);
    expect((c.os.fs.stat(SOCK).mode & 0o777).toString(8)).toBe('600');
    expect(await ask(c, { cmd: 'version' })).toMatchObject({ ok: true, version: '0.1.0', arbiter: { pid: expect.any(Number), cwd: expect.any(String) } });
    const s = await ask(c, { cmd: 'stats', id: 5 });
    expect(s).toMatchObject({ id: 5, ok: true, lanes: true, slowThresholdMs: 1000, generations: [{ generation: 1, fast: { workers: 1 } }] });
    const status = await ask(c, { cmd: 'status' });
    expect(status).toEqual({ ok: false, error: expect.stringMatching(/^status is a companion command, and no companions are configured: add "companions" to the config and reload drover \(HUP\)/) });
    expect(c.k.processes().some((p) => p.program === 'companion-manager')).toBe(false);
    // As drover ctl prints them.
    const human = await ctl(c, ['-s', SOCK, 'stats']);
    expect(human.code).toBe(0);
    expect(human.out).toMatch(/^lanes on, slow_threshold 1 s\n\ngeneration 1 \(serving\)\n  fast lane +1 worker; served \d+ fast, \d+ slow\n/);
    expect(JSON.parse((await ctl(c, ['-s', SOCK, '--json', 'stats'])).out)).toMatchObject({ ok: true, generations: [{ generation: 1 }] });
    expect(await ctl(c, ['-s', SOCK, 'status'])).toEqual({ code: 1, out: expect.stringMatching(/^drover ctl: status is a companion command, and no companions are configured/) });
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0 });
    expect(c.os.fs.exists(SOCK)).toBe(false);
  });
  expect(r.left).toEqual([]);
});

test('stats counts the spares (spare_workers) ready of those kept, fast and slow lane', async () => {
  await run(3, { [CONFIG]: config({ spare_workers: 2 }) }, async (c) => {
    await c.booted(1);
    await c.waitLog(/Spare slow-lane worker started with pid: \d+/);
    await c.waitLog(/(?:[^]*?Spare worker started with pid: \d+){2}/);
    expect(await ask(c, { cmd: 'stats' })).toMatchObject({ ok: true, spares: { ready: { fast: 2, slow: 1 }, wanted: { fast: 2, slow: 1 } } });
    const from = c.log().length;
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/, 30_000, from);
    // Taken by the reload, the pool filled again once the new generation served.
    expect(c.log().slice(from).match(/\(a spare\)/g)).toHaveLength(2);
    expect(await ask(c, { cmd: 'stats' })).toMatchObject({ spares: { ready: { fast: 2, slow: 1 }, wanted: { fast: 2, slow: 1 } } });
    expect((await ctl(c, ['-s', SOCK, 'stats'])).out).toMatch(/\n\nspare workers: 2 of 2 ready, slow lane 1 of 1\n\n/);
  });
});

test('stats shows what the lanes did: the routes learned slow, those in use first; the slow lane\'s completions', async () => {
  await run(2, { [CONFIG]: config({ slow_threshold: 0.2 }) }, async (c) => {
    await c.booted(1);
    await c.waitLog(/slow-lane worker \d+ booted/);
    for (let i = 0; i < 3; i++) expect((await c.get('/slow?ms=300')).status).toBe(200);
    expect((await c.get('/burn?ms=300')).status).toBe(200); // learned after, never used since
    expect((await c.get('/')).status).toBe(200);
    await c.os.sleep(1500); // heartbeats carry the counts
    const s = await ask(c, { cmd: 'stats' });
    expect(s.ok).toBe(true);
    // /slow's lane-wants told the arbiter it is in use (its flood-proof half, arbiter/lanes.ts).
    expect(s.slowRoutes).toEqual([{ route: 'GET /slow', avgMs: expect.any(Number) }, { route: 'GET /burn', avgMs: expect.any(Number) }]);
    const [g] = s.generations;
    expect(g.fast.workers).toBe(1);
    expect(g.slow.workers).toBe(1);
    expect(g.fast.servedFast + g.fast.servedSlow).toBe(5);
    expect(g.slow.completed).toBe(g.fast.servedSlow);
    const human = await ctl(c, ['-s', SOCK, 'stats']);
    expect(human.out).toMatch(/\nslow routes\n  ROUTE +AVG\n  GET \/slow +\d+ ms\n  GET \/burn +\d+ ms\n/);
  });
});

test('a second drover on the same control socket serves without drover ctl, saying so; the socket stays the first one\'s', async () => {
  const files = {
    [CONFIG]: config(),
    '/tmp/two.json': config({ bind: ['127.0.0.1:8001'] }),
    '/tmp/three.json': config({ bind: ['127.0.0.1:8002'], companions: [{ name: 'idle', command: ['idle'] }] }),
  };
  await run(3, files, async (c) => {
    await c.booted(1);
    const start = async (cfg: string, log: string) => {
      c.os.fs.writeFile(log, '');
      const pid = c.os.spawn({ program: 'arbiter', args: ['--config', cfg], channel: false, stdout: { file: log }, stderr: { file: log } }).pid;
      expect(await until(c.os, () => /worker \d+ booted/.test(c.os.fs.readFile(log)), 30_000)).toBe(true);
      expect(c.os.fs.readFile(log)).toMatch(/WARNING\] .*drover ctl .*EADDRINUSE: control socket \/tmp\/ctl.sock is in use by a running drover .* give this one another control_socket/);
      return pid;
    };
    const two = await start('/tmp/two.json', '/tmp/two.log');
    // With companions too: they run, only drover ctl cannot reach them.
    const three = await start('/tmp/three.json', '/tmp/three.log');
    expect(await until(c.os, () => /companion manager \d+ running 1 companion/.test(c.os.fs.readFile('/tmp/three.log')), 30_000)).toBe(true);
    // The socket still answers for the first drover, which has no companions.
    expect(await ask(c, { cmd: 'status' })).toMatchObject({ ok: false, error: expect.stringMatching(/no companions are configured/) });
    for (const pid of [two, three]) {
      c.os.kill(pid, 'SIGTERM');
      expect(await reap(c.os, pid, 60_000)).toMatchObject({ code: 0 });
    }
    expect(await ask(c, { cmd: 'version' })).toMatchObject({ ok: true }); // neither took it away on its way out
  });
});

test('a reload that changes control_socket moves the socket', async () => {
  await run(4, { [CONFIG]: config() }, async (c) => {
    await c.booted(1);
    c.os.fs.writeFile(CONFIG, config({ control_socket: '/tmp/moved.sock' }));
    c.signal('SIGHUP');
    await c.waitLog(/Reload finished/);
    expect(await until(c.os, () => !c.os.fs.exists(SOCK))).toBe(true);
    expect(await ask(c, { cmd: 'stats' }, '/tmp/moved.sock')).toMatchObject({ ok: true });
  });
});
test('a drover that started without its control socket takes it up on a reload once it is free, and reaches its companions through it', async () => {
  const files = { [CONFIG]: config(), '/tmp/three.json': config({ bind: ['127.0.0.1:8002'], companions: [{ name: 'idle', command: ['idle'] }] }) };
  await run(5, files, async (c) => {
    await c.booted(1);
    c.os.fs.writeFile('/tmp/three.log', '');
    const three = c.os.spawn({ program: 'arbiter', args: ['--config', '/tmp/three.json'], channel: false, stdout: { file: '/tmp/three.log' }, stderr: { file: '/tmp/three.log' } }).pid;
    expect(await until(c.os, () => /companion manager \d+ running 1 companion/.test(c.os.fs.readFile('/tmp/three.log')), 30_000)).toBe(true);
    // The first one goes, and its socket with it; a HUP makes the second serve it.
    c.signal('SIGTERM');
    await c.exited();
    expect(c.os.fs.exists(SOCK)).toBe(false);
    c.os.kill(three, 'SIGHUP');
    expect(await until(c.os, () => c.os.fs.exists(SOCK), 30_000)).toBe(true);
    await c.os.sleep(1500);
    expect(await ask(c, { cmd: 'status' })).toMatchObject({ ok: true, companions: [{ name: 'idle', state: 'RUNNING' }] });
    c.os.kill(three, 'SIGTERM');
    expect(await reap(c.os, three, 60_000)).toMatchObject({ code: 0 });
  });
});

test('drover ctl reload waits for the new generation (or says why it failed); scale changes the fast workers within bounds; top shows each worker', async () => {
  const r = await run(6, { [CONFIG]: config({ workers: 2, min_workers: 1, max_workers: 4 }) }, async (c) => {
    await c.booted(2);
    const reload = await ctl(c, ['-s', SOCK, 'reload']);
    expect(reload).toEqual({ code: 0, out: 'reloaded: generation 2 serving\n' });
    // Answered once generation 2 serves, not when the HUP was taken.
    expect((await ask(c, { cmd: 'stats' })).generations[0].generation).toBe(2);
    expect(c.log()).toMatch(/Reload finished: generation 2 serving/);
    c.os.fs.writeFile(CONFIG, '{ not json');
    expect(await ctl(c, ['-s', SOCK, 'reload'])).toEqual({ code: 1, out: expect.stringMatching(/^drover ctl: reload failed, the running config stays in force: .+\n$/) });
    c.os.fs.writeFile(CONFIG, config({ workers: 2, min_workers: 1, max_workers: 4 }));

    expect(await ctl(c, ['-s', SOCK, 'scale', '3'])).toEqual({ code: 0, out: 'workers: 3 (min 1, max 4)\n' });
    const fast = async () => ((await ask(c, { cmd: 'stats' })).processes as { role: string; state: string }[]).filter((p) => p.role === 'fast' && p.state === 'serving').length;
    let n = 0;
    expect(await until(c.os, () => {
      void fast().then((x) => (n = x));
      return n === 3;
    }, 30_000)).toBe(true);
    expect(await ctl(c, ['-s', SOCK, 'scale', '5'])).toEqual({ code: 1, out: expect.stringMatching(/^drover ctl: scale: 5 is above max_workers \(4\)/) });
    expect(await ctl(c, ['-s', SOCK, 'scale', '0'])).toEqual({ code: 2, out: expect.stringMatching(/^drover ctl: scale: N is a whole number of workers from 1/) });

    const top = await ctl(c, ['-s', SOCK, 'top']);
    expect(top.code).toBe(0);
    expect(top.out).toMatch(new RegExp(`^drover 0\\.1\\.0 {2}arbiter ${c.arbiter} {2}generation 2 serving {2}`));
    for (const pid of c.workers()) expect(top.out).toMatch(new RegExp(`\\n *${pid} {2}(fast|slow) {4}2 {2}serving `));
    expect(top.out).toMatch(/\nno companions\n$/);
    c.signal('SIGTERM');
    expect(await c.exited()).toMatchObject({ code: 0 });
  });
  expect(r.left).toEqual([]);
});

test('drover ctl tail -f follows a companion\'s output through the manager until SIGINT', async () => {
  const chatty = programs(import.meta.url, {
    chatty: async (os: Os) => {
      for (let i = 0; ; i++) {
        os.stdout.write(`chatty ${i}\n`);
        await os.sleep(100);
      }
    },
  });
  await simulate(7, ['--config', CONFIG], async (c) => {
    await c.booted(1);
    await c.waitLog(/companion manager \d+ running 1 companion/);
    await c.os.sleep(1000);
    const out = '/tmp/tail-f.out';
    const { pid } = c.os.spawn({ program: 'ctl', args: ['-s', SOCK, 'tail', 'chatty', '-n', '2', '-f'], channel: false, stdout: { file: out }, stderr: 'stdout' });
    await c.os.sleep(1500);
    c.os.kill(pid, 'SIGINT');
    expect(await reap(c.os, pid)).toMatchObject({ code: 0 });
    const seqs = c.os.fs.readFile(out).split('\n').slice(0, -1).map((l) => Number(/^chatty (\d+)$/.exec(l)?.[1]));
    // The last 2, then every line after them once, in order: about 15 in 1.5 s.
    expect(seqs.every((n, i) => Number.isInteger(n) && (i === 0 || n === seqs[i - 1]! + 1))).toBe(true);
    expect(seqs.length).toBeGreaterThanOrEqual(2 + 12);
  }, { [CONFIG]: config({ companions: [{ name: 'chatty', command: ['chatty'] }] }) }, [controlPrograms, chatty]);
});
