// numprocs: a configured companion as the copies the manager supervises
// (src/runtime/companions/copies.ts): their names, their DROVER_PROCESS_NUM,
// and hashes that let a reread change numprocs without touching the copies
// that stay.
import { expect, test } from 'vitest';
import { parseCompanions, type CompanionConfig } from '../../src/runtime/companions/config.js';
import { copies, copyName, listNames } from '../../src/runtime/companions/copies.js';

function cfg(fields: Record<string, unknown> = {}): CompanionConfig {
  const r = parseCompanions([{ name: 'w', command: ['w'], ...fields }], {}, 'test');
  expect(r.problems).toEqual([]);
  return r.companions[0]!;
}

test('numprocs N gives copies NAME:0 .. NAME:N-1 with their number in DROVER_PROCESS_NUM; 1 keeps the plain name', () => {
  const three = copies(cfg({ numprocs: 3, env: { A: '1' } }));
  expect(three.map((c) => [c.group, c.num, c.config.name, c.config.env])).toEqual([
    ['w', 0, 'w:0', { A: '1', DROVER_PROCESS_NUM: '0' }],
    ['w', 1, 'w:1', { A: '1', DROVER_PROCESS_NUM: '1' }],
    ['w', 2, 'w:2', { A: '1', DROVER_PROCESS_NUM: '2' }],
  ]);
  expect(copies(cfg()).map((c) => [c.config.name, c.config.env.DROVER_PROCESS_NUM])).toEqual([['w', '0']]);
  expect([copyName('w', 0, 1), copyName('w', 0, 2), copyName('w', 9, 10)]).toEqual(['w', 'w:0', 'w:9']);
  // A variable of that name in the config does not lie to a copy about its number.
  expect(copies(cfg({ numprocs: 2, env: { DROVER_PROCESS_NUM: '7' } }))[1]!.config.env.DROVER_PROCESS_NUM).toBe('1');
});

test('a copy\'s hash leaves numprocs out: the same copy under another numprocs is unchanged; every copy differs; any other field changes them all', () => {
  const hashes = (f: Record<string, unknown>) => copies(cfg(f)).map((c) => c.config.hash);
  const two = hashes({ numprocs: 2 });
  const five = hashes({ numprocs: 5 });
  expect(five.slice(0, 2)).toEqual(two);
  expect(new Set(five).size).toBe(5);
  const changed = hashes({ numprocs: 2, stop_timeout: 3 });
  expect(changed.filter((h) => two.includes(h))).toEqual([]);
  // 1 <-> N renames the first copy (w <-> w:0): another process.
  expect(hashes({ numprocs: 1 })[0]).not.toBe(two[0]);
  expect(Object.isFrozen(copies(cfg({ numprocs: 2 }))[1]!.config)).toBe(true);
});

test('listNames writes a group of copies as a range', () => {
  const named = (group: string, n: number) => copies(cfg({ name: group, numprocs: n })).map((c) => ({ group: c.group, name: c.config.name }));
  expect(listNames([...named('a', 1), ...named('w', 4), ...named('b', 2), ...named('c', 1)])).toBe('a, w:0..w:3, b:0, b:1, c');
  expect(listNames([])).toBe('');
});
