// Addresses drover cannot bind, on the real OS: the start stops (exit 1) with
// a line that says what is wrong and how to fix it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { APPS } from './drover.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const APP = join(APPS, 'basic.js');
const NOBODY = 65534;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory of the test's (root's, mode 0700 when the tests run as root), removed after the test. */
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'drover-bind-'));
  dirs.push(d);
  return d;
}

/**
 * drover with these arguments, to its end (at most 15 s): its exit and its
 * output. As root, it runs as uid and gid 65534 (nobody, with no groups), as
 * setpriv makes it (root may bind any port, and write anywhere), unless
 * asNobody is false.
 */
function run(args: string[], opts: { asNobody?: boolean } = {}): { code: number | null; out: string } {
  const root = process.getuid?.() === 0 && opts.asNobody !== false;
  const argv = [process.execPath, BIN, ...args];
  const r = root
    ? spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv], { cwd: '/', encoding: 'utf8', timeout: 15_000 })
    : spawnSync(argv[0]!, argv.slice(1), { cwd: '/', encoding: 'utf8', timeout: 15_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout + r.stderr };
}

test('a privileged port without the right to bind it: exit 1, the port named as privileged, and the three ways out', () => {
  const threshold = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  expect(threshold, 'net.ipv4.ip_unprivileged_port_start is 80 or less here: port 80 is not privileged, nothing to play').toBeGreaterThan(80);
  const uid = process.getuid?.() === 0 ? NOBODY : process.getuid!();
  const r = run([APP, '--bind', '127.0.0.1:80', '--workers', '1', '--lanes', 'off']);
  expect(r.code).toBe(1);
  expect(r.out).not.toMatch(/Booting worker|Listening at/);
  expect(r.out).toContain(
    `[ERROR] cannot listen at 127.0.0.1:80: EPERM: cannot bind 127.0.0.1:80: port 80 is privileged (below ${threshold}, net.ipv4.ip_unprivileged_port_start) ` +
    `and this process (uid ${uid}) may not bind it (EACCES); use a port of ${threshold} or above (a proxy such as nginx in front on 80), ` +
    `or give node the capability (\`setcap cap_net_bind_service=+ep ${process.execPath}\`, or \`AmbientCapabilities=CAP_NET_BIND_SERVICE\` in its systemd unit), ` +
    'or let systemd bind the port (socket activation: deploy/drover.socket)\n',
  );
});

test('a Unix socket in a directory that does not exist: exit 1, the directory named as missing, and to create it or fix the path', () => {
  const dir = join(tmp(), 'missing');
  const path = join(dir, 'web.sock');
  const r = run([APP, '--bind', `unix:${path}`, '--workers', '1', '--lanes', 'off'], { asNobody: false });
  expect(r.code).toBe(1);
  expect(r.out).not.toMatch(/Booting worker|Listening at/);
  expect(r.out).toContain(`[ERROR] cannot listen at unix:${path}: ENOENT: cannot create the Unix socket ${path}: its directory ${dir} does not exist; create it (mkdir -p ${dir}) or fix the path\n`);
  // What the lock beside the socket is, is drover's business: the words are about the socket.
  expect(r.out).not.toContain('.lock');
});

test('a Unix socket where a part of the path is a file, or in a directory not ours to write: the cause and the fix, not the lock', () => {
  const file = join(tmp(), 'file');
  writeFileSync(file, '');
  const under = join(file, 'web.sock');
  const r = run([APP, '--bind', `unix:${under}`, '--workers', '1', '--lanes', 'off'], { asNobody: false });
  expect(r.code).toBe(1);
  expect(r.out).toContain(`[ERROR] cannot listen at unix:${under}: EINVAL: cannot create the Unix socket ${under}: ${file} is not a directory (ENOTDIR); fix the path\n`);
  if (process.getuid?.() !== 0) return; // only root can play another user here
  const root = tmp(); // root's, 0700: nobody may not even enter it
  const theirs = join(root, 'web.sock');
  const n = run([APP, '--bind', `unix:${theirs}`, '--workers', '1', '--lanes', 'off']);
  expect(n.code).toBe(1);
  expect(n.out).toContain(`[ERROR] cannot listen at unix:${theirs}: EPERM: cannot create the Unix socket ${theirs}: uid ${NOBODY} may not create files in ${root} (EACCES); ` +
    'give it write access to the directory, or choose a directory of its own\n');
});
