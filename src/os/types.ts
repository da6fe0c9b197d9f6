// The OS interface. Everything in src/runtime reaches the world through one
// `Os` value; two implementations exist: the real one (src/os/node) and the
// simulated kernel (src/sim). Their shared semantics are pinned by the
// conformance suite in test/conformance, which runs against both.
//
// Conventions:
// - Times are milliseconds. `now()` is monotonic and machine-wide: values from
//   two processes on the same machine (or in the same simulation) compare.
// - Failures throw `OsError` (or, for file operations, an error carrying an
//   errno `code` such as ENOENT). Nothing fails silently.
// - Callbacks run on the process's own event loop, never re-entrantly inside
//   the call that caused them.

import type { Duplex, Readable } from 'node:stream';
import type { Hooks } from './hooks.js';

export type Signal =
  | 'SIGHUP'
  | 'SIGINT'
  | 'SIGQUIT'
  | 'SIGABRT'
  | 'SIGKILL'
  | 'SIGUSR1'
  | 'SIGUSR2'
  | 'SIGTERM'
  | 'SIGCHLD'
  | 'SIGTTIN'
  | 'SIGTTOU'
  | 'SIGWINCH';

export const SIGNALS: readonly Signal[] = [
  'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGABRT', 'SIGKILL', 'SIGUSR1', 'SIGUSR2',
  'SIGTERM', 'SIGCHLD', 'SIGTTIN', 'SIGTTOU', 'SIGWINCH',
];

/** What a signal does to a process that installed no handler. */
export const DEFAULT_ACTION: Readonly<Record<Signal, 'terminate' | 'ignore' | 'stop'>> = {
  SIGHUP: 'terminate',
  SIGINT: 'terminate',
  SIGQUIT: 'terminate',
  SIGABRT: 'terminate',
  SIGKILL: 'terminate',
  // Node opens the inspector on an unhandled USR1; drover's Node entry
  // installs a no-op handler instead, so USR1 never kills and never opens a
  // debugger port. The simulator matches.
  SIGUSR1: 'ignore',
  SIGUSR2: 'terminate',
  SIGTERM: 'terminate',
  SIGCHLD: 'ignore',
  // A stopped process runs nothing until it is killed; there is no SIGCONT
  // here because drover never stops a process on purpose.
  SIGTTIN: 'stop',
  SIGTTOU: 'stop',
  SIGWINCH: 'ignore',
};

export type Errno =
  | 'ESRCH'
  | 'ECHILD'
  | 'EINVAL'
  | 'EPERM'
  | 'ENOENT'
  | 'EEXIST'
  | 'EADDRINUSE'
  | 'ECONNREFUSED'
  | 'ECONNRESET'
  | 'EPIPE'
  | 'ENAMETOOLONG'
  | 'ENOTSOCK'
  | 'ENOTCONN'
  | 'EMFILE' // this process is out of file descriptors
  | 'ENFILE'; // the system is

/** An OS failure. `message` names the problem and, where there is one, the fix. */
export class OsError extends Error {
  readonly code: Errno;
  constructor(code: Errno, message: string) {
    super(`${code}: ${message}`);
    this.name = 'OsError';
    this.code = code;
  }
}

/** How a child ended. Exactly one of code and signal is non-null. */
export interface Exited {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: Signal | null;
}

export interface Cancel {
  cancel(): void;
}

export interface Timer extends Cancel {
  /** The timer no longer keeps the process alive on its own. */
  unref(): this;
}

// ---------------------------------------------------------------- programs

/**
 * A drover program: the body of a process. It runs with its own Os. The
 * process lives while the returned promise is pending *or* it holds
 * something that keeps an event loop alive (a ref'd timer, an accepting
 * listener, an open stream, a running child) and exits 0 when neither is
 * true, like a Node process whose loop went empty. A throw or rejection
 * exits 1.
 */
export type ProgramFn = (os: Os, args: readonly string[]) => void | Promise<void>;

/**
 * A module's table of programs. `url` is the module's own `import.meta.url`:
 * the Node adapter starts a fresh `node` process that imports it, the
 * simulator calls the functions directly.
 */
export interface ProgramRegistry {
  readonly url: string;
  readonly programs: Readonly<Record<string, ProgramFn>>;
  /**
   * A process entry in one file, when there is one: the Node adapter's entry
   * and this module's graph bundled (`npm run build`), which it starts in
   * place of its entry when the file exists. Loading one file instead of
   * dozens of modules is most of what a worker's boot costs drover.
   */
  readonly entry?: string;
}

export function programs(url: string, table: Record<string, ProgramFn>, opts: { entry?: string } = {}): ProgramRegistry {
  return opts.entry === undefined ? { url, programs: table } : { url, programs: table, entry: opts.entry };
}

/**
 * Where a child's stdout or stderr goes.
 *
 * 'pipe': the parent reads it as Child.stdout / Child.stderr. On Node 20
 * (Linux) the pipe is a Unix socketpair made by libuv, and a Node child's
 * writes to it never block: what the socket cannot take yet waits in the
 * child's memory. Hence:
 * - Bytes arrive in write order; chunk boundaries are not kept. Writers
 *   sharing a pipe (stdout and stderr with `stderr: 'stdout'`, a grandchild
 *   that inherited it) interleave as they wrote, while the socket has room.
 * - EOF ('end') comes when the last process holding the write end has
 *   exited (a grandchild spawned with 'inherit' holds it), never earlier.
 * - The reading end keeps the parent alive until EOF or until the parent
 *   destroys it, and not after, read or not: libuv reads until EOF (and
 *   pauses while 16 KiB sit unread, letting go meanwhile).
 * - Attach the reader at spawn: when the parent learns of the exit, Node
 *   resumes the stream (its flushStdio) and what nobody listens for is lost.
 * - Capacity: unread, the socket takes about 200 writes or 90 KiB (its
 *   default 208 KiB send buffer is charged per write: 278 writes of 10
 *   bytes, 93 of 1 KiB), and while the parent's loop runs Node reads 16 KiB more into
 *   the stream unasked. Within that a parent that never reads does not hold
 *   the child up; beyond it, a child that returns waits for a reader.
 * - A child that dies: what the socket took is delivered, what still waited
 *   in the child's memory dies with it, on os.exit() as on SIGKILL. A child
 *   that returns (its loop went empty) waits for its queue and loses
 *   nothing. The simulator has no capacity: it delivers everything written
 *   before the death.
 * - A write to a pipe whose reading end is closed (destroyed, or its reader
 *   died): a drover program (SpawnProgram) lives on, and that stream of its
 *   drops every write from then on and says why (Writer.lost); the server's
 *   processes all write to the arbiter's stderr, and one reader that went
 *   away (`| head`, a killed `| tee`) must not take the server down. A
 *   command (SpawnCommand) is not drover's: a Node one dies of EPIPE, exit
 *   1, as Node's unhandled 'error' on process.stdout does, another usually
 *   of SIGPIPE, which waitpid reports as code 141.
 */
export type StdioTarget =
  | 'inherit' // the parent's own stream
  | 'ignore'
  | 'pipe' // a pipe the parent reads: Child.stdout / Child.stderr
  | { readonly file: string }; // opened in append mode

export interface SpawnCommon {
  readonly env?: Readonly<Record<string, string>>; // the whole environment; default: the parent's
  readonly cwd?: string;
  readonly stdout?: StdioTarget; // default 'inherit'
  readonly stderr?: StdioTarget | 'stdout'; // default 'inherit'
  /** Start the child as leader of a new process group (pgid = its pid). */
  readonly newGroup?: boolean;
  /** Listening sockets the child receives; it sees them as `os.listeners`, in this order. */
  readonly listeners?: readonly Listener[];
  /**
   * Ask the OS to signal the child when this process dies (setpriv
   * --pdeathsig on Linux). Unlike the child's own setParentDeathSignal, it
   * is delivered by the kernel, so it reaches a child whose event loop is
   * blocked too (a SIGKILL then ends it whatever it is doing). Where the OS
   * cannot, the child watches for itself, as setParentDeathSignal does.
   */
  readonly parentDeathSignal?: Signal;
}

export interface SpawnProgram extends SpawnCommon {
  /** Name of a program in one of the Os's registries. */
  readonly program: string;
  readonly args?: readonly string[];
  /** Open a message channel between parent and child (default true). */
  readonly channel?: boolean;
}

export interface SpawnCommand extends SpawnCommon {
  /** An argv command, run directly (no shell). In the simulator argv[0] names a registered program. */
  readonly command: readonly string[];
}

export type SpawnSpec = SpawnProgram | SpawnCommand;

export interface Child {
  readonly pid: number;
  /** The message channel to the child, when one was asked for. */
  readonly channel: Channel | null;
  /**
   * The reading ends of the child's pipes: non-null exactly when that target
   * was 'pipe'. With `stderr: 'stdout'` and stdout 'pipe', both go into
   * `stdout` (interleaved as written) and `stderr` is null. See StdioTarget.
   */
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

// ----------------------------------------------------------------- channels

/**
 * Messages a channel keeps for its first message handler (a parent may send
 * right after spawn, before the child's program has run), at most; newer
 * ones are dropped. Both Os implementations keep them.
 */
export const CHANNEL_BACKLOG_MAX = 10_000;

/**
 * A message pipe between a parent and a child. Messages are JSON values,
 * delivered in order, copied (never shared). After the other end dies or
 * closes, `disconnect` fires once and `send` returns false.
 */
export interface Channel {
  send(message: unknown): boolean;
  onMessage(fn: (message: unknown) => void): void;
  onDisconnect(fn: () => void): void;
  readonly connected: boolean;
  close(): void;
}

// ------------------------------------------------------------------ sockets

export interface TcpAddr {
  readonly host: string; // '127.0.0.1', '::1', '0.0.0.0'
  readonly port: number; // 0 picks a free port
}

export interface UnixAddr {
  readonly path: string;
}

export type Addr = TcpAddr | UnixAddr;

export interface ListenOptions {
  /** Mode of a Unix socket file, applied at creation (no chmod race). Default 0o600. */
  readonly mode?: number;
  readonly backlog?: number; // default 511
}

/** Longest Unix socket path accepted, in bytes (sun_path is 108 with its NUL on Linux). */
export const UNIX_PATH_MAX = 107;

/**
 * A listening socket. It is listening when `listen` resolves, and lives as
 * long as some process holds it (its creator or a child it was handed to).
 * A process that calls `accept` takes connections from it; one that does not
 * never consumes a connection, so a parent can keep the socket open across
 * generations of children while accepting nothing itself. Connections made
 * while nobody accepts wait in the backlog (connect succeeds).
 */
export interface Listener {
  readonly address: Addr; // the bound address; a TCP port 0 is resolved to the real one
  /**
   * Start taking connections in this process. At most once per process.
   * `onError` receives what goes wrong with taking connections as an
   * OsError: accept(2) failures (EMFILE, ENFILE, ...) and a resume() that
   * could not be carried out (the listener is then paused again). Without
   * it they are written to stderr and nothing else happens. It may be
   * called from inside the failing accept; pausing there is allowed. On the
   * real OS, EMFILE seldom arrives: libuv meets it by accepting and closing
   * every waiting connection (src/os/node/listener.ts). To leave them to the
   * other acceptors, pause before running out of descriptors.
   */
  accept(onConnection: (stream: Stream) => void, onError?: (err: OsError) => void): void;
  /**
   * Stop taking connections in this process; they wait in the backlog for
   * another acceptor or for resume(). Idempotent. The socket stays held
   * (other processes and a later resume() still use it). A paused listener
   * does not keep its process alive. May come before accept (which then
   * waits for resume). After close, nothing.
   */
  pause(): void;
  /**
   * Take connections again after pause(). Idempotent. Connections that
   * waited are accepted. On the real OS it may take a moment (a fresh
   * descriptor comes from the parent, see src/os/node/listener.ts), during
   * which the process is kept alive; if it cannot be done the listener stays
   * paused and onError is told. After close, nothing.
   */
  resume(): void;
  /**
   * Stop accepting and release this process's hold; the socket stays open
   * for the other holders. The creator's close unlinks a Unix socket's path;
   * a creator that dies without closing leaves the path behind (stale: the
   * next listen on it replaces it).
   */
  close(): void;
}

/**
 * A connected byte stream (TCP or Unix). It is a Node Duplex with the part of
 * net.Socket's surface that node:http uses, so that Node's own HTTP server
 * and client run over it unchanged: `httpServer.emit('connection', stream)`,
 * `http.request({ createConnection: (opts, cb) => ... })`. Never pass
 * `agent: false` with createConnection: Node then builds a default Agent that
 * ignores it and dials the real network.
 */
export interface Stream extends Duplex {
  /** Emit 'timeout' after `ms` of no reads or writes (0 disables); `cb` is added as a 'timeout' listener. */
  setTimeout(ms: number, cb?: () => void): this;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  /** Bytes received so far (net.Socket's count: it moves even while node:http's parser consumes the socket natively). */
  readonly bytesRead: number;
  /** The idle timeout last set, in ms (node:http's Agent reads it). */
  readonly timeout?: number | undefined;
  /** An unref'd stream does not keep its process alive. */
  ref(): this;
  unref(): this;
  /** Peer and local addresses: IPs for TCP, undefined for Unix sockets (as in Node). */
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

// -------------------------------------------------------------------- files

export interface Stat {
  readonly size: number;
  readonly mode: number; // permission bits and file type, as in stat(2)
  readonly uid: number; // the owner
  isFile(): boolean;
  isDirectory(): boolean;
  isSocket(): boolean;
  isSymbolicLink(): boolean; // only from lstat
}

/**
 * The file operations drover needs, synchronous, on paths. Errors carry the
 * errno as `code` (ENOENT, EEXIST, ...). File descriptors are the process's
 * own small integers.
 */
export interface Fs {
  /** flags: 'r' read, 'w' truncate/create, 'a' append/create, 'wx' exclusive create (O_EXCL: fails with EEXIST on any existing name, a symlink included, so it never follows one). */
  open(path: string, flags: 'r' | 'w' | 'a' | 'wx', mode?: number): number;
  write(fd: number, data: string | Uint8Array): number;
  close(fd: number): void;
  readFile(path: string): string;
  writeFile(path: string, data: string, mode?: number): void;
  appendFile(path: string, data: string): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  chmod(path: string, mode: number): void;
  stat(path: string): Stat;
  /** As stat, of a symlink itself rather than what it points at. */
  lstat(path: string): Stat;
  symlink(target: string, path: string): void;
  exists(path: string): boolean;
  mkdir(path: string, opts?: { recursive?: boolean; mode?: number }): void;
  readdir(path: string): string[];
  rmdir(path: string, opts?: { recursive?: boolean }): void;
}

export interface Writer {
  write(text: string): void;
  /**
   * Bytes written and not yet taken by the OS. Node queues what a pipe
   * cannot take yet in this process's memory, without bound: a writer that
   * may outrun a slow reader checks this. 0 for a file or a terminal
   * (written at once), and always in the simulator (no pipe capacity).
   */
  backlog(): number;
  /**
   * Null while the stream takes writes. Once it broke (EPIPE: its reader is
   * gone), why, e.g. "EPIPE: its reader is gone": the process lives on, and
   * this stream drops every write from then on (backlog() is 0). Nothing
   * says so by itself: the stream is where it would be said.
   */
  lost(): string | null;
}

// ----------------------------------------------------------------------- os

export interface Os {
  readonly pid: number;
  /** The real user id this process runs as (who owns what it creates). */
  readonly uid: number;
  /** Live: after the parent dies it is no longer the old parent's pid (1 or a subreaper). */
  ppid(): number;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  cwd(): string;
  /** What a simulation watches from inside, and its planted defects (hooks.ts); NO_HOOKS on the real OS. */
  readonly hooks: Hooks;

  // time
  /** Monotonic, machine-wide milliseconds. */
  now(): number;
  /** Epoch milliseconds, for logs only. */
  wallTime(): number;
  sleep(ms: number): Promise<void>;
  timer(ms: number, fn: () => void): Timer;
  /** Hold this process's event loop for `ms` of CPU time (simulated apps and benchmarks). */
  burn(ms: number): void;
  /**
   * Milliseconds this process's event loop has spent busy, cumulative (Node's
   * event-loop utilization; the simulator counts burn time). A worker's load
   * over an interval is the difference over the interval's length.
   */
  loopBusy(): number;
  /** Uniform in [0, 1). Seeded in the simulator. */
  random(): number;
  /** Bytes of resident memory this process holds (Node's rss; the simulator's own count). */
  rss(): number;
  /** What `ps` and `top` show for this process ("drover: worker gen 2 [app.js]"). */
  setTitle(title: string): void;
  /**
   * What `ps` shows for a running process: the title it set, else its
   * command line. null when it cannot be told: no such process, a zombie,
   * no /proc (not Linux), or hidden from this user (hidepid).
   */
  titleOf(pid: number): string | null;
  /**
   * Waits for work the host does outside the Os — a dynamic import(), say.
   * On the real OS it is just the promise. In the simulator virtual time
   * stands still until it settles, so host latency never turns into
   * simulated time (a worker's app import must not look like a slow boot).
   */
  hostWork<T>(work: Promise<T>): Promise<T>;
  /**
   * The module at `path` (an app, a companion module), imported as Node's
   * import() does and kept like Node's cache: a failed import is tried again
   * next time. In the simulator `path` is a simulated path: the kernel's
   * `mounts` say which host directory stands behind it (unmounted paths are
   * host paths), so a trace names no path of the host's; and virtual time
   * stands still while it loads, as for hostWork.
   */
  importModule(path: string): Promise<Record<string, unknown>>;

  // processes
  /** Throws OsError ENOENT when the program or command does not exist. */
  spawn(spec: SpawnSpec): Child;
  /** pid < 0 signals the process group -pid. Throws ESRCH when nobody is there. A zombie is there. */
  kill(pid: number, sig: Signal): void;
  /** Whether a process with this pid is running (a zombie is not): kill(pid, 0), for pidfile checks. */
  alive(pid: number): boolean;
  /** Non-blocking wait. pid -1 = any child. null: children exist, none exited. Throws ECHILD without such children. */
  waitpid(pid: number): Exited | null;
  /** Install (fn), or restore the default action (null). One handler per signal. SIGKILL throws EINVAL. */
  onSignal(sig: Signal, fn: (() => void) | null): void;
  /** Ends the process now. */
  exit(code: number): never;
  /** Deliver `sig` to this process when its parent dies. Returns whether it is armed. */
  setParentDeathSignal(sig: Signal): boolean;
  /** The message channel to the parent, when the parent opened one. */
  readonly channel: Channel | null;

  // sockets
  /**
   * Bind and listen. Errors: EADDRINUSE (port taken, or a live Unix socket at
   * the path), ENAMETOOLONG (Unix path over UNIX_PATH_MAX bytes), EEXIST (a
   * file that is not a socket is at the path). A stale Unix socket (nobody
   * listening) is replaced.
   */
  listen(addr: Addr, opts?: ListenOptions): Promise<Listener>;
  /** The listening sockets handed to this process by its parent, in spawn order. */
  readonly listeners: readonly Listener[];
  connect(addr: Addr): Promise<Stream>;

  // files and output
  readonly fs: Fs;
  readonly stdout: Writer;
  readonly stderr: Writer;
}

export function isUnix(addr: Addr): addr is UnixAddr {
  return (addr as UnixAddr).path !== undefined;
}

export function formatAddr(addr: Addr): string {
  if (isUnix(addr)) return `unix:${addr.path}`;
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
