// Hostile neighbours on the real OS (issue 12; DESIGN.md, "Threat model"):
// another local user - uid 65534, played with setpriv - plants directories,
// symlinks and FIFOs where drover will look, and each test checks that
// drover neither follows them nor lets them in: its runtime directory (the
// slow lane's sockets) must be its own, the pidfile's temp file never follows
// a symlink, a pidfile path that is not a regular file is refused, and a
// stale-looking lane directory outside the runtime directory is not removed.
// Each temp directory is the test's own; nothing in the real /tmp/drover-0.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { APPS, freePort, removeTmp, startDrover, tmp, type Drover } from './drover.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const APP = join(APPS, 'basic.js');
const NOBODY = 65534;
const LIMIT = { timeout: 30_000 };

/** Why the attacker cannot be played here, or null when it can: it needs root (to become another uid) and setpriv. */
const cannot: string | null =
  process.getuid?.() !== 0 ? 'not running as root: no second uid to play the other local user with'
  : spawnSync('setpriv', ['--version']).status !== 0 ? 'setpriv (util-linux) is missing: no second uid to play the other local user with'
  : null;
if (cannot !== null) console.warn(`neighbours.real.test.ts skipped: ${cannot}`);

const running: { cleanup(): Promise<void> }[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.cleanup();
  for (const d of dirs.splice(0)) removeTmp(d);
});

/** Runs `cmd` as uid/gid 65534 with no supplementary groups: the other local user. */
function asNobody(...cmd: string[]): void {
  execFileSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...cmd], { stdio: 'pipe' });
}

/** A temp directory of the test's, removed after it. */
function dir(): string {
  const d = tmp();
  dirs.push(d);
  return d;
}

/** A directory like /tmp: anyone may create in it, only an entry's owner remove it. */
function shared(): string {
  const d = dir();
  chmodSync(d, 0o1777);
  return d;
}

/** A private place for the control socket, so that the check under test is the one that speaks. */
function controlSocket(): string {
  return join(dir(), 'ctl.sock');
}

function start(args: string[], env: Record<string, string>): Drover {
  const d = startDrover(args, env);
  running.push(d);
  return d;
}

/**
 * drover started by a shell that waits for a line before it execs node, so
 * its pid (the shell's, kept by exec) is known before drover runs a line of
 * its own: the attacker plants names made from it in that time.
 */
function startHeld(args: string[], env: Record<string, string>): { pid: number; go(): void; log(): string; waitFor(re: RegExp): Promise<void>; exited(): Promise<number | null> } {
  const proc = spawn('sh', ['-c', 'read go && exec "$@"', 'sh', process.execPath, BIN, ...args], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (text += s));
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (text += s));
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  running.push({
    async cleanup() {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
      await exit;
    },
  });
  return {
    pid: proc.pid!,
    go: () => proc.stdin!.write('go\n'),
    log: () => text,
    async waitFor(re) {
      const end = Date.now() + 15_000;
      while (!re.test(text)) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; log:\n${text}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    exited: () => exit,
  };
}

/** Waits for drover's exit, failing (with its log) if it still serves after 15 s: the refusal must be at start. */
async function refused(d: Drover): Promise<number | null> {
  return (await d.exited(15_000)).code;
}

describe.skipIf(cannot !== null)('another local user (uid 65534) against drover (root)', () => {
  test('(a) a runtime directory the other user made first (mode 0777) refuses the start: exit 2, the path named, the directory left alone', LIMIT, async () => {
    const xdg = shared();
    const runtime = join(xdg, 'drover');
    asNobody('mkdir', '-m', '0777', runtime);
    asNobody('touch', join(runtime, 'planted'));
    const d = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--control-socket', controlSocket()], { XDG_RUNTIME_DIR: xdg });
    expect(await refused(d)).toBe(2);
    expect(d.log()).toContain(`drover's runtime directory ${runtime} belongs to uid ${NOBODY}, not to this user (uid 0): another user made it first; remove it (rm -r ${runtime})`);
    expect(d.log()).not.toMatch(/Listening at|Booting/);
    // Left as it was: drover neither fixes nor removes another user's directory.
    expect(readdirSync(runtime)).toEqual(['planted']);
    expect(lstatSync(runtime).uid).toBe(NOBODY);
  });

  test('(a) a symlink planted at the runtime directory path, to a directory of the other user\'s, is refused and not followed', LIMIT, async () => {
    const xdg = shared();
    const runtime = join(xdg, 'drover');
    const theirs = join(xdg, 'theirs');
    asNobody('mkdir', '-m', '0700', theirs);
    asNobody('ln', '-s', theirs, runtime);
    const d = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--control-socket', controlSocket()], { XDG_RUNTIME_DIR: xdg });
    expect(await refused(d)).toBe(2);
    expect(d.log()).toContain(`drover's runtime directory ${runtime} is a symlink: refusing to follow it`);
    expect(readdirSync(theirs)).toEqual([]);
  });

  test('(b) a symlink planted at the pidfile\'s temp name, to a root-owned file, is not written through; the pidfile is right', LIMIT, async () => {
    // The pidfile's directory belongs to the service's user (uid 65534), as a run directory often does.
    const run = dir();
    chownSync(run, NOBODY, NOBODY);
    chmodSync(run, 0o755);
    const precious = join(dir(), 'precious');
    writeFileSync(precious, 'precious\n', { mode: 0o644 });
    const pidfile = join(run, 'drover.pid');
    const port = await freePort();
    const d = startHeld([APP, '--bind', `127.0.0.1:${port}`, '--workers', '1', '--lanes', 'off', '--pid', pidfile], { XDG_RUNTIME_DIR: dir() });
    // The name drover used before: <pidfile>.<pid>.tmp.
    asNobody('ln', '-s', precious, `${pidfile}.${d.pid}.tmp`);
    d.go();
    await d.waitFor(/worker \d+ booted/);
    expect(readFileSync(precious, 'utf8')).toBe('precious\n');
    expect(lstatSync(pidfile).isFile()).toBe(true);
    expect(readFileSync(pidfile, 'utf8')).toBe(`${d.pid}\n`);
    // The planted link is left, not followed, and no temp file of drover's is left over.
    expect(readdirSync(run).sort()).toEqual(['drover.pid', `drover.pid.${d.pid}.tmp`]);
  });

  test('(c) a pidfile path that is a symlink to /dev/zero is refused: exit 2, the path and the fix named, nothing read', LIMIT, async () => {
    const zero = join(shared(), 'zero.pid');
    asNobody('ln', '-s', '/dev/zero', zero);
    const a = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--lanes', 'off', '--pid', zero], { XDG_RUNTIME_DIR: dir() });
    expect(await refused(a)).toBe(2);
    expect(a.log()).toContain(`pidfile ${zero} is a symlink: refusing to follow it; remove it if it is yours, or use another --pid`);
    expect(a.log()).not.toMatch(/Listening at|Booting/);
    expect(lstatSync(zero).isSymbolicLink()).toBe(true);
  });

  test('(c) a pidfile path that is a FIFO is refused: exit 2, not opened (which would wait for ever for a writer)', LIMIT, async () => {
    const fifo = join(shared(), 'fifo.pid');
    asNobody('mkfifo', '-m', '0666', fifo);
    const b = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--lanes', 'off', '--pid', fifo], { XDG_RUNTIME_DIR: dir() });
    expect(await refused(b)).toBe(2);
    expect(b.log()).toContain(`pidfile ${fifo} is a FIFO or a device, not a regular file; remove it if it is yours, or use another --pid`);
    expect(b.log()).not.toMatch(/Listening at|Booting/);
  });

  test('(d) a stale-looking lane directory of another user\'s outside the runtime directory is left alone; a dead arbiter\'s inside it is removed', LIMIT, async () => {
    const xdg = shared();
    const dead = spawnSync('true').pid!; // a pid nobody has now
    const outside = join(xdg, `drover-${dead}.lanes`);
    asNobody('mkdir', '-m', '0777', outside);
    asNobody('touch', join(outside, 'theirs'));
    // A dead arbiter's lane directory inside drover's own runtime directory.
    const runtime = join(xdg, 'drover');
    mkdirSync(join(runtime, `lanes-${dead}`), { recursive: true, mode: 0o700 });
    chmodSync(runtime, 0o700);
    writeFileSync(join(runtime, `lanes-${dead}`, 'slow-1.sock'), '');
    const d = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--control-socket', controlSocket()], { XDG_RUNTIME_DIR: xdg });
    await d.waitFor(/slow-lane worker \d+ booted/);
    expect(readdirSync(outside)).toEqual(['theirs']);
    expect(existsSync(join(runtime, `lanes-${dead}`))).toBe(false);
    expect(readdirSync(runtime)).toEqual([`lanes-${d.pid}`]);
    expect(lstatSync(join(runtime, `lanes-${d.pid}`)).mode & 0o777).toBe(0o700);
    d.kill('SIGTERM');
    expect((await d.exited()).code).toBe(0);
    expect(readdirSync(runtime)).toEqual([]);
    expect(readdirSync(outside)).toEqual(['theirs']);
  });

  test('(e) log files in a shared directory: a symlink to a root file, or a FIFO, planted at the log path is refused at start; nothing written through, no hang', LIMIT, async () => {
    const sticky = shared();
    const secret = join(dir(), 'secret');
    writeFileSync(secret, 'root only\n', { mode: 0o600 });
    asNobody('ln', '-s', secret, join(sticky, 'access.log'));
    asNobody('mkfifo', '-m', '0666', join(sticky, 'error.log'));
    const a = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--lanes', 'off', '--access-log', join(sticky, 'access.log')], { XDG_RUNTIME_DIR: dir() });
    expect(await refused(a)).toBe(2);
    expect(a.log()).toContain(`access_log ${join(sticky, 'access.log')}: it is a symlink (owned by uid ${NOBODY}) in ${sticky}, which other users can write into`);
    expect(readFileSync(secret, 'utf8')).toBe('root only\n');
    // Before: the open of a FIFO waited for a reader, for ever.
    const b = start([APP, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--lanes', 'off', '--error-log', join(sticky, 'error.log')], { XDG_RUNTIME_DIR: dir() });
    expect(await refused(b)).toBe(2);
    expect(b.log()).toContain(`error_log ${join(sticky, 'error.log')}: it is a FIFO, socket or device`);
  });

  test('(e) a log rotated away and replaced by another user\'s FIFO: USR1 keeps the old file and says why, the server serves on and stops at once', LIMIT, async () => {
    const sticky = shared();
    const log = join(sticky, 'access.log');
    const port = await freePort();
    const a = start([APP, '--bind', `127.0.0.1:${port}`, '--workers', '1', '--lanes', 'off', '--access-log', log], { XDG_RUNTIME_DIR: dir() });
    await a.waitFor(/booted/);
    execFileSync('mv', [log, `${log}.1`]);
    asNobody('mkfifo', '-m', '0666', log);
    a.kill('SIGUSR1');
    // Before: the arbiter (and then the workers) blocked in open, deaf to TERM.
    await a.waitFor(/USR1: access_log .*access\.log: it is a FIFO.*the workers keep writing to the file open before/);
    const r = await fetch(`http://127.0.0.1:${port}/`);
    expect(r.status).toBe(200);
    a.kill('SIGTERM');
    expect((await a.exited(10_000)).code).toBe(0);
  });
});
