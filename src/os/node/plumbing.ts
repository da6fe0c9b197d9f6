// What a parent hands a drover program besides argv: environment variables
// read (and deleted) by entry.ts before the program runs, so they never leak
// into the program's `os.env` or into the default env of its own children.

import type { Addr, Signal } from '../types.js';

export const ENV_REGISTRIES = 'DROVER_REGISTRIES';
export const ENV_LISTENERS = 'DROVER_LISTENERS';
export const ENV_CHANNEL = 'DROVER_CHANNEL';
export const ENV_PARENT = 'DROVER_PARENT_PID';
export const ENV_PDEATHSIG = 'DROVER_PDEATHSIG';

/**
 * Copied from the parent's env into a child's even when a spawn replaces the
 * environment: the test suite finds stray processes by DROVER_TEST_RUN, and
 * c8 follows spawned processes through NODE_V8_COVERAGE.
 */
export const TEST_RUN_VAR = 'DROVER_TEST_RUN';
export const KEPT_VARS: readonly string[] = [TEST_RUN_VAR, 'NODE_V8_COVERAGE'];

/**
 * A registry as a child sees it before importing anything: names are enough
 * to validate a spawn, so a child imports only the module its own program is
 * in (each import under tsx costs a compile on a small machine).
 */
export interface RegistryRef {
  readonly url: string;
  readonly names: readonly string[];
  /** ProgramRegistry.entry */
  readonly entry?: string;
}

/**
 * Where a one-file entry (ProgramRegistry.entry) leaves the registries it
 * holds, before it runs entry.ts: a registry found here is not imported again.
 */
export const PRELOADED = Symbol.for('drover.preloadedRegistries');

/** A listening socket handed down at fd 3 + its index. */
export interface ListenerRef {
  readonly address: Addr;
  readonly backlog: number;
}

export interface Plumbing {
  readonly registries: readonly RegistryRef[];
  readonly listeners: readonly ListenerRef[];
  readonly channel: boolean;
  readonly parentPid: number | null;
  /** A parent-death signal the spawner asked for: armed in-process too (the kernel's, through setpriv, may be missing). */
  readonly parentDeathSignal?: Signal | null;
}

export function encodePlumbing(p: Plumbing): Record<string, string> {
  const env: Record<string, string> = {
    [ENV_REGISTRIES]: JSON.stringify(p.registries),
    [ENV_LISTENERS]: JSON.stringify(p.listeners),
  };
  if (p.channel) env[ENV_CHANNEL] = '1';
  if (p.parentPid !== null) env[ENV_PARENT] = String(p.parentPid);
  if (p.parentDeathSignal) env[ENV_PDEATHSIG] = p.parentDeathSignal;
  return env;
}

/** Reads drover's variables from `env` and deletes them from it. */
export function takePlumbing(env: Record<string, string | undefined>): Plumbing {
  const registries = parseJson(env, ENV_REGISTRIES, []) as RegistryRef[];
  const listeners = parseJson(env, ENV_LISTENERS, []) as ListenerRef[];
  const channel = env[ENV_CHANNEL] === '1';
  const parent = Number(env[ENV_PARENT]);
  const pdeathsig = env[ENV_PDEATHSIG] as Signal | undefined;
  for (const k of [ENV_REGISTRIES, ENV_LISTENERS, ENV_CHANNEL, ENV_PARENT, ENV_PDEATHSIG]) delete env[k];
  if (!Array.isArray(registries) || !Array.isArray(listeners)) {
    throw new Error(`drover: malformed ${ENV_REGISTRIES} or ${ENV_LISTENERS}`);
  }
  return { registries, listeners, channel, parentPid: Number.isInteger(parent) && parent > 0 ? parent : null, parentDeathSignal: pdeathsig ?? null };
}

function parseJson(env: Record<string, string | undefined>, key: string, dflt: unknown): unknown {
  const raw = env[key];
  if (raw === undefined) return dflt;
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error(`drover: ${key} is not JSON: ${raw.slice(0, 80)}`);
  }
}
