// listen(2) without accept(2).
//
// The parent must keep its listening socket for its whole life (workers come
// and go) without ever taking a connection from it; its children accept from
// it directly. Node 20 cannot listen without accepting: net.Server's listen
// always starts libuv's accept loop, and there is no reusePort. So:
// - bind with net._createServerHandle, which binds without listening (what
//   node:cluster uses for SCHED_NONE);
// - get two copies of the descriptor from the parent, over the drover
//   channel (handoff.ts: ParentCopies.echo), call listen(2) on one and close
//   it in the same tick, before libuv's loop ever polls it, and keep the
//   other; a process with no drover parent has a short-lived helper process
//   do the same through the inherited fd (one node start, ~60 ms of CPU,
//   which a reload would pay for each slow-lane worker).
// A socket stays in LISTEN while any process holds an fd for it, so
// connections made while no child accepts wait in the backlog and connect()
// succeeds. This process accepts only if it calls Listener.accept, and then
// through the copy kept (or the one the helper sends back): the bound
// handle itself is never polled, so Listener.pause can close what it polls
// (listener.ts, handoff.ts).

import * as fs from 'node:fs';
import * as net from 'node:net';
import { lookup } from 'node:dns/promises';
import { dirname } from 'node:path';
import { formatAddr, isUnix, OsError, UNIX_PATH_MAX, type Addr, type ListenOptions, type TcpAddr, type UnixAddr } from '../types.js';
import { codeOf, osError, uvName } from './errors.js';
import { copyLocally, createServerHandle, noCreateServerHandle, runHelper, type ParentCopies, type RawHandle } from './handoff.js';
import { NodeListener } from './listener.js';

const DEFAULT_BACKLOG = 511;

export async function listen(addr: Addr, opts: ListenOptions = {}, parent: ParentCopies | null = null): Promise<NodeListener> {
  if (typeof createServerHandle !== 'function') throw noCreateServerHandle();
  const backlog = opts.backlog ?? DEFAULT_BACKLOG;
  const unlock = isUnix(addr) ? await lockPath(addr.path) : null;
  let bound: Bound;
  let spare: RawHandle | null;
  try {
    bound = isUnix(addr) ? await bindUnix(addr, opts.mode ?? 0o600) : await bindTcp(addr);
    try {
      spare = await startListening(bound.handle, backlog, bound.address, parent);
    } catch (e) {
      bound.handle.close();
      throw e;
    }
  } finally {
    unlock?.();
  }
  // Copies to resume with (listener.ts): the parent's echo, else the helper's.
  const fromParent = parent ? () => parent.echo(bound.handle, 1).then(([h]) => h!, () => copyLocally(bound.handle.fd)) : undefined;
  return new NodeListener(bound.address, backlog, bound.handle, { spare, fromParent });
}

interface Bound {
  handle: RawHandle;
  address: Addr;
}

async function bindTcp(addr: TcpAddr): Promise<Bound> {
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65535) {
    throw new OsError('EINVAL', `invalid port ${addr.port} (0-65535, 0 picks a free one)`);
  }
  let host = addr.host;
  if (net.isIP(host) === 0) {
    try {
      host = (await lookup(host)).address;
    } catch (e) {
      throw new OsError('EINVAL', `cannot resolve host "${addr.host}" (${codeOf(e) ?? String(e)})`);
    }
  }
  const h = createServerHandle!(host, addr.port, net.isIPv6(host) ? 6 : 4, undefined, 0);
  if (typeof h === 'number') throw bindError(uvName(h), { host: addr.host, port: addr.port });
  // libuv defers a TCP bind's EADDRINUSE to listen()/connect() on the same
  // handle. The helper would listen through a fresh handle instead, and
  // listen(2) on an unbound socket binds it to a random port on 0.0.0.0. So
  // the bind is checked here: a socket that failed to bind has port 0.
  const out: { port?: number } = {};
  h.getsockname?.(out);
  if (!out.port) {
    h.close();
    throw bindError('EADDRINUSE', { host: addr.host, port: addr.port });
  }
  return { handle: h, address: { host, port: out.port } };
}

async function bindUnix(addr: UnixAddr, mode: number): Promise<Bound> {
  const len = Buffer.byteLength(addr.path);
  if (len > UNIX_PATH_MAX) {
    throw new OsError('ENAMETOOLONG', `Unix socket path ${addr.path} is ${len} bytes, over the limit of ${UNIX_PATH_MAX}; ` +
      'use a shorter path, e.g. under /tmp or $XDG_RUNTIME_DIR');
  }
  await clearStale(addr.path);
  // The socket file gets 0777 & ~umask at bind(2); a chmod afterwards would
  // leave a window with looser permissions. The umask is process-wide, so it
  // is set and restored around the one synchronous call.
  let old: number;
  try {
    old = process.umask(~mode & 0o777);
  } catch (e) {
    // Worker threads may not change the umask.
    throw osError(codeOf(e), `cannot create ${addr.path} with mode ${mode.toString(8)} here: ${(e as Error).message}`);
  }
  let h: RawHandle | number;
  try {
    h = createServerHandle!(addr.path, -1, -1, undefined, 0);
  } finally {
    process.umask(old);
  }
  if (typeof h === 'number') throw bindError(uvName(h), addr);
  return { handle: h, address: { path: addr.path } };
}

/**
 * Holds `PATH.lock` from the stale check to the listen of a Unix socket.
 * Between its bind and its listen (which goes through a helper) a socket
 * refuses connections exactly as a stale one does: a second process starting
 * on the same path then removed it as stale and bound its own, and both
 * served "the" socket (two drovers started at once on one control socket:
 * 7 starts in 10). The lock file holds its owner's pid: one whose owner is
 * gone (killed mid-listen) is removed; a live owner is waited for, then the
 * socket it made is found live (EADDRINUSE). Returns the release.
 */
async function lockPath(path: string): Promise<() => void> {
  const lock = `${path}.lock`;
  for (let waited = 0; ; waited += LOCK_POLL_MS) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => {
        try {
          fs.unlinkSync(lock);
        } catch (e) {
          if (codeOf(e) !== 'ENOENT') throw e;
        }
      };
    } catch (e) {
      // The lock is the first thing made at the socket's place: its failure is the socket's, said as such.
      if (codeOf(e) !== 'EEXIST') throw socketPlaceError(codeOf(e), path, `cannot create the lock ${lock} beside the socket: ${(e as Error).message}`);
    }
    const owner = lockOwner(lock);
    if (owner === null) continue; // removed meanwhile, or stale and removed now
    if (waited >= LOCK_WAIT_MS) {
      const who = owner > 0 ? `process ${owner}` : 'a process';
      throw new OsError('EADDRINUSE', `${path}: ${who} has been starting a socket there for ${LOCK_WAIT_MS / 1000} s (it holds ${lock}); stop it, or remove ${lock} if nothing is starting`);
    }
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
  }
}

const LOCK_POLL_MS = 20;
/** Far longer than a listen takes (a helper process's start, on a loaded machine). */
const LOCK_WAIT_MS = 10_000;

/**
 * The live pid holding `lock`, or null when there is none (a lock whose owner
 * is gone, or unreadable, is removed). The socket's directory may be a sticky
 * shared one (/tmp), where another user can put anything at the lock's path:
 * only a plain file of this uid is read (never followed, at most 32 bytes: a
 * symlink to /dev/zero must not hang us), anything else is refused.
 */
function lockOwner(lock: string): number | null {
  let text: string;
  try {
    const st = fs.lstatSync(lock);
    if (!st.isFile() || st.uid !== process.getuid?.()) {
      throw new OsError('EPERM', `${lock} is ${st.isFile() ? `owned by uid ${st.uid}` : 'not a plain file'}, not a lock of this user's: ` +
        'another user may be holding the socket\'s path; remove it, or put the socket in a directory of your own');
    }
    const fd = fs.openSync(lock, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(32);
      text = buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (codeOf(e) === 'ENOENT') return null;
    throw e;
  }
  const pid = Number(text);
  // Written right after the exclusive create: an empty file is an owner between the two, alive.
  if (text === '') return -1;
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      return pid;
    } catch (e) {
      if (codeOf(e) === 'EPERM') return pid; // alive, another user's
    }
  }
  try {
    fs.unlinkSync(lock);
  } catch (e) {
    if (codeOf(e) !== 'ENOENT') throw e;
  }
  return null;
}

/** A socket file nobody listens on is removed; anything else at the path is an error. */
async function clearStale(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    if (codeOf(e) === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) {
    throw new OsError('EEXIST', `${path} exists and is not a socket; remove it or choose another path`);
  }
  const state = await probe(path);
  if (state === 'live') throw bindError('EADDRINUSE', { path });
  if (state === 'stale') {
    try {
      fs.unlinkSync(path);
    } catch (e) {
      if (codeOf(e) !== 'ENOENT') throw e;
    }
  }
}

function probe(path: string): Promise<'live' | 'stale' | 'gone'> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve('live');
    });
    s.once('error', (e) => {
      const code = codeOf(e);
      if (code === 'ECONNREFUSED') resolve('stale');
      else if (code === 'EAGAIN') resolve('live'); // a full backlog: someone holds it
      else if (code === 'ENOENT') resolve('gone');
      else reject(osError(code, `cannot tell whether ${path} is in use: ${e.message}`));
    });
  });
}

/**
 * Why a Unix socket cannot be created at `path`, when its directory is the
 * cause (missing, not a directory, not ours to write), with the fix;
 * `otherwise` for any other errno.
 */
function socketPlaceError(name: string | undefined, path: string, otherwise: string): OsError {
  const dir = dirname(path);
  const what = `cannot create the Unix socket ${path}`;
  switch (name) {
    case 'ENOENT':
      return new OsError('ENOENT', `${what}: its directory ${dir} does not exist; create it (mkdir -p ${dir}) or fix the path`);
    case 'ENOTDIR':
      return new OsError('EINVAL', `${what}: ${nonDirectory(dir)} is not a directory (ENOTDIR); fix the path`);
    case 'EACCES':
    case 'EPERM':
      return new OsError('EPERM', `${what}: uid ${process.getuid?.() ?? '?'} may not create files in ${dir} (${name}); ` +
        'give it write access to the directory, or choose a directory of its own');
    default:
      return osError(name, otherwise);
  }
}

/** The first part of `dir` that exists and is not a directory (ENOTDIR names none), or `dir` itself if none is found. */
function nonDirectory(dir: string): string {
  for (let at = dir; at !== dirname(at); at = dirname(at)) {
    try {
      if (!fs.statSync(at).isDirectory() && fs.statSync(dirname(at)).isDirectory()) return at;
    } catch {
      // missing, or under the file: look higher
    }
  }
  return dir;
}

function bindError(name: string, addr: Addr): OsError {
  if (isUnix(addr) && ['ENOENT', 'ENOTDIR', 'EACCES', 'EPERM'].includes(name)) return socketPlaceError(name, addr.path, '');
  if (name === 'EADDRINUSE') {
    return new OsError('EADDRINUSE', `address ${formatAddr(addr).replace(/^unix:/, '')} is already in use; stop the other server or choose another --bind`);
  }
  if (name === 'EADDRNOTAVAIL') return new OsError('EINVAL', `cannot bind ${formatAddr(addr)}: no such address on this machine`);
  if (name === 'EACCES' && !isUnix(addr)) {
    const first = unprivilegedPortStart();
    if (addr.port > 0 && addr.port < first) return privilegedPort(addr, first);
  }
  return osError(name, `cannot bind ${formatAddr(addr)}`);
}

/**
 * Linux lets only a process with CAP_NET_BIND_SERVICE (root has it) bind a
 * port below net.ipv4.ip_unprivileged_port_start (1024 unless changed);
 * others get EACCES, which alone does not say why nor what to do.
 */
function privilegedPort(addr: TcpAddr, first: number): OsError {
  const port = addr.port;
  return new OsError('EPERM', `cannot bind ${formatAddr(addr)}: port ${port} is privileged (below ${first}, net.ipv4.ip_unprivileged_port_start) ` +
    `and this process (uid ${process.getuid?.() ?? '?'}) may not bind it (EACCES); use a port of ${first} or above (a proxy such as nginx in front on ${port}), ` +
    `or give node the capability (\`setcap cap_net_bind_service=+ep ${process.execPath}\`, or \`AmbientCapabilities=CAP_NET_BIND_SERVICE\` in its systemd unit), ` +
    'or let systemd bind the port (socket activation: deploy/drover.socket)');
}

/** The lowest port any user may bind: the kernel's setting where it can be read, else Linux's default. */
function unprivilegedPortStart(): number {
  try {
    const n = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
    return Number.isInteger(n) && n >= 0 ? n : 1024;
  } catch {
    return 1024; // not Linux, or no /proc: the classic rule
  }
}

/** Puts the socket into LISTEN; resolves with a copy to accept through (null if none came). */
async function startListening(bound: RawHandle, backlog: number, addr: Addr, parent: ParentCopies | null): Promise<RawHandle | null> {
  const copies = parent ? await parent.echo(bound, 2).catch(() => null) : null;
  const [once, spare] = copies ?? [];
  if (!once?.listen || !spare) {
    once?.close();
    spare?.close();
    return listenThroughHelper(bound.fd, backlog, addr);
  }
  const err = once.listen(backlog);
  once.close();
  if (err !== 0) {
    spare.close();
    throw bindError(uvName(err), addr);
  }
  return spare;
}

async function listenThroughHelper(fd: number, backlog: number, addr: Addr): Promise<RawHandle | null> {
  const r = await runHelper(fd, String(backlog));
  if (r.code === 0) return r.copy;
  r.copy?.close();
  throw bindError(r.stderr || `helper exit ${r.code}`, addr);
}
