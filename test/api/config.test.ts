// defineConfig and its types. The type checks are compile-time: `npm test`
// runs tsc over this file first, so a setting or companion field added to the
// tables without `npm run schema` fails there; the runtime checks below say
// the same in words.
import { expect, expectTypeOf, test } from 'vitest';
import { defineConfig, type DroverCompanion, type DroverConfig } from '../../src/index.js';
import type { DroverSim } from '../../src/api/config-types.js';
import type { CompanionKey } from '../../src/runtime/companions/config.js';
import { FIELDS } from '../../src/runtime/companions/config.js';
import { fileSettings } from '../../src/runtime/config/schema.js';
import { SETTINGS, type SettingName } from '../../src/runtime/config/index.js';

test('defineConfig returns what it is given, an object or a function', () => {
  const c = { app: 'app.js', workers: 2, bind: ['127.0.0.1:8000'], companions: [{ name: 'q', command: ['node', 'q.js'] }] } satisfies DroverConfig;
  expect(defineConfig(c)).toBe(c);
  const f = async (): Promise<DroverConfig> => ({ app: 'app.js' });
  expect(defineConfig(f)).toBe(f);
});

test('the types hold every setting a file may hold and every companion field, and nothing else', () => {
  // A file holds every setting but config (which names the file), and the sim section of drover sim; both directions must agree.
  expectTypeOf<keyof DroverConfig>().toEqualTypeOf<Exclude<SettingName, 'config'> | 'sim'>();
  expectTypeOf<keyof DroverSim>().toEqualTypeOf<'rate' | 'requests' | 'duration'>();
  expectTypeOf<keyof DroverCompanion>().toEqualTypeOf<CompanionKey>();
  expect(SETTINGS.filter((s) => s.name !== 'config').map((s) => s.name).sort()).toEqual(fileSettings().map((s) => s.name).sort());
  expect(FIELDS.map((f) => f.key)).toContain('name');
});

test('a misspelt key, a wrong type and a companion without a name are type errors', () => {
  // @ts-expect-error wokers is not a setting
  defineConfig({ app: 'a.js', wokers: 2 });
  // @ts-expect-error durations are numbers of seconds
  defineConfig({ timeout: '30s' });
  // @ts-expect-error log_level is one of the levels
  defineConfig({ log_level: 'verbose' });
  // @ts-expect-error a companion needs its name
  defineConfig({ companions: [{ command: ['node', 'w.js'] }] });
  defineConfig({ slow_buffer: '8M', max_worker_rss: 512 * 1024 ** 2, companions: [{ name: 'w', module: 'w.js#run', autorestart: 'unexpected', stop_signal: 'INT' }] });
  defineConfig(() => ({ workers: 4 }));
  // @ts-expect-error a sim request needs its path
  defineConfig({ sim: { requests: [{ method: 'POST' }] } });
  // @ts-expect-error rate is a number of requests per second
  defineConfig({ sim: { rate: '20/s' } });
  // @ts-expect-error sim holds rate, requests and duration
  defineConfig({ sim: { rtae: 20 } });
  defineConfig({ sim: { rate: 50, duration: 10, requests: ['GET /', { method: 'POST', path: '/o', body: { n: 1 }, headers: { 'x-a': 'b' }, weight: 2 }] } });
});
