// The simulated pipe (src/sim/pipes.ts): delivery with the kernel's latency,
// EOF at the last writer's exit, burns, holds, EPIPE, Node's flush of unread
// output at the child's exit, and determinism.
import { describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import type { Os } from '../../src/os/types.js';
import { boot } from './helpers.js';

/** Every chunk and the EOF of `r`, stamped with the reader's virtual time. */
function record(os: Os, r: Readable, log: string[]): void {
  r.setEncoding('utf8');
  r.on('data', (d: string) => log.push(`${JSON.stringify(d)} @${os.now()}`));
  r.on('end', () => log.push(`end @${os.now()}`));
}

const at = (line: string): number => Number(line.split('@')[1]);
const text = (log: string[]): string => log.filter((l) => !l.startsWith('end')).map((l) => JSON.parse(l.split(' @')[0]!) as string).join('');

describe('pipes', () => {
  it('every write arrives in order, 0 or 1 ms later, as a traced kernel event; EOF after the last one', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const log: string[] = [];
      const { k } = boot(
        {
          main: (os) => record(os, os.spawn({ program: 'writer', stdout: 'pipe', channel: false }).stdout!, log),
          writer: async (os) => {
            for (let i = 0; i < 300; i++) {
              os.stdout.write(`${i}\n`);
              if (i % 7 === 0) await os.sleep(3);
            }
          },
        },
        seed,
      );
      await k.run();
      expect(text(log)).toBe(Array.from({ length: 300 }, (_, i) => `${i}\n`).join(''));
      expect(log.at(-1)).toMatch(/^end @/);
      const times = log.map(at);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(at(log.at(-1)!) - 3 * Math.ceil(300 / 7)).toBeLessThanOrEqual(1);
      expect(k.trace().filter((l) => / 100 pipe-r 101:out$/.test(l))).toHaveLength(300);
      expect(k.trace().filter((l) => / 100 pipe-eof 101:out$/.test(l))).toHaveLength(1);
    }
  });

  it('the same seed gives the same trace', async () => {
    const run = async (seed: number) => {
      const { k } = boot(
        {
          main: (os) => {
            const c = os.spawn({ program: 'writer', stdout: 'pipe', stderr: 'pipe', channel: false });
            c.stdout!.resume();
            c.stderr!.resume();
          },
          writer: async (os) => {
            for (let i = 0; i < 50; i++) {
              (os.random() < 0.5 ? os.stdout : os.stderr).write('x'.repeat(1 + Math.floor(os.random() * 10)));
              if (os.random() < 0.3) os.burn(os.random() * 3);
              if (os.random() < 0.3) await os.sleep(1);
            }
          },
        },
        seed,
      );
      await k.run();
      return k.traceHash();
    };
    expect(await run(7)).toBe(await run(7));
    expect(await run(7)).not.toBe(await run(8));
  });

  it("stderr 'stdout' is one pipe in write order; child.stderr is null; a crash's stack trace goes into an stderr pipe", async () => {
    const merged: string[] = [];
    const crashed: string[] = [];
    const streams: unknown[] = [];
    const { k } = boot({
      main: (os) => {
        const a = os.spawn({ program: 'mixed', stdout: 'pipe', stderr: 'stdout', channel: false });
        record(os, a.stdout!, merged);
        const b = os.spawn({ program: 'crasher', stderr: 'pipe', channel: false });
        record(os, b.stderr!, crashed);
        streams.push(a.stderr, b.stdout);
      },
      mixed: (os) => {
        for (let i = 0; i < 20; i++) (i % 2 === 0 ? os.stdout : os.stderr).write(`${i},`);
      },
      crasher: () => {
        throw new Error('boom');
      },
    });
    await k.run();
    expect(text(merged)).toBe(Array.from({ length: 20 }, (_, i) => `${i},`).join(''));
    expect(streams).toEqual([null, null]);
    expect(text(crashed)).toContain('Error: boom');
    expect(crashed.at(-1)).toMatch(/^end @/);
  });

  it('a grandchild spawned with inherit writes into the same pipe; EOF comes when the last writer exits, whichever it is', async () => {
    for (const [childMs, grandMs] of [[0, 200], [300, 100]]) {
      const log: string[] = [];
      const { k, pid } = boot({
        // Returns at once: the pipe alone keeps it alive after its child is gone.
        main: (os) => record(os, os.spawn({ program: 'child', stdout: 'pipe', channel: false }).stdout!, log),
        child: async (os) => {
          os.stdout.write('child,');
          os.spawn({ program: 'grand', channel: false });
          await os.sleep(childMs!);
          os.exit(0);
        },
        grand: async (os) => {
          await os.sleep(grandMs!);
          os.stdout.write('grand,');
        },
      });
      await k.run();
      expect(text(log)).toBe('child,grand,');
      const last = Math.max(childMs!, grandMs!);
      expect(at(log.at(-1)!) - last).toBeGreaterThanOrEqual(0);
      expect(at(log.at(-1)!) - last).toBeLessThanOrEqual(1);
      expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
      expect(k.now() - last).toBeLessThanOrEqual(1);
    }
  });

  it('the reading end holds its process until EOF, read or not, and not after', async () => {
    const { k, pid } = boot({
      main: (os) => {
        os.spawn({ program: 'child', stdout: 'pipe', channel: false });
      },
      child: (os) => {
        os.stdout.write('unread');
        os.spawn({ program: 'grand', channel: false });
        os.exit(0);
      },
      grand: async (os) => void (await os.sleep(500)),
    });
    await k.run({ until: 499 });
    expect(k.processes().filter((p) => p.state === 'running').map((p) => p.program)).toEqual(['main', 'grand']);
    await k.run();
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    expect(k.now()).toBeLessThanOrEqual(501);
  });

  it("the child's exit discards output nobody listens for (Node's flushStdio); a listener attached before gets it all", async () => {
    const late: string[] = [];
    const early: string[] = [];
    let ended: boolean | null = null;
    const { k } = boot({
      main: async (os) => {
        const a = os.spawn({ program: 'child', stdout: 'pipe', channel: false });
        const b = os.spawn({ program: 'child', stdout: 'pipe', channel: false });
        record(os, b.stdout!, early);
        await os.sleep(100);
        ended = a.stdout!.readableEnded;
        a.stdout!.on('data', (d: Buffer) => late.push(String(d)));
      },
      child: (os) => os.stdout.write('output'),
    });
    await k.run();
    expect(late).toEqual([]);
    expect(ended).toBe(true);
    expect(text(early)).toBe('output');
  });

  it("a burning writer's output goes out at the end of its burn; killed mid-burn, it never does and EOF comes at the kill", async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const logs: Record<string, string[]> = { survivor: [], killed: [] };
      const { k } = boot(
        {
          main: (os) => {
            for (const name of ['survivor', 'killed']) {
              const c = os.spawn({ program: 'burner', stdout: 'pipe', channel: false });
              record(os, c.stdout!, logs[name]!);
              if (name === 'killed') os.timer(50, () => os.kill(c.pid, 'SIGKILL'));
            }
          },
          burner: (os) => {
            os.stdout.write('before,');
            os.burn(100);
            os.stdout.write('after,');
            os.stderr.write('not a pipe,');
          },
        },
        seed,
      );
      await k.run();
      expect(text(logs.survivor!)).toBe('before,after,');
      expect(at(logs.survivor![1]!)).toBeGreaterThanOrEqual(100);
      expect(at(logs.survivor![1]!)).toBeLessThanOrEqual(101);
      expect(text(logs.killed!)).toBe('before,');
      expect(at(logs.killed!.at(-1)!)).toBeGreaterThanOrEqual(50);
      expect(at(logs.killed!.at(-1)!)).toBeLessThanOrEqual(51);
    }
  });

  it('a reader that burns gets the output after its burn, in order', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: (os) => {
        record(os, os.spawn({ program: 'writer', stdout: 'pipe', channel: false }).stdout!, log);
        os.burn(100);
      },
      writer: async (os) => {
        for (let i = 0; i < 10; i++) {
          os.stdout.write(`${i},`);
          await os.sleep(5);
        }
      },
    });
    await k.run();
    expect(text(log)).toBe('0,1,2,3,4,5,6,7,8,9,');
    expect(Math.min(...log.map(at))).toBeGreaterThanOrEqual(100);
  });

  it('a write after the reader destroyed its end, or died: a drover program lives on, its stream lost and its writes dropped; a command dies of EPIPE; a silent writer lives on', async () => {
    const { k, pid } = boot({
      main: async (os) => {
        const a = os.spawn({ program: 'ticker', stdout: 'pipe', stderr: 'pipe', channel: false });
        const c = os.spawn({ command: ['ticker'], stdout: 'pipe', stderr: 'pipe' });
        const aErrors: string[] = [];
        const cErrors: string[] = [];
        record(os, a.stderr!, aErrors);
        record(os, c.stderr!, cErrors);
        a.stdout!.once('data', () => a.stdout!.destroy());
        c.stdout!.once('data', () => c.stdout!.destroy());
        os.spawn({ program: 'middle', channel: false });
        await os.sleep(100);
        os.stdout.write(`program: ${JSON.stringify(os.waitpid(a.pid))} ${JSON.stringify(text(aErrors))}\n`);
        os.stdout.write(`command: ${JSON.stringify(os.waitpid(c.pid))} ${JSON.stringify(text(cErrors).split('\n')[0])}\n`);
      },
      // Its reader dies at 55 ms: its own tickers meet the closed pipe at their next write, a silent child does not.
      middle: (os) => {
        os.spawn({ program: 'ticker', stdout: 'pipe', stderr: 'ignore', channel: false });
        os.spawn({ command: ['ticker'], stdout: 'pipe', stderr: 'ignore' });
        os.spawn({ program: 'silent', stdout: 'pipe', channel: false });
        os.timer(55, () => os.exit(0));
      },
      // Writes on into the lost stream three times, then exits 3.
      ticker: (os) => {
        let after = 0;
        const tick = (): void => {
          os.stdout.write('tick\n');
          if (os.stdout.lost() === 'EPIPE: its reader is gone' && ++after === 3) return os.exit(3);
          os.timer(10, tick);
        };
        tick();
      },
      silent: async (os) => void (await os.sleep(200)),
    });
    await k.run();
    const [program, command] = [pid + 1, pid + 2];
    expect(k.output.stdout).toBe(
      `program: {"pid":${program},"code":3,"signal":null} ""\n` +
      `command: {"pid":${command},"code":1,"signal":null} "OsError: EPIPE: write to pipe ${command}:out: its reading end is closed"\n`,
    );
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    const [middle, orphanProgram, orphanCommand, silent] = [pid + 3, pid + 4, pid + 5, pid + 6].map((p) => k.exitStatus(p));
    expect(middle).toMatchObject({ code: 0 });
    expect(orphanProgram).toMatchObject({ code: 3 });
    expect(orphanCommand).toMatchObject({ code: 1 });
    // The first write after the close is at 10 ms (60 for the orphans); the lost stream shows from the next tick on.
    expect(k.trace().filter((l) => l.includes(' pipe-lost '))).toEqual([
      `10 ${program} pipe-lost ${program}:out`,
      `60 ${pid + 4} pipe-lost ${pid + 4}:out`,
    ]);
    expect(k.trace().some((l) => l.startsWith(`60 ${pid + 5} crash OsError: EPIPE`))).toBe(true);
    expect(silent).toMatchObject({ code: 0 });
    expect(k.now()).toBe(200);
  });

  it('Kernel.spawn cannot read a pipe', () => {
    const { k } = boot({ main: () => {} });
    expect(() => k.spawn({ program: 'main', stdout: 'pipe' })).toThrow(/EINVAL/);
  });
});
