// What a burning process does to others after its burn happens at the end of
// the burn, and only if it is still alive then: a process killed mid-burn
// never "sends" anything after the kill; its peers see the reset, EOF or
// disconnect of its death at the kill time.
import { describe, expect, it } from 'vitest';
import type { Os, Signal } from '../../src/os/types.js';
import { boot } from './helpers.js';

const ADDR = { host: '127.0.0.1', port: 9000 };

/** Connects to ADDR, asks, and logs what comes back with virtual times. */
async function ask(os: Os, log: string[]): Promise<void> {
  const s = await os.connect(ADDR);
  s.on('data', (d: Buffer) => log.push(`data ${d.toString()} @${os.now()}`));
  s.on('end', () => log.push(`end @${os.now()}`));
  s.on('error', (e: NodeJS.ErrnoException) => log.push(`error ${e.code} @${os.now()}`));
  s.on('close', () => log.push(`close @${os.now()}`));
  s.write('question');
}

/** A server that burns `ms` on a request, then answers and closes the way `how` says. */
function server(ms: number, how: 'end' | 'destroy') {
  return (os: Os) => {
    os.listeners[0]!.accept((s) => {
      s.on('data', () => {
        os.burn(ms);
        s.write('answer');
        if (how === 'end') s.end();
        else s.destroy();
      });
    });
  };
}

const at = (line: string): number => Number(line.split('@')[1]);

describe('effects of a burn', () => {
  for (const how of ['end', 'destroy'] as const) {
    for (const sig of ['SIGKILL', 'SIGABRT'] as Signal[]) {
      it(`a server killed (${sig}) in a 1e9 ms burn never answers; the client sees the connection end at the kill (${how})`, async () => {
        for (let seed = 1; seed <= 4; seed++) {
          const log: string[] = [];
          const { k } = boot(
            {
              main: async (os) => {
                const l = await os.listen(ADDR);
                const srv = os.spawn({ program: 'server', listeners: [l], channel: false });
                os.timer(1000, () => os.kill(srv.pid, sig));
                await ask(os, log);
              },
              server: server(1e9, how),
            },
            seed,
          );
          await k.run({ until: 60_000 });
          expect(log.some((l) => l.startsWith('data')), log.join(', ')).toBe(false);
          expect(log.at(-1), log.join(', ')).toMatch(/^close @/);
          for (const line of log) {
            expect(at(line), log.join(', ')).toBeGreaterThanOrEqual(1000);
            expect(at(line), log.join(', ')).toBeLessThanOrEqual(1001);
          }
          expect(k.processes(), 'everyone is gone by then').toEqual([]);
          expect(k.now()).toBeLessThan(2000);
        }
      });
    }

    it(`a server that survives its burn answers at its end, then closes (${how})`, async () => {
      for (let seed = 1; seed <= 4; seed++) {
        const log: string[] = [];
        const { k } = boot(
          {
            main: async (os) => {
              const l = await os.listen(ADDR);
              const srv = os.spawn({ program: 'server', listeners: [l], channel: false });
              os.timer(1000, () => os.kill(srv.pid, 'SIGKILL'));
              await ask(os, log);
            },
            server: server(100, how),
          },
          seed,
        );
        await k.run({ until: 60_000 });
        expect(log[0]).toMatch(/^data answer @10[0-4]$/);
        expect(log.at(-1)).toMatch(/^close @10[0-4]$/);
        if (how === 'end') expect(log).toContainEqual(expect.stringMatching(/^end @/));
      }
    });
  }

  it('channel messages sent after a burn: never delivered if the sender is killed mid-burn, delivered in order at its end if not', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const got: { killed: string[]; survivor: string[] } = { killed: [], survivor: [] };
      const { k } = boot(
        {
          main: (os) => {
            for (const name of ['killed', 'survivor']) {
              const c = os.spawn({ program: 'burner' });
              c.channel!.onMessage((m) => got[name as keyof typeof got].push(`${String(m)} @${os.now()}`));
              c.channel!.onDisconnect(() => got[name as keyof typeof got].push(`disconnect @${os.now()}`));
              if (name === 'killed') os.timer(50, () => os.kill(c.pid, 'SIGKILL'));
            }
          },
          burner: (os) => {
            os.channel!.send('before');
            os.burn(100);
            os.channel!.send('after1');
            os.channel!.send('after2');
          },
        },
        seed,
      );
      await k.run();
      const [killedBefore, killedEnd] = got.killed;
      expect(got.killed).toHaveLength(2);
      expect(killedBefore).toMatch(/^before @[01]$/);
      expect(killedEnd).toMatch(/^disconnect @5[01]$/);
      expect(got.survivor.map((l) => l.split(' ')[0])).toEqual(['before', 'after1', 'after2', 'disconnect']);
      expect(at(got.survivor[0]!)).toBeLessThanOrEqual(1);
      for (const line of got.survivor.slice(1)) expect([100, 101]).toContain(at(line));
    }
  });

  it('what a process does at the end of its burn follows what it did during it, whatever the seed', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const got: string[] = [];
      const { k } = boot(
        {
          main: (os) => {
            const c = os.spawn({ program: 'burner' });
            c.channel!.onMessage((m) => got.push(String(m)));
            os.timer(10, () => c.channel!.send('ping'));
          },
          burner: (os) => {
            os.channel!.onMessage((m) => {
              os.channel!.send(`re:${String(m)}`);
              os.channel!.close();
            });
            os.burn(100);
            os.channel!.send('during');
          },
        },
        seed,
      );
      await k.run();
      expect(got).toEqual(['during', 're:ping']);
    }
  });

  it('exit() during a burn: what the process did before it goes out first, whatever the seed', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const got: string[] = [];
      const { k } = boot(
        {
          main: (os) => {
            const c = os.spawn({ program: 'burner' });
            c.channel!.onMessage((m) => got.push(`${String(m)} @${os.now()}`));
            c.channel!.onDisconnect(() => got.push(`disconnect @${os.now()}`));
            os.onSignal('SIGCHLD', () => got.push(`exit ${os.waitpid(c.pid)?.code} @${os.now()}`));
          },
          burner: (os) => {
            os.burn(40);
            os.channel!.send('last words');
            os.exit(3);
          },
        },
        seed,
      );
      await k.run();
      expect(got.map((l) => l.split(' @')[0]).filter((l) => l !== 'exit 3')).toEqual(['last words', 'disconnect']);
      expect(got).toContain('exit 3 @40');
    }
  });

  it('a child spawned during a burn starts at its end; one spawned by a process killed mid-burn never runs', async () => {
    const started: string[] = [];
    const { k } = boot({
      main: (os) => {
        const a = os.spawn({ program: 'spawner', args: ['killed'], channel: false });
        os.spawn({ program: 'spawner', args: ['survivor'], channel: false });
        os.timer(50, () => os.kill(a.pid, 'SIGKILL'));
      },
      spawner: (os, args) => {
        os.burn(100);
        os.spawn({ program: 'child', args: [args[0]!], channel: false });
      },
      child: (os, args) => {
        started.push(`${args[0]} @${os.now()}`);
      },
    });
    await k.run();
    expect(started).toEqual(['survivor @100']);
    expect(k.processes()).toEqual([]);
    expect(k.trace().some((l) => / unborn parent=101$/.test(l))).toBe(true);
  });

  it('a connect made during a burn by a process killed mid-burn never reaches the listener', async () => {
    const accepted: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const l = await os.listen(ADDR);
        l.accept((s) => {
          accepted.push(`accept @${os.now()}`);
          s.destroy();
        });
        const a = os.spawn({ program: 'dialer', channel: false });
        os.spawn({ program: 'dialer', channel: false });
        os.timer(50, () => os.kill(a.pid, 'SIGKILL'));
        os.timer(500, () => l.close());
      },
      dialer: (os) => {
        os.burn(100);
        void os.connect(ADDR).then((s) => s.destroy(), () => {});
      },
    });
    await k.run();
    expect(accepted).toHaveLength(1);
    expect([100, 101, 102]).toContain(at(accepted[0]!));
  });

  it('a kill sent during a burn by a process killed mid-burn never arrives', async () => {
    const { k, pid } = boot({
      main: (os) => {
        const v = os.spawn({ program: 'victim', channel: false });
        const a = os.spawn({ program: 'killer', args: [String(v.pid)], channel: false });
        os.timer(50, () => os.kill(a.pid, 'SIGKILL'));
        os.timer(300, () => os.kill(v.pid, 'SIGTERM'));
      },
      victim: (os) => {
        os.timer(1000, () => {});
      },
      killer: (os, args) => {
        os.burn(100);
        os.kill(Number(args[0]), 'SIGKILL');
      },
    });
    await k.run();
    expect(k.exitStatus(pid + 1)).toEqual({ pid: pid + 1, code: null, signal: 'SIGTERM' });
  });
});
