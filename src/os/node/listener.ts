// A listening socket held by this process: either the bind-only handle it
// created (listen.ts), or an fd its parent handed down at stdio index 3+i.

import * as fs from 'node:fs';
import * as net from 'node:net';
import { formatAddr, isUnix, OsError, type Addr, type Listener, type Stream } from '../types.js';

/** A libuv TCP or Pipe handle as node:net keeps it (`server._handle`). */
export interface RawHandle {
  readonly fd: number;
  close(): void;
  getsockname?(out: { port?: number }): number;
}

/** The net.Server internals used to adopt a Pipe handle (see accept). */
interface ServerInternals {
  _handle: RawHandle | null;
  _pipeName?: string;
  _listen2(address: null, port: number, addressType: number, backlog: number): void;
}

export class NodeListener implements Listener {
  readonly address: Addr;
  readonly backlog: number;
  readonly #source: RawHandle | number;
  #server: net.Server | null = null;
  #closed = false;

  constructor(address: Addr, backlog: number, source: RawHandle | number) {
    this.address = address;
    this.backlog = backlog;
    this.#source = source;
  }

  /** The descriptor a child receives. */
  get fd(): number {
    if (this.#closed) throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is closed`);
    return typeof this.#source === 'number' ? this.#source : this.#source.fd;
  }

  accept(onConnection: (stream: Stream) => void): void {
    if (this.#closed) throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is closed`);
    if (this.#server) throw new OsError('EINVAL', `listener ${formatAddr(this.address)} is already accepting in this process`);
    const server = net.createServer({ noDelay: true }, onConnection);
    // accept(2) failures (EMFILE...) must not take a worker down.
    server.on('error', (e) => process.stderr.write(`drover: listener ${formatAddr(this.address)}: ${e.message}\n`));
    const src = this.#source;
    if (typeof src === 'number') {
      // An inherited fd: node:net wraps it in a handle of the right kind.
      server.listen({ fd: src }, this.backlog);
    } else if (!isUnix(this.address)) {
      // The creator's own handle, so that closing the server closes it.
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

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#server) this.#server.close();
    else if (typeof this.#source === 'number') fs.closeSync(this.#source);
    // libuv unlinks a Unix socket's path when the handle that bound it closes
    // (uv__pipe_close); an inherited fd never does.
    else this.#source.close();
  }
}
