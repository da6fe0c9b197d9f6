// The slow worker's side of the lanes (worker/slow-lane.ts): drover's
// headers taken off, and the answer to the arbiter's question about requests
// whose fast worker died — at once for one not running here, at its end for
// one that is, and never a run for one that comes after it was given up.
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { expect, test } from 'vitest';
import { laneId, type ToArbiter } from '../../src/runtime/protocol.js';
import { fromFastWorker, SlowSide } from '../../src/runtime/worker/slow-lane.js';

function request(headers: Array<[string, string]>) {
  const socket = { destroyed: false, remoteAddress: '/run/lane.sock', remotePort: undefined as number | undefined, destroy() { this.destroyed = true; } };
  const lower: Record<string, string> = {};
  const distinct: Record<string, string[]> = {};
  for (const [k, v] of headers) {
    lower[k.toLowerCase()] = lower[k.toLowerCase()] === undefined ? v : `${lower[k.toLowerCase()]}, ${v}`;
    (distinct[k.toLowerCase()] ??= []).push(v);
  }
  const req = { headers: lower, headersDistinct: distinct, rawHeaders: headers.flat(), socket } as unknown as IncomingMessage;
  const res = new EventEmitter() as unknown as ServerResponse;
  return { req, res, socket };
}

/** The slow worker's clock, as SlowSide reads it (ms). */
let clock = 0;

const forwarded = (id: number, more: Array<[string, string]> = []) =>
  request([['Host', 'x'], ['x-drover-client', '10.0.0.7 4567'], ...more, ['x-drover-lane', String(id)], ['Connection', 'close']]);

test('drover\'s headers are taken off in every case, the client becomes the peer, and the lane id comes back', () => {
  const { req, socket } = forwarded(laneId(300, 9), [['X-Drover-Lane', '1']]);
  expect(fromFastWorker(req)).toBe(null); // two ids joined: not a number, so none
  expect(req.headers).toEqual({ host: 'x', connection: 'close' });
  expect(req.headersDistinct).toEqual({ host: ['x'], connection: ['close'] });
  expect(req.rawHeaders).toEqual(['Host', 'x', 'Connection', 'close']);
  expect([socket.remoteAddress, socket.remotePort]).toEqual(['10.0.0.7', 4567]);

  const one = forwarded(laneId(300, 9));
  expect(fromFastWorker(one.req)).toBe(300 * 2 ** 31 + 9);
  expect(fromFastWorker(request([['Host', 'x']]).req)).toBe(null);
});

test('an orphan running here is let go when its answer ends; one not here at once, and it is not run if it comes later', () => {
  const sent: ToArbiter[] = [];
  const side = new SlowSide((m) => sent.push(m), () => clock);
  const a = laneId(300, 1);
  const b = laneId(300, 2);
  const c = laneId(301, 1);

  const running = forwarded(a);
  expect(side.take(running.req, running.res)).toBe(true);
  const other = forwarded(c);
  expect(side.take(other.req, other.res)).toBe(true);

  side.message({ t: 'lane-orphans', ids: [a, b] });
  expect(sent).toEqual([{ t: 'lane-let-go', ids: [b] }]);
  other.res.emit('close'); // not asked about: nothing to say
  expect(sent).toHaveLength(1);
  running.res.emit('close');
  expect(sent).toEqual([{ t: 'lane-let-go', ids: [b] }, { t: 'lane-let-go', ids: [a] }]);

  // b's slot is gone: if its request arrives now, it does not run.
  const late = forwarded(b);
  expect(side.take(late.req, late.res)).toBe(false);
  expect(late.socket.destroyed).toBe(true);

  // Asked about after it ended: at once.
  side.message({ t: 'lane-orphans', ids: [c] });
  expect(sent.at(-1)).toEqual({ t: 'lane-let-go', ids: [c] });

  // Other messages are not its business.
  side.message({ t: 'drain' });
  expect(sent).toHaveLength(3);
});

test('ids given up before they came are refused for ten minutes, and a bounded number of them', () => {
  clock = 0;
  const sent: ToArbiter[] = [];
  const side = new SlowSide((m) => sent.push(m), () => clock);
  const ids = Array.from({ length: 1100 }, (_, i) => laneId(400, i));
  side.message({ t: 'lane-orphans', ids });
  expect(sent).toEqual([{ t: 'lane-let-go', ids }]);
  // The oldest are forgotten (would run), the newest still refused.
  const oldest = forwarded(ids[0]!);
  expect(side.take(oldest.req, oldest.res)).toBe(true);
  const newest = forwarded(ids.at(-1)!);
  expect(side.take(newest.req, newest.res)).toBe(false);
  // Past ten minutes one is forgotten: a new worker with the dead one's pid may number a request the same.
  clock = 10 * 60_000 + 1;
  const late = forwarded(ids.at(-2)!);
  expect(side.take(late.req, late.res)).toBe(true);
});
