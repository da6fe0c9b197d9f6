import { expect, test } from 'vitest';
import { conformance } from './worlds.js';

conformance('time', (world) => {
  test('sleep and burn take at least their time, cancelled timers never fire, now() compares across processes', async () => {
    const r = await world().run('time');
    expect(r.code).toBe(0);
    const rec = r.records[0];
    expect(rec.slept).toBeGreaterThanOrEqual(99); // libuv timers have 1 ms granularity
    expect(rec.burnt).toBeGreaterThanOrEqual(50);
    expect(rec).toMatchObject({ childBeforeUs: true, childAfterSpawn: true, cancelled: true, wall: true });
  });
});
