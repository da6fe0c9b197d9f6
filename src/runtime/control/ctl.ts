// `drover ctl`: one command line in, one request over the control socket,
// text (or the raw JSON) out, and an exit status a script can branch on.
// Two commands keep asking until interrupted: `tail -f` and `top`.
// Written against the Os so that it runs in the simulator as well; the
// terminal top draws on is handed in.

import type { Os, Signal } from '../../os/types.js';
import { expectCodes } from '../assert.js';
import { ConfigError } from '../config/index.js';
import { closest } from '../config/names.js';
import type { LanesReport } from '../lanes/report.js';
import { ControlError, request } from './client.js';
import { findRunning, locateSocket, SocketUnknown, type SocketChoice } from './locate.js';
import {
  COMMANDS, COMPANION_SIGNALS, DEFAULT_TAIL_LINES, escapeControl, escapeReply, MAX_SCALE_WORKERS, MAX_TAIL_LINES, NO_COMPANIONS, replyJson, signalName, validateRequest,
  type Command, type CompanionState, type CompanionStatus, type OkReply, type Reply, type Request,
} from './protocol.js';
import { formatDuration, formatTop, NO_TERMINAL, type Terminal, type TopCompanions, type TopHead } from './top.js';

export { formatDuration };

export const EXIT_OK = 0;
/** drover said no (ok:false), or a companion did not end up where the command wanted it. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

export const DEFAULT_TIMEOUT_MS = 60_000;
/** A reload may take the config's `timeout` to boot its workers (the arbiter aborts it then); this on top, for loading the config and binding. */
export const RELOAD_SLACK_MS = 30_000;
/** The arbiter's default `timeout`, for when ctl read no config that says it. */
const CONFIG_TIMEOUT_MS = 30_000;
/** How long each of top's and tail -f's polls waits, unless --timeout says: the arbiter answers them at once, or says the manager did not within 5 s. */
export const POLL_TIMEOUT_MS = 10_000;
export const TOP_EVERY_MS = 1000;
export const FOLLOW_EVERY_MS = 250;

/** What ctl runs: a request of the protocol, or `top`, which is ctl's own (it polls stats and status). */
export type CtlRequest = Request | { readonly cmd: 'top' };
type CtlCommand = CtlRequest['cmd'];

const SIGNAL_LIST = COMPANION_SIGNALS.map((s) => s.slice(3)).join(', ');

/** Each command's synopsis and meaning, for --help and for messages about its arguments. */
const SYNOPSIS: Readonly<Record<CtlCommand, readonly [string, string]>> = {
  status: ['status [NAME|all]', 'state of every companion, or of one (exit 1 if one listed is not RUNNING)'],
  start: ['start NAME|all', 'start; replies once running (exit 1 if it did not stay up)'],
  stop: ['stop NAME|all', 'stop: stop_signal, then KILL after stop_timeout'],
  restart: ['restart NAME|all', 'stop, then start'],
  reread: ['reread', 're-read the config and apply it: added start, removed stop, changed restart'],
  signal: ['signal NAME|all SIGNAL', `send SIGNAL (${SIGNAL_LIST}) to running companions`],
  pid: ['pid [NAME]', "a companion's pid (exit 1 if none runs); without NAME, the companion manager's"],
  tail: ['tail NAME [-n LINES] [-f] [stdout|stderr]', `the last LINES (default ${DEFAULT_TAIL_LINES}) lines of a companion's log; -f: then follow it until Ctrl-C`],
  version: ['version', "the running drover's version"],
  stats: ['stats', 'the request lanes: workers, queues, shed and served counts per generation, the routes learned slow'],
  reload: ['reload', 'reload (as HUP) and wait: exit 0 once the new generation serves, 1 if the reload failed'],
  scale: ['scale N', 'run N fast workers (within min_workers and max_workers)'],
  top: ['top', 'workers, lanes and companions, redrawn every second until q or Ctrl-C (not a terminal: one frame)'],
};

/** Every command ctl takes, for messages: the protocol's, then ctl's own. */
const CTL_COMMANDS: readonly CtlCommand[] = [...(Object.keys(COMMANDS) as Command[]), 'top'];

export const CTL_USAGE = `usage: drover ctl [--config FILE | --socket PATH] [--json] [--timeout SECONDS] COMMAND [ARGS]

Controls a running drover through its control socket (served by the arbiter):
its companions, its workers (reload, scale, top) and its request lanes' statistics;
all but the companion commands work with or without companions.

commands:
${Object.values(SYNOPSIS).map(([syn, what]) => (syn.length > 30 ? `  ${syn}\n  ${''.padEnd(30)}  ${what}` : `  ${syn.padEnd(30)}  ${what}`)).join('\n')}

options:
  -c, --config FILE     read control_socket (and timeout, for reload) from this config
                        (default: $DROVER_CONFIG, else ./drover.config.js, .mjs or .json, as drover finds it)
  -s, --socket PATH     talk to this socket
      --json            print the reply as it came, one JSON object (not for top or tail -f)
      --timeout SECONDS how long to wait for the reply (default ${DEFAULT_TIMEOUT_MS / 1000}; start and stop wait for companions;
                        reload: the config's timeout + ${RELOAD_SLACK_MS / 1000}, at least ${DEFAULT_TIMEOUT_MS / 1000}; top and tail -f: ${POLL_TIMEOUT_MS / 1000} per poll)
  -n, --lines LINES     tail: how many lines (1 to ${MAX_TAIL_LINES})
  -f, --follow          tail: keep printing lines as they come, until Ctrl-C
  -h, --help            print this help

top and tail -f stop at Ctrl-C (or SIGTERM), and exit 1 if drover goes away.

exit status: 0 done; 1 refused, or a companion is not in the state asked for
             (status: not RUNNING, STOPPED by hand included);
             2 usage or config error; 3 drover cannot be reached
`;

export interface CtlArgs {
  readonly socket: string | null;
  readonly config: string | null;
  readonly json: boolean;
  /** null: not given; each command has its own default (see waitFor). */
  readonly timeoutMs: number | null;
  readonly help: boolean;
  readonly lines: number | null;
  readonly follow: boolean;
  /** COMMAND and its ARGS. */
  readonly words: readonly string[];
}

type Opt = 'socket' | 'config' | 'json' | 'timeout' | 'help' | 'lines' | 'follow';
const LONG: Record<string, Opt> = {
  '--socket': 'socket', '--config': 'config', '--json': 'json', '--timeout': 'timeout', '--help': 'help', '--lines': 'lines', '--follow': 'follow',
};
const SHORT: Record<string, Opt> = { '-s': 'socket', '-c': 'config', '-h': 'help', '-n': 'lines', '-f': 'follow' };
const TAKES_VALUE = new Set<Opt>(['socket', 'config', 'timeout', 'lines']);

/** A token that can be a value: not an option, except '-' and negative numbers (which then fail as numbers). */
const isValue = (t: string | undefined): t is string => t !== undefined && (!t.startsWith('-') || t === '-' || /^-[\d.]/.test(t));

/** The command line, or every problem with it. */
export function parseCtlArgv(argv: readonly string[]): { ok: true; args: CtlArgs } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const words: string[] = [];
  let socket: string | null = null;
  let config: string | null = null;
  let json = false;
  let help = false;
  let follow = false;
  let timeoutMs: number | null = null;
  let lines: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith('-') || tok === '-') {
      words.push(tok);
      continue;
    }
    const eq = tok.startsWith('--') ? tok.indexOf('=') : -1;
    const flag = eq < 0 ? (tok.startsWith('--') ? tok : tok.slice(0, 2)) : tok.slice(0, eq);
    let inline = eq >= 0 ? tok.slice(eq + 1) : !tok.startsWith('--') && tok.length > 2 ? tok.slice(2) : null;
    const opt = LONG[flag] ?? SHORT[flag];
    if (opt === undefined) {
      const near = closest(flag.replace(/^-+/, ''), Object.keys(LONG).map((f) => f.slice(2)));
      problems.push(`unknown option ${flag}${near === null ? '' : `; did you mean --${near}?`}`);
      continue;
    }
    if (!TAKES_VALUE.has(opt)) {
      if (inline !== null) problems.push(`${flag} takes no value`);
      else if (opt === 'json') json = true;
      else if (opt === 'follow') follow = true;
      else help = true;
      continue;
    }
    if (inline === null) {
      if (!isValue(argv[i + 1])) {
        problems.push(`${flag} needs a value`);
        continue;
      }
      inline = argv[++i]!;
    }
    if (opt === 'socket') socket = inline;
    else if (opt === 'config') config = inline;
    else if (opt === 'timeout') {
      const n = Number(inline);
      if (inline.trim() === '' || !Number.isFinite(n) || n <= 0) problems.push(`--timeout must be a number of seconds over 0, got ${JSON.stringify(inline)}`);
      else timeoutMs = Math.min(Math.max(1, Math.round(n * 1000)), 2 ** 31 - 1); // a timer's range
    } else {
      const n = Number(inline);
      if (!/^\d+$/.test(inline) || n < 1 || n > MAX_TAIL_LINES) problems.push(`${flag} must be a whole number from 1 to ${MAX_TAIL_LINES}, got ${JSON.stringify(inline)}`);
      else lines = n;
    }
  }
  if (socket !== null && config !== null) problems.push('give --socket or --config, not both: --socket names the socket, --config a file that names it');
  if (socket === '') problems.push('--socket needs a path');
  if (config === '') problems.push('--config needs a path');
  return problems.length > 0 ? { ok: false, problems } : { ok: true, args: { socket, config, json, timeoutMs, help, lines, follow, words } };
}

/** The request a command line asks for, or what is wrong with it. `follow` is -f, for tail. */
export function commandRequest(words: readonly string[], lines: number | null, follow = false): { ok: true; req: CtlRequest } | { ok: false; problem: string } {
  const [cmd, ...rest] = words;
  const names = CTL_COMMANDS;
  if (cmd === undefined) return { ok: false, problem: `no command given; commands: ${names.join(', ')}` };
  if (!names.includes(cmd as CtlCommand)) {
    const near = closest(cmd.toLowerCase(), names);
    return { ok: false, problem: `unknown command ${JSON.stringify(cmd)}${near === null ? '' : `; did you mean ${near}?`} commands: ${names.join(', ')}` };
  }
  const c = cmd as CtlCommand;
  const arity = (min: number, max: number): string | null =>
    rest.length < min || rest.length > max ? `${c} takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${rest.length}: drover ctl ${SYNOPSIS[c][0]}` : null;
  if (lines !== null && c !== 'tail') return { ok: false, problem: `-n/--lines is for tail, not ${c}` };
  if (follow && c !== 'tail') return { ok: false, problem: `-f/--follow is for tail, not ${c}${c === 'top' ? ' (top follows by itself)' : ''}` };
  if (c === 'top') {
    const problem = arity(0, 0);
    return problem === null ? { ok: true, req: { cmd: 'top' } } : { ok: false, problem };
  }
  let raw: Record<string, unknown>;
  let problem: string | null = null;
  switch (c) {
    case 'status':
      problem = arity(0, 1);
      raw = rest[0] === undefined ? { cmd: c } : { cmd: c, name: rest[0] };
      break;
    case 'start':
    case 'stop':
    case 'restart':
      problem = arity(1, 1);
      raw = { cmd: c, name: rest[0] };
      break;
    case 'reread':
    case 'version':
    case 'stats':
    case 'reload':
      problem = arity(0, 0);
      raw = { cmd: c };
      break;
    case 'scale': {
      problem = arity(1, 1);
      const n = rest[0] ?? '';
      if (problem === null && (!/^\d+$/.test(n) || Number(n) < 1 || Number(n) > MAX_SCALE_WORKERS)) {
        problem = `scale: N is a whole number of workers from 1 to ${MAX_SCALE_WORKERS}, got ${JSON.stringify(n)}: drover ctl scale 4`;
      }
      raw = { cmd: c, workers: Number(n) };
      break;
    }
    case 'signal':
      problem = arity(2, 2);
      if (problem === null && signalName(rest[1]!) === null) {
        problem = `unknown signal ${JSON.stringify(rest[1])}; use one of ${SIGNAL_LIST}`;
      }
      raw = { cmd: c, name: rest[0], signal: rest[1] };
      break;
    case 'pid':
      problem = arity(0, 1) ?? (rest[0] === 'all' ? 'pid takes one companion name, not all (status shows every pid)' : null);
      raw = rest[0] === undefined ? { cmd: c } : { cmd: c, name: rest[0] };
      break;
    case 'tail':
      problem = arity(1, 2) ?? (rest[0] === 'all' ? 'tail takes one companion name, not all' : null);
      if (problem === null && rest[1] !== undefined && rest[1] !== 'stdout' && rest[1] !== 'stderr') problem = `tail: the stream is stdout or stderr, got ${JSON.stringify(rest[1])}`;
      raw = { cmd: c, name: rest[0], ...(lines === null ? {} : { lines }), ...(rest[1] === undefined ? {} : { stream: rest[1] }) };
      break;
  }
  if (problem !== null) return { ok: false, problem };
  const v = validateRequest(raw);
  return v.ok ? { ok: true, req: v.req } : { ok: false, problem: v.error };
}

// ---------------------------------------------------------------- output

/** NAME STATE PID UPTIME DESCRIPTION, columns padded to their widest cell, no trailing blanks. */
export function formatStatus(companions: readonly CompanionStatus[]): string {
  if (companions.length === 0) return 'no companions are configured\n';
  const rows = [
    ['NAME', 'STATE', 'PID', 'UPTIME', 'DESCRIPTION'],
    ...companions.map((c) => [c.name, c.state, c.pid === null ? '-' : String(c.pid), c.uptime_ms === undefined ? '-' : formatDuration(c.uptime_ms), c.description]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `812 ms`, `1.24 s`, `2 s`: a duration in a stats line. */
function millis(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(2))} s`;
}

/** Label and text rows, the labels padded to the widest, each row indented. */
function rows(pairs: readonly (readonly [string, string])[], indent = '  '): string[] {
  const w = Math.max(...pairs.map(([label]) => label.length));
  return pairs.map(([label, text]) => `${indent}${label.padEnd(w)}  ${text}`.trimEnd());
}

/**
 * `drover ctl stats`: the lanes setting, one small table per generation
 * (the serving one first; then, during a reload, the one starting, and
 * older ones still draining), the routes learned slow with their average,
 * and the slow_routes hints.
 */
export function formatStats(r: LanesReport): string {
  const out: string[] = [r.lanes ? `lanes on, slow_threshold ${millis(r.slowThresholdMs)}` : 'lanes off: every request runs on the fast workers'];
  const serving = r.generations[0]?.generation ?? 0;
  r.generations.forEach((g, i) => {
    out.push('', `generation ${g.generation} (${i === 0 ? 'serving' : g.generation > serving ? 'starting' : 'draining'})`);
    const fast = `${g.fast.workers} worker${g.fast.workers === 1 ? '' : 's'}; served ${g.fast.servedFast} fast, ${g.fast.servedSlow} slow`;
    const s = g.slow;
    if (s === null) {
      out.push(...rows([['fast lane', fast], ['slow lane', 'off']]));
      return;
    }
    out.push(...rows([
      ['fast lane', fast],
      ['slow lane', `${s.workers} worker${s.workers === 1 ? '' : 's'}; ${s.queued} queued, ${s.running} running, ${s.free} free`],
      ['shed (503)', `${s.shed.full} queue full, ${s.shed.timeout} queue timeout, ${s.shed.noWorkers} no workers`],
      ['finished', `${s.completed} completed, ${s.failed} failed, ${s.cancelled} cancelled${s.requeued > 0 ? `, ${s.requeued} sent again (their slow worker had gone)` : ''}; mean service ${s.serviceMs === null ? '-' : millis(s.serviceMs)}`],
    ]));
  });
  out.push('');
  const { ready, wanted } = r.spares;
  if (wanted.fast > 0) {
    out.push(`spare workers: ${ready.fast} of ${wanted.fast} ready${wanted.slow > 0 ? `, slow lane ${ready.slow} of ${wanted.slow}` : ''}`, '');
  }
  if (r.slowRoutes.length === 0) out.push('slow routes: none learned');
  else {
    const table = [['ROUTE', 'AVG'], ...r.slowRoutes.map((x) => [x.route, millis(x.avgMs)])];
    const w = Math.max(...table.map(([route]) => route!.length));
    out.push('slow routes', ...table.map(([route, avg]) => `  ${route!.padEnd(w)}  ${avg}`));
  }
  if (r.hints.length > 0) out.push(`hints (slow_routes): ${r.hints.join(', ')}`);
  return out.join('\n') + '\n';
}

/** What each acting command wants a companion to end up as. */
const WANTED: Partial<Record<Command, readonly CompanionState[]>> = {
  start: ['RUNNING', 'STARTING'],
  restart: ['RUNNING', 'STARTING'],
  stop: ['STOPPED', 'EXITED', 'FATAL'],
};
const DONE: Partial<Record<Command, string>> = { start: 'started', restart: 'restarted', stop: 'stopped' };

/** The text for an ok reply, and whether what was asked for holds. */
export function render(req: Request, reply: OkReply): { out: string; err: string; ok: boolean } {
  const r = reply as OkReply & Record<string, unknown>;
  switch (req.cmd) {
    case 'status': {
      const cs = (r as OkReply<'status'>).companions;
      // "Is it up?" for scripts, whatever was asked: every companion listed RUNNING, or exit 1. STOPPED by
      // hand counts as not up (supervisorctl's status counts it too): the script asked whether it runs.
      const ok = cs.every((c) => c.state === 'RUNNING');
      return { out: formatStatus(cs), err: ok ? '' : `${cs.filter((c) => c.state !== 'RUNNING').map((c) => `${c.name} is ${c.state}`).join(', ')}\n`, ok };
    }
    case 'start':
    case 'stop':
    case 'restart': {
      const wanted = WANTED[req.cmd]!;
      let out = '';
      let err = '';
      for (const c of (r as OkReply<'start'>).companions) {
        if (wanted.includes(c.state)) out += `${c.name}: ${DONE[req.cmd]}\n`;
        else err += `${c.name}: not ${DONE[req.cmd]}, it is ${c.state}${c.description === '' ? '' : ` (${c.description})`}\n`;
      }
      return { out, err, ok: err === '' };
    }
    case 'reread': {
      const d = r as OkReply<'reread'>;
      const later = new Set(d.starting_later ?? []);
      const lines = [...d.added.map((n) => `${n}: added${later.has(n) ? ' (starts once its old process has stopped)' : ''}`), ...d.changed.map((n) => `${n}: changed`), ...d.removed.map((n) => `${n}: removed`)];
      return { out: lines.length === 0 ? `no changes (${d.unchanged.length} unchanged)\n` : lines.join('\n') + '\n', err: '', ok: true };
    }
    case 'signal': {
      const s = (r as OkReply<'signal'>).signalled;
      if (s.length === 0) return { out: '', err: `no running companion to signal\n`, ok: false };
      return { out: s.map((x) => `${x.name}: sent ${req.signal} (pid ${x.pid})\n`).join(''), err: '', ok: true };
    }
    case 'pid': {
      const pid = (r as OkReply<'pid'>).pid;
      return pid === null ? { out: '', err: `${req.name ?? 'the manager'} is not running\n`, ok: false } : { out: `${pid}\n`, err: '', ok: true };
    }
    case 'tail': {
      const ls = (r as OkReply<'tail'>).lines;
      return { out: ls.length === 0 ? '' : ls.join('\n') + '\n', err: '', ok: true };
    }
    case 'version':
      return { out: `drover ${(r as OkReply<'version'>).version}\n`, err: '', ok: true };
    case 'stats':
      return { out: formatStats(r as OkReply<'stats'>), err: '', ok: true };
    case 'reload':
      return { out: `reloaded: generation ${(r as OkReply<'reload'>).generation} serving\n`, err: '', ok: true };
    case 'scale': {
      const s = r as OkReply<'scale'>;
      return { out: `workers: ${s.workers} (min ${s.min}, max ${s.max})\n`, err: '', ok: true };
    }
  }
}

// ------------------------------------------------------------------- main

/** How long to wait for each reply: --timeout when given, else what the command needs. */
export function waitFor(req: CtlRequest, follow: boolean, timeoutMs: number | null, where: SocketChoice): number {
  if (timeoutMs !== null) return timeoutMs;
  if (req.cmd === 'top' || follow) return POLL_TIMEOUT_MS;
  // `timeout` 0 (never) leaves the arbiter's reload its 30 s for booting all the same.
  if (req.cmd === 'reload') return Math.min(Math.max(DEFAULT_TIMEOUT_MS, (where.timeout || CONFIG_TIMEOUT_MS) + RELOAD_SLACK_MS), 2 ** 31 - 1);
  return DEFAULT_TIMEOUT_MS;
}

/** Runs one `drover ctl` command line; resolves with the exit status. `term` is where top draws: none, one frame. */
export async function ctl(os: Os, argv: readonly string[], term: Terminal = NO_TERMINAL): Promise<number> {
  // Every line printed has its control characters escaped: a reply (or a path) cannot drive the terminal.
  const say = (text: string): void => os.stderr.write(`drover ctl: ${text.split('\n').map(escapeControl).join('\n')}\n`);
  const parsed = parseCtlArgv(argv);
  if (!parsed.ok) {
    for (const p of parsed.problems) say(p);
    os.stderr.write('see drover ctl --help\n');
    return EXIT_USAGE;
  }
  const a = parsed.args;
  if (a.help || (a.words.length === 1 && a.words[0] === 'help')) {
    os.stdout.write(CTL_USAGE);
    return EXIT_OK;
  }
  const cr = commandRequest(a.words, a.lines, a.follow);
  if (!cr.ok) {
    say(cr.problem);
    return EXIT_USAGE;
  }
  if (a.json && (cr.req.cmd === 'top' || a.follow)) {
    say(`--json is not for ${cr.req.cmd === 'top' ? 'top: drover ctl --json stats and --json status give its facts' : 'tail -f'}`);
    return EXIT_USAGE;
  }
  let where: SocketChoice;
  try {
    where = await locateSocket(os, { socket: a.socket, config: a.config });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) say(p);
    const candidates = e instanceof SocketUnknown ? e.candidates : [];
    if (candidates.length === 0) say('cannot tell which control socket to use; name it with --socket PATH');
    else {
      say('cannot tell which control socket to use; name it with --socket PATH. Without control_socket, drover listens at:');
      for (const c of candidates) os.stderr.write(`  --socket ${escapeControl(c.path)}  (the default for ${escapeControl(c.for)})\n`);
    }
    return EXIT_USAGE;
  }
  for (const note of where.notes ?? []) say(note);
  if (where.mayLook === true && !present(os, where.path)) {
    // Not at the default path: the drover running from this directory under another config, if there is exactly one.
    const running = await findRunning(os);
    if (running.length === 1) where = { path: running[0]!.path, from: `the only drover of yours running from ${os.cwd()} (pid ${running[0]!.pid})` };
    else if (running.length > 1) {
      say(`no control socket at ${where.path} (${where.from}), and ${running.length} drovers of yours run from ${os.cwd()}; pick one with --socket PATH:`);
      for (const r of running) os.stderr.write(`  --socket ${escapeControl(r.path)}  (pid ${r.pid})\n`);
      return EXIT_USAGE;
    }
  }
  const wait = waitFor(cr.req, a.follow, a.timeoutMs, where);
  const ask = (req: Request): Promise<Reply> => request(os, where.path, req, wait);
  /** The exit status for a reply that never came, said with where the socket came from. */
  const unreachable = (e: ControlError): number => {
    say(`${e.message}\n  (socket ${where.path}, from ${where.from}${where.from === '--socket' ? '' : '; --socket PATH or --config FILE picks another'})`);
    return e.code === 'EINVAL' ? EXIT_USAGE : EXIT_UNREACHABLE;
  };
  const req = cr.req;
  if (req.cmd === 'top') return top(os, ask, term, say, unreachable);

  let raw: Reply;
  let reply: Reply; // raw, its strings escaped for the terminal
  const stop = req.cmd === 'tail' && a.follow ? interrupts(os) : null; // installed first: a Ctrl-C during the first reply ends it quietly too
  try {
    try {
      const got = stop === null ? await ask(req) : await stop.race(ask(req));
      if (got === STOPPED) return EXIT_OK;
      raw = got;
      reply = escapeReply(raw);
    } catch (e) {
      if (!(e instanceof ControlError)) throw e;
      return unreachable(e);
    }
    if (!reply.ok) {
      if (a.json) os.stdout.write(replyJson(raw) + '\n');
      else say(reply.error);
      return EXIT_FAILED;
    }
    const shown = render(req, reply);
    if (a.json) os.stdout.write(replyJson(raw) + '\n');
    else {
      os.stdout.write(shown.out);
      if (shown.err !== '') os.stderr.write(shown.err);
    }
    if (stop !== null && req.cmd === 'tail') return await followTail(os, ask, req, reply as OkReply<'tail'>, stop, say);
    return shown.ok ? EXIT_OK : EXIT_FAILED;
  } finally {
    stop?.done();
  }
}

/** Whether anything is at `path` (lstat: a dangling symlink counts). */
function present(os: Os, path: string): boolean {
  try {
    os.fs.lstat(path);
    return true;
  } catch (e) {
    expectCodes(e); // ENOENT, ENOTDIR, or a path we may not look at: nothing to use there
    return false;
  }
}

// ------------------------------------------------------ tail -f and top

const STOPPED = Symbol('stopped');
const INTERRUPTS: readonly Signal[] = ['SIGINT', 'SIGTERM'];

interface Interrupts {
  /** Stops what waits on race or pause (a key, q or Ctrl-C in raw mode, calls this). */
  stop(): void;
  race<T>(p: Promise<T>): Promise<T | typeof STOPPED>;
  /** Waits `ms`; true when stopped meanwhile (or before). */
  pause(ms: number): Promise<boolean>;
  /** Puts SIGINT's and SIGTERM's default actions back. */
  done(): void;
}

/** SIGINT and SIGTERM stop a long-running command instead of killing ctl, so that it can put the terminal back and exit 0. */
function interrupts(os: Os): Interrupts {
  let stopped = false;
  let wake!: (v: typeof STOPPED) => void;
  const signal = new Promise<typeof STOPPED>((resolve) => (wake = resolve));
  const stop = (): void => {
    stopped = true;
    wake(STOPPED);
  };
  for (const sig of INTERRUPTS) os.onSignal(sig, stop);
  return {
    stop,
    race: (p) => Promise.race([p, signal]),
    async pause(ms) {
      if (stopped) return true;
      let timer: { cancel(): void } | null = null;
      await Promise.race([new Promise<void>((resolve) => (timer = os.timer(ms, resolve))), signal]);
      timer!.cancel();
      return stopped;
    },
    done: () => {
      for (const sig of INTERRUPTS) os.onSignal(sig, null);
    },
  };
}

/**
 * tail -f after its first reply: asks for the lines from that reply's
 * `next` on every FOLLOW_EVERY_MS and prints them, with a note of lines
 * the manager's ring lost meanwhile. Ends at SIGINT or SIGTERM (0), or when
 * drover or the companion goes away (1).
 */
async function followTail(os: Os, ask: (req: Request) => Promise<Reply>, req: Extract<Request, { cmd: 'tail' }>, first: OkReply<'tail'>, stop: Interrupts, say: (text: string) => void): Promise<number> {
  const old = 'the companion manager does not number its lines (no "next" in its tail reply): it is older than this drover ctl; restart drover with the release ctl came with';
  if (typeof first.next !== 'number') {
    say(old);
    return EXIT_FAILED;
  }
  let after = first.next;
  for (;;) {
    if (await stop.pause(FOLLOW_EVERY_MS)) return EXIT_OK;
    let got: Reply | typeof STOPPED;
    try {
      // As many lines as a reply may carry: fewer would drop lines of a burst for nothing.
      got = await stop.race(ask({ cmd: 'tail', name: req.name, stream: req.stream, lines: MAX_TAIL_LINES, after }));
    } catch (e) {
      if (!(e instanceof ControlError)) throw e;
      say(`stopped following ${req.name}: ${e.message}`);
      return EXIT_FAILED;
    }
    if (got === STOPPED) return EXIT_OK;
    if (!got.ok) {
      say(`stopped following ${req.name}: ${got.error}`);
      return EXIT_FAILED;
    }
    const r = escapeReply(got) as OkReply<'tail'>;
    if (typeof r.next !== 'number') {
      say(old);
      return EXIT_FAILED;
    }
    let text = '';
    if (r.next < after) text += '[the companion manager was restarted: its line numbers start again]\n';
    if (r.dropped !== undefined && r.dropped > 0) text += `[${r.dropped} line${r.dropped === 1 ? '' : 's'} dropped]\n`;
    if (r.lines.length > 0) text += r.lines.join('\n') + '\n';
    if (text !== '') os.stdout.write(text);
    // A new manager numbers from 0 again: ask from its first line.
    after = r.next < after ? 0 : r.next;
  }
}

/** Keys that quit top: q, and Ctrl-C, which raw mode delivers as a byte instead of SIGINT. */
const QUIT_KEYS = /[qQ\x03\x04]/;
const CLEAR = '\x1b[H\x1b[2J';

/**
 * `drover ctl top`: asks for version once, then stats and status every
 * TOP_EVERY_MS, and draws formatTop's frame. On a terminal the screen is
 * cleared and redrawn until q, Ctrl-C or SIGTERM (0); stdout not a
 * terminal gets one frame (0). A drover that stops answering ends it: the
 * first time as any command's unreachable socket, later with exit 1.
 */
async function top(os: Os, ask: (req: Request) => Promise<Reply>, term: Terminal, say: (text: string) => void, unreachable: (e: ControlError) => number): Promise<number> {
  const stop = interrupts(os);
  let restore = (): void => {};
  try {
    if (term.isTTY) restore = term.keys((key) => QUIT_KEYS.test(key) && stop.stop());
    let head: TopHead | null = null;
    for (let first = true; ; first = false) {
      let got: readonly [Reply | null, Reply, Reply] | typeof STOPPED;
      try {
        got = await stop.race(Promise.all([head === null ? ask({ cmd: 'version' }) : Promise.resolve(null), ask({ cmd: 'stats' }), ask({ cmd: 'status', name: 'all' })] as const));
      } catch (e) {
        if (!(e instanceof ControlError)) throw e;
        if (first) return unreachable(e);
        if (term.isTTY) os.stdout.write('\n');
        say(`drover stopped answering: ${e.message}`);
        return EXIT_FAILED;
      }
      if (got === STOPPED) return EXIT_OK;
      const [version, stats, status]: readonly [Reply | null, Reply, Reply] = got;
      if (version !== null) {
        const v: OkReply<'version'> | null = version.ok ? (version as OkReply<'version'>) : null;
        head = { version: v?.version ?? '?', pid: v?.arbiter?.pid ?? null };
      }
      if (!stats.ok) {
        say(stats.error);
        return EXIT_FAILED;
      }
      // No companions configured: the arbiter's error for status says so, and top shows none.
      const companions: TopCompanions = status.ok
        ? { companions: (status as OkReply<'status'>).companions }
        : status.error.includes(NO_COMPANIONS) ? { companions: [] } : { error: status.error };
      // A terminal that does not know its size says 0 columns: nothing is cut then.
      const width = term.isTTY && term.columns !== undefined && term.columns > 0 ? term.columns : undefined;
      const frame = formatTop(stats as OkReply<'stats'>, companions, os.wallTime(), head!, width);
      if (!term.isTTY) {
        os.stdout.write(frame);
        return EXIT_OK;
      }
      os.stdout.write(`${CLEAR}${frame}\nq or Ctrl-C quits\n`);
      if (await stop.pause(TOP_EVERY_MS)) return EXIT_OK;
    }
  } finally {
    restore();
    stop.done();
  }
}
