// Descriptors of a listening socket, moved between processes.
//
// Node 20 cannot stop libuv polling a listening handle except by closing it,
// and closing a handle closes its descriptor. So a process that pauses a
// listener (Listener.pause) closes the descriptor it polled, and to resume it
// needs a fresh descriptor for the same socket. Node has no dup(); the one
// way to get one is SCM_RIGHTS over an IPC channel, which child_process
// offers as `send(message, handle)` for raw TCP and Pipe handles ('net.Native'
// in lib/internal/child_process.js: sent as is, never closed by the sender,
// received as a bare handle). Two sources:
//
// - A child asks its parent over the drover channel it already has
//   (ParentCopies here, answerCopies in the parent, installed by spawn). The
//   parent sends the handle it holds without polling (listen.ts's bind-only
//   handle, or an inherited descriptor wrapped in a handle that is never
//   polled either): it accepts nothing and closes nothing.
// - A child that made a socket itself (listen.ts) sends it to its parent,
//   which sends it back as many times as asked and closes its own
//   (ParentCopies.echo): copies of a socket the parent never knew, for the
//   price of a message.
// - A process with no parent to ask (the arbiter, a process started by
//   systemd) runs a helper: a short-lived `node` that inherits the
//   descriptor and sends it back (runHelper). listen.ts's helper, which puts
//   a new socket into LISTEN, sends one copy back the same way, so the
//   creator's first accept needs no helper.
//
// The messages' `cmd` starts with NODE_: Node emits those as
// 'internalMessage' on both sides, never as 'message', so they never reach
// the program's channel (channel.ts) or its early-message queue (early.ts).
// Node routes its own handle protocol (NODE_HANDLE, NODE_HANDLE_ACK) the same
// way and cluster uses it for NODE_CLUSTER; it is documented as reserved
// for Node, and relied on here knowingly.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { OsError } from '../types.js';
import type { IpcChannel } from './channel.js';
import { codeOf, osError, uvName } from './errors.js';
import { TEST_RUN_VAR } from './plumbing.js';

/** A libuv TCP or Pipe handle as node:net keeps it (`server._handle`). */
export interface RawHandle {
  readonly fd: number;
  close(): void;
  getsockname?(out: { port?: number }): number;
  /** listen(2), and libuv's polling until close: a copy closed in the same tick never accepts. Returns 0 or a libuv error number. */
  listen?(backlog: number): number;
}

type CreateServerHandle = (
  address: string | null, port: number | null, addressType: number | null, fd?: number, flags?: number,
) => RawHandle | number;

/** net._createServerHandle: binds without listening (what node:cluster uses for SCHED_NONE), or wraps a descriptor. */
export const createServerHandle = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;

/** The child asks for a copy of its listener number `index` (its place in the spawn's `listeners`). */
const ASK = 'NODE_DROVER_LISTENER_ASK';
/** The child sends a handle and asks for `n` copies of it back. */
const ECHO = 'NODE_DROVER_LISTENER_ECHO';
/** The parent's answer (one per copy): `ok` with the handle attached, or an `error`. */
const GIVE = 'NODE_DROVER_LISTENER_GIVE';

interface Ask {
  readonly cmd: typeof ASK;
  readonly id: number;
  readonly index: number;
}

interface Echo {
  readonly cmd: typeof ECHO;
  readonly id: number;
  readonly n: number;
}

interface Give {
  readonly cmd: typeof GIVE;
  readonly id: number;
  readonly ok: boolean;
  readonly error?: string;
}

/**
 * A handle around a listening descriptor this process holds, without
 * polling it (net.Server's listen({fd}) does the same and then polls). It can
 * be sent to another process; closing it closes the descriptor. Throws
 * OsError when the descriptor is not a socket node:net can wrap.
 */
export function wrapFd(fd: number): RawHandle {
  if (typeof createServerHandle !== 'function') throw noCreateServerHandle();
  let h: RawHandle | number;
  try {
    h = createServerHandle(null, null, null, fd);
  } catch (e) {
    throw osError(codeOf(e), `descriptor ${fd} is not a listening socket: ${(e as Error).message}`);
  }
  if (typeof h === 'number') throw osError(uvName(h), `cannot wrap listening descriptor ${fd}`);
  return h;
}

export function noCreateServerHandle(): OsError {
  return new OsError('EINVAL', `this Node (${process.version}) has no net._createServerHandle; drover cannot hold a socket without accepting on it`);
}

// ------------------------------------------------------------------ helper

// fd 3 is the socket, fd 4 the IPC channel. It wraps fd 3 without polling it
// and sends the handle back ('net.Native'). Then, given a backlog, it puts
// the socket into LISTEN and exits from the 'listening' callback, which runs
// on process.nextTick before the loop's first poll: it never accepts a
// connection. Given 'copy', it just ends once the copy is written (a copy in
// flight survives its sender). A copy that cannot be sent does not fail a
// listen: the copy is only a convenience there.
const HELPER =
  `const net=require('net'),mode=process.argv[1];` +
  `const fail=(e)=>{process.stderr.write(String(e&&e.code||e&&e.message||e));process.exit(1)};` +
  `const h=net._createServerHandle(null,null,null,3);` +
  `if(typeof h==='number')fail(require('util').getSystemErrorName(h));` +
  `process.send('copy',h,(e)=>{if(mode==='copy'){if(e)fail(e);return}` +
  `const s=net.createServer();s.on('error',fail);s.listen({fd:3},Number(mode),()=>process.exit(0));});`;

export interface HelperResult {
  readonly code: number | null;
  readonly stderr: string;
  /** The copy the helper sent back; null when none arrived (this process had no descriptor free to receive it, say). */
  readonly copy: RawHandle | null;
}

/**
 * Runs the helper on `fd`: `mode` is a backlog (put the socket into LISTEN,
 * and send a copy back) or 'copy' (just send a copy back). Rejects only
 * when the helper cannot be started (EMFILE, EAGAIN, ...).
 */
export function runHelper(fd: number, mode: string): Promise<HelperResult> {
  // The helper lives for milliseconds: no coverage, no NODE_OPTIONS; only
  // the tag that lets the test suite find strays.
  const tag = process.env[TEST_RUN_VAR];
  const env: Record<string, string> = tag === undefined ? {} : { [TEST_RUN_VAR]: tag };
  return new Promise((resolve, reject) => {
    let helper: ChildProcess;
    try {
      helper = spawn(process.execPath, ['-e', HELPER, mode], { stdio: ['ignore', 'ignore', 'pipe', fd, 'ipc'], env, serialization: 'json' });
    } catch (e) {
      reject(osError(codeOf(e), `cannot start the listener helper: ${(e as Error).message}`));
      return;
    }
    let copy: RawHandle | null = null;
    let err = '';
    helper.on('message', (_m: unknown, h: unknown) => {
      const got = h as RawHandle | undefined;
      if (got && copy === null) copy = got;
      else got?.close();
    });
    helper.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    helper.once('error', (e) => {
      copy?.close();
      reject(osError(codeOf(e), `cannot start the listener helper: ${e.message}`));
    });
    helper.once('close', (code) => resolve({ code, stderr: err.trim(), copy }));
  });
}

/** A fresh descriptor for the socket behind `fd` (which this process holds), through the helper. */
export async function copyLocally(fd: number): Promise<RawHandle> {
  const r = await runHelper(fd, 'copy');
  if (r.code === 0 && r.copy !== null) return r.copy;
  r.copy?.close();
  if (r.code === 0) throw new OsError('EMFILE', 'the copy of the listening socket was lost on its way: no descriptor was free to receive it');
  throw osError(r.stderr || undefined, `the listener helper failed (exit ${r.code}${r.stderr ? `: ${r.stderr}` : ''})`);
}

// ------------------------------------------------------- from the parent

/** The part of `process` the child side uses. */
interface ChildEndpoint extends EventEmitter {
  send?(message: unknown, handle: unknown, callback: (err: Error | null) => void): boolean;
  send?(message: unknown, callback: (err: Error | null) => void): boolean;
}

interface Waiting {
  /** How many handles the answer brings (an echo's `n`, a copy's 1). */
  readonly want: number;
  readonly got: RawHandle[];
  resolve(h: RawHandle[]): void;
  reject(e: OsError): void;
}

const GONE = 'the parent is gone (channel closed)';

/** A child's side: asks its parent for copies of the listeners it was handed, or of a socket it made. */
export class ParentCopies {
  readonly #ep: ChildEndpoint;
  readonly #channel: IpcChannel;
  readonly #waiting = new Map<number, Waiting>();
  #next = 1;

  constructor(ep: ChildEndpoint, channel: IpcChannel) {
    this.#ep = ep;
    this.#channel = channel;
    ep.on('internalMessage', (m: unknown, handle: unknown) => this.#got(m, handle as RawHandle | undefined));
    channel.onDisconnect(() => {
      for (const id of [...this.#waiting.keys()]) this.#settle(id, new OsError('ENOTCONN', `${GONE}: no copy of the listening socket can come`));
    });
  }

  /** A fresh descriptor for listener `index`. Rejects with an OsError; never throws. */
  async copy(index: number): Promise<RawHandle> {
    const [h] = await this.#ask({ cmd: ASK, id: 0, index }, null, 1);
    return h!;
  }

  /**
   * `n` fresh descriptors for the socket behind `handle`, which this process
   * holds: the parent sends back what it receives, n times, and closes its
   * own. What a helper process would do (runHelper), for the price of a
   * message. Rejects with an OsError; never throws.
   */
  echo(handle: RawHandle, n: number): Promise<RawHandle[]> {
    return this.#ask({ cmd: ECHO, id: 0, n }, handle, n);
  }

  #ask(m: Ask | Echo, handle: RawHandle | null, want: number): Promise<RawHandle[]> {
    if (!this.#channel.connected || !this.#ep.send) {
      return Promise.reject(new OsError('ENOTCONN', `${GONE}: no copy of the listening socket can come`));
    }
    const id = this.#next++;
    const release = this.#channel.hold();
    const p = new Promise<RawHandle[]>((resolve, reject) => {
      this.#waiting.set(id, {
        want,
        got: [],
        resolve: (h) => (release(), resolve(h)),
        reject: (e) => (release(), reject(e)),
      });
    });
    const fail = (err: Error) => this.#settle(id, new OsError('ENOTCONN', `cannot ask the parent for a copy of the listening socket: ${err.message}`));
    try {
      const msg = { ...m, id };
      const done = (err: Error | null) => err && fail(err);
      if (handle) this.#ep.send(msg, handle, done);
      else this.#ep.send(msg, done);
    } catch (e) {
      fail(e as Error);
    }
    return p;
  }

  #got(m: unknown, handle: RawHandle | undefined): void {
    const msg = m as { cmd?: unknown; msg?: unknown } | null;
    if (msg === null || typeof msg !== 'object') return;
    if (msg.cmd === 'NODE_HANDLE') {
      // Node's envelope. Without a handle the descriptor was dropped on
      // receipt (MSG_CTRUNC: no descriptor free); Node then only NACKs, and
      // the answer inside never comes on its own.
      const inner = msg.msg as Give | null;
      if (!handle && inner !== null && typeof inner === 'object' && inner.cmd === GIVE) {
        this.#settle(inner.id, new OsError('EMFILE', 'the copy of the listening socket was lost on its way: no descriptor was free to receive it'));
      }
      return;
    }
    if (msg.cmd !== GIVE) return;
    const give = msg as Give;
    const w = this.#waiting.get(give.id);
    if (!w) {
      handle?.close();
      return;
    }
    if (give.ok && handle) {
      w.got.push(handle);
      if (w.got.length === w.want) this.#settle(give.id, w.got);
    } else {
      handle?.close();
      this.#settle(give.id, new OsError('EINVAL', `the parent has no copy of the listening socket to give: ${give.error ?? 'no handle came'}`));
    }
  }

  #settle(id: number, r: RawHandle[] | OsError): void {
    const w = this.#waiting.get(id);
    if (!w) {
      if (!(r instanceof OsError)) for (const h of r) h.close();
      return;
    }
    this.#waiting.delete(id);
    if (r instanceof OsError) {
      for (const h of w.got) h.close();
      w.reject(r);
    } else {
      w.resolve(r);
    }
  }
}

/** What the parent side needs of a listener: a handle it may send, or null when it holds none now. */
export interface Sendable {
  sendable(): RawHandle | null;
}

/**
 * The parent's side, installed by spawn for a program child with a channel:
 * answers the child's requests for copies of `listeners` (the spawn's, in
 * order), and echoes back a socket the child made (ParentCopies.echo). Never
 * throws: a child that is gone just gets nothing.
 */
export function answerCopies(cp: ChildProcess, listeners: readonly Sendable[]): void {
  cp.on('internalMessage', (m: unknown, h: unknown) => {
    const ask = m as Partial<Ask> & Partial<Echo> | null;
    if (ask === null || typeof ask !== 'object' || typeof ask.id !== 'number') return;
    if (ask.cmd === ECHO) echo(cp, ask.id, ask.n, h as RawHandle | undefined);
    else if (ask.cmd === ASK) give(cp, ask.id, ask.index, listeners);
  });
}

function give(cp: ChildProcess, id: number, index: unknown, listeners: readonly Sendable[]): void {
  const l = typeof index === 'number' ? listeners[index] : undefined;
  let handle: RawHandle | null = null;
  let error = l ? 'this process no longer holds it' : `no listener ${String(index)} was handed to this child`;
  try {
    handle = l ? l.sendable() : null;
  } catch (e) {
    error = (e as Error).message;
  }
  send(cp, id, handle, error, () => {});
}

/** Sends `handle` back `n` times (1 to 4), then closes it: it was received to be echoed, and is never polled here. */
function echo(cp: ChildProcess, id: number, n: unknown, handle: RawHandle | undefined): void {
  if (!handle) return; // dropped on receipt (no descriptor free): the child hears of it from Node's envelope
  const count = typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 4 ? n : 0;
  if (count === 0) {
    handle.close();
    send(cp, id, null, `asked for ${String(n)} copies (1-4)`, () => {});
    return;
  }
  let left = count;
  // A send still queued when the channel goes may never call back.
  const close = () => {
    if (left < 0) return;
    left = -1;
    cp.off('disconnect', close);
    handle.close();
  };
  cp.once('disconnect', close);
  const sent = () => {
    if (--left === 0) close();
  };
  for (let i = 0; i < count; i++) send(cp, id, handle, '', sent);
}

/** One answer: the handle, or the error when there is none. `after` runs once the send is done or has failed. */
function send(cp: ChildProcess, id: number, handle: RawHandle | null, error: string, after: () => void): void {
  if (!cp.connected) return after();
  const noop = (): void => {};
  // A send waits while an earlier handle is not acknowledged; if the handle
  // is closed meanwhile (the listener closed) the send fails, and the child
  // is told instead of waiting forever. A child that died just gets
  // nothing: the channel's 'disconnect' follows.
  const done = (err: Error | null): void => {
    after();
    if (!err || !handle || !cp.connected) return;
    try {
      cp.send({ cmd: GIVE, id, ok: false, error: `sending it failed: ${err.message}` } satisfies Give, noop);
    } catch {
      // the channel closed meanwhile
    }
  };
  try {
    if (handle) cp.send({ cmd: GIVE, id, ok: true } satisfies Give, handle as unknown as net.Server, done);
    else cp.send({ cmd: GIVE, id, ok: false, error } satisfies Give, done);
  } catch {
    after();
  }
}
