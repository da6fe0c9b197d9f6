// The IPC channel: ordering, early messages, and the liveness rule the
// simulator shares (a channel keeps its process alive only while it has a
// message handler).
import { afterEach, expect, test } from 'vitest';
import { createNodeOs } from '../../src/os/node/index.js';
import { harness, inbox, reap, until } from './helpers.js';

const h = harness();
const os = h.os;
afterEach(() => h.cleanup());

test('messages go both ways in order, including those sent before the child listened', async () => {
  const c = h.spawn({ program: 'echo', args: ['', '300'] });
  const ch = c.channel!;
  for (let i = 0; i < 5; i++) expect(ch.send({ i })).toBe(true);
  const next = inbox(os, ch);
  const got = [];
  for (let i = 0; i < 5; i++) got.push(await next());
  expect(got).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
  // Kept alive by its handler, not by anything else.
  await os.sleep(200);
  expect(os.waitpid(c.pid)).toBeNull();
  let disconnected = 0;
  ch.onDisconnect(() => disconnected++);
  ch.send('bye'); // the child closes its end and its loop goes empty
  expect(await reap(os, c.pid)).toMatchObject({ code: 0 });
  expect(await until(os, () => disconnected === 1)).toBe(true);
  expect(ch.connected).toBe(false);
  expect(ch.send('late')).toBe(false);
});

test('a channel without a message handler does not keep its process alive', async () => {
  const c = h.spawn({ program: 'echo', args: ['deaf'] });
  expect(await reap(os, c.pid, 5000)).toMatchObject({ code: 0 });
});

test('closing from the parent side fires onDisconnect once and ends a child kept alive only by it', async () => {
  const c = h.spawn({ program: 'echo' });
  let n = 0;
  c.channel!.onDisconnect(() => n++);
  c.channel!.send('ping');
  expect(await inbox(os, c.channel!)()).toBe('ping');
  c.channel!.close();
  expect(c.channel!.connected).toBe(false);
  expect(await reap(os, c.pid)).toMatchObject({ code: 0 });
  await os.sleep(20);
  expect(n).toBe(1);
});

test("the test runner's own IPC channel is not a drover channel", () => {
  expect(typeof process.send).toBe('function'); // vitest's forks pool
  expect(createNodeOs({ programs: [] }).channel).toBeNull();
});
