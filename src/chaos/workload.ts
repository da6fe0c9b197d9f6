// The workload of a chaos run of drover's own scenarios: open-loop requests
// to the chaos app (fast, slow, big answers, slow readers, clients that
// leave, kept-alive connections) and the hostile clients beside them, with
// the bookkeeping of each request's end. It judges nothing itself: every
// answer goes to the checker (Checker.answer), which says what it was.
import type { Os } from '../os/types.js';
import { Conn, type Outcome } from './client.js';
import { Attackers } from './hostile.js';
import { KeptAlive, openLoop } from './load.js';
import type { Checker } from './invariants.js';
import { hostileSlotMs, type Scenario } from './scenario.js';

export const ADDR = { host: '127.0.0.1', port: 8000 } as const;

/**
 * A request sent, as the report of one that never ended describes it.
 * `before`: the request sent before it on its kept-alive connection (null:
 * none; undefined: not kept alive), dropped once this one ends.
 */
interface Sent {
  readonly id: string;
  readonly at: number;
  readonly path: string;
  readonly pause: number;
  before: Sent | null | undefined;
  on: number;
  status: number;
  began: number;
  end: string;
}

export type RequestCounts = { sent: number; ok: number; shed: number; badGateway: number; reset: number; left: number; hostile: number };

export class Workload {
  readonly requests: RequestCounts = { sent: 0, ok: 0, shed: 0, badGateway: 0, reset: 0, left: 0, hostile: 0 };
  /** Requests without an end, in the order sent: the first is the oldest. */
  readonly pending = new Map<string, Sent>();
  /** When any request last got an answer (serving-through-faults). */
  lastAnswer = 0;
  private readonly pool = new KeptAlive();
  /** Per pooled connection, the request sent on it last. */
  private readonly lastOn: Sent[] = [];
  private n = 0;
  private loading = false;
  private attacking = false;
  private readonly attackers: Attackers | null;

  constructor(
    private readonly os: Os,
    private readonly s: Scenario,
    private readonly checker: Checker,
    /** The app versions a good config has named so far (the driver adds to it). */
    private readonly versions: ReadonlySet<string>,
    keepAliveMs: number,
    note: (text: string) => void,
  ) {
    const clients = s.topology.clients;
    this.attackers = clients === null ? null : new Attackers({
      os, addr: ADDR,
      limits: { ...clients, keepAlive: keepAliveMs, queue: s.topology.queueTimeoutMs },
      slotMs: hostileSlotMs(s.topology, s.load) ?? 3 * s.load.slowMsMax,
      slackMs: Math.min(1000, Math.floor(Math.min(clients.header, clients.body, clients.send) / 4)) + 2 * s.load.slowMsMax + 1000,
      check: (ok, message) => checker.check('client-deadline', ok, message),
      note,
    });
  }

  /** How many requests were sent: their ids are r1..rN. */
  get sent(): number {
    return this.n;
  }

  /** The load (exponential gaps at the scenario's rate; none at rate 0, bench/sim's idle row) and the attacks begin. */
  start(): void {
    const { os, s } = this;
    this.loading = s.load.rate > 0;
    openLoop(os, s.load.rate, () => this.loading, () => this.send());
    this.attacking = this.attackers !== null && s.load.attacks > 0;
    openLoop(os, s.load.attacks, () => this.attacking, () => {
      this.attackers!.launch(Math.floor(os.random() * 1e6), Math.floor(os.random() * 1e6));
      this.requests.hostile++;
    });
  }

  /** No new requests or attacks; those under way go on. */
  stop(): void {
    this.loading = false;
    this.attacking = false;
  }

  /** Before the TERM: every kept-alive connection and attack still open is closed (their deadlines were checked, or are not due). */
  closeAll(): void {
    this.pool.closeAll();
    this.attackers?.closeAll();
  }

  /** The oldest request without an end, described; '' when there is none. */
  oldest(): { at: number; describe: () => string } | null {
    const o = this.pending.values().next();
    return o.done ? null : { at: o.value.at, describe: () => describe(o.value) };
  }

  /** Up to `n` requests without an end, described. */
  describePending(n: number): string {
    return [...this.pending.values()].slice(0, n).map(describe).join('; ');
  }

  /** stall-worker: a request to /hang, which holds its worker for ever. */
  hang(pick: number): void {
    this.connect(() => `hang${pick}`).get(`/hang?id=hang${pick}`, false, { end: () => {} });
  }

  private connect(after: () => string): Conn {
    const os = this.os;
    return new Conn(os.connect(ADDR), (what) => this.checker.fail('answers', `a connection (its last request ${after()}) carried ${what}`), (ms, fn) => void os.timer(ms, fn));
  }

  private send(): void {
    const { os, s, pool, lastOn } = this;
    const id = `r${++this.n}`;
    const slow = os.random() < s.load.slowShare;
    const ms = s.load.slowMsMin + Math.floor(os.random() * (s.load.slowMsMax - s.load.slowMsMin + 1));
    const kb = os.random() < s.load.bigShare ? 64 * (1 + Math.floor(os.random() * 16)) : 0;
    const pause = os.random() < s.load.slowReaderShare ? 100 + Math.floor(os.random() * 1900) : 0;
    const path = (slow ? `/s?id=${id}&ms=${ms}` : `/f?id=${id}`) + (kb > 0 ? `&kb=${kb}` : '');
    const wantKeep = os.random() < s.load.keepAliveShare;
    const slot = wantKeep ? pool.free() : -1;
    const keep = slot >= 0;
    const leave = os.random() < s.load.leaveShare && !keep ? Math.floor(os.random() * 500) : -1;
    this.requests.sent++;
    const sent: Sent = { id, at: os.now(), path, pause, before: keep ? (lastOn[slot] ?? null) : undefined, on: -1, status: 0, began: -1, end: '' };
    if (keep) lastOn[slot] = sent;
    this.pending.set(id, sent);
    const conn = keep ? pool.at(slot, () => this.connect(() => lastOn[slot]!.id)) : this.connect(() => id);
    let settled = false;
    const end = (how: 'ok' | 'shed' | 'badGateway' | 'reset' | 'left') => {
      if (settled) return;
      settled = true;
      if (how === 'ok' || how === 'shed' || how === 'badGateway') this.lastAnswer = os.now();
      this.pending.delete(id);
      sent.end = `${how} at ${os.now()} ms`;
      sent.before = sent.before && null; // keeps no chain of ended requests alive
      this.requests[how]++;
    };
    conn.get(path, keep, {
      sent: () => (sent.on = os.now()),
      head: (status) => {
        sent.status = status;
        sent.began = os.now();
      },
      end: (o: Outcome) => {
        if (settled) return;
        if ('reset' in o) return end('reset');
        end(this.checker.answer(id, kb, o, this.versions));
      },
    }, pause);
    if (leave >= 0) {
      os.timer(leave, () => {
        if (settled) return;
        end('left');
        conn.destroy();
      });
    }
  }
}

function describe(r: Sent): string {
  return `${r.id} sent at ${r.at} ms: GET ${r.path}` +
    (r.before === undefined ? '' : ` (keep-alive, after ${r.before === null ? 'none' : `${r.before.id}, which ended ${r.before.end || 'never'}`})`) +
    (r.pause > 0 ? ` (reads after ${r.pause} ms)` : '') +
    (r.on >= 0 ? `, on a connection at ${r.on} ms` : '') +
    (r.began >= 0 ? `, answer ${r.status} began at ${r.began} ms` : '');
}
