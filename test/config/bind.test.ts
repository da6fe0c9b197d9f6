import { describe, expect, it } from 'vitest';
import { parseBind } from '../../src/runtime/config/index.js';
import { parseBindList } from '../../src/runtime/config/bind.js';

const addr = (s: string): unknown => {
  const r = parseBind(s);
  if (!r.ok) throw new Error(`refused ${s}: ${r.problems.join('; ')}`);
  return r.value;
};
const problem = (s: string): string => {
  const r = parseBind(s);
  if (r.ok) throw new Error(`accepted ${s} as ${JSON.stringify(r.value)}`);
  return r.problems.join('\n');
};

describe('bind forms', () => {
  it.each([
    ['127.0.0.1:8000', { host: '127.0.0.1', port: 8000 }],
    ['0.0.0.0:80', { host: '0.0.0.0', port: 80 }],
    ['localhost:8000', { host: 'localhost', port: 8000 }],
    ['LocalHost:1', { host: 'localhost', port: 1 }],
    ['app-1.internal.example:443', { host: 'app-1.internal.example', port: 443 }],
    ['[::1]:8000', { host: '::1', port: 8000 }],
    ['[::]:9000', { host: '::', port: 9000 }],
    ['[2001:db8::1]:65535', { host: '2001:db8::1', port: 65535 }],
    ['[::ffff:127.0.0.1]:8080', { host: '::ffff:127.0.0.1', port: 8080 }],
    ['[fe80::1%eth0]:8000', { host: 'fe80::1%eth0', port: 8000 }],
    ['[1:2:3:4:5:6:7:8]:1', { host: '1:2:3:4:5:6:7:8', port: 1 }],
    [':8000', { host: '127.0.0.1', port: 8000 }],
    [':0', { host: '127.0.0.1', port: 0 }],
    ['localhost', { host: 'localhost', port: 8000 }],
    ['10.0.0.1', { host: '10.0.0.1', port: 8000 }],
    ['[::1]', { host: '::1', port: 8000 }],
    ['tcp://127.0.0.1:81', { host: '127.0.0.1', port: 81 }],
    ['unix:/run/drover.sock', { path: '/run/drover.sock' }],
    ['unix:relative.sock', { path: 'relative.sock' }],
    // gunicorn reads unix://var/run/x as the relative path var/run/x; so does drover.
    ['unix://var/run/test.sock', { path: 'var/run/test.sock' }],
    ['unix:///var/run/test.sock', { path: '/var/run/test.sock' }],
  ])('%s', (text, want) => {
    expect(addr(text)).toEqual(want);
  });

  it('takes a Unix path of exactly 107 bytes and refuses 108, counting bytes not characters', () => {
    expect(addr(`unix:/${'a'.repeat(106)}`)).toEqual({ path: `/${'a'.repeat(106)}` });
    expect(problem(`unix:/${'a'.repeat(107)}`)).toMatch(/at most 107 bytes, .* has 108; use a shorter path/);
    // 'é' is two bytes in UTF-8: 54 of them are 108 bytes in 54 characters.
    expect(problem(`unix:${'é'.repeat(54)}`)).toMatch(/has 108/);
  });

  it.each([
    ['', /empty address/],
    ['unix:', /needs a path, e\.g\. unix:\/run\/drover\.sock/],
    ['unix:/a\0b', /NUL/],
    ['::1:8000', /IPv6 address goes in brackets.*\[::1\]:8000/],
    ['[::1:8000', /closing "\]"/],
    ['[::1]8000', /expected ":PORT" after "\]"/],
    ['[nothex::1]:80', /"nothex::1" is not an IPv6 address/],
    ['[1::2::3]:80', /is not an IPv6 address/],
    ['[1:2:3:4:5:6:7:8:9]:80', /is not an IPv6 address/],
    ['127.0.0.1:', /a port must follow the ":"/],
    ['127.0.0.1:65536', /port must be a whole number from 0 to 65535, got "65536"/],
    ['127.0.0.1:-1', /port must be a whole number from 0 to 65535, got "-1"/],
    ['127.0.0.1:http', /port must be a whole number from 0 to 65535, got "http"/],
    ['127.0.0.1:8000:1', /brackets/],
    ['256.1.1.1:80', /"256.1.1.1" is not an IPv4 address or a host name/],
    ['bad_host:80', /"bad_host" is not an IPv4 address or a host name/],
    ['-lead:80', /not an IPv4 address or a host name/],
    ['8000', /for a port on the default host write ":8000"/],
    ['fd://3', /fd:\/\/ addresses are not supported/],
  ])('refuses %j', (text, why) => {
    expect(problem(text)).toMatch(why);
  });
});

describe('bind lists', () => {
  it('takes one string or a list, in order', () => {
    expect(parseBindList('unix:/a', false)).toEqual({ ok: true, value: [{ path: '/a' }] });
    expect(parseBindList([':1', '[::1]:2'], false)).toEqual({ ok: true, value: [{ host: '127.0.0.1', port: 1 }, { host: '::1', port: 2 }] });
  });

  it('refuses an empty list, a non-list, a non-string item, and the same address twice', () => {
    expect(parseBindList([], false)).toEqual({ ok: false, problems: [expect.stringMatching(/at least one address/)] });
    expect(parseBindList(8000, false)).toEqual({ ok: false, problems: [expect.stringMatching(/got 8000 \(a number\)/)] });
    expect(parseBindList({ host: 'x' }, false)).toEqual({ ok: false, problems: [expect.stringMatching(/\(an object\)/)] });
    expect(parseBindList([':1', 7], false)).toEqual({ ok: false, problems: [expect.stringMatching(/address string .* got 7/)] });
    expect(parseBindList([':1', '127.0.0.1:1'], true)).toEqual({ ok: false, problems: ['127.0.0.1:1 is given more than once'] });
  });

  it('reports every bad address, not just the first', () => {
    const r = parseBindList(['x:1:2', ':99999', 'unix:'], true);
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.problems).toHaveLength(3);
  });
});
