import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { COOLDOWN, DOWN_AFTER, HIGH, initialScale, MID, scale, UP_AFTER } from '../../src/runtime/arbiter/autoscale.js';

/** Feeds `loads(t, target)` once a second for `seconds`; returns the targets seen. */
function run(seconds: number, start: number, min: number, max: number, loads: (t: number, target: number) => number | null): number[] {
  let s = initialScale();
  let target = start;
  const seen = [target];
  for (let t = 0; t <= seconds * 1000; t += 1000) {
    const r = scale(s, { now: t, target, min, max, load: loads(t, target) });
    s = r.state;
    target = r.target;
    seen.push(target);
  }
  return seen;
}

const changes = (xs: number[]) => xs.filter((x, i) => i > 0 && x !== xs[i - 1]).length;
const directions = (xs: number[]) => new Set(xs.slice(1).map((x, i) => Math.sign(x - xs[i]!)).filter((d) => d !== 0));

describe('autoscale', () => {
  test('a sustained hot load adds one worker after UP_AFTER, then waits COOLDOWN before the next', () => {
    const seen = run(20, 2, 1, 6, () => 0.95);
    const firstUp = seen.findIndex((x) => x === 3) - 1; // index = seconds, shifted by the initial entry
    expect(firstUp * 1000).toBe(UP_AFTER);
    const secondUp = seen.findIndex((x) => x === 4) - 1;
    expect((secondUp - firstUp) * 1000).toBe(COOLDOWN + UP_AFTER);
    expect(Math.max(...seen)).toBeLessThanOrEqual(6);
  });

  test('a short spike does not scale', () => {
    const seen = run(60, 2, 1, 4, (t) => (t < UP_AFTER - 1000 ? 0.99 : 0.5));
    expect(changes(seen)).toBe(0);
  });

  test('idle workers go one at a time after DOWN_AFTER, down to min', () => {
    const seen = run(200, 4, 2, 4, () => 0.05);
    expect(seen.at(-1)).toBe(2);
    expect(seen.findIndex((x) => x === 3) - 1).toBe(DOWN_AFTER / 1000);
  });

  test('without min < max, or without reports, it never moves', () => {
    expect(changes(run(100, 3, 3, 3, () => 1))).toBe(0);
    expect(changes(run(100, 3, 1, 5, () => null))).toBe(0);
  });

  test('property: within bounds, and a load inside the band never moves it', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 50 }),
      (min, extra, startOff, pattern) => {
        const max = min + extra;
        const start = min + Math.min(startOff, extra);
        const seen = run(300, start, min, max, (t) => pattern[(t / 1000) % pattern.length]!);
        for (const x of seen) expect(x >= min && x <= max).toBe(true);
      }));
  });

  test('property: a steady load never flaps (moves in one direction only)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.double({ min: 0, max: 1, noNaN: true }), (min, extra, work) => {
      // A fixed amount of work shared by the workers: more workers, less load each.
      const seen = run(600, min, min, min + extra, (_t, target) => Math.min(1, work * 2 / target));
      expect(directions(seen).size).toBeLessThanOrEqual(1);
    }));
  });

  test('property: a load that stays between the bands changes nothing', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: MID, max: HIGH - 0.01, noNaN: true }), { minLength: 1, maxLength: 30 }), (band) => {
      expect(changes(run(300, 2, 1, 4, (t) => band[(t / 1000) % band.length]!))).toBe(0);
    }));
  });
});
