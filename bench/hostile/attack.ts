// The hostile clients of bench/hostile, all in one process (attacker.ts runs
// them in a child of the benchmark, so that their thousands of sockets do not
// share an event loop with the fast load they are measured beside).
//
// Three kinds, each a fixed number of connections kept open for the whole
// attack: a connection the server closes is opened again (after 100-200 ms;
// 1 s if it lived under a second, or never connected, so that a server that
// refuses is not hammered), so that the pressure stays constant.
//
//   slowloris   `GET / HTTP/1.1\r\nHost: x\r\n`, then one more byte of header
//               (`X-a: b\r\n`, over and over) every `slowlorisEveryMs`: the
//               head is never finished
//   uploads     `POST /upload` with `Content-Length` 1 MiB, then
//               `uploadChunk` bytes of body every `uploadEveryMs`: the body is
//               never finished
//   nonreaders  `GET /big` (a 4 MiB answer), and the socket paused at once:
//               the answer is never read. To notice that the server closed
//               such a connection (its FIN waits behind the unread answer),
//               each sends `\r\n` every `probeMs`: bytes between two requests,
//               which HTTP/1.1 parsers skip, and which a closed socket answers
//               with a reset, so the next probe fails.
//
// Connections are opened at most MAX_CONNECTING at a time, so that the ramp
// does not overflow the server's backlog with SYNs; one 100 ms ticker paces
// every connection's bytes, each connection in its own phase of its period.
import { connect, type Socket } from 'node:net';

export type AttackKind = 'slowloris' | 'uploads' | 'nonreaders';
export const KINDS: readonly AttackKind[] = ['slowloris', 'uploads', 'nonreaders'];

export interface AttackSpec {
  port: number;
  counts: Readonly<Record<AttackKind, number>>;
  /** ms between two header bytes of a slowloris connection */
  slowlorisEveryMs: number;
  /** ms between two pieces of an upload's body */
  uploadEveryMs: number;
  /** bytes per piece */
  uploadChunk: number;
  /** the Content-Length an upload promises */
  uploadLength: number;
  /** ms between two probes of a non-reader */
  probeMs: number;
}

export interface KindStats {
  readonly target: number;
  /** connected now (from this side: a connection the server's kernel completed but no worker accepted counts too) */
  readonly open: number;
  /** connects under way now */
  readonly connecting: number;
  /** the most open at once */
  readonly maxOpen: number;
  /** connections established since the start */
  readonly connects: number;
  /** connects that failed, by error code */
  readonly connectFailed: Readonly<Record<string, number>>;
  /** established connections that ended without this side asking, by how: `HTTP nnn` (an answer came; we then close), `closed` (FIN), or an error code */
  readonly ended: Readonly<Record<string, number>>;
  /** how long the connections that ended had been open, ms: median and max (null: none ended) */
  readonly lifeP50Ms: number | null;
  readonly lifeMaxMs: number | null;
  /** bytes written after the request line and headers sent at connect (header bytes, body bytes, probes) */
  readonly trickled: number;
}

export type AttackStats = Readonly<Record<AttackKind, KindStats>>;

const MAX_CONNECTING = 256;
const TICK_MS = 100;
const SLOWLORIS_HEAD = 'GET / HTTP/1.1\r\nHost: x\r\n';
const SLOWLORIS_MORE = Buffer.from('X-a: b\r\n');
const NONREADER_REQUEST = 'GET /big HTTP/1.1\r\nHost: x\r\n\r\n';
const PROBE = Buffer.from('\r\n');
const STATUS = /^HTTP\/1\.[01] (\d{3})/;

interface Slot {
  readonly kind: AttackKind;
  /** its place among its kind: decides its phase in the ticker */
  readonly index: number;
  sock: Socket | null;
  openedAt: number;
  /** bytes trickled on this connection */
  sent: number;
  /** set when this side closes it (an answer came, or the attack stops): not counted as ended by the server */
  closing: boolean;
  /** the status line of an answer that came on it (then this side closes it) */
  answered: string | undefined;
}

class Counter {
  open = 0;
  connecting = 0;
  maxOpen = 0;
  connects = 0;
  trickled = 0;
  readonly connectFailed: Record<string, number> = {};
  readonly ended: Record<string, number> = {};
  readonly lives: number[] = [];
  constructor(readonly target: number) {}

  stats(): KindStats {
    const lives = [...this.lives].sort((a, b) => a - b);
    return {
      target: this.target,
      open: this.open,
      connecting: this.connecting,
      maxOpen: this.maxOpen,
      connects: this.connects,
      connectFailed: { ...this.connectFailed },
      ended: { ...this.ended },
      lifeP50Ms: lives.length === 0 ? null : lives[Math.floor((lives.length - 1) / 2)]!,
      lifeMaxMs: lives.length === 0 ? null : lives[lives.length - 1]!,
      trickled: this.trickled,
    };
  }
}

const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

export class Attack {
  private readonly slots: Slot[] = [];
  private readonly counters: Record<AttackKind, Counter>;
  private readonly queue: Slot[] = [];
  private queueHead = 0;
  private connecting = 0;
  private stopping = false;
  private tick = 0;
  private ticker: NodeJS.Timeout | null = null;
  private readonly retries = new Set<NodeJS.Timeout>();
  private readonly uploadHead: string;
  private readonly uploadPiece: Buffer;

  constructor(private readonly spec: AttackSpec) {
    this.counters = {
      slowloris: new Counter(spec.counts.slowloris),
      uploads: new Counter(spec.counts.uploads),
      nonreaders: new Counter(spec.counts.nonreaders),
    };
    this.uploadHead = `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${spec.uploadLength}\r\n\r\n`;
    this.uploadPiece = Buffer.alloc(spec.uploadChunk, 0x61);
    // Interleaved, so that every kind is under way early in the ramp.
    const max = Math.max(...KINDS.map((k) => spec.counts[k]));
    for (let i = 0; i < max; i++) {
      for (const kind of KINDS) if (i < spec.counts[kind]) this.slots.push({ kind, index: i, sock: null, openedAt: 0, sent: 0, closing: false, answered: undefined });
    }
  }

  start(): void {
    for (const s of this.slots) this.queue.push(s);
    this.pump();
    this.ticker = setInterval(() => this.onTick(), TICK_MS);
  }

  stats(): AttackStats {
    return { slowloris: this.counters.slowloris.stats(), uploads: this.counters.uploads.stats(), nonreaders: this.counters.nonreaders.stats() };
  }

  /** Every connection closed by this side (a reset), and nothing reopened; resolves once all have closed. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.ticker) clearInterval(this.ticker);
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    const closing: Promise<void>[] = [];
    for (const s of this.slots) {
      const sock = s.sock;
      if (sock === null) continue;
      s.closing = true;
      closing.push(new Promise<void>((r) => sock.once('close', () => r())));
      if (sock.connecting) sock.destroy();
      else sock.resetAndDestroy(); // a reset: the server lets go at once, whatever it still had to send
    }
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 5000))]);
  }

  private pump(): void {
    while (!this.stopping && this.connecting < MAX_CONNECTING && this.queueHead < this.queue.length) {
      this.open(this.queue[this.queueHead++]!);
    }
    if (this.queueHead === this.queue.length) this.queue.length = this.queueHead = 0;
  }

  private again(slot: Slot, delayMs: number): void {
    if (this.stopping) return;
    const t = setTimeout(() => {
      this.retries.delete(t);
      this.queue.push(slot);
      this.pump();
    }, delayMs);
    this.retries.add(t);
  }

  private open(slot: Slot): void {
    const c = this.counters[slot.kind];
    this.connecting++;
    c.connecting++;
    slot.closing = false;
    slot.sent = 0;
    const sock = connect({ host: '127.0.0.1', port: this.spec.port });
    slot.sock = sock;
    sock.setNoDelay(true);
    let established = false;
    let error: string | null = null;
    sock.once('connect', () => {
      established = true;
      this.connecting--;
      c.connecting--;
      c.open++;
      c.connects++;
      c.maxOpen = Math.max(c.maxOpen, c.open);
      slot.openedAt = performance.now();
      this.pump();
      this.begin(slot, sock);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    sock.once('close', () => {
      slot.sock = null;
      if (!established) {
        this.connecting--;
        c.connecting--;
        bump(c.connectFailed, error ?? 'closed');
        this.pump();
        this.again(slot, 1000);
        return;
      }
      c.open--;
      const life = performance.now() - slot.openedAt;
      if (!slot.closing || slot.answered !== undefined) {
        bump(c.ended, slot.answered ?? error ?? 'closed');
        c.lives.push(life);
      }
      slot.answered = undefined;
      this.again(slot, life < 1000 ? 1000 : 100 + Math.random() * 100);
    });
  }

  /** The request's opening bytes, and how the connection listens. */
  private begin(slot: Slot, sock: Socket): void {
    switch (slot.kind) {
      case 'slowloris':
        sock.write(SLOWLORIS_HEAD);
        sock.on('data', (d: Buffer) => this.answered(slot, sock, d));
        break;
      case 'uploads':
        sock.write(this.uploadHead);
        sock.on('data', (d: Buffer) => this.answered(slot, sock, d));
        break;
      case 'nonreaders':
        sock.write(NONREADER_REQUEST);
        sock.pause(); // never read: no 'data' listener, ever
        break;
    }
  }

  /** An answer came (a 408, a 400, a 503...): counted, and the connection dropped so that a new one takes its place. */
  private answered(slot: Slot, sock: Socket, d: Buffer): void {
    if (slot.closing) return;
    const m = STATUS.exec(d.toString('latin1', 0, Math.min(d.length, 16)));
    slot.answered = m ? `HTTP ${m[1]}` : 'bytes, not an answer';
    slot.closing = true;
    sock.destroy();
  }

  private onTick(): void {
    const tick = this.tick++;
    const sp = this.spec;
    const period = (ms: number) => Math.max(1, Math.round(ms / TICK_MS));
    const periods: Record<AttackKind, number> = { slowloris: period(sp.slowlorisEveryMs), uploads: period(sp.uploadEveryMs), nonreaders: period(sp.probeMs) };
    for (const slot of this.slots) {
      const sock = slot.sock;
      if (sock === null || slot.closing || sock.connecting || sock.destroyed) continue;
      const p = periods[slot.kind];
      if (slot.index % p !== tick % p) continue;
      const c = this.counters[slot.kind];
      switch (slot.kind) {
        case 'slowloris': {
          const i = slot.sent % SLOWLORIS_MORE.length;
          sock.write(SLOWLORIS_MORE.subarray(i, i + 1));
          slot.sent++;
          c.trickled++;
          break;
        }
        case 'uploads': {
          if (slot.sent >= sp.uploadLength) break; // never at these rates
          const n = Math.min(sp.uploadChunk, sp.uploadLength - slot.sent);
          sock.write(n === this.uploadPiece.length ? this.uploadPiece : this.uploadPiece.subarray(0, n));
          slot.sent += n;
          c.trickled += n;
          break;
        }
        case 'nonreaders':
          sock.write(PROBE);
          slot.sent += PROBE.length;
          c.trickled += PROBE.length;
          break;
      }
    }
  }
}
