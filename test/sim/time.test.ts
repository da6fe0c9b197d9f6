import { describe, expect, it } from 'vitest';
import { boot } from './helpers.js';

describe('virtual time', () => {
  it('jumps over an hour of sleep in milliseconds of host time', async () => {
    const seen: number[] = [];
    const { k, pid } = boot({
      main: async (os) => {
        seen.push(os.now());
        await os.sleep(3_600_000);
        seen.push(os.now());
        await os.sleep(3_600_000);
        seen.push(os.now(), os.wallTime());
      },
    });
    const t0 = performance.now();
    const r = await k.run();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(r.reason).toBe('idle');
    expect(seen).toEqual([0, 3_600_000, 7_200_000, Date.UTC(2026, 0, 1) + 7_200_000]);
    expect(k.now()).toBe(7_200_000);
    expect(k.exitStatus(pid)).toEqual({ pid, code: 0, signal: null });
  });

  it('fires timers at their time, in time order, and cancel and unref work', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: (os) => {
        os.timer(30, () => log.push(`c@${os.now()}`));
        os.timer(10, () => log.push(`a@${os.now()}`));
        const t = os.timer(20, () => log.push('cancelled'));
        os.timer(15, () => t.cancel());
        os.timer(1000, () => log.push('unref')).unref();
        // Node: anything under 1 ms is 1 ms.
        os.timer(0, () => log.push(`zero@${os.now()}`));
      },
    });
    await k.run();
    expect(log).toEqual(['zero@1', 'a@10', 'c@30']);
    expect(k.now()).toBe(30);
  });

  it('stops at `until` and resumes from there', async () => {
    const log: number[] = [];
    const { k } = boot({
      main: async (os) => {
        for (let i = 0; i < 5; i++) {
          await os.sleep(100);
          log.push(os.now());
        }
      },
    });
    const r1 = await k.run({ until: 250 });
    expect(r1.reason).toBe('until');
    expect(k.now()).toBe(250);
    expect(log).toEqual([100, 200]);
    const r2 = await k.run({ maxEvents: 1 });
    expect(r2).toMatchObject({ reason: 'maxEvents', events: 1 });
    expect(log).toEqual([100, 200, 300]);
    const r3 = await k.run({ stopWhen: () => log.length === 4 });
    expect(r3.reason).toBe('stopWhen');
    await k.run();
    expect(log).toEqual([100, 200, 300, 400, 500]);
  });

  it('breaks ties between same-time events by the seed, the same way every time', async () => {
    const order = async (seed: number): Promise<string> => {
      const { k } = boot(
        {
          main: (os) => {
            for (const name of ['a', 'b', 'c', 'd']) os.spawn({ program: 'tick', args: [name] });
          },
          tick: (os, args) => {
            os.timer(10, () => os.stdout.write(args[0]!));
          },
        },
        seed,
      );
      await k.run();
      return k.output.stdout;
    };
    const orders = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const o = await order(seed);
      expect(await order(seed)).toBe(o);
      orders.add(o);
    }
    expect(orders.size).toBeGreaterThan(3);
  });
});

describe('burn', () => {
  it('holds only the burner: its own effects are stamped at the end of the burn, others run on', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: (os) => {
        const c = os.spawn({ program: 'burner' });
        c.channel!.onMessage((m) => log.push(`main got ${String(m)} @${os.now()}`));
        os.spawn({ program: 'ticker', channel: false });
        os.timer(5, () => {
          c.channel!.send('ping');
          log.push(`main sent ping @${os.now()}`);
        });
      },
      burner: (os) => {
        os.channel!.onMessage((m) => {
          log.push(`burner got ${String(m)} @${os.now()}`);
          os.channel!.close();
        });
        os.burn(100);
        log.push(`burner after burn @${os.now()}`);
        os.timer(10, () => log.push(`burner timer @${os.now()}`));
        os.channel!.send('done');
      },
      ticker: (os) => {
        os.timer(50, () => log.push(`ticker @${os.now()}`));
      },
    });
    await k.run();
    const at = (prefix: string): number => Number(log.find((l) => l.startsWith(prefix))!.split('@')[1]);
    expect(at('burner after burn')).toBe(100);
    expect(at('main sent ping')).toBe(5);
    expect(at('ticker')).toBe(50); // not held up by the burner
    expect(at('burner got ping')).toBe(100); // delivered no earlier than the end of the burn
    expect(at('main got done')).toBeGreaterThanOrEqual(100);
    expect(at('main got done')).toBeLessThanOrEqual(101);
    expect(at('burner timer')).toBe(110);
  });

  it('a default-terminate signal kills a burning process at once', async () => {
    const { k } = boot({
      main: (os) => {
        const { pid } = os.spawn({ program: 'burner', channel: false });
        os.timer(10, () => os.kill(pid, 'SIGTERM'));
        os.onSignal('SIGCHLD', () => {
          const e = os.waitpid(pid);
          os.stdout.write(`${JSON.stringify(e)} @${os.now()}`);
        });
      },
      burner: (os) => {
        os.burn(1000);
        os.timer(1, () => os.stdout.write('never'));
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('{"pid":101,"code":null,"signal":"SIGTERM"} @10');
  });

  it('exit() during a burn takes effect when the burn ends', async () => {
    const { k } = boot({
      main: (os) => {
        os.spawn({ program: 'burner', channel: false });
        os.onSignal('SIGCHLD', () => os.stdout.write(`${JSON.stringify(os.waitpid(-1))} @${os.now()}`));
      },
      burner: (os) => {
        os.burn(40);
        os.exit(7);
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('{"pid":101,"code":7,"signal":null} @40');
  });

  it('a kill sent by a burning process leaves at the end of its burn, whatever the seed', async () => {
    for (let seed = 0; seed < 12; seed++) {
      const { k } = boot(
        {
          main: (os) => {
            const a = os.spawn({ program: 'victim', channel: false });
            os.spawn({ program: 'killer', args: [String(a.pid)], channel: false });
            os.onSignal('SIGCHLD', () => {
              for (let e = os.waitpid(-1); e !== null; e = os.waitpid(-1)) os.stdout.write(`${e.pid}:${e.signal ?? e.code}@${os.now()} `);
            });
          },
          victim: (os) => {
            os.timer(1000, () => {});
          },
          killer: (os, args) => {
            os.burn(30);
            os.kill(Number(args[0]), 'SIGKILL');
          },
        },
        seed,
      );
      await k.run();
      expect(k.output.stdout.trim().split(' ').sort()).toEqual(['101:SIGKILL@30', '102:0@30']);
    }
  });
});
