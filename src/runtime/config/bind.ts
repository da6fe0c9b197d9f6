// Listen addresses, in gunicorn's forms:
//   HOST:PORT        127.0.0.1:8000, localhost:8000, 0.0.0.0:80
//   [IPV6]:PORT      [::1]:8000, [::]:8000
//   :PORT            the default host, 127.0.0.1 (gunicorn would bind every
//                    interface here; drover keeps a shorthand from exposing
//                    a server: say 0.0.0.0:PORT when that is what you mean)
//   HOST             port 8000
//   unix:PATH        unix:/run/app.sock (also unix://PATH, as in gunicorn)
//   tcp://HOST:PORT  accepted for gunicorn configs
// Host names are checked for form only; resolving them is listen's job.

import { UNIX_PATH_MAX, formatAddr, type Addr } from '../../os/types.js';
import type { Parsed } from './types.js';
import { bad, ok } from './values.js';
import { show, typeName } from './names.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8000;

const FORMS = 'HOST:PORT, [IPV6]:PORT, :PORT or unix:PATH';

export function isIPv4(h: string): boolean {
  const parts = h.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** RFC 4291 text form, with an optional trailing dotted quad and zone (%eth0). */
export function isIPv6(h: string): boolean {
  const zone = h.indexOf('%');
  if (zone >= 0) {
    if (!/^[\w.-]+$/.test(h.slice(zone + 1))) return false;
    h = h.slice(0, zone);
  }
  const halves = h.split('::');
  if (halves.length > 2) return false;
  const groups = (s: string): string[] | null => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return false;
  const all = [...head, ...tail];
  let count = all.length;
  const last = all[all.length - 1];
  if (last !== undefined && last.includes('.')) {
    if (!isIPv4(last)) return false;
    all.pop();
    count += 1; // a dotted quad fills two groups
  }
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}

function isHostname(h: string): boolean {
  if (h.length > 253) return false;
  const labels = h.split('.');
  // All-numeric labels are an IPv4 address or a typo of one, never a name.
  if (labels.every((l) => /^\d+$/.test(l))) return false;
  return labels.every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
}

function parsePort(s: string, whole: string): Parsed<number> {
  if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) {
    return bad(`port must be a whole number from 0 to 65535, got ${show(s)} in ${show(whole)}`);
  }
  return ok(Number(s));
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

export function parseBind(text: string): Parsed<Addr> {
  if (text === '') return bad(`expected ${FORMS}, got an empty address`);
  if (text.startsWith('unix:')) {
    const path = text.startsWith('unix://') ? text.slice(7) : text.slice(5);
    if (path === '') return bad(`a Unix socket needs a path, e.g. unix:/run/drover.sock; got ${show(text)}`);
    if (path.includes('\0')) return bad(`a Unix socket path cannot contain a NUL byte, got ${show(text)}`);
    const n = utf8Length(path);
    if (n > UNIX_PATH_MAX) {
      return bad(`a Unix socket path is at most ${UNIX_PATH_MAX} bytes, ${show(text)} has ${n}; use a shorter path`);
    }
    return ok({ path });
  }
  if (text.startsWith('fd://')) return bad(`fd:// addresses are not supported, got ${show(text)}; drover takes inherited sockets from systemd (LISTEN_FDS)`);
  const rest = text.startsWith('tcp://') ? text.slice(6) : text;

  let host: string;
  let port: string | null;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return bad(`an IPv6 address needs its closing "]", e.g. [::1]:8000; got ${show(text)}`);
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after === '') port = null;
    else if (after.startsWith(':')) port = after.slice(1);
    else return bad(`expected ":PORT" after "]", got ${show(text)}`);
    if (!isIPv6(host)) return bad(`${show(host)} is not an IPv6 address, in ${show(text)}`);
  } else {
    const colons = rest.split(':').length - 1;
    if (colons > 1) return bad(`an IPv6 address goes in brackets with its port, e.g. [::1]:8000; got ${show(text)}`);
    const at = rest.indexOf(':');
    host = at < 0 ? rest : rest.slice(0, at);
    port = at < 0 ? null : rest.slice(at + 1);
    if (host === '') host = DEFAULT_HOST;
    else if (at < 0 && /^\d+$/.test(host)) return bad(`expected ${FORMS}, got ${show(text)}; for a port on the default host write ":${host}"`);
    else if (!isIPv4(host) && !isHostname(host)) return bad(`${show(host)} is not an IPv4 address or a host name, in ${show(text)}; expected ${FORMS}`);
    host = host.toLowerCase();
  }
  if (port === null) return ok({ host, port: DEFAULT_PORT });
  if (port === '') return bad(`a port must follow the ":", got ${show(text)}`);
  const p = parsePort(port, text);
  return p.ok ? ok({ host, port: p.value }) : p;
}

/**
 * The bind setting: one address or a list. Text sources hand in a list
 * already split (the environment splits on commas and spaces, the CLI gives
 * one per --bind). Every bad address is reported, not just the first.
 */
export function parseBindList(raw: unknown, text: boolean): Parsed<Addr[]> {
  const items: unknown[] = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : [];
  if (!Array.isArray(raw) && typeof raw !== 'string') {
    return bad(`expected an address (${FORMS}) or a list of them, got ${show(raw)}${text ? '' : ` (${typeName(raw)})`}`);
  }
  if (items.length === 0) return bad(`expected at least one address (${FORMS}), got none`);
  const problems: string[] = [];
  const addrs: Addr[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'string') {
      problems.push(`expected an address string (${FORMS}), got ${show(item)}`);
      continue;
    }
    const r = parseBind(item);
    if (!r.ok) {
      problems.push(...r.problems);
      continue;
    }
    const key = formatAddr(r.value);
    // Two binds of one address would fail at listen with EADDRINUSE, naming the wrong cause.
    if (seen.has(key)) problems.push(`${key} is given more than once`);
    seen.add(key);
    addrs.push(r.value);
  }
  return problems.length > 0 ? bad(...problems) : ok(addrs);
}
