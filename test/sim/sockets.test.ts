import { describe, expect, it } from 'vitest';
import { UNIX_PATH_MAX, type Listener, type Os } from '../../src/os/types.js';
import { boot } from './helpers.js';
import { readAll } from '../support/os.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code: string }).code;
  }
}

const echo = (os: Os, l: Listener): void => {
  l.accept((s) => {
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  });
  void os;
};

describe('sockets', () => {
  it('echoes over TCP and Unix, with ephemeral ports and a socket file', async () => {
    const got: unknown[] = [];
    const { k } = boot({
      main: async (os) => {
        const tcp = await os.listen({ host: '127.0.0.1', port: 0 });
        const unix = await os.listen({ path: '/tmp/echo.sock' });
        got.push(tcp.address, os.fs.stat('/tmp/echo.sock').isSocket(), (os.fs.stat('/tmp/echo.sock').mode & 0o777).toString(8));
        echo(os, tcp);
        echo(os, unix);
        for (const addr of [tcp.address, unix.address]) {
          const s = await os.connect(addr);
          s.write('hello ');
          s.end('world');
          got.push(await readAll(s));
        }
        tcp.close();
        unix.close();
        got.push(os.fs.exists('/tmp/echo.sock'));
      },
    });
    await k.run();
    expect(got).toEqual([{ host: '127.0.0.1', port: 32768 }, true, '600', 'hello world', 'hello world', false]);
    expect(k.processes()).toEqual([]);
  });

  it('refuses what nobody listens on; ENOENT for a missing Unix path; EADDRINUSE, EEXIST, ENAMETOOLONG on listen', async () => {
    const got: string[] = [];
    const { k } = boot({
      main: async (os) => {
        got.push(await code(os.connect({ host: '127.0.0.1', port: 9 })));
        got.push(await code(os.connect({ path: '/tmp/none.sock' })));
        os.fs.writeFile('/tmp/file', 'x');
        got.push(await code(os.connect({ path: '/tmp/file' })));
        const l = await os.listen({ host: '0.0.0.0', port: 8000 });
        got.push(await code(os.listen({ host: '127.0.0.1', port: 8000 })));
        got.push(await code(os.listen({ path: '/tmp/file' })));
        const u = await os.listen({ path: '/tmp/a.sock' });
        got.push(await code(os.listen({ path: '/tmp/a.sock' })));
        got.push(await code(os.listen({ path: '/tmp/' + 'x'.repeat(UNIX_PATH_MAX) })));
        got.push(await code(os.listen({ path: '/nodir/a.sock' })));
        l.close();
        u.close();
        got.push(await code(os.listen({ host: '127.0.0.1', port: 8000 }).then((x) => x.close())));
      },
    });
    await k.run();
    expect(got).toEqual(['ECONNREFUSED', 'ENOENT', 'ECONNREFUSED', 'EADDRINUSE', 'EEXIST', 'EADDRINUSE', 'ENAMETOOLONG', 'ENOENT', 'ok']);
  });

  it('names the path, its length, the limit and a fix in ENAMETOOLONG', async () => {
    let message = '';
    const path = '/tmp/' + 'y'.repeat(200);
    const { k } = boot({
      main: async (os) => {
        await os.listen({ path }).catch((e: Error) => (message = e.message));
      },
    });
    await k.run();
    expect(message).toContain(path);
    expect(message).toContain(String(Buffer.byteLength(path)));
    expect(message).toContain(String(UNIX_PATH_MAX));
    expect(message).toMatch(/shorter/);
  });

  it('leaves a stale socket file when the creator dies, and the next listen replaces it', async () => {
    const got: unknown[] = [];
    const { k } = boot({
      main: async (os) => {
        os.spawn({ program: 'creator', channel: false });
        await os.sleep(10);
        got.push(os.fs.stat('/tmp/s.sock').isSocket());
        got.push(await code(os.connect({ path: '/tmp/s.sock' })));
        const l = await os.listen({ path: '/tmp/s.sock' }, { mode: 0o660 });
        got.push((os.fs.stat('/tmp/s.sock').mode & 0o777).toString(8));
        l.close();
      },
      creator: async (os) => {
        await os.listen({ path: '/tmp/s.sock' });
        os.exit(0);
      },
    });
    await k.run();
    expect(got).toEqual([true, 'ECONNREFUSED', '660']);
  });

  it('queues connections in the backlog while nobody accepts, and refuses beyond it', async () => {
    const got: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const l = await os.listen({ host: '127.0.0.1', port: 7000 }, { backlog: 2 });
        const conns = [0, 1, 2].map(() => os.connect(l.address));
        const codes = conns.map(code);
        for (const c of codes) got.push(await c);
        const first = await conns[0]!;
        first.end('queued');
        await os.sleep(10);
        l.accept((s) => {
          void readAll(s).then((t) => {
            got.push(`read ${JSON.stringify(t)}`);
            l.close();
          });
        });
      },
    });
    await k.run();
    expect(got).toEqual(['ok', 'ok', 'ECONNREFUSED', 'read "queued"']);
  });

  it('hands a listener to children that accept from it while the parent never does', async () => {
    const served: number[] = [];
    const { k } = boot(
      {
        main: async (os) => {
          const l = await os.listen({ host: '127.0.0.1', port: 8080 });
          const kids = [0, 1, 2].map(() => os.spawn({ program: 'worker', listeners: [l] }));
          for (const c of kids) c.channel!.onMessage((pid) => served.push(pid as number));
          os.spawn({ program: 'client', channel: false });
          await os.sleep(200);
          for (const c of kids) os.kill(c.pid, 'SIGTERM');
          l.close();
          for (const c of kids) c.channel!.close();
        },
        worker: (os) => {
          os.listeners[0]!.accept((s) => {
            os.channel!.send(os.pid);
            s.end(String(os.pid));
          });
        },
        client: async (os) => {
          await os.sleep(5);
          for (let i = 0; i < 30; i++) {
            const s = await os.connect({ host: '127.0.0.1', port: 8080 });
            await readAll(s);
          }
        },
      },
      7,
    );
    await k.run();
    expect(served).toHaveLength(30);
    expect(new Set(served)).toEqual(new Set([101, 102, 103]));
    expect(k.processes()).toEqual([]);
  });

  it('resets connections waiting in the backlog when the last holder goes', async () => {
    const got: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const l = await os.listen({ host: '127.0.0.1', port: 7001 });
        const s = await os.connect(l.address);
        s.on('error', (e: { code: string }) => got.push(e.code));
        s.on('close', () => got.push('close'));
        l.close();
      },
    });
    await k.run();
    expect(got).toEqual(['ECONNRESET', 'close']);
  });

  it('a peer that dies closes its streams: EOF when all was read, RST when data was left unread', async () => {
    const got: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const l = await os.listen({ host: '127.0.0.1', port: 7002 });
        l.accept((s) => {
          s.write('greeting');
          s.on('data', () => {});
          s.on('end', () => got.push('end'));
          s.on('error', (e: { code: string }) => got.push(e.code));
        });
        os.spawn({ program: 'client', args: ['read'], channel: false });
        await os.sleep(20);
        os.spawn({ program: 'client', args: ['ignore'], channel: false });
        await os.sleep(20);
        l.close();
      },
      client: async (os, args) => {
        const s = await os.connect({ host: '127.0.0.1', port: 7002 });
        if (args[0] === 'read') s.on('data', () => {});
        await os.sleep(10);
        os.exit(0);
      },
    });
    await k.run();
    expect(got).toEqual(['end', 'ECONNRESET']);
    expect(k.processes()).toEqual([]);
  });

  it('pause gives connections handed to a busy acceptor, not accepted yet, back to the backlog at once', async () => {
    const got: string[] = [];
    const { k } = boot({
      main: async (os) => {
        const l = await os.listen({ host: '127.0.0.1', port: 7100 });
        const a = os.spawn({ program: 'a', listeners: [l] });
        await new Promise<void>((resolve) => a.channel!.onMessage(() => resolve()));
        await os.sleep(50);
        // A is burning: both are handed to it, and wait for its loop.
        const t0 = os.now();
        const conns = await Promise.all([os.connect(l.address), os.connect(l.address)]);
        const b = os.spawn({ program: 'b', listeners: [l] });
        const replies = await Promise.all(conns.map(async (c) => `${await readAll(c)} after ${os.now() - t0 < 700 ? 'less' : 'more'} than 700 ms`));
        got.push(...replies);
        l.close();
        for (const c of [a, b]) os.kill(c.pid, 'SIGKILL');
      },
      // Busy for 300 ms; the first connection it takes makes it pause and burn 1000 ms more.
      a: async (os) => {
        const l = os.listeners[0]!;
        l.accept((s) => {
          s.end('A');
          l.pause();
          os.burn(1000);
        });
        os.channel!.send('ready');
        await os.sleep(10);
        os.burn(300);
      },
      b: (os) => {
        os.listeners[0]!.accept((s) => s.end('B'));
      },
    });
    await k.run({ until: 10_000 });
    expect(got).toEqual(['A after less than 700 ms', 'B after less than 700 ms']);
    expect(k.processes()).toEqual([]);
  });
});
