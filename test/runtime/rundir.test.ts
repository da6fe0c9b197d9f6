// drover's private runtime directory (src/runtime/rundir.ts; issue 12) on the
// simulated disk: what is refused and why, and the arbiter that uses it for
// the slow lane's sockets - refusing to start when it is not private, and
// removing a dead arbiter's lane directory only inside it. The simulated
// machine has one user, so a directory of another uid is played on the real
// OS (neighbours.real.test.ts).
import { describe, expect, test } from 'vitest';
import { programs, UNIX_PATH_MAX, type Exited, type Os } from '../../src/os/types.js';
import { checkPrivateDir, ensureRuntimeDir, RundirError, runtimeDirFor, runtimeDirPath } from '../../src/runtime/rundir.js';
import { runtimePrograms } from '../../src/runtime/programs.js';
import { Kernel } from '../../src/sim/index.js';
import { SIM_UID } from '../../src/sim/files.js';
import { reap, until } from '../support/os.js';
import { SIM_APP } from './sim.js';

async function inSim(body: (os: Os) => void | Promise<void>, env: Record<string, string> = {}): Promise<Kernel> {
  let failed: { e: unknown } | null = null;
  const main = async (os: Os) => {
    try {
      await body(os);
    } catch (e) {
      failed = { e };
    }
  };
  const k = new Kernel({ seed: 1, programs: [...runtimePrograms, programs(import.meta.url, { main })] });
  const root = k.spawn({ program: 'main', channel: false, env });
  await k.run({ stopWhen: () => k.exitStatus(root) !== undefined, until: 600_000 });
  if (failed !== null) throw (failed as { e: unknown }).e;
  return k;
}

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RundirError) return e.message;
    throw e;
  }
  throw new Error('not refused');
}

const RUN = `/tmp/drover-${SIM_UID}`;
/** The lane directories in the runtime directory (it holds the default control socket too). */
const lanes = (os: { fs: Os['fs'] }) => os.fs.readdir(RUN).filter((n) => n.startsWith('lanes-'));

describe('the runtime directory', () => {
  test('$XDG_RUNTIME_DIR/drover when set, else /tmp/drover-<uid>; /tmp/drover-<uid> when a socket path there would be too long', () => {
    expect(runtimeDirPath({ XDG_RUNTIME_DIR: '/run/user/7' }, 7)).toBe('/run/user/7/drover');
    expect(runtimeDirPath({ XDG_RUNTIME_DIR: '' }, 7)).toBe('/tmp/drover-7');
    expect(runtimeDirPath({}, 0)).toBe('/tmp/drover-0');
    expect(runtimeDirFor({ XDG_RUNTIME_DIR: '/run/user/7' }, 7, 'lanes-123', 20)).toBe('/run/user/7/drover');
    const deep = `/${'d'.repeat(UNIX_PATH_MAX - 30)}`;
    expect(runtimeDirFor({ XDG_RUNTIME_DIR: deep }, 7, 'lanes-123', 20)).toBe('/tmp/drover-7');
  });

  test('made 0700 when missing, and accepted again as it is', async () => {
    await inSim((os) => {
      expect(ensureRuntimeDir(os)).toBe(RUN);
      const st = os.fs.lstat(RUN);
      expect([st.isDirectory(), st.mode & 0o777, st.uid]).toEqual([true, 0o700, os.uid]);
      expect(ensureRuntimeDir(os)).toBe(RUN);
      os.fs.mkdir('/xdg', { mode: 0o700 });
      expect(ensureRuntimeDir(os, runtimeDirPath({ XDG_RUNTIME_DIR: '/xdg' }, os.uid))).toBe('/xdg/drover');
    });
  });

  test('refused, with the path and the fix: mode 0755 or 0777, a symlink (even to a private directory of ours), a file, a missing $XDG_RUNTIME_DIR', async () => {
    await inSim((os) => {
      os.fs.mkdir(RUN, { mode: 0o755 });
      expect(refusal(() => ensureRuntimeDir(os))).toBe(`drover's runtime directory ${RUN} has mode 755, not 700: others could replace what is in it; chmod 700 ${RUN}, or remove it`);
      os.fs.chmod(RUN, 0o777);
      expect(refusal(() => ensureRuntimeDir(os))).toMatch(/has mode 777, not 700/);
      os.fs.rmdir(RUN);
      os.fs.mkdir('/mine', { mode: 0o700 });
      os.fs.symlink('/mine', RUN);
      expect(refusal(() => ensureRuntimeDir(os))).toBe(`drover's runtime directory ${RUN} is a symlink: refusing to follow it; remove it (rm -r ${RUN}) if it is not yours, or set XDG_RUNTIME_DIR to a directory of your own`);
      os.fs.unlink(RUN);
      os.fs.symlink('/nowhere', RUN);
      expect(refusal(() => ensureRuntimeDir(os))).toMatch(/is a symlink: refusing to follow it/);
      expect(os.fs.exists('/nowhere')).toBe(false);
      os.fs.unlink(RUN);
      os.fs.writeFile(RUN, '');
      expect(refusal(() => ensureRuntimeDir(os))).toMatch(/^drover's runtime directory \/tmp\/drover-1000 is not a directory; remove it/);
      expect(refusal(() => ensureRuntimeDir(os, '/gone/drover'))).toBe("cannot create drover's runtime directory /gone/drover: /gone does not exist; create it (mode 0700), or set XDG_RUNTIME_DIR to a directory of your own, or unset it");
      expect(refusal(() => checkPrivateDir(os, '/gone', 'the thing'))).toMatch(/^the thing \/gone is gone \(ENOENT\)/);
    });
  });
});

/** Starts the arbiter in the simulator with lanes on, after `prepare`; runs `body` while it serves (if it does). */
async function arbiterRun(prepare: (os: Os) => void, body: (os: Os, arbiter: number, log: () => string) => Promise<Exited | void>, more: readonly string[] = []): Promise<{ exit: Exited | null; log: string; k: Kernel }> {
  let exit: Exited | null = null;
  let text = '';
  const k = await inSim(async (os) => {
    prepare(os);
    os.fs.writeFile('/tmp/drover.log', '');
    const a = os.spawn({ program: 'arbiter', args: [SIM_APP, '--bind', '127.0.0.1:8000', '--workers', '1', ...more], channel: false, stdout: { file: '/tmp/drover.log' }, stderr: { file: '/tmp/drover.log' } });
    const log = () => os.fs.readFile('/tmp/drover.log');
    try {
      exit = (await body(os, a.pid, log)) ?? null;
      if (exit === null) {
        os.kill(a.pid, 'SIGTERM');
        exit = await reap(os, a.pid, 60_000);
      }
    } finally {
      text = log();
    }
  });
  return { exit, log: text, k };
}

describe('the arbiter and its lane directory', () => {
  test('a runtime directory that is not private refuses the start: exit 2, one line naming the path, nothing bound', async () => {
    // The control socket elsewhere: the lanes' own check is the one that speaks.
    const prepare = (os: Os) => {
      os.fs.mkdir(RUN);
      os.fs.chmod(RUN, 0o777);
      os.fs.mkdir('/ctl', { mode: 0o700 });
    };
    const r = await arbiterRun(prepare, (os, pid) => reap(os, pid, 30_000), ['--control-socket', '/ctl/c.sock']);
    expect(r.exit).toMatchObject({ code: 2 });
    expect(r.log.trim().split('\n').filter((l) => !/Starting drover/.test(l))).toEqual([expect.stringMatching(new RegExp(`drover's runtime directory ${RUN} has mode 777, not 700: .*chmod 700 ${RUN}, or remove it$`))]);
    expect(r.log).not.toMatch(/Listening at|Booting/);
    // With lanes off nothing needs it.
    const off = await arbiterRun(prepare, async (os, _pid, log) => void (await until(os, () => /worker \d+ booted/.test(log()), 30_000)), ['--control-socket', '/ctl/c.sock', '--lanes', 'off']);
    expect(off.exit).toMatchObject({ code: 0 });
  });

  test('lanes-<pid> in the runtime directory (0700); a dead arbiter\'s there is removed, nothing outside it is touched; gone after TERM', async () => {
    const r = await arbiterRun(
      (os) => {
        os.fs.mkdir(`${RUN}/lanes-424242`, { recursive: true, mode: 0o700 });
        os.fs.writeFile(`${RUN}/lanes-424242/slow-1.sock`, '');
        os.fs.mkdir('/tmp/drover-424243.lanes', { mode: 0o777 });
        os.fs.chmod(RUN, 0o700);
      },
      async (os, arbiter, log) => {
        expect(await until(os, () => /slow-lane worker \d+ booted/.test(log()), 30_000)).toBe(true);
        expect(lanes(os)).toEqual([`lanes-${arbiter}`]);
        const st = os.fs.lstat(`${RUN}/lanes-${arbiter}`);
        expect([st.isDirectory(), st.mode & 0o777]).toEqual([true, 0o700]);
        expect(os.fs.readdir(`${RUN}/lanes-${arbiter}`)).toEqual(['slow-1.sock']);
        expect(os.fs.exists('/tmp/drover-424243.lanes')).toBe(true);
      },
    );
    expect(r.exit).toMatchObject({ code: 0 });
    expect(lanes(r.k)).toEqual([]);
    expect(r.k.fs.exists('/tmp/drover-424243.lanes')).toBe(true);
  });

  test('the lane directory changed under a running arbiter (mode opened up) stops it with exit 2 when it next needs a slow worker', async () => {
    const r = await arbiterRun(
      () => {},
      async (os, arbiter, log) => {
        expect(await until(os, () => /slow-lane worker (\d+) booted/.test(log()), 30_000)).toBe(true);
        os.fs.chmod(`${RUN}/lanes-${arbiter}`, 0o777);
        os.kill(Number(/slow-lane worker (\d+) booted/.exec(log())![1]), 'SIGKILL');
        return reap(os, arbiter, 30_000);
      },
    );
    expect(r.exit).toMatchObject({ code: 2 });
    expect(r.log).toContain(`the slow lane's socket directory ${RUN}/lanes-`);
  });
});
