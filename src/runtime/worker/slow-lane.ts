// The slow worker's side of the lanes. Its requests come from fast workers,
// one connection each, with two headers of drover's that the app never sees:
// the client's address (the app sees the client as its peer, as it would on
// the fast worker) and the request's lane id.
//
// The id matters when a fast worker dies while its request runs here (or
// closes the connection on an answer node:http refused: lane-cut). The
// arbiter cannot hear the end from the fast worker, and this worker may
// still be burning on the request: a slot freed then would put another
// request behind the burn, past the lane's concurrency. So the arbiter asks
// (lane-orphans) and frees the slots when this worker answers (lane-let-go):
// at once for a request not running here, else when it ends. One asked about
// that has not come yet is not run if it comes: its slot is gone. Its
// connection can only be one the dead worker opened, so it comes soon or
// never; the id is forgotten after a while, as a new worker that got the
// dead one's pid will in time number a request the same.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CLIENT_HEADER, LANE_HEADER, type ToArbiter, type ToWorker } from '../protocol.js';
import { takeOff } from './screen.js';

/** Ids asked about before their request came are refused this long (a burn here may delay the accept), at most this many. */
const REFUSED_MS = 10 * 60_000;
const REFUSED_MAX = 1024;

export class SlowSide {
  private readonly running = new Set<number>();
  private readonly asked = new Set<number>(); // running here: answer when they end
  private readonly refused = new Map<number, number>(); // not come yet: do not run them before this time

  constructor(
    private readonly send: (m: ToArbiter) => void,
    private readonly now: () => number,
  ) {}

  /** A request from a fast worker: false if it must not run (its slot was given up); its connection is then closed. */
  take(req: IncomingMessage, res: ServerResponse): boolean {
    const id = fromFastWorker(req);
    if (id === null) return true;
    const until = this.refused.get(id);
    if (until !== undefined) {
      this.refused.delete(id);
      if (until >= this.now()) {
        req.socket.destroy();
        return false;
      }
    }
    this.running.add(id);
    res.once('close', () => {
      this.running.delete(id);
      if (this.asked.delete(id)) this.send({ t: 'lane-let-go', ids: [id] });
    });
    return true;
  }

  message(m: ToWorker): void {
    if (m.t !== 'lane-orphans') return;
    const now: number[] = [];
    for (const id of m.ids) {
      if (this.running.has(id)) {
        this.asked.add(id);
        continue;
      }
      now.push(id);
      this.refused.delete(id);
      this.refused.set(id, this.now() + REFUSED_MS);
      if (this.refused.size > REFUSED_MAX) this.refused.delete(this.refused.keys().next().value!);
    }
    if (now.length > 0) this.send({ t: 'lane-let-go', ids: now });
  }
}

/**
 * Takes drover's headers off a request from a fast worker, in every case
 * and repetition, and makes the client the socket's peer (its connection
 * carries this one request only, so the socket can stand for the client).
 * Returns the lane id, or null if there is none.
 */
export function fromFastWorker(req: IncomingMessage): number | null {
  const client = req.headers[CLIENT_HEADER];
  const lane = req.headers[LANE_HEADER];
  takeOff(req, (name) => name === CLIENT_HEADER || name === LANE_HEADER);
  if (typeof client === 'string') {
    const sp = client.lastIndexOf(' ');
    const address = client.slice(0, sp);
    const port = Number(client.slice(sp + 1));
    if (address !== '') Object.defineProperty(req.socket, 'remoteAddress', { value: address, configurable: true });
    if (Number.isInteger(port) && port > 0) Object.defineProperty(req.socket, 'remotePort', { value: port, configurable: true });
  }
  const id = typeof lane === 'string' ? Number(lane) : NaN;
  return Number.isSafeInteger(id) && id >= 0 ? id : null;
}
