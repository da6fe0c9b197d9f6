// A user's deployment as `drover sim --config FILE` (or `--app FILE`) runs
// it on the simulated kernel: their app, settings and module companions,
// read on the host once, checked as `drover` would check them, and written
// back as the JSON config the simulated arbiter reads.
//
// The simulated drover sees the directory drover sim was started in (the
// project, where node_modules is) mounted at /srv/app, so every path the
// config names — the app, module companions, companions_file — must lie
// inside it; the app's own imports (express, ...) resolve on the host as
// usual. What cannot be simulated is replaced, and said in the report:
// - bind, control_socket, error_log, pid, admin_bind, access_log: the
//   simulator's own (the load goes to 127.0.0.1:8000; the log is read back);
// - a companion given as a `command` (an executable the simulator cannot
//   run) becomes a stand-in that runs until stopped, so the manager's
//   supervision of it is still exercised; module companions run for real;
// - companion output files go to /var/log/companion-NAME.{out,err}.
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { createNodeOs } from '../os/node/index.js';
import type { Os } from '../os/types.js';
import { ConfigError, loadConfig } from '../runtime/config/index.js';
import { loadConfigFile } from '../runtime/config/load.js';
import type { Config } from '../runtime/config/types.js';
import type { Policy } from './invariants.js';
import { DEFAULT_MIX, parseMix, type Mix } from './mix.js';

/** Where the project is mounted in the simulator. */
export const MOUNT = '/srv/app';
export const SIM_CONFIG = '/srv/drover.json';
export const SIM_SOCK = '/run/drover/ctl.sock';
export const SIM_LOG = '/var/log/drover.log';
export const SIM_ADDR = { host: '127.0.0.1', port: 8000 } as const;
/**
 * The CPUs of the simulated machine: the worker counts that default from the
 * CPU count (workers, min_workers, max_workers, workers_limit = 4 x CPUs) are
 * those of a 2-CPU machine on every host, so a seed replays the same
 * topology anywhere (the host's count made a replay under `taskset -c 0` run
 * another one). Two: a small production machine, more than one worker (a
 * KILLed worker leaves another serving), and cheap runs.
 */
export const SIM_CPUS = 2;
/** The program a `command` companion becomes. */
export const STAND_IN = 'sim-stand-in';

/** What the user named: exactly one of config and app, read against cwd. */
export interface Target {
  readonly config?: string;
  readonly app?: string;
  readonly cwd: string;
}

export interface Deployment {
  readonly target: Target;
  /** The host directory mounted at MOUNT. */
  readonly root: string;
  /** The config the simulated arbiter reads (SIM_CONFIG), in the file's units. */
  readonly config: Record<string, unknown>;
  /** The resolved config, as drover on the host would run it. */
  readonly resolved: Config;
  readonly mix: Mix;
  /** Companions by name: restart policy (for the one-shot invariant) and stop_timeout (ms). */
  readonly companions: ReadonlyMap<string, Policy & { readonly stopTimeoutMs: number; readonly standIn: boolean; readonly copies: number }>;
  /** Said once in the report: what the simulation changed. */
  readonly notes: readonly string[];
}

/** The settings the simulator sets itself; the user's values are not used. */
const OWN = ['bind', 'control_socket', 'error_log', 'pid', 'admin_bind', 'access_log', 'companions_file', 'config'] as const;

export async function loadDeployment(target: Target): Promise<Deployment> {
  const root = target.cwd;
  // As seen from `root` and without the host's environment: the simulated arbiter has none, and a
  // WEB_CONCURRENCY here must not make a run differ elsewhere.
  const os = view(createNodeOs({ programs: [], args: [] }), root);
  const argv = target.config !== undefined ? ['--config', target.config] : [target.app!];
  // As `drover --check-config` would read it (every problem at once), on the simulated machine's CPUs.
  const resolved = await loadConfig(os, argv, SIM_CPUS);
  let data: Record<string, unknown> = {};
  if (target.config !== undefined) {
    const file = await loadConfigFile(os, resolve(root, target.config));
    data = { ...(file.data as Record<string, unknown>) };
  }
  const problems: string[] = [];
  let mix = DEFAULT_MIX;
  if (data.sim !== undefined) {
    try {
      mix = parseMix(data.sim, target.config!);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  }
  const notes: string[] = [];
  const inside = (what: string, p: string): string => {
    const abs = isAbsolute(p) ? p : resolve(root, p);
    // drover looks for it only when a worker boots; a simulation of an app that is not there would show nothing else.
    if (!os.fs.exists(abs)) problems.push(`${what} ${p} does not exist (looked for ${abs})`);
    const rel = relative(root, abs);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      problems.push(`${what} ${p} is outside ${root}, the directory drover sim mounts for the simulated drover; run drover sim from a directory that holds it (the project's root)`);
      return p;
    }
    return rel === '' ? MOUNT : `${MOUNT}/${rel.split(sep).join('/')}`;
  };

  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) if (k !== 'sim' && !(OWN as readonly string[]).includes(k) && !k.startsWith('companion_')) config[k] = v;
  config.app = inside('app', resolved.app);
  config.bind = [`${SIM_ADDR.host}:${SIM_ADDR.port}`];
  config.control_socket = SIM_SOCK;
  config.error_log = SIM_LOG;
  // The worker counts as drover would choose them on the simulated machine (SIM_CPUS), written out.
  config.workers = resolved.workers;
  config.min_workers = resolved.min_workers;
  config.max_workers = resolved.max_workers;
  config.workers_limit = resolved.workers_limit;
  if (resolved.admin_bind !== null) notes.push('admin_bind is not served in the simulation');
  if (resolved.pid !== null) notes.push('the pidfile is not written in the simulation');

  const companions = new Map<string, Policy & { stopTimeoutMs: number; standIn: boolean; copies: number }>();
  config.companions = resolved.companions.map((c) => {
    const standIn = c.command !== null;
    if (standIn) notes.push(`companion ${c.name} runs a command (${c.command!.join(' ')}), which the simulator cannot run: a stand-in that runs until stopped takes its place`);
    const [path, exp] = splitModule(c.module);
    const out = (stream: 'stdout' | 'stderr', v: string) =>
      v === 'inherit' || v === 'stdout' || v === 'null' ? v : `/var/log/companion-${c.name}.${stream === 'stdout' ? 'out' : 'err'}`;
    companions.set(c.name, { autorestart: c.autorestart, exitcodes: c.exitcodes, stopTimeoutMs: c.stop_timeout, standIn, copies: c.numprocs });
    return {
      name: c.name,
      ...(standIn ? { command: [STAND_IN, c.name] } : { module: `${inside(`companion ${c.name}'s module`, path!)}#${exp}` }),
      env: c.env,
      stdout: out('stdout', c.stdout),
      stderr: out('stderr', c.stderr),
      stop_signal: c.stop_signal,
      stop_timeout: c.stop_timeout / 1000,
      reload_timeout: c.reload_timeout / 1000,
      startsecs: c.startsecs / 1000,
      restart_delay: c.restart_delay / 1000,
      startretries: c.startretries,
      backoff: c.backoff,
      backoff_max: c.backoff_max / 1000,
      autostart: c.autostart,
      autorestart: c.autorestart,
      exitcodes: c.exitcodes,
      numprocs: c.numprocs,
    };
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return { target, root, config, resolved, mix, companions, notes };
}

function view(os: Os, root: string): Os {
  return new Proxy(os, {
    get(t, k) {
      if (k === 'env') return {};
      if (k === 'cwd') return () => root;
      const v = Reflect.get(t, k, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** 'path#export' → [path, export]; a path may hold '#' itself, the export is after the last one. */
function splitModule(m: string | null): [string | null, string] {
  if (m === null) return [null, 'default'];
  const at = m.lastIndexOf('#');
  return at < 0 ? [m, 'default'] : [m.slice(0, at), m.slice(at + 1)];
}

/** How the user asked, for the replay command. */
export function targetArgs(t: Target): string {
  return t.config !== undefined ? `--config ${t.config}` : `--app ${t.app}`;
}
