// Sends one request from a fast worker to a slow-lane worker and streams its
// answer back, unchanged: 1xx hints, status and reason, headers (duplicates
// and case kept), body, trailers. One connection per request, so
// that aborting a request is ending its connection (and the end of the
// connection says the slow worker has let go of it), and the slow worker can
// take the connection's peer to be this one client.
//
// Hop-by-hop headers (RFC 9110 7.6.1: Connection, the names it lists,
// Keep-Alive, TE, Upgrade, Proxy-Connection) are not passed on; node:http
// frames each side itself: Content-Length when the other side gave one,
// chunked otherwise (and trailers only travel chunked). `Expect` is dropped
// because the fast worker's server has already answered 100-continue.
//
// A slot is the app's, never the client's (DESIGN.md, threat model): the
// request's body is already here, read whole before the slot was asked for
// (fast-lane.ts), and the answer is taken from the slow worker as fast as it
// comes, up to `buffer` bytes held for a client that reads slowly. Only an
// answer larger than that waits on the client, and send_timeout bounds how
// long (connections.ts).
import { request, type ClientRequest, type IncomingMessage, type RequestOptions, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Os } from '../../os/types.js';
import { planted } from '../../os/hooks.js';
import { CLIENT_HEADER, LANE_HEADER } from '../protocol.js';

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'expect', CLIENT_HEADER, LANE_HEADER]);
/** What frames the message and whom it is for: a client that names them in Connection does not get them dropped. */
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding']);
const HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/**
 * The largest answer head taken from a slow worker. node:http's client
 * default (16 KiB) made a head the fast path sends as it is (a big cookie, a
 * long CSP) a 502 on the slow path; the slow worker is our own, so only a
 * head no client could use is refused.
 */
export const ANSWER_HEAD_MAX = 1 << 20;

/**
 * Appends the request's end-to-end headers to `out`: the hop-by-hop ones go,
 * and so do those its Connection headers name. `Trailer` goes unless the
 * request is chunked: node:http throws on it for a message it frames
 * otherwise (a GET, a Content-Length body), and it only announces trailers.
 * Answers whether the request named its framing (Content-Length or
 * Transfer-Encoding).
 */
function pass(raw: readonly string[], out: string[]): boolean {
  let named: Set<string> | null = null;
  let chunked = false;
  let framed = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'transfer-encoding') chunked = true;
    if (name === 'content-length' || name === 'transfer-encoding') framed = true;
    if (name !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '' && !FRAMING.has(t)) (named ??= new Set()).add(t);
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP.has(name) && !named?.has(name) && (chunked || name !== 'trailer')) out.push(raw[i]!, raw[i + 1]!);
  }
  return framed;
}

/** The app's headers copied onto the answer go before drover answers in its place (the date is drover's). */
function clearHeaders(res: ServerResponse): void {
  for (const h of res.getHeaderNames()) if (h !== 'date') res.removeHeader(h);
}

/** A request read whole before it takes a slot: its body and its trailers (raw pairs). */
export interface Body {
  readonly chunks: readonly Buffer[];
  readonly trailers: readonly string[];
}

/**
 * How a forwarded request ended: answered in full, or not (a 502 sent, the
 * client reset, or the client left), or never begun: the slow worker refused
 * the connection (it has died, or is dying, unreaped), so nothing was sent
 * and nothing answered; the request may be given to another. 'cut': not
 * answered, and the connection was closed here before the slow worker let
 * go (node:http's parser refused what came), so only that worker can say
 * when it has.
 */
export type Outcome = 'answered' | 'failed' | 'client-gone' | 'refused' | 'cut';

const SWITCHED = 'the app answered 101 Switching Protocols to a request that did not ask to upgrade';

/** Connect errors that say nobody is at the slow worker's socket: the worker, not this process, is the cause. */
const GONE = new Set(['ECONNREFUSED', 'ENOENT']);

/**
 * `done` is told how it ended, and for how many ms the answer was held back
 * for the client (more than `buffer` bytes waiting): time the lanes do not
 * count against the route.
 */
export function forward(os: Os, path: string, id: number, req: IncomingMessage, res: ServerResponse, body: Body, buffer: number, done: (how: Outcome, heldMs: number, failure?: string) => void): void {
  let over = false;
  let held = 0;
  let heldAt = -1;
  // node:http's client destroys the connection at once when its parser
  // refuses the answer (a head over ANSWER_HEAD_MAX, a malformed head or
  // body). That close is ours, not the slow worker's: it may have written
  // its head and gone on burning, and sees the close only when its event
  // loop is free. Its slot is freed on its word then (Outcome 'cut'), as for
  // a dead fast worker's request, not at once: the next request would wait
  // behind the burn, past slow_concurrency.
  let cut = false;
  const end = (how: Outcome) => {
    if (over) return;
    over = true;
    done(cut && how !== 'answered' ? 'cut' : how, held, failure);
  };
  // The client went away first: the answer is dropped, and the end waits for
  // the slow worker to let go (see the 'close' handler at the bottom).
  let gone = false;
  let answer: IncomingMessage | null = null;

  // What a 502 (or a reset mid-answer) said, for the error log: the client is told, the operator too.
  let failure: string | undefined;
  const fail = (why = 'the slow-lane worker running this request failed') => {
    failure ??= res.headersSent ? `reset mid-answer: ${why}` : `502: ${why}`;
    if (res.headersSent) {
      res.destroy(); // mid-answer: a reset is the only honest end
    } else if (!res.destroyed) {
      clearHeaders(res);
      res.statusCode = 502;
      res.statusMessage = ''; // the app's may be what node:http refused: its own for 502

      res.setHeader('content-type', 'text/plain');
      res.setHeader('connection', 'close');
      res.end(`Bad Gateway: ${why}\n`);
    }
    // Still connected (an answer head refused here): its slow worker may be
    // running the request yet, and the slot is its until the connection closes.
    const s = preq?.socket;
    if (s && !s.destroyed) {
      answer?.resume();
      preq!.once('close', () => end('failed'));
      s.end();
      return;
    }
    end('failed');
  };
  // drover's own headers first: a server keeps the first N headers of a
  // request with too many (node:http, 2,000), and last they were the ones lost.
  const headers = [CLIENT_HEADER, `${req.socket.remoteAddress ?? ''} ${req.socket.remotePort ?? ''}`, LANE_HEADER, String(id), 'Connection', 'close'];
  const framed = pass(req.rawHeaders, headers);
  // A body whose framing headers node:http dropped (past its header cap): framed here, by what was read.
  if (!framed && body.chunks.length > 0) headers.push('Content-Length', String(body.chunks.reduce((n, c) => n + c.length, 0)));
  let preq: ClientRequest | undefined;
  try {
    preq = request({
      method: req.method,
      path: req.url,
      headers,
      setHost: false,
      maxHeaderSize: ANSWER_HEAD_MAX,
      createConnection: (_opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
        os.connect({ path }).then((s) => cb(null, s), (e: Error & { code?: unknown }) => {
          // Not EMFILE and the like: those are this process's, and another slow worker would fare no better.
          if (!over && !gone && GONE.has(String(e.code))) end('refused');
          cb(e);
        });
        return undefined;
      },
    } as unknown as RequestOptions);
  } catch (e) {
    // A head node:http will not send (it checks more than its parser did): nothing went out, and the slot is given back.
    fail(`the request could not be passed on (${(e as { code?: string }).code ?? (e as Error).message})`);
    return;
  }

  preq.on('error', (e: { code?: unknown }) => {
    // Also while a 502 or a gone client waits for the connection's close: this close is no word from the slow worker either.
    if (String(e.code).startsWith('HPE_')) cut = true;
    if (!over && !gone) {
      fail(e.code === 'HPE_HEADER_OVERFLOW'
        ? `the app's answer head is over ${ANSWER_HEAD_MAX >> 20} MiB`
        : cut ? `the app's answer head is not valid HTTP (${String(e.code)})` : undefined);
    }
  });
  // 1xx from the app (103 Early Hints, 102 Processing) pass to an HTTP/1.1
  // client as they came; 100 was the fast worker's to send (Expect is dropped).
  preq.on('information', (info: { statusCode: number; rawHeaders: string[] }) => {
    if (gone || res.headersSent || req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) return;
    try {
      if (info.statusCode === 102) res.writeProcessing();
      else if (info.statusCode === 103) res.writeEarlyHints(hints(info.rawHeaders));
    } catch {
      // Hints node:http will not write (a malformed Link): the answer goes on without them.
    }
  });
  // node:http's client closes the connection itself after a 101 (nothing
  // here takes an upgrade): with Upgrade headers it gives no 'response' and
  // no error, only this 'close'; without them, a 'response' (below). No
  // request asks to upgrade here (node:http's server takes those aside), so
  // either is the app's error, a 502 as nginx answers it, and the slow worker
  // may be running the request yet: the slot waits for its word ('cut').
  preq.on('close', () => {
    if (over || gone || answer !== null || failure !== undefined) return;
    cut = true;
    fail((preq as unknown as { res?: IncomingMessage | null }).res?.statusCode === 101 ? SWITCHED : undefined);
  });
  preq.on('response', (pres) => {
    answer = pres;
    if (gone) {
      pres.resume();
      return;
    }
    if (pres.statusCode === 101) {
      cut = true;
      pres.resume();
      fail(SWITCHED);
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
    try {
      for (const [name, values] of names.values()) res.setHeader(name, values.length === 1 ? values[0]! : values);
      try {
        res.writeHead(pres.statusCode!, pres.statusMessage);
      } catch (e) {
        // Trailers announced on an answer that cannot carry them (an HTTP/1.0
        // client, HEAD, a Content-Length answer): without the announcement, as
        // node:http would send such an answer from the app itself.
        if ((e as { code?: unknown }).code !== 'ERR_HTTP_TRAILER_INVALID') throw e;
        res.removeHeader('trailer');
        res.writeHead(pres.statusCode!, pres.statusMessage);
      }
    } catch (e) {
      pres.resume();
      fail(`the app's answer head is not valid HTTP (${(e as { code?: string }).code ?? (e as Error).message})`);
      return;
    }
    pres.on('data', (chunk: Buffer) => {
      if (gone) return;
      if (!res.write(chunk) && (res.writableLength >= buffer || planted(os.hooks, 'slot-waits-on-client')) && heldAt < 0) {
        pres.pause();
        heldAt = os.now();
        res.once('drain', () => {
          held += os.now() - heldAt;
          heldAt = -1;
          pres.resume();
        });
      }
    });
    pres.on('end', () => {
      if (gone) return;
      try {
        if (pres.rawTrailers.length > 0) res.addTrailers(pairs(pres.rawTrailers));
      } catch {
        // Trailers node:http will not write: the answer ends without them.
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
  for (const c of body.chunks) preq.write(c);
  if (body.trailers.length > 0) preq.addTrailers(pairs(body.trailers));
  preq.end();
}

/**
 * Early hints as writeEarlyHints takes them: names in lower case, duplicates
 * as arrays, and Link as its list of links (node:http writes them joined on
 * one line, and refuses them back that way).
 */
function hints(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const values = name === 'link' ? raw[i + 1]!.split(/,\s*(?=<)/) : [raw[i + 1]!];
    const had = out[name];
    out[name] = had === undefined && values.length === 1 ? values[0]! : [...(had === undefined ? [] : Array.isArray(had) ? had : [had]), ...values];
  }
  return out;
}

/** Raw [name, value, ...] as pairs: addTrailers keeps duplicates and case that way. */
function pairs(raw: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}
