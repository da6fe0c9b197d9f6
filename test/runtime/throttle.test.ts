// The log throttle that keeps a flood of client timeouts from flooding the log.
import { expect, test } from 'vitest';
import { Throttle } from '../../src/runtime/log.js';

test('one line a second per kind; what was held back is counted into the next line', () => {
  let now = 0;
  const lines: string[] = [];
  const t = new Throttle(() => now, (m) => lines.push(m));
  for (let i = 0; i < 1000; i++) {
    t.say('send_timeout', `closed client ${i}`);
    t.say('client_header_timeout', `head ${i}`);
    now += 2; // 1000 of each in 2 s
  }
  expect(lines).toEqual([
    'closed client 0',
    'head 0',
    'closed client 500 (and 499 more like it since the last such line)',
    'head 500 (and 499 more like it since the last such line)',
  ]);
  now += 5000;
  t.say('send_timeout', 'later');
  expect(lines.at(-1)).toBe('later (and 499 more like it since the last such line)');
  t.say('send_timeout', 'quiet');
  now += 1000;
  t.say('send_timeout', 'again');
  expect(lines.slice(-1)).toEqual(['again (and 1 more like it since the last such line)']);
});
