// start(): drover run from a program instead of a shell. The server is the
// drover command itself (this package's bin), started as a child process
// with an IPC channel: the arbiter stays a process of its own, with its own
// signals, and reports over the channel (READY, RELOADING, STOPPING, STATUS;
// src/os/node/parent-notify.ts). Settings given as an object are written to
// drover.config.json in a private temp directory, removed when the server
// exits; a HUP re-reads it like any config file.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV_API, type ApiMessage } from '../os/node/parent-notify.js';
import type { DroverConfig } from './config.js';

/** src/api/start.ts and dist/api/start.js alike: the package's bin is two levels up. */
const BIN = fileURLToPath(new URL('../../bin/drover.js', import.meta.url));

export interface StartOptions {
  /** The settings, as in drover.config.json (`app` included), or the path of a config file to read (.json, .js, .mjs, .cjs). */
  readonly config: DroverConfig | string;
  /** The server's working directory, against which relative paths in the config (app, logs) are read. Default: process.cwd(). */
  readonly cwd?: string;
  /** The server's environment (DROVER_* variables in it are settings, as for the command). Default: process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The server's stdout and stderr: 'inherit' (default: its log goes where this process's does), 'pipe' (read `process.stdout`/`stderr`), or 'ignore'. */
  readonly stdio?: 'inherit' | 'pipe' | 'ignore';
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface DroverServer {
  /** The arbiter's pid. */
  readonly pid: number;
  /** Resolves when the first generation of workers serves; rejects if drover exits first (a bad config: code 2, an app that cannot load: 4). */
  readonly ready: Promise<void>;
  /** Where it listens, as of the last READY: 'http://127.0.0.1:8000', 'unix:/run/app.sock'. Empty until ready. */
  readonly addresses: readonly string[];
  /** The admin listener (admin_bind), as of the last READY. */
  readonly admin: string | null;
  /** The serving generation: 1 when ready, one more after each reload. */
  readonly generation: number;
  /** drover's last STATUS: 'generation 1 serving, 2 workers'. */
  readonly status: string;
  /** Settles when the arbiter has exited; 0 after a graceful stop. */
  readonly exited: Promise<Exit>;
  /** The child process (its stdout and stderr with stdio 'pipe'). */
  readonly process: ChildProcess;
  /**
   * HUP: new workers on the config as it is now (or `config`, when the
   * server was started with an object), the old ones drained. Resolves when
   * the new generation serves; rejects when drover refuses the reload (the
   * old generation serves on; its log says why). Calls run one at a time.
   */
  reload(config?: DroverConfig): Promise<void>;
  /** TERM: a graceful stop. Resolves when the arbiter has exited. */
  stop(): Promise<void>;
}

/** The most of a piped stderr kept for the message of a `ready` that failed. */
const TAIL = 4096;

// Config dirs of servers still running. A program that exits first takes
// them along (its servers stop on their own: the channel closes); one killed
// outright leaves a 0700 directory with one small file in the temp dir.
const dirs = new Set<string>();
let sweeping = false;
function remember(dir: string): void {
  dirs.add(dir);
  if (sweeping) return;
  sweeping = true;
  process.once('exit', () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}
function forget(dir: string): void {
  dirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

export function start(options: StartOptions): DroverServer {
  const inline = typeof options.config !== 'string';
  const dir = inline ? mkdtempSync(join(tmpdir(), 'drover-api-')) : null;
  const file = dir === null ? (options.config as string) : join(dir, 'drover.config.json');
  const write = (config: DroverConfig): void => writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  if (dir !== null) {
    remember(dir);
    write(options.config as DroverConfig);
  }

  const out = options.stdio ?? 'inherit';
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [BIN, '--config', file], {
      cwd: options.cwd,
      env: { ...(options.env ?? process.env), [ENV_API]: '1' },
      stdio: ['ignore', out, out, 'ipc'],
      serialization: 'json',
    });
    if (child.pid === undefined) {
      // Node says why on the next tick; what can be missing is known now.
      child.once('error', () => {});
      const cwd = options.cwd;
      throw new Error(`cannot start drover: ${cwd !== undefined && !existsSync(cwd) ? `its cwd ${cwd} does not exist` : `${process.execPath} could not be run`}`);
    }
  } catch (e) {
    if (dir !== null) forget(dir);
    throw e;
  }
  const pid = child.pid;
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => void (tail = (tail + d.toString('utf8')).slice(-TAIL)));

  let isReady = false;
  let addresses: readonly string[] = [];
  let admin: string | null = null;
  let generation = 0;
  let status = '';
  let exit: Exit | null = null;
  let reloading: { resolve(): void; reject(e: Error): void } | null = null;
  let settleReady!: (e?: Error) => void;
  const ready = new Promise<void>((resolve, reject) => (settleReady = (e) => (e ? reject(e) : resolve())));
  // Whoever never looks at `ready` still has `exited`: a failed start is not an unhandled rejection.
  ready.catch(() => {});

  child.on('message', (m: ApiMessage) => {
    if (m?.t !== 'drover' || typeof m.fields !== 'object' || m.fields === null) return;
    if (m.fields.STATUS !== undefined) status = m.fields.STATUS;
    if (m.fields.READY !== '1') return;
    if (m.detail !== undefined) ({ addresses, admin, generation } = m.detail);
    if (!isReady) {
      isReady = m.detail !== undefined;
      if (isReady) settleReady();
      return;
    }
    const r = reloading;
    reloading = null;
    // READY with the serving generation: the reload finished; without it: refused, the old one serves on.
    if (m.detail !== undefined) r?.resolve();
    else r?.reject(new Error(`drover: ${m.fields.STATUS ?? 'reload failed'}`));
  });

  let ended!: (e: Exit) => void;
  const exited = new Promise<Exit>((resolve) => (ended = resolve));
  const finish = (e: Exit, why: string): void => {
    if (exit !== null) return;
    exit = e;
    if (dir !== null) forget(dir);
    if (!isReady) settleReady(new Error(`drover ${why} before it was ready${tail.trim() === '' ? '' : `:\n${tail.trimEnd()}`}`));
    reloading?.reject(new Error(`drover ${why} during a reload`));
    reloading = null;
    ended(e);
  };
  child.once('exit', (code, signal) => {
    const done = (): void => finish({ code, signal }, `exited ${code !== null ? `with code ${code}` : `by ${signal}`}`);
    // A piped log may still hold the last lines, the reason among them: a moment to read them.
    const err = child.stderr;
    if (err === null || err.readableEnded) return done();
    const late = setTimeout(done, 200);
    err.once('end', () => (clearTimeout(late), done()));
  });
  // Only a failed kill() is reported here (a failed spawn was thrown above); the exit still comes.
  child.on('error', () => {});

  let queue: Promise<void> = Promise.resolve();
  const reloadOnce = async (config?: DroverConfig): Promise<void> => {
    await ready;
    if (exit !== null) throw new Error('drover is not running');
    if (config !== undefined) {
      if (!inline) throw new Error(`this server reads ${file}: edit that file and reload() without a config`);
      write(config);
    }
    const done = new Promise<void>((resolve, reject) => (reloading = { resolve, reject }));
    child.kill('SIGHUP');
    await done;
  };

  return {
    pid,
    ready,
    get addresses() { return addresses; },
    get admin() { return admin; },
    get generation() { return generation; },
    get status() { return status; },
    exited,
    process: child,
    reload(config?: DroverConfig): Promise<void> {
      const next = queue.then(() => reloadOnce(config));
      queue = next.catch(() => {});
      return next;
    },
    async stop(): Promise<void> {
      if (exit === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
