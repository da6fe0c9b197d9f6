// The route key of a request (DESIGN.md, "Lanes"): `METHOD /path` with the
// query string dropped and variable segments folded to a placeholder, as a
// 32-bit hash computed in one pass over the characters of the raw URL,
// without a regex, a substring, a split or any other allocation. The
// predictor (predictor.ts) is keyed by it.
//
// The key is the hash of a character stream, the "key string":
//
//   METHOD ' ' SEGMENTS
//
// METHOD is hashed exactly as given (node:http uppercases it), but HEAD is
// GET. SEGMENTS are the path's non-empty segments, each preceded by '/',
// with ASCII letters in lower case and dot segments resolved; a variable
// segment contributes the placeholder `:id` instead of its characters; no
// segment at all gives `/`. `routeKeyString` builds that string (allocating, for logs
// and `drover ctl stats`), and `hashRouteKeyString(routeKeyString(m, u))`
// equals `routeKey(m, u)` for every input (a property test checks it).
//
// Rules, decided here:
// - The path ends at the first `?` (query) or `#` (fragment).
// - Variable segments, folded: all decimal digits (any length: `0`, `42`,
//   `2024`); a UUID, 8-4-4-4-12 hex digits in any case; a long hex id, 16
//   or more hex digits in any case, so 24-hex MongoDB ObjectIds, 32-hex
//   md5-style and 40-hex sha1-style ids fold. A segment that only contains
//   such an id among other characters (`42.json`, `app.3fa9c1b2.js`,
//   `v2`) is a literal: folding only whole segments is what routers do too.
//   Hex words shorter than 16 (`cafe`, `deadbeef`, `facade`) stay literal.
// - Empty segments are dropped: repeated slashes collapse and a trailing
//   slash does not count, so `/a`, `/a/` and `//a` have one key, as in
//   Express (non-strict routing) and find-my-way with ignoreTrailingSlash
//   and ignoreDuplicateSlashes. `/` and the empty URL give `METHOD /`.
// - Percent-encoding is left as it is: `%31` is not a digit and `/a%2Fb` is
//   one segment. Characters beyond ASCII are hashed as their UTF-16 units.
// - One route, however a client spells it (any client may spell it to run a
//   route known slow on a fast worker: `/./burn`, `/x/../burn`, `/BURN` and
//   `HEAD /burn` each did, as unknown routes, where the app served /burn):
//   - HEAD is keyed as GET: Express and fastify answer it with the GET
//     handler, which does the same work.
//   - ASCII letters are folded to lower case, as Express routes by default.
//     An app that routes by case answers the other spelling 404, and a fast
//     error never lowers an average (predictor.ts).
//   - A backslash is a slash, as WHATWG URL takes it in http(s) URLs (apps
//     that route on `new URL(req.url, base)`: `/x\..\burn` is `/burn` there).
//   - Dot segments of a path (`.`, `..`, and `%2e` in any case for a dot)
//     are resolved after empty segments are dropped, as WHATWG URL does
//     (RFC 3986 5.2.4): `..` takes the segment before it, if any, away.
//     Only paths: a target kept as it is (below) keeps its dots.
// - Absolute form (`http://host:8080/p?q`, any scheme) keys as its path
//   (`/p`); with no path, `/`. The authority is not part of the key.
// - Any other target that does not start with `/` (`*` of `OPTIONS *`, the
//   authority form `host:443` of CONNECT) is kept as it is, segments and
//   folding applying the same way, without a leading `/`: `OPTIONS *`.
// - A literal segment `:id` has the same key as a folded one: the key is a
//   function of the key string.
//
// The hash: per UTF-16 unit c of the stream, h = imul(rotl(h, 5) ^ c,
// 0x9e3779b1) (32 bits, Math.imul), then MurmurHash3's fmix32 finalizer so
// that the low bits (the predictor's table index) are well mixed. FNV-1a
// was the first choice and was measured at 3x the collision rate of a
// random function on sequential names (`/u/w1`, `/u/w2`, ... a million of
// them: 368 colliding pairs where 116 are expected): its multiply only
// carries bits upwards, so what falls off the top is lost; the rotation
// keeps it in play (0 pairs there, and the expected rate on random names).
// The key is returned as a signed int32, which is a Smi in V8 on 64-bit
// Node (no pointer compression): a key never needs a heap number, so passing
// and returning it allocates nothing.
//
// Why 32 bits and not 53: everything stays in int32 arithmetic that V8
// compiles to machine instructions (a 53-bit hash needs float arithmetic or
// two lanes, twice the work per character), the key fits one Int32Array
// slot, and a collision only merges two routes' averages - a fast route may
// be sent to the slow lane, which costs it latency, never correctness. With
// R real routes the chance of any collision among them is about R²/2³³:
// 0.01% for 1,000 routes; the chance that a flood of F unique URLs hits a
// given route is F/2³² (0.02% for a million).
//
// Folding in one pass: the hash state is saved where a segment starts
// (after its '/'); the segment's characters are hashed as they come while
// its shape (all digits? all hex? hex and four dashes?) is tracked in two
// integers, the AND and the sum of the characters' class values (a dash's
// carries a unit of its own: the sum counts them, without a test per
// character: it measured a sixth of the scan). At the segment's end, a UUID
// candidate's dashes are checked where they must be, and if the segment is
// variable the state goes back to the saved one and the placeholder's three
// characters are hashed instead - constant work, whatever its length.

/** The placeholder that stands for a folded segment in the key string. */
export const PLACEHOLDER = ':id';
/** Hex ids this long or longer fold. */
export const LONG_HEX = 16;

// Everything the scan touches lives in this closure rather than at module
// level: V8 (Node 20) keeps module-level bindings in mutable context slots,
// so every inlined call to a module-level helper (mix, once a character)
// and every use of a module-level table reloads and checks it in the loop;
// inside a closure created once they are constants to the optimiser. The
// same code measured 15-20% faster this way, on bench/classify's URLs.
const scanner = (() => {
  const SEED = 0x811c9dc5 | 0;
  const MUL = 0x9e3779b1 | 0;

  /** One character into the hash state: rotate, xor, multiply. */
  function mix(h: number, c: number): number {
    return Math.imul(((h << 5) | (h >>> 27)) ^ c, MUL);
  }

  // Character classes.
  const DIGIT = 1; // 0-9
  const HEX = 2; // 0-9 a-f A-F
  const UUIDCH = 4; // hex or '-'
  const SLASH = 8; // '/' '\\'
  const END = 16; // '?' '#': the path ends
  const SCHEME = 32; // a-z A-Z 0-9 + - .; the bit that lower-cases A-Z, which every other SCHEME character has set
  const DOT = 64; // . % 2 e E: a segment made of these alone may be a dot segment (`.`, `..`, `%2e`, ...)
  const STOP = SLASH | END;
  const SEGMENT_START = DIGIT | HEX | UUIDCH | DOT;
  const LONG = LONG_HEX;
  /**
   * A dash's class value has this added: a segment's tally (the sum of its
   * class values) >> DASH_SHIFT counts its dashes while the rest stays below
   * it, which holds where it is read (36 characters of at most 103 each).
   */
  const DASH_SHIFT = 12;
  const DASH_UNIT = 1 << DASH_SHIFT;
  const UUID_LENGTH = 36;

  // 128 KiB, a class value for every UTF-16 unit, so that the scan needs no
  // "is it ASCII?" test; only its first 128 entries are ever hot in the cache.
  const CLASS = new Uint16Array(65536);
  for (let c = 48; c <= 57; c++) CLASS[c] = DIGIT | HEX | UUIDCH | SCHEME;
  for (let c = 97; c <= 102; c++) CLASS[c] = HEX | UUIDCH;
  for (let c = 65; c <= 70; c++) CLASS[c] = HEX | UUIDCH;
  for (let c = 97; c <= 122; c++) CLASS[c]! |= SCHEME;
  for (let c = 65; c <= 90; c++) CLASS[c]! |= SCHEME;
  CLASS[45] = UUIDCH | SCHEME | DASH_UNIT; // '-'
  CLASS[43] = SCHEME; // '+'
  CLASS[46] = SCHEME; // '.'
  for (const c of [46, 37, 50, 101, 69]) CLASS[c]! |= DOT;
  CLASS[47] = SLASH;
  CLASS[92] = SLASH;
  CLASS[63] = END;
  CLASS[35] = END;

  function fmix(h: number): number {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h | 0;
  }

  /** The hash state after `METHOD ' '`, computed. */
  function hashMethod(method: string): number {
    let h = SEED;
    for (let i = 0; i < method.length; i++) h = mix(h, method.charCodeAt(i));
    return mix(h, 32);
  }

  const S_GET = hashMethod('GET');
  const S_POST = hashMethod('POST');
  const S_PUT = hashMethod('PUT');
  const S_DELETE = hashMethod('DELETE');
  const S_PATCH = hashMethod('PATCH');
  const S_OPTIONS = hashMethod('OPTIONS');

  /**
   * The hash state after `METHOD ' '`; the common methods' are precomputed
   * (node:http hands out interned method strings). GET and POST are tested
   * here, in a function small enough to be inlined into the scan; a switch
   * over all seven here measured an eighth of routeKey.
   */
  function methodState(method: string): number {
    if (method === 'GET') return S_GET;
    if (method === 'POST') return S_POST;
    return otherMethodState(method);
  }

  function otherMethodState(method: string): number {
    switch (method) {
      case 'PUT': return S_PUT;
      case 'DELETE': return S_DELETE;
      case 'PATCH': return S_PATCH;
      case 'HEAD': return S_GET;
      case 'OPTIONS': return S_OPTIONS;
      default: return hashMethod(method);
    }
  }

  /**
   * Is the segment of `len` characters at `start` of `url`, whose class
   * values AND to `kinds` and add up to `tally`, a variable one? A UUID: 36
   * hex digits or dashes, four of them dashes, at 8, 13, 18 and 23.
   */
  function variable(kinds: number, len: number, tally: number, url: string, start: number): boolean {
    return (kinds & DIGIT) !== 0
      || ((kinds & HEX) !== 0 && len >= LONG)
      || (len === UUID_LENGTH && (kinds & UUIDCH) !== 0 && tally >> DASH_SHIFT === 4 && uuidDashes(url, start));
  }

  /** Dashes at 8, 13, 18 and 23 of the 36 characters at `start`. Apart from variable, which is inlined into the scans: it is small. */
  function uuidDashes(url: string, start: number): boolean {
    return url.charCodeAt(start + 8) === 45 && url.charCodeAt(start + 13) === 45 && url.charCodeAt(start + 18) === 45 && url.charCodeAt(start + 23) === 45;
  }

  /** The state `h` with the placeholder `:id` hashed in. */
  function placeholder(h: number): number {
    return mix(mix(mix(h, 58), 105), 100);
  }

  /** '/' or '\\'. */
  function slash(c: number): boolean {
    return c === 47 || c === 92;
  }

  const SEPARATOR = /[/\\]/;

  /** 1 if url[start, end) is a dot segment `.`, 2 if `..` (a dot spelled `.` or `%2e`, any case), else 0. */
  function dots(url: string, start: number, end: number): number {
    let d = 0;
    for (let j = start; j < end; d++) {
      if (d === 2) return 0;
      if (url.charCodeAt(j) === 46) j++;
      else if (j + 3 <= end && url.charCodeAt(j) === 37 && url.charCodeAt(j + 1) === 50 && (url.charCodeAt(j + 2) | 32) === 101) j += 3;
      else return 0;
    }
    return d;
  }

  /**
   * Where the path of `url` starts, or -1 for a target kept as it is (not
   * origin or absolute form). For routeKeyString; routeKey makes the same
   * decision as it goes.
   */
  function pathStart(url: string): number {
    const n = url.length;
    if (n === 0 || slash(url.charCodeAt(0))) return 0;
    let j = 0;
    for (; j < n; j++) {
      const c = url.charCodeAt(j);
      if ((CLASS[c]! & SCHEME) === 0) break;
    }
    if (j === 0 || j + 2 >= n || url.charCodeAt(j) !== 58 || !slash(url.charCodeAt(j + 1)) || !slash(url.charCodeAt(j + 2))) return -1;
    for (j += 3; j < n; j++) {
      const c = url.charCodeAt(j);
      if (c === 47 || c === 92 || c === 63 || c === 35) break;
    }
    return j;
  }

  /** See the export below. */
  function routeKey(method: string, url: string): number {
    if (url.length !== 0 && !slash(url.charCodeAt(0))) return otherForm(method, url);
    return fmix(path(methodState(method), url, 0));
  }

  /**
   * The hash state after the path of `url` from position i (a '/', '?', '#'
   * or the end), starting from state h: segment by segment.
   */
  function path(h: number, url: string, i: number): number {
    const n = url.length;
    const h0 = h;
    const i0 = i;
    let emitted = false;
    while (i < n) {
      let c = url.charCodeAt(i);
      if (c === 47 || c === 92) {
        i++;
        continue;
      }
      if (c === 63 || c === 35) break;
      h = mix(h, 47);
      const segStart = h; // the state after the segment's '/'
      const start = i;
      let kinds = SEGMENT_START; // the classes every character of the segment has
      // The sum of their class values. Not truncated with |0 (that measured
      // 7% of routeKey): it stays exact in any case, and a small integer
      // below the 16 KiB of a request head (node:http's max_header_size; a
      // million characters before it could leave the int32 range).
      let tally = 0;
      for (;;) {
        const k = CLASS[c]!;
        if ((k & STOP) !== 0) break;
        h = mix(h, c | (k & SCHEME));
        kinds &= k;
        tally += k;
        if (++i === n) break;
        c = url.charCodeAt(i);
      }
      // Made of dots, '%', '2' and 'e' alone: rare, and then it may be a dot segment, which the whole path is read again for.
      if ((kinds & DOT) !== 0 && dots(url, start, i) !== 0) return dotted(h0, url, i0);
      if (variable(kinds, i - start, tally, url, start)) h = placeholder(segStart);
      emitted = true;
      if (i === n || (c !== 47 && c !== 92)) break; // the end, '?' or '#'
      i++;
    }
    return emitted ? h : mix(h, 47);
  }

  /**
   * routeKey of a target that does not start with '/'. The leading scheme
   * characters are hashed as the first segment of a target kept as it is (no
   * '/' before it); if they turn out to be the scheme of an absolute-form URL,
   * the path after its authority is hashed from the state after the method,
   * rereading nothing.
   */
  function otherForm(method: string, url: string): number {
    const h0 = methodState(method);
    const n = url.length;
    let h = h0;
    let kinds = SEGMENT_START;
    let tally = 0;
    let c = 0;
    let i = 0;
    for (; i < n; i++) {
      c = url.charCodeAt(i);
      const k = CLASS[c]!;
      if ((k & SCHEME) === 0) break;
      h = mix(h, c | SCHEME);
      kinds &= k;
      tally += k;
    }
    if (i === 0 || i + 2 >= n || c !== 58 || !slash(url.charCodeAt(i + 1)) || !slash(url.charCodeAt(i + 2))) {
      return fmix(rest(url, i, h, h0, i, kinds, tally, i !== 0));
    }
    for (i += 3; i < n; i++) {
      c = url.charCodeAt(i);
      if (c === 47 || c === 92 || c === 63 || c === 35) break;
    }
    return fmix(path(h0, url, i));
  }

  /**
   * The rest of routeKey's scan for a target kept as it is (`*`, `host:443`),
   * from position i in the middle of its first segment (len characters of it
   * hashed, with segStart, kinds and tally), character by character. Returns
   * the hash state before fmix.
   */
  function rest(url: string, i: number, h: number, segStart: number, len: number, kinds: number, tally: number, sep: boolean): number {
    const n = url.length;
    let emitted = sep;
    for (; i < n; i++) {
      const c = url.charCodeAt(i);
      const k = CLASS[c]!;
      if ((k & STOP) !== 0) {
        if (len !== 0) {
          if (variable(kinds, len, tally, url, i - len)) h = placeholder(segStart);
          len = 0;
          kinds = SEGMENT_START;
          tally = 0;
        }
        if ((k & END) !== 0) break;
        continue;
      }
      if (len === 0) {
        if (sep) h = mix(h, 47);
        sep = true;
        emitted = true;
        segStart = h;
      }
      h = mix(h, c | (k & SCHEME));
      kinds &= k;
      tally += k;
      len++;
    }
    if (len !== 0 && variable(kinds, len, tally, url, i - len)) h = placeholder(segStart);
    if (!emitted) h = mix(h, 47);
    return h;
  }

  /** See the export below. The scan of routeKey, character by character, with prefix checks at segments' ends. */
  function routeUnder(method: string, url: string, prefixes: Int32Array, count: number): boolean {
    const h0 = methodState(method);
    let h = h0;
    const n = url.length;
    let i = 0;
    let sep = true;
    let segStart = h;
    let len = 0;
    let kinds = SEGMENT_START;
    let tally = 0;
    // A path (origin or absolute form), whose dot segments are resolved; not a target kept as it is.
    let isPath = true;
    if (n !== 0 && !slash(url.charCodeAt(0))) {
      sep = false;
      isPath = false;
      for (; i < n; i++) {
        const c = url.charCodeAt(i);
        const k = CLASS[c]!;
        if ((k & SCHEME) === 0) break;
        if (len === 0) {
          sep = true;
          segStart = h;
        }
        h = mix(h, c | SCHEME);
        kinds &= k;
        tally += k;
        len++;
      }
      if (len !== 0 && i + 2 < n && url.charCodeAt(i) === 58 && slash(url.charCodeAt(i + 1)) && slash(url.charCodeAt(i + 2))) {
        for (i += 3; i < n; i++) {
          const c = url.charCodeAt(i);
          if (c === 47 || c === 92 || c === 63 || c === 35) break;
        }
        h = h0;
        sep = true;
        isPath = true;
        len = 0;
        kinds = SEGMENT_START;
        tally = 0;
      }
    }
    // A prefix ended at the last segment's end (or, for the prefix `/` of a
    // path, before the first segment).
    let pending = false;
    // ... and a segment came after it: under, unless a dot segment later in
    // the path takes it away (`/reports/x/..`), so the rest is read for one.
    let deferred = false;
    if (sep && len === 0) for (let p = 0; p < count; p++) if (prefixes[p] === h) { pending = true; break; }
    for (; i < n; i++) {
      const c = url.charCodeAt(i);
      const k = CLASS[c]!;
      if ((k & (SLASH | END)) !== 0) {
        if (len !== 0) {
          if (isPath && (kinds & DOT) !== 0 && dots(url, i - len, i) !== 0) return underDotted(method, url, prefixes, count);
          if (!deferred) {
            if (variable(kinds, len, tally, url, i - len)) h = placeholder(segStart);
            for (let p = 0; p < count; p++) if (prefixes[p] === h) { pending = true; break; }
          }
          len = 0;
          kinds = SEGMENT_START;
          tally = 0;
        }
        if ((k & END) !== 0) break;
        continue;
      }
      if (len === 0) {
        if (pending && !deferred) {
          if (!isPath) return true;
          deferred = true;
        }
        if (sep) h = mix(h, 47);
        sep = true;
        segStart = h;
      }
      h = mix(h, c | (k & SCHEME));
      kinds &= k;
      tally += k;
      len++;
    }
    if (len !== 0 && isPath && (kinds & DOT) !== 0 && dots(url, n - len, n) !== 0) return underDotted(method, url, prefixes, count);
    // Otherwise the last segment, if any, was a "next" one (deferred, or
    // returned above) or no prefix ended before it.
    return deferred;
  }

  /** See the export below. */
  function prefixState(method: string, path: string): number {
    return hashSegments(methodState(method), segments(path, true), false);
  }

  /** The state `h` with `/SEGMENT` hashed in for each of `segs` (key string text already); `/` for none if `root`. */
  function hashSegments(h: number, segs: readonly string[], root: boolean): number {
    if (segs.length === 0) return root ? mix(h, 47) : h;
    for (const seg of segs) {
      h = mix(h, 47);
      for (let i = 0; i < seg.length; i++) h = mix(h, seg.charCodeAt(i));
    }
    return h;
  }

  /** The path to its end (`?`, `#`), from position i of url. */
  function pathAt(url: string, i: number): string {
    let end = i;
    for (; end < url.length; end++) {
      const c = url.charCodeAt(end);
      if (c === 63 || c === 35) break;
    }
    return url.slice(i, end);
  }

  /** path() of a path with a dot segment: the slow way, with strings. */
  function dotted(h: number, url: string, i: number): number {
    return hashSegments(h, segments(pathAt(url, i), true), true);
  }

  /** routeUnder() of a URL whose path has a dot segment: on the path resolved, which has none. */
  function underDotted(method: string, url: string, prefixes: Int32Array, count: number): boolean {
    const start = pathStart(url);
    return routeUnder(method, `/${segments(pathAt(url, start), true).join('/')}`, prefixes, count);
  }

  /** See the export below. */
  function hashRouteKeyString(s: string): number {
    let h = SEED;
    for (let i = 0; i < s.length; i++) h = mix(h, s.charCodeAt(i));
    return fmix(h);
  }

  function isVariable(seg: string): boolean {
    let digits = true;
    let hex = true;
    for (let i = 0; i < seg.length; i++) {
      const c = seg.charCodeAt(i);
      const k = CLASS[c]!;
      if ((k & DIGIT) === 0) digits = false;
      if ((k & HEX) === 0) hex = false;
    }
    if (seg.length > 0 && digits) return true;
    if (hex && seg.length >= LONG_HEX) return true;
    if (seg.length !== UUID_LENGTH) return false;
    for (let i = 0; i < UUID_LENGTH; i++) {
      const c = seg.charCodeAt(i);
      const dash = i === 8 || i === 13 || i === 18 || i === 23;
      if (dash ? c !== 45 : (CLASS[c]! & HEX) === 0) return false;
    }
    return true;
  }

  /**
   * The non-empty segments of a target as they are in the key string: dot
   * segments resolved if it is a path, ASCII letters in lower case, variable
   * ones replaced by the placeholder.
   */
  function segments(target: string, isPath: boolean): string[] {
    const out: string[] = [];
    for (const seg of target.split(SEPARATOR)) {
      if (seg === '') continue;
      const d = isPath ? dots(seg, 0, seg.length) : 0;
      if (d === 2) out.pop();
      if (d !== 0) continue;
      out.push(isVariable(seg) ? PLACEHOLDER : seg.replace(/[A-Z]+/g, (m) => m.toLowerCase()));
    }
    return out;
  }

  /** See the export below; written independently of routeKey, with split and slice. */
  function routeKeyString(method: string, url: string): string {
    let end = url.length;
    const q = url.indexOf('?');
    if (q >= 0) end = q;
    const f = url.indexOf('#');
    if (f >= 0 && f < end) end = f;
    let target = url.slice(0, end);
    const start = pathStart(url);
    if (start > 0) target = url.slice(start, Math.max(start, end));
    const segs = segments(target, start >= 0);
    const m = method === 'HEAD' ? 'GET' : method;
    if (segs.length === 0) return `${m} /`;
    return `${m} ${start >= 0 ? '/' : ''}${segs.join('/')}`;
  }

  return { routeKey, routeUnder, prefixState, hashRouteKeyString, routeKeyString };
})();

/**
 * The route key of a request, from its method and raw URL as node:http gives
 * them (`req.method`, `req.url`): a signed 32-bit hash of the key string
 * (see the top of this file). One pass over the characters; allocates
 * nothing.
 */
export const routeKey: (method: string, url: string) => number = scanner.routeKey;

/**
 * Is the route of (method, url) under one of `prefixes[0..count)` - hash
 * states of key strings `METHOD /some/prefix`, from prefixState - with at
 * least one more segment after it? The scan of routeKey, comparing the state
 * at each segment's end; allocates nothing. For the predictor's static
 * hints (`'GET /reports/*'`).
 */
export const routeUnder: (method: string, url: string, prefixes: Int32Array, count: number) => boolean = scanner.routeUnder;

/**
 * The hash state (not a key) at the end of the key string of (method, path),
 * for routeUnder's prefixes. `path` is folded the same way; with no segment
 * (`/`), the state after `METHOD ' '`, under which every path with at least
 * one segment lies.
 */
export const prefixState: (method: string, path: string) => number = scanner.prefixState;

/** The hash of a key string: `hashRouteKeyString(routeKeyString(m, u)) === routeKey(m, u)`. */
export const hashRouteKeyString: (s: string) => number = scanner.hashRouteKeyString;

/**
 * The key string of a request, e.g. `GET /users/:id/orders`: for logs and
 * `drover ctl stats`. Allocates; written independently of routeKey (with
 * split and slice), and the two agree on every input.
 */
export const routeKeyString: (method: string, url: string) => string = scanner.routeKeyString;
