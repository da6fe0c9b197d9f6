// The shapes shared by the config modules. The resolved Config uses the
// units the runtime wants (milliseconds, Addr values); every input source
// speaks the user's units (seconds, address strings).

import type { Addr } from '../../os/types.js';
import type { CompanionConfig, GlobalKey } from '../companions/config.js';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error' | 'critical';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error', 'critical'];
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface Config {
  /** The app module path, as given. */
  app: string;
  bind: Addr[];
  workers: number;
  min_workers: number;
  max_workers: number;
  /** The most workers, min_workers, max_workers, slow_workers and spare_workers may each be (default 4 x CPUs): a typo must not fork the machine to death. */
  workers_limit: number;
  /** Heartbeat timeout in ms; 0 disables it. */
  timeout: number;
  /** ms a stopping worker gets to finish in-flight requests before KILL. */
  graceful_timeout: number;
  /** ms an idle keep-alive connection is held open; 0 disables keep-alive. */
  keep_alive: number;
  /** Requests a worker serves before it is recycled; 0 = never. */
  max_requests: number;
  /** Up to this many more requests, drawn per worker, so workers do not recycle in step. */
  max_requests_jitter: number;
  /** Worker processes started ahead of need, per role (slow ones up to slow_workers); 0 = none (arbiter/spares.ts). */
  spare_workers: number;
  pid: string | null;
  /** null = off, '-' = stderr, else a file. */
  access_log: string | null;
  /** '-' = stderr, else a file. */
  error_log: string;
  log_level: LogLevel;
  /** The config file used, if any. */
  config: string | null;
  /** Side processes the companion manager supervises, every field filled (companion_* defaults applied). */
  companions: readonly CompanionConfig[];
  /** The manager's control socket: as configured, else defaultControlSocket(cwd, config, env, uid). */
  control_socket: string;
  /** Where /metrics, /healthz and /readyz are served by the arbiter; null = off. */
  admin_bind: Addr | null;
  /** Bytes of resident memory over which a worker is recycled; 0 = never. */
  max_worker_rss: number;
  /** ms a request may wait for its answer to begin before a 504; 0 = never. */
  request_timeout: number;
  log_format: LogFormat;
  /** Peers whose X-Forwarded-For names the client; '*' = any. */
  forwarded_allow_ips: readonly string[];
  /** Lanes on: requests predicted slow run in the slow-lane pool. */
  lanes: boolean;
  /** ms: one request of a route slower than this marks the route slow. */
  slow_threshold: number;
  /** Slow-lane worker processes (only while lanes is on). */
  slow_workers: number;
  /** Requests one slow worker runs at once. */
  slow_concurrency: number;
  /** Requests that may wait for a slow worker; more are answered 503. */
  slow_queue: number;
  /** ms a request may wait for a slow worker before a 503; 0 = no limit. */
  queue_timeout: number;
  /** Bytes of a predicted-slow request's body the fast worker reads before it takes a slot; more: 413. */
  slow_body_max: number;
  /** Bytes of a slow answer the fast worker holds for a client that reads slowly. */
  slow_buffer: number;
  /** ms a request head may take to arrive (client_header_timeout). */
  client_header_timeout: number;
  /** ms a request body may take to arrive after its head. */
  client_body_timeout: number;
  /** ms a client may take no byte of an answer. */
  send_timeout: number;
  /** Open connections per worker; at the cap it stops accepting. */
  worker_connections: number;
  /** Routes slow before any traffic: `[METHOD ]PATH` patterns (lanes/predictor.ts). */
  slow_routes: readonly string[];
}

/**
 * Config's keys, plus settings that feed other values instead of being kept
 * themselves: companions_file (read into companions) and the companion_*
 * defaults (applied to each companion).
 */
export type SettingName = keyof Config | 'companions_file' | `companion_${GlobalKey}`;

/** Where a raw value came from. `label` is what messages print. */
export type SourceKind = 'cli' | 'env' | 'file';

/**
 * One raw value from one source, before validation. `text` is true when the
 * value arrived as a string that must be read (CLI, environment), false when
 * it arrived typed (a config file), where a string "4" for a number is a
 * type error rather than something to convert.
 */
export interface RawEntry {
  readonly name: SettingName;
  readonly raw: unknown;
  readonly text: boolean;
  readonly kind: SourceKind;
  /** '--workers', 'DROVER_WORKERS', or the config file's path. */
  readonly source: string;
}

/** What a scan of one source yields: values to validate, and problems already found. */
export interface Scan {
  readonly entries: RawEntry[];
  readonly problems: string[];
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problems: readonly string[] };

export type Group = 'Server' | 'Workers' | 'Lanes' | 'Timeouts' | 'Clients' | 'Logging' | 'Companions' | 'Actions';

export interface SettingSpec<T = unknown> {
  /** The one name: snake_case in files, --kebab-case on the CLI, DROVER_UPPER_SNAKE in the environment. */
  readonly name: SettingName;
  /** A single-letter CLI alias, as in gunicorn (-b, -w, -c, ...). */
  readonly short?: string;
  readonly group: Group;
  /** The placeholder in help: `--workers INT`. */
  readonly metavar: string;
  /** One line of meaning. */
  readonly help: string;
  /** The default as help prints it. */
  readonly defaultText: string;
  /** The default value; undefined for settings resolve.ts derives (workers and its bounds, config). */
  readonly default?: T;
  /** A valid value as typed on the CLI, for "needs a value" messages. */
  readonly example: string;
  /** Each CLI use adds to a list (bind). */
  readonly repeatable?: boolean;
  /** Sources that may set it; default all three. */
  readonly sources?: readonly SourceKind[];
  /** Validate and convert a raw value. `text`: see RawEntry. */
  readonly parse: (raw: unknown, text: boolean) => Parsed<T>;
}

/** CLI-only switches that do something instead of configuring something. */
export interface ActionSpec {
  readonly name: 'help' | 'version' | 'check_config';
  readonly short?: string;
  readonly help: string;
}
