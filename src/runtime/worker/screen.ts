// A request head, checked before the lanes or the app see it, on fast and
// slow workers alike (node:http lets both through):
// - two Host headers: 400 (RFC 9112 3.2); which one would the app trust?
// - headers named x-drover-*: drover's own between its processes (the
//   client's address, the lane id), so a client's are taken off: no client
//   can tell a slow worker who it is, or an app what drover said.
// One pass over the raw names, comparing only names of the right length.
import type { IncomingMessage, ServerResponse } from 'node:http';

const PREFIX = 'x-drover-';

/** False when the request was answered here (400) and must go no further. */
export function screen(req: IncomingMessage, res: ServerResponse): boolean {
  const raw = req.rawHeaders;
  let hosts = 0;
  let ours = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4) {
      if (name.toLowerCase() === 'host') hosts++;
    } else if (name.length > PREFIX.length && (name.charCodeAt(0) | 0x20) === 0x78 && name.charCodeAt(1) === 0x2d) {
      if (name.slice(0, PREFIX.length).toLowerCase() === PREFIX) ours = true;
    }
  }
  if (hosts > 1) {
    res.statusCode = 400;
    res.shouldKeepAlive = false;
    res.setHeader('content-type', 'text/plain');
    res.setHeader('connection', 'close');
    res.end('Bad Request: more than one Host header\n');
    return false;
  }
  if (ours) strip(req);
  return true;
}

/** Takes every x-drover-* header off the request, raw and parsed. */
export function strip(req: IncomingMessage): void {
  takeOff(req, (name) => name.startsWith(PREFIX));
}

/**
 * Takes the headers whose lower-case name `drop` picks off the request:
 * rawHeaders, headers and headersDistinct. The parsed two are built first:
 * node:http builds them lazily from rawHeaders by the count it parsed, and
 * read past the end of a shortened list (headersDistinct threw a TypeError
 * in the app, on every slow-lane request and after any client's x-drover-*).
 */
export function takeOff(req: IncomingMessage, drop: (name: string) => boolean): void {
  const raw = req.rawHeaders;
  const h = req.headers;
  const d = req.headersDistinct;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (drop(name)) {
      delete h[name];
      delete d[name];
      raw.splice(i, 2);
      i -= 2;
    }
  }
}
