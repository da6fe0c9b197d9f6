// The kernel's own faults (src/sim/faults.ts): each kind at probability 1
// fails its call as the real OS would (the errno, what is left behind, what
// the peer sees), all are off unless asked for, a process outside the
// scope is never hit, and a seed replays. Then drover's side: a log that
// cannot be written, a pidfile that cannot be written.
import { describe, expect, it } from 'vitest';
import { Buffer } from 'node:buffer';
import { programs, type Os, type ProgramFn, type Stream } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';
import { OS_FAULTS, type FaultOptions, type OsFault } from '../../src/sim/faults.js';
import { LogSink } from '../../src/runtime/log.js';
import { PidfileError, writePidfile } from '../../src/runtime/arbiter/pidfile.js';
import { readAll } from '../support/os.js';

function kernel(table: Record<string, ProgramFn>, faults?: FaultOptions, seed = 1): { k: Kernel; pid: number } {
  const k = new Kernel({ seed, programs: [programs(import.meta.url, table)], record: true, ...(faults ? { faults } : {}) });
  return { k, pid: k.spawn({ program: 'main', args: [] }) };
}

const only = (kind: OsFault, rate = 1): FaultOptions => ({ rates: { [kind]: rate } });

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

/** A server on a fresh port that records what each connection reads and how it ends. */
async function server(os: Os, got: { chunks: Buffer[]; errors: string[] }, onError?: (code: string) => void) {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  l.accept(
    (s) => {
      s.on('data', (d: Buffer) => got.chunks.push(d));
      s.on('error', (e: { code?: string }) => got.errors.push(`server ${e.code}`));
      s.on('end', () => s.end());
    },
    onError === undefined ? undefined : (e) => onError(e.code),
  );
  return l;
}

/** Everything the kernel does with one of each: a listener, a connection, a pipe, a file, a spawn. */
const busy: Record<string, ProgramFn> = {
  main: async (os) => {
    const got = { chunks: [] as Buffer[], errors: [] as string[] };
    const l = await server(os, got);
    const s = await os.connect(l.address);
    s.on('error', () => {});
    s.end('x'.repeat(5000));
    await readAll(s).catch(() => '');
    const c = os.spawn({ program: 'child', stdout: 'pipe', channel: false });
    await readAll(c.stdout! as unknown as Stream).catch(() => '');
    try {
      const fd = os.fs.open('/tmp/f', 'a');
      os.fs.write(fd, 'line\n');
      os.fs.close(fd);
    } catch {
      // a fault's
    }
    await os.sleep(20);
    l.close();
  },
  child: (os) => os.stdout.write('é'.repeat(100)),
};

describe('kernel faults', () => {
  it('are all off unless asked for: the same trace as a kernel without the option, and nothing counted', async () => {
    const a = kernel(busy);
    await a.k.run();
    const b = kernel(busy, { rates: {} });
    await b.k.run();
    expect(b.k.traceHash()).toBe(a.k.traceHash());
    expect(Object.values(b.k.faults.fired).every((n) => n === 0)).toBe(true);
    expect(b.k.faults.on).toBe(false);
  });

  it('never hit a process outside `programs`, and replay from the seed when they do hit', async () => {
    const rates = Object.fromEntries(OS_FAULTS.filter((k) => k !== 'clock-jump').map((k) => [k, 0.5]));
    const off = kernel(busy);
    await off.k.run();
    const scoped = kernel(busy, { rates, programs: ['nobody'] });
    await scoped.k.run();
    expect(scoped.k.traceHash()).toBe(off.k.traceHash());
    expect(Object.values(scoped.k.faults.fired).every((n) => n === 0)).toBe(true);
    const hashes: string[] = [];
    const fired: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = kernel(busy, { rates, programs: ['main', 'child'] }, 7);
      await r.k.run();
      hashes.push(r.k.traceHash());
      fired.push(JSON.stringify(r.k.faults.fired));
    }
    expect(hashes[0]).toBe(hashes[1]);
    expect(fired[0]).toBe(fired[1]);
    expect(hashes[0]).not.toBe(off.k.traceHash());
    expect(Object.values(JSON.parse(fired[0]!) as Record<string, number>).some((n) => n > 0)).toBe(true);
  });

  it('accept-emfile, accept-enfile: onError hears the errno, the connection waits in the backlog and is accepted once accept works', async () => {
    for (const [kind, errno] of [['accept-emfile', 'EMFILE'], ['accept-enfile', 'ENFILE']] as const) {
      const heard: string[] = [];
      const got = { chunks: [] as Buffer[], errors: [] as string[] };
      let echoed = '';
      const { k } = kernel({
        main: async (os) => {
          const l = await server(os, got, (code) => {
            heard.push(`${code} @${os.now()}`);
            if (heard.length === 3) k.faults.set({}); // the descriptors come back
          });
          const s = await os.connect(l.address);
          s.end('hello');
          echoed = await readAll(s);
          l.close();
        },
      }, only(kind));
      await k.run();
      expect(heard.map((h) => h.split(' ')[0])).toEqual([errno, errno, errno]);
      // Offered again a millisecond after each failure, as a level-triggered poll would.
      const times = heard.map((h) => Number(h.split('@')[1]));
      expect(times[1]! - times[0]!).toBe(1);
      expect(Buffer.concat(got.chunks).toString()).toBe('hello');
      expect(echoed).toBe('');
      expect(k.faults.fired[kind]).toBe(3);
    }
  });

  it('accept fails on a listener without onError: a line on stderr, as the Node adapter writes one', async () => {
    const { k } = kernel({
      main: async (os) => {
        const l = await os.listen({ host: '127.0.0.1', port: 0 });
        l.accept((s) => s.destroy());
        const s = await os.connect(l.address);
        s.on('error', () => {});
        await os.sleep(3);
        k.faults.set({});
        await readAll(s).catch(() => '');
        l.close();
      },
    }, only('accept-emfile'));
    await k.run();
    expect(k.output.stderr).toMatch(/^drover: listener 127\.0\.0\.1:\d+: EMFILE: accept on /m);
  });

  it('write-enospc, write-eio: the write throws the errno as Node does and nothing is written; a whole-file write leaves the file empty', async () => {
    for (const [kind, errno, n] of [['write-enospc', 'ENOSPC', -28], ['write-eio', 'EIO', -5]] as const) {
      const got: unknown[] = [];
      const { k } = kernel({
        main: (os) => {
          os.fs.writeFile('/tmp/before', 'untouched'); // before the faults: the kernel is asked after this
          k.faults.set(only(kind));
          const fd = os.fs.open('/tmp/log', 'a');
          try {
            os.fs.write(fd, 'a line\n');
          } catch (e) {
            const x = e as { code: string; errno: number; syscall: string; message: string };
            got.push(x.code, x.errno, x.syscall, x.message);
          }
          got.push(os.fs.stat('/tmp/log').size);
          got.push(codeOf(() => os.fs.writeFile('/tmp/before', 'replaced')), os.fs.readFile('/tmp/before'));
          got.push(codeOf(() => os.fs.appendFile('/tmp/log', 'more')), os.fs.stat('/tmp/log').size);
          os.fs.close(fd);
        },
      });
      await k.run();
      expect(got).toEqual([errno, n, 'write', expect.stringMatching(new RegExp(`^${errno}: .+, write$`)), 0, errno, '', errno, 0]);
      expect(k.faults.fired[kind]).toBe(3);
    }
  });

  it('write-short: a prefix of the bytes is written and the count (in bytes) says how many', async () => {
    const got: Array<[number, string]> = [];
    const text = 'héllo wörld ✓\n';
    const { k } = kernel({
      main: (os) => {
        for (let i = 0; i < 20; i++) {
          const path = `/tmp/s${i}`;
          const fd = os.fs.open(path, 'a');
          got.push([os.fs.write(fd, text), path]);
          os.fs.close(fd);
        }
      },
    }, only('write-short'));
    await k.run();
    const bytes = Buffer.from(text);
    for (const [n, path] of got) {
      expect(n).toBeGreaterThanOrEqual(1);
      expect(n).toBeLessThan(bytes.length);
      // Decoded the same way (a cut inside a character decodes the same on both sides).
      expect(k.fs.readFile(path)).toBe(bytes.subarray(0, n).toString('utf8'));
    }
    expect(new Set(got.map(([n]) => n)).size).toBeGreaterThan(3);
  });

  it('spawn-eagain: spawn throws EAGAIN before anything is allocated; no pid is used up', async () => {
    const got: unknown[] = [];
    const { k } = kernel({
      main: async (os) => {
        got.push(codeOf(() => os.spawn({ program: 'child', stdout: 'pipe' })), codeOf(() => os.spawn({ command: ['child'] })));
        got.push(k.processes().length);
        k.faults.set({});
        const c = os.spawn({ program: 'child', channel: false });
        got.push(c.pid);
        await os.sleep(5);
        os.waitpid(c.pid);
      },
      child: () => {},
    }, only('spawn-eagain'));
    await k.run();
    expect(got).toEqual(['EAGAIN', 'EAGAIN', 1, 101]);
    expect(k.faults.fired['spawn-eagain']).toBe(2);
  });

  it('stream-reset: the chunk is lost and both sides get ECONNRESET', async () => {
    const got = { chunks: [] as Buffer[], errors: [] as string[] };
    const { k } = kernel({
      main: async (os) => {
        const l = await server(os, got);
        const s = await os.connect(l.address);
        await new Promise<void>((resolve) => {
          s.on('error', (e: { code?: string }) => {
            got.errors.push(`client ${e.code}`);
            resolve();
          });
          k.faults.set(only('stream-reset'));
          s.write('lost');
        });
        await os.sleep(5);
        l.close();
      },
    });
    await k.run();
    expect(got.chunks).toEqual([]);
    expect(got.errors.sort()).toEqual(['client ECONNRESET', 'server ECONNRESET']);
    expect(k.faults.fired['stream-reset']).toBe(1);
  });

  it('stream-epipe: the write fails with EPIPE (its callback and an error on the stream); the peer is reset', async () => {
    const got = { chunks: [] as Buffer[], errors: [] as string[] };
    const { k } = kernel({
      main: async (os) => {
        const l = await server(os, got);
        const s = await os.connect(l.address);
        s.on('error', (e: { code?: string }) => got.errors.push(`client ${e.code}`));
        k.faults.set(only('stream-epipe'));
        s.write('never', (e) => got.errors.push(`callback ${(e as { code?: string } | null)?.code}`));
        await os.sleep(5);
        l.close();
      },
    });
    await k.run();
    expect(got.chunks).toEqual([]);
    expect(got.errors.sort()).toEqual(['callback EPIPE', 'client EPIPE', 'server ECONNRESET']);
  });

  it('stream-split: a chunk arrives in 2 to 4 reads (short reads) that reassemble to the same bytes, in order', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const got = { chunks: [] as Buffer[], errors: [] as string[] };
      const sent = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
      const { k } = kernel({
        main: async (os) => {
          const l = await server(os, got);
          const s = await os.connect(l.address);
          s.end(sent);
          await readAll(s);
          l.close();
        },
      }, only('stream-split'), seed);
      await k.run();
      expect(Buffer.compare(Buffer.concat(got.chunks), sent)).toBe(0);
      expect(got.chunks.length).toBeGreaterThanOrEqual(2);
      expect(got.chunks.length).toBeLessThanOrEqual(4);
      expect(k.faults.fired['stream-split']).toBe(1);
    }
  });

  it('pipe-split: a write into a pipe arrives in two reads, cut at any byte (inside a character too); decoded, it is the same text', async () => {
    const text = 'é✓𝄞'.repeat(40);
    let cutInside = false;
    for (let seed = 1; seed <= 8; seed++) {
      const raw: Buffer[] = [];
      const { k } = kernel({
        main: async (os) => {
          const c = os.spawn({ program: 'child', stdout: 'pipe', channel: false });
          c.stdout!.on('data', (d: Buffer) => raw.push(d));
          await new Promise((resolve) => c.stdout!.on('end', resolve));
          os.waitpid(c.pid);
        },
        child: (os) => os.stdout.write(text),
      }, { rates: { 'pipe-split': 1 } }, seed);
      await k.run();
      expect(raw.length).toBe(2);
      expect(Buffer.concat(raw).toString('utf8')).toBe(text);
      if (raw[0]!.toString('utf8').includes('\ufffd')) cutInside = true;
    }
    expect(cutInside).toBe(true);
  });

  it('latency: deliveries come 2 to maxLatencyMs late, never out of order on a stream', async () => {
    const got = { chunks: [] as Buffer[], errors: [] as string[] };
    let rtt = 0;
    const { k } = kernel({
      main: async (os) => {
        const l = await server(os, got);
        const t0 = os.now();
        const s = await os.connect(l.address);
        rtt = os.now() - t0;
        for (let i = 0; i < 50; i++) s.write(`${i},`);
        s.end();
        await readAll(s);
        l.close();
      },
    }, { rates: { latency: 1 }, maxLatencyMs: 20 });
    await k.run();
    expect(rtt).toBeGreaterThanOrEqual(4); // connect there and its answer back, each at least 2 ms late
    expect(rtt).toBeLessThanOrEqual(2 * 21);
    expect(Buffer.concat(got.chunks).toString()).toBe(Array.from({ length: 50 }, (_, i) => `${i},`).join(''));
  });

  it('clock-jump: time moves past the next event, so timers run late, in order, never early', async () => {
    const late: number[] = [];
    const order: number[] = [];
    const { k } = kernel({
      main: async (os) => {
        for (let i = 0; i < 30; i++) {
          const due = os.now() + 10;
          await os.sleep(10);
          late.push(os.now() - due);
        }
        for (let i = 5; i >= 1; i--) os.timer(i, () => order.push(i));
      },
    }, { rates: { 'clock-jump': 1 }, maxJumpMs: 40 });
    await k.run();
    expect(Math.min(...late)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...late)).toBeLessThanOrEqual(40);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(k.faults.fired['clock-jump']).toBeGreaterThanOrEqual(30);
  });

  it('a process that dies of an uncaught error is recorded as a crash', async () => {
    const { k } = kernel({
      main: async (os) => {
        await os.sleep(3);
        throw new Error('boom');
      },
    });
    await k.run();
    expect(k.faults.crashes).toEqual([{ at: 3, pid: 100, program: 'main', message: 'Error: boom', rejection: true }]);
  });
});

describe("drover's side of write faults", () => {
  it('a log that cannot be written: lines dropped, the process goes on, said once on stderr, and its end with the count', async () => {
    const { k } = kernel({
      main: (os) => {
        const sink = new LogSink(os, '/tmp/app.log');
        const other = new LogSink(os, '/tmp/app.log'); // a second sink of the file: one outage between them
        sink.write('one\n');
        k.faults.set(only('write-enospc'));
        for (let i = 0; i < 5; i++) sink.write(`lost ${i}\n`);
        other.write('lost too\n');
        k.faults.set({});
        sink.write('two\n');
        k.faults.set(only('write-eio'));
        other.write('lost again\n');
        other.close(); // the file is still open in `sink`: the outage goes on
        sink.close(); // the last one: the outage ends with it
      },
    });
    await k.run();
    expect(k.fs.readFile('/tmp/app.log')).toBe('one\ntwo\n');
    expect(k.output.stderr.split('\n').filter((l) => l !== '')).toEqual([
      'drover: [100] cannot write /tmp/app.log (ENOSPC: no space left on device, write); dropping log lines until it can be written again',
      'drover: [100] writing /tmp/app.log again; 6 line(s) were dropped',
      'drover: [100] cannot write /tmp/app.log (EIO: i/o error, write); dropping log lines until it can be written again',
      'drover: [100] closing /tmp/app.log, which could not be written; 1 line(s) were dropped',
    ]);
    expect(k.faults.crashes).toEqual([]);
  });

  it('a short log write is finished: every line whole, nothing said', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => `line ${i} é✓\n`);
    const { k } = kernel({
      main: (os) => {
        const sink = new LogSink(os, '/tmp/app.log');
        for (const l of lines) sink.write(l);
      },
    }, only('write-short', 0.5));
    await k.run();
    expect(k.fs.readFile('/tmp/app.log')).toBe(lines.join(''));
    expect(k.faults.fired['write-short']).toBeGreaterThan(5);
    expect(k.output.stderr).toBe('');
  });

  it('a line cut by a failed write (a short write, then ENOSPC) is ended by a newline before the next line', async () => {
    let calls = 0;
    const { k } = kernel({
      main: (os) => {
        const real = os.fs.write.bind(os.fs);
        // The kernel's short write, then a full disk: an Fs that fails its second call of this line.
        (os.fs as { write: typeof real }).write = (fd, data) => {
          calls++;
          if (calls === 1) return real(fd, Buffer.from(String(data)).subarray(0, 4));
          if (calls === 2) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return real(fd, data);
        };
        const sink = new LogSink(os, '/tmp/app.log');
        sink.write('first line\n');
        sink.write('second\n');
      },
    });
    await k.run();
    expect(k.fs.readFile('/tmp/app.log')).toBe('firs\nsecond\n');
  });

  it('a pidfile that cannot be written refuses the start (exit code 1) and leaves no temp file; a short write is finished', async () => {
    const got: unknown[] = [];
    const { k } = kernel({
      main: (os) => {
        os.fs.mkdir('/run/d', { recursive: true });
        k.faults.set(only('write-enospc'));
        try {
          writePidfile(os, '/run/d/x.pid', () => null);
        } catch (e) {
          got.push(e instanceof PidfileError, (e as PidfileError).exitCode, (e as Error).message);
        }
        got.push(os.fs.readdir('/run/d'));
        k.faults.set(only('write-short'));
        writePidfile(os, '/run/d/x.pid', () => null);
        got.push(os.fs.readFile('/run/d/x.pid'), os.fs.readdir('/run/d'));
      },
    });
    await k.run();
    expect(got).toEqual([true, 1, expect.stringMatching(/^cannot write pidfile \/run\/d\/x\.pid: ENOSPC: no space left on device, write; /), [], '100\n', ['x.pid']]);
  });
});
