// A Channel over Node's IPC: `process` in a child, the ChildProcess in its
// parent. Both emit 'message' and 'disconnect' and expose the pipe as
// `.channel` with ref/unref.
//
// Liveness (the simulator implements the same rule): a connected channel
// keeps its process alive only while it has a message handler, or while a
// send is still being written. Node's own counting refs the pipe for
// 'disconnect' listeners too, and we always listen for 'disconnect'; an
// explicit ref()/unref() switches Node's counting off, so after every change
// the ref state is set here by hand.
//
// Messages that arrive before the first onMessage handler are kept and
// delivered, in order, once one is installed: a parent may send right after
// spawn, long before the child's program has loaded.
//
// The adapter's own messages (a listener's copy for Listener.resume, see
// handoff.ts) never pass through here: their `cmd` starts with NODE_, so
// Node emits them as 'internalMessage', never as 'message'.

import type { EventEmitter } from 'node:events';
import { CHANNEL_BACKLOG_MAX, type Channel } from '../types.js';

interface Pipe {
  ref(): void;
  unref(): void;
}

/** The part of `process` / `ChildProcess` a channel needs. */
export interface IpcEndpoint extends EventEmitter {
  readonly connected: boolean;
  readonly channel?: Pipe | null | undefined;
  send?(message: unknown, callback: (err: Error | null) => void): boolean;
  disconnect?(): void;
}

export class IpcChannel implements Channel {
  readonly #ep: IpcEndpoint;
  readonly #backlog: unknown[];
  #flushing = false;
  #warned = false;
  readonly #onMessage: ((message: unknown) => void)[] = [];
  readonly #onDisconnect: (() => void)[] = [];
  readonly #onPeerGone: (() => void)[] = [];
  #inFlight = 0;
  #holds = 0;
  #gone = false;
  #closedHere = false;
  #disconnectPending = false;

  constructor(ep: IpcEndpoint, early: unknown[] = []) {
    this.#ep = ep;
    this.#backlog = early;
    ep.on('message', (m: unknown) => this.#receive(m));
    ep.once('disconnect', () => {
      this.#gone = true;
      this.#sync();
      if (this.#flushing) this.#disconnectPending = true;
      else this.#disconnected();
    });
    this.#sync();
  }

  get connected(): boolean {
    return !this.#gone && this.#ep.connected;
  }

  /** True when the message was handed to the pipe; false once disconnected. */
  send(message: unknown): boolean {
    if (!this.connected || !this.#ep.send) return false;
    // A failed write (the peer just died) is reported by 'disconnect'.
    this.#ep.send(message, () => {
      this.#inFlight--;
      this.#sync();
    });
    // Counted only once send did not throw (a value JSON cannot carry).
    this.#inFlight++;
    this.#sync();
    return true;
  }

  /** Adds a handler; every handler sees every message. */
  onMessage(fn: (message: unknown) => void): void {
    this.#onMessage.push(fn);
    this.#sync();
    if (this.#backlog.length > 0 && !this.#flushing) {
      // Not inside this call: callbacks never run re-entrantly.
      this.#flushing = true;
      setImmediate(() => this.#flush());
    }
  }

  onDisconnect(fn: () => void): void {
    this.#onDisconnect.push(fn);
  }

  /**
   * Internal: keeps the process alive while the adapter waits for an answer
   * from the other end (a resume waiting for its descriptor), as a pending
   * send does. The returned function lets go (once).
   */
  hold(): () => void {
    this.#holds++;
    this.#sync();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#holds--;
      this.#sync();
    };
  }

  /** Internal: the other end went away (not our own close). */
  onPeerGone(fn: () => void): void {
    this.#onPeerGone.push(fn);
  }

  close(): void {
    if (!this.connected) return;
    this.#closedHere = true;
    this.#ep.disconnect?.();
  }

  #receive(m: unknown): void {
    if (this.#onMessage.length > 0 && !this.#flushing) {
      for (const fn of this.#onMessage) fn(m);
    } else if (this.#backlog.length < CHANNEL_BACKLOG_MAX) {
      this.#backlog.push(m);
    } else if (!this.#warned) {
      this.#warned = true;
      process.stderr.write(`drover: ${CHANNEL_BACKLOG_MAX} channel messages without a handler; dropping newer ones\n`);
    }
  }

  #flush(): void {
    try {
      while (this.#backlog.length > 0) {
        const m = this.#backlog.shift();
        for (const fn of this.#onMessage) fn(m);
      }
    } finally {
      // A throwing handler crashes the process as any callback would; if
      // something catches that, the rest is still delivered, in order.
      if (this.#backlog.length > 0) {
        setImmediate(() => this.#flush());
      } else {
        this.#flushing = false;
        if (this.#disconnectPending) {
          this.#disconnectPending = false;
          this.#disconnected();
        }
      }
    }
  }

  // Fires after every message that came before it.
  #disconnected(): void {
    for (const fn of this.#onDisconnect) fn();
    if (!this.#closedHere) for (const fn of this.#onPeerGone) fn();
  }

  #sync(): void {
    const pipe = this.#ep.channel;
    if (!pipe) return;
    if (this.connected && (this.#onMessage.length > 0 || this.#inFlight > 0 || this.#holds > 0)) pipe.ref();
    else pipe.unref();
  }
}
