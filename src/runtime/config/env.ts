// DROVER_* environment variables. Every one must be a setting or one of
// drover's own plumbing variables: a misspelt DROVER_WOKERS would otherwise
// be ignored without a word, which is the failure this module exists to stop.

import { ENV_CHANNEL, ENV_LISTENERS, ENV_PARENT, ENV_REGISTRIES } from '../../os/node/plumbing.js';
import { ENV_PREFIX, closest, envOf, flagOf, show } from './names.js';
import { isIPv4, isIPv6 } from './bind.js';
import { ACTIONS, SETTINGS, allowedFrom, settingByName } from './settings.js';
import type { Parsed, RawEntry, Scan } from './types.js';
import { bad, ok, wholeNumber } from './values.js';

/**
 * Not settings, and not mistakes: the Node adapter's handover to a child
 * (src/os/node/plumbing.ts; entry.ts deletes them before a program runs, but
 * a config read elsewhere may still see them), the test suite's markers, and
 * DROVER_CONFIG, which names the file before any setting is read.
 */
export const ENV_CONFIG = envOf('config');
// The cgroup root and membership file the CPU count reads (src/os/node/cpus.ts), for tests; DROVER_SIM=1,
// which drover sim sets for the app it simulates (an app may give itself stand-ins for the network by it).
const PLUMBING = new Set([ENV_REGISTRIES, ENV_LISTENERS, ENV_CHANNEL, ENV_PARENT, 'DROVER_CGROUP_ROOT', 'DROVER_PROC_CGROUP', 'DROVER_SIM']);
export function isPlumbing(key: string): boolean {
  return PLUMBING.has(key) || key.startsWith(`${ENV_PREFIX}TEST_`);
}

/**
 * Kubernetes puts variables for every Service in the namespace into each
 * pod (enableServiceLinks): a Service named drover, or drover-admin, gives
 * DROVER_SERVICE_HOST=10.0.0.7, DROVER_ADMIN_PORT=tcp://10.0.0.7:9464 and
 * the like. They are not settings and not mistakes; a drover that refused
 * them would not start in a namespace that has a Service by that name. Each
 * is recognised by its name and the shape of its value, so that
 * DROVER_ADMIN_PORT=9464, a guess at a setting, is still reported.
 */
export function isServiceLink(key: string, value: string): boolean {
  return SERVICE_LINKS.some(([name, shape]) => name.test(key) && shape(value));
}

const ip = (v: string): boolean => isIPv4(v) || isIPv6(v);
const digits = (v: string): boolean => /^\d{1,5}$/.test(v);
const url = (v: string): boolean => /^(?:tcp|udp|sctp):\/\/\S+$/.test(v);
// Each name a Service link can have, and its value's shape. Tried one by one: DROVER_SERVICE_PORT could be
// read as a Service named drover-service's _PORT too, and only its value says which.
const SERVICE_LINKS: readonly [RegExp, (v: string) => boolean][] = ([
  ['SERVICE_HOST', ip],
  ['SERVICE_PORT(?:_[A-Z0-9_]+)?', digits],
  ['PORT', url],
  ['PORT_\\d+_(?:TCP|UDP|SCTP)', url],
  ['PORT_\\d+_(?:TCP|UDP|SCTP)_PROTO', (v: string) => /^(?:tcp|udp|sctp)$/.test(v)],
  ['PORT_\\d+_(?:TCP|UDP|SCTP)_PORT', digits],
  ['PORT_\\d+_(?:TCP|UDP|SCTP)_ADDR', ip],
] as const).map(([suffix, shape]) => [new RegExp(`^DROVER(?:_[A-Z0-9_]+)?_${suffix}$`), shape]);

const ENV_SETTINGS = SETTINGS.filter((s) => allowedFrom(s, 'env')).map((s) => s.name);
const ENV_NAMES = ENV_SETTINGS.map(envOf);

/** Splits DROVER_BIND: '127.0.0.1:8000, unix:/run/a.sock' or space-separated. */
export function splitBinds(value: string): string[] {
  return value.split(/[\s,]+/).filter((s) => s !== '');
}

export function scanEnv(env: Readonly<Record<string, string | undefined>>): Scan {
  const entries: RawEntry[] = [];
  const problems: string[] = [];
  // Sorted so the order of problems does not depend on the order of the environment.
  for (const key of Object.keys(env).sort()) {
    const value = env[key];
    if (!key.startsWith(ENV_PREFIX) || value === undefined || isPlumbing(key) || isServiceLink(key, value)) continue;
    const name = key.slice(ENV_PREFIX.length).toLowerCase();
    const spec = key === key.toUpperCase() ? settingByName(name) : undefined;
    if (spec !== undefined && allowedFrom(spec, 'env')) {
      const raw = spec.repeatable ? splitBinds(value) : value;
      entries.push({ name: spec.name, raw, text: true, kind: 'env', source: key });
      continue;
    }
    if (spec !== undefined) {
      problems.push(`${key}: ${spec.name} can be set only in a config file; unset ${key}`);
      continue;
    }
    const action = ACTIONS.find((a) => a.name === name);
    if (action !== undefined) {
      problems.push(`${key}: ${flagOf(action.name)} is a command-line action, not a setting; unset ${key}`);
      continue;
    }
    // Compared without the prefix, which every candidate shares and which would loosen the match.
    const near = closest(name, ENV_SETTINGS);
    problems.push(`unknown environment variable ${key}${near === null ? `; drover's variables are ${ENV_NAMES.join(', ')}` : `; did you mean ${envOf(near)}?`}`);
  }
  return { entries, problems };
}

// ------------------------------------------------------- platform variables

/**
 * PORT and WEB_CONCURRENCY, the variables Heroku, Cloud Run, Render and
 * gunicorn use. Each is a default, below every drover source (config file,
 * DROVER_*, command line): PORT binds 0.0.0.0:$PORT when no source gives
 * bind, WEB_CONCURRENCY is the worker count when no source gives workers.
 * They are checked even when something overrides them, as every source is;
 * an empty value is the same as none (compose files write VAR: ${VAR}).
 */
export interface Platform {
  readonly port: number | null;
  readonly webConcurrency: number | null;
  readonly problems: string[];
}

export const ENV_PORT = 'PORT';
export const ENV_WEB_CONCURRENCY = 'WEB_CONCURRENCY';

export function scanPlatform(env: Readonly<Record<string, string | undefined>>): Platform {
  const problems: string[] = [];
  const read = <T>(key: string, parse: (raw: string) => Parsed<T>, fix: string): T | null => {
    const raw = env[key];
    if (raw === undefined || raw === '') return null;
    const r = parse(raw);
    if (r.ok) return r.value;
    for (const p of r.problems) problems.push(`${key}: ${p}; ${fix}`);
    return null;
  };
  const port = read(ENV_PORT, parsePort, 'set PORT to the port to listen on (drover binds 0.0.0.0:$PORT when no bind is given), or unset it');
  const webConcurrency = read(ENV_WEB_CONCURRENCY, (raw) => wholeNumber(1)(raw, true), 'set WEB_CONCURRENCY to the number of workers, or unset it');
  return { port, webConcurrency, problems };
}

function parsePort(raw: string): Parsed<number> {
  // Port 0 would be a port the kernel picks, which no router in front knows.
  if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) return bad(`expected a port number from 1 to 65535, got ${show(raw)}`);
  return ok(Number(raw));
}
