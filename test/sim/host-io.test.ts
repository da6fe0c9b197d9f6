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
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
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
