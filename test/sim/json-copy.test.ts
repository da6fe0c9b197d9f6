// A channel's message is what Node's 'json' IPC hands the other side: the
// simulator copies plain data without the text, and that copy must be the
// round trip's, value for value and key for key.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonCopy } from '../../src/sim/channels.js';

const roundTrip = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

describe('jsonCopy', () => {
  it('is the JSON round trip for anything the round trip takes', () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withObjectString: true, withSparseArray: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true }), (v) => {
        let expected: unknown;
        try {
          if (v === undefined || JSON.stringify(v) === undefined) return;
          expected = roundTrip(v);
        } catch {
          return;
        }
        const got = jsonCopy(v);
        expect(got).toStrictEqual(expected);
        // Same keys in the same order, all the way down.
        expect(JSON.stringify(got)).toBe(JSON.stringify(expected));
      }),
      { numRuns: 2000 },
    );
  });

  it('leaves out what the round trip leaves out, and keeps -0, NaN and keys named __proto__ as it does', () => {
    const fn = () => 1;
    const v = { a: undefined, b: fn, c: Symbol('s'), d: [undefined, fn, -0, NaN, Infinity], e: -0 };
    expect(jsonCopy(v)).toStrictEqual({ d: [null, null, 0, null, null], e: 0 });
    const proto = JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as object;
    const copy = jsonCopy(proto) as Record<string, unknown>;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.hasOwn(copy, '__proto__')).toBe(true);
    expect(copy).toStrictEqual(roundTrip(proto));
  });

  it('throws for a cycle and a BigInt, as send() does', () => {
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = { back: cyc };
    expect(() => jsonCopy(cyc)).toThrow(TypeError);
    expect(() => jsonCopy({ n: 1n })).toThrow(TypeError);
  });

  it('copies a message nested deeper than its own walk goes (64) through the round trip, whole', () => {
    let deep: unknown = { leaf: [1, 'x', null] };
    for (let i = 0; i < 500; i++) deep = i % 2 === 0 ? [deep, undefined] : { d: deep, u: undefined };
    expect(jsonCopy(deep)).toStrictEqual(roundTrip(deep));
  });

  it('calls toJSON, as the round trip does', () => {
    const d = new Date(86_400_000);
    expect(jsonCopy({ at: d, x: { toJSON: () => 'X' } })).toStrictEqual({ at: '1970-01-02T00:00:00.000Z', x: 'X' });
  });
});
