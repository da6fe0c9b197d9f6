// systemd socket activation (sd_listen_fds(3)): when LISTEN_PID is our pid,
// LISTEN_FDS listening sockets wait at descriptors 3, 4, ... They become this
// process's inherited listeners. Their addresses are read from /proc: the
// descriptor's socket inode, looked up in /proc/net/{tcp,tcp6,unix}.
import { readFileSync, readlinkSync } from 'node:fs';
import type { Addr } from '../types.js';
import { NodeListener } from './listener.js';

const FIRST_FD = 3;
const BACKLOG = 511; // unknown: systemd's Backlog= is not passed on

export function activatedListeners(env: NodeJS.ProcessEnv, pid: number): NodeListener[] {
  if (env.LISTEN_PID !== String(pid)) return [];
  const n = Number(env.LISTEN_FDS);
  if (!Number.isInteger(n) || n < 1) return [];
  const sockets = socketTable();
  const out: NodeListener[] = [];
  for (let fd = FIRST_FD; fd < FIRST_FD + n; fd++) {
    const inode = /^socket:\[(\d+)\]$/.exec(safe(() => readlinkSync(`/proc/self/fd/${fd}`)) ?? '')?.[1];
    const address = inode === undefined ? undefined : sockets.get(inode);
    if (!address) throw new Error(`LISTEN_FDS=${n}, but descriptor ${fd} is not a listening TCP or Unix socket`);
    out.push(new NodeListener(address, BACKLOG, fd));
  }
  return out;
}

/** The variables that must not reach children (they would think the sockets are theirs). */
export const ACTIVATION_VARS = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/**
 * sd_notify's variables (sd-notify.ts): the arbiter speaks for the service.
 * A worker or companion that saw them could tell systemd READY=1 or
 * STOPPING=1 for all of it (with NotifyAccess=all systemd believes any
 * process of the unit), or a library in it could feed the watchdog while
 * the arbiter hangs. spawn.ts keeps them from every child, as sd_notify's
 * unset_environment would.
 */
export const NOTIFY_VARS = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/** inode → bound address, for every socket on the machine we can see. */
function socketTable(): Map<string, Addr> {
  const table = new Map<string, Addr>();
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    for (const line of lines(file)) {
      const f = line.trim().split(/\s+/);
      const [hexAddr, hexPort] = (f[1] ?? '').split(':');
      if (!hexAddr || !hexPort || f[9] === undefined) continue;
      table.set(f[9], { host: v6 ? ipv6(hexAddr) : ipv4(hexAddr), port: Number.parseInt(hexPort, 16) });
    }
  }
  for (const line of lines('/proc/net/unix')) {
    const f = line.trim().split(/\s+/);
    if (f[6] !== undefined && f[7] !== undefined) table.set(f[6], { path: f[7] });
  }
  return table;
}

function lines(file: string): string[] {
  return (safe(() => readFileSync(file, 'latin1')) ?? '').split('\n').slice(1);
}

/** /proc/net/tcp prints the address as the host-order (little-endian) 32-bit word. */
function ipv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
}

/** Four little-endian 32-bit words. */
function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(Number.parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The WHATWG URL parser prints IPv6 in its shortest form (::1), as Node does.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

function safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
