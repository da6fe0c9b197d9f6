// From raw inputs to one validated Config.
//
// Precedence, lowest to highest:
//   1. built-in defaults, and below every source the platform's own
//      variables: PORT (bind 0.0.0.0:$PORT) and WEB_CONCURRENCY (workers),
//      as Heroku, Cloud Run, Render and gunicorn read them (env.ts)
//   2. the config file (--config PATH, DROVER_CONFIG, or ./drover.config.*),
//      with the companions file (companions_file) at the same level: it may
//      hold only companions and companion_* defaults, and a key set in both
//      files (inline companions included) is refused, not ranked
//   3. DROVER_* environment variables
//   4. the command line
// as in gunicorn (file < GUNICORN_CMD_ARGS < CLI), with the environment in
// the middle because it is set per deployment and the CLI per invocation. A
// higher source replaces a value whole: a --bind list replaces the file's
// list rather than adding to it.
//
// Every source is validated, including values a higher source overrides: a
// broken file is reported even when today's command line hides it, because
// tomorrow's HUP or a run without the flag would not.

import { GLOBAL_KEYS, defaultControlSocket, parseCompanions, type CompanionConfig, type CompanionDefaults } from '../companions/config.js';
import { scanArgv } from './argv.js';
import { ENV_PORT, ENV_WEB_CONCURRENCY, scanEnv, scanPlatform } from './env.js';
import { ConfigError } from './errors.js';
import { scanCompanionsFile, scanFile } from './file.js';
import { show } from './names.js';
import { SETTINGS, settingByName } from './settings.js';
import type { Config, RawEntry, Scan, SettingName } from './types.js';

export interface ResolveInput {
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  file: { path: string; data: unknown } | null;
  cpus: number;
  /** The working directory. The default control_socket is derived from it and the config file's path. */
  cwd: string;
  /** The user drover runs as: the default control_socket is in that user's runtime directory. Default 0 (root). */
  uid?: number;
  /**
   * The content of the file the companions_file setting names (loadConfig
   * reads it). Undefined: not read, which is a problem when the setting is
   * given; null: reading it failed and the reader reported why.
   */
  companionsFile?: { path: string; data: unknown } | null;
}

interface Chosen {
  value: unknown;
  /** Where it came from, for cross-setting messages: '--workers', 'DROVER_WORKERS', a file path, 'default'. */
  from: string;
}

function where(e: RawEntry): string {
  return e.kind === 'file' ? `${e.name} in ${e.source}` : e.source;
}

export const MISSING_APP = 'no app given: drover APP_MODULE (for example drover examples/hello.js)';

export function resolveConfig(input: ResolveInput): Config {
  const argv = scanArgv(input.argv);
  const env = scanEnv(input.env);
  const platform = scanPlatform(input.env);
  const file = input.file === null ? { entries: [], problems: [] } : scanFile(input.file);
  const companionsFile = input.companionsFile ? companionsLayer(file, scanCompanionsFile(input.companionsFile)) : { entries: [], problems: [] };
  const problems: string[] = [];
  const chosen = new Map<SettingName, Chosen>();
  // Settings with a value refused somewhere: rules between settings skip
  // them, so one mistake is not reported again as a conflict it caused.
  const failed = new Set<SettingName>();

  // Lowest first, so a later set() is a higher-precedence override; the
  // problems come out grouped by source in the same order.
  for (const source of [file, companionsFile, env, argv]) {
    problems.push(...source.problems);
    for (const e of source.entries) {
      const r = settingByName(e.name)!.parse(e.raw, e.text);
      if (r.ok) chosen.set(e.name, { value: r.value, from: e.source });
      else {
        failed.add(e.name);
        for (const p of r.problems) problems.push(`${where(e)}: ${p}`);
      }
    }
    if (source === env) problems.push(...platform.problems);
  }
  for (const spec of SETTINGS) {
    // A copy: the table's default bind list must not be shared with (and changed through) a Config.
    if (!chosen.has(spec.name) && spec.default !== undefined) chosen.set(spec.name, { value: structuredClone(spec.default), from: 'default' });
  }

  // PORT stands in for the built-in bind only; a refused bind keeps its own problem instead.
  if (platform.port !== null && chosen.get('bind')?.from === 'default' && !failed.has('bind')) {
    chosen.set('bind', { value: [{ host: '0.0.0.0', port: platform.port }], from: ENV_PORT });
  }

  if (!chosen.has('app') && !failed.has('app')) problems.push(MISSING_APP);

  const fallback = platform.webConcurrency === null ? null : { value: platform.webConcurrency, from: ENV_WEB_CONCURRENCY };
  const counts = workerCounts(chosen, input.cpus, fallback);
  if (!failed.has('workers') && !failed.has('min_workers') && !failed.has('max_workers') && counts.problem !== null) {
    problems.push(counts.problem);
  }
  const limit = workersLimit(chosen, failed, input.cpus);
  problems.push(...limit.problems);
  // Only when it is the count: bent to a bound, the bound is what workersLimit names.
  if (fallback !== null && !chosen.has('workers') && !failed.has('workers_limit') && counts.workers === fallback.value && counts.workers > limit.limit) {
    problems.push(`${ENV_WEB_CONCURRENCY}=${counts.workers} is over ${limit.bound}: a mistake? lower ${ENV_WEB_CONCURRENCY}, or raise --workers-limit to run more`);
  }
  const v = <T>(name: SettingName): T => chosen.get(name)!.value as T;

  const named = chosen.get('companions_file')!;
  if (named.value !== null && input.companionsFile === undefined) {
    problems.push(`companions_file ${show(named.value)} (from ${named.from}) was not read: resolveConfig needs its content as companionsFile (loadConfig reads it)`);
  }
  // The defaults as resolved: a refused companion_* value leaves the lower source's or the built-in one, so it causes no second problem here.
  const defaults = Object.fromEntries(GLOBAL_KEYS.map((k) => [k, v(`companion_${k}`)])) as unknown as CompanionDefaults;
  const list = chosen.get('companions')!;
  const companions = parseCompanions(list.value, defaults, list.from);
  problems.push(...companions.problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    app: v('app'),
    bind: v('bind'),
    workers: counts.workers,
    min_workers: counts.min_workers,
    max_workers: counts.max_workers,
    workers_limit: limit.limit,
    timeout: v('timeout'),
    graceful_timeout: v('graceful_timeout'),
    keep_alive: v('keep_alive'),
    max_requests: v('max_requests'),
    max_requests_jitter: v('max_requests_jitter'),
    spare_workers: v('spare_workers'),
    pid: v('pid'),
    access_log: v('access_log'),
    error_log: v('error_log'),
    log_level: v('log_level'),
    config: input.file === null ? null : input.file.path,
    companions: companions.companions as readonly CompanionConfig[],
    control_socket: (chosen.get('control_socket')?.value as string | undefined) ?? defaultControlSocket(input.cwd, input.file?.path ?? null, input.env, input.uid ?? 0),
    lanes: v('lanes'),
    slow_threshold: v('slow_threshold'),
    slow_workers: v('slow_workers'),
    slow_concurrency: v('slow_concurrency'),
    slow_queue: v('slow_queue'),
    queue_timeout: v('queue_timeout'),
    slow_routes: v('slow_routes'),
    slow_body_max: v('slow_body_max'),
    slow_buffer: v('slow_buffer'),
    client_header_timeout: v('client_header_timeout'),
    client_body_timeout: v('client_body_timeout'),
    send_timeout: v('send_timeout'),
    worker_connections: v('worker_connections'),
    admin_bind: v('admin_bind'),
    max_worker_rss: v('max_worker_rss'),
    request_timeout: v('request_timeout'),
    log_format: v('log_format'),
    forwarded_allow_ips: v('forwarded_allow_ips'),
  };
}

/**
 * The companions file sits with the main file, below the environment. A key
 * set in both files is refused rather than ranked: two files saying
 * different things is a mistake, not an override.
 */
function companionsLayer(main: Scan, companions: Scan): Scan {
  const problems = [...companions.problems];
  for (const e of companions.entries) {
    const twin = main.entries.find((m) => m.name === e.name);
    if (twin === undefined) continue;
    problems.push(
      e.name === 'companions'
        ? `companions are given both inline (in ${twin.source}) and in companions_file ${e.source}; keep them in one place`
        : `${e.name} is set both in ${twin.source} and in companions_file ${e.source}; set it in one place`,
    );
  }
  return { entries: companions.entries, problems };
}

/**
 * workers, min_workers, max_workers. Only what the user said can conflict:
 * the defaults bend around it. An unset `workers` is the CPU count (or
 * `fallback`, WEB_CONCURRENCY, which is a default too) kept within any
 * bound given (`--min-workers 4` on a 2-CPU machine starts 4, not an
 * error); an unset bound is `workers` itself (no autoscaling that way).
 */
export function workerCounts(
  chosen: ReadonlyMap<SettingName, Chosen>,
  cpus: number,
  fallback: Chosen | null = null,
): Pick<Config, 'workers' | 'min_workers' | 'max_workers'> & { problem: string | null } {
  const lo = chosen.get('min_workers');
  const hi = chosen.get('max_workers');
  const ncpu = cpuCount(cpus);
  let w = chosen.get('workers');
  if (w === undefined) {
    let n = fallback === null ? ncpu : (fallback.value as number);
    if (lo !== undefined) n = Math.max(n, lo.value as number);
    if (hi !== undefined) n = Math.min(n, hi.value as number);
    w = { value: n, from: fallback === null ? `default: ${ncpu} CPU${ncpu === 1 ? '' : 's'}` : `default: ${fallback.from}` };
  }
  const workers = w.value as number;
  const min = lo ?? { value: workers, from: 'default' };
  const max = hi ?? { value: workers, from: 'default' };
  const say = (name: string, c: Chosen): string => `${name} (${c.value}${c.from.startsWith('default') ? '' : `, from ${c.from}`})`;
  let problem: string | null = null;
  // Bounds that default to `workers` never conflict with it, so each test below involves a value someone set.
  if (lo !== undefined && hi !== undefined && (lo.value as number) > (hi.value as number)) {
    problem = `${say('min_workers', lo)} cannot exceed ${say('max_workers', hi)}; lower min_workers or raise max_workers`;
  } else if (workers < (min.value as number)) {
    problem = `${say('workers', w)} cannot be below ${say('min_workers', min)}; raise workers or lower min_workers`;
  } else if (workers > (max.value as number)) {
    problem = `${say('workers', w)} cannot exceed ${say('max_workers', max)}; lower workers or raise max_workers`;
  }
  return { workers, min_workers: min.value as number, max_workers: max.value as number, problem };
}

/** The CPU count as a whole number of at least 1, whatever the host reported. */
function cpuCount(cpus: number): number {
  return Number.isFinite(cpus) ? Math.max(1, Math.floor(cpus)) : 1;
}

/** Settings that ask for processes, each bounded by workers_limit. */
const LIMITED: readonly SettingName[] = ['workers', 'min_workers', 'max_workers', 'slow_workers', 'spare_workers'];

/**
 * workers_limit: 4 x CPUs unless given. Each count someone set above it is a
 * problem (`--workers 10000` forks until memory runs out); a count that only
 * defaulted above it did so because of one that was set, which is the one
 * named. A refused value is not checked again here.
 */
export function workersLimit(
  chosen: ReadonlyMap<SettingName, Chosen>,
  failed: ReadonlySet<SettingName>,
  cpus: number,
): { limit: number; bound: string; problems: string[] } {
  const ncpu = cpuCount(cpus);
  const given = chosen.get('workers_limit');
  const limit = given === undefined ? 4 * ncpu : (given.value as number);
  const bound = given === undefined ? `workers_limit ${limit} (4 x ${ncpu} CPU${ncpu === 1 ? '' : 's'})` : `workers_limit ${limit} (from ${given.from})`;
  const problems: string[] = [];
  if (failed.has('workers_limit')) return { limit, bound, problems };
  for (const name of LIMITED) {
    const c = chosen.get(name);
    if (c === undefined || c.from === 'default' || failed.has(name) || (c.value as number) <= limit) continue;
    problems.push(`${name} ${c.value as number} (from ${c.from}) is over ${bound}: a mistake? raise --workers-limit to run more`);
  }
  return { limit, bound, problems };
}
