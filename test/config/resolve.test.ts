import { describe, expect, it } from 'vitest';
import { ConfigError, MISSING_APP, resolveConfig, type Config } from '../../src/runtime/config/index.js';

type Input = Partial<Parameters<typeof resolveConfig>[0]>;
const resolve = (i: Input): Config => resolveConfig({ argv: [], env: {}, file: null, cpus: 4, cwd: '/srv', ...i });
const file = (data: unknown, path = 'drover.config.json') => ({ path, data });

/** The problems resolveConfig throws; fails the test if it does not throw. */
function problems(i: Input): string[] {
  try {
    resolve(i);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toBe((e as ConfigError).problems.join('\n'));
    return (e as ConfigError).problems;
  }
  throw new Error('resolveConfig accepted it');
}

describe('defaults', () => {
  it('needs only an app', () => {
    expect(resolve({ argv: ['examples/hello.js'] })).toEqual({
      app: 'examples/hello.js',
      bind: [{ host: '127.0.0.1', port: 8000 }],
      workers: 4,
      min_workers: 4,
      max_workers: 4,
      workers_limit: 16,
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
      config: null,
      companions: [],
      // sha256('/srv'), the working directory, as there is no config file.
      control_socket: '/tmp/drover-0/ctl-a3d9ac4f.sock',
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
    } satisfies Config);
  });

  it('refuses a missing app with the usage', () => {
    expect(problems({})).toEqual([MISSING_APP]);
    expect(MISSING_APP).toBe('no app given: drover APP_MODULE (for example drover examples/hello.js)');
  });

  it('takes the app from a file or the environment too', () => {
    expect(resolve({ file: file({ app: 'f.js' }) }).app).toBe('f.js');
    expect(resolve({ env: { DROVER_APP: 'e.js' }, file: file({ app: 'f.js' }) }).app).toBe('e.js');
  });

  it('starts one worker per CPU, at least one', () => {
    expect(resolve({ argv: ['a'], cpus: 8 }).workers).toBe(8);
    expect(resolve({ argv: ['a'], cpus: 0 }).workers).toBe(1);
    expect(resolve({ argv: ['a'], cpus: Number.NaN }).workers).toBe(1);
    expect(resolve({ argv: ['a'], cpus: 2.7 }).workers).toBe(2);
  });

  it('gives each Config its own default bind list', () => {
    const a = resolve({ argv: ['a'] });
    a.bind.push({ path: '/x' });
    expect(resolve({ argv: ['a'] }).bind).toEqual([{ host: '127.0.0.1', port: 8000 }]);
  });

  it('records the config file used', () => {
    expect(resolve({ argv: ['a'], file: file({}, '/etc/drover.config.json') }).config).toBe('/etc/drover.config.json');
  });
});

describe('precedence: defaults < file < environment < command line', () => {
  const f = file({ app: 'f.js', workers: 2, timeout: 10, log_level: 'debug', bind: ['unix:/f.sock', ':1'] });

  it('lets each source override the one below it, setting by setting', () => {
    const c = resolve({ file: f, env: { DROVER_WORKERS: '3', DROVER_TIMEOUT: '20' }, argv: ['--workers', '5'] });
    expect(c.app).toBe('f.js'); // file only
    expect(c.log_level).toBe('debug'); // file only
    expect(c.timeout).toBe(20_000); // env over file
    expect(c.workers).toBe(5); // CLI over env over file
    expect(c.keep_alive).toBe(5_000); // default
  });

  it('replaces a bind list from a lower source instead of merging', () => {
    expect(resolve({ file: f }).bind).toEqual([{ path: '/f.sock' }, { host: '127.0.0.1', port: 1 }]);
    expect(resolve({ file: f, env: { DROVER_BIND: '[::1]:2' } }).bind).toEqual([{ host: '::1', port: 2 }]);
    expect(resolve({ file: f, env: { DROVER_BIND: '[::1]:2' }, argv: ['-b', ':3', '--bind', ':4'] }).bind).toEqual([
      { host: '127.0.0.1', port: 3 },
      { host: '127.0.0.1', port: 4 },
    ]);
  });

  it('splits DROVER_BIND on commas and spaces', () => {
    expect(resolve({ argv: ['a'], env: { DROVER_BIND: ' :1, unix:/s  [::1]:2,,' } }).bind).toEqual([
      { host: '127.0.0.1', port: 1 },
      { path: '/s' },
      { host: '::1', port: 2 },
    ]);
  });

  it('lets a higher source switch off a path a lower one set', () => {
    const c = resolve({ argv: ['a', '--access-log', ''], file: file({ access_log: '/var/log/a.log', pid: '/run/p' }), env: { DROVER_PID: '' } });
    expect(c.access_log).toBeNull();
    expect(c.pid).toBeNull();
  });

  it('still reports a bad value that a higher source overrides', () => {
    expect(problems({ argv: ['a', '--workers', '2'], file: file({ workers: 'many' }) })).toEqual([
      'workers in drover.config.json: expected a whole number >= 1, got "many" (a string)',
    ]);
  });
});

describe('messages name the setting, the source, the value and the fix', () => {
  it.each([
    [{ argv: ['a', '--workers', 'abc'] }, '--workers: expected a whole number >= 1, got "abc"'],
    [{ argv: ['a'], env: { DROVER_WORKERS: 'abc' } }, 'DROVER_WORKERS: expected a whole number >= 1, got "abc"'],
    [{ argv: ['a'], file: file({ workers: 0 }) }, 'workers in drover.config.json: expected a whole number >= 1, got 0'],
    [{ argv: ['a'], file: file({ wokers: 3 }) }, 'unknown setting "wokers" in drover.config.json; did you mean "workers"?'],
    [{ argv: ['a'], file: file({ keepAlive: 3 }) }, 'unknown setting "keepAlive" in drover.config.json; did you mean "keep_alive"?'],
    [{ argv: ['a'], file: file({ colour: 'red' }) }, 'unknown setting "colour" in drover.config.json; see drover --help for the settings'],
    [{ argv: ['a'], file: file({ config: 'other.json' }) }, '"config" cannot be set in a config file (drover.config.json); use --config or DROVER_CONFIG'],
    [{ argv: ['a'], file: file({ help: true }) }, '"help" in drover.config.json: --help is a command-line action, not a setting; remove it'],
    [{ argv: ['a'], file: file([1, 2]) }, 'drover.config.json: expected an object of settings, e.g. { "workers": 4 }, got [1,2] (an array)'],
    [{ argv: ['a'], env: { DROVER_WOKERS: '3' } }, 'unknown environment variable DROVER_WOKERS; did you mean DROVER_WORKERS?'],
    [{ argv: ['a'], env: { DROVER_CHECK_CONFIG: '1' } }, 'DROVER_CHECK_CONFIG: --check-config is a command-line action, not a setting; unset DROVER_CHECK_CONFIG'],
    [{ argv: ['a'], env: { DROVER_workers: '3' } }, 'unknown environment variable DROVER_workers; did you mean DROVER_WORKERS?'],
    [{ argv: ['a', '--min-workers', '4', '--max-workers', '2'] }, 'min_workers (4, from --min-workers) cannot exceed max_workers (2, from --max-workers); lower min_workers or raise max_workers'],
    [{ argv: ['a', '--workers', '1', '--min-workers', '2'] }, 'workers (1, from --workers) cannot be below min_workers (2, from --min-workers); raise workers or lower min_workers'],
    [{ argv: ['a', '--workers', '9'], env: { DROVER_MAX_WORKERS: '8' } }, 'workers (9, from --workers) cannot exceed max_workers (8, from DROVER_MAX_WORKERS); lower workers or raise max_workers'],
    [{ argv: ['a', '--bind', '[::1]:99999'] }, '--bind: port must be a whole number from 0 to 65535, got "99999" in "[::1]:99999"'],
    [{ argv: ['a'], env: { DROVER_BIND: ' , ' } }, 'DROVER_BIND: expected at least one address (HOST:PORT, [IPV6]:PORT, :PORT or unix:PATH), got none'],
    [{ argv: ['a', '--log-level', 'WARN'] }, '--log-level: expected one of debug, info, warning, error, critical, got "WARN"; did you mean "warning"?'],
    [{ argv: ['a', '--graceful-timeout', '-5'] }, '--graceful-timeout: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got "-5"'],
    // Numbers >= 0 in a form the parser does not take: say which form it does.
    [{ argv: ['a', '--keep-alive', '1e-9'] }, '--keep-alive: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), written as a plain decimal without sign or exponent, got "1e-9"'],
    [{ argv: ['a', '--graceful-timeout', '-0'] }, '--graceful-timeout: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), written as a plain decimal without sign or exponent, got "-0"'],
    [{ argv: ['a', '--max-requests', '1.5'] }, '--max-requests: expected a whole number >= 0, got "1.5"'],
    [{ argv: ['a', '--error-log', ''] }, '--error-log: expected "-" (stderr) or a file path, got ""'],
    [{ argv: ['--app', ''] }, '--app: expected a module path, e.g. examples/hello.js, got ""'],
    [{ argv: ['a', '--config', ''] }, '--config: expected a config file path, e.g. drover.config.json, got ""'],
  ])('%j', (input, message) => {
    expect(problems(input as Input)).toEqual([message]);
  });

  // Beats come every timeout / 4 ms, 50 at the most often: a timeout under
  // four of those killed and respawned healthy workers for ever.
  it('refuses a timeout under four heartbeats at the 50 ms floor, naming the setting and the floor', () => {
    const floor = 'expected 0 (never) or at least 0.2 seconds, got %s: workers beat at most every 0.05 s (the heartbeat floor), and a shorter timeout kills and respawns healthy workers for ever';
    expect(problems({ argv: ['a', '--timeout', '0.03'] })).toEqual([`--timeout: ${floor.replace('%s', '"0.03"')}`]);
    expect(problems({ argv: ['a'], file: file({ timeout: 0.199 }) })).toEqual([`timeout in drover.config.json: ${floor.replace('%s', '0.199')}`]);
    expect(problems({ argv: ['a'], env: { DROVER_TIMEOUT: '0.05' } })).toEqual([`DROVER_TIMEOUT: ${floor.replace('%s', '"0.05"')}`]);
    expect(resolve({ argv: ['a', '--timeout', '0.2'] }).timeout).toBe(200);
    expect(resolve({ argv: ['a', '--timeout', '0'] }).timeout).toBe(0);
  });

  // max_worker_rss 10 (or 512, meant as MB) recycled every worker as soon as
  // it booted, for ever: no Node worker is that small. Refused, with the unit.
  it('refuses a max_worker_rss no Node worker can be under, naming the unit mistake and an example', () => {
    const why = 'no Node worker holds less than 64 MiB (an idle one about 45 MiB), so every worker would be recycled as soon as it started, for ever';
    expect(problems({ argv: ['a', '--max-worker-rss', '512'] })).toEqual([
      `--max-worker-rss: expected 0 (never) or at least 64M, got "512": a size without a unit is in bytes, and ${why}; write the unit: 512MB`,
    ]);
    expect(problems({ argv: ['a'], file: file({ max_worker_rss: 10 }) })).toEqual([
      `max_worker_rss in drover.config.json: expected 0 (never) or at least 64M, got 10: a size without a unit is in bytes, and ${why}; write the unit: "512MB"`,
    ]);
    expect(problems({ argv: ['a'], env: { DROVER_MAX_WORKER_RSS: '32M' } })).toEqual([
      `DROVER_MAX_WORKER_RSS: expected 0 (never) or at least 64M, got "32M": ${why}; set it above what the app's workers hold once started, e.g. 512MB`,
    ]);
    expect(resolve({ argv: ['a', '--max-worker-rss', '64M'] }).max_worker_rss).toBe(64 * 1024 ** 2);
    expect(resolve({ argv: ['a', '--max-worker-rss', '512MB'] }).max_worker_rss).toBe(512 * 1024 ** 2);
    expect(resolve({ argv: ['a', '--max-worker-rss', '0'] }).max_worker_rss).toBe(0);
  });

  // The same trap in durations: a deadline of 0.001 s that every healthy
  // client or request misses is an outage, not a setting.
  it('refuses client and request deadlines, and a slow_threshold, that healthy traffic cannot meet', () => {
    const client = (flag: string, got: string) =>
      `${flag}: expected at least 1 second, got ${got}: one lost packet is resent after a second (TCP's first retransmission timeout), so a shorter deadline cuts off healthy clients; durations are in seconds (30 is half a minute)`;
    expect(problems({ argv: ['a', '--client-header-timeout', '0.001'] })).toEqual([client('--client-header-timeout', '"0.001"')]);
    expect(problems({ argv: ['a', '--client-body-timeout', '0.5'] })).toEqual([client('--client-body-timeout', '"0.5"')]);
    expect(problems({ argv: ['a'], file: file({ send_timeout: 0.999 }) })).toEqual([client('send_timeout in drover.config.json', '0.999')]);
    expect(problems({ argv: ['a'], env: { DROVER_REQUEST_TIMEOUT: '0.001' } })).toEqual([
      'DROVER_REQUEST_TIMEOUT: expected 0 (off) or at least 0.1 seconds, got "0.001": a shorter one answers 504 to healthy requests whenever a worker pauses (a garbage collection, another request\'s turn of the loop); durations are in seconds (30 is half a minute)',
    ]);
    expect(problems({ argv: ['a', '--slow-threshold', '0.001'] })).toEqual([
      '--slow-threshold: expected at least 0.01 seconds, got "0.001": ordinary requests (one database query, a file read) take longer, so every route would turn slow and the whole app run in the slow lane\'s few processes, the rest queued or answered 503; durations are in seconds (0.5 is half a second)',
    ]);
    const c = resolve({ argv: ['a', '--client-header-timeout', '1', '--client-body-timeout', '1', '--send-timeout', '1', '--request-timeout', '0.1', '--slow-threshold', '0.01'] });
    expect([c.client_header_timeout, c.client_body_timeout, c.send_timeout, c.request_timeout, c.slow_threshold]).toEqual([1000, 1000, 1000, 100, 10]);
    expect(resolve({ argv: ['a', '--request-timeout', '0'] }).request_timeout).toBe(0);
  });

  // A JS config can hand over any value: one with no prototype has no
  // toString, and a cycle stops JSON; the message still names the setting
  // and the file, instead of "Cannot convert object to primitive value".
  it('shows a value with no prototype, or a cycle, as its kind', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.self = bare;
    expect(problems({ argv: ['a'], file: file({ workers: bare }, 'circ.mjs') })).toEqual(['workers in circ.mjs: expected a whole number >= 1, got {...} (an object)']);
    const flat = Object.assign(Object.create(null) as object, { n: 1 });
    expect(problems({ argv: ['a'], file: file({ workers: flat }, 'flat.mjs') })).toEqual(['workers in flat.mjs: expected a whole number >= 1, got {"n":1} (an object)']);
  });

  it('allows drover\'s own plumbing variables and DROVER_CONFIG, and ignores other prefixes', () => {
    const env = {
      DROVER_CONFIG: 'x.json',
      DROVER_TEST_RUN: 'abc',
      DROVER_TEST_ANYTHING: '1',
      DROVER_REGISTRIES: '[]',
      DROVER_LISTENERS: '[]',
      DROVER_CHANNEL: '1',
      DROVER_PARENT_PID: '1',
      DROVERX: 'not ours',
      GUNICORN_CMD_ARGS: '--workers 3',
    };
    expect(resolve({ argv: ['a'], env }).workers).toBe(4);
  });

  it('collects every problem from every source in one error, file first, then environment, then command line', () => {
    const ps = problems({
      argv: ['--wokers', '3', '--timeout', 'x'],
      env: { DROVER_KEEP_ALIVE: 'y', DROVER_BLAH: '1' },
      file: file({ graceful_timeout: -1, bind: [] }),
    });
    expect(ps).toEqual([
      'graceful_timeout in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got -1',
      'bind in drover.config.json: expected at least one address (HOST:PORT, [IPV6]:PORT, :PORT or unix:PATH), got none',
      'unknown environment variable DROVER_BLAH; drover\'s variables are DROVER_APP, DROVER_BIND, DROVER_CONFIG, DROVER_PID, DROVER_ADMIN_BIND, DROVER_WORKERS, DROVER_MIN_WORKERS, DROVER_MAX_WORKERS, DROVER_WORKERS_LIMIT, DROVER_MAX_REQUESTS, DROVER_MAX_REQUESTS_JITTER, DROVER_SPARE_WORKERS, DROVER_MAX_WORKER_RSS, DROVER_LANES, DROVER_SLOW_THRESHOLD, DROVER_SLOW_WORKERS, DROVER_SLOW_CONCURRENCY, DROVER_SLOW_QUEUE, DROVER_QUEUE_TIMEOUT, DROVER_SLOW_BODY_MAX, DROVER_SLOW_BUFFER, DROVER_SLOW_ROUTES, DROVER_TIMEOUT, DROVER_GRACEFUL_TIMEOUT, DROVER_REQUEST_TIMEOUT, DROVER_KEEP_ALIVE, DROVER_CLIENT_HEADER_TIMEOUT, DROVER_CLIENT_BODY_TIMEOUT, DROVER_SEND_TIMEOUT, DROVER_WORKER_CONNECTIONS, DROVER_ACCESS_LOG, DROVER_ERROR_LOG, DROVER_LOG_LEVEL, DROVER_LOG_FORMAT, DROVER_FORWARDED_ALLOW_IPS, DROVER_CONTROL_SOCKET, DROVER_COMPANIONS_FILE, DROVER_COMPANION_CWD, DROVER_COMPANION_STDOUT, DROVER_COMPANION_STDERR, DROVER_COMPANION_STOP_SIGNAL, DROVER_COMPANION_STOP_TIMEOUT, DROVER_COMPANION_RELOAD_TIMEOUT, DROVER_COMPANION_STARTSECS, DROVER_COMPANION_RESTART_DELAY, DROVER_COMPANION_STARTRETRIES, DROVER_COMPANION_BACKOFF, DROVER_COMPANION_BACKOFF_MAX, DROVER_COMPANION_AUTORESTART, DROVER_COMPANION_EXITCODES',
      'DROVER_KEEP_ALIVE: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got "y"',
      'unknown option --wokers; did you mean --workers?',
      '--timeout: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got "x"',
      MISSING_APP,
    ]);
  });

  it('does not add "no app" or a worker conflict on top of a refused value', () => {
    expect(problems({ argv: ['--app', ''] })).toHaveLength(1);
    expect(problems({ argv: ['a', '--workers', 'x', '--max-workers', '2'] })).toEqual(['--workers: expected a whole number >= 1, got "x"']);
  });
});

describe('worker counts', () => {
  const counts = (argv: string[], cpus = 4) => {
    const c = resolve({ argv: ['a', ...argv], cpus });
    return [c.min_workers, c.workers, c.max_workers];
  };
  it('defaults both bounds to workers: no autoscaling unless asked', () => {
    expect(counts([])).toEqual([4, 4, 4]);
    expect(counts(['-w', '6'])).toEqual([6, 6, 6]);
  });
  it('keeps the CPU default within bounds that were given', () => {
    expect(counts(['--min-workers', '6'], 2)).toEqual([6, 6, 6]);
    expect(counts(['--max-workers', '2'], 8)).toEqual([2, 2, 2]);
    expect(counts(['--min-workers', '1', '--max-workers', '16'], 4)).toEqual([1, 4, 16]);
    expect(counts(['--max-workers', '16'], 4)).toEqual([4, 4, 16]);
  });
  it('accepts min = workers = max given explicitly', () => {
    expect(counts(['--min-workers', '3', '-w', '3', '--max-workers', '3'])).toEqual([3, 3, 3]);
  });
});

describe('workers_limit', () => {
  const over = (name: string, value: number, from: string, bound: string) =>
    `${name} ${value} (from ${from}) is over ${bound}: a mistake? raise --workers-limit to run more`;
  it('is 4 x CPUs by default, from the CPU count the resolver is given', () => {
    expect(resolve({ argv: ['a'], cpus: 2 }).workers_limit).toBe(8);
    expect(resolve({ argv: ['a'], cpus: 16 }).workers_limit).toBe(64);
    expect(resolve({ argv: ['a'], cpus: 0 }).workers_limit).toBe(4);
    expect(resolve({ argv: ['a'], cpus: Number.NaN }).workers_limit).toBe(4);
  });
  it('refuses workers over it, naming the value, the bound and the flag that raises it', () => {
    expect(problems({ argv: ['a', '--workers', '10000'], cpus: 2 })).toEqual([over('workers', 10000, '--workers', 'workers_limit 8 (4 x 2 CPUs)')]);
    expect(problems({ argv: ['a', '-w', '5'], cpus: 1 })).toEqual([over('workers', 5, '--workers', 'workers_limit 4 (4 x 1 CPU)')]);
  });
  it('accepts workers up to it', () => {
    expect(resolve({ argv: ['a', '--workers', '8'], cpus: 2 }).workers).toBe(8);
  });
  it('bounds max_workers, min_workers, slow_workers and spare_workers too, from any source', () => {
    expect(problems({ argv: ['a', '--max-workers', '9'], cpus: 2 })).toEqual([over('max_workers', 9, '--max-workers', 'workers_limit 8 (4 x 2 CPUs)')]);
    expect(problems({ argv: ['a', '--spare-workers', '1000'], cpus: 2 })).toEqual([over('spare_workers', 1000, '--spare-workers', 'workers_limit 8 (4 x 2 CPUs)')]);
    expect(resolve({ argv: ['a', '--spare-workers', '8'], cpus: 2 }).spare_workers).toBe(8);
    expect(problems({ argv: ['a'], env: { DROVER_SLOW_WORKERS: '100' }, cpus: 2 })).toEqual([over('slow_workers', 100, 'DROVER_SLOW_WORKERS', 'workers_limit 8 (4 x 2 CPUs)')]);
    // The default workers follows min_workers up; min_workers is the one named, once.
    expect(problems({ argv: ['a'], file: file({ min_workers: 12 }), cpus: 2 })).toEqual([over('min_workers', 12, 'drover.config.json', 'workers_limit 8 (4 x 2 CPUs)')]);
  });
  it('is raised on purpose with the flag, the variable or the file key', () => {
    const big = ['a', '--workers', '100', '--max-workers', '200', '--slow-workers', '50'];
    for (const how of [
      { argv: [...big, '--workers-limit', '200'] },
      { argv: big, env: { DROVER_WORKERS_LIMIT: '200' } },
      { argv: big, file: file({ workers_limit: 200 }) },
    ]) {
      expect(resolve({ ...how, cpus: 2 })).toMatchObject({ workers: 100, max_workers: 200, slow_workers: 50, workers_limit: 200 });
    }
  });
  it('names a given bound by where it came from', () => {
    expect(problems({ argv: ['a', '--workers', '10'], env: { DROVER_WORKERS_LIMIT: '6' } })).toEqual([over('workers', 10, '--workers', 'workers_limit 6 (from DROVER_WORKERS_LIMIT)')]);
  });
  it('can be lowered below the CPU count, bounding the default too', () => {
    expect(problems({ argv: ['a', '--workers-limit', '2', '--workers', '3'], cpus: 8 })).toEqual([over('workers', 3, '--workers', 'workers_limit 2 (from --workers-limit)')]);
  });
  it('refuses a limit that is not a whole number >= 1, without a second problem on top', () => {
    expect(problems({ argv: ['a', '--workers-limit', '0', '--workers', '100'] })).toEqual(['--workers-limit: expected a whole number >= 1, got "0"']);
  });
});

describe('typed file values', () => {
  it('reads durations in seconds with fractions, and paths', () => {
    const c = resolve({
      argv: ['a'],
      file: file({ timeout: 0, graceful_timeout: 0.25, keep_alive: 75, max_requests: 1000, max_requests_jitter: 50, pid: '/run/d.pid', access_log: '-', error_log: '/var/log/e.log', log_level: 'ERROR' }),
    });
    expect(c).toMatchObject({ timeout: 0, graceful_timeout: 250, keep_alive: 75_000, max_requests: 1000, max_requests_jitter: 50, pid: '/run/d.pid', access_log: '-', error_log: '/var/log/e.log', log_level: 'error' });
  });
  it('treats undefined as not set (a JS config computing a value may leave it out)', () => {
    expect(resolve({ argv: ['a'], file: file({ workers: undefined }) }).workers).toBe(4);
  });
});

describe('platform variables: PORT and WEB_CONCURRENCY, defaults below every source', () => {
  it('PORT binds 0.0.0.0:$PORT when no source gives bind', () => {
    expect(resolve({ argv: ['a'], env: { PORT: '8080' } }).bind).toEqual([{ host: '0.0.0.0', port: 8080 }]);
    expect(resolve({ argv: ['a'], env: { PORT: '' } }).bind).toEqual([{ host: '127.0.0.1', port: 8000 }]);
  });
  it('any bind from any source wins over PORT', () => {
    for (const how of [
      { argv: ['a', '--bind', '127.0.0.1:9000'] },
      { argv: ['a'], env: { DROVER_BIND: '127.0.0.1:9000' } },
      { argv: ['a'], file: file({ bind: ['127.0.0.1:9000'] }) },
    ]) {
      expect(resolve({ ...how, env: { ...how.env, PORT: '8080' } }).bind).toEqual([{ host: '127.0.0.1', port: 9000 }]);
    }
  });
  it('WEB_CONCURRENCY is the worker count when no source gives workers, and sets both bounds with it', () => {
    expect(resolve({ argv: ['a'], env: { WEB_CONCURRENCY: '3' }, cpus: 8 })).toMatchObject({ workers: 3, min_workers: 3, max_workers: 3 });
    expect(resolve({ argv: ['a'], env: { WEB_CONCURRENCY: '' }, cpus: 8 }).workers).toBe(8);
  });
  it('workers from the file, the environment or the command line win over WEB_CONCURRENCY', () => {
    for (const how of [{ argv: ['a', '--workers', '2'] }, { argv: ['a'], env: { DROVER_WORKERS: '2' } }, { argv: ['a'], file: file({ workers: 2 }) }]) {
      expect(resolve({ ...how, env: { ...how.env, WEB_CONCURRENCY: '5' } }).workers).toBe(2);
    }
  });
  it('bends WEB_CONCURRENCY to bounds that were given, as the CPU default bends', () => {
    expect(resolve({ argv: ['a', '--max-workers', '2'], env: { WEB_CONCURRENCY: '6' } })).toMatchObject({ workers: 2, min_workers: 2, max_workers: 2 });
    expect(resolve({ argv: ['a', '--min-workers', '4', '--max-workers', '8'], env: { WEB_CONCURRENCY: '1' } })).toMatchObject({ workers: 4, min_workers: 4, max_workers: 8 });
  });
  it('refuses bad values, naming the variable and the fix, even when a source overrides them', () => {
    const portFix = 'set PORT to the port to listen on (drover binds 0.0.0.0:$PORT when no bind is given), or unset it';
    const wcFix = 'set WEB_CONCURRENCY to the number of workers, or unset it';
    for (const bad of ['abc', '0', '65536', '-1', '80.5', ' 80', 'tcp://10.0.0.1:80']) {
      expect(problems({ argv: ['a'], env: { PORT: bad } })).toEqual([`PORT: expected a port number from 1 to 65535, got ${JSON.stringify(bad)}; ${portFix}`]);
    }
    expect(problems({ argv: ['a', '--bind', ':9000'], env: { PORT: 'abc' } })).toHaveLength(1);
    for (const bad of ['0', 'abc', '-2', '1.5', '4 ']) {
      expect(problems({ argv: ['a'], env: { WEB_CONCURRENCY: bad } })).toEqual([`WEB_CONCURRENCY: expected a whole number >= 1, got ${JSON.stringify(bad)}; ${wcFix}`]);
    }
    expect(problems({ argv: ['a', '--workers', '2'], env: { WEB_CONCURRENCY: '0' } })).toHaveLength(1);
  });
  it('holds WEB_CONCURRENCY to workers_limit, naming it', () => {
    expect(problems({ argv: ['a'], env: { WEB_CONCURRENCY: '17' } })).toEqual([
      'WEB_CONCURRENCY=17 is over workers_limit 16 (4 x 4 CPUs): a mistake? lower WEB_CONCURRENCY, or raise --workers-limit to run more',
    ]);
    expect(resolve({ argv: ['a'], env: { WEB_CONCURRENCY: '16' } }).workers).toBe(16);
    expect(resolve({ argv: ['a', '--workers-limit', '40'], env: { WEB_CONCURRENCY: '40' } }).workers).toBe(40);
    // Bent below the limit by a bound: nothing to say.
    expect(resolve({ argv: ['a', '--max-workers', '4'], env: { WEB_CONCURRENCY: '100' } }).workers).toBe(4);
  });
  it('reports a platform problem with the environment\'s, between the file\'s and the command line\'s', () => {
    expect(problems({ argv: ['a', '--workers', 'x'], env: { DROVER_TIMEOUT: 'y', PORT: 'z' }, file: file({ keep_alive: 'w' }) }).map((p) => p.split(':')[0])).toEqual([
      'keep_alive in drover.config.json', 'DROVER_TIMEOUT', 'PORT', '--workers',
    ]);
  });
});

describe('Kubernetes service links (a Service named drover or drover-*)', () => {
  it('lets them pass, recognised by name and value', () => {
    const env = {
      DROVER_SERVICE_HOST: '10.0.0.11', DROVER_SERVICE_PORT: '80', DROVER_SERVICE_PORT_HTTP: '80',
      DROVER_PORT: 'tcp://10.0.0.11:80', DROVER_PORT_80_TCP: 'tcp://10.0.0.11:80', DROVER_PORT_80_TCP_PROTO: 'tcp',
      DROVER_PORT_80_TCP_PORT: '80', DROVER_PORT_80_TCP_ADDR: '10.0.0.11',
      DROVER_ADMIN_SERVICE_HOST: 'fd00::7', DROVER_ADMIN_PORT: 'tcp://[fd00::7]:9464', DROVER_ADMIN_PORT_9464_TCP_ADDR: 'fd00::7',
    };
    expect(resolve({ argv: ['a'], env }).bind).toEqual([{ host: '127.0.0.1', port: 8000 }]);
  });
  it('still refuses a guess at a setting that only looks like one', () => {
    expect(problems({ argv: ['a'], env: { DROVER_ADMIN_PORT: '9464' } })[0]).toMatch(/^unknown environment variable DROVER_ADMIN_PORT/);
    expect(problems({ argv: ['a'], env: { DROVER_PORT: '8080' } })[0]).toMatch(/^unknown environment variable DROVER_PORT/);
    expect(problems({ argv: ['a'], env: { DROVER_SERVICE_HOST: 'yes' } })[0]).toMatch(/^unknown environment variable DROVER_SERVICE_HOST/);
  });
});

describe('the sim section (drover sim\'s request mix): in the main file, skipped by the server', () => {
  const mix = { rate: 50, requests: ['GET /', { method: 'POST', path: '/orders', body: { n: 1 }, weight: 2 }], duration: 10 };

  it('is accepted in a config file and never reaches the settings', () => {
    const without = resolve({ file: file({ app: 'a.js', workers: 2 }) });
    expect(resolve({ file: file({ app: 'a.js', workers: 2, sim: mix }) })).toEqual(without);
    expect(resolve({ file: file({ app: 'a.js', workers: 2, sim: mix }, 'drover.config.js') })).toEqual(resolve({ file: file({ app: 'a.js', workers: 2 }, 'drover.config.js') }));
    // drover sim checks the section (src/chaos/mix.ts); the server does not look inside it.
    expect(resolve({ file: file({ app: 'a.js', workers: 2, sim: 'not a mix' }) })).toEqual(without);
  });

  it('is "did you mean"-ed when misspelt, and refused in a companions file', () => {
    expect(problems({ file: file({ app: 'a.js', simm: mix }) })).toEqual(['unknown setting "simm" in drover.config.json; did you mean "sim"?']);
    expect(problems({ file: file({ app: 'a.js', Sim: mix }) })).toEqual(['unknown setting "Sim" in drover.config.json; did you mean "sim"?']);
    expect(problems({
      file: file({ app: 'a.js', companions_file: 'companions.json' }),
      companionsFile: file({ companions: [], sim: mix }, 'companions.json'),
    })).toEqual(['"sim" cannot be set in a companions file (companions.json); set it in the main config file']);
  });
});
