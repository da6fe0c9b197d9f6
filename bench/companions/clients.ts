// The clients of bench/companions: raw node:net, one request in flight, the
// same code against drover's control socket and against the peers, so that a
// difference between rows is the server's. Times are performance.now() ms,
// from the request's write (or the connect, for a fresh connection) to the
// newline that ends its reply.
import { connect, type Socket } from 'node:net';

const NL = 0x0a;

/** One persistent connection: ask() sends a line and resolves with the reply line. */
export class LineConn {
  private parts: Buffer[] = [];
  private waiting: { resolve: (r: { line: string; ms: number }) => void; reject: (e: Error) => void; t0: number } | null = null;
  private failed: Error | null = null;

  private constructor(private readonly s: Socket) {
    s.on('data', (chunk: Buffer) => this.data(chunk));
    const lost = (why: string) => {
      this.failed = new Error(`connection lost: ${why}`);
      this.waiting?.reject(this.failed);
      this.waiting = null;
    };
    s.on('error', (e) => lost(e.message));
    s.on('close', () => lost('closed'));
  }

  static open(path: string): Promise<LineConn> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new LineConn(s));
      });
    });
  }

  ask(line: string): Promise<{ line: string; ms: number }> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.waiting) return Promise.reject(new Error('one request at a time'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, t0: performance.now() };
      this.s.write(line);
    });
  }

  private data(chunk: Buffer): void {
    const nl = chunk.indexOf(NL);
    if (nl < 0) {
      this.parts.push(chunk);
      return;
    }
    const t1 = performance.now();
    this.parts.push(chunk.subarray(0, nl));
    const line = Buffer.concat(this.parts).toString('utf8');
    this.parts = nl + 1 < chunk.length ? [chunk.subarray(nl + 1)] : [];
    const w = this.waiting;
    this.waiting = null;
    if (w) w.resolve({ line, ms: t1 - w.t0 });
  }

  close(): void {
    this.s.destroy();
  }
}

/** A fresh connection for one request: connect, write, read the reply line, close. */
export function freshAsk(path: string, line: string): Promise<{ line: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const parts: Buffer[] = [];
    const s = connect(path);
    s.on('connect', () => s.write(line));
    s.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(NL);
      if (nl < 0) {
        parts.push(chunk);
        return;
      }
      const t1 = performance.now();
      parts.push(chunk.subarray(0, nl));
      s.destroy();
      resolve({ line: Buffer.concat(parts).toString('utf8'), ms: t1 - t0 });
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed without a reply')));
  });
}
