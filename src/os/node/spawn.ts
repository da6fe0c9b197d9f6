// Starting processes: a drover program (a fresh `node` on entry.ts) or an
// argv command. Node has no fork(), so a program is named, not inherited: the
// child imports the registry module that holds it and calls it.

import { spawn as cpSpawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, existsSync, openSync, statSync } from 'node:fs';
import { delimiter, extname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OsError, type Signal, type SpawnCommand, type SpawnCommon, type SpawnProgram, type StdioTarget } from '../types.js';
import { EARLY_IMPORT } from './early.js';
import { answerCopies } from './handoff.js';
import { NodeListener } from './listener.js';
import { encodePlumbing, KEPT_VARS, type RegistryRef } from './plumbing.js';
import { NOTIFY_VARS } from './systemd.js';

const HERE = fileURLToPath(import.meta.url);
/** entry.ts next to this file when running from source, entry.js when built. */
const ENTRY = join(HERE, '..', `entry${extname(HERE)}`);
const TS = /\.[cm]?ts$/;

export interface SpawnContext {
  readonly registries: readonly RegistryRef[];
  /** The spawning process's environment: the default env, and where KEPT_VARS come from. */
  readonly env: Readonly<Record<string, string>>;
}

export function spawnProgram(ctx: SpawnContext, spec: SpawnProgram): ChildProcess {
  const found = ctx.registries.find((r) => r.names.includes(spec.program));
  if (!found) {
    const known = ctx.registries.flatMap((r) => r.names);
    throw new OsError('ENOENT', `unknown program "${spec.program}"; known programs: ${known.join(', ') || '(none)'}`);
  }
  const channel = spec.channel !== false;
  const listeners = listenerRefs(spec);
  const env = childEnv(ctx.env, spec.env, encodePlumbing({
    registries: ctx.registries,
    listeners: listeners.map((l) => ({ address: l.address, backlog: l.backlog })),
    channel,
    parentPid: process.pid,
    parentDeathSignal: spec.parentDeathSignal ?? null,
  }));
  const entry = oneFile(found.entry) ?? ENTRY;
  const argv = [...nodeArgs(ctx.registries, entry), entry, spec.program, ...(spec.args ?? [])];
  const [file, args] = withParentDeath(ctx, spec.parentDeathSignal, process.execPath, argv);
  const cp = start(file, args, spec, env, listeners, channel, `program "${spec.program}"`);
  // A child that paused a listener asks here for a fresh descriptor to
  // resume with, and one that makes a socket has it echoed (handoff.ts).
  if (channel) answerCopies(cp, listeners);
  return cp;
}

/**
 * `file args` under setpriv --pdeathsig when a parent-death signal is asked
 * for and setpriv is there (util-linux: it sets PR_SET_PDEATHSIG and execs,
 * so the pid is the command's own, and descriptors - listeners, the IPC
 * channel - pass through). If we die before setpriv's prctl, no signal
 * would ever come: the shell checks that we are still its parent first
 * (after the prctl), then execs the command in its place.
 */
function withParentDeath(ctx: SpawnContext, sig: Signal | undefined, file: string, args: readonly string[]): [string, readonly string[]] {
  const setpriv = sig ? findExecutable('setpriv', ctx.env.PATH) : null;
  if (!sig || !setpriv) return [file, args];
  return [setpriv, ['--pdeathsig', sig.slice(3), '--', '/bin/sh', '-c', `[ "$PPID" = ${process.pid} ] || exit 1; exec "$0" "$@"`, file, ...args]];
}

export function spawnCommand(ctx: SpawnContext, spec: SpawnCommand): ChildProcess {
  const [cmd, ...rest] = spec.command;
  if (cmd === undefined || cmd === '') throw new OsError('EINVAL', 'spawn: empty command');
  const env = childEnv(ctx.env, spec.env, {});
  // Checked here, not left to spawn's asynchronous 'error': a command wrapped
  // in setpriv would otherwise "start" fine and then exit 127.
  if (!findExecutable(cmd, env.PATH, spec.cwd)) {
    throw new OsError('ENOENT', `command not found: ${cmd}${cmd.includes('/') ? '' : ` (PATH=${env.PATH ?? ''})`}`);
  }
  const [file, args] = withParentDeath(ctx, spec.parentDeathSignal, cmd, rest);
  return start(file, args, spec, env, listenerRefs(spec), false, `command ${cmd}`);
}

function start(
  file: string,
  args: readonly string[],
  spec: SpawnCommon,
  env: Record<string, string>,
  listeners: readonly NodeListener[],
  channel: boolean,
  what: string,
): ChildProcess {
  const opened: number[] = [];
  try {
    const out = target(spec.stdout ?? 'inherit', opened);
    let err = spec.stderr === 'stdout' ? out : target(spec.stderr ?? 'inherit', opened);
    if (spec.stderr === 'stdout' && out === 'pipe') {
      // Node makes a new pipe per 'pipe' slot and cannot hand one pipe to two
      // fds. A shell dups fd 1 onto 2 and execs: same pid, one pipe, writes
      // kept in order.
      [file, args] = ['/bin/sh', ['-c', 'exec "$@" 2>&1', 'sh', file, ...args]];
      err = 'inherit';
    }
    const stdio: StdioOptions = ['ignore', out, err, ...listeners.map((l) => l.fd), ...(channel ? ['ipc' as const] : [])];
    const cp = cpSpawn(file, args, {
      stdio,
      env,
      cwd: spec.cwd,
      // detached = setsid(): its own session and process group, pgid = pid.
      // Never unref'd: a running child keeps its parent alive.
      detached: spec.newGroup === true,
      serialization: 'json',
    });
    if (cp.pid === undefined) {
      // spawn reports ENOENT/EACCES on the next tick; it is thrown here instead.
      cp.once('error', () => {});
      const cwd = spec.cwd;
      if (cwd !== undefined && !existsSync(cwd)) throw new OsError('ENOENT', `cannot start ${what}: cwd ${cwd} does not exist`);
      throw new OsError('ENOENT', `cannot start ${what}`);
    }
    return cp;
  } finally {
    // The child has its own copies now.
    for (const fd of opened) closeSync(fd);
  }
}

function target(t: StdioTarget, opened: number[]): 'inherit' | 'ignore' | 'pipe' | number {
  if (t === 'inherit' || t === 'ignore' || t === 'pipe') return t;
  const fd = openSync(t.file, 'a');
  opened.push(fd);
  return fd;
}

function listenerRefs(spec: SpawnCommon): NodeListener[] {
  return (spec.listeners ?? []).map((l) => {
    if (!(l instanceof NodeListener)) throw new OsError('EINVAL', 'spawn: a listener that did not come from this Os');
    return l;
  });
}

/**
 * A given env replaces the parent's, except for drover's plumbing and the
 * variables in KEPT_VARS. sd_notify's variables (NOTIFY_VARS) never pass
 * down: dropped from the inherited env, and from a given one where they are
 * ours copied through (a companion's env is built over its manager's).
 */
export function childEnv(
  parentEnv: Readonly<Record<string, string>>,
  given: Readonly<Record<string, string>> | undefined,
  plumbing: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = { ...(given ?? parentEnv) };
  for (const k of NOTIFY_VARS) if (env[k] !== undefined && (!given || env[k] === parentEnv[k])) delete env[k];
  if (given) {
    for (const k of KEPT_VARS) {
      const v = parentEnv[k];
      if (v !== undefined && env[k] === undefined) env[k] = v;
    }
  }
  return Object.assign(env, plumbing);
}

/**
 * Node flags for a program's process. The early module always comes first.
 * TypeScript sources need tsx's loader, named by absolute URL because the
 * child's cwd may be anywhere.
 */
function nodeArgs(registries: readonly RegistryRef[], entry: string): string[] {
  const args = ['--import', EARLY_IMPORT];
  if (TS.test(entry) || registries.some((r) => TS.test(new URL(r.url).pathname))) args.push('--import', tsxLoader());
  return args;
}

const oneFiles = new Map<string, string | null>();
/** The path of a registry's one-file entry (ProgramRegistry.entry) when it was built, else null (sources run through tsx have none). */
function oneFile(url: string | undefined): string | null {
  if (url === undefined) return null;
  let path = oneFiles.get(url);
  if (path === undefined) {
    // Only a file: URL names a file (fileURLToPath throws on any other).
    path = url.startsWith('file:') ? fileURLToPath(url) : null;
    if (path !== null && !existsSync(path)) path = null;
    oneFiles.set(url, path);
  }
  return path;
}

let tsxUrl: string | undefined;
function tsxLoader(): string {
  if (tsxUrl === undefined) {
    try {
      tsxUrl = import.meta.resolve('tsx');
    } catch (e) {
      throw new OsError('ENOENT', `drover programs are TypeScript sources but tsx cannot be resolved (${String(e)}); install tsx or run the built JavaScript`);
    }
  }
  return tsxUrl;
}

/** The path execvp would run, or null. */
export function findExecutable(cmd: string, path: string | undefined, cwd?: string): string | null {
  if (cmd.includes('/')) {
    const p = isAbsolute(cmd) ? cmd : resolve(cwd ?? process.cwd(), cmd);
    return executable(p) ? p : null;
  }
  for (const dir of (path ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const p = resolve(cwd ?? process.cwd(), dir || '.', cmd);
    if (executable(p)) return p;
  }
  return null;
}

function executable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

