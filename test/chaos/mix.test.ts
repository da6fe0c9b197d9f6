// The request mix of `drover sim --config FILE` (the config file's `sim`
// section): what parseMix takes, what it refuses and in what words, and how
// pickRequest draws by weight.
import { describe, expect, test } from 'vitest';
import { DEFAULT_MIX, parseMix, pickRequest, type Mix, type MixRequest } from '../../src/chaos/mix.js';
import { ConfigError } from '../../src/runtime/config/errors.js';

const WHERE = 'drover.config.js';
const mix = (sim: unknown): Mix => parseMix(sim, WHERE);

/** The problems parseMix throws; fails the test if it does not throw. */
function problems(sim: unknown): string[] {
  try {
    parseMix(sim, WHERE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toBe((e as ConfigError).problems.join('\n'));
    return (e as ConfigError).problems;
  }
  throw new Error('parseMix accepted it');
}

const req = (over: Partial<MixRequest>): MixRequest => ({ method: 'GET', path: '/', weight: 1, body: null, headers: {}, ...over });
const one = (r: unknown): unknown => ({ requests: [r] });

describe('what parseMix takes', () => {
  test('the default mix: GET / at 20 requests/s, the duration left to drover sim; frozen', () => {
    expect(DEFAULT_MIX).toEqual({ rate: 20, requests: [req({})], durationMs: null });
    expect(mix({})).toEqual(DEFAULT_MIX);
    expect(mix({ rate: undefined, requests: undefined, duration: undefined })).toEqual(DEFAULT_MIX);
    expect(Object.isFrozen(DEFAULT_MIX) && Object.isFrozen(DEFAULT_MIX.requests) && Object.isFrozen(DEFAULT_MIX.requests[0])).toBe(true);
  });

  test('rate and duration: fractions allowed, the duration in ms', () => {
    expect(mix({ rate: 0.5, duration: 1.5 })).toMatchObject({ rate: 0.5, durationMs: 1500 });
    expect(mix({ rate: 2000, duration: 3600 })).toMatchObject({ rate: 2000, durationMs: 3_600_000 });
    expect(mix({ duration: 1 })).toMatchObject({ durationMs: 1000 });
  });

  test('the shorthand "[METHOD ]PATH": GET without a method, the method upper-cased, spaces around ignored', () => {
    expect(mix({ requests: ['GET /', '/users?page=2', ' post   /orders ', 'delete /o/1', 'PURGE /cache'] }).requests).toEqual([
      req({}),
      req({ path: '/users?page=2' }),
      req({ method: 'POST', path: '/orders' }),
      req({ method: 'DELETE', path: '/o/1' }),
      // An extension method not close to a standard one is taken as given.
      req({ method: 'PURGE', path: '/cache' }),
    ]);
  });

  test('objects: defaults for what is left out, headers as given, a string body as is', () => {
    const m = mix({
      requests: [
        { path: '/a' },
        { method: 'patch', path: '/b', weight: 2.5, body: 'x=1&y=é', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'x-tab': 'a\tb' } },
        { path: '/c', body: null, headers: {}, weight: undefined },
      ],
    });
    expect(m.requests).toEqual([
      req({ path: '/a' }),
      req({ method: 'PATCH', path: '/b', weight: 2.5, body: 'x=1&y=é', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'x-tab': 'a\tb' } }),
      req({ path: '/c' }),
    ]);
    expect(Object.isFrozen(m) && Object.isFrozen(m.requests) && Object.isFrozen(m.requests[1]) && Object.isFrozen(m.requests[1]!.headers)).toBe(true);
  });

  test('a JSON body is sent as JSON.stringify writes it, with content-type application/json unless one is given', () => {
    const m = mix({
      requests: [
        { method: 'POST', path: '/o', body: { n: 1, tags: ['a', null, true], nested: { x: -1.5 }, left: undefined } },
        { method: 'POST', path: '/o', body: [1, 2], headers: { 'Content-Type': 'application/vnd.api+json' } },
        { method: 'POST', path: '/o', body: Object.assign(Object.create(null) as object, { a: 1 }) },
      ],
    });
    expect(m.requests[0]).toEqual(req({ method: 'POST', path: '/o', body: '{"n":1,"tags":["a",null,true],"nested":{"x":-1.5}}', headers: { 'content-type': 'application/json' } }));
    expect(m.requests[1]).toEqual(req({ method: 'POST', path: '/o', body: '[1,2]', headers: { 'Content-Type': 'application/vnd.api+json' } }));
    expect(m.requests[2]!.body).toBe('{"a":1}');
  });

  test('a header named __proto__ is a header, not a prototype', () => {
    const headers = JSON.parse('{"__proto__": "x", "a": "b"}') as Record<string, string>;
    const r = mix(one({ path: '/', headers })).requests[0]!;
    expect(Object.entries(r.headers)).toEqual([['__proto__', 'x'], ['a', 'b']]);
    expect(Object.getPrototypeOf(r.headers)).toBe(Object.prototype);
  });

  test('the limits themselves are allowed', () => {
    const m = mix({
      requests: [
        { path: `/${'a'.repeat(2047)}`, weight: 1e6, body: 'é'.repeat(524288), headers: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`x-${i}`, 'v'])) },
        { method: 'M'.repeat(32), path: '/', headers: { ['x'.repeat(256)]: 'v'.repeat(8192) } },
        ...Array.from({ length: 998 }, () => '/'),
      ],
    });
    expect(m.requests).toHaveLength(1000);
    expect(m.requests[0]!.path).toHaveLength(2048);
  });
});

describe('what parseMix refuses, each with the key and the fix', () => {
  const LIST_EG = '["GET /", { method: "POST", path: "/orders", body: "{}", weight: 2 }]';
  const METHOD_WHAT = "expected a method such as GET or POST (a token of letters, digits and !#$%&'*+-.^_`|~, at most 32)";
  const PATH_WHAT = 'expected a path starting with "/", e.g. "/users/1?full=1"';
  const REQUEST_WHAT = 'expected "[METHOD ]PATH" text or an object { method, path, weight, body, headers }, e.g. "GET /users/1", or { method: "POST", path: "/orders", body: "{}" }';
  const JSON_HOLDS = 'a JSON body holds only plain objects, arrays, strings, finite numbers, true, false and null';
  const bigObject = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`x-${i}`, 'v']));
  const deep = (() => {
    let o: unknown = 1;
    for (let i = 0; i < 101; i++) o = [o];
    return o;
  })();
  const cycle = (() => {
    const o: Record<string, unknown> = { a: 1 };
    o.self = o;
    return o;
  })();

  test.each<[string, unknown, string]>([
    // sim itself
    ['sim not an object', [1], 'sim in drover.config.js: expected an object { rate, requests, duration }, got [1] (an array); leave sim out for the default, GET / at 20 requests/s'],
    ['sim null', null, 'sim in drover.config.js: expected an object { rate, requests, duration }, got null; leave sim out for the default, GET / at 20 requests/s'],
    ['a misspelt key', { rtae: 5 }, 'sim in drover.config.js: unknown key "rtae"; did you mean "rate"?'],
    ['a key in capitals', { Duration: 5 }, 'sim in drover.config.js: unknown key "Duration"; did you mean "duration"?'],
    ['an unknown key', { colour: 1 }, 'sim in drover.config.js: unknown key "colour"; it holds rate, requests and duration'],
    // rate
    ['rate as text', { rate: '20' }, 'sim.rate in drover.config.js: expected a number of requests per simulated second, above 0 and at most 2000 (e.g. 50; default 20), got "20" (a string)'],
    ['rate 0', { rate: 0 }, 'sim.rate in drover.config.js: expected a number of requests per simulated second, above 0 and at most 2000 (e.g. 50; default 20), got 0'],
    ['rate over 2000', { rate: 2001 }, 'sim.rate in drover.config.js: expected a number of requests per simulated second, above 0 and at most 2000 (e.g. 50; default 20), got 2001'],
    ['rate Infinity', { rate: Infinity }, 'sim.rate in drover.config.js: expected a number of requests per simulated second, above 0 and at most 2000 (e.g. 50; default 20), got Infinity'],
    ['rate NaN', { rate: NaN }, 'sim.rate in drover.config.js: expected a number of requests per simulated second, above 0 and at most 2000 (e.g. 50; default 20), got NaN'],
    // duration
    ['duration under 1', { duration: 0.5 }, 'sim.duration in drover.config.js: expected a number of simulated seconds from 1 to 3600 (default 30), got 0.5'],
    ['duration over 3600', { duration: 3601 }, 'sim.duration in drover.config.js: expected a number of simulated seconds from 1 to 3600 (default 30), got 3601'],
    ['duration as text', { duration: '30s' }, 'sim.duration in drover.config.js: expected a number of simulated seconds from 1 to 3600 (default 30), got "30s" (a string)'],
    // requests
    ['requests not a list', { requests: 5 }, `sim.requests in drover.config.js: expected a list of requests, e.g. ${LIST_EG}, got 5 (a number)`],
    ['one request not in a list', { requests: 'GET /' }, `sim.requests in drover.config.js: expected a list of requests, e.g. ${LIST_EG}, got "GET /" (a string); put the one request in a list: ["GET /"]`],
    ['no requests', { requests: [] }, 'sim.requests in drover.config.js: the list is empty: give at least one request, or leave requests out for GET /'],
    ['over 1000 requests', { requests: Array.from({ length: 1001 }, () => '/') }, 'sim.requests in drover.config.js: 1001 requests, more than the 1000 drover sim takes; list each request once, with a weight for how often it is sent'],
    ['a request of another type', one(5), `sim.requests[0] in drover.config.js: ${REQUEST_WHAT}, got 5 (a number)`],
    ['a hole in the list', { requests: [undefined] }, `sim.requests[0] in drover.config.js: ${REQUEST_WHAT}, got undefined`],
    ['empty text', one('  '), 'sim.requests[0] in drover.config.js: expected "[METHOD ]PATH" text, e.g. "GET /users/1", got "  "'],
    ['a method without a path', one('post'), 'sim.requests[0] in drover.config.js: "post" has no path; write "[METHOD ]PATH", e.g. "POST /"'],
    ['a path without its slash', one('users'), `sim.requests[0] in drover.config.js: ${PATH_WHAT}, got "users"; did you mean "/users"?`],
    ['a whole URL', one('https://example.com:8080/a/b?c=1'), `sim.requests[0] in drover.config.js: ${PATH_WHAT}, got "https://example.com:8080/a/b?c=1": the load goes to the simulated server, so give the path only: "/a/b?c=1"`],
    ['a request line', one('GET /a HTTP/1.1'), 'sim.requests[0] in drover.config.js: the path "/a HTTP/1.1" has whitespace (U+0020): a path is printable ASCII without spaces; percent-encode the rest (encodeURI("/a HTTP/1.1") does)'],
    ['a typo of a method', one('PSOT /orders'), 'sim.requests[0] in drover.config.js: the method "PSOT" looks like a typo of POST: write "POST" (an extension method is taken as given, but not one this close to a standard one)'],
    ['a lower-case typo', one('gte /'), 'sim.requests[0] in drover.config.js: the method "gte" looks like a typo of GET: write "GET" (an extension method is taken as given, but not one this close to a standard one)'],
    ['CONNECT', one('CONNECT /'), 'sim.requests[0] in drover.config.js: CONNECT asks the server for a tunnel, not for the app: drover sim does not send it; use another method'],
    // a request's keys
    ['a misspelt request key', one({ path: '/', hedaers: {} }), 'sim.requests[0] in drover.config.js: unknown key "hedaers"; did you mean "headers"?'],
    ['url for path', one({ path: '/', url: '/x' }), 'sim.requests[0] in drover.config.js: unknown key "url"; did you mean "path"?'],
    ['an unknown request key', one({ path: '/', colour: 1 }), 'sim.requests[0] in drover.config.js: unknown key "colour"; it holds method, path, weight, body and headers'],
    ['no path', one({ method: 'GET' }), 'sim.requests[0] in drover.config.js: no path: add one, e.g. path: "/users/1"'],
    // method
    ['a method with a space', one({ method: 'G T', path: '/' }), `sim.requests[0].method in drover.config.js: ${METHOD_WHAT}, got "G T"; did you mean "GET"?`],
    ['a method of another type', one({ method: 1, path: '/' }), `sim.requests[0].method in drover.config.js: ${METHOD_WHAT}, got 1 (a number)`],
    ['an empty method', one({ method: '', path: '/' }), `sim.requests[0].method in drover.config.js: ${METHOD_WHAT}, got ""`],
    ['a method over 32', one({ method: 'X'.repeat(33), path: '/' }), `sim.requests[0].method in drover.config.js: ${METHOD_WHAT}, got "${'X'.repeat(33)}"`],
    // path
    ['a path of another type', one({ path: 1 }), `sim.requests[0].path in drover.config.js: ${PATH_WHAT}, got 1 (a number)`],
    ['an empty path', one({ path: '' }), `sim.requests[0].path in drover.config.js: ${PATH_WHAT}, got ""`],
    ['a path over 2048', one({ path: `/${'a'.repeat(2048)}` }), 'sim.requests[0].path in drover.config.js: the path is 2049 characters, more than 2048; shorten it'],
    ['a NUL in the path', one({ path: '/a\0' }), 'sim.requests[0].path in drover.config.js: the path "/a\\u0000" has a control character (U+0000): a path is printable ASCII without spaces; percent-encode the rest (encodeURI("/a\\u0000") does)'],
    ['CRLF in the path', one({ path: '/a\r\nHost: evil' }), 'sim.requests[0].path in drover.config.js: the path "/a\\r\\nHost: evil" has whitespace (U+000D): a path is printable ASCII without spaces; percent-encode the rest (encodeURI("/a\\r\\nHost: evil") does)'],
    ['DEL in the path', one({ path: '/a\x7f' }), 'sim.requests[0].path in drover.config.js: the path "/a\x7f" has a control character (U+007F): a path is printable ASCII without spaces; percent-encode the rest (encodeURI("/a\x7f") does)'],
    ['non-ASCII in the path', one({ path: '/café' }), 'sim.requests[0].path in drover.config.js: the path "/café" has a non-ASCII character "é" (U+00E9): a path is printable ASCII without spaces; percent-encode the rest (encodeURI("/café") does)'],
    // weight
    ['weight as text', one({ path: '/', weight: '5' }), 'sim.requests[0].weight in drover.config.js: expected a number above 0 and at most 1000000 (default 1; a request is drawn in proportion to its weight), got "5" (a string)'],
    ['weight 0', one({ path: '/', weight: 0 }), 'sim.requests[0].weight in drover.config.js: expected a number above 0 and at most 1000000 (default 1; a request is drawn in proportion to its weight), got 0'],
    ['weight negative', one({ path: '/', weight: -1 }), 'sim.requests[0].weight in drover.config.js: expected a number above 0 and at most 1000000 (default 1; a request is drawn in proportion to its weight), got -1'],
    ['weight over 1e6', one({ path: '/', weight: 1e6 + 1 }), 'sim.requests[0].weight in drover.config.js: expected a number above 0 and at most 1000000 (default 1; a request is drawn in proportion to its weight), got 1000001'],
    ['weight NaN', one({ path: '/', weight: NaN }), 'sim.requests[0].weight in drover.config.js: expected a number above 0 and at most 1000000 (default 1; a request is drawn in proportion to its weight), got NaN'],
    // body
    ['a number body', one({ path: '/', body: 5 }), 'sim.requests[0].body in drover.config.js: expected a string, or JSON data (an object or array) to send as JSON, or null for none, got 5 (a number); write "5" to send the text 5'],
    ['a string body over 1 MiB (in UTF-8 bytes)', one({ path: '/', body: 'é'.repeat(524289) }), 'sim.requests[0].body in drover.config.js: the body is 1048578 bytes; drover sim sends at most 1048576 bytes (1 MiB) in one body'],
    ['a JSON body over 1 MiB', one({ path: '/', body: { s: 'x'.repeat(1024 * 1024) } }), 'sim.requests[0].body in drover.config.js: the body is 1048584 bytes as JSON; drover sim sends at most 1048576 bytes (1 MiB) in one body'],
    ['a JSON body of over 1 Mi values', one({ path: '/', body: new Array(1024 * 1024 + 1).fill(0) }), 'sim.requests[0].body in drover.config.js: the body is more than 1048576 bytes as JSON; drover sim sends at most 1048576 bytes (1 MiB) in one body'],
    ['a function in a body', one({ path: '/', body: { f: () => 1 } }), `sim.requests[0].body.f in drover.config.js: a function is not JSON data; ${JSON_HOLDS}`],
    ['NaN in a body', one({ path: '/', body: [1, NaN] }), `sim.requests[0].body[1] in drover.config.js: NaN is not a JSON number (JSON.stringify would send null); ${JSON_HOLDS}`],
    ['undefined in a body\'s list', one({ path: '/', body: [undefined] }), `sim.requests[0].body[0] in drover.config.js: undefined is not JSON data; ${JSON_HOLDS}`],
    ['a bigint in a body', one({ path: '/', body: { 'a b': 1n } }), `sim.requests[0].body["a b"] in drover.config.js: a bigint is not JSON data; ${JSON_HOLDS}`],
    ['a Date in a body', one({ path: '/', body: { at: new Date(0) } }), `sim.requests[0].body.at in drover.config.js: a Date is not plain JSON data: convert it to plain data first; ${JSON_HOLDS}`],
    ['a Map as a body', one({ path: '/', body: new Map() }), `sim.requests[0].body in drover.config.js: a Map is not plain JSON data: convert it to plain data first; ${JSON_HOLDS}`],
    ['a cycle in a body', one({ path: '/', body: cycle }), 'sim.requests[0].body.self in drover.config.js: refers back to a value that holds it (a cycle), which JSON cannot say'],
    ['a body nested too deep', one({ path: '/', body: deep }), 'sim.requests[0].body in drover.config.js: the body is nested more than 100 levels deep; flatten it'],
    ['a body whose getter throws', one({ path: '/', body: { get x(): never { throw new Error('boom'); } } }), 'sim.requests[0].body in drover.config.js: reading the body as JSON data failed: boom'],
    ['bodies over 16 MiB in all', { requests: Array.from({ length: 17 }, () => ({ path: '/', body: 'x'.repeat(1024 * 1024) })) }, 'sim.requests in drover.config.js: the bodies add up to 17825792 bytes, more than the 16777216 (16 MiB) drover sim holds for a mix; send smaller bodies'],
    // headers
    ['headers as a list', one({ path: '/', headers: ['a: b'] }), 'sim.requests[0].headers in drover.config.js: expected an object of header names and values, e.g. { "accept": "application/json" }, got ["a: b"] (an array)'],
    ['over 100 headers', one({ path: '/', headers: bigObject }), 'sim.requests[0].headers in drover.config.js: 101 headers, more than the 100 drover sim sends with one request'],
    ['a header name with a space', one({ path: '/', headers: { 'x y': 'a' } }), 'sim.requests[0].headers in drover.config.js: "x y" is not a header name: a name is letters, digits and !#$%&\'*+-.^_`|~, at most 256'],
    ['a header name with a colon', one({ path: '/', headers: { 'x:': 'a' } }), 'sim.requests[0].headers in drover.config.js: "x:" is not a header name: a name is letters, digits and !#$%&\'*+-.^_`|~, at most 256'],
    ['a header name over 256', one({ path: '/', headers: { ['x'.repeat(257)]: 'a' } }), `sim.requests[0].headers in drover.config.js: "${'x'.repeat(56)}... is not a header name: a name is letters, digits and !#$%&'*+-.^_\`|~, at most 256`],
    ['content-length', one({ path: '/', headers: { 'Content-Length': '3' } }), 'sim.requests[0].headers in drover.config.js: "Content-Length" is set by drover sim\'s client itself (from the body\'s length); remove it'],
    ['transfer-encoding', one({ path: '/', headers: { 'transfer-encoding': 'chunked' } }), 'sim.requests[0].headers in drover.config.js: "transfer-encoding" is set by drover sim\'s client itself (the body is sent whole, with a content-length); remove it'],
    ['connection', one({ path: '/', headers: { Connection: 'close' } }), 'sim.requests[0].headers in drover.config.js: "Connection" is set by drover sim\'s client itself (it keeps connections alive or closes them as the load needs); remove it'],
    ['host', one({ path: '/', headers: { HOST: 'example.com' } }), 'sim.requests[0].headers in drover.config.js: "HOST" is set by drover sim\'s client itself (the simulated server\'s address); remove it'],
    ['a header given twice', one({ path: '/', headers: { Accept: 'a', accept: 'b' } }), 'sim.requests[0].headers in drover.config.js: "Accept" and "accept" are the same header (names are case-insensitive); keep one'],
    ['a number header value', one({ path: '/', headers: { 'x-n': 5 } }), 'sim.requests[0].headers["x-n"] in drover.config.js: expected a string, got 5 (a number); write "5"'],
    ['CRLF in a header value', one({ path: '/', headers: { 'x-a': 'a\r\nx-b: smuggled' } }), 'sim.requests[0].headers["x-a"] in drover.config.js: a header value cannot hold CR or LF (a line break ends the header and begins another), got "a\\r\\nx-b: smuggled"'],
    ['a lone LF in a header value', one({ path: '/', headers: { 'x-a': 'a\nb' } }), 'sim.requests[0].headers["x-a"] in drover.config.js: a header value cannot hold CR or LF (a line break ends the header and begins another), got "a\\nb"'],
    ['a NUL in a header value', one({ path: '/', headers: { 'x-a': 'a\0' } }), 'sim.requests[0].headers["x-a"] in drover.config.js: a header value is printable ASCII and tabs, got "a\\u0000"; encode the rest (encodeURIComponent does)'],
    ['non-ASCII in a header value', one({ path: '/', headers: { 'x-a': 'café' } }), 'sim.requests[0].headers["x-a"] in drover.config.js: a header value is printable ASCII and tabs, got "café"; encode the rest (encodeURIComponent does)'],
    ['a header value over 8192', one({ path: '/', headers: { 'x-a': 'v'.repeat(8193) } }), 'sim.requests[0].headers["x-a"] in drover.config.js: the value is 8193 characters, more than 8192'],
  ])('%s', (_, sim, message) => {
    expect(problems(sim)).toEqual([message]);
  });

  test('every problem at once, in order, each at its place', () => {
    expect(problems({
      rtae: 5,
      rate: -1,
      duration: 0,
      requests: ['GET /ok', 'PSOT users', { path: '/', weight: 0, headers: { host: 'x', 'x-a': 1 } }, null],
    })).toEqual([
      'sim in drover.config.js: unknown key "rtae"; did you mean "rate"?',
      'sim.rate in drover.config.js: expected a number of requests per simulated second, above 0 and at most 2000 (e.g. 50; default 20), got -1',
      'sim.duration in drover.config.js: expected a number of simulated seconds from 1 to 3600 (default 30), got 0',
      'sim.requests[1] in drover.config.js: the method "PSOT" looks like a typo of POST: write "POST" (an extension method is taken as given, but not one this close to a standard one)',
      'sim.requests[1] in drover.config.js: expected a path starting with "/", e.g. "/users/1?full=1", got "users"; did you mean "/users"?',
      'sim.requests[2].weight in drover.config.js: expected a number above 0 and at most 1000000 (default 1; a request is drawn in proportion to its weight), got 0',
      'sim.requests[2].headers in drover.config.js: "host" is set by drover sim\'s client itself (the simulated server\'s address); remove it',
      'sim.requests[2].headers["x-a"] in drover.config.js: expected a string, got 1 (a number); write "1"',
      'sim.requests[3] in drover.config.js: expected "[METHOD ]PATH" text or an object { method, path, weight, body, headers }, e.g. "GET /users/1", or { method: "POST", path: "/orders", body: "{}" }, got null',
    ]);
  });

  test('a flood of problems is cut at 50, with a count of the rest', () => {
    const ps = problems({ requests: Array.from({ length: 60 }, (_, i) => `/bad path ${i}`) });
    expect(ps).toHaveLength(51);
    expect(ps[49]).toMatch(/^sim\.requests\[49\] in drover\.config\.js: the path "\/bad path 49" has whitespace/);
    expect(ps[50]).toBe('sim in drover.config.js: 10 more problems not shown; fix the ones above first');
  });

  test('the file named in messages is the one given', () => {
    expect(() => parseMix({ rate: 0 }, '/srv/app/drover.config.json')).toThrow(/^sim\.rate in \/srv\/app\/drover\.config\.json: /);
  });
});

describe('pickRequest', () => {
  const m = mix({ requests: [{ path: '/a', weight: 1 }, { path: '/b', weight: 3 }, { path: '/c', weight: 6 }] });
  const path = (r: number): string => pickRequest(m, r).path;

  test('each request takes its share of [0, 1), in order, at the exact bounds', () => {
    expect(path(0)).toBe('/a');
    expect(path(0.0999)).toBe('/a');
    expect(path(0.1)).toBe('/b');
    expect(path(0.3999)).toBe('/b');
    expect(path(0.4)).toBe('/c');
    expect(path(0.9999)).toBe('/c');
  });

  test('r next to 0 and next to 1', () => {
    expect(path(Number.MIN_VALUE)).toBe('/a');
    expect(path(1 - Number.EPSILON / 2)).toBe('/c'); // the largest double below 1
    // A tiny first weight still owns the start, a small last one the end.
    const tiny = mix({ requests: [{ path: '/t', weight: 1e-9 }, { path: '/big', weight: 1e6 }, { path: '/end', weight: 0.1 }] });
    expect(pickRequest(tiny, 0).path).toBe('/t');
    expect(pickRequest(tiny, 1e-16).path).toBe('/t');
    expect(pickRequest(tiny, 1 - Number.EPSILON / 2).path).toBe('/end');
    // Where r x total rounds up to the total itself (denormal weights), the last request, not past the end.
    const denormal = mix({ requests: [{ path: '/x', weight: Number.MIN_VALUE }, { path: '/y', weight: Number.MIN_VALUE }] });
    expect(0.99 * 2 * Number.MIN_VALUE).toBe(2 * Number.MIN_VALUE);
    expect(pickRequest(denormal, 0.99).path).toBe('/y');
    expect(pickRequest(denormal, 0).path).toBe('/x');
  });

  test('draws in proportion to the weights over an even spread of r', () => {
    const counts: Record<string, number> = {};
    const n = 10_000;
    for (let i = 0; i < n; i++) counts[path((i + 0.5) / n)] = (counts[path((i + 0.5) / n)] ?? 0) + 1;
    expect(counts).toEqual({ '/a': 1000, '/b': 3000, '/c': 6000 });
  });

  test('one request is always picked; equal weights split evenly; the default mix is GET /', () => {
    expect(pickRequest(DEFAULT_MIX, 0.5)).toEqual(req({}));
    const even = mix({ requests: Array.from({ length: 1000 }, (_, i) => `/${i}`) });
    for (const i of [0, 1, 499, 500, 998, 999]) expect(pickRequest(even, (i + 0.5) / 1000).path).toBe(`/${i}`);
  });

  test('a mix it did not make is read as it is (the running sums follow its requests)', () => {
    const hand: Mix = { rate: 1, durationMs: null, requests: [req({ path: '/x', weight: 1 })] };
    expect(pickRequest(hand, 0.9).path).toBe('/x');
    (hand as { requests: readonly MixRequest[] }).requests = [req({ path: '/x', weight: 1 }), req({ path: '/y', weight: 1 })];
    expect(pickRequest(hand, 0.9).path).toBe('/y');
  });

  test('r outside [0, 1), or no requests, is a programming error', () => {
    for (const r of [1, -0.1, NaN, Infinity]) expect(() => pickRequest(m, r)).toThrow(RangeError);
    expect(() => pickRequest({ rate: 1, durationMs: null, requests: [] }, 0)).toThrow(/no requests/);
  });
});
