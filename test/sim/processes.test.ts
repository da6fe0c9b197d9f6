import { describe, expect, it } from 'vitest';
import { OsError } from '../../src/os/types.js';
import { ExitSignal } from '../../src/sim/index.js';
import { boot } from './helpers.js';

describe('lifetime', () => {
  it('lives while its program promise is pending, then exits 0', async () => {
    const { k, pid } = boot({ main: async (os) => void (await os.sleep(50)) });
    await k.run({ until: 49 });
    expect(k.processes()).toEqual([{ pid, ppid: 1, pgid: 1, state: 'running', program: 'main', args: [], title: '' }]);
    await k.run();
    expect(k.exitStatus(pid)).toEqual({ pid, code: 0, signal: null });
    expect(k.processes()).toEqual([]);
  });

  it('a synchronous program lives on a ref\'d timer, not on an unref\'d one', async () => {
    const { k, pid } = boot({
      main: (os) => {
        os.timer(100, () => os.stdout.write('fired'));
        os.timer(500, () => os.stdout.write('never')).unref();
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('fired');
    expect(k.exitStatus(pid)?.code).toBe(0);
    expect(k.now()).toBe(100);
  });

  it('lives while a child has not exited, and while a channel has listeners', async () => {
    const { k, pid } = boot({
      main: (os) => {
        const c = os.spawn({ program: 'child' });
        c.channel!.onMessage(() => {});
      },
      child: (os) => {
        os.channel!.onDisconnect(() => os.stdout.write(`disconnected@${os.now()}`));
        os.timer(20, () => os.channel!.close());
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('disconnected@20');
    expect(k.exitStatus(pid)?.code).toBe(0);
    expect(k.exitStatus(pid + 1)?.code).toBe(0);
  });

  it('a throw or a rejection exits 1 with the error on stderr', async () => {
    const { k, pid } = boot({
      main: (os) => {
        os.spawn({ program: 'thrower', channel: false });
        os.spawn({ program: 'rejecter', channel: false });
        os.spawn({ program: 'timerThrower', channel: false });
      },
      thrower: () => {
        throw new Error('boom');
      },
      rejecter: async (os) => {
        await os.sleep(1);
        throw new Error('later');
      },
      timerThrower: (os) => {
        os.timer(5, async () => {
          await os.sleep(1);
          throw new Error('in a timer');
        });
      },
    });
    await k.run();
    expect(k.exitStatus(pid + 1)?.code).toBe(1);
    expect(k.exitStatus(pid + 2)?.code).toBe(1);
    expect(k.exitStatus(pid + 3)?.code).toBe(1);
    expect(k.output.stderr).toContain('Error: boom');
    expect(k.output.stderr).toContain('Error: later');
    expect(k.output.stderr).toContain('Error: in a timer');
  });

  it('swallows ExitSignal from every callback, sync or async, and the code after exit never runs', async () => {
    const { k, pid } = boot({
      main: (os) => {
        const progs = ['inProgram', 'inAsyncProgram', 'inTimer', 'inAsyncTimer', 'inSignal', 'inMessage'];
        for (const program of progs) {
          const c = os.spawn({ program });
          if (program === 'inMessage') c.channel!.send('hi');
          if (program === 'inSignal') os.timer(5, () => os.kill(c.pid, 'SIGUSR2'));
        }
      },
      inProgram: (os) => {
        os.exit(11);
      },
      inAsyncProgram: async (os) => {
        await os.sleep(1);
        os.exit(12);
      },
      inTimer: (os) => {
        os.timer(1, () => os.exit(13));
      },
      inAsyncTimer: (os) => {
        os.timer(1, async () => {
          await os.sleep(1);
          os.exit(14);
        });
      },
      inSignal: (os) => {
        os.onSignal('SIGUSR2', async () => {
          await os.sleep(1);
          os.exit(15);
        });
        os.timer(1000, () => {});
      },
      inMessage: (os) => {
        os.channel!.onMessage(() => {
          try {
            os.exit(16);
          } finally {
            // exit() unwinds through finally blocks like a throw
          }
          os.stdout.write('unreachable');
        });
      },
    });
    await k.run();
    expect([1, 2, 3, 4, 5, 6].map((i) => k.exitStatus(pid + i)?.code)).toEqual([11, 12, 13, 14, 15, 16]);
    expect(k.output.stdout).toBe('');
    expect(k.output.stderr).toBe('');
  });

  it('os.exit throws an ExitSignal', async () => {
    let caught: unknown;
    const { k } = boot({
      main: (os) => {
        try {
          os.exit(0);
        } catch (e) {
          caught = e;
        }
      },
    });
    await k.run();
    expect(caught).toBeInstanceOf(ExitSignal);
  });
});

describe('spawn and wait', () => {
  it('numbers pids sequentially from 100 and hands args, env, cwd and ppid down', async () => {
    const seen: unknown[] = [];
    const { k, pid } = boot({
      main: (os) => {
        os.fs.mkdir('/srv');
        os.spawn({ program: 'child', args: ['a', 'b'], env: { X: '1' }, cwd: '/srv', channel: false });
        os.spawn({ command: ['child', 'c'], channel: false } as never);
      },
      child: (os, args) => {
        seen.push({ pid: os.pid, ppid: os.ppid(), args, env: os.env, cwd: os.cwd(), channel: os.channel !== null });
      },
    });
    await k.run();
    expect(pid).toBe(100);
    expect(seen).toEqual([
      { pid: 101, ppid: 100, args: ['a', 'b'], env: { X: '1' }, cwd: '/srv', channel: false },
      { pid: 102, ppid: 100, args: ['c'], env: {}, cwd: '/', channel: false },
    ]);
  });

  it('throws ENOENT synchronously for an unknown program, before anything runs', async () => {
    const { k } = boot({ main: () => {} });
    expect(() => k.spawn({ program: 'nope' })).toThrow(OsError);
    try {
      k.spawn({ command: ['nope', 'x'] });
    } catch (e) {
      expect((e as OsError).code).toBe('ENOENT');
    }
  });

  it('waitpid: null while children live, the status once, then ECHILD', async () => {
    const got: unknown[] = [];
    const { k } = boot({
      main: async (os) => {
        const codeOf = (e: unknown): string => (e as OsError).code;
        try {
          os.waitpid(-1);
        } catch (e) {
          got.push(codeOf(e));
        }
        const { pid } = os.spawn({ program: 'child', channel: false });
        got.push(os.waitpid(-1), os.waitpid(pid));
        await os.sleep(20);
        got.push(os.waitpid(-1));
        try {
          os.waitpid(pid);
        } catch (e) {
          got.push(codeOf(e));
        }
        try {
          os.waitpid(1);
        } catch (e) {
          got.push(codeOf(e));
        }
      },
      child: async (os) => {
        await os.sleep(10);
        os.exit(3);
      },
    });
    await k.run();
    expect(got).toEqual(['ECHILD', null, null, { pid: 101, code: 3, signal: null }, 'ECHILD', 'ECHILD']);
  });

  it('a dead child is a zombie until waited for; kill on a zombie is a no-op, on nobody ESRCH', async () => {
    const got: unknown[] = [];
    const { k } = boot({
      main: async (os) => {
        const { pid } = os.spawn({ program: 'child', channel: false });
        await os.sleep(10);
        os.kill(pid, 'SIGTERM'); // zombie: fine
        got.push(os.waitpid(pid));
        try {
          os.kill(pid, 'SIGTERM');
        } catch (e) {
          got.push((e as OsError).code);
        }
        try {
          os.kill(-4242, 'SIGTERM');
        } catch (e) {
          got.push((e as OsError).code);
        }
      },
      child: () => {},
    });
    await k.run({ until: 5 });
    expect(k.processes().map((p) => p.state)).toEqual(['running', 'zombie']);
    await k.run();
    expect(got).toEqual([{ pid: 101, code: 0, signal: null }, 'ESRCH', 'ESRCH']);
  });

  it('orphans go to init, get their parent-death signal, and see their channel disconnect', async () => {
    const log: string[] = [];
    const { k, pid } = boot({
      main: (os) => {
        os.spawn({ program: 'mid', channel: false });
      },
      mid: (os) => {
        os.spawn({ program: 'leaf', args: ['armed'] });
        os.spawn({ program: 'leaf', args: ['plain'] });
        os.timer(10, () => os.exit(0));
      },
      leaf: (os, args) => {
        if (args[0] === 'armed') os.setParentDeathSignal('SIGTERM');
        os.channel!.onDisconnect(() => log.push(`${args[0]} disconnect ppid=${os.ppid()}`));
        os.timer(100, () => log.push(`${args[0]} alive @${os.now()}`));
      },
    });
    await k.run();
    expect(k.exitStatus(pid + 2)).toEqual({ pid: pid + 2, code: null, signal: 'SIGTERM' });
    expect(k.exitStatus(pid + 3)).toEqual({ pid: pid + 3, code: 0, signal: null });
    expect(log).toEqual(['plain disconnect ppid=1', 'plain alive @100']);
  });

  it('kill(-pgid) reaches the whole group, grandchildren included', async () => {
    const { k, pid } = boot({
      main: async (os) => {
        const leader = os.spawn({ program: 'leader', newGroup: true, channel: false });
        await os.sleep(5);
        os.kill(-leader.pid, 'SIGKILL');
        await os.sleep(5);
        os.stdout.write(JSON.stringify(os.waitpid(leader.pid)));
      },
      leader: (os) => {
        os.spawn({ program: 'sleeper', channel: false });
        os.timer(1000, () => {});
      },
      sleeper: (os) => {
        os.timer(1000, () => {});
      },
    });
    await k.run({ until: 2 });
    expect(k.processes().map((p) => [p.pid, p.pgid])).toEqual([
      [pid, 1],
      [pid + 1, pid + 1],
      [pid + 2, pid + 1],
    ]);
    await k.run();
    expect(k.output.stdout).toBe(`{"pid":${pid + 1},"code":null,"signal":"SIGKILL"}`);
    expect(k.exitStatus(pid + 2)?.signal).toBe('SIGKILL');
    expect(k.now()).toBe(10);
  });
});

describe('signals', () => {
  it('runs handlers as events of the target, and coalesces a signal that is already pending', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: (os) => {
        const c = os.spawn({ program: 'target', channel: false });
        os.timer(5, () => {
          os.kill(c.pid, 'SIGHUP');
          os.kill(c.pid, 'SIGHUP');
          os.kill(c.pid, 'SIGUSR2');
          log.push('sent');
        });
        os.timer(20, () => os.kill(c.pid, 'SIGHUP'));
        os.timer(30, () => os.kill(c.pid, 'SIGTERM'));
      },
      target: (os) => {
        os.onSignal('SIGHUP', () => log.push(`hup@${os.now()}`));
        os.onSignal('SIGUSR2', () => log.push(`usr2@${os.now()}`));
        os.onSignal('SIGTERM', () => {
          log.push('term');
          os.onSignal('SIGTERM', null);
          os.exit(0);
        });
        os.timer(1000, () => {});
      },
    });
    await k.run();
    expect(log.slice(0, 1)).toEqual(['sent']);
    expect(log.filter((l) => l.startsWith('hup'))).toEqual(['hup@5', 'hup@20']);
    expect(log).toContain('usr2@5');
    expect(log.at(-1)).toBe('term');
  });

  it('a signal sent while the target burns is delivered once, after the burn', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: (os) => {
        const c = os.spawn({ program: 'target', channel: false });
        for (const t of [10, 20, 30]) os.timer(t, () => os.kill(c.pid, 'SIGUSR2'));
      },
      target: (os) => {
        os.onSignal('SIGUSR2', () => {
          log.push(`usr2@${os.now()}`);
          os.exit(0);
        });
        os.burn(100);
      },
    });
    await k.run();
    expect(log).toEqual(['usr2@100']);
  });

  it('SIGKILL cannot be caught; default actions terminate, ignore, or stop', async () => {
    const got: unknown[] = [];
    const { k, pid } = boot({
      main: (os) => {
        try {
          os.onSignal('SIGKILL', () => {});
        } catch (e) {
          got.push((e as OsError).code);
        }
        const ign = os.spawn({ program: 'idle', channel: false });
        const stop = os.spawn({ program: 'idle', channel: false });
        os.timer(5, () => {
          os.kill(ign.pid, 'SIGCHLD');
          os.kill(ign.pid, 'SIGWINCH');
          os.kill(ign.pid, 'SIGUSR1');
          os.kill(stop.pid, 'SIGTTIN');
        });
        os.timer(50, () => os.kill(ign.pid, 'SIGQUIT'));
        os.timer(60, () => os.kill(stop.pid, 'SIGKILL'));
      },
      idle: (os) => {
        os.timer(30, () => os.stdout.write(`${os.pid} tick;`));
        os.timer(1000, () => {});
      },
    });
    await k.run({ until: 4 });
    const before = k.changes;
    await k.run({ until: 40 });
    expect(got).toEqual(['EINVAL']);
    expect(k.processes().map((p) => p.state)).toEqual(['running', 'running', 'stopped']);
    // Ignored signals change nothing; the stop does, and Kernel.changes says so.
    expect(k.changes).toBe(before + 1);
    expect(k.output.stdout).toBe(`${pid + 1} tick;`); // the stopped one runs nothing
    await k.run();
    expect(k.exitStatus(pid + 1)?.signal).toBe('SIGQUIT');
    expect(k.exitStatus(pid + 2)?.signal).toBe('SIGKILL');
  });

  it('a parent with a SIGCHLD handler hears each child exit', async () => {
    const { k } = boot({
      main: (os) => {
        os.onSignal('SIGCHLD', () => {
          for (let e = os.waitpid(-1); e !== null; e = os.waitpid(-1)) os.stdout.write(`${e.pid}=${e.code} `);
        });
        for (const ms of ['10', '10', '20']) os.spawn({ program: 'child', args: [ms], channel: false });
      },
      child: async (os, args) => {
        await os.sleep(Number(args[0]));
      },
    });
    await k.run();
    expect(k.output.stdout.trim().split(' ').sort()).toEqual(['101=0', '102=0', '103=0']);
  });
});
