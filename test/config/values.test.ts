import { describe, expect, it } from 'vitest';
import { duration, logTarget, nonEmpty, oneOf, optionalPath, wholeNumber } from '../../src/runtime/config/values.js';
import { closest, distance, snake } from '../../src/runtime/config/names.js';

const okv = (v: unknown) => ({ ok: true, value: v });
const fails = (re: RegExp) => ({ ok: false, problems: [expect.stringMatching(re)] });

describe('whole numbers', () => {
  const atLeast1 = wholeNumber(1);
  it('reads decimal digits from text, numbers from files', () => {
    expect(atLeast1('4', true)).toEqual(okv(4));
    expect(atLeast1('0004', true)).toEqual(okv(4));
    expect(atLeast1(4, false)).toEqual(okv(4));
    expect(wholeNumber(0)('0', true)).toEqual(okv(0));
  });
  it.each([['abc'], [''], [' 4'], ['4 '], ['+4'], ['4.0'], ['1e3'], ['0x10'], ['Infinity'], ['-1'], ['0'], ['99999999999999999999']])(
    'refuses the text %j',
    (raw) => {
      expect(atLeast1(raw, true)).toEqual({ ok: false, problems: [`expected a whole number >= 1, got ${JSON.stringify(raw)}`] });
    },
  );
  it('refuses typed values of the wrong type, naming the type, and impossible numbers', () => {
    expect(atLeast1('4', false)).toEqual({ ok: false, problems: ['expected a whole number >= 1, got "4" (a string)'] });
    expect(atLeast1(true, false)).toEqual(fails(/got true \(a boolean\)$/));
    expect(atLeast1(null, false)).toEqual(fails(/got null \(null\)$/));
    expect(atLeast1(2.5, false)).toEqual({ ok: false, problems: ['expected a whole number >= 1, got 2.5'] });
    expect(atLeast1(0, false)).toEqual(fails(/got 0$/));
    expect(atLeast1(-3, false)).toEqual(fails(/got -3$/));
    expect(atLeast1(Number.NaN, false)).toEqual(fails(/got NaN$/));
    expect(atLeast1(2 ** 60, false)).toEqual(fails(/whole number/));
  });
});

describe('durations: seconds in, milliseconds out', () => {
  it.each([
    ['30', 30_000], ['0', 0], ['0.5', 500], ['.25', 250], ['1.', 1000], ['0.001', 1], ['1.2345', 1235], ['2147483.647', 2 ** 31 - 1],
  ])('text %j is %d ms', (raw, ms) => {
    expect(duration(raw, true)).toEqual(okv(ms));
  });
  it('takes typed numbers from files, fractions included', () => {
    expect(duration(0.1, false)).toEqual(okv(100));
    expect(duration(90, false)).toEqual(okv(90_000));
  });
  it.each([['-1'], ['abc'], [''], ['1s'], ['1e3'], ['1,5'], ['NaN']])('refuses the text %j', (raw) => {
    expect(duration(raw, true)).toEqual(fails(/^expected a number of seconds >= 0 \(fractions allowed, e\.g\. 0\.5\), (written as a plain decimal without sign or exponent, )?got /));
    // A number >= 0 all the same (1e3) is told which form to write it in.
    expect((duration(raw, true) as unknown as { problems: string[] }).problems[0]!.includes('plain decimal')).toBe(raw === '1e3');
  });
  it('refuses what would silently change meaning: below 1 ms (0 disables), beyond what a Node timer holds', () => {
    expect(duration(0.0004, false)).toEqual({ ok: false, problems: ['expected 0 or at least 0.001 seconds, got 0.0004'] });
    expect(duration('2147484', true)).toEqual(fails(/at most 2147483\.647 seconds/));
    expect(duration(Infinity, false)).toEqual(fails(/got Infinity/));
    expect(duration('30', false)).toEqual(fails(/got "30" \(a string\)/));
  });
});

describe('enums, paths', () => {
  const level = oneOf(['debug', 'info', 'warning'] as const);
  it('matches levels without regard to case and suggests the nearest', () => {
    expect(level('INFO', true)).toEqual(okv('info'));
    expect(level('warn', true)).toEqual(fails(/got "warn"; did you mean "warning"\?$/));
    expect(level('dbug', true)).toEqual(fails(/did you mean "debug"\?$/));
    expect(level('loud', true)).toEqual({ ok: false, problems: ['expected one of debug, info, warning, got "loud"'] });
    expect(level(3, false)).toEqual(fails(/got 3 \(a number\)/));
  });
  it('reads off as null in files and "" in text; "-" only where it means stderr', () => {
    const pid = optionalPath(false);
    const access = optionalPath(true);
    expect(pid(null, false)).toEqual(okv(null));
    expect(pid('', true)).toEqual(okv(null));
    expect(pid('/run/x.pid', true)).toEqual(okv('/run/x.pid'));
    expect(pid(null, true)).toEqual(fails(/got null/));
    expect(pid('-', true)).toEqual(fails(/"-"/));
    expect(pid(5, false)).toEqual(fails(/\(a number\)/));
    expect(pid('a\0b', true)).toEqual(fails(/NUL/));
    expect(access('-', true)).toEqual(okv('-'));
    expect(logTarget('-', true)).toEqual(okv('-'));
    expect(logTarget('', true)).toEqual(fails(/^expected "-" \(stderr\) or a file path, got ""$/));
    expect(logTarget(null, false)).toEqual(fails(/\(null\)/));
    expect(nonEmpty('a module path')('', true)).toEqual(fails(/^expected a module path, got ""$/));
  });
});

describe('names and suggestions', () => {
  it('measures edits, counting a swap of neighbours as one', () => {
    expect(distance('workers', 'workers')).toBe(0);
    expect(distance('wokers', 'workers')).toBe(1);
    expect(distance('wokrers', 'workers')).toBe(1);
    expect(distance('', 'abc')).toBe(3);
  });
  it('suggests only what is close, and normalizes other conventions', () => {
    expect(closest('wokers', ['workers', 'timeout'])).toBe('workers');
    expect(closest('zzz', ['workers', 'timeout'])).toBeNull();
    expect(closest('warn', ['warning'])).toBe('warning');
    expect(snake('maxRequests')).toBe('max_requests');
    expect(snake('max-requests-jitter')).toBe('max_requests_jitter');
    expect(snake('LOG_LEVEL')).toBe('log_level');
  });
});
