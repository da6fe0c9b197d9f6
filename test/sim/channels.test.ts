import { describe, expect, it } from 'vitest';
import type { Stream } from '../../src/os/types.js';
import { boot } from './helpers.js';

describe('channels', () => {
  it('delivers JSON copies in order, whatever the latencies drawn', async () => {
    for (let seed = 0; seed < 5; seed++) {
      const got: unknown[] = [];
      const sent = { n: 1, nested: { list: [1, 2] }, when: undefined as unknown };
      const { k } = boot(
        {
          main: (os) => {
            const c = os.spawn({ program: 'child' });
            c.channel!.onMessage((m) => {
              got.push(m);
              if (got.length === 50) c.channel!.close();
            });
          },
          child: (os) => {
            for (let i = 0; i < 49; i++) os.channel!.send(i);
            os.channel!.send(sent);
            sent.n = 2; // after send: the copy is already made
          },
        },
        seed,
      );
      await k.run();
      expect(got.slice(0, 49)).toEqual([...Array(49).keys()]);
      expect(got[49]).toEqual({ n: 1, nested: { list: [1, 2] } });
    }
  });

  it('fires disconnect once on each side, then send returns false', async () => {
    const log: string[] = [];
    const { k } = boot({
      main: (os) => {
        const c = os.spawn({ program: 'child' });
        c.channel!.onDisconnect(() => log.push(`parent disconnect, connected=${c.channel!.connected}, send=${c.channel!.send('x')}`));
        c.channel!.onMessage((m) => log.push(`parent got ${String(m)}`));
      },
      child: (os) => {
        const ch = os.channel!;
        ch.onDisconnect(() => log.push(`child disconnect, send=${ch.send('late')}`));
        ch.send('last words');
        ch.close();
        ch.close();
        log.push(`child closed, connected=${ch.connected}`);
      },
    });
    await k.run();
    expect(log[0]).toBe('child closed, connected=false');
    expect(log).toContain('parent got last words');
    expect(log.indexOf('parent got last words')).toBeLessThan(log.indexOf('parent disconnect, connected=false, send=false'));
    expect(log.filter((l) => l.includes('disconnect'))).toHaveLength(2);
    expect(log).toContain('child disconnect, send=false');
  });

  it('a kernel spawn has no channel unless asked', async () => {
    const seen: Record<number, boolean> = {};
    const { k } = boot({ main: (os) => void (seen[os.pid] = os.channel !== null) });
    k.spawn({ program: 'main', channel: true });
    await k.run();
    expect(seen).toEqual({ 100: false, 101: true });
  });
});

describe('stream close', () => {
  async function closeWith(how: 'destroy-read' | 'destroy-unread' | 'end'): Promise<string[]> {
    const got: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const l = await os.listen({ path: '/tmp/x.sock' });
        l.accept((s: Stream) => {
          s.write('hi');
          s.on('data', () => {});
          s.on('end', () => got.push('end'));
          s.on('error', (e: { code: string }) => got.push(e.code));
          s.on('close', () => {
            got.push('close');
            l.close();
          });
        });
        const c = await os.connect({ path: '/tmp/x.sock' });
        if (how !== 'destroy-unread') c.on('data', () => {});
        await os.sleep(10);
        if (how === 'end') c.end();
        else c.destroy();
      },
    });
    await k.run();
    expect(k.processes()).toEqual([]);
    return got;
  }

  it('destroy() with everything read closes like end(): the peer sees EOF', async () => {
    expect(await closeWith('destroy-read')).toEqual(['end', 'close']);
    expect(await closeWith('end')).toEqual(['end', 'close']);
  });

  it('destroy() with unread data resets the peer', async () => {
    expect(await closeWith('destroy-unread')).toEqual(['ECONNRESET', 'close']);
  });
});
