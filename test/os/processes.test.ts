// Processes and signals on the real OS: what the Node adapter adds over
// child_process (waitpid over libuv's reaping, zombies, setpriv, the USR1
// guard, parent death without prctl).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createNodeOs } from '../../src/os/node/index.js';
import { harness, inbox, reap, alive, thrown, until } from './helpers.js';
import { oneFileRegistry, unbuiltRegistry } from './one-file.js';

const h = harness();
const os = h.os;
afterEach(async () => {
  os.onSignal('SIGCHLD', null);
  await h.cleanup();
});

describe('spawn and waitpid', () => {
  test('exit codes and signals are queued until collected, exactly once; a zombie is never signalled', async () => {
    expect(thrown(() => os.waitpid(-1)).code).toBe('ECHILD');
    let sigchld = 0;
    os.onSignal('SIGCHLD', () => sigchld++);
    const a = h.spawn({ program: 'exit-with', args: ['7'], channel: false });
    const b = h.spawn({ program: 'idle' });
    await inbox(os, b.channel!)();
    expect(os.waitpid(b.pid)).toBeNull();
    await until(os, () => sigchld === 1);
    // a is a zombie now: signalling it must not reach whoever has its pid next.
    expect(() => os.kill(a.pid, 'SIGKILL')).not.toThrow();
    os.kill(b.pid, 'SIGTERM');
    await until(os, () => sigchld === 2);
    expect(os.waitpid(-1)).toEqual({ pid: a.pid, code: 7, signal: null });
    expect(os.waitpid(-1)).toEqual({ pid: b.pid, code: null, signal: 'SIGTERM' });
    expect(thrown(() => os.waitpid(a.pid)).code).toBe('ECHILD');
    expect(thrown(() => os.waitpid(-1)).code).toBe('ECHILD');
    expect(thrown(() => os.kill(a.pid, 'SIGTERM')).code).toBe('ESRCH');
    expect(thrown(() => os.onSignal('SIGKILL', () => {})).code).toBe('EINVAL');
  });

  test('a registry with a one-file entry starts its programs on that file; one whose entry was not built, on the adapter\'s', async () => {
    const local = createNodeOs({ programs: [oneFileRegistry, unbuiltRegistry] });
    for (const [program, entry] of [['where-started', /one-file-entry\.ts$/], ['where-started-unbuilt', null]] as const) {
      const c = local.spawn({ program, newGroup: true });
      const got = (await inbox(local, c.channel!)()) as { entry: string | null; argv1: string; via: string };
      expect(await reap(local, c.pid)).toMatchObject({ code: 0 });
      if (entry) {
        expect(got.entry).toMatch(entry);
        expect(got.argv1).toMatch(entry);
        expect(got.via).toBe('preloaded'); // the entry's registry, not the module imported again
      } else {
        expect(got.entry).toBeNull();
        expect(got.via).toBe('imported');
        expect(got.argv1).toMatch(/os\/node\/entry\.ts$/);
      }
    }
  });

  test('an unknown program or command is ENOENT at once, naming it', () => {
    const p = thrown(() => h.spawn({ program: 'nope' }));
    expect(p.code).toBe('ENOENT');
    expect(p.message).toMatch(/"nope".*exit-with.*idle/);
    const c = thrown(() => h.spawn({ command: ['drover-no-such-command', 'x'] }));
    expect(c.code).toBe('ENOENT');
    expect(c.message).toContain('drover-no-such-command');
    expect(thrown(() => h.spawn({ command: ['./no/such/file'] })).code).toBe('ENOENT');
    // Wrapped in setpriv it would "start" and exit 127; it must still fail here.
    expect(thrown(() => h.spawn({ command: ['drover-no-such-command'], parentDeathSignal: 'SIGTERM' })).code).toBe('ENOENT');
    expect(() => os.waitpid(-1)).toThrow(/ECHILD/);
  });

  test('a throwing program exits 1 with its error on stderr; one that never settles and holds nothing exits 0', async () => {
    const dir = h.tmp();
    const err = join(dir, 'err');
    const t = h.spawn({ program: 'throws', channel: false, stderr: { file: err } });
    const n = h.spawn({ program: 'never-settles', channel: false });
    expect(await reap(os, t.pid)).toMatchObject({ code: 1 });
    expect(await reap(os, n.pid)).toMatchObject({ code: 0 });
    expect(readFileSync(err, 'utf8')).toContain('thrown on purpose');
  });

  test('a given env replaces the parent\'s but keeps the test tag; drover\'s plumbing never shows', async () => {
    const c = h.spawn({ program: 'report-env', args: ['a', 'b c'], env: { FOO: 'bar' } });
    const r = (await inbox(os, c.channel!)()) as { env: Record<string, string>; args: string[]; channel: boolean; listeners: number };
    expect(r.args).toEqual(['a', 'b c']);
    expect(r.channel).toBe(true);
    expect(r.env.FOO).toBe('bar');
    expect(r.env.DROVER_TEST_RUN).toBe(process.env.DROVER_TEST_RUN);
    expect(r.env.PATH).toBeUndefined();
    expect(Object.keys(r.env).filter((k) => k.startsWith('DROVER_') && k !== 'DROVER_TEST_RUN')).toEqual([]);
  });
});

describe('signals', () => {
  test('USR1 never opens the inspector: ignored without a handler, and again after a reset', async () => {
    const dir = h.tmp();
    const err = join(dir, 'err');
    const c = h.spawn({ program: 'usr1', stderr: { file: err } });
    const next = inbox(os, c.channel!);
    await next();
    const ask = async (m: string) => {
      c.channel!.send(m);
      return next();
    };
    os.kill(c.pid, 'SIGUSR1');
    await ask('handle');
    os.kill(c.pid, 'SIGUSR1');
    await os.sleep(50);
    expect(await ask('count')).toEqual({ got: 1 });
    await ask('reset');
    os.kill(c.pid, 'SIGUSR1');
    await os.sleep(100);
    expect(await ask('count')).toEqual({ got: 1 });
    expect(os.waitpid(c.pid)).toBeNull();
    expect(readFileSync(err, 'utf8')).not.toMatch(/Debugger/);
  });

  test('onSignal in the creating process touches nothing until asked', () => {
    const before = process.listenerCount('SIGTERM');
    const mine = createNodeOs({ programs: [] });
    expect(process.listenerCount('SIGTERM')).toBe(before);
    mine.onSignal('SIGTERM', () => {});
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    mine.onSignal('SIGTERM', null);
    expect(process.listenerCount('SIGTERM')).toBe(before);
    mine.onSignal('SIGCHLD', () => {});
    expect(process.listenerCount('SIGCHLD')).toBe(0);
  });
});

describe('parent death', () => {
  test('setpriv --pdeathsig: a command dies with the program that started it; without it, it survives', async () => {
    const armed = h.spawn({ program: 'start-command', args: ['SIGTERM', 'sleep', '60'] });
    const bare = h.spawn({ program: 'start-command', args: ['none', 'sleep', '60'] });
    const g1 = ((await inbox(os, armed.channel!)()) as { grandchild: number }).grandchild;
    const g2 = ((await inbox(os, bare.channel!)()) as { grandchild: number }).grandchild;
    // setpriv, then the parent check in sh, exec'd it: the pid is the command's own.
    expect(await until(os, () => readFileSync(`/proc/${g1}/cmdline`, 'latin1').split('\0')[0] === 'sleep', 3000)).toBe(true);
    os.kill(armed.pid, 'SIGKILL');
    os.kill(bare.pid, 'SIGKILL');
    expect(await until(os, () => !alive(g1), 3000)).toBe(true);
    await os.sleep(200);
    expect(alive(g2)).toBe(true); // cleanup kills it with its group
  });

  test('a command armed with a parent-death signal dies with a parent killed right after spawning it', async () => {
    for (let i = 0; i < 5; i++) {
      const note = join(h.tmp(), 'pid');
      const p = h.spawn({ program: 'start-command-and-die', args: [note] });
      await until(os, () => os.waitpid(p.pid) !== null, 5000);
      const g = Number(readFileSync(note, 'utf8'));
      expect(await until(os, () => !alive(g), 2000), `run ${i}: sleep ${g} outlived its parent`).toBe(true);
    }
  });

  test('a program notices its parent\'s death by channel or by ppid; a parent closing the channel is not a death', async () => {
    const dir = h.tmp();
    const file = (n: string) => join(dir, n);
    const lines = (n: string) => {
      try {
        return readFileSync(file(n), 'utf8');
      } catch {
        return '';
      }
    };
    const cases = ['channel', 'poll', 'closed'].map((name) => {
      const args = [file(name), name === 'poll' ? 'none' : 'channel', name === 'closed' ? 'close' : 'keep'];
      const p = h.spawn({ program: 'death-parent', args });
      return { name, p, msg: inbox(os, p.channel!)() };
    });
    for (const c of cases) await c.msg;
    await os.sleep(300);
    expect(lines('closed')).toBe(''); // its parent closed the channel and lives on
    const t0 = os.now();
    for (const c of cases) os.kill(c.p.pid, 'SIGKILL');
    expect(await until(os, () => cases.every((c) => lines(c.name) !== ''), 3000)).toBe(true);
    expect(os.now() - t0).toBeLessThan(1500);
    for (const c of cases) expect(lines(c.name)).toMatch(/^SIGTERM ppid=\d+\n$/);
  });
});
