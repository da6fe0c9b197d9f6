// The route key (src/runtime/lanes/route-key.ts): its rules one by one, its
// agreement with the allocating routeKeyString and with an independent
// regex-based reference, folding as a property, and the collision rate of
// distinct literal routes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { hashRouteKeyString, prefixState, routeKey, routeKeyString, routeUnder } from '../../src/runtime/lanes/route-key.js';

/** A third implementation, with regexes and strings, of the documented rules. */
function reference(method: string, url: string): string {
  url = url.replace(/^[^?#]*/s, (p) => p.replace(/\\/g, '/')); // a backslash is a slash, before the query
  let target = url.replace(/[?#].*$/s, '');
  let origin = target === '' || target.startsWith('/');
  const abs = /^[A-Za-z0-9+.-]+:\/\/[^/?#]*/.exec(url);
  if (abs) {
    target = url.slice(abs[0].length).replace(/[?#].*$/s, '');
    origin = true;
  }
  const resolved: string[] = [];
  for (const s of target.split('/').filter((x) => x !== '')) {
    if (origin && /^(\.|%2e)$/i.test(s)) continue;
    if (origin && /^(\.|%2e){2}$/i.test(s)) resolved.pop();
    else resolved.push(s);
  }
  const segs = resolved.map((s) =>
    (/^\d+$/.test(s) || /^[0-9a-f]{16,}$/i.test(s) || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s) ? ':id' : s.replace(/[A-Z]/g, (c) => c.toLowerCase())));
  const m = method === 'HEAD' ? 'GET' : method;
  if (segs.length === 0) return `${m} /`;
  return `${m} ${origin ? '/' : ''}${segs.join('/')}`;
}

/** A deterministic PRNG (mulberry32), so that measured rates are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const UUID = '550e8400-e29b-41d4-a716-446655440000';

describe('route key string: the rules', () => {
  const cases: [string, string, string][] = [
    ['GET', '/', 'GET /'],
    ['GET', '', 'GET /'],
    ['GET', '/users', 'GET /users'],
    ['GET', '/users/42', 'GET /users/:id'],
    ['GET', '/users/0/orders/2024', 'GET /users/:id/orders/:id'],
    ['GET', '/users/42?expand=1&x=/2', 'GET /users/:id'],
    ['GET', '/users/42#top', 'GET /users/:id'],
    ['GET', '/x\\..\\burn', 'GET /burn'],
    ['GET', '/a/..\\burn', 'GET /burn'],
    ['GET', '/%2e%2e\\Burn', 'GET /burn'],
    ['GET', '\\burn\\42', 'GET /burn/:id'],
    ['GET', 'http:\\\\h\\burn', 'GET /burn'],
    ['GET', '/a%5Cb', 'GET /a%5cb'],
    ['GET', '/a#x?y', 'GET /a'],
    ['GET', `/orders/${UUID}`, 'GET /orders/:id'],
    ['GET', `/orders/${UUID.toUpperCase()}`, 'GET /orders/:id'],
    ['GET', '/orders/550E8400-e29b-41D4-a716-446655440000', 'GET /orders/:id'],
    ['GET', '/orders/550e8400e29b-41d4-a716-4466-55440000', 'GET /orders/550e8400e29b-41d4-a716-4466-55440000'], // dashes misplaced
    ['GET', '/orders/550e8400-e29b-41d4-a716-44665544000g', 'GET /orders/550e8400-e29b-41d4-a716-44665544000g'], // not hex
    ['GET', '/orders/550e8400-e29b-41d4-a716-4466554400001', 'GET /orders/550e8400-e29b-41d4-a716-4466554400001'], // 37 chars
    ['GET', '/orders/550e8400-e29b-41d4-a716-44665544000-', 'GET /orders/550e8400-e29b-41d4-a716-44665544000-'], // a fifth dash
    ['GET', '/orders/550e8400-e29b-41d4-a716-4466-5440000', 'GET /orders/550e8400-e29b-41d4-a716-4466-5440000'], // a fifth dash, inside
    ['GET', '/orders/550e8400-e29b-41d4-a7164-46655440000', 'GET /orders/550e8400-e29b-41d4-a7164-46655440000'], // four dashes, one misplaced
    ['GET', '/orders/550e8400e29b41d4a716446655440000', 'GET /orders/:id'], // a UUID without dashes: long hex
    ['GET', '/p/507f1f77bcf86cd799439011', 'GET /p/:id'], // MongoDB ObjectId, 24 hex
    ['GET', '/p/507F1F77BCF86CD799439011', 'GET /p/:id'],
    ['GET', '/blob/da39a3ee5e6b4b0d3255bfef95601890afd80709', 'GET /blob/:id'], // sha1, 40 hex
    ['GET', '/h/0123456789abcdef', 'GET /h/:id'], // 16 hex: folds
    ['GET', '/h/0123456789abcde', 'GET /h/0123456789abcde'], // 15 hex: stays
    ['GET', '/h/cafebabe', 'GET /h/cafebabe'], // short hex words stay
    ['GET', '/h/deadbeefcafe', 'GET /h/deadbeefcafe'],
    ['GET', '/api/v2/items', 'GET /api/v2/items'],
    ['GET', '/files/42.json', 'GET /files/42.json'], // only whole segments fold
    ['GET', '/static/app.3fa9c1b2.js', 'GET /static/app.3fa9c1b2.js'],
    ['GET', '/a/', 'GET /a'], // trailing slash does not count
    ['GET', '//a///b//', 'GET /a/b'], // repeated slashes collapse
    ['GET', '//', 'GET /'],
    ['GET', '/a%2Fb/%31', 'GET /a%2fb/%31'], // percent-encoding left as is (but letters fold)
    ['GET', '/caf\u00e9/1', 'GET /caf\u00e9/:id'],
    ['GET', 'http://example.com/users/7?x', 'GET /users/:id'],
    ['GET', 'HTTPS://example.com:8443//a/', 'GET /a'],
    ['GET', 'http://example.com', 'GET /'],
    ['GET', 'http://example.com?x=/1', 'GET /'],
    ['OPTIONS', '*', 'OPTIONS *'],
    ['CONNECT', 'example.com:443', 'CONNECT example.com:443'],
    ['GET', 'http:/a', 'GET http:/a'], // not absolute form: kept as it is
    ['GET', 'a//b/12', 'GET a/b/:id'],
    ['GET', '?x', 'GET /'],
    ['get', '/users/1', 'get /users/:id'], // the method as given
    ['PROPFIND', '/dav/1/', 'PROPFIND /dav/:id'],
    ['GET', '/users/:id', 'GET /users/:id'], // a literal placeholder is the same string
    // One route however a client spells it: HEAD is GET, letters fold, dot segments resolve.
    ['HEAD', '/burn', 'GET /burn'],
    ['GET', '/BURN/Now', 'GET /burn/now'],
    ['GET', '/./burn', 'GET /burn'],
    ['GET', '/a/../burn', 'GET /burn'],
    ['GET', '/%2e/burn/%2E%2e/burn', 'GET /burn'],
    ['GET', '/a/.%2E/b/%2e./c', 'GET /c'],
    ['GET', '/../../burn/..', 'GET /'],
    ['GET', '/a/.../e/2e/%2e%2e%2e', 'GET /a/.../e/2e/%2e%2e%2e'], // not dot segments
    ['GET', '/a/..?x=/..', 'GET /'],
    ['GET', 'http://H.example/X/../Y', 'GET /y'],
    ['OPTIONS', 'A/../b', 'OPTIONS a/../b'], // kept as it is: dots are not resolved, letters fold
  ];

  for (const [method, url, want] of cases) {
    test(`${method} ${JSON.stringify(url)} -> ${want}`, () => {
      expect(routeKeyString(method, url)).toBe(want);
      expect(reference(method, url)).toBe(want);
      expect(routeKey(method, url)).toBe(hashRouteKeyString(want));
    });
  }

  test('the key is a signed 32-bit integer (a Smi)', () => {
    for (const [m, u] of cases) {
      const k = routeKey(m, u);
      expect(Number.isInteger(k) && (k | 0) === k).toBe(true);
    }
  });

  test('method case and method matter; trailing slash and repeated slashes do not', () => {
    expect(routeKey('GET', '/a')).not.toBe(routeKey('get', '/a'));
    expect(routeKey('GET', '/a')).not.toBe(routeKey('POST', '/a'));
    expect(routeKey('GET', '/a/')).toBe(routeKey('GET', '/a'));
    expect(routeKey('GET', '/a//b')).toBe(routeKey('GET', '/a/b'));
    expect(routeKey('GET', '/a')).not.toBe(routeKey('GET', '/a/b'));
    expect(routeKey('GET', '/ab')).not.toBe(routeKey('GET', '/a/b'));
    expect(routeKey('OPTIONS', '*')).not.toBe(routeKey('OPTIONS', '/*'));
  });

  test('the scan uses no regex, substring, split or allocating call', () => {
    // The functions routeKey and routeUnder run, from the source, comments out.
    const src = readFileSync(join(import.meta.dirname, '../../src/runtime/lanes/route-key.ts'), 'utf8');
    const names = ['mix', 'fmix', 'hashMethod', 'methodState', 'variable', 'placeholder', 'dots', 'routeKey', 'path', 'otherForm', 'rest', 'routeUnder'];
    for (const name of names) {
      const start = src.indexOf(`  function ${name}(`);
      expect(start, name).toBeGreaterThan(0);
      const body = src.slice(start, src.indexOf('\n  }\n', start)).replace(/\/\/[^\n]*/g, '');
      expect(body, name).not.toMatch(/\.(slice|substring|substr|split|match|replace|indexOf|includes|exec|test|toLowerCase|toUpperCase|join|concat|map|filter)\(|new |RegExp|`|\[\]|\{\s*\}|\.\.\./);
    }
  });
});

// URL-like strings: segments from an alphabet rich in the characters the
// rules care about, plus ids of every kind.
const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: n, maxLength: n });
const uuid = fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(12)).map((p) => p.join('-'));
const digits = fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 20 });
const longHex = fc.integer({ min: 16, max: 48 }).chain((n) => hex(n));
const anyId = fc.oneof(digits, uuid, longHex);
// A UUID with one character replaced: a dash moved, added or lost, or a non-hex one.
const nearUuid = fc.tuple(uuid, fc.nat(35), fc.constantFrom('-', 'a', 'G', '0')).map(([u, i, c]) => u.slice(0, i) + c + u.slice(i + 1));
const literal = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz-_.~%:'), minLength: 1, maxLength: 12 })
  .filter((s) => reference('GET', '/' + s) === 'GET /' + s);
const dotSegment = fc.constantFrom('.', '..', '%2e', '%2E', '.%2e', '%2E.', '%2e%2E', '...', '%2e%2', 'e', '2e', 'E%2');
const segment = fc.oneof(literal, anyId, nearUuid, dotSegment, fc.string({ unit: fc.constantFrom(...'0123456789abcdef-xyzGQ:%.*'), maxLength: 40 }));
const urlish = fc.tuple(
  fc.constantFrom('', '/', '//', '\\', 'http://h.example:80/', 'https://x/', 'http:\\\\h\\', 'ws://', 'a:/', '*'),
  fc.array(fc.tuple(segment, fc.constantFrom('/', '//', '\\', '/\\')), { maxLength: 8 }),
  fc.constantFrom('', '/', '//', '\\'),
  fc.constantFrom('', '?', '?a=1/2', '#f', '?x#y/3', '#/7?', '?a=\\b'),
).map(([pre, segs, trail, tail]) => pre + segs.map(([s, sep], i) => (i === 0 ? s : sep + s)).join('') + trail + tail);
const method = fc.constantFrom('GET', 'POST', 'get', 'DELETE', 'M-SEARCH', '');

describe('route key: properties', () => {
  test('routeKey agrees with routeKeyString and with the reference, on URL-like strings', () => {
    fc.assert(fc.property(method, urlish, (m, u) => {
      const s = routeKeyString(m, u);
      expect(s).toBe(reference(m, u));
      expect(routeKey(m, u)).toBe(hashRouteKeyString(s));
    }), { numRuns: 20_000 });
  });

  test('routeKey agrees with routeKeyString on arbitrary strings (any UTF-16)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 80 }), (m, u) => {
      expect(routeKey(m, u)).toBe(hashRouteKeyString(routeKeyString(m, u)));
      expect(routeKeyString(m, u)).toBe(reference(m, u));
    }), { numRuns: 20_000 });
  });

  test('folding: substituting ids by other ids, of any kind, and any query, keeps the key', () => {
    // A route template: literal segments and id slots; two instantiations.
    const template = fc.array(fc.oneof(literal.map((s) => ({ lit: s })), fc.constant({ lit: null })), { minLength: 1, maxLength: 8 });
    fc.assert(fc.property(method, template, fc.infiniteStream(anyId), fc.infiniteStream(anyId), fc.constantFrom('', '?q=1', '?a=b&c=d/e', '#x'), fc.boolean(),
      (m, t, ids1, ids2, query, trailing) => {
        const it1 = ids1[Symbol.iterator]();
        const it2 = ids2[Symbol.iterator]();
        const u1 = '/' + t.map((s) => s.lit ?? it1.next().value).join('/');
        const u2 = '/' + t.map((s) => s.lit ?? it2.next().value).join('/') + (trailing ? '/' : '') + query;
        expect(routeKey(m, u1)).toBe(routeKey(m, u2));
        expect(routeKeyString(m, u1)).toBe(`${m} /${t.map((s) => s.lit ?? ':id').join('/')}`);
      }), { numRuns: 5000 });
  });

  test('different literal routes get different keys: measured collision rate, a million routes', () => {
    // n distinct key strings hashed to 32 bits by a random function give
    // about n²/2³³ colliding pairs: 116 for a million (Poisson, sd 11).
    // Measured here on random names and on sequential ones (the shape of a
    // scripted flood), each bounded at 1.5x that; the seed is fixed.
    const rnd = prng(5);
    const letters = 'ghijklmnopqrstuvwxyz-_';
    const word = (min: number, max: number) => {
      let s = '';
      const n = min + Math.floor(rnd() * (max - min + 1));
      for (let i = 0; i < n; i++) s += letters[Math.floor(rnd() * letters.length)];
      return s;
    };
    const N = 1_000_000;
    // Paths of letters, '-' and '_' are their own key strings (nothing
    // folds), so distinct paths are distinct routes.
    const measure = (path: (i: number) => string) => {
      const paths = new Set<string>();
      const keys = new Set<number>();
      for (let i = 0; paths.size < N; i++) {
        const p = path(i);
        if (paths.has(p)) continue;
        paths.add(p);
        keys.add(routeKey('GET', i % 2 ? `${p}?page=${i}` : p));
      }
      return { pairs: N - keys.size, expected: (N * (N - 1)) / 2 / 2 ** 32 };
    };
    expect(routeKeyString('GET', '/ab-c_d/w1z/x?y')).toBe('GET /ab-c_d/w1z/x');
    const random = measure(() => `/${word(1, 8)}/${word(3, 12)}`);
    const sequential = measure((i) => `/u/w${i.toString(36)}/x`);
    expect(random.expected).toBeCloseTo(116.4, 1);
    expect(random.pairs).toBeLessThanOrEqual(175);
    expect(sequential.pairs).toBeLessThanOrEqual(175);
  });

  test('the key bits are well mixed: every table slot of 4096 is used by 200,000 routes', () => {
    const counts = new Uint32Array(4096);
    for (let i = 0; i < 200_000; i++) counts[routeKey('GET', `/r/x${i}`) & 4095]!++;
    // Mean 48.8, sd 7: a flat distribution, no empty and no crowded slot.
    expect(Math.min(...counts)).toBeGreaterThan(15);
    expect(Math.max(...counts)).toBeLessThan(90);
  });
});

describe('routeUnder (prefix hints)', () => {
  const under = (m: string, url: string, patterns: [string, string][]) => {
    const p = Int32Array.from(patterns.map(([pm, pp]) => prefixState(pm, pp)));
    return routeUnder(m, url, p, p.length);
  };
  test('a route is under a prefix when at least one more segment follows it', () => {
    const P: [string, string][] = [['GET', '/reports']];
    expect(under('GET', '/reports/monthly', P)).toBe(true);
    expect(under('GET', '/reports/2024/03?x=1', P)).toBe(true);
    expect(under('GET', '//reports//x', P)).toBe(true);
    expect(under('GET', 'http://h/reports/x', P)).toBe(true);
    expect(under('GET', '/reports\\x', P)).toBe(true); // a backslash is a slash
    expect(under('GET', '\\reports\\x', P)).toBe(true);
    expect(under('GET', '/x\\..\\reports\\y', P)).toBe(true);
    expect(under('GET', '/reports', P)).toBe(false);
    expect(under('GET', '/reports/', P)).toBe(false);
    expect(under('GET', '/reports?x=/y', P)).toBe(false);
    expect(under('GET', '/reportsx/y', P)).toBe(false);
    expect(under('GET', '/api/reports/y', P)).toBe(false);
    expect(under('POST', '/reports/y', P)).toBe(false);
  });
  test('ids in prefixes fold like in keys', () => {
    const P: [string, string][] = [['GET', '/users/:id/export']];
    expect(under('GET', '/users/42/export/csv', P)).toBe(true);
    expect(under('GET', `/users/${UUID}/export/x`, P)).toBe(true);
    expect(under('GET', '/users/me/export/x', P)).toBe(false);
    expect(under('GET', '/users/42/export', P)).toBe(false);
  });
  test('the root prefix covers every path with a segment', () => {
    const P: [string, string][] = [['GET', '/']];
    expect(under('GET', '/a', P)).toBe(true);
    expect(under('GET', '/', P)).toBe(false);
    expect(under('GET', '/?x', P)).toBe(false);
  });
  test('agrees with the key strings: under iff the key string extends the prefix by a segment', () => {
    fc.assert(fc.property(method, urlish, fc.array(literal, { maxLength: 3 }), (m, u, pre) => {
      const prefix = '/' + pre.join('/');
      const s = routeKeyString(m, u);
      const base = pre.length === 0 ? `${m} ` : `${m} ${prefix}`;
      const want = s.startsWith(base + '/') && s.length > base.length + 1;
      expect(under(m, u, [[m, prefix]])).toBe(want);
    }), { numRuns: 10_000 });
  });
});
