// Asynchronous host I/O started by app code in a simulated process (net-guard.ts,
// "host I/O"): fs's callback and promise functions (and fs's streams, which
// use them), zlib's one-shot functions
// and crypto's key derivations run on the host as Os.hostWork, so the kernel
// waits for them with its clock standing still and hands each result back to
// the process that asked, at the virtual time it asked, in the order asked:
// they complete, and a seed replays. They never completed: the kernel does
// not turn the host's event loop, so the callback came after the run (or
// never) and the request that waited for it was never answered.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { readFile as namedReadFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';
import { EPOCH_MS } from '../../src/sim/os.js';
import { boot } from './helpers.js';

const HERE = new URL(import.meta.url).pathname;
const SIZE = fs.statSync(HERE).size;

describe('host I/O from app code completes in the simulation', () => {
  it('callbacks and promises of fs, zlib and crypto come back at the virtual time of the call, in order, the same on every run', async () => {
    const once = async () => {
      const log: string[] = [];
      const { k, pid } = boot({
        main: async (os) => {
          os.spawn({ program: 'ticker', channel: false });
          await os.sleep(10);
          const at = () => `@${os.now()} pid=${process.pid === os.pid}`;
          fs.readFile(HERE, (err, b) => log.push(`fs.readFile ${err ?? b.length} ${at()}`));
          fs.stat(HERE, (err, st) => log.push(`fs.stat ${err ?? st.size} ${at()}`));
          fs.readFile('/no/such/file', (err) => log.push(`fs.readFile missing ${(err as NodeJS.ErrnoException).code} ${at()}`));
          fs.exists(HERE, (yes) => log.push(`fs.exists ${yes} ${at()}`));
          zlib.gzip('hello', (err, z) => log.push(`zlib.gzip ${err ?? zlib.gunzipSync(z).toString()} ${at()}`));
          crypto.pbkdf2('pw', 'salt', 1000, 8, 'sha256', (err, key) => log.push(`crypto.pbkdf2 ${err ?? key.toString('hex')} ${at()}`));
          let streamed = 0;
          fs.createReadStream(HERE).on('data', (c) => (streamed += c.length)).on('end', () => log.push(`fs.createReadStream ${streamed} ${at()}`));
          const s = await fs.promises.readFile(HERE, 'utf8');
          log.push(`fs.promises.readFile ${s.length === SIZE} ${at()}`);
          log.push(`named readFile ${(await namedReadFile(HERE)).length} ${at()}`);
          await os.sleep(5);
          log.push(`after ${at()}`);
          os.kill(pid + 1, 'SIGKILL');
        },
        ticker: (os) => {
          const tick = () => void os.timer(1, tick);
          tick();
        },
      });
      await k.run({ until: 60_000 });
      expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
      return { log, hash: k.traceHash() };
    };
    const a = await once();
    const key = crypto.pbkdf2Sync('pw', 'salt', 1000, 8, 'sha256').toString('hex');
    expect(a.log).toEqual([
      `fs.readFile ${SIZE} @10 pid=true`,
      `fs.stat ${SIZE} @10 pid=true`,
      'fs.readFile missing ENOENT @10 pid=true',
      'fs.exists true @10 pid=true',
      'zlib.gzip hello @10 pid=true',
      `crypto.pbkdf2 ${key} @10 pid=true`,
      'fs.promises.readFile true @10 pid=true',
      `named readFile ${SIZE} @10 pid=true`,
      `fs.createReadStream ${SIZE} @10 pid=true`,
      'after @15 pid=true',
    ]);
    const b = await once();
    expect(b.log).toEqual(a.log);
    expect(b.hash).toBe(a.hash);
  });

  it('a throw in an I/O callback is an uncaught exception of its process, as in Node', async () => {
    const { k, pid } = boot({
      main: async (os) => {
        await os.sleep(3);
        fs.stat(HERE, () => {
          throw new Error('in the callback');
        });
        await os.sleep(100);
        os.stdout.write('survived');
      },
    });
    await k.run({ until: 60_000 });
    expect(k.exitStatus(pid)).toMatchObject({ code: 1 });
    expect(k.faults.crashes.map((c) => [c.at, c.message])).toEqual([[3, 'Error: in the callback']]);
    expect(k.output.stdout).toBe('');
  });
});

describe('host I/O at module load', () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'drover-tla-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(join(dir, 'data.txt'), 'config');
  fs.writeFileSync(join(dir, 'tla.mjs'), [
    "import fs from 'node:fs';",
    "import fsp from 'node:fs/promises';",
    "import zlib from 'node:zlib';",
    "import { promisify } from 'node:util';",
    "import { fileURLToPath } from 'node:url';",
    "const data = fileURLToPath(new URL('./data.txt', import.meta.url));",
    "export const a = await fsp.readFile(data, 'utf8');",
    "export const b = await new Promise((r, j) => fs.readFile(data, 'utf8', (e, d) => (e ? j(e) : r(d))));",
    "export const z = zlib.gunzipSync(await promisify(zlib.gzip)(a)).toString();",
    "export let c = null;",
    "fsp.readFile(data, 'utf8').then((d) => { c = d; });",
    "export let d = null;",
    "fs.stat(data, (e, st) => { d = st.size; });",
    "export const at = Date.now();",
    "export const later = () => [c, d];",
  ].join('\n'));

  // Each process imports its own instance (isolate), as drover sim's workers do.
  const once = async () => {
    const k = new Kernel({
      seed: 3,
      record: true,
      isolate: true,
      mounts: { '/app': dir },
      programs: [
        programs(import.meta.url, {
          main: async (os: Os) => {
            os.spawn({ program: 'loader', args: ['1'], channel: false });
            os.spawn({ program: 'loader', args: ['2'], channel: false });
          },
          loader: async (os: Os) => {
            await os.sleep(Number(os.args[0]) * 5);
            const m = await os.importModule('/app/tla.mjs');
            const [c, d] = (m.later as () => unknown[])();
            os.stdout.write(`${os.args[0]}: ${String(m.a)} ${String(m.b)} ${String(m.z)} ${String(c)} ${String(d)} loaded@${(m.at as number) - EPOCH_MS} now@${os.now()}\n`);
          },
        }),
      ],
    });
    k.spawn({ program: 'main' });
    await k.run({ until: 60_000 });
    return { out: k.output.stdout, hash: k.traceHash() };
  };

  // A top-level await of fs.promises, of an fs callback or of zlib.gzip was host work queued behind the import
  // that waited for it (Machine.run hands host work back in order): every run hung at its first import.
  it('an ES module that awaits fs and zlib at its top level loads, at the virtual time of its import; what it started without awaiting is done too; the same on every run', async () => {
    const a = await once();
    expect(a.out.split('\n').filter(Boolean).sort()).toEqual([
      '1: config config config config 6 loaded@5 now@5',
      '2: config config config config 6 loaded@10 now@10',
    ]);
    const b = await once();
    expect(b).toEqual(a);
  }, 20_000);
});

describe('host descriptors of a process that dies', () => {
  // A worker killed mid-stream (fs.createReadStream piped to its answer) never read or closed again: its
  // descriptor stayed open in the host process, one more for each such kill, for the whole batch.
  it.skipIf(!fs.existsSync('/proc/self/fd'))('a descriptor a process opened (fs.createReadStream, fs.openSync) is closed when it dies mid-read, or when the kernel is disposed with it alive', async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'drover-fds-'));
    const file = join(dir, 'big.bin');
    fs.writeFileSync(file, Buffer.alloc(1 << 20, 7));
    const hostSleep = (ms: number) => new Promise((r) => globalThis.setTimeout(r, ms));
    // The host's descriptors open on `file` (Linux's /proc).
    const openOn = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false;
      }
    }).length;
    const read = { bytes: 0 };
    const k = new Kernel({
      seed: 1,
      programs: [
        programs(import.meta.url, {
          main: async (os: Os) => {
            const reader = os.spawn({ program: 'reader', channel: false });
            os.spawn({ program: 'holder', channel: false });
            await os.sleep(5);
            os.kill(reader.pid, 'SIGKILL');
          },
          // Reads 1 KiB a millisecond: mid-stream when it is killed.
          reader: () => {
            const st = fs.createReadStream(file, { highWaterMark: 1024 });
            st.on('data', (d) => {
              read.bytes += d.length;
              st.pause();
              setTimeout(() => st.resume(), 1);
            });
          },
          holder: (os: Os) => {
            fs.closeSync(fs.openSync(file, 'r')); // closed by the app: nothing to let go
            fs.openSync(file, 'r');
            os.timer(1e9, () => {});
          },
        }),
      ],
    });
    k.spawn({ program: 'main' });
    try {
      await k.run({ until: 100 });
      expect(read.bytes).toBeGreaterThan(0);
      expect(read.bytes).toBeLessThan(1 << 20);
      // The reader's read at work on the host lands, then its descriptor goes; the holder, alive, keeps its own.
      for (let i = 0; i < 100 && openOn() > 1; i++) await hostSleep(10);
      expect(openOn()).toBe(1);
      k.dispose();
      expect(openOn()).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an import that never finishes', () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'drover-never-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Never settles; settles on a host timer after the limit; a timer of the simulation, which cannot fire while a module loads.
  fs.writeFileSync(join(dir, 'never.mjs'), 'await new Promise(() => {});\nexport const x = 1;\n');
  fs.writeFileSync(join(dir, 'late.mjs'), "import { setTimeout as hostSleep } from 'node:timers/promises';\nawait hostSleep(400);\nexport const x = 2;\n");
  fs.writeFileSync(join(dir, 'sleepy.mjs'), 'await new Promise((r) => setTimeout(r, 10));\nexport const x = 3;\n');
  fs.writeFileSync(join(dir, 'fine.mjs'), 'export const x = 4;\n');

  const once = async () => {
    const ticks = { n: 0 };
    const k = new Kernel({
      seed: 5,
      record: true,
      isolate: true,
      mounts: { '/app': dir },
      loadLimit: { ms: 150, what: 'the test\'s limit' },
      programs: [
        programs(import.meta.url, {
          main: async (os: Os) => {
            const t = os.spawn({ program: 'ticker', channel: false });
            await os.sleep(3);
            for (const m of ['never', 'late', 'sleepy', 'fine']) {
              const t0 = os.now();
              const n0 = ticks.n;
              const r = await os.importModule(`/app/${m}.mjs`).then((mod) => `x=${String(mod.x)}`, (e: Error & { path?: string }) => `${e.message.slice(0, 120)} [${e.path}] ${e.stack === `Error: ${e.message}`}`);
              os.stdout.write(`${m}: ${r} @${t0}->${os.now()} ticks ${n0}->${ticks.n}\n`);
            }
            os.kill(t.pid, 'SIGKILL');
          },
          ticker: (os: Os) => {
            const tick = () => {
              ticks.n++;
              os.timer(1, tick);
            };
            os.timer(1, tick);
          },
        }),
      ],
    });
    k.spawn({ program: 'main' });
    await k.run({ until: 60_000 });
    const trace = k.trace().filter((l) => / host(-late|-done)? /.test(l));
    k.dispose();
    return { out: k.output.stdout, hash: k.traceHash(), trace };
  };

  // It held the simulated clock for good: drover sim --app hung until --timeout, then blamed drover.
  it('fails after the kernel\'s load limit as a module that never finished loading, at the virtual time of its import, the same on every run; a late settle is dropped', async () => {
    const a = await once();
    const never = 'the module never finished loading: a top-level await (in it, or in a module it imports) did not settle within 0.15 s of the host\'s time (the test\'s limit)';
    expect(a.out).toBe([
      `never: ${never.slice(0, 120)} [/app/never.mjs] true @3->3 ticks 3->3`,
      `late: ${never.slice(0, 120)} [/app/late.mjs] true @3->3 ticks 3->3`,
      `sleepy: ${never.slice(0, 120)} [/app/sleepy.mjs] true @3->3 ticks 3->3`,
      'fine: x=4 @3->3 ticks 3->3',
      '',
    ].join('\n'));
    expect(a.trace.filter((l) => l.includes('host-late'))).toEqual(['3 100 host-late 1 /app/never.mjs', '3 100 host-late 2 /app/late.mjs', '3 100 host-late 3 /app/sleepy.mjs']);
    // late.mjs settles on the host after it was given up: dropped, nothing breaks.
    await new Promise((r) => globalThis.setTimeout(r, 400));
    const b = await once();
    expect(b).toEqual(a);
  }, 10_000);
});

describe('host I/O the simulation cannot replay is refused', () => {
  const NAME = 'test/sim/host-io.test.ts';
  // Each started work on the host that ends on the host's time, not the kernel's: a stream's 'data' and 'end',
  // a watcher's events, a FileHandle's or Dir's reads came at a simulated time the host decided, or after the run.
  it('zlib streams, fs watchers, fs.promises FileHandles and Dirs throw (or reject with) ERR_DROVER_NOT_SIMULATED in a simulated process, naming the caller; the host\'s are its own', async () => {
    const watched = fs.mkdtempSync(join(tmpdir(), 'drover-watch-'));
    const made: { close?: () => unknown; destroy?: () => unknown }[] = [];
    const calls: Record<string, () => unknown> = {
      'zlib.createGzip': () => zlib.createGzip(),
      'zlib.createGunzip': () => zlib.createGunzip(),
      'zlib.createDeflate': () => zlib.createDeflate(),
      'zlib.createInflateRaw': () => zlib.createInflateRaw(),
      'zlib.createUnzip': () => zlib.createUnzip(),
      'zlib.createBrotliCompress': () => zlib.createBrotliCompress(),
      'zlib.createBrotliDecompress': () => zlib.createBrotliDecompress(),
      'zlib.Gzip': () => new zlib.Gzip(),
      'zlib.DeflateRaw': () => new zlib.DeflateRaw(),
      'zlib.BrotliCompress': () => new zlib.BrotliCompress(),
      'fs.watch': () => fs.watch(watched),
      'fs.watchFile': () => fs.watchFile(join(watched, 'x'), () => {}),
      'fs.promises.watch': () => fs.promises.watch(watched),
      'fs.promises.open': () => fs.promises.open(HERE),
      'fs.promises.opendir': () => fs.promises.opendir(watched),
      'fs.opendir': () => fs.opendir(watched, () => {}),
    };
    const seen: Record<string, { code: unknown; message: string }> = {};
    const { k, pid } = boot({
      main: async () => {
        for (const [what, call] of Object.entries(calls)) {
          try {
            const r = call();
            if (r !== null && typeof r === 'object') made.push(r as (typeof made)[number]);
            await r;
            seen[what] = { code: 'none', message: '' };
          } catch (e) {
            seen[what] = { code: (e as { code?: string }).code, message: (e as Error).message };
          }
        }
      },
    });
    try {
      await k.run({ until: 60_000 });
    } finally {
      for (const m of made) {
        void Promise.resolve(m).then((x) => (x as { close?: () => unknown })?.close?.(), () => {});
        m.destroy?.();
      }
      fs.unwatchFile(join(watched, 'x'));
    }
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    for (const what of Object.keys(calls)) {
      expect(seen[what], what).toEqual({
        code: 'ERR_DROVER_NOT_SIMULATED',
        message: expect.stringMatching(new RegExp(`^drover sim: [^:]* not simulated[^:]*: ${NAME} called ${what.replaceAll('.', '\\.')}\\(\\); `)),
      });
    }
    // The host's own after the run.
    zlib.createGzip().destroy();
    fs.watch(watched).close();
    await (await fs.promises.open(HERE)).close();
    fs.rmSync(watched, { recursive: true, force: true });
  });

  // A run that wrote the host's files left them to the next: drover sim --determinism ran a seed twice and the
  // second run read the first one's log (a nondeterminism blamed on drover), and the user's files changed.
  it('writes to the host\'s files throw (or reject with) ERR_DROVER_NOT_SIMULATED in a simulated process, naming the call and the caller; reads, and opens for reading, work; the host\'s own writes are its own', async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'drover-writes-'));
    const file = join(dir, 'data.txt');
    fs.writeFileSync(file, 'kept');
    const fresh = join(dir, 'fresh');
    const calls: Record<string, () => unknown> = {
      'fs.writeFileSync': () => fs.writeFileSync(file, 'x'),
      'fs.appendFileSync': () => fs.appendFileSync(file, 'x'),
      'fs.appendFile': () => fs.appendFile(file, 'x', () => {}),
      'fs.writeFile': () => fs.writeFile(file, 'x', () => {}),
      'fs.promises.writeFile': () => fs.promises.writeFile(file, 'x'),
      'fs.promises.appendFile': () => fs.promises.appendFile(file, 'x'),
      'fs.mkdirSync': () => fs.mkdirSync(fresh),
      'fs.promises.mkdir': () => fs.promises.mkdir(fresh),
      'fs.renameSync': () => fs.renameSync(file, fresh),
      'fs.unlink': () => fs.unlink(file, () => {}),
      'fs.rmSync': () => fs.rmSync(file),
      'fs.copyFileSync': () => fs.copyFileSync(file, fresh),
      'fs.truncateSync': () => fs.truncateSync(file),
      'fs.chmodSync': () => fs.chmodSync(file, 0o600),
      'fs.openSync': () => fs.openSync(file, 'a'),
      'fs.open': () => fs.open(fresh, fs.constants.O_WRONLY | fs.constants.O_CREAT, () => {}),
      'fs.createWriteStream': () => fs.createWriteStream(fresh),
      'fs.WriteStream': () => new (fs.WriteStream as unknown as new (path: string) => unknown)(fresh),
    };
    const seen: Record<string, { code: unknown; message: string }> = {};
    const read: string[] = [];
    const { k, pid } = boot({
      main: async () => {
        for (const [what, call] of Object.entries(calls)) {
          try {
            await call();
            seen[what] = { code: 'none', message: '' };
          } catch (e) {
            seen[what] = { code: (e as { code?: string }).code, message: (e as Error).message };
          }
        }
        const fd = fs.openSync(file, 'r');
        read.push(fs.readFileSync(fd, 'utf8'));
        fs.closeSync(fd);
        read.push(await fs.promises.readFile(file, 'utf8'));
        read.push(await new Promise<string>((r, j) => fs.open(file, (e, d) => (e ? j(e) : fs.read(d, Buffer.alloc(4), 0, 4, 0, (e2, n, b) => fs.close(d, () => (e2 ? j(e2) : r(b.toString('utf8', 0, n)))))))));
        read.push(await new Promise<string>((r, j) => {
          let text = '';
          fs.createReadStream(file, 'utf8').on('data', (d) => (text += d)).on('end', () => r(text)).on('error', j);
        }));
      },
    });
    await k.run({ until: 60_000 });
    expect(k.exitStatus(pid)).toMatchObject({ code: 0 });
    for (const what of Object.keys(calls)) {
      expect(seen[what], what).toEqual({
        code: 'ERR_DROVER_NOT_SIMULATED',
        message: expect.stringMatching(new RegExp(`^drover sim: writes to files on the host are not simulated [^:]*: ${NAME} called ${what.replaceAll('.', '\\.')}\\(\\); `)),
      });
    }
    expect(read).toEqual(['kept', 'kept', 'kept', 'kept']);
    // Nothing was written, and the host's own writes are its own after the run.
    expect(fs.readdirSync(dir)).toEqual(['data.txt']);
    expect(fs.readFileSync(file, 'utf8')).toBe('kept');
    fs.appendFileSync(file, '!');
    expect(fs.readFileSync(file, 'utf8')).toBe('kept!');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
