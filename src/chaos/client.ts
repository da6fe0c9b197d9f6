// The chaos load's HTTP client: GET requests written as bytes, answers
// parsed as they arrive. It is the harness, not drover — the workers still
// run node:http's server — and node:http's client, its Agent and its second
// parser were the largest single cost of a simulated request. Reading every
// byte itself, it also sees an answer that comes for no request (something
// answered twice) at the moment it arrives.
import { Buffer } from 'node:buffer';
import { assert } from '../os/assert.js';
import type { Stream } from '../os/types.js';

/**
 * How a request ended: an answer, or the connection going first. Of an
 * answer's body only its length and its first KEPT bytes are kept: what the
 * checks read (the chaos app's `ID VERSION PID`, the start of an error
 * page); copying whole answers of up to a MiB into one buffer took 2% of a
 * reference run (bench/sim's, profiled).
 */
export type Outcome = { readonly status: number; readonly body: Buffer; readonly length: number } | { readonly reset: string };

/** How many bytes of an answer's body an Outcome keeps. */
export const KEPT = 512;

export interface Exchange {
  /** The connection is up and the request written. */
  sent?(): void;
  /** The answer's head arrived. */
  head?(status: number): void;
  end(o: Outcome): void;
}

// A chunked body: `left` bytes of the current chunk to come, then its CRLF
// (`crlf`); or a size line; after the last chunk, trailer lines (`trailers`).
type Chunked = { kind: 'chunked'; left: number; size: number; crlf: boolean; trailers: boolean };
type Body = { kind: 'length'; left: number } | Chunked | { kind: 'close' };

const EMPTY = Buffer.alloc(0);

/**
 * One client connection, one request at a time (no pipelining, as browsers
 * and node:http's Agent do). `wrong` is told, once, of what no correct
 * server sends: an answer while no request waits for one, or a body whose
 * framing is broken. The connection is dropped after it.
 */
export class Conn {
  private stream: Stream | null = null;
  /** Bytes not yet taken: a partial head or size line (a body's bytes are taken as they come). */
  private buf: Buffer = EMPTY;
  private current: Exchange | null = null;
  private unsent: string | Buffer | null = null;
  private status = 0;
  private body: Body | null = null; // null: reading a head
  /** The body's first bytes (up to KEPT), as the slices of the chunks they came in. */
  private parts: Buffer[] = [];
  /** The body's bytes so far: those in `parts`, and those past KEPT, counted only. */
  private got = 0;
  /** No further request goes on it: either side said Connection: close, or it is gone. */
  done = false;
  private destroyed = false;
  /** The connection failed (a reset): a body read until close is then cut short, not whole. */
  private failed = false;

  private pauseMs = 0;
  /** An answer to HEAD has no body, whatever its content-length says. */
  private head = false;

  constructor(
    connecting: Promise<Stream>,
    private readonly wrong: (what: string) => void,
    /** The simulated process's timer, for clients that stop reading a while. */
    private readonly timer: (ms: number, fn: () => void) => void = () => {},
  ) {
    connecting.then(
      (s) => {
        if (this.destroyed) {
          s.destroy();
          return;
        }
        this.stream = s;
        s.on('data', (d: Buffer) => this.data(d));
        s.on('error', () => (this.failed = true)); // 'close' follows
        s.on('close', () => this.gone('connection closed'));
        if (this.unsent !== null) this.write(this.unsent);
      },
      (e: { code?: string }) => this.gone(`connect failed: ${e.code ?? String(e)}`),
    );
  }

  get idle(): boolean {
    return this.current === null && !this.done;
  }

  /** A request is waiting for its answer. */
  get busy(): boolean {
    return this.current !== null;
  }

  /** `pauseMs` > 0: a slow reader, which stops reading that long once the answer's head has come. */
  get(path: string, keepAlive: boolean, x: Exchange, pauseMs = 0): void {
    this.request('GET', path, '', null, keepAlive, x, pauseMs);
  }

  /** Any request: `headers` are whole lines ("name: value\r\n" each), `body` goes with a content-length. */
  request(method: string, path: string, headers: string, body: Buffer | null, keepAlive: boolean, x: Exchange, pauseMs = 0): void {
    if (this.current !== null || this.done) throw new Error('Conn.request: the connection is busy or done');
    this.current = x;
    this.pauseMs = pauseMs;
    this.head = method === 'HEAD';
    const length = body === null ? '' : `content-length: ${body.length}\r\n`;
    const head = `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n${headers}${length}connection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`;
    const req = body === null || body.length === 0 ? head : Buffer.concat([Buffer.from(head, 'latin1'), body]);
    if (!keepAlive) this.done = true;
    if (this.stream === null) this.unsent = req;
    else this.write(req);
  }

  destroy(): void {
    this.done = true;
    this.destroyed = true;
    this.stream?.destroy();
    if (this.stream === null) this.gone('destroyed before it connected');
  }

  private write(req: string | Buffer): void {
    this.unsent = null;
    this.stream!.write(req);
    this.current?.sent?.();
  }

  private data(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.body === null) {
        if (!this.readHead()) return;
        if (this.body === null) continue; // an interim answer
      }
      if (!this.readBody()) return;
      this.finish();
    }
  }

  private readHead(): boolean {
    const i = this.buf.indexOf('\r\n\r\n');
    if (i < 0) return false;
    const head = this.buf.toString('latin1', 0, i);
    this.buf = this.buf.subarray(i + 4);
    if (this.current === null) return this.broken(`an answer for no request: ${JSON.stringify(head.slice(0, 60))}`);
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    this.status = status ? Number(status[1]) : 0;
    // An interim answer (100 Continue, 103 Early Hints): the real one follows.
    if (this.status >= 100 && this.status < 200) return true;
    let length = -1;
    let chunked = false;
    for (const line of head.split('\r\n')) {
      const c = line.indexOf(':');
      if (c < 0) continue;
      const name = line.slice(0, c).toLowerCase();
      const value = line.slice(c + 1).trim().toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.endsWith('chunked');
      else if (name === 'connection' && value === 'close') this.done = true;
    }
    // RFC 9112 6.3: no body for 204, 304 and an answer to HEAD; Transfer-Encoding overrides Content-Length.
    this.body =
      this.status === 204 || this.status === 304 || this.head ? { kind: 'length', left: 0 }
      : chunked ? { kind: 'chunked', left: 0, size: 0, crlf: false, trailers: false }
      : length >= 0 ? { kind: 'length', left: length }
      : { kind: 'close' };
    this.parts = [];
    this.got = 0;
    this.current.head?.(this.status);
    if (this.pauseMs > 0 && this.stream !== null) {
      const s = this.stream;
      s.pause();
      this.timer(this.pauseMs, () => s.resume());
      this.pauseMs = 0;
    }
    return true;
  }

  /** Moves the first `n` bytes of what is buffered into the body. */
  private take(n: number): void {
    if (n === 0) return;
    if (this.got < KEPT) this.parts.push(this.buf.subarray(0, Math.min(n, KEPT - this.got)));
    this.got += n;
    this.buf = this.buf.subarray(n);
  }

  /** True once the body is whole. */
  private readBody(): boolean {
    const b = this.body!;
    if (b.kind === 'close') {
      this.take(this.buf.length);
      return false;
    }
    if (b.kind === 'length') {
      const n = Math.min(b.left, this.buf.length);
      this.take(n);
      b.left -= n;
      return b.left === 0;
    }
    return this.readChunked(b);
  }

  private readChunked(b: Chunked): boolean {
    for (;;) {
      if (b.left > 0) {
        const n = Math.min(b.left, this.buf.length);
        this.take(n);
        b.left -= n;
        if (b.left > 0) return false;
        b.crlf = true;
      }
      if (b.crlf) {
        if (this.buf.length < 2) return false;
        if (this.buf[0] !== 13 || this.buf[1] !== 10) return this.broken(`a chunk of ${b.size} bytes not followed by CRLF`);
        this.buf = this.buf.subarray(2);
        b.crlf = false;
      }
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return false;
      const line = this.buf.toString('latin1', 0, eol);
      this.buf = this.buf.subarray(eol + 2);
      if (b.trailers) {
        if (line === '') return true; // the empty line after the trailers
        continue;
      }
      if (!/^[0-9a-f]+(;.*)?$/i.test(line)) return this.broken(`a chunk size line ${JSON.stringify(line.slice(0, 20))}`);
      const size = parseInt(line, 16);
      if (size === 0) b.trailers = true;
      else b.left = b.size = size;
    }
  }

  /** Reported once; what the connection carries after it is noise. */
  private broken(what: string): false {
    this.buf = EMPTY;
    if (!this.destroyed) this.wrong(what);
    this.destroy();
    return false;
  }

  private finish(): void {
    const x = this.current!;
    this.current = null;
    this.body = null;
    const body = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    assert(body.length === Math.min(this.got, KEPT), 'Conn: an answer keeps the first KEPT bytes of its body');
    this.parts = [];
    x.end({ status: this.status, body, length: this.got });
  }

  private gone(why: string): void {
    this.done = true;
    const x = this.current;
    if (x === null) return;
    // A body without a length ends with the connection: whole if the server closed it, cut short by a reset or our own destroy.
    if (this.body?.kind === 'close' && !this.failed && !this.destroyed) this.finish();
    else {
      this.current = null;
      this.body = null;
      x.end({ reset: why });
    }
  }
}
