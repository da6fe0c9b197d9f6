// The pidfile in a directory another user may write (issue 12, "files opened
// safely"), on the simulated disk: nothing is followed through a symlink, the
// temp file is made with O_EXCL under a name nobody can guess, and a path
// that is not a small regular file is refused with the path and the fix.
// The real-OS cases, played by a second uid, are in neighbours.real.test.ts.
import { describe, expect, test } from 'vitest';
import { programs, type Os } from '../../src/os/types.js';
import { PidfileError, removePidfile, writePidfile } from '../../src/runtime/arbiter/pidfile.js';
import { Kernel } from '../../src/sim/index.js';

/** Runs `body` as a process of a fresh simulated machine; what it throws is thrown here. */
async function inSim(body: (os: Os) => void): Promise<void> {
  let failed: { e: unknown } | null = null;
  const main = (os: Os) => {
    try {
      body(os);
    } catch (e) {
      failed = { e };
    }
  };
  const k = new Kernel({ seed: 1, programs: [programs(import.meta.url, { main })] });
  k.spawn({ program: 'main', channel: false });
  await k.run();
  if (failed !== null) throw (failed as { e: unknown }).e;
}

/** `os` with os.random() replaced: the temp names it makes are known in advance. */
function withRandom(os: Os, next: () => number): Os {
  return new Proxy(os, {
    get(t, k) {
      if (k === 'random') return next;
      const v = Reflect.get(t, k, t) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

const dead = () => null;

function refusal(fn: () => void): PidfileError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PidfileError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('writePidfile', () => {
  test('writes the pid by rename, leaving no temp file; replaces a dead pid; refuses a live one (exit 1)', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run');
      writePidfile(os, '/run/d.pid', dead);
      expect(os.fs.readFile('/run/d.pid')).toBe(`${os.pid}\n`);
      expect(os.fs.readdir('/run')).toEqual(['d.pid']);
      expect(os.fs.lstat('/run/d.pid').mode & 0o777).toBe(0o644);
      os.fs.writeFile('/run/d.pid', '424242\n');
      writePidfile(os, '/run/d.pid', dead);
      expect(os.fs.readFile('/run/d.pid')).toBe(`${os.pid}\n`);
      os.fs.writeFile('/run/d.pid', '424242\n');
      const e = refusal(() => writePidfile(os, '/run/d.pid', (pid) => (pid === 424242 ? { title: null } : null)));
      expect(e.message).toMatch(/pidfile \/run\/d.pid names process 424242, which is running/);
      expect(e.exitCode).toBe(1);
      expect(os.fs.readdir('/run')).toEqual(['d.pid']);
    });
  });

  test('a live pid is refused when it is a drover arbiter or cannot be told; a live pid of another program is a leftover, replaced with a warning', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run');
      const held = (title: string | null) => (pid: number) => (pid === 4242 ? { title } : null);
      os.fs.writeFile('/run/d.pid', '4242\n');
      const arbiter = refusal(() => writePidfile(os, '/run/d.pid', held('drover: arbiter [app.js]')));
      expect(arbiter.message).toBe('pidfile /run/d.pid names process 4242, a drover arbiter ("drover: arbiter [app.js]"): is drover already running? Stop it, or use another --pid');
      expect(arbiter.exitCode).toBe(1);
      expect(refusal(() => writePidfile(os, '/run/d.pid', held(null))).exitCode).toBe(1);
      expect(os.fs.readFile('/run/d.pid')).toBe('4242\n');
      // Before: refused like an arbiter, and the server stayed down until someone removed the file.
      const notice = writePidfile(os, '/run/d.pid', held('/usr/sbin/sshd -D'));
      expect(notice).toBe('pidfile /run/d.pid named process 4242, which is not a drover arbiter but "/usr/sbin/sshd -D": left by a drover that did not stop cleanly, its pid since reused; replaced');
      expect(os.fs.readFile('/run/d.pid')).toBe(`${os.pid}\n`);
      expect(writePidfile(os, '/run/d.pid', dead)).toBeNull();
    });
  });

  test('a symlink at the pidfile path is refused and not followed, dangling or not (exit 2)', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run');
      os.fs.writeFile('/etc-shadow', 'precious\n');
      os.fs.symlink('/etc-shadow', '/run/d.pid');
      const e = refusal(() => writePidfile(os, '/run/d.pid', dead));
      expect(e.message).toBe('pidfile /run/d.pid is a symlink: refusing to follow it; remove it if it is yours, or use another --pid');
      expect(e.exitCode).toBe(2);
      expect(os.fs.readFile('/etc-shadow')).toBe('precious\n');
      os.fs.unlink('/run/d.pid');
      os.fs.symlink('/nowhere', '/run/d.pid');
      expect(refusal(() => writePidfile(os, '/run/d.pid', dead)).message).toMatch(/is a symlink/);
      expect(os.fs.exists('/nowhere')).toBe(false);
      expect(os.fs.readdir('/run')).toEqual(['d.pid']);
    });
  });

  test('a directory, or a file too big to be a pid, is refused and left as it was', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run/d.pid', { recursive: true });
      expect(refusal(() => writePidfile(os, '/run/d.pid', dead)).message).toBe('pidfile /run/d.pid is a directory, not a regular file; remove it if it is yours, or use another --pid');
      os.fs.writeFile('/run/data', 'x'.repeat(1000));
      expect(refusal(() => writePidfile(os, '/run/data', dead)).message).toMatch(/^pidfile \/run\/data holds 1000 bytes, more than a pid/);
      expect(os.fs.readFile('/run/data')).toBe('x'.repeat(1000));
    });
  });

  test('a file that holds anything but a pid is refused and left as it was; an empty one is replaced', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run');
      os.fs.writeFile('/run/settings.json', '{"workers":2}\n');
      const e = refusal(() => writePidfile(os, '/run/settings.json', dead));
      expect(e.message).toBe('pidfile /run/settings.json holds "{\\"workers\\":2}", which is not a pid: is it the right file? Remove it if it is a stale pidfile, or use another --pid');
      expect(e.exitCode).toBe(2);
      expect(os.fs.readFile('/run/settings.json')).toBe('{"workers":2}\n');
      os.fs.writeFile('/run/d.pid', '');
      writePidfile(os, '/run/d.pid', dead);
      expect(os.fs.readFile('/run/d.pid')).toBe(`${os.pid}\n`);
    });
  });

  test('a symlink planted at the temp name is never followed: another unguessable name is used, or the start is refused', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run');
      os.fs.writeFile('/etc-shadow', 'precious\n');
      // The name the first draw makes (0.5, 0.5), planted; the next draws make a free one.
      const half = Math.floor(0.5 * 36 ** 6).toString(36);
      const planted = `/run/d.pid.${os.pid}.${half}${half}.tmp`;
      os.fs.symlink('/etc-shadow', planted);
      const draws = [0.5, 0.5, 0.25, 0.25];
      writePidfile(withRandom(os, () => draws.shift() ?? 0.75), '/run/d.pid', dead);
      expect(os.fs.readFile('/etc-shadow')).toBe('precious\n');
      expect(os.fs.lstat('/run/d.pid').isFile()).toBe(true);
      expect(os.fs.readFile('/run/d.pid')).toBe(`${os.pid}\n`);
      expect(os.fs.readdir('/run').sort()).toEqual(['d.pid', planted.slice('/run/'.length)].sort());
      // Every name taken (a random source that always draws the same): refused, nothing written.
      os.fs.unlink('/run/d.pid');
      const e = refusal(() => writePidfile(withRandom(os, () => 0.5), '/run/d.pid', dead));
      expect(e.message).toBe(`cannot write pidfile /run/d.pid: 8 temp names beside it (the last ${planted}) were already taken; someone is planting names in /run: use a directory only you can write`);
      expect(e.exitCode).toBe(2);
      expect(os.fs.exists('/run/d.pid')).toBe(false);
      expect(os.fs.readFile('/etc-shadow')).toBe('precious\n');
    });
  });

  test('a missing directory is a clear refusal (exit 2), not a stack trace', async () => {
    await inSim((os) => {
      const e = refusal(() => writePidfile(os, '/nope/d.pid', dead));
      expect(e.message).toMatch(/^cannot write pidfile \/nope\/d.pid: .*ENOENT.*; check that \/nope exists and is writable, or use another --pid$/);
      expect(e.exitCode).toBe(2);
    });
  });
});

describe('removePidfile', () => {
  test('removes the pidfile only when it is ours: not another pid, not through a symlink', async () => {
    await inSim((os) => {
      os.fs.mkdir('/run');
      os.fs.writeFile('/run/other.pid', '424242\n');
      removePidfile(os, '/run/other.pid');
      expect(os.fs.exists('/run/other.pid')).toBe(true);
      os.fs.writeFile('/run/target.pid', `${os.pid}\n`);
      os.fs.symlink('/run/target.pid', '/run/link.pid');
      removePidfile(os, '/run/link.pid');
      expect(os.fs.readdir('/run').sort()).toEqual(['link.pid', 'other.pid', 'target.pid']);
      writePidfile(os, '/run/d.pid', dead);
      removePidfile(os, '/run/d.pid');
      expect(os.fs.exists('/run/d.pid')).toBe(false);
      removePidfile(os, '/run/never.pid');
    });
  });
});
