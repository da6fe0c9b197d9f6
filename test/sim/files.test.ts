import { describe, expect, it } from 'vitest';
import { boot } from './helpers.js';
import { OUTPUT_KEEP } from '../../src/sim/output.js';

describe('files', () => {
  it('gives every process its own descriptor table, starting at 3', async () => {
    const fds: Record<string, number[]> = {};
    const { k } = boot({
      main: async (os) => {
        os.spawn({ program: 'writer', args: ['a'], channel: false });
        os.spawn({ program: 'writer', args: ['b'], channel: false });
      },
      writer: async (os, args) => {
        const name = args[0]!;
        const fd = os.fs.open(`/tmp/${name}.log`, 'a');
        const fd2 = os.fs.open(`/tmp/${name}.2`, 'w');
        fds[name] = [fd, fd2];
        await os.sleep(name === 'a' ? 5 : 10);
        os.fs.write(fd, `${name} was here\n`);
        os.fs.close(fd);
        const again = os.fs.open(`/tmp/${name}.3`, 'wx');
        fds[name]!.push(again);
        let code = '';
        try {
          os.fs.write(9, 'never opened');
        } catch (e) {
          code = (e as { code: string }).code;
        }
        fds[name]!.push(code === 'EBADF' ? -9 : 0);
      },
    });
    await k.run();
    expect(fds).toEqual({ a: [3, 4, 3, -9], b: [3, 4, 3, -9] });
    expect(k.fs.readFile('/tmp/a.log')).toBe('a was here\n');
    expect(k.fs.readFile('/tmp/b.log')).toBe('b was here\n');
  });

  it('resolves relative paths against the process cwd, applies umask 022 on create, chmod exactly', async () => {
    const { k } = boot({
      main: (os) => {
        os.fs.mkdir('/srv/app', { recursive: true });
        os.spawn({ program: 'child', cwd: '/srv/app', channel: false });
      },
      child: (os) => {
        os.fs.writeFile('pid', String(os.pid));
        os.fs.writeFile('secret', 'x', 0o600);
        os.fs.writeFile('pid.tmp', 'new');
        os.fs.rename('pid.tmp', 'pid');
        os.fs.chmod('secret', 0o640);
        os.fs.mkdir('d');
      },
    });
    await k.run();
    const mode = (p: string): string => (k.fs.stat(p).mode & 0o7777).toString(8);
    expect(k.fs.readFile('/srv/app/pid')).toBe('new');
    expect(mode('/srv/app/pid')).toBe('644');
    expect(mode('/srv/app/secret')).toBe('640');
    expect(mode('/srv/app/d')).toBe('755');
    expect(k.fs.stat('/srv/app/d').isDirectory()).toBe(true);
    expect(k.fs.readdir('/srv/app').sort()).toEqual(['d', 'pid', 'secret']);
    expect(k.fs.exists('/tmp')).toBe(true);
    expect(() => k.fs.readFile('/nope')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('routes stdout and stderr: inherit up to init, append-mode files, ignore, stderr to stdout', async () => {
    const { k } = boot({
      main: (os) => {
        os.stdout.write('main out\n');
        os.fs.writeFile('/tmp/app.log', 'old\n');
        os.spawn({ program: 'child', stdout: { file: '/tmp/app.log' }, stderr: 'stdout', channel: false });
        os.spawn({ program: 'child', stdout: 'ignore', channel: false });
      },
      child: (os) => {
        os.stdout.write(`${os.pid} out\n`);
        os.stderr.write(`${os.pid} err\n`);
        os.spawn({ program: 'grandchild', channel: false });
      },
      grandchild: (os) => {
        os.stdout.write(`${os.pid} gc\n`);
      },
    });
    await k.run();
    expect(k.output.stdout).toBe('main out\n');
    expect(k.output.stderr).toBe('102 err\n');
    expect(k.fs.readFile('/tmp/app.log')).toBe('old\n101 out\n101 err\n103 gc\n');
  });

  it('keeps writing to a renamed log file until it is reopened', async () => {
    const { k } = boot({
      main: async (os) => {
        os.spawn({ program: 'child', stdout: { file: '/tmp/out.log' }, channel: false });
        await os.sleep(5);
        os.fs.rename('/tmp/out.log', '/tmp/out.log.1');
      },
      child: async (os) => {
        os.stdout.write('one\n');
        await os.sleep(10);
        os.stdout.write('two\n');
      },
    });
    await k.run();
    expect(k.fs.readFile('/tmp/out.log.1')).toBe('one\ntwo\n');
    expect(k.fs.exists('/tmp/out.log')).toBe(false);
  });
});

describe('init\'s stdout and stderr', () => {
  it('keep a bounded tail of what processes wrote, and count the bytes dropped before it', async () => {
    // 2,000 writes of 32 KiB (62.5 MiB): a review's app logged 929 MB in 4.5 s, all of it kept.
    const chunk = (i: number, tag: string) => `${tag} ${String(i).padStart(5, '0')} é `.padEnd(32 * 1024, 'x');
    const { k } = boot({
      main: async (os) => {
        for (let i = 0; i < 2000; i++) {
          os.stdout.write(chunk(i, 'out'));
          os.stderr.write(chunk(i, 'err'));
          if (i % 100 === 0) await os.sleep(1);
        }
      },
    });
    await k.run();
    for (const tag of ['stdout', 'stderr'] as const) {
      const all = Array.from({ length: 2000 }, (_, i) => chunk(i, tag === 'stdout' ? 'out' : 'err')).join('');
      const kept = k.output[tag];
      expect(kept.length).toBeGreaterThanOrEqual(OUTPUT_KEEP);
      expect(kept.length).toBeLessThanOrEqual(2 * OUTPUT_KEEP);
      expect(all.endsWith(kept)).toBe(true);
      expect(k.output.dropped[tag]).toBe(Buffer.byteLength(all) - Buffer.byteLength(kept));
    }
  });
});
