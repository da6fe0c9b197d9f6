// Assertion density (issue 15, item 4): every file of the simulated kernel
// and of the runtime's state machines holds at least two assert() calls per
// function on average (TigerBeetle's rule), counted by scripts/asserts.ts.
import { expect, test } from 'vitest';
import { ASSERTS_PER_FUNCTION, density, measuredFiles } from '../scripts/asserts.js';

test('the counter: functions with bodies of their own, asserts in them, inline callbacks part of their function', () => {
  const d = density('x.ts', `
    function a(x: number) { assert(x > 0, 'a'); [1].forEach((y) => assert(y, 'b')); }
    const b = (x: number) => { return x; };
    class C {
      f = () => 1;
      constructor() { assert(true, 'c'); }
      get g() { return 1; }
      m(): void { other(assert); }
    }
    declare function d(): void;
  `);
  expect(d.functions).toBe(6); // a, b, f, the constructor, g, m (not d: no body)
  expect(d.asserts).toBe(3);
  expect(d.bare).toEqual(['b:3', 'f:5', 'g:7', 'm:8']);
});

test(`src/sim and the runtime's state machines: at least ${ASSERTS_PER_FUNCTION} asserts per function in every file`, () => {
  const files = measuredFiles();
  expect(files.length).toBeGreaterThan(15);
  const short = files.map((f) => density(f)).filter((d) => d.asserts < ASSERTS_PER_FUNCTION * d.functions)
    .map((d) => `${d.file}: ${d.asserts} asserts for ${d.functions} functions`);
  expect(short).toEqual([]);
});
