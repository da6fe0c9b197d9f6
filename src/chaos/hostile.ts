// Hostile clients for the chaos load (DESIGN.md, threat model; issue 11):
// each attack is one connection that plays a client drover must not wait
// for. Those with a deadline are checked: by then (plus a tick of the
// workers' sweep and the burns a worker may be held by) drover must have
// closed the connection. The others feed the learning and slot invariants:
// a slow upload or a pipelined flood that is not read must not make a fast
// route slow, and a slot must not wait on any of them.
import type { Addr, Os, Stream } from '../os/types.js';

export const ATTACKS = ['slowloris', 'stalled-body', 'non-reader', 'slow-upload', 'pipeline-flood', 'drop'] as const;
export type Attack = (typeof ATTACKS)[number];

export interface AttackEnv {
  readonly os: Os;
  readonly addr: Addr;
  /** ms: client_header_timeout, client_body_timeout, send_timeout, keep_alive, queue_timeout. */
  readonly limits: { readonly header: number; readonly body: number; readonly send: number; readonly keepAlive: number; readonly queue: number };
  /** ms a slot may be held (the slot-hold bound): a slow answer begins within queue + this. */
  readonly slotMs: number;
  /** ms a connection may outlive its deadline: a sweep tick, burns holding the worker, an accept that waits for a worker. */
  readonly slackMs: number;
  /** The checker's verdict on one deadline. */
  check(ok: boolean, message: () => string): void;
  note(text: string): void;
}

/** Every attack connection still open: the driver closes them when the load stops. */
export class Attackers {
  private readonly open = new Set<Stream>();
  private n = 0;
  count = 0;

  constructor(private readonly env: AttackEnv) {}

  /** One attack of the kind `pick` chooses, on a route `route` chooses. */
  launch(pick: number, route: number): void {
    const kind = ATTACKS[pick % ATTACKS.length]!;
    const id = `h${++this.n}`;
    const slow = route % 3 === 0; // a third go to the slow route
    this.count++;
    void this.run(kind, id, slow).catch(() => {
      // refused while no worker accepts (a restart): nothing to check
    });
  }

  closeAll(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  private async run(kind: Attack, id: string, slow: boolean): Promise<void> {
    const { os, limits } = this.env;
    const s = await os.connect(this.env.addr);
    const t0 = os.now();
    this.open.add(s);
    let closed = false;
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
      this.open.delete(s);
    });
    const path = slow ? `/s?id=${id}&ms=150` : `/f?id=${id}`;
    const drip = (bytes: string, every: number) => {
      let i = 0;
      const next = () => {
        if (closed || i >= bytes.length) return;
        s.write(bytes[i++]!);
        os.timer(every, next);
      };
      next();
    };
    /** By `deadline` ms after the connect (plus the slack) drover has closed the connection. */
    const by = (deadline: number, what: string) => {
      const due = deadline + this.env.slackMs;
      os.timer(due, () => {
        if (closed) return;
        // A reader that never read sees the close only once it reads what came before it.
        s.resume();
        os.timer(500, () => {
          this.env.check(closed, () => `${what} (${id}, connected at ${t0} ms) was still open ${due + 500} ms later; its deadline was ${deadline} ms`);
          if (!closed) s.destroy();
        });
      });
    };
    switch (kind) {
      case 'slowloris':
        s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n`);
        drip(`X-Pad: ${'a'.repeat(4000)}`, 200);
        by(limits.header, 'a head trickled a byte every 200 ms');
        return;
      case 'stalled-body':
        s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab`);
        drip('x'.repeat(4000), 300);
        // The app may answer without reading (then the rest is a head that never ends).
        by(Math.max(limits.body, limits.header), 'a body trickled a byte every 300 ms');
        return;
      case 'non-reader': {
        s.pause();
        s.write(`GET ${path}&kb=${256 * (1 + (t0 % 4))} HTTP/1.1\r\nHost: x\r\n\r\n`);
        // The answer may fit in the buffers between; then the connection is idle (keep_alive) instead.
        by((slow ? limits.queue + this.env.slotMs : 0) + limits.send + limits.keepAlive, 'a client that never read a big answer');
        return;
      }
      case 'slow-upload': {
        // A whole body at 150 ms a byte: within client_body_timeout, far over slow_threshold.
        const body = 'u'.repeat(Math.min(12, Math.floor((limits.body - 500) / 150)));
        s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
        drip(body, 150);
        s.resume(); // reads its answer; the server closes
        return;
      }
      case 'pipeline-flood': {
        const n = 20 + (t0 % 80);
        let text = '';
        for (let i = 0; i < n; i++) text += `GET /f?id=${id}-${i}&kb=64 HTTP/1.1\r\nHost: x\r\n\r\n`;
        s.pause();
        s.write(text + `GET /f?id=${id}-end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        // Not a byte read for a while (short of send_timeout), then everything.
        os.timer(300 + (t0 % Math.max(1, limits.send - 600)), () => s.resume());
        return;
      }
      case 'drop':
        s.write(t0 % 2 === 0 ? `GET ${path} HTTP/1.1\r\nHo` : `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nhalf`);
        os.timer(t0 % 300, () => s.destroy());
        return;
    }
  }
}
