// Addresses drover cannot bind, on the real OS: the start stops (exit 1) with
// a line that says what is wrong and how to fix it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { APPS } from './drover.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const APP = join(APPS, 'basic.js');
const NOBODY = 65534;

/**
 * drover with these arguments, to its end (at most 15 s): its exit and its
 * output. As root, it runs as uid and gid 65534 (nobody, with no groups), as
 * setpriv makes it: root may bind any port.
 */
function run(args: string[]): { code: number | null; out: string } {
  const root = process.getuid?.() === 0;
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
