// The client's address for the access log when drover sits behind a proxy
// (forwarded_allow_ips), from the peer address and X-Forwarded-For.
//
// The rule, decided here: nginx's real_ip_recursive, not gunicorn's.
// gunicorn believes the leftmost X-Forwarded-For entry whenever the peer is
// trusted, but the leftmost entry is whatever the client sent: a proxy
// appends to the header it received, so `curl -H 'X-Forwarded-For: 1.2.3.4'`
// through a trusted proxy logs 1.2.3.4. Here the list is read from the right
// (each hop appended the address it saw) and the client is the first entry
// that is not itself a trusted proxy: the address the outermost trusted proxy
// saw, which no client can choose.
// - The peer must be trusted, else the header is ignored and the peer is the
//   client. `*` in the list trusts any peer (a Unix-socket one too, which
//   has no address to list), but only the addresses listed
//   count as trusted proxies inside the chain: with just `*`, the client is
//   the rightmost entry (what the proxy talking to drover saw). Letting `*`
//   trust every entry would walk to the leftmost one, gunicorn's spoofable
//   answer.
// - When every entry is a trusted proxy, the leftmost one is the client (a
//   request from the proxy host itself), as in nginx.
// - An entry that is not a bare IP address (`unknown`, `1.2.3.4:80`,
//   `[::1]`, obfuscated RFC 7239 names, garbage), reached before an untrusted
//   one, makes the header unusable: the peer is the client. Empty list
//   elements (`a,,b`) are skipped, as RFC 9110 list syntax asks.
// - Several X-Forwarded-For headers are one list in header order (node:http
//   already joins them with ", "; an array is read the same way).
// - Bounded work whatever the header: at most MAX_HOPS entries (empty ones
//   and empty headers included) from the right are looked at, and an entry is at most MAX_ENTRY characters
//   (blanks included); past either bound the peer is the client.
// - Addresses compare by value: `::ffff:127.0.0.1` is 127.0.0.1, and
//   `0:0:0:0:0:0:0:1` is `::1`. The address returned is the entry as
//   written (trimmed), or the peer unchanged.
import { isIPv4, isIPv6 } from './config/bind.js';

const MAX_HOPS = 32;
const MAX_ENTRY = 64; // the longest IPv6 text form is 45, plus a zone

interface Trust { any: boolean; addrs: ReadonlySet<string> }

// forwarded_allow_ips is one array for a process's life (until a reload
// gives a new one): compare against its canonical set, built once.
const trustOf = new WeakMap<readonly string[], Trust>();

function trust(allow: readonly string[]): Trust {
  let t = trustOf.get(allow);
  if (t === undefined) {
    const addrs = new Set<string>();
    for (const a of allow) {
      const c = canonicalIP(a);
      if (c !== null) addrs.add(c);
    }
    t = { any: allow.includes('*'), addrs };
    trustOf.set(allow, t);
  }
  return t;
}

export function clientAddress(peer: string | undefined, xff: string | string[] | undefined, allow: readonly string[]): string | undefined {
  if (xff === undefined || allow.length === 0) return peer;
  const t = trust(allow);
  // A Unix-socket peer (no address: nginx on unix:) is trusted by `*` alone.
  if (peer === undefined && !t.any) return peer;
  if (!t.any) {
    const p = canonicalIP(peer!);
    if (p === null || !t.addrs.has(p)) return peer;
  }
  const parts = typeof xff === 'string' ? null : xff;
  let budget = MAX_HOPS;
  let leftmost: string | undefined; // the last trusted entry seen, the answer if all are trusted
  for (let h = parts === null ? 0 : parts.length - 1; h >= 0; h--) {
    const s = parts === null ? (xff as string) : parts[h]!;
    if (s === '' && --budget < 0) return peer; // 10,000 empty headers cost no more than 32
    let end = s.length;
    while (end > 0) {
      // One entry: from the comma before `end` (looked for over MAX_ENTRY characters at most) to `end`.
      let i = end - 1;
      const stop = end - MAX_ENTRY - 1;
      while (i >= 0 && s.charCodeAt(i) !== 44 /* , */) {
        if (i <= stop) return peer;
        i--;
      }
      const entry = s.slice(i + 1, end).trim();
      end = i; // at the comma (or -1): the next entry ends there
      if (--budget < 0) return peer; // empty elements count: ",,,,…" is bounded too
      if (entry === '') continue;
      const c = canonicalIP(entry);
      if (c === null) return peer;
      if (!t.addrs.has(c)) return entry;
      leftmost = entry;
    }
  }
  return leftmost ?? peer;
}

/**
 * An IP address's canonical text, null when it is not one: IPv4 dotted, an
 * IPv4-mapped IPv6 address as its IPv4 address, other IPv6 as eight
 * lowercase hex groups without leading zeros (the zone kept).
 */
export function canonicalIP(s: string): string | null {
  if (s.length > MAX_ENTRY) return null;
  if (isIPv4(s)) return s.split('.').map(Number).join('.'); // 010.0.0.1 is 10.0.0.1
  if (!isIPv6(s)) return null;
  const zoneAt = s.indexOf('%');
  const zone = zoneAt >= 0 ? s.slice(zoneAt) : '';
  const addr = zoneAt >= 0 ? s.slice(0, zoneAt) : s;
  const groups: number[] = [];
  const halves = addr.split('::');
  const take = (half: string, into: number[]): void => {
    if (half === '') return;
    for (const g of half.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        into.push((a << 8) | b, (c << 8) | d);
      } else into.push(parseInt(g, 16));
    }
  };
  take(halves[0]!, groups);
  if (halves.length === 2) {
    const tail: number[] = [];
    take(halves[1]!, tail);
    while (groups.length + tail.length < 8) groups.push(0);
    groups.push(...tail);
  }
  if (zone === '' && groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  }
  return groups.map((g) => g.toString(16)).join(':') + zone;
}
