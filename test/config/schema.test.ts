// The config file's JSON Schema and defineConfig's types: generated from the
// settings and companion tables (npm run schema), committed, and checked
// here to be what the generator makes now. The example configs are
// validated against the schema by a validator of the draft-07 subset it uses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FIELDS } from '../../src/runtime/companions/config.js';
import { configSchema, configSchemaText, configTypesText, fileSettings, settingType, type Schema } from '../../src/runtime/config/schema.js';
import { resolveConfig, SETTINGS } from '../../src/runtime/config/index.js';
import { parseMix, REQUEST_KEYS, SIM_KEYS } from '../../src/chaos/mix.js';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');

/** Problems of `v` against `s`, each `PATH: what`; [] when valid. Knows what configSchema() uses, and throws on anything else. */
export function validate(s: Schema, v: unknown, root: Schema = s, at = '$'): string[] {
  const KNOWN = new Set(['$schema', '$ref', 'title', 'description', 'type', 'enum', 'anyOf', 'minimum', 'exclusiveMinimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'items', 'minItems', 'maxItems', 'properties', 'required', 'additionalProperties', 'definitions']);
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`the test's validator does not know ${k} (at ${at})`);
  if (s.$ref !== undefined) {
    const m = /^#\/definitions\/(\w+)$/.exec(s.$ref);
    const target = m && root.definitions?.[m[1]!];
    if (!target) throw new Error(`unresolvable $ref ${s.$ref}`);
    return validate(target, v, root, at);
  }
  if (s.anyOf !== undefined && !s.anyOf.some((alt) => validate(alt, v, root, at).length === 0)) return [`${at}: matches none of ${s.anyOf.length} alternatives`];
  if (s.enum !== undefined && !s.enum.includes(v as never)) return [`${at}: not one of ${JSON.stringify(s.enum)}`];
  if (s.type !== undefined) {
    const types = typeof s.type === 'string' ? [s.type] : s.type;
    const is = (t: string): boolean =>
      t === 'null' ? v === null : t === 'array' ? Array.isArray(v) : t === 'object' ? typeof v === 'object' && v !== null && !Array.isArray(v)
        : t === 'integer' ? Number.isInteger(v) : typeof v === t;
    if (!types.some(is)) return [`${at}: expected ${types.join(' or ')}, got ${JSON.stringify(v)}`];
  }
  const out: string[] = [];
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum) out.push(`${at}: below ${s.minimum}`);
    if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) out.push(`${at}: not above ${s.exclusiveMinimum}`);
    if (s.maximum !== undefined && v > s.maximum) out.push(`${at}: above ${s.maximum}`);
  }
  if (typeof v === 'string') {
    if (s.minLength !== undefined && v.length < s.minLength) out.push(`${at}: shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && v.length > s.maxLength) out.push(`${at}: longer than ${s.maxLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) out.push(`${at}: does not match ${s.pattern}`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) out.push(`${at}: fewer than ${s.minItems} items`);
    if (s.maxItems !== undefined && v.length > s.maxItems) out.push(`${at}: more than ${s.maxItems} items`);
    if (s.items !== undefined) v.forEach((x, i) => out.push(...validate(s.items!, x, root, `${at}[${i}]`)));
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) out.push(`${at}: ${r} is required`);
    for (const [k, x] of Object.entries(o)) {
      const p = s.properties?.[k];
      if (p !== undefined) out.push(...validate(p, x, root, `${at}.${k}`));
      else if (s.additionalProperties === false) out.push(`${at}: unknown key ${k}`);
      else if (typeof s.additionalProperties === 'object') out.push(...validate(s.additionalProperties, x, root, `${at}.${k}`));
    }
  }
  return out;
}

const schema = configSchema();
const check = (v: unknown): string[] => validate(schema, v);

describe('the committed files are what npm run schema makes now', () => {
  test('schema/drover.config.schema.json', () => {
    expect(read('schema/drover.config.schema.json'), 'stale: run npm run schema').toBe(configSchemaText());
  });

  test('src/api/config-types.ts', () => {
    expect(read('src/api/config-types.ts'), 'stale: run npm run schema').toBe(configTypesText());
  });

  test('package.json ships the schema and regenerates it before a pack', () => {
    const pkg = JSON.parse(read('package.json')) as { files: string[]; scripts: Record<string, string>; exports: Record<string, unknown> };
    expect(pkg.files).toContain('schema');
    expect(pkg.scripts.prepack).toMatch(/npm run schema/);
    expect(pkg.exports['./schema.json']).toBe('./schema/drover.config.schema.json');
  });
});

describe('the schema follows the tables', () => {
  test('one property per setting a file may hold (not config), one per companion field, $schema and sim', () => {
    expect(Object.keys(schema.properties!)).toEqual(['$schema', ...SETTINGS.filter((s) => s.name !== 'config').map((s) => s.name), 'sim']);
    expect(Object.keys(schema.definitions!.sim!.properties!)).toEqual([...SIM_KEYS]);
    expect(Object.keys(schema.definitions!.simRequest!.properties!)).toEqual([...REQUEST_KEYS]);
    expect(Object.keys(schema.definitions!.companion!.properties!)).toEqual(FIELDS.map((f) => f.key));
    expect(schema.additionalProperties).toBe(false);
  });

  test('each description is the table\'s help and default', () => {
    for (const s of fileSettings()) expect(schema.properties![s.name]!.description).toMatch(new RegExp(`Default: ${s.defaultText.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.$`));
  });

  test('a setting without a file type is refused by name, with the fix', () => {
    expect(() => settingType('no_such_setting')).toThrow(/setting no_such_setting has no file type in src\/runtime\/config\/schema\.ts: add it to SETTING_TYPES/);
  });
});

describe('validation', () => {
  test('the example configs are valid, and drover reads them too', () => {
    for (const file of ['examples/companions/drover.config.json']) {
      const data = JSON.parse(read(file)) as unknown;
      expect(check(data), file).toEqual([]);
      expect(() => resolveConfig({ argv: [], env: {}, file: { path: file, data }, cpus: 2, cwd: ROOT, uid: 1000 })).not.toThrow();
    }
  });

  test('a config naming its schema is valid', () => {
    expect(check({ $schema: './node_modules/drover/schema/drover.config.schema.json', app: 'a.js' })).toEqual([]);
  });

  test('every kind of value drover takes from a file passes, as drover agrees', () => {
    const good = {
      app: 'app.js', bind: ['127.0.0.1:8000', 'unix:/run/app.sock'], pid: null, admin_bind: '127.0.0.1:9464', workers: 4, max_requests: 0,
      max_worker_rss: '512M', slow_buffer: 8388608, lanes: true, slow_threshold: 0.25, timeout: 0, log_level: 'warning', log_format: 'json',
      access_log: '-', forwarded_allow_ips: '*', slow_routes: ['GET /reports/*'], companion_stop_signal: 'SIGINT', companion_autorestart: 'unexpected',
      companion_exitcodes: [0, 2], companion_startretries: null, companion_env: { A: 'b' },
      companions: [{ name: 'w.1', module: 'w.js#run', numprocs: 3, reload_timeout: null, autostart: false, stderr: 'stdout' }],
    };
    expect(check(good)).toEqual([]);
    expect(() => resolveConfig({ argv: [], env: {}, file: { path: 'x.json', data: good }, cpus: 2, cwd: '/srv', uid: 1000 })).not.toThrow();
  });

  test('wrong types, unknown keys and bad companions are found, each at its place', () => {
    expect(check({ workers: '4' })).toEqual(['$.workers: expected integer, got "4"']);
    expect(check({ workers: 0 })).toEqual(['$.workers: below 1']);
    expect(check({ wokers: 4 })).toEqual(['$: unknown key wokers']);
    expect(check({ config: 'other.json' })).toEqual(['$: unknown key config']);
    expect(check({ slow_threshold: 0 })).toEqual(['$.slow_threshold: below 0.01']);
    expect(check({ max_worker_rss: 512 })).toEqual(['$.max_worker_rss: matches none of 3 alternatives']);
    expect(check({ max_worker_rss: 0, request_timeout: 0 })).toEqual([]);
    expect(check({ request_timeout: 0.001 })).toEqual(['$.request_timeout: matches none of 2 alternatives']);
    expect(check({ log_level: 'verbose' })).toEqual(['$.log_level: not one of ["debug","info","warning","error","critical"]']);
    expect(check({ bind: [] })).toEqual(['$.bind: matches none of 2 alternatives']);
    expect(check({ slow_buffer: '8 lots' })).toEqual(['$.slow_buffer: matches none of 2 alternatives']);
    expect(check({ companions: [{ command: ['x'] }] })).toEqual(['$.companions[0]: name is required']);
    expect(check({ companions: [{ name: 'bad name', command: 'node w.js', stop_signal: 'KILL', exitcodes: [256], restart: true }] })).toEqual([
      '$.companions[0].name: does not match ^[A-Za-z0-9_.-]{1,64}$',
      '$.companions[0].command: matches none of 2 alternatives',
      '$.companions[0].stop_signal: not one of ' + JSON.stringify(schema.definitions!.companion!.properties!.stop_signal!.enum),
      '$.companions[0].exitcodes[0]: above 255',
      '$.companions[0]: unknown key restart',
    ]);
  });
});

describe('the sim section', () => {
  const sim = (v: unknown): string[] => check({ app: 'a.js', sim: v });
  const parses = (v: unknown): boolean => {
    try {
      parseMix(v, 'x.json');
      return true;
    } catch {
      return false;
    }
  };

  test('a mix parseMix takes is valid, and drover itself reads the file', () => {
    const good = {
      rate: 50, duration: 10,
      requests: ['GET /', '/users?page=2', ' post  /orders ', { path: '/u/1', weight: 5 }, { method: 'put', path: '/o/1', body: { n: [1, null] }, headers: { 'x-a': 'b\tc' } }, { path: '/', body: 'x', weight: 0.5 }, { path: '/', body: null }],
    };
    expect(sim(good)).toEqual([]);
    expect(parses(good)).toBe(true);
    expect(sim({})).toEqual([]);
    expect(() => resolveConfig({ argv: [], env: {}, file: { path: 'x.json', data: { app: 'a.js', sim: good } }, cpus: 2, cwd: '/srv', uid: 1000 })).not.toThrow();
  });

  test('what parseMix refuses the schema refuses too, each at its place', () => {
    const bad: [unknown, string[]][] = [
      [{ rate: 0 }, ['$.sim.rate: not above 0']],
      [{ rate: 2001 }, ['$.sim.rate: above 2000']],
      [{ duration: 0.5 }, ['$.sim.duration: below 1']],
      [{ duration: 3601 }, ['$.sim.duration: above 3600']],
      [{ rtae: 5 }, ['$.sim: unknown key rtae']],
      [{ requests: [] }, ['$.sim.requests: fewer than 1 items']],
      [{ requests: 'GET /' }, ['$.sim.requests: expected array, got "GET /"']],
      [{ requests: ['GET /a b'] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: ['users'] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ method: 'GET' }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ path: '/', weight: 0 }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ path: '/', headers: { a: 'x\r\ny' } }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ path: '/', body: 5 }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ path: '/é' }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ path: '/', method: 'G T' }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
      [{ requests: [{ path: '/', url: '/' }] }, ['$.sim.requests[0]: matches none of 2 alternatives']],
    ];
    for (const [v, problems] of bad) {
      expect(sim(v), JSON.stringify(v)).toEqual(problems);
      expect(parses(v), JSON.stringify(v)).toBe(false);
    }
    expect(validate(schema.definitions!.simRequest!, { path: '/', weight: 0 }, schema)).toEqual(['$.weight: not above 0']);
  });
});
