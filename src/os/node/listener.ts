// A listening socket held by this process: either the bind-only handle it
// created (listen.ts), or an fd its parent handed down at stdio index 3+i
// (or systemd, systemd.ts).
//
// Pausing. Node 20 cannot stop libuv polling a listening handle without
// closing it, and closing the handle closes the descriptor. So pause()
// closes the net.Server this process accepts with, and with it the
// descriptor it polled: from then on the kernel hands connections to the
// other processes that poll the socket, or keeps them in the backlog. A
// descriptor held without being polled never takes a connection, so the
// socket stays alive wherever one is held (the parent's, a spare copy).
// resume() polls a fresh descriptor for the same socket (handoff.ts):
// - a spare copy, when one is here (the creator's from listen.ts's helper,
//   or a copy that arrived after a new pause);
// - a child's inherited descriptor, the first time (it is polled directly,
//   as before pausing existed);
// - otherwise a copy asked of the parent over the drover channel, or, in a
//   process with no parent to ask (the creator, a systemd-started one, a
//   child without a channel), a copy from the helper, which inherits the
//   descriptor this process keeps unpolled.
// Until the copy arrives connections wait in the backlog (or go to the
// other acceptors) and the process is kept alive. If none can come (the
// parent is gone or no longer holds the socket, no descriptor is free) the
// listener stays paused and onError hears why.
//
// The creator's own bound handle is never polled: its first accept polls the
// spare copy, and later ones polled copies, so closing them (pause) never
// closes the socket nor unlinks a Unix socket's path; only close() does,
// through the bound handle (libuv unlinks the path when the handle that bound
// it closes, uv__pipe_close).

import * as fs from 'node:fs';
import * as net from 'node:net';
import { formatAddr, isUnix, OsError, type Addr, type Listener, type Stream } from '../types.js';
import { codeOf, osError } from './errors.js';
import { copyLocally, wrapFd, type RawHandle, type Sendable } from './handoff.js';

export type { RawHandle } from './handoff.js';

/** The net.Server internals used to adopt a Pipe handle (see poll). */
interface ServerInternals {
  _handle: RawHandle | null;
  _pipeName?: string;
  _listen2(address: null, port: number, addressType: number, backlog: number): void;
}

export interface ListenerSupply {
  /** A fresh descriptor from the parent (a child's listeners, when it has a channel). */
  readonly fromParent?: () => Promise<RawHandle>;
  /** A copy, unpolled, made with the socket (listen.ts): the first accept polls it. */
  readonly spare?: RawHandle | null;
}

export class NodeListener implements Listener, Sendable {
  readonly address: Addr;
  readonly backlog: number;
  /** Held, never polled: the creator's bound handle, or an inherited descriptor wrapped to be sent or copied. */
  #keep: RawHandle | null = null;
  /** An inherited descriptor, as it came (not wrapped, not polled yet). */
  #fd: number | null = null;
  /** A copy ready to be polled. */
  #spare: RawHandle | null;
  readonly #fromParent: (() => Promise<RawHandle>) | null;
  #server: net.Server | null = null;
  #onConnection: ((stream: Stream) => void) | null = null;
  #onError: ((err: OsError) => void) | null = null;
  #paused = false;
  #fetching = false;
  #closed = false;

  constructor(address: Addr, backlog: number, source: RawHandle | number, supply: ListenerSupply = {}) {
    this.address = address;
    this.backlog = backlog;
    if (typeof source === 'number') this.#fd = source;
    else this.#keep = source;
    this.#spare = supply.spare ?? null;
    this.#fromParent = supply.fromParent ?? null;
  }

  /** The descriptor a child receives: one this process holds now. */
  get fd(): number {
    if (this.#closed) throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is closed`);
    const fd = this.#keep?.fd ?? this.#fd ?? this.#spare?.fd ?? (this.#server as unknown as ServerInternals | null)?._handle?.fd;
    if (fd === undefined || fd < 0) {
      throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is paused in this process and holds no descriptor to hand down; resume it first`);
    }
    return fd;
  }

  /** A handle to send to a child that asks for a copy (handoff.ts), or null when this process holds none. */
  sendable(): RawHandle | null {
    if (this.#closed) return null;
    if (this.#keep === null && this.#fd !== null) {
      // Wrapped, never polled: from now on this process accepts through copies.
      this.#keep = wrapFd(this.#fd);
      this.#fd = null;
    }
    const polled = (this.#server as unknown as ServerInternals | null)?._handle ?? null;
    return this.#keep ?? this.#spare ?? polled;
  }

  accept(onConnection: (stream: Stream) => void, onError?: (err: OsError) => void): void {
    if (this.#closed) throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is closed`);
    if (this.#onConnection) throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is already accepting in this process`);
    this.#onConnection = onConnection;
    this.#onError = onError ?? null;
    if (!this.#paused) this.#start();
  }

  pause(): void {
    if (this.#closed || this.#paused) return;
    this.#paused = true;
    const server = this.#server;
    this.#server = null;
    // Closes the descriptor it polls: no connection comes here after this.
    server?.close();
  }

  resume(): void {
    if (this.#closed || !this.#paused) return;
    this.#paused = false;
    if (this.#onConnection) this.#start();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server?.close();
    this.#server = null;
    this.#spare?.close();
    this.#spare = null;
    // libuv unlinks a Unix socket's path when the handle that bound it
    // closes (uv__pipe_close): the creator's #keep. An inherited fd never does.
    if (this.#keep) this.#keep.close();
    else if (this.#fd !== null) fs.closeSync(this.#fd);
    this.#keep = null;
    this.#fd = null;
  }

  /** Poll something: a spare, the inherited descriptor, or a copy fetched now. */
  #start(): void {
    if (this.#server || this.#closed) return;
    const spare = this.#spare;
    if (spare) {
      this.#spare = null;
      this.#poll(spare);
      return;
    }
    if (this.#fd !== null && this.#keep === null && this.#fromParent) {
      // A child's first accept: its inherited descriptor, directly. Its
      // server's close closes it; copies come from the parent after that.
      const fd = this.#fd;
      this.#fd = null;
      this.#poll(fd);
      return;
    }
    if (this.#fetching) return; // the copy on its way will be polled
    this.#fetching = true;
    let copy: Promise<RawHandle>;
    try {
      copy = this.#copy();
    } catch (e) {
      copy = Promise.reject(e);
    }
    copy.then(
      (h) => {
        this.#fetching = false;
        if (this.#closed) h.close();
        else if (this.#paused || this.#server || !this.#onConnection) {
          // Kept for the next resume (it holds the socket, never takes a connection).
          if (this.#spare) h.close();
          else this.#spare = h;
        } else {
          this.#poll(h);
        }
      },
      (e: unknown) => {
        this.#fetching = false;
        if (this.#closed || this.#paused || this.#server) return;
        this.#paused = true;
        const err = e instanceof OsError ? e : osError(codeOf(e), String((e as Error)?.message ?? e));
        this.#report(new OsError(err.code, `cannot resume accepting on ${formatAddr(this.address)}; it stays paused: ${err.message.replace(/^\w+: /, '')}`));
      },
    );
  }

  /** A fresh descriptor: from the parent, or through the helper from the one this process keeps. */
  #copy(): Promise<RawHandle> {
    if (this.#fromParent) return this.#fromParent();
    if (this.#keep === null && this.#fd !== null) {
      this.#keep = wrapFd(this.#fd);
      this.#fd = null;
    }
    if (this.#keep === null) {
      return Promise.reject(new OsError('EINVAL', 'this process holds no descriptor for it and has no parent to ask'));
    }
    return copyLocally(this.#keep.fd);
  }

  #poll(src: RawHandle | number): void {
    const server = net.createServer({ noDelay: true }, this.#onConnection!);
    // accept(2) failures must not take a worker down. They come from inside
    // libuv's accept loop, which retries at once; a pause() from onError
    // ends it. EMFILE/ENFILE rarely get here: libuv keeps a reserve
    // descriptor and, when accept(2) fails for want of one, frees it and
    // accepts and closes every connection waiting in the backlog (their
    // clients see them closed), reporting nothing (uv__emfile_trick; seen
    // on Node 20 with a lowered RLIMIT_NOFILE). Only when that reserve is
    // gone does EMFILE come here. A process that wants its backlog left to
    // the others must pause before it runs out, not on EMFILE.
    server.on('error', (e) => {
      this.#report(osError(codeOf(e), `listener ${formatAddr(this.address)}: ${e.message}`));
    });
    if (typeof src === 'number') {
      // An inherited fd: node:net wraps it in a handle of the right kind.
      server.listen({ fd: src }, this.backlog);
    } else if (!isUnix(this.address)) {
      server.listen(src, this.backlog);
    } else {
      // listen(handle) accepts only TCP handles; given a Pipe it would wrap
      // the same fd in a second handle, and the fd would be closed twice.
      // node:cluster adopts handles this way.
      const s = server as unknown as ServerInternals;
      s._handle = src;
      s._pipeName = this.address.path;
      s._listen2(null, -1, -1, this.backlog);
    }
    this.#server = server;
  }

  #report(err: OsError): void {
    if (this.#onError) this.#onError(err);
    else process.stderr.write(`drover: ${err.message.replace(/^\w+: /, '')}\n`);
  }
}
