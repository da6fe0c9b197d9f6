// The table. Everything else (the CLI parser, the environment reader, the
// file reader, validation, help) is driven from it: a setting added here is
// a flag, an environment variable, a file key and a help line at once.

import type { Addr } from '../../os/types.js';
import { COMPANION_DEFAULTS, FIELDS, readCompanionList, readSocketPath, type GlobalKey } from '../companions/config.js';
import { DEFAULT_HOST, DEFAULT_PORT, isIPv4, isIPv6, parseBind, parseBindList } from './bind.js';
import { LOG_FORMATS, LOG_LEVELS, type ActionSpec, type LogFormat, type LogLevel, type SettingName, type SettingSpec } from './types.js';
import { parseHint } from '../lanes/predictor.js';
import { byteSize, duration, logTarget, nonEmpty, onOff, oneOf, optionalPath, wholeNumber, bad, ok, expected } from './values.js';
import type { Parsed } from './types.js';
import { show } from './names.js';

const spec = <T>(s: SettingSpec<T>): SettingSpec<T> => s;

/**
 * Workers and the companion manager beat every timeout / 4 ms, never more
 * often than this, and the arbiter's loop checks them as often (arbiter.ts):
 * more often would be the arbiter's busy-work, not a finer check.
 */
export const HEARTBEAT_MIN_MS = 50;
/**
 * The shortest timeout other than 0 (never): four beats at the floor, the
 * margin every longer timeout has. Shorter, a beat that is a little late (a
 * GC pause, a busy arbiter) looks like a hung worker: every worker was
 * killed and respawned in an endless loop, with nothing said about why.
 */
export const TIMEOUT_MIN_MS = 4 * HEARTBEAT_MIN_MS;

/** How often a worker or the companion manager beats, and the arbiter checks, for `timeout` ms (0: never killed; a beat a second). */
export function heartbeatMs(timeout: number): number {
  return timeout > 0 ? Math.max(HEARTBEAT_MIN_MS, Math.min(1000, timeout / 4)) : 1000;
}

function heartbeatTimeout(raw: unknown, text: boolean): Parsed<number> {
  const r = duration(raw, text);
  if (r.ok && r.value > 0 && r.value < TIMEOUT_MIN_MS) {
    return bad(`expected 0 (never) or at least ${TIMEOUT_MIN_MS / 1000} seconds, got ${show(raw)}: workers beat at most every ${HEARTBEAT_MIN_MS / 1000} s (the heartbeat floor), and a shorter timeout kills and respawns healthy workers for ever`);
  }
  return r;
}

/**
 * The least max_worker_rss other than 0 (never). An idle Node worker, node
 * and drover loaded, holds about 45 MiB before the app is imported: under
 * this floor every worker is over the limit as soon as it starts, and is
 * recycled for ever (`--max-worker-rss 10`, or 512 meant as MB, did that:
 * 62 boots in 12 s). Values above it may still be under what a big app
 * holds; those are the operator's to judge, these never are.
 */
export const WORKER_RSS_MIN = 64 * 1024 ** 2;

function workerRss(raw: unknown, text: boolean): Parsed<number> {
  const r = byteSize(0, 2 ** 50)(raw, text);
  if (!r.ok || r.value === 0 || r.value >= WORKER_RSS_MIN) return r;
  const why = 'no Node worker holds less than 64 MiB (an idle one about 45 MiB), so every worker would be recycled as soon as it started, for ever';
  const head = `expected 0 (never) or at least 64M, got ${show(raw)}`;
  // A bare number is bytes: the likeliest mistake is a number of megabytes. Suggest it when it would be valid.
  if (typeof raw === 'number' || (typeof raw === 'string' && /^\s*\d+\s*$/.test(raw))) {
    const n = Number(raw);
    const mb = n * 1024 ** 2 >= WORKER_RSS_MIN ? `${n}MB` : '512MB';
    return bad(`${head}: a size without a unit is in bytes, and ${why}; write the unit: ${text ? mb : JSON.stringify(mb)}`);
  }
  return bad(`${head}: ${why}; set it above what the app's workers hold once started, e.g. 512MB`);
}

/**
 * A duration of at least `min` ms, and 0 too when `off`: under the floor the
 * setting cuts off healthy traffic (`why`), and nobody meant that.
 */
function floored(min: number, off: boolean, why: string): (raw: unknown, text: boolean) => Parsed<number> {
  return (raw, text) => {
    const r = duration(raw, text);
    if (!r.ok || r.value >= min || (off && r.value === 0)) return r;
    const least = `at least ${min / 1000} second${min === 1000 ? '' : 's'}`;
    return bad(`expected ${off ? `0 (off) or ${least}` : least}, got ${show(raw)}: ${why}`);
  };
}

/**
 * Client deadlines measure a client across a network: a lost packet is sent
 * again after TCP's first retransmission timeout, a second (RFC 6298), so a
 * shorter deadline cuts off clients that did nothing wrong (and below a
 * few ms, nearly every one).
 */
export const CLIENT_TIMEOUT_MIN_MS = 1000;
const clientTimeout = floored(
  CLIENT_TIMEOUT_MIN_MS,
  false,
  "one lost packet is resent after a second (TCP's first retransmission timeout), so a shorter deadline cuts off healthy clients; durations are in seconds (30 is half a minute)",
);

/**
 * request_timeout counts the app's time: a garbage collection or another
 * request's turn of the loop costs tens of ms, so under 0.1 s healthy
 * requests get 504s (at 0.001 s, any that awaits anything). Sub-second
 * deadlines above it stay possible.
 */
export const REQUEST_TIMEOUT_MIN_MS = 100;

/**
 * One request slower than slow_threshold marks its route slow. Under 10 ms
 * ordinary requests cross it, every route turns slow and the whole app runs
 * in the slow lane's slow_workers x slow_concurrency slots.
 */
export const SLOW_THRESHOLD_MIN_MS = 10;

export const SETTINGS: readonly SettingSpec[] = [
  spec<string>({
    name: 'app', group: 'Server', metavar: 'MODULE', example: 'examples/hello.js',
    help: 'the app module; its default export is a request listener or an async factory of one (also the positional APP_MODULE)',
    defaultText: 'none, required',
    parse: nonEmpty('a module path, e.g. examples/hello.js'),
  }),
  spec<Addr[]>({
    name: 'bind', short: 'b', group: 'Server', metavar: 'ADDRESS', example: '127.0.0.1:8000', repeatable: true,
    help: 'address to listen on: HOST:PORT, [IPV6]:PORT, :PORT, unix:PATH; repeat for several (DROVER_BIND: comma- or space-separated)',
    defaultText: `0.0.0.0:$PORT when the PORT variable is set (Heroku, Cloud Run, Render), else ${DEFAULT_HOST}:${DEFAULT_PORT}`,
    default: [{ host: DEFAULT_HOST, port: DEFAULT_PORT }],
    parse: parseBindList,
  }),
  spec<string | null>({
    name: 'config', short: 'c', group: 'Server', metavar: 'PATH', example: 'drover.config.json',
    help: 'config file: .js, .mjs or .cjs (default export: an object of settings, or a function returning one) or .json',
    defaultText: 'the one of ./drover.config.js, .mjs, .cjs, .json that exists (two of them: an error)',
    // A file cannot name another file: which file is read is decided before any is.
    sources: ['cli', 'env'],
    parse: nonEmpty('a config file path, e.g. drover.config.json'),
  }),
  spec<string | null>({
    name: 'pid', short: 'p', group: 'Server', metavar: 'PATH', example: '/run/drover.pid',
    help: 'write the arbiter\'s pid to this file (atomically); a live pid already in it refuses the start',
    defaultText: 'none',
    default: null,
    parse: optionalPath(false),
  }),
  spec<Addr | null>({
    name: 'admin_bind', group: 'Server', metavar: 'ADDRESS', example: '127.0.0.1:9464',
    help: 'serve GET /metrics (Prometheus), /healthz and /readyz here, from the arbiter itself: HOST:PORT or unix:PATH; keep it off the public network',
    defaultText: 'off',
    default: null,
    parse: adminBind,
  }),
  spec<number>({
    name: 'workers', short: 'w', group: 'Workers', metavar: 'INT', example: '4',
    help: 'HTTP worker processes to start',
    defaultText: '$WEB_CONCURRENCY when set, else the number of CPUs (a cgroup CPU quota counted, rounded up), kept within --min-workers/--max-workers when those are given',
    parse: wholeNumber(1),
  }),
  spec<number>({
    name: 'min_workers', group: 'Workers', metavar: 'INT', example: '2',
    help: 'fewest workers autoscaling and TTOU may leave running',
    defaultText: 'workers',
    parse: wholeNumber(1),
  }),
  spec<number>({
    name: 'max_workers', group: 'Workers', metavar: 'INT', example: '8',
    help: 'most workers autoscaling and TTIN may start',
    defaultText: 'workers',
    parse: wholeNumber(1),
  }),
  spec<number>({
    name: 'workers_limit', group: 'Workers', metavar: 'INT', example: '64',
    help: 'the most workers, min_workers, max_workers, slow_workers and spare_workers may each be: a guard against a typo forking until memory runs out; raise it to run more on purpose',
    defaultText: '4 x the number of CPUs',
    // No table default: resolve.ts derives it from the CPU count.
    parse: wholeNumber(1),
  }),
  spec<number>({
    name: 'max_requests', group: 'Workers', metavar: 'INT', example: '1000',
    help: 'recycle a worker after this many requests, without dropping any; 0 = never',
    defaultText: '0',
    default: 0,
    parse: wholeNumber(0),
  }),
  spec<number>({
    name: 'max_requests_jitter', group: 'Workers', metavar: 'INT', example: '50',
    help: 'add a random 0..INT, fixed per worker, to max_requests so workers do not all recycle at once',
    defaultText: '0',
    default: 0,
    parse: wholeNumber(0),
  }),
  spec<number>({
    name: 'spare_workers', group: 'Workers', metavar: 'INT', example: '2',
    help: 'keep this many worker processes started ahead, node and drover loaded but not the app (and as many slow-lane ones, up to slow_workers, with lanes on): a reload or a respawn gives the app to one instead of starting node, most of a worker\'s boot on a busy machine; each costs an idle node process (about 45 MB); 0 = none',
    defaultText: '0',
    default: 0,
    parse: wholeNumber(0),
  }),
  spec<number>({
    name: 'max_worker_rss', group: 'Workers', metavar: 'BYTES', example: '512M',
    help: 'recycle a worker whose resident memory is over this, as max_requests does (no request dropped); 0 = never, else at least 64M (a bare number is bytes)',
    defaultText: '0',
    default: 0,
    parse: workerRss,
  }),
  spec<boolean>({
    name: 'lanes', group: 'Lanes', metavar: 'on|off', example: 'on',
    help: 'classify every request by its route as fast or slow from the latency drover observed; slow ones run in their own pool (slow_workers) so they never stall fast ones',
    defaultText: 'on',
    default: true,
    parse: onOff,
  }),
  spec<number>({
    name: 'slow_threshold', group: 'Lanes', metavar: 'SECONDS', example: '0.1',
    help: 'one request of a route slower than this marks the route slow; it turns fast again as its average falls below; at least 0.01',
    defaultText: '1',
    default: 1000,
    parse: floored(
      SLOW_THRESHOLD_MIN_MS,
      false,
      "ordinary requests (one database query, a file read) take longer, so every route would turn slow and the whole app run in the slow lane's few processes, the rest queued or answered 503; durations are in seconds (0.5 is half a second)",
    ),
  }),
  spec<number>({
    name: 'slow_workers', group: 'Lanes', metavar: 'INT', example: '2',
    help: 'worker processes of the slow lane',
    defaultText: '1',
    default: 1,
    parse: wholeNumber(1),
  }),
  spec<number>({
    name: 'slow_concurrency', group: 'Lanes', metavar: 'INT', example: '1',
    help: 'requests one slow worker runs at once (slow routes are usually CPU-bound: 1)',
    defaultText: '1',
    default: 1,
    parse: wholeNumber(1),
  }),
  spec<number>({
    name: 'slow_queue', group: 'Lanes', metavar: 'INT', example: '64',
    help: 'slow requests that may wait for a slow worker; one more is answered 503 with Retry-After',
    defaultText: '64',
    default: 64,
    parse: wholeNumber(0),
  }),
  spec<number>({
    name: 'queue_timeout', group: 'Lanes', metavar: 'SECONDS', example: '10',
    help: 'a slow request that waited this long for a slow worker is answered 503; 0 = wait as long as it takes',
    defaultText: '10',
    default: 10_000,
    parse: duration,
  }),
  spec<number>({
    name: 'slow_body_max', group: 'Lanes', metavar: 'BYTES', example: '1M',
    help: 'a predicted-slow request\'s body is read whole by the fast worker before it takes a slow slot (a slot never waits on an upload); a larger body is answered 413',
    defaultText: '1M',
    default: 1024 ** 2,
    parse: byteSize(0, 1024 ** 3),
  }),
  spec<number>({
    name: 'slow_buffer', group: 'Lanes', metavar: 'BYTES', example: '8M',
    help: 'a slow answer is taken from the slow worker as fast as it comes, up to this much held for a client that reads slowly; its slot is freed when the app\'s answer ends',
    defaultText: '8M',
    default: 8 * 1024 ** 2,
    parse: byteSize(64 * 1024, 1024 ** 3),
  }),
  spec<readonly string[]>({
    name: 'slow_routes', group: 'Lanes', metavar: 'LIST', example: "'GET /reports/*'",
    help: 'routes slow before any traffic, [METHOD ]PATH each: ids fold (/users/:id/export), a last /* covers a subtree; text: comma-separated',
    defaultText: 'none',
    default: [],
    parse: slowRoutes,
  }),
  spec<number>({
    name: 'timeout', short: 't', group: 'Timeouts', metavar: 'SECONDS', example: '30',
    help: 'a worker silent (no heartbeat) this long is killed (ABRT, then KILL) and replaced; 0 = never',
    defaultText: '30',
    default: 30_000,
    parse: heartbeatTimeout,
  }),
  spec<number>({
    name: 'graceful_timeout', group: 'Timeouts', metavar: 'SECONDS', example: '30',
    help: 'on stop or reload, time a worker gets to finish in-flight requests before KILL',
    defaultText: '30',
    default: 30_000,
    parse: duration,
  }),
  spec<number>({
    name: 'request_timeout', group: 'Timeouts', metavar: 'SECONDS', example: '30',
    help: 'a request whose answer has not begun after this long is answered 504 and its work abandoned; 0 = never, else at least 0.1 (a worker stuck past timeout is killed regardless)',
    defaultText: '0',
    default: 0,
    parse: floored(
      REQUEST_TIMEOUT_MIN_MS,
      true,
      "a shorter one answers 504 to healthy requests whenever a worker pauses (a garbage collection, another request's turn of the loop); durations are in seconds (30 is half a minute)",
    ),
  }),
  spec<number>({
    name: 'keep_alive', group: 'Timeouts', metavar: 'SECONDS', example: '5',
    help: 'how long an idle keep-alive connection is held open; 0 = close after each response',
    defaultText: '5',
    default: 5_000,
    parse: duration,
  }),
  spec<number>({
    name: 'client_header_timeout', group: 'Clients', metavar: 'SECONDS', example: '30',
    help: 'a request head must arrive whole within this, from its first byte (on keep-alive, from the end of the previous answer); past it: 408 and close; at least 1',
    defaultText: '30',
    default: 30_000,
    parse: clientTimeout,
  }),
  spec<number>({
    name: 'client_body_timeout', group: 'Clients', metavar: 'SECONDS', example: '60',
    help: 'a request body must arrive whole within this, from the end of its head; past it: 408, or a close once the answer has begun; at least 1',
    defaultText: '60',
    default: 60_000,
    parse: clientTimeout,
  }),
  spec<number>({
    name: 'send_timeout', group: 'Clients', metavar: 'SECONDS', example: '60',
    help: 'a client that takes no byte of an answer for this long is closed; at least 1',
    defaultText: '60',
    default: 60_000,
    parse: clientTimeout,
  }),
  spec<number>({
    name: 'worker_connections', group: 'Clients', metavar: 'INT', example: '1000',
    help: 'open connections one worker holds at most; at the cap it closes one stalled a second without a request, or stops accepting (the backlog and the other workers take the rest) until one closes',
    defaultText: '1000',
    default: 1000,
    parse: wholeNumber(1),
  }),
  spec<string | null>({
    name: 'access_log', group: 'Logging', metavar: 'PATH', example: '-',
    help: 'access log: "-" = stderr, a file, or "" = off',
    defaultText: 'off',
    default: null,
    parse: optionalPath(true),
  }),
  spec<string>({
    name: 'error_log', group: 'Logging', metavar: 'PATH', example: '-',
    help: 'error and lifecycle log: "-" = stderr, or a file',
    defaultText: '-',
    default: '-',
    parse: logTarget,
  }),
  spec<LogLevel>({
    name: 'log_level', group: 'Logging', metavar: 'LEVEL', example: 'info',
    help: `error log threshold: ${LOG_LEVELS.join(', ')}`,
    defaultText: 'info',
    default: 'info',
    parse: oneOf(LOG_LEVELS),
  }),
  spec<LogFormat>({
    name: 'log_format', group: 'Logging', metavar: 'FORMAT', example: 'json',
    help: 'text (one readable line) or json (one object a line: ts, level, pid, role, msg and fields), for the error and the access log',
    defaultText: 'text',
    default: 'text',
    parse: oneOf(LOG_FORMATS),
  }),
  spec<readonly string[]>({
    name: 'forwarded_allow_ips', group: 'Logging', metavar: 'LIST', example: '127.0.0.1,10.0.0.5',
    help: 'proxies whose X-Forwarded-For is believed for the client address in the access log: IP addresses, or * for any; text: comma-separated',
    defaultText: '127.0.0.1',
    default: ['127.0.0.1'],
    parse: allowIps,
  }),
  spec<string>({
    name: 'control_socket', group: 'Companions', metavar: 'PATH', example: '/run/drover/ctl.sock',
    help: 'the arbiter\'s control socket (mode 0600), which drover ctl talks to: companions and lane stats',
    // As defaultControlSocket (companions/config.ts) and runtimeDirPath (rundir.ts) make it.
    defaultText: '$XDG_RUNTIME_DIR/drover/ctl-HASH.sock when XDG_RUNTIME_DIR is set, else /tmp/drover-UID/ctl-HASH.sock (also when the first is too long for a Unix socket path); HASH: 8 hex digits of sha256 of the config file\'s absolute path (else the working directory)',
    // No table default: resolve.ts derives it from the working directory and the config file.
    parse: readSocketPath,
  }),
  spec<readonly unknown[]>({
    name: 'companions', group: 'Companions', metavar: 'LIST', example: '[]',
    help: `side processes to supervise, a list of { ${FIELDS.map((f) => f.key).join(', ')} }; companion_* settings fill what a companion omits`,
    defaultText: 'none',
    default: [],
    // A list of objects has no sensible flag or variable form.
    sources: ['file'],
    parse: readCompanionList,
  }),
  spec<string | null>({
    name: 'companions_file', group: 'Companions', metavar: 'PATH', example: 'companions.json',
    help: 'read the companions from this file (.json, .js, .mjs, .cjs): a list, or { companions: [...] } with companion_* settings; refused together with inline companions',
    defaultText: 'none',
    default: null,
    parse: optionalPath(false),
  }),
  // One default setting per companion field marked global, straight from the field table.
  ...FIELDS.filter((f) => f.global).map((f) =>
    spec({
      name: `companion_${f.key as GlobalKey}`, group: 'Companions', metavar: f.metavar, example: f.example,
      help: `default ${f.key} of every companion: ${f.help}`,
      defaultText: f.defaultText,
      default: COMPANION_DEFAULTS[f.key as GlobalKey],
      ...(f.fileOnly ? { sources: ['file'] as const } : {}),
      parse: f.parse,
    }),
  ),
];

/** slow_routes: a list of patterns in a file; comma-separated as text. Each is checked as the predictor reads it. */
function slowRoutes(raw: unknown, text: boolean): Parsed<readonly string[]> {
  let list: unknown[];
  if (text) {
    if (typeof raw !== 'string') return expected('comma-separated route patterns', raw, text);
    list = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  } else {
    if (!Array.isArray(raw)) return expected("a list of route patterns, e.g. ['GET /reports/*']", raw, text, true);
    list = raw;
  }
  const problems: string[] = [];
  for (const p of list) {
    if (typeof p !== 'string') {
      problems.push(`expected each route pattern to be a string like 'GET /reports/*', got ${JSON.stringify(p)}`);
      continue;
    }
    try {
      parseHint(p);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return problems.length > 0 ? bad(...problems) : ok(list as string[]);
}

/** admin_bind: one address, or "" / "off" for none. */
function adminBind(raw: unknown, text: boolean): Parsed<Addr | null> {
  if (raw === null || raw === '' || raw === 'off') return ok(null);
  if (typeof raw !== 'string') return expected('an address, HOST:PORT or unix:PATH, e.g. 127.0.0.1:9464', raw, text, true);
  return parseBind(raw);
}

/** forwarded_allow_ips: IP addresses (or *), a list in a file, comma-separated as text. */
function allowIps(raw: unknown, text: boolean): Parsed<readonly string[]> {
  let list: unknown[];
  if (typeof raw === 'string') list = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  else if (Array.isArray(raw) && !text) list = raw;
  else return expected("IP addresses, e.g. ['127.0.0.1', '10.0.0.5'], or '*'", raw, text, true);
  const problems: string[] = [];
  for (const ip of list) {
    if (typeof ip !== 'string' || !(ip === '*' || isIPv4(ip) || isIPv6(ip))) problems.push(`forwarded_allow_ips: expected an IP address or *, got ${JSON.stringify(ip)}`);
  }
  return problems.length > 0 ? bad(...problems) : ok(list as string[]);
}

export const ACTIONS: readonly ActionSpec[] = [
  { name: 'help', short: 'h', help: 'print this help and exit' },
  { name: 'version', short: 'v', help: "print drover's and Node's versions and exit" },
  { name: 'check_config', help: 'validate every setting and the directories of the files and unix: sockets a start makes (creating none), then import the app in a process of its own, and exit: 0 if both are good, 2 (with every problem) for settings and directories, 4 for an app that cannot load' },
];

const BY_NAME = new Map<string, SettingSpec>(SETTINGS.map((s) => [s.name, s]));

export function settingByName(name: string): SettingSpec | undefined {
  return BY_NAME.get(name);
}

export function allowedFrom(s: SettingSpec, kind: 'cli' | 'env' | 'file'): boolean {
  return s.sources === undefined || s.sources.includes(kind);
}

export const SETTING_NAMES: readonly SettingName[] = SETTINGS.map((s) => s.name);
