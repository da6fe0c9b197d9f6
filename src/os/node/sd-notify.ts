// sd_notify(3) for the arbiter: READY=1, RELOADING=1, STOPPING=1, STATUS=,
// WATCHDOG=1 as datagrams to $NOTIFY_SOCKET (a path, or @name in the
// abstract namespace).
//
// Node cannot send an AF_UNIX datagram (dgram is UDP only, net is streams)
// and drover adds no native module, so each message is sent by systemd's own
// systemd-notify, which is installed wherever systemd sets NOTIFY_SOCKET. A
// long-lived relay would need a language with datagram sockets (perl is on
// every Debian, but not on RHEL minimal, Alpine or distroless), and it would
// be the sender systemd sees in every case.
//
// systemd-notify's known race: systemd attributes a message to a unit by
// its sender's pid, and a sender that has already exited cannot be looked
// up ("Cannot find unit for notify message of PID"), so the message is lost.
// Since systemd 246 systemd-notify waits (a BARRIER=1 round trip) until
// systemd has processed the message before it exits, which closes the race.
// It also claims its parent, the arbiter, as the sender:
// when drover runs as root the kernel lets it, and systemd sees the main
// pid; as another user the sender is systemd-notify itself, which systemd
// accepts with NotifyAccess=all (the unit in deploy/ sets it).
//
// Messages are sent one at a time, in order: the next waits for the previous
// systemd-notify to exit, so READY=1 can never overtake the RELOADING=1 it
// answers. A queued WATCHDOG=1 absorbs the next, and a queued status-only
// message is replaced by a newer one, so a stuck systemd-notify does not make
// the queue grow with the arbiter's loop.
//
// Nothing here throws into the arbiter or waits on a child: spawn returns at
// once and exits are callbacks. A systemd-notify that cannot be started, or
// that fails, is said once on stderr (the journal under systemd).

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Notifier, NotifyFields } from '../../runtime/notify.js';
import { TEST_RUN_VAR } from './plumbing.js';

export interface SdNotifierOptions {
  /** Our pid, compared with WATCHDOG_PID. Default process.pid. */
  readonly pid?: number;
  /** The sender program. Default systemd-notify on PATH, else /usr/bin or /bin. */
  readonly command?: string;
  /** Where the one-time complaint goes. Default stderr. */
  readonly warn?: (line: string) => void;
}

/** A message that has waited this long for its systemd-notify is given up (systemd-notify's own barrier gives up at 5 s). */
const SEND_DEADLINE_MS = 10_000;
/** Past this many queued messages the oldest is dropped: only a hung sender and a storm of reloads get here. */
const QUEUE_MAX = 64;

/** Null when NOTIFY_SOCKET is unset: drover was not started by a service manager that listens. */
export function sdNotifier(env: Readonly<Record<string, string | undefined>>, opts: SdNotifierOptions = {}): Notifier | null {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return null;
  return new SdNotifier(socket, watchdogMs(env, opts.pid ?? process.pid), env, opts);
}

/**
 * Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, when the
 * watchdog is ours: WATCHDOG_PID unset, or our pid.
 */
export function watchdogMs(env: Readonly<Record<string, string | undefined>>, pid: number): number | null {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d+$/.test(usec) || Number(usec) <= 0) return null;
  const owner = env.WATCHDOG_PID;
  if (owner !== undefined && owner !== '' && owner !== String(pid)) return null;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

/** CLOCK_MONOTONIC in µs, which RELOADING=1 carries (Type=notify-reload checks it). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** `KEY=value` lines; a newline inside a value would start a field of its own. */
export function encode(fields: NotifyFields): string[] {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    lines.push(`${k}=${v.replace(/[\r\n]+/g, ' ')}`);
    if (k === 'RELOADING' && fields.MONOTONIC_USEC === undefined) lines.push(`MONOTONIC_USEC=${monotonicUsec()}`);
  }
  return lines;
}

class SdNotifier implements Notifier {
  readonly watchdogMs: number | null;
  readonly #socket: string;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #command: string | null;
  readonly #warn: (line: string) => void;
  readonly #queue: string[][] = [];
  #flying: ChildProcess | null = null;
  #dead = false; // the sender cannot be started: nothing more is tried
  #warned = false;

  constructor(socket: string, watchdog: number | null, env: Readonly<Record<string, string | undefined>>, opts: SdNotifierOptions) {
    this.#socket = socket;
    this.watchdogMs = watchdog;
    this.#env = env;
    this.#command = opts.command ?? findSender(env.PATH);
    this.#warn = opts.warn ?? ((line) => void process.stderr.write(`${line}\n`));
  }

  send(fields: NotifyFields): void {
    try {
      if (this.#dead) return;
      if (this.#command === null) {
        this.#dead = true;
        return this.#complain('systemd-notify was not found on PATH, /usr/bin or /bin', 'install systemd (its systemd-notify sends them), or use Type=simple and no WatchdogSec=');
      }
      const lines = encode(fields);
      if (lines.length === 0) return;
      this.#enqueue(lines);
      this.#pump();
    } catch (e) {
      this.#complain(`sending failed: ${(e as Error)?.message ?? String(e)}`, 'see the error above');
    }
  }

  #enqueue(lines: string[]): void {
    const only = (m: string[], key: string) => m.length === 1 && m[0]!.startsWith(`${key}=`);
    if (only(lines, 'WATCHDOG') && this.#queue.some((m) => only(m, 'WATCHDOG'))) return;
    if (only(lines, 'STATUS')) {
      const older = this.#queue.findIndex((m) => only(m, 'STATUS'));
      if (older >= 0) this.#queue.splice(older, 1);
    }
    if (this.#queue.length >= QUEUE_MAX) this.#queue.shift();
    this.#queue.push(lines);
  }

  #pump(): void {
    if (this.#flying !== null || this.#dead) return;
    const lines = this.#queue.shift();
    if (lines === undefined) return;
    const env: Record<string, string> = { NOTIFY_SOCKET: this.#socket };
    // The suite's marker, so a sender left running is found as a stray.
    for (const k of ['PATH', TEST_RUN_VAR]) if (this.#env[k] !== undefined) env[k] = this.#env[k]!;
    // No `--`: systemd-notify 252 reads every argument after its options as
    // a field, and a field always starts with its upper-case name.
    const cp = spawn(this.#command!, lines, { stdio: ['ignore', 'ignore', 'pipe'], env });
    this.#flying = cp;
    let said = '';
    cp.stderr?.setEncoding('utf8').on('data', (d: string) => void (said.length < 2000 && (said += d)));
    // A notification is not a reason for the arbiter to stay alive.
    cp.unref();
    (cp.stderr as { unref?: () => void } | null)?.unref?.();
    const deadline = setTimeout(() => cp.kill('SIGKILL'), SEND_DEADLINE_MS);
    deadline.unref();
    let done = false;
    const finish = (problem: string | null, fix: string) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      this.#flying = null;
      if (problem !== null) this.#complain(problem, fix);
      this.#pump();
    };
    cp.once('error', (e: NodeJS.ErrnoException) => {
      // Cannot be started (ENOENT, EACCES): it will not start next time either.
      this.#dead = true;
      this.#queue.length = 0;
      finish(`${this.#command} cannot be started (${e.code ?? e.message})`, 'install systemd (its systemd-notify sends them), or use Type=simple and no WatchdogSec=');
    });
    cp.once('close', (code, signal) => {
      const why = said.trim().split('\n').pop() ?? '';
      if (code === 0) finish(null, '');
      else finish(`${this.#command} ${code !== null ? `exited with ${code}` : `was killed (${signal})`}${why ? `: ${why}` : ''}`, 'check that NOTIFY_SOCKET names the socket of a service manager that listens (systemd sets it for Type=notify units)');
    });
  }

  #complain(problem: string, fix: string): void {
    if (this.#warned) return;
    this.#warned = true;
    try {
      this.#warn(`drover: NOTIFY_SOCKET=${this.#socket} is set, but notifications may not reach it: ${problem}; ${fix}. Said once; later failures are not reported.`);
    } catch {
      // nowhere left to say it
    }
  }
}

/** systemd-notify on PATH, else where Debian, Fedora and Arch put it. */
function findSender(path: string | undefined): string | null {
  const dirs = [...(path ?? '').split(delimiter).filter((d) => d !== ''), '/usr/bin', '/bin'];
  for (const dir of dirs) {
    const file = join(dir, 'systemd-notify');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}
