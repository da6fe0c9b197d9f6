// `drover ctl`: one command line in, one request over the control socket,
// text (or the raw JSON) out, and an exit status a script can branch on.
// Written against the Os so that it runs in the simulator as well.

import type { Os } from '../../os/types.js';
import { ConfigError } from '../config/index.js';
import { closest } from '../config/names.js';
import type { LanesReport } from '../lanes/report.js';
import { ControlError, request } from './client.js';
import { findRunning, locateSocket, type SocketChoice } from './locate.js';
import {
  COMMANDS, COMPANION_SIGNALS, DEFAULT_TAIL_LINES, escapeControl, escapeReply, MAX_TAIL_LINES, replyJson, signalName, validateRequest,
  type Command, type CompanionState, type CompanionStatus, type OkReply, type Reply, type Request,
} from './protocol.js';

export const EXIT_OK = 0;
/** drover said no (ok:false), or a companion did not end up where the command wanted it. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

export const DEFAULT_TIMEOUT_MS = 60_000;

const SIGNAL_LIST = COMPANION_SIGNALS.map((s) => s.slice(3)).join(', ');

/** Each command's synopsis and meaning, for --help and for messages about its arguments. */
const SYNOPSIS: Readonly<Record<Command, readonly [string, string]>> = {
  status: ['status [NAME|all]', 'state of every companion, or of one (exit 1 if it is not RUNNING)'],
  start: ['start NAME|all', 'start; replies once running (exit 1 if it did not stay up)'],
  stop: ['stop NAME|all', 'stop: stop_signal, then KILL after stop_timeout'],
  restart: ['restart NAME|all', 'stop, then start'],
  reread: ['reread', 're-read the config and apply it: added start, removed stop, changed restart'],
  signal: ['signal NAME|all SIGNAL', `send SIGNAL (${SIGNAL_LIST}) to running companions`],
  pid: ['pid [NAME]', "a companion's pid (exit 1 if none runs); without NAME, the companion manager's"],
  tail: ['tail NAME [-n LINES] [stdout|stderr]', `the last LINES (default ${DEFAULT_TAIL_LINES}) lines of a companion's log`],
  version: ['version', "the running drover's version"],
  stats: ['stats', 'the request lanes: workers, queues, shed and served counts per generation, the routes learned slow'],
};

export const CTL_USAGE = `usage: drover ctl [--config FILE | --socket PATH] [--json] [--timeout SECONDS] COMMAND [ARGS]

Controls a running drover through its control socket (served by the arbiter):
its companions, and its request lanes' statistics (stats, with or without companions).

commands:
${Object.values(SYNOPSIS).map(([syn, what]) => (syn.length > 30 ? `  ${syn}\n  ${''.padEnd(30)}  ${what}` : `  ${syn.padEnd(30)}  ${what}`)).join('\n')}

options:
  -c, --config FILE     read control_socket from this config (default: $DROVER_CONFIG,
                        else ./drover.config.js, .mjs or .json, as drover finds it)
  -s, --socket PATH     talk to this socket
      --json            print the reply as it came, one JSON object
      --timeout SECONDS how long to wait for the reply (default ${DEFAULT_TIMEOUT_MS / 1000}; start and stop wait for companions)
  -h, --help            print this help

exit status: 0 done; 1 refused, or a companion is not in the state asked for;
             2 usage or config error; 3 drover cannot be reached
`;

export interface CtlArgs {
  readonly socket: string | null;
  readonly config: string | null;
  readonly json: boolean;
  readonly timeoutMs: number;
  readonly help: boolean;
  readonly lines: number | null;
  /** COMMAND and its ARGS. */
  readonly words: readonly string[];
}

type Opt = 'socket' | 'config' | 'json' | 'timeout' | 'help' | 'lines';
const LONG: Record<string, Opt> = { '--socket': 'socket', '--config': 'config', '--json': 'json', '--timeout': 'timeout', '--help': 'help', '--lines': 'lines' };
const SHORT: Record<string, Opt> = { '-s': 'socket', '-c': 'config', '-h': 'help', '-n': 'lines' };
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
  let timeoutMs = DEFAULT_TIMEOUT_MS;
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
  return problems.length > 0 ? { ok: false, problems } : { ok: true, args: { socket, config, json, timeoutMs, help, lines, words } };
}

/** The request a command line asks for, or what is wrong with it. */
export function commandRequest(words: readonly string[], lines: number | null): { ok: true; req: Request } | { ok: false; problem: string } {
  const [cmd, ...rest] = words;
  const names = Object.keys(COMMANDS) as Command[];
  if (cmd === undefined) return { ok: false, problem: `no command given; commands: ${names.join(', ')}` };
  if (!names.includes(cmd as Command)) {
    const near = closest(cmd.toLowerCase(), names);
    return { ok: false, problem: `unknown command ${JSON.stringify(cmd)}${near === null ? '' : `; did you mean ${near}?`} commands: ${names.join(', ')}` };
  }
  const c = cmd as Command;
  const arity = (min: number, max: number): string | null =>
    rest.length < min || rest.length > max ? `${c} takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${rest.length}: drover ctl ${SYNOPSIS[c][0]}` : null;
  if (lines !== null && c !== 'tail') return { ok: false, problem: `-n/--lines is for tail, not ${c}` };
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
      problem = arity(0, 0);
      raw = { cmd: c };
      break;
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

/** `0:00:07`, `3:25:00`, `2d 4:00:00`: supervisorctl's uptime, shorter days. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  return d > 0 ? `${d}d ${hms}` : hms;
}

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
      ['finished', `${s.completed} completed, ${s.failed} failed, ${s.cancelled} cancelled; mean service ${s.serviceMs === null ? '-' : millis(s.serviceMs)}`],
    ]));
  });
  out.push('');
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
      // `status NAME` answers "is it up?" for scripts; `status`/`status all` only reports.
      const ok = req.name === 'all' || cs.every((c) => c.state === 'RUNNING');
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
      const lines = [...d.added.map((n) => `${n}: added`), ...d.changed.map((n) => `${n}: changed`), ...d.removed.map((n) => `${n}: removed`)];
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
  }
}

// ------------------------------------------------------------------- main

/** Runs one `drover ctl` command line; resolves with the exit status. */
export async function ctl(os: Os, argv: readonly string[]): Promise<number> {
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
  const cr = commandRequest(a.words, a.lines);
  if (!cr.ok) {
    say(cr.problem);
    return EXIT_USAGE;
  }
  let where: SocketChoice;
  try {
    where = await locateSocket(os, { socket: a.socket, config: a.config });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) say(p);
    say('cannot tell which control socket to use; name it with --socket PATH');
    return EXIT_USAGE;
  }
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
  let raw: Reply;
  let reply: Reply; // raw, its strings escaped for the terminal
  try {
    raw = await request(os, where.path, cr.req, a.timeoutMs);
    reply = escapeReply(raw);
  } catch (e) {
    if (!(e instanceof ControlError)) throw e;
    say(`${e.message}\n  (socket ${where.path}, from ${where.from}${where.from === '--socket' ? '' : '; --socket PATH or --config FILE picks another'})`);
    return e.code === 'EINVAL' ? EXIT_USAGE : EXIT_UNREACHABLE;
  }
  if (!reply.ok) {
    if (a.json) os.stdout.write(replyJson(raw) + '\n');
    else say(reply.error);
    return EXIT_FAILED;
  }
  const shown = render(cr.req, reply);
  if (a.json) os.stdout.write(replyJson(raw) + '\n');
  else {
    os.stdout.write(shown.out);
    if (shown.err !== '') os.stderr.write(shown.err);
  }
  return shown.ok ? EXIT_OK : EXIT_FAILED;
}

/** Whether anything is at `path` (lstat: a dangling symlink counts). */
function present(os: Os, path: string): boolean {
  try {
    os.fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}
