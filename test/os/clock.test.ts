// Time in the Node adapter: what setTimeout alone gets wrong.
import { expect, test } from 'vitest';
import { createNodeOs } from '../../src/os/node/index.js';

const os = createNodeOs({ programs: [] });

test('a timer longer than setTimeout allows does not fire at once', async () => {
  let fired = 0;
  const long = os.timer(1e12, () => fired++);
  const forever = os.timer(Infinity, () => fired++);
  await os.sleep(30);
  long.cancel();
  forever.cancel();
  expect(fired).toBe(0);
});

test('now() is monotonic milliseconds; burn holds the loop for as long as asked', () => {
  const t0 = os.now();
  os.burn(20);
  const t1 = os.now();
  expect(t1 - t0).toBeGreaterThanOrEqual(20);
  expect(t1 - t0).toBeLessThan(1000);
  expect(Math.abs(os.wallTime() - Date.now())).toBeLessThan(50);
});
