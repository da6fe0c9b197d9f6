// The request mix of `drover sim --config FILE`: which requests the
// simulated load sends, how often, and for how long. It is the `sim` section
// of the user's config file; the server skips that section
// (runtime/config/file.ts) and drover sim reads it here.
//
//   sim: {
//     rate: 20,            // requests per simulated second, open loop: sent on
//                          // schedule, answered or not (0 < rate <= 2000; default 20)
//     requests: [          // drawn at random by weight; default ['GET /']
//       'GET /',           // shorthand "[METHOD ]PATH"; the method defaults to GET
//       { method: 'GET', path: '/users/1', weight: 5 },
//       { method: 'POST', path: '/orders', body: '{"n":1}', headers: { 'content-type': 'application/json' }, weight: 1 },
//       { method: 'PUT', path: '/orders/1', body: { n: 2 } },   // JSON data: sent as JSON
//     ],
//     duration: 30,        // simulated seconds of load and faults per seed
//                          // (1..3600; default: drover sim's --duration, 30)
//   }
//
// Every key is optional; `sim: {}` is the default mix, GET / at 20
// requests/s. A key whose value is undefined (a JS config's `x: cond ? v :
// undefined`) counts as left out. In a request:
// - path (required): starts with "/", printable ASCII without spaces (the
//   query string included; percent-encode anything else, as encodeURI does),
//   at most 2048 characters. A whole URL is refused: the load goes to the
//   simulated server, so only its path means anything.
// - method: default GET; a token (RFC 7230: letters, digits and
//   !#$%&'*+-.^_`|~, at most 32), upper-cased (`get` is GET). A standard
//   method (HTTP_METHODS) or an extension one, but a near miss of a standard
//   one (PSOT, GTE) is refused as the typo it surely is. CONNECT is refused:
//   it asks for a tunnel, not for the app. node:http's parser answers 400 to
//   a method it does not know, before the app sees the request.
// - weight: a number > 0, at most 1e6 (default 1); a request is drawn with
//   probability weight / the sum of the weights (pickRequest).
// - body: a string, sent as is (UTF-8); or JSON data, an object or array of
//   plain objects, arrays, strings, finite numbers, booleans and null, sent
//   as JSON.stringify writes it (a key whose value is undefined left out),
//   with content-type application/json unless the headers name a
//   content-type; null or left out: no body. At most 1 MiB each, and 16 MiB
//   for all the bodies of a mix (drover sim holds them).
// - headers: { name: value }: names are tokens (at most 256 characters),
//   each once (case-insensitive); values are strings of printable ASCII and
//   tabs (no CR or LF, which would end the header and begin another), at
//   most 8192 characters; at most 100 headers. content-length,
//   transfer-encoding, connection and host are refused: drover sim's client
//   sets them itself.
// At most 1000 requests. An unknown key, in `sim` or in a request, is
// refused, with "did you mean" when a known one is close.
//
// parseMix reports every problem at once (the first 50, then a count), each
// as `PLACE in FILE: what is wrong; the fix`, PLACE like sim.requests[2].path,
// in a ConfigError, as the rest of the config's checks do.

import { Buffer } from 'node:buffer';
import { ConfigError } from '../runtime/config/errors.js';
import { closest, show, typeName } from '../runtime/config/names.js';

export interface MixRequest {
  /** Upper-case, a token. */
  readonly method: string;
  /** Starts with '/', printable ASCII, the query string included. */
  readonly path: string;
  /** > 0: drawn with probability weight / the sum of the weights. */
  readonly weight: number;
  /** Sent as UTF-8 with a content-length; null: no body. */
  readonly body: string | null;
  /** Sent as given (after drover sim's own host and before its content-length and connection). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface Mix {
  /** Requests per simulated second, open loop. */
  readonly rate: number;
  /** At least one. */
  readonly requests: readonly MixRequest[];
  /** Simulated ms of load and faults per seed; null: not given (drover sim's --duration, default 30 s). */
  readonly durationMs: number | null;
}

export const DEFAULT_RATE = 20;
export const RATE_MAX = 2000;
export const DURATION_MIN_S = 1;
export const DURATION_MAX_S = 3600;
/** What drover sim runs when neither --duration nor sim.duration says. */
export const DEFAULT_DURATION_S = 30;
export const REQUESTS_MAX = 1000;
export const PATH_MAX = 2048;
export const METHOD_MAX = 32;
export const WEIGHT_MAX = 1e6;
export const BODY_MAX = 1024 * 1024;
export const BODIES_MAX = 16 * 1024 * 1024;
export const HEADERS_MAX = 100;
export const HEADER_NAME_MAX = 256;
export const HEADER_VALUE_MAX = 8192;
/** Problems shown at most; a count says how many more. */
const PROBLEMS_SHOWN = 50;
/** JSON bodies nested deeper than this are refused (and a cycle is found before the stack runs out). */
const JSON_DEPTH_MAX = 100;

/** RFC 7230 token (method, header name). */
export const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Printable ASCII, no space: a path's characters. */
export const PATH_RE = /^\/[\x21-\x7e]*$/;
/** Printable ASCII and tab: a header value's characters. */
export const HEADER_VALUE_RE = /^[\t\x20-\x7e]*$/;
/** RFC 9110's methods and PATCH: the names a near miss is measured against. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH', 'CONNECT'] as const;
/** Headers drover sim's client writes itself, and why a mix cannot give them. */
export const CLIENT_HEADERS: Readonly<Record<string, string>> = {
  'content-length': "from the body's length",
  'transfer-encoding': 'the body is sent whole, with a content-length',
  connection: 'it keeps connections alive or closes them as the load needs',
  host: "the simulated server's address",
};
export const SIM_KEYS = ['rate', 'requests', 'duration'] as const;
export const REQUEST_KEYS = ['method', 'path', 'weight', 'body', 'headers'] as const;
/** Other names for a request's keys, as other tools spell them. */
const REQUEST_ALIASES: Readonly<Record<string, string>> = { url: 'path', uri: 'path', verb: 'method', data: 'body', json: 'body' };

const TOKEN_CHARS = "letters, digits and !#$%&'*+-.^_`|~";
const REQUEST_EG = '"GET /users/1", or { method: "POST", path: "/orders", body: "{}" }';
const LIST_EG = '["GET /", { method: "POST", path: "/orders", body: "{}", weight: 2 }]';

export const DEFAULT_MIX: Mix = Object.freeze({
  rate: DEFAULT_RATE,
  requests: Object.freeze([Object.freeze({ method: 'GET', path: '/', weight: 1, body: null, headers: Object.freeze({}) })]),
  durationMs: null,
});

/** "got X (a type)": the type said when it is the wrong one. */
function got(raw: unknown, wrongType = false): string {
  const shown = show(raw);
  return `got ${shown}${wrongType && shown !== typeName(raw) ? ` (${typeName(raw)})` : ''}`;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `.key`, or `["key"]` when the key is not a plain name. */
function member(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function unknownKey(key: string, known: readonly string[], aliases: Readonly<Record<string, string>> = {}): string {
  const lower = key.toLowerCase();
  const near = (known.includes(lower) ? lower : null) ?? aliases[lower] ?? closest(lower, known);
  const list = `${known.slice(0, -1).join(', ')} and ${known[known.length - 1]}`;
  return `unknown key ${JSON.stringify(key)}; ${near === null ? `it holds ${list}` : `did you mean "${near}"?`}`;
}

/** A method, or the problem in words. */
function readMethod(raw: unknown): { method: string } | { problem: string } {
  const what = `a method such as GET or POST (a token of ${TOKEN_CHARS}, at most ${METHOD_MAX})`;
  if (typeof raw !== 'string') return { problem: `expected ${what}, ${got(raw, true)}` };
  if (raw.length === 0 || raw.length > METHOD_MAX || !TOKEN_RE.test(raw)) {
    const near = closest(raw.trim().toUpperCase(), HTTP_METHODS);
    return { problem: `expected ${what}, ${got(raw)}${near !== null ? `; did you mean "${near}"?` : ''}` };
  }
  const method = raw.toUpperCase();
  if (method === 'CONNECT') return { problem: 'CONNECT asks the server for a tunnel, not for the app: drover sim does not send it; use another method' };
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    const near = closest(method, HTTP_METHODS);
    if (near !== null && near !== 'CONNECT') {
      return { problem: `the method ${show(raw)} looks like a typo of ${near}: write "${near}" (an extension method is taken as given, but not one this close to a standard one)` };
    }
  }
  return { method };
}

/** A path, or the problem in words. */
function readPath(raw: unknown): { path: string } | { problem: string } {
  const what = 'a path starting with "/", e.g. "/users/1?full=1"';
  if (typeof raw !== 'string') return { problem: `expected ${what}, ${got(raw, true)}` };
  if (!raw.startsWith('/')) {
    const url = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([/?#].*)?$/is.exec(raw);
    if (url !== null) {
      const p = url[1] === undefined ? '/' : url[1].startsWith('/') ? url[1] : `/${url[1]}`;
      return { problem: `expected ${what}, ${got(raw)}: the load goes to the simulated server, so give the path only: ${show(p)}` };
    }
    const fix = raw.trim() !== '' && /^[\x21-\x7e]+$/.test(raw) ? `; did you mean "/${raw}"?` : '';
    return { problem: `expected ${what}, ${got(raw)}${fix}` };
  }
  if (raw.length > PATH_MAX) return { problem: `the path is ${raw.length} characters, more than ${PATH_MAX}; shorten it` };
  if (!PATH_RE.test(raw)) {
    const i = [...raw].findIndex((c) => !/^[\x21-\x7e]$/.test(c));
    const c = [...raw][i]!;
    const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    const which = /\s/.test(c) ? `whitespace (${code})` : c < ' ' || c === '\x7f' ? `a control character (${code})` : `a non-ASCII character ${JSON.stringify(c)} (${code})`;
    return { problem: `the path ${show(raw)} has ${which}: a path is printable ASCII without spaces; percent-encode the rest (encodeURI(${show(raw)}) does)` };
  }
  return { path: raw };
}

const JSON_HOLDS = '; a JSON body holds only plain objects, arrays, strings, finite numbers, true, false and null';

/**
 * The first thing in `v` that JSON cannot say as it is, with where it is
 * (`at`, a place under the body, `body`); null when all of it is plain JSON data.
 * `budget` counts values: more values than BODY_MAX is more than BODY_MAX
 * bytes of JSON, found without writing it.
 */
function notJson(v: unknown, at: string, body: string, ancestors: object[], budget: { left: number }): { at: string; what: string } | null {
  if (--budget.left < 0) return { at, what: 'too large' };
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return null;
  if (typeof v === 'number') return Number.isFinite(v) ? null : { at, what: `${show(v)} is not a JSON number (JSON.stringify would send null)${JSON_HOLDS}` };
  if (typeof v !== 'object') return { at, what: `${typeName(v)} is not JSON data${JSON_HOLDS}` };
  if (ancestors.includes(v)) return { at, what: 'refers back to a value that holds it (a cycle), which JSON cannot say' };
  if (ancestors.length >= JSON_DEPTH_MAX) return { at: body, what: `the body is nested more than ${JSON_DEPTH_MAX} levels deep; flatten it` };
  if (!Array.isArray(v)) {
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto !== Object.prototype && proto !== null) {
      const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
      return { at, what: `${typeof name === 'string' && name !== '' ? `a ${name}` : 'an object of a class'} is not plain JSON data: convert it to plain data first${JSON_HOLDS}` };
    }
  }
  ancestors.push(v);
  try {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const p = notJson(v[i], `${at}[${i}]`, body, ancestors, budget);
        if (p !== null) return p;
      }
    } else {
      for (const [k, x] of Object.entries(v)) {
        // Left out, as JSON.stringify leaves it (a JS config's `k: cond ? v : undefined`).
        if (x === undefined) continue;
        const p = notJson(x, `${at}${member(k)}`, body, ancestors, budget);
        if (p !== null) return p;
      }
    }
  } finally {
    ancestors.pop();
  }
  return null;
}

const BODY_WHAT = 'a string, or JSON data (an object or array) to send as JSON, or null for none';

/** A body as the bytes' text and whether it was JSON data; or problems, each with its place under `at`. */
function readBody(raw: unknown, at: string): { body: string | null; json: boolean } | { problems: { at: string; what: string }[] } {
  if (raw === null) return { body: null, json: false };
  const tooBig = (size: string): string => `the body is ${size}; drover sim sends at most ${BODY_MAX} bytes (1 MiB) in one body`;
  if (typeof raw === 'string') {
    const n = Buffer.byteLength(raw, 'utf8');
    return n > BODY_MAX ? { problems: [{ at, what: tooBig(`${n} bytes`) }] } : { body: raw, json: false };
  }
  if (typeof raw !== 'object') {
    const fix = typeof raw === 'number' || typeof raw === 'boolean' ? `; write ${JSON.stringify(String(raw))} to send the text ${String(raw)}` : '';
    return { problems: [{ at, what: `expected ${BODY_WHAT}, ${got(raw, true)}${fix}` }] };
  }
  let text: string;
  try {
    const p = notJson(raw, at, at, [], { left: BODY_MAX });
    if (p !== null) {
      if (p.what === 'too large') return { problems: [{ at, what: tooBig(`more than ${BODY_MAX} bytes as JSON`) }] };
      return { problems: [p] };
    }
    text = JSON.stringify(raw);
  } catch (e) {
    return { problems: [{ at, what: `reading the body as JSON data failed: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  const n = Buffer.byteLength(text, 'utf8');
  if (n > BODY_MAX) return { problems: [{ at, what: tooBig(`${n} bytes as JSON`) }] };
  return { body: text, json: true };
}

/** Headers as given (null-prototype safe), or problems with their places. */
function readHeaders(raw: unknown, at: string): { headers: [string, string][] } | { problems: { at: string; what: string }[] } {
  if (!isObject(raw)) return { problems: [{ at, what: `expected an object of header names and values, e.g. { "accept": "application/json" }, ${got(raw, true)}` }] };
  const entries = Object.entries(raw).filter(([, v]) => v !== undefined);
  if (entries.length > HEADERS_MAX) return { problems: [{ at, what: `${entries.length} headers, more than the ${HEADERS_MAX} drover sim sends with one request` }] };
  const problems: { at: string; what: string }[] = [];
  const headers: [string, string][] = [];
  const seen = new Map<string, string>();
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!TOKEN_RE.test(name) || name.length > HEADER_NAME_MAX) {
      problems.push({ at, what: `${show(name)} is not a header name: a name is ${TOKEN_CHARS}, at most ${HEADER_NAME_MAX}` });
      continue;
    }
    if (Object.hasOwn(CLIENT_HEADERS, lower)) {
      problems.push({ at, what: `${show(name)} is set by drover sim's client itself (${CLIENT_HEADERS[lower]}); remove it` });
      continue;
    }
    const twin = seen.get(lower);
    if (twin !== undefined) {
      problems.push({ at, what: `${show(twin)} and ${show(name)} are the same header (names are case-insensitive); keep one` });
      continue;
    }
    seen.set(lower, name);
    const place = `${at}${member(name)}`;
    if (typeof value !== 'string') {
      const fix = typeof value === 'number' || typeof value === 'boolean' ? `; write ${JSON.stringify(String(value))}` : '';
      problems.push({ at: place, what: `expected a string, ${got(value, true)}${fix}` });
    } else if (/[\r\n]/.test(value)) {
      problems.push({ at: place, what: `a header value cannot hold CR or LF (a line break ends the header and begins another), ${got(value)}` });
    } else if (!HEADER_VALUE_RE.test(value)) {
      problems.push({ at: place, what: `a header value is printable ASCII and tabs, ${got(value)}; encode the rest (encodeURIComponent does)` });
    } else if (value.length > HEADER_VALUE_MAX) {
      problems.push({ at: place, what: `the value is ${value.length} characters, more than ${HEADER_VALUE_MAX}` });
    } else headers.push([name, value]);
  }
  return problems.length > 0 ? { problems } : { headers };
}

/** One entry of sim.requests: the request, or problems with their places. */
function readRequest(raw: unknown, at: string): { request: MixRequest } | { problems: { at: string; what: string }[] } {
  if (typeof raw === 'string') {
    const text = raw.trim();
    if (text === '') return { problems: [{ at, what: `expected "[METHOD ]PATH" text, e.g. "GET /users/1", ${got(raw)}` }] };
    let methodText = 'GET';
    let pathText = text;
    const m = /^([^\s/]\S*)\s+(.*)$/s.exec(text);
    if (m !== null) [methodText, pathText] = [m[1]!, m[2]!];
    else if ((HTTP_METHODS as readonly string[]).includes(text.toUpperCase())) {
      return { problems: [{ at, what: `${show(raw)} has no path; write "[METHOD ]PATH", e.g. "${text.toUpperCase()} /"` }] };
    }
    const problems: { at: string; what: string }[] = [];
    const method = readMethod(methodText);
    const path = readPath(pathText);
    if ('problem' in method) problems.push({ at, what: method.problem });
    if ('problem' in path) problems.push({ at, what: path.problem });
    if ('problem' in method || 'problem' in path) return { problems };
    return { request: Object.freeze({ method: method.method, path: path.path, weight: 1, body: null, headers: Object.freeze({}) }) };
  }
  if (!isObject(raw)) return { problems: [{ at, what: `expected "[METHOD ]PATH" text or an object { method, path, weight, body, headers }, e.g. ${REQUEST_EG}, ${got(raw, true)}` }] };

  const problems: { at: string; what: string }[] = [];
  for (const key of Object.keys(raw)) {
    if (!(REQUEST_KEYS as readonly string[]).includes(key)) problems.push({ at, what: unknownKey(key, REQUEST_KEYS, REQUEST_ALIASES) });
  }
  let method = 'GET';
  if (raw.method !== undefined) {
    const r = readMethod(raw.method);
    if ('problem' in r) problems.push({ at: `${at}.method`, what: r.problem });
    else method = r.method;
  }
  let path = '/';
  if (raw.path === undefined) problems.push({ at, what: 'no path: add one, e.g. path: "/users/1"' });
  else {
    const r = readPath(raw.path);
    if ('problem' in r) problems.push({ at: `${at}.path`, what: r.problem });
    else path = r.path;
  }
  let weight = 1;
  if (raw.weight !== undefined) {
    const w = raw.weight;
    if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0 || w > WEIGHT_MAX) {
      problems.push({ at: `${at}.weight`, what: `expected a number above 0 and at most ${WEIGHT_MAX} (default 1; a request is drawn in proportion to its weight), ${got(w, typeof w !== 'number')}` });
    } else weight = w;
  }
  let body: string | null = null;
  let json = false;
  if (raw.body !== undefined) {
    const r = readBody(raw.body, `${at}.body`);
    if ('problems' in r) problems.push(...r.problems);
    else ({ body, json } = r);
  }
  let headers: [string, string][] = [];
  if (raw.headers !== undefined) {
    const r = readHeaders(raw.headers, `${at}.headers`);
    if ('problems' in r) problems.push(...r.problems);
    else headers = r.headers;
  }
  if (problems.length > 0) return { problems };
  if (json && !headers.some(([h]) => h.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json']);
  return { request: Object.freeze({ method, path, weight, body, headers: Object.freeze(Object.fromEntries(headers)) }) };
}

/**
 * The `sim` section of the config file at `where` (named in messages), as a
 * Mix; a ConfigError with every problem found (see the header comment).
 */
export function parseMix(data: unknown, where: string): Mix {
  const problems: { at: string; what: string }[] = [];
  if (!isObject(data)) {
    throw new ConfigError([`sim in ${where}: expected an object { rate, requests, duration }, ${got(data, true)}; leave sim out for the default, GET / at ${DEFAULT_RATE} requests/s`]);
  }
  for (const key of Object.keys(data)) {
    if (!(SIM_KEYS as readonly string[]).includes(key)) problems.push({ at: 'sim', what: unknownKey(key, SIM_KEYS) });
  }

  let rate = DEFAULT_RATE;
  if (data.rate !== undefined) {
    const r = data.rate;
    if (typeof r !== 'number' || !Number.isFinite(r) || r <= 0 || r > RATE_MAX) {
      problems.push({ at: 'sim.rate', what: `expected a number of requests per simulated second, above 0 and at most ${RATE_MAX} (e.g. 50; default ${DEFAULT_RATE}), ${got(r, typeof r !== 'number')}` });
    } else rate = r;
  }

  let durationMs: number | null = null;
  if (data.duration !== undefined) {
    const d = data.duration;
    if (typeof d !== 'number' || !Number.isFinite(d) || d < DURATION_MIN_S || d > DURATION_MAX_S) {
      problems.push({ at: 'sim.duration', what: `expected a number of simulated seconds from ${DURATION_MIN_S} to ${DURATION_MAX_S} (default ${DEFAULT_DURATION_S}), ${got(d, typeof d !== 'number')}` });
    } else durationMs = Math.round(d * 1000);
  }

  let requests: readonly MixRequest[] = DEFAULT_MIX.requests;
  if (data.requests !== undefined) {
    const list = data.requests;
    if (!Array.isArray(list)) {
      const one = typeof list === 'string' || isObject(list) ? `; put the one request in a list: [${show(list)}]` : '';
      problems.push({ at: 'sim.requests', what: `expected a list of requests, e.g. ${LIST_EG}, ${got(list, true)}${one}` });
    } else if (list.length === 0) {
      problems.push({ at: 'sim.requests', what: 'the list is empty: give at least one request, or leave requests out for GET /' });
    } else if (list.length > REQUESTS_MAX) {
      problems.push({ at: 'sim.requests', what: `${list.length} requests, more than the ${REQUESTS_MAX} drover sim takes; list each request once, with a weight for how often it is sent` });
    } else {
      const out: MixRequest[] = [];
      let bodies = 0;
      for (let i = 0; i < list.length; i++) {
        const r = readRequest(list[i], `sim.requests[${i}]`);
        if ('problems' in r) problems.push(...r.problems);
        else {
          out.push(r.request);
          if (r.request.body !== null) bodies += Buffer.byteLength(r.request.body, 'utf8');
        }
      }
      if (bodies > BODIES_MAX) {
        problems.push({ at: 'sim.requests', what: `the bodies add up to ${bodies} bytes, more than the ${BODIES_MAX} (16 MiB) drover sim holds for a mix; send smaller bodies` });
      }
      requests = Object.freeze(out);
    }
  }

  if (problems.length > 0) {
    const lines = problems.slice(0, PROBLEMS_SHOWN).map((p) => `${p.at} in ${where}: ${p.what}`);
    if (problems.length > PROBLEMS_SHOWN) lines.push(`sim in ${where}: ${problems.length - PROBLEMS_SHOWN} more problems not shown; fix the ones above first`);
    throw new ConfigError(lines);
  }
  return Object.freeze({ rate, requests, durationMs });
}

/** Running sums of a mix's weights, made once per mix. */
const SUMS = new WeakMap<Mix, { requests: readonly MixRequest[]; sums: Float64Array }>();

function sums(mix: Mix): Float64Array {
  const cached = SUMS.get(mix);
  if (cached !== undefined && cached.requests === mix.requests && cached.sums.length === mix.requests.length) return cached.sums;
  const s = new Float64Array(mix.requests.length);
  let total = 0;
  mix.requests.forEach((r, i) => (s[i] = total += r.weight));
  SUMS.set(mix, { requests: mix.requests, sums: s });
  return s;
}

/**
 * The request a uniform draw `r` in [0, 1) picks: request i for r in
 * [sum of the weights before i, sum through i) / total, found by binary
 * search over the running sums. r just under 1 is the last request, even
 * when rounding puts r x total at the total itself.
 */
export function pickRequest(mix: Mix, r: number): MixRequest {
  const n = mix.requests.length;
  if (n === 0) throw new Error('pickRequest: the mix has no requests');
  if (!(r >= 0 && r < 1)) throw new RangeError(`pickRequest: r must be in [0, 1), got ${r}`);
  const s = sums(mix);
  const target = r * s[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  // The first running sum above the target.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (s[mid]! > target) hi = mid;
    else lo = mid + 1;
  }
  return mix.requests[lo]!;
}
