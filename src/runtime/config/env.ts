// DROVER_* environment variables. Every one must be a setting or one of
// drover's own plumbing variables: a misspelt DROVER_WOKERS would otherwise
// be ignored without a word, which is the failure this module exists to stop.

import { ENV_CHANNEL, ENV_LISTENERS, ENV_PARENT, ENV_REGISTRIES } from '../../os/node/plumbing.js';
import { ENV_PREFIX, closest, envOf, flagOf } from './names.js';
import { ACTIONS, SETTINGS, allowedFrom, settingByName } from './settings.js';
import type { RawEntry, Scan } from './types.js';

/**
 * Not settings, and not mistakes: the Node adapter's handover to a child
 * (src/os/node/plumbing.ts; entry.ts deletes them before a program runs, but
 * a config read elsewhere may still see them), the test suite's markers, and
 * DROVER_CONFIG, which names the file before any setting is read.
 */
export const ENV_CONFIG = envOf('config');
const PLUMBING = new Set([ENV_REGISTRIES, ENV_LISTENERS, ENV_CHANNEL, ENV_PARENT]);
export function isPlumbing(key: string): boolean {
  return PLUMBING.has(key) || key.startsWith(`${ENV_PREFIX}TEST_`);
}

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
    if (!key.startsWith(ENV_PREFIX) || value === undefined || isPlumbing(key)) continue;
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
