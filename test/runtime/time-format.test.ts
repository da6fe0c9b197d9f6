import fc from 'fast-check';
import { expect, test } from 'vitest';
import { clfTime, httpDate, isoTime, logTime } from '../../src/runtime/time-format.js';

test('formats match Date for any instant from 1970 to 2200', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 7_258_118_400_000 }), (t) => {
    const d = new Date(t);
    expect(httpDate(t)).toBe(d.toUTCString());
    expect(isoTime(t)).toBe(d.toISOString());
    expect(logTime(t)).toBe(d.toISOString().slice(0, 19).replace('T', ' ') + ' +0000');
    const [, mon, day, year] = /^\w+, (\d+) (\w+) (\d+)/.exec(d.toUTCString())!.slice(0).map(String);
    expect(clfTime(t)).toBe(`${mon}/${day}/${year}:${d.toISOString().slice(11, 19)} +0000`);
  }), { numRuns: 2000 });
});

test('known instants', () => {
  expect(logTime(0)).toBe('1970-01-01 00:00:00 +0000');
  expect(clfTime(1_795_677_180_000)).toBe('26/Nov/2026:07:13:00 +0000');
  expect(httpDate(951_782_400_000)).toBe('Tue, 29 Feb 2000 00:00:00 GMT');
  expect(isoTime(1_796_524_200_123)).toBe('2026-12-06T02:30:00.123Z');
  expect(isoTime(7)).toBe('1970-01-01T00:00:00.007Z');
  expect(isoTime(1_796_524_200_045.9)).toBe('2026-12-06T02:30:00.045Z'); // a fractional clock truncates, as Date does
});
