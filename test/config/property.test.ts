// Properties of the whole resolver: a valid configuration means the same
// thing whichever sources carry it, and an invalid value is always refused
// with a message that names the setting and where it came from.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatAddr, type Addr } from '../../src/os/types.js';
import {
  CLIENT_TIMEOUT_MIN_MS, ConfigError, REQUEST_TIMEOUT_MIN_MS, SLOW_THRESHOLD_MIN_MS, TIMEOUT_MIN_MS, WORKER_RSS_MIN, LOG_FORMATS, LOG_LEVELS, SETTINGS, envOf, flagOf, parseBind, resolveConfig, type Config,
} from '../../src/runtime/config/index.js';

const FILE = 'drover.config.json';
const CWD = '/srv';
/** The default control socket for /srv/drover.config.json: sha256 of that path, 8 hex digits. */
const DEFAULT_SOCKET = '/tmp/drover-0/ctl-ae6113c4.sock';
type Source = 'file' | 'env' | 'cli';

// ------------------------------------------------------------ generators

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const hex = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
const ipv6 = fc.oneof(
  fc.array(hex, { minLength: 8, maxLength: 8 }).map((g) => g.join(':')),
  fc.tuple(fc.array(hex, { maxLength: 3 }), fc.array(hex, { maxLength: 3 })).map(([a, b]) => `${a.join(':')}::${b.join(':')}`),
);
const hostname = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9](\.[a-z][a-z0-9]{0,8}){0,2}$/);
const port = fc.integer({ min: 0, max: 65535 });
const tcp: fc.Arbitrary<Addr> = fc.record({ host: fc.oneof(ipv4, ipv6, hostname, fc.constant('localhost')), port });
const unix: fc.Arbitrary<Addr> = fc.stringMatching(/^\/?[a-z0-9._-]{1,30}(\/[a-z0-9._-]{1,30}){0,2}$/).map((path) => ({ path }));
const addr = fc.oneof(tcp, unix);
const binds = fc.uniqueArray(addr, { minLength: 1, maxLength: 3, selector: formatAddr });
const path = fc.stringMatching(/^\/?[a-z0-9._][a-z0-9._-]{0,20}(\/[a-z0-9._-]{1,12}){0,2}$/).filter((p) => p !== '-');
const ms = fc.integer({ min: 0, max: 2 ** 31 - 1 });

const app = fc.stringMatching(/^[a-z][a-z0-9/._-]{0,20}\.(js|mjs|ts)$/);
/** min_workers <= workers <= max_workers. */
const counts = fc
  .tuple(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }))
  .map((t) => t.sort((x, y) => x - y) as [number, number, number]);

/** Every setting, valid, in the resolved Config's own units; any of them but app may be left out. */
const settings = fc
  .tuple(
    counts,
    fc.record(
      {
        app,
        bind: binds,
        timeout: ms.filter((n) => n === 0 || n >= TIMEOUT_MIN_MS),
        graceful_timeout: ms,
        keep_alive: ms,
        max_requests: fc.nat(),
        max_requests_jitter: fc.nat(),
        spare_workers: fc.integer({ min: 0, max: 64 }),
        pid: fc.option(path),
        access_log: fc.oneof(fc.constant(null), fc.constant('-'), path),
        error_log: fc.oneof(fc.constant('-'), path),
        log_level: fc.constantFrom(...LOG_LEVELS),
        control_socket: path,
        lanes: fc.boolean(),
        slow_threshold: ms.filter((n) => n >= SLOW_THRESHOLD_MIN_MS),
        slow_workers: fc.integer({ min: 1, max: 64 }),
        slow_concurrency: fc.integer({ min: 1, max: 64 }),
        slow_queue: fc.nat(),
        queue_timeout: ms,
        slow_routes: fc.array(fc.constantFrom('GET /reports/*', '/users/:id/export', 'POST /a/b', '* /x/*'), { maxLength: 3 }),
        slow_body_max: fc.integer({ min: 0, max: 1024 ** 3 }),
        slow_buffer: fc.integer({ min: 64 * 1024, max: 1024 ** 3 }),
        client_header_timeout: ms.filter((n) => n >= CLIENT_TIMEOUT_MIN_MS),
        client_body_timeout: ms.filter((n) => n >= CLIENT_TIMEOUT_MIN_MS),
        send_timeout: ms.filter((n) => n >= CLIENT_TIMEOUT_MIN_MS),
        worker_connections: fc.integer({ min: 1, max: 1_000_000 }),
        admin_bind: fc.option(tcp),
        max_worker_rss: fc.oneof(fc.constant(0), fc.integer({ min: WORKER_RSS_MIN, max: 2 ** 40 })),
        request_timeout: ms.filter((n) => n === 0 || n >= REQUEST_TIMEOUT_MIN_MS),
        log_format: fc.constantFrom(...LOG_FORMATS),
        forwarded_allow_ips: fc.array(fc.constantFrom('127.0.0.1', '10.0.0.5', '::1', '*'), { minLength: 1, maxLength: 3 }),
        // At least every count drawn here (64), so no mix of them is over it; the bound itself is tested in resolve.test.ts.
        workers_limit: fc.integer({ min: 64, max: 100_000 }),
      },
      { requiredKeys: ['app', 'workers_limit'] },
    ),
    fc.record({ min_workers: fc.boolean(), workers: fc.boolean(), max_workers: fc.boolean() }),
  )
  .map(([[min_workers, workers, max_workers], rest, keep]) => {
    const s: Settings = { ...rest };
    if (keep.min_workers) s.min_workers = min_workers;
    if (keep.workers) s.workers = workers;
    if (keep.max_workers) s.max_workers = max_workers;
    return s;
  });
type Settings = Partial<Omit<Config, 'config'>> & { app: string };

const DURATIONS = new Set(['timeout', 'graceful_timeout', 'keep_alive', 'slow_threshold', 'queue_timeout', 'client_header_timeout', 'client_body_timeout', 'send_timeout', 'request_timeout']);

// ----------------------------------------------------- three ways to say it

function fileValue(name: string, v: unknown): unknown {
  if (name === 'bind') return (v as Addr[]).map(formatAddr);
  if (name === 'admin_bind') return v === null ? null : formatAddr(v as Addr);
  if (DURATIONS.has(name)) return (v as number) / 1000;
  return v;
}

function textValue(name: string, v: unknown): string {
  if (v === null) return '';
  if (DURATIONS.has(name)) return String((v as number) / 1000);
  if (name === 'lanes') return v ? 'on' : 'off';
  if (name === 'slow_routes' || name === 'forwarded_allow_ips') return (v as string[]).join(', ');
  if (name === 'admin_bind') return formatAddr(v as Addr);
  return String(v);
}

/** Puts each setting in the source `where` picks, expressed the way that source expresses it. */
function express(s: Settings, where: (name: string) => Source) {
  const data: Record<string, unknown> = {};
  const env: Record<string, string> = {};
  const argv: string[] = [];
  for (const [name, v] of Object.entries(s)) {
    const src = where(name);
    if (src === 'file') data[name] = fileValue(name, v);
    else if (name === 'bind') {
      const list = (v as Addr[]).map(formatAddr);
      if (src === 'env') env[envOf(name)] = list.join(', ');
      else for (const b of list) argv.push('--bind', b);
    } else if (src === 'env') env[envOf(name)] = textValue(name, v);
    else if (name === 'app') argv.push(v as string);
    else argv.push(`${flagOf(name)}=${textValue(name, v)}`);
  }
  return { argv, env, file: { path: FILE, data } };
}

function expectedConfig(s: Settings, cpus: number): Config {
  // Only what the defaults do, computed independently of resolve.ts.
  let workers = s.workers ?? Math.max(1, cpus);
  if (s.workers === undefined && s.min_workers !== undefined) workers = Math.max(workers, s.min_workers);
  if (s.workers === undefined && s.max_workers !== undefined) workers = Math.min(workers, s.max_workers);
  return {
    bind: [{ host: '127.0.0.1', port: 8000 }],
    timeout: 30_000,
    graceful_timeout: 30_000,
    keep_alive: 5_000,
    max_requests: 0,
    max_requests_jitter: 0,
    spare_workers: 0,
    pid: null,
    access_log: null,
    error_log: '-',
    log_level: 'info',
    companions: [],
    control_socket: DEFAULT_SOCKET,
    lanes: true,
    slow_threshold: 1000,
    slow_workers: 1,
    slow_concurrency: 1,
    slow_queue: 64,
    queue_timeout: 10_000,
    slow_routes: [],
    slow_body_max: 1024 ** 2,
    slow_buffer: 8 * 1024 ** 2,
    client_header_timeout: 30_000,
    client_body_timeout: 60_000,
    send_timeout: 60_000,
    worker_connections: 1000,
    admin_bind: null,
    max_worker_rss: 0,
    request_timeout: 0,
    log_format: 'text',
    forwarded_allow_ips: ['127.0.0.1'],
    ...s,
    workers,
    min_workers: s.min_workers ?? workers,
    max_workers: s.max_workers ?? workers,
    workers_limit: s.workers_limit ?? 4 * Math.max(1, cpus),
    config: FILE,
  };
}

const SOURCES: readonly Source[] = ['file', 'env', 'cli'];

describe('properties', () => {
  it('any valid configuration resolves the same from the command line, the environment, a file, or any mix', () => {
    fc.assert(
      fc.property(settings, fc.integer({ min: 1, max: 16 }), fc.func(fc.constantFrom(...SOURCES)), (s, cpus, pick) => {
        const want = expectedConfig(s, cpus);
        for (const where of [() => 'file' as const, () => 'env' as const, () => 'cli' as const, pick]) {
          const { argv, env, file } = express(s, where);
          expect(resolveConfig({ argv, env, file, cpus, cwd: CWD })).toEqual(want);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a higher source always wins, setting by setting', () => {
    fc.assert(
      fc.property(settings, settings, fc.constantFrom<[Source, Source]>(['file', 'env'], ['file', 'cli'], ['env', 'cli']), (low, high, [lo, hi]) => {
        // Keep the worker counts of one side only, so the mix of the two cannot conflict.
        const { workers: _w, min_workers: _a, max_workers: _b, ...rest } = high;
        const a = express(low, () => lo);
        const b = express(rest, () => hi);
        const got = resolveConfig({
          argv: [...a.argv, ...b.argv],
          env: { ...a.env, ...b.env },
          file: lo === 'file' ? a.file : b.file,
          cpus: 4,
          cwd: CWD,
        });
        for (const name of Object.keys(rest)) {
          expect((got as unknown as Record<string, unknown>)[name], name).toEqual((high as Record<string, unknown>)[name]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('every address survives formatAddr and parseBind', () => {
    fc.assert(
      fc.property(addr, (a) => {
        expect(parseBind(formatAddr(a))).toEqual({ ok: true, value: 'host' in a ? { ...a, host: a.host.toLowerCase() } : a });
      }),
    );
  });

  // Values no setting accepts from a given source, by setting.
  const BAD_TEXT: Record<string, fc.Arbitrary<string>> = {
    app: fc.constant(''),
    bind: fc.constantFrom('x:1:2', ':99999', 'unix:', '[::1', '999.1.1.1:80', 'host:port', '[zz::1]:1'),
    workers: fc.constantFrom('', '0', '-1', '1.5', 'abc', ' 4', '4x', '1e3'),
    min_workers: fc.constantFrom('0', 'x', '2.5'),
    max_workers: fc.constantFrom('0', '-3', 'many'),
    workers_limit: fc.constantFrom('0', '-1', '1.5', 'lots', ''),
    max_requests: fc.constantFrom('-1', '1.5', 'lots', ''),
    max_requests_jitter: fc.constantFrom('-1', '0.5', 'x'),
    spare_workers: fc.constantFrom('-1', '0.5', 'two', ''),
    timeout: fc.constantFrom('-1', 'x', '1e3', '1s', '', '0.0001', '9999999'),
    graceful_timeout: fc.constantFrom('-0.5', 'forever', ''),
    keep_alive: fc.constantFrom('-1', 'five', '5 s'),
    error_log: fc.constant(''),
    log_level: fc.constantFrom('loud', '', 'warn', '0'),
    control_socket: fc.constantFrom('', `/run/${'x'.repeat(120)}.sock`, 'a\0b'),
    companions_file: fc.constantFrom('-', 'a\0b'),
    companion_cwd: fc.constant('a\0b'),
    companion_stdout: fc.constantFrom('', '-', 'stdout', 'stderr'),
    companion_stderr: fc.constantFrom('', '-', 'stderr'),
    companion_stop_signal: fc.constantFrom('KILL', 'SIGKILL', 'TREM', '15', '', 'SIGFOO'),
    companion_stop_timeout: fc.constantFrom('-1', 'x', '10s'),
    companion_reload_timeout: fc.constantFrom('-1', 'soon'),
    companion_startsecs: fc.constantFrom('-1', '1e3'),
    companion_restart_delay: fc.constantFrom('x', '-0.5'),
    companion_startretries: fc.constantFrom('0', '-1', '1.5', 'forever'),
    companion_backoff: fc.constantFrom('linear', '', 'exp'),
    companion_backoff_max: fc.constantFrom('-2', 'never'),
    companion_autorestart: fc.constantFrom('maybe', '', 'unexpectd'),
    companion_exitcodes: fc.constantFrom('', '0;2', '256', 'x'),
    lanes: fc.constantFrom('maybe', '', '2', 'onn'),
    slow_threshold: fc.constantFrom('0', '-1', 'x', '0.0001'),
    slow_workers: fc.constantFrom('0', '-1', '1.5'),
    slow_concurrency: fc.constantFrom('0', 'x'),
    slow_queue: fc.constantFrom('-1', 'lots'),
    queue_timeout: fc.constantFrom('-1', 'x'),
    slow_routes: fc.constantFrom('reports', 'GET /a/*/b', 'GET /a?b=1', 'G3T /a'),
    slow_body_max: fc.constantFrom('-1', 'x', '2G', '1.5M', '1T'),
    slow_buffer: fc.constantFrom('1', '1K', 'lots', '2G'),
    client_header_timeout: fc.constantFrom('0', '-1', 'x'),
    client_body_timeout: fc.constantFrom('0', 'soon'),
    send_timeout: fc.constantFrom('0', '-3'),
    worker_connections: fc.constantFrom('0', '-1', '1.5', 'many'),
    admin_bind: fc.constantFrom('host:port', ':99999', 'unix:'),
    max_worker_rss: fc.constantFrom('-1', 'x', '1.5', '512Q'),
    request_timeout: fc.constantFrom('-1', 'soon'),
    log_format: fc.constantFrom('xml', 'jsonl', ''),
    forwarded_allow_ips: fc.constantFrom('localhost', '1.2.3', '10.0.0.0/8'),
  };
  const wrongType = fc.oneof(fc.boolean(), fc.constant({ nested: true }), fc.array(fc.boolean(), { minLength: 1 }));
  const BAD_TYPED: Record<string, fc.Arbitrary<unknown>> = {
    app: fc.oneof(wrongType, fc.integer(), fc.constant('')),
    bind: fc.oneof(fc.boolean(), fc.integer(), fc.constant([]), fc.constant([':1', ':1']), fc.constant({ host: 'x' })),
    workers: fc.oneof(wrongType, fc.constantFrom(0, -1, 1.5, '4', null)),
    min_workers: fc.oneof(wrongType, fc.constantFrom(0, '2')),
    max_workers: fc.oneof(wrongType, fc.constantFrom(0, 2.2)),
    workers_limit: fc.oneof(wrongType, fc.constantFrom(0, 1.5, '64', null)),
    max_requests: fc.oneof(wrongType, fc.constantFrom(-1, 0.5, '10')),
    max_requests_jitter: fc.oneof(wrongType, fc.constantFrom(-2, '3')),
    spare_workers: fc.oneof(wrongType, fc.constantFrom(-1, 1.5, '2')),
    timeout: fc.oneof(wrongType, fc.constantFrom(-1, '30', Infinity, 0.0001, 1e7, null)),
    graceful_timeout: fc.oneof(wrongType, fc.constantFrom(-0.1, '5')),
    keep_alive: fc.oneof(wrongType, fc.constantFrom(-5, 'x')),
    pid: fc.oneof(wrongType, fc.integer(), fc.constant('-')),
    access_log: fc.oneof(wrongType, fc.integer()),
    error_log: fc.oneof(wrongType, fc.integer(), fc.constantFrom('', null)),
    log_level: fc.oneof(wrongType, fc.constantFrom('loud', 3)),
    control_socket: fc.oneof(wrongType, fc.constantFrom('', 5, null)),
    companions: fc.oneof(fc.boolean(), fc.integer(), fc.constantFrom('worker', { name: 'w' }, null)),
    companions_file: fc.oneof(wrongType, fc.constantFrom(5, '-')),
    companion_cwd: fc.oneof(wrongType, fc.integer()),
    companion_env: fc.oneof(fc.boolean(), fc.integer(), fc.constantFrom(null, ['A=1'], { A: 1 }, { 'A=B': 'x' })),
    companion_stdout: fc.oneof(wrongType, fc.constantFrom('', '-', null, 1)),
    companion_stderr: fc.oneof(wrongType, fc.constantFrom('', 'stderr', null)),
    companion_stop_signal: fc.oneof(wrongType, fc.constantFrom(15, 'KILL', 'sigkill', null)),
    companion_stop_timeout: fc.oneof(wrongType, fc.constantFrom(-1, '10', null)),
    companion_reload_timeout: fc.oneof(wrongType, fc.constantFrom(-1, '10')),
    companion_startsecs: fc.oneof(wrongType, fc.constantFrom(-0.5, Infinity)),
    companion_restart_delay: fc.oneof(wrongType, fc.constantFrom(-1, '1')),
    companion_startretries: fc.oneof(wrongType, fc.constantFrom(0, 1.5, '3', -1)),
    companion_backoff: fc.oneof(wrongType, fc.constantFrom('linear', 2)),
    companion_backoff_max: fc.oneof(wrongType, fc.constantFrom(-60, '60')),
    companion_autorestart: fc.oneof(fc.integer(), fc.constantFrom('true', 'sometimes', null)),
    companion_exitcodes: fc.oneof(fc.boolean(), fc.constantFrom(0, [], [256], ['0'], '0,2', null)),
    lanes: fc.oneof(fc.integer(), fc.constantFrom('on', null, [true])),
    slow_threshold: fc.oneof(wrongType, fc.constantFrom(0, -1, '1')),
    slow_workers: fc.oneof(wrongType, fc.constantFrom(0, 1.5)),
    slow_concurrency: fc.oneof(wrongType, fc.constantFrom(0, '1')),
    slow_queue: fc.oneof(wrongType, fc.constantFrom(-1, 0.5)),
    queue_timeout: fc.oneof(wrongType, fc.constantFrom(-1, '10')),
    slow_routes: fc.oneof(fc.boolean(), fc.integer(), fc.constantFrom('GET /x', [5], ['/a/*/b'], ['reports'])),
    slow_body_max: fc.oneof(wrongType, fc.constantFrom(-1, 0.5, 2 ** 31, '1 TB', null)),
    slow_buffer: fc.oneof(wrongType, fc.constantFrom(0, 1000, '2G')),
    client_header_timeout: fc.oneof(wrongType, fc.constantFrom(0, -1, '30')),
    client_body_timeout: fc.oneof(wrongType, fc.constantFrom(0, '60')),
    send_timeout: fc.oneof(wrongType, fc.constantFrom(0, -1)),
    worker_connections: fc.oneof(wrongType, fc.constantFrom(0, 1.5, '1000')),
    admin_bind: fc.oneof(wrongType, fc.constantFrom(9464, 'x:y')),
    max_worker_rss: fc.oneof(wrongType, fc.constantFrom(-1, 0.5, '1 TB')),
    request_timeout: fc.oneof(wrongType, fc.constantFrom(-1, '30')),
    log_format: fc.oneof(wrongType, fc.constantFrom('xml', 1)),
    forwarded_allow_ips: fc.oneof(fc.boolean(), fc.integer(), fc.constantFrom(['x'], [1], 'a.b')),
  };

  it('an invalid value from any source is refused, naming the setting where it came from', () => {
    const cases = fc.constantFrom(...SETTINGS.filter((s) => s.name !== 'config').map((s) => s.name)).chain((name) =>
      fc.oneof(
        ...(BAD_TEXT[name] ? [fc.record({ name: fc.constant(name), src: fc.constantFrom<Source>('env', 'cli'), raw: BAD_TEXT[name]! as fc.Arbitrary<unknown> })] : []),
        fc.record({ name: fc.constant(name), src: fc.constant<Source>('file'), raw: BAD_TYPED[name]! }),
      ),
    );
    fc.assert(
      fc.property(settings, cases, ({ app: _app, ...others }, { name, src, raw }) => {
        // A valid background from the file, with the bad value laid over it.
        const base = express({ app: 'app.js', ...others }, () => 'file');
        const data = { ...base.file.data };
        const env: Record<string, string> = {};
        const argv: string[] = name === 'app' ? [] : ['app.js'];
        if (src === 'file') data[name] = raw;
        else if (src === 'env') env[envOf(name)] = raw as string;
        else argv.push(`${flagOf(name)}=${raw as string}`);
        let error: unknown = null;
        try {
          resolveConfig({ argv, env, file: { path: FILE, data }, cpus: 4, cwd: CWD });
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(ConfigError);
        const label = src === 'file' ? `${name} in ${FILE}: ` : src === 'env' ? `${envOf(name)}: ` : `${flagOf(name)}: `;
        expect((error as ConfigError).problems.some((p) => p.startsWith(label)), (error as ConfigError).message).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('an unknown name in any source is refused and named', () => {
    const word = fc.stringMatching(/^[a-z]{2,12}(_[a-z]{2,8})?$/).filter((w) => !SETTINGS.some((s) => s.name === w) && !['help', 'version', 'check_config'].includes(w));
    fc.assert(
      fc.property(word, fc.constantFrom<Source>('file', 'env', 'cli'), (w, src) => {
        const input = {
          argv: ['app.js', ...(src === 'cli' ? [`${flagOf(w)}=1`] : [])],
          env: src === 'env' ? { [envOf(w)]: '1' } : {},
          file: src === 'file' ? { path: FILE, data: { [w]: 1 } } : null,
          cpus: 2,
          cwd: CWD,
        };
        const shown = src === 'file' ? `"${w}"` : src === 'env' ? envOf(w) : flagOf(w);
        expect(() => resolveConfig(input)).toThrow(new RegExp(`^unknown (setting|environment variable|option) ${shown.replace(/[$-]/g, '\\$&')}`));
      }),
    );
  });
});

describe('platform variables (PORT, WEB_CONCURRENCY)', () => {
  it('are defaults under every source: they change bind and workers only where no source gave them', () => {
    fc.assert(
      fc.property(settings, fc.func(fc.constantFrom(...SOURCES)), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 64 }), (s, pick, port, web) => {
        const { argv, env, file } = express(s, pick);
        const got = resolveConfig({ argv, env: { ...env, PORT: String(port), WEB_CONCURRENCY: String(web) }, file, cpus: 4, cwd: CWD });
        const want = expectedConfig(s, 4);
        if (s.bind === undefined) want.bind = [{ host: '0.0.0.0', port }];
        if (s.workers === undefined) {
          // WEB_CONCURRENCY in place of the CPU count, bent to the bounds given as that is.
          let w = web;
          if (s.min_workers !== undefined) w = Math.max(w, s.min_workers);
          if (s.max_workers !== undefined) w = Math.min(w, s.max_workers);
          want.workers = w;
          want.min_workers = s.min_workers ?? w;
          want.max_workers = s.max_workers ?? w;
        }
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });

  it('a bad value is refused whatever overrides it, naming the variable and the fix', () => {
    const badPort = fc.oneof(fc.constantFrom('', 'abc', '0', '65536', '-1', '8080 ', '1e3', 'tcp://10.0.0.1:80'), fc.integer({ min: 65536 }).map(String));
    const badWeb = fc.constantFrom('0', '-1', '1.5', 'auto', ' 2', '0x10');
    fc.assert(
      fc.property(settings, fc.func(fc.constantFrom(...SOURCES)), fc.oneof(fc.record({ k: fc.constant('PORT'), v: badPort }), fc.record({ k: fc.constant('WEB_CONCURRENCY'), v: badWeb })), (s, pick, { k, v }) => {
        const { argv, env, file } = express(s, pick);
        const input = { argv, env: { ...env, [k]: v }, file, cpus: 4, cwd: CWD };
        if (v === '') {
          // Empty is unset (compose's VAR: ${VAR}).
          expect(() => resolveConfig(input)).not.toThrow();
          return;
        }
        let error: unknown = null;
        try {
          resolveConfig(input);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems).toEqual([expect.stringMatching(new RegExp(`^${k}: expected .*; set ${k} to .*, or unset it$`))]);
      }),
      { numRuns: 300 },
    );
  });
});
