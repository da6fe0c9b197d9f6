import { expect, test } from 'vitest';
import { conformance } from './worlds.js';

conformance('host modules', (world) => {
  test('importModule loads a module by its path once, however often asked; a missing one rejects with ERR_MODULE_NOT_FOUND', async () => {
    const r = await world().run('import-module');
    expect(r.code).toBe(0);
    expect(r.records[0]).toEqual({ answer: 42, same: true, loads: 1, missing: 'ERR_MODULE_NOT_FOUND' });
  });
});
