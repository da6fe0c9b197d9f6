// Streams one request from a fast worker to a slow-lane worker and its
// answer back, unchanged: status and reason, headers (duplicates and case
// kept), body (with backpressure), trailers. One connection per request, so
// that aborting a request is ending its connection (and the end of the
// connection says the slow worker has let go of it), and the slow worker can
// take the connection's peer to be this one client.
//
// Hop-by-hop headers (RFC 9110 7.6.1) are not passed on; node:http frames
// each side itself: Content-Length when the other side gave one, chunked
// otherwise (and trailers only travel chunked). `Expect` is dropped because
// the fast worker's server has already answered 100-continue.
import { request, type IncomingMessage, type RequestOptions, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Os } from '../../os/types.js';
import { CLIENT_HEADER, LANE_HEADER } from '../protocol.js';

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'expect', CLIENT_HEADER, LANE_HEADER]);
const HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function pass(raw: readonly string[], drop: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!drop.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** How a forwarded request ended: answered in full, or not (a 502 sent, the client reset, or the client left). */
export type Outcome = 'answered' | 'failed' | 'client-gone';

export function forward(os: Os, path: string, id: number, req: IncomingMessage, res: ServerResponse, done: (how: Outcome) => void): void {
  let over = false;
  const end = (how: Outcome) => {
    if (over) return;
    over = true;
    done(how);
  };
  const headers = pass(req.rawHeaders, HOP);
  headers.push(CLIENT_HEADER, `${req.socket.remoteAddress ?? ''} ${req.socket.remotePort ?? ''}`, LANE_HEADER, String(id), 'Connection', 'close');
  const preq = request({
    method: req.method,
    path: req.url,
    headers,
    setHost: false,
    createConnection: (_opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
      os.connect({ path }).then((s) => cb(null, s), (e: Error) => cb(e));
      return undefined;
    },
  } as unknown as RequestOptions);

  // The client went away first: the answer is dropped, and the end waits for
  // the slow worker to let go (see the 'close' handler at the bottom).
  let gone = false;
  let answer: IncomingMessage | null = null;

  const fail = () => {
    if (res.headersSent) {
      res.destroy(); // mid-answer: a reset is the only honest end
    } else if (!res.destroyed) {
      res.statusCode = 502;
      res.setHeader('content-type', 'text/plain');
      res.setHeader('connection', 'close');
      res.end('Bad Gateway: the slow-lane worker running this request failed\n');
    }
    end('failed');
  };

  preq.on('error', () => {
    if (!over && !gone) fail();
  });
  preq.on('response', (pres) => {
    answer = pres;
    if (gone) {
      pres.resume();
      return;
    }
    // setHeader with every value of a name, not writeHead(raw array): Node 20
    // keeps only the last of duplicates given that way once a header is set.
    const raw = pres.rawHeaders;
    const names = new Map<string, [string, string[]]>();
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (HOP_RESPONSE.has(lower)) continue;
      const e = names.get(lower);
      if (e) e[1].push(raw[i + 1]!);
      else names.set(lower, [raw[i]!, [raw[i + 1]!]]);
    }
    for (const [name, values] of names.values()) res.setHeader(name, values.length === 1 ? values[0]! : values);
    res.writeHead(pres.statusCode!, pres.statusMessage);
    pres.on('data', (chunk: Buffer) => {
      if (gone) return;
      if (!res.write(chunk)) {
        pres.pause();
        res.once('drain', () => pres.resume());
      }
    });
    pres.on('end', () => {
      if (gone) return;
      const t = pres.rawTrailers;
      if (t.length > 0) {
        const pairs: [string, string][] = [];
        for (let i = 0; i < t.length; i += 2) pairs.push([t[i]!, t[i + 1]!]);
        res.addTrailers(pairs);
      }
      res.end();
      end('answered');
    });
    pres.on('close', () => {
      if (!pres.complete && !over && !gone) fail();
    });
    pres.on('error', () => {}); // 'close' says what happened
  });
  res.once('close', () => {
    if (over) return;
    // The client went away first. The slow worker may still be running the
    // request (a burn holds its event loop), and its lane slot is busy until
    // it lets go (lanes/queue.ts): half-close the connection - its server
    // sees the end, aborts the request and closes its side once its event
    // loop is free - and report the end only when the connection has closed.
    gone = true;
    req.unpipe(preq);
    answer?.resume(); // paused for a client that will never drain
    const s = preq.socket;
    if (!s) {
      // Not connected yet: nothing runs there.
      preq.destroy();
      end('client-gone');
      return;
    }
    preq.once('close', () => end('client-gone'));
    s.end();
  });
  req.pipe(preq);
}
