// Companion config: the per-companion rules and their messages, the global
// companion_* defaults from every source, the companions file, the control
// socket's default, and the config hash.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Os } from '../../src/os/types.js';
import {
  COMPANION_DEFAULTS, canonicalJson, companionHash, defaultControlSocket, parseCompanions, splitModule,
  type CompanionConfig,
} from '../../src/runtime/companions/config.js';
import { ConfigError, loadConfig, resolveConfig, type Config } from '../../src/runtime/config/index.js';

const SRC = 'drover.config.json';
const cmd = ['node', 'worker.js'];

/** Parses `list` and expects no problems. */
function companions(list: unknown[], defaults = {}): CompanionConfig[] {
  const r = parseCompanions(list, defaults, SRC);
  expect(r.problems).toEqual([]);
  return r.companions;
}
const one = (c: Record<string, unknown>, defaults = {}): CompanionConfig => companions([c], defaults)[0]!;
const problems = (list: unknown, defaults = {}): string[] => parseCompanions(list, defaults, SRC).problems;
const problemsOf1 = (c: Record<string, unknown>): string[] => problems([{ name: 'w', command: cmd, ...c }]);

type Input = Partial<Parameters<typeof resolveConfig>[0]>;
const resolve = (i: Input): Config => resolveConfig({ argv: ['app.js'], env: {}, file: null, cpus: 1, cwd: '/srv', ...i });
function resolveProblems(i: Input): string[] {
  try {
    resolve(i);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('resolveConfig accepted it');
}
const file = (data: unknown, path = SRC) => ({ path, data });

describe('parseCompanions: a companion with defaults filled', () => {
  it('fills every omitted field from the built-in defaults, in milliseconds', () => {
    const c = one({ name: 'worker', command: cmd });
    const { hash, ...rest } = c;
    expect(rest).toEqual({
      name: 'worker', command: cmd, module: null, cwd: null, env: {}, stdout: 'inherit', stderr: 'inherit',
      stop_signal: 'SIGTERM', stop_timeout: 10_000, reload_timeout: 10_000, startsecs: 1_000, restart_delay: 1_000,
      startretries: null, backoff: 'fixed', backoff_max: 60_000, autostart: true, autorestart: true, exitcodes: [0], numprocs: 1,
    });
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).toBe(companionHash(rest));
  });

  it('takes every field as given, durations in seconds with fractions', () => {
    const c = one({
      name: 'q.mail-1', module: 'jobs/mail.js#run', cwd: '/srv/app', env: { QUEUE: 'mail' }, stdout: '/var/log/q.log', stderr: 'stdout',
      stop_signal: 'INT', stop_timeout: 2.5, reload_timeout: 30, startsecs: 0, restart_delay: 0.25, startretries: 3,
      backoff: 'exponential', backoff_max: 120, autostart: false, autorestart: 'unexpected', exitcodes: [2, 0, 2], numprocs: 3,
    });
    expect(c).toMatchObject({
      name: 'q.mail-1', command: null, module: 'jobs/mail.js#run', cwd: '/srv/app', env: { QUEUE: 'mail' }, stdout: '/var/log/q.log', stderr: 'stdout',
      stop_signal: 'SIGINT', stop_timeout: 2_500, reload_timeout: 30_000, startsecs: 0, restart_delay: 250, startretries: 3,
      backoff: 'exponential', backoff_max: 120_000, autostart: false, autorestart: 'unexpected', exitcodes: [0, 2], numprocs: 3,
    });
  });

  it('lets global defaults fill omitted fields, and a companion\'s own value win', () => {
    const defaults = { stop_timeout: 3_000, stop_signal: 'SIGQUIT' as const, stdout: '/var/log/all.log', backoff: 'exponential' as const, env: { A: '1', B: '2' } };
    const [a, b] = companions([{ name: 'a', command: cmd }, { name: 'b', command: cmd, stop_timeout: 7, env: { B: 'b', C: '3' }, stdout: 'inherit' }], defaults);
    expect(a).toMatchObject({ stop_timeout: 3_000, reload_timeout: 3_000, stop_signal: 'SIGQUIT', stdout: '/var/log/all.log', backoff: 'exponential', env: { A: '1', B: '2' } });
    // companion_env is merged under the companion's env.
    expect(b).toMatchObject({ stop_timeout: 7_000, reload_timeout: 7_000, stdout: 'inherit', env: { A: '1', B: 'b', C: '3' } });
  });

  it('defaults reload_timeout to the companion\'s own stop_timeout unless a global or own value is given', () => {
    expect(one({ name: 'w', command: cmd, stop_timeout: 4 }).reload_timeout).toBe(4_000);
    expect(one({ name: 'w', command: cmd, stop_timeout: 4 }, { reload_timeout: 20_000 }).reload_timeout).toBe(20_000);
    expect(one({ name: 'w', command: cmd, reload_timeout: 1 }, { reload_timeout: 20_000 }).reload_timeout).toBe(1_000);
    // An explicit null in the companion means its own stop_timeout, over a global reload_timeout.
    expect(one({ name: 'w', command: cmd, stop_timeout: 4, reload_timeout: null }, { reload_timeout: 20_000 }).reload_timeout).toBe(4_000);
  });

  it('accepts signals as TERM or SIGTERM in any case, and null or "" for the manager\'s cwd', () => {
    for (const s of ['TERM', 'SIGTERM', 'term', 'sigterm', ' TERM ']) expect(one({ name: 'w', command: cmd, stop_signal: s }).stop_signal).toBe('SIGTERM');
    expect(one({ name: 'w', command: cmd, stop_signal: 'winch' }).stop_signal).toBe('SIGWINCH');
    expect(one({ name: 'w', command: cmd, cwd: null }, { cwd: '/x' }).cwd).toBeNull();
    expect(one({ name: 'w', command: cmd, cwd: '' }).cwd).toBeNull();
    expect(one({ name: 'w', command: cmd }, { cwd: '/x' }).cwd).toBe('/x');
  });

  it('spells module with its export, so "w.js" and "w.js#default" are one config', () => {
    expect(one({ name: 'w', module: 'w.js' }).module).toBe('w.js#default');
    expect(one({ name: 'w', module: 'w.js' }).hash).toBe(one({ name: 'w', module: 'w.js#default' }).hash);
    expect(one({ name: 'w', module: 'dir#1/w.js#$run_2' }).module).toBe('dir#1/w.js#$run_2');
    expect(splitModule('dir#1/w.js#run')).toEqual({ path: 'dir#1/w.js', exportName: 'run' });
    expect(splitModule('w.js')).toEqual({ path: 'w.js', exportName: 'default' });
  });

  it('takes stream keywords in any case, and treats undefined as not given', () => {
    expect(one({ name: 'w', command: cmd, stdout: 'INHERIT', stderr: 'Stdout' })).toMatchObject({ stdout: 'inherit', stderr: 'stdout' });
    expect(one({ name: 'w', command: cmd, stop_timeout: undefined, module: undefined }).stop_timeout).toBe(10_000);
  });

  it('returns frozen configs', () => {
    const c = one({ name: 'w', command: cmd, env: { A: '1' } });
    expect(Object.isFrozen(c) && Object.isFrozen(c.command) && Object.isFrozen(c.env)).toBe(true);
  });

  it('accepts an empty list', () => {
    expect(companions([])).toEqual([]);
  });
});

describe('parseCompanions: every rule has a message naming the companion, field, source, value and fix', () => {
  it.each<[string, unknown, string[]]>([
    ['not a list', { name: 'w' }, ['companions in drover.config.json: expected a list of companions, e.g. [{ "name": "worker", "command": ["node", "worker.js"] }], got {"name":"w"} (an object)']],
    ['an entry that is not an object', ['w'], ['companions[0] in drover.config.json: expected an object, e.g. { "name": "worker", "command": ["node", "worker.js"] }, got "w" (a string)']],
    ['no name', [{ command: cmd }], ['companions[0] in drover.config.json: needs a name, e.g. "name": "worker"']],
    ['a name with a space', [{ name: 'mail queue', command: cmd }], ['name of companions[0] in drover.config.json: expected a name of 1 to 64 letters, digits, "_", "." or "-", e.g. "worker", got "mail queue"; e.g. "mail-queue"']],
    ['an empty name', [{ name: '', command: cmd }], ['name of companions[0] in drover.config.json: expected a name of 1 to 64 letters, digits, "_", "." or "-", e.g. "worker", got ""']],
    ['a name too long', [{ name: 'x'.repeat(65), command: cmd }], [`name of companions[0] in drover.config.json: a name is at most 64 characters, got 65: "${'x'.repeat(56)}...`]],
    ['a name that is not a string', [{ name: 7, command: cmd }], ['name of companions[0] in drover.config.json: expected a name of 1 to 64 letters, digits, "_", "." or "-", e.g. "worker", got 7 (a number)']],
    ['the reserved name all', [{ name: 'all', command: cmd }], ['name of companions[0] in drover.config.json: "all" is reserved (drover ctl uses it for every companion); choose another name']],
    ['the name ..', [{ name: '..', command: cmd }], ['name of companions[0] in drover.config.json: ".." is not a usable name; choose a word, e.g. "worker"']],
    ['two companions of one name', [{ name: 'w', command: cmd }, { name: 'x', command: cmd }, { name: 'w', module: 'w.js' }], ['companion name "w" is used by companions[0] and companions[2] in drover.config.json; give each companion its own name']],
    ['three of one name', [{ name: 'w', command: cmd }, { name: 'w', command: cmd }, { name: 'w', command: cmd }], ['companion name "w" is used by companions[0], companions[1] and companions[2] in drover.config.json; give each companion its own name']],
  ])('%s', (_, list, want) => {
    expect(problems(list)).toEqual(want);
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    ['a misspelt key', { stop_timout: 3 }, ['companion "w" in drover.config.json: unknown key "stop_timout"; did you mean "stop_timeout"?']],
    ['a camelCase key', { stopSignal: 'INT' }, ['companion "w" in drover.config.json: unknown key "stopSignal"; did you mean "stop_signal"?']],
    ['a global default\'s name', { companion_stop_timeout: 3 }, ['companion "w" in drover.config.json: unknown key "companion_stop_timeout"; did you mean "stop_timeout"?']],
    ['supervisord\'s stopwaitsecs', { stopwaitsecs: 3 }, ['companion "w" in drover.config.json: unknown key "stopwaitsecs"; use "stop_timeout" (seconds)']],
    ['supervisord\'s process_name', { process_name: '%(program_name)s_%(process_num)s' }, ['companion "w" in drover.config.json: unknown key "process_name"; remove it: the copies numprocs runs are named NAME:0, NAME:1, ...']],
    ['supervisord\'s numprocs_start', { numprocs_start: 1 }, ['companion "w" in drover.config.json: unknown key "numprocs_start"; remove it: copies are numbered from 0 (DROVER_PROCESS_NUM)']],
    ['a key like nothing', { colour: 'red' }, ['companion "w" in drover.config.json: unknown key "colour"; the keys are name, command, module, cwd, env, stdout, stderr, stop_signal, stop_timeout, reload_timeout, startsecs, restart_delay, startretries, backoff, backoff_max, autostart, autorestart, exitcodes, numprocs']],
    ['a misspelt autorestart', { auto_restart: false }, ['companion "w" in drover.config.json: unknown key "auto_restart"; did you mean "autorestart"?']],
    ['autorestart as a quoted boolean', { autorestart: 'false' }, ['autorestart of companion "w" in drover.config.json: expected true (restart after any exit), false (never) or "unexpected" (only after an exit code not in exitcodes), got "false" (a string); write false without quotes']],
    ['a misspelt autorestart value', { autorestart: 'unexpcted' }, ['autorestart of companion "w" in drover.config.json: expected true (restart after any exit), false (never) or "unexpected" (only after an exit code not in exitcodes), got "unexpcted"; did you mean "unexpected"?']],
    ['autorestart as a number', { autorestart: 1 }, ['autorestart of companion "w" in drover.config.json: expected true (restart after any exit), false (never) or "unexpected" (only after an exit code not in exitcodes), got 1 (a number)']],
    ['exitcodes as one number', { exitcodes: 0 }, ['exitcodes of companion "w" in drover.config.json: expected a list of exit codes from 0 to 255, e.g. [0, 2], got 0 (a number); write [0]']],
    ['exitcodes as a string', { exitcodes: '0,2' }, ['exitcodes of companion "w" in drover.config.json: expected a list of exit codes from 0 to 255, e.g. [0, 2], got "0,2" (a string)']],
    ['no exitcodes', { exitcodes: [] }, ['exitcodes of companion "w" in drover.config.json: expected at least one exit code, e.g. [0], got []; an empty list would make every exit unexpected: for that, use autorestart true']],
    ['exit codes out of a byte, fractional, quoted', { exitcodes: [0, 256, -1, 1.5, '2'] }, [
      'exitcodes of companion "w" in drover.config.json: exitcodes[1] must be a whole number from 0 to 255, got 256; an exit status is one byte, and a death by a signal is never expected',
      'exitcodes of companion "w" in drover.config.json: exitcodes[2] must be a whole number from 0 to 255, got -1; an exit status is one byte, and a death by a signal is never expected',
      'exitcodes of companion "w" in drover.config.json: exitcodes[3] must be a whole number from 0 to 255, got 1.5',
      'exitcodes of companion "w" in drover.config.json: exitcodes[4] must be a whole number from 0 to 255, got "2" (a string); write 2',
    ]],
    ['an absurdly long exitcodes', { exitcodes: Array.from({ length: 100_000 }, () => 0) }, ['exitcodes of companion "w" in drover.config.json: expected at most 256 exit codes (each of 0..255 once), got a list of 100000']],
    ['numprocs 0', { numprocs: 0 }, ['numprocs of companion "w" in drover.config.json: expected a whole number from 1 to 64 (copies to run), got 0; to run none, set autostart false or remove the companion']],
    ['numprocs absurd', { numprocs: 10_000 }, ['numprocs of companion "w" in drover.config.json: expected a whole number from 1 to 64 (copies to run), got 10000; run at most 64 copies of one companion (split them into several companions if you truly need more)']],
    ['numprocs fractional', { numprocs: 2.5 }, ['numprocs of companion "w" in drover.config.json: expected a whole number from 1 to 64 (copies to run), got 2.5 (a number)']],
    ['numprocs quoted', { numprocs: '4' }, ['numprocs of companion "w" in drover.config.json: expected a whole number from 1 to 64 (copies to run), got "4" (a string); write 4']],
    ['both command and module', { module: 'w.js' }, ['companion "w" in drover.config.json: give command or module, not both']],
    ['neither command nor module', { command: null }, ['companion "w" in drover.config.json: needs command (an argv array, e.g. ["node", "worker.js"]) or module (a Node module, e.g. "worker.js#run")']],
    ['a command string', { command: 'celery -A app worker' }, ['command of companion "w" in drover.config.json: expected an argv array, e.g. ["celery","-A","app","worker"], got "celery -A app worker" (a string); drover runs no shell: split the words, or use ["sh", "-c", "celery -A app worker"]']],
    ['an empty argv', { command: [] }, ['command of companion "w" in drover.config.json: expected a non-empty argv array, e.g. ["node", "worker.js"], got []']],
    ['a number in argv', { command: ['serve', '--port', 8080] }, ['command of companion "w" in drover.config.json: argv[2] must be a string, got 8080 (a number); write "8080"']],
    ['an empty program', { command: ['', 'x'] }, ['command of companion "w" in drover.config.json: argv[0], the program to run, cannot be empty']],
    ['a command object', { command: { run: 'x' } }, ['command of companion "w" in drover.config.json: expected an argv array, e.g. ["node", "worker.js"], got {"run":"x"} (an object)']],
    ['a module with an empty export', { command: null, module: 'w.js#' }, ['module of companion "w" in drover.config.json: an export name must follow "#", got "w.js#"; drop the "#" for the default export']],
    ['a module with no path', { command: null, module: '#run' }, ['module of companion "w" in drover.config.json: expected a module "path#export", e.g. "jobs/worker.js#run" (no "#": the default export), got "#run": the path is empty']],
    ['a module export that is no identifier', { command: null, module: 'w.js#1run' }, ['module of companion "w" in drover.config.json: "1run" in "w.js#1run" is not an export name (a JavaScript identifier, e.g. "run")']],
    ['a negative time', { stop_timeout: -1 }, ['stop_timeout of companion "w" in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got -1']],
    ['a time as a string', { startsecs: '1' }, ['startsecs of companion "w" in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got "1" (a string)']],
    ['a time too small to mean anything', { restart_delay: 0.0001 }, ['restart_delay of companion "w" in drover.config.json: expected 0 or at least 0.001 seconds, got 0.0001']],
    ['a non-numeric reload_timeout', { reload_timeout: 'soon' }, ['reload_timeout of companion "w" in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got "soon" (a string)']],
    ['a negative backoff_max', { backoff_max: -60 }, ['backoff_max of companion "w" in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got -60']],
    ['KILL as the stop signal', { stop_signal: 'KILL' }, ['stop_signal of companion "w" in drover.config.json: KILL cannot be the stop signal: it leaves no graceful stop, and it is what drover sends when stop_timeout runs out; use TERM (the default) or the signal the program handles']],
    ['a misspelt signal', { stop_signal: 'SIGTREM' }, ['stop_signal of companion "w" in drover.config.json: expected a signal name: one of HUP, INT, QUIT, ABRT, USR1, USR2, TERM, CHLD, TTIN, TTOU, WINCH (with or without "SIG"), got "SIGTREM"; did you mean "TERM"?']],
    ['a signal outside the Os set', { stop_signal: 'SIGSTOP' }, ['stop_signal of companion "w" in drover.config.json: expected a signal name: one of HUP, INT, QUIT, ABRT, USR1, USR2, TERM, CHLD, TTIN, TTOU, WINCH (with or without "SIG"), got "SIGSTOP"']],
    ['a signal number', { stop_signal: 15 }, ['stop_signal of companion "w" in drover.config.json: expected a signal name: one of HUP, INT, QUIT, ABRT, USR1, USR2, TERM, CHLD, TTIN, TTOU, WINCH (with or without "SIG"), got 15 (a number); use the name, e.g. "TERM"']],
    ['startretries 0', { startretries: 0 }, ['startretries of companion "w" in drover.config.json: expected a whole number >= 1 (FATAL after that many failed starts) or null (retry for ever), got 0']],
    ['a fractional startretries', { startretries: 2.5 }, ['startretries of companion "w" in drover.config.json: expected a whole number >= 1 (FATAL after that many failed starts) or null (retry for ever), got 2.5']],
    ['an unknown backoff', { backoff: 'linear' }, ['backoff of companion "w" in drover.config.json: expected one of fixed, exponential, got "linear"']],
    ['autostart as a string', { autostart: 'yes' }, ['autostart of companion "w" in drover.config.json: expected true or false, got "yes" (a string)']],
    ['env as a list', { env: ['A=1'] }, ['env of companion "w" in drover.config.json: expected an object of environment variables, e.g. { "QUEUE": "mail" }, got ["A=1"] (an array)']],
    ['a number in env', { env: { PORT: 8080, OK: 'x' } }, ['env of companion "w" in drover.config.json: environment values are strings: PORT is 8080 (a number); write "8080"']],
    ['an env name with =', { env: { 'A=B': 'x' } }, ['env of companion "w" in drover.config.json: environment variable name "A=B" is empty or contains "=" or a NUL byte']],
    ['stdout "-"', { stdout: '-' }, ['stdout of companion "w" in drover.config.json: expected "inherit" or a file path, got "-"; for the manager\'s own stdout write "inherit"']],
    ['stdout into itself', { stdout: 'stdout' }, ['stdout of companion "w" in drover.config.json: stdout cannot be sent to itself; use "inherit" or a file path']],
    ['stdout into stderr', { stdout: 'stderr' }, ['stdout of companion "w" in drover.config.json: stdout cannot join stderr (stderr can join stdout: stderr: "stdout"); use "inherit" or a file path']],
    ['stderr into itself', { stderr: 'STDERR' }, ['stderr of companion "w" in drover.config.json: stderr cannot be sent to itself; use "inherit", "stdout" or a file path']],
    ['an empty stderr', { stderr: '' }, ['stderr of companion "w" in drover.config.json: expected "inherit", "stdout" or a file path, got ""']],
    ['a cwd that is a number', { cwd: 1 }, ['cwd of companion "w" in drover.config.json: expected a directory path, or null (the manager\'s working directory), got 1 (a number)']],
  ])('%s', (_, fields, want) => {
    expect(problemsOf1(fields)).toEqual(want);
  });

  it('names a companion whose name is refused by its index in every other problem', () => {
    expect(problems([{ name: 'a b', command: 'x', stop_timeout: -1 }])).toEqual([
      'name of companions[0] in drover.config.json: expected a name of 1 to 64 letters, digits, "_", "." or "-", e.g. "worker", got "a b"; e.g. "a-b"',
      'command of companions[0] in drover.config.json: expected an argv array, e.g. ["x"], got "x" (a string); drover runs no shell: split the words, or use ["sh", "-c", "x"]',
      'stop_timeout of companions[0] in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got -1',
    ]);
  });

  it('collects every problem of every companion, in order, and does not add "needs command" under a refused one', () => {
    expect(problems([{ name: 'a', command: [] }, { name: 'b', module: 5, stopwaitsecs: 1 }, 'c'])).toEqual([
      'command of companion "a" in drover.config.json: expected a non-empty argv array, e.g. ["node", "worker.js"], got []',
      'companion "b" in drover.config.json: unknown key "stopwaitsecs"; use "stop_timeout" (seconds)',
      'module of companion "b" in drover.config.json: expected a module "path#export", e.g. "jobs/worker.js#run" (no "#": the default export), got 5 (a number)',
      'companions[2] in drover.config.json: expected an object, e.g. { "name": "worker", "command": ["node", "worker.js"] }, got "c" (a string)',
    ]);
  });

  it('keeps the companions that parsed, for a caller that reports problems', () => {
    const r = parseCompanions([{ name: 'ok', command: cmd }, { name: 'bad' }], {}, SRC);
    expect(r.companions.map((c) => c.name)).toEqual(['ok']);
    expect(r.problems).toHaveLength(1);
  });
});

describe('resolveConfig: companions and their defaults from every source', () => {
  it('reads companions from the config file, converting seconds', () => {
    const c = resolve({ file: file({ companions: [{ name: 'w', command: cmd, stop_timeout: 2 }] }) });
    expect(c.companions).toHaveLength(1);
    expect(c.companions[0]).toMatchObject({ name: 'w', stop_timeout: 2_000, reload_timeout: 2_000 });
  });

  it('fills omitted fields from companion_* in the file, the environment and the command line, by precedence', () => {
    const c = resolve({
      file: file({
        companions: [{ name: 'w', command: cmd }, { name: 'x', command: cmd, restart_delay: 9 }],
        companion_stop_timeout: 3, companion_restart_delay: 2, companion_env: { A: '1' }, companion_stop_signal: 'INT',
      }),
      env: { DROVER_COMPANION_RESTART_DELAY: '4', DROVER_COMPANION_BACKOFF: 'exponential', DROVER_COMPANION_STARTRETRIES: '5' },
      argv: ['app.js', '--companion-stop-signal', 'usr2', '--companion-reload-timeout=0.5', '--companion-stdout', '/var/log/c.log'],
    });
    expect(c.companions[0]).toMatchObject({
      stop_timeout: 3_000, restart_delay: 4_000, env: { A: '1' }, stop_signal: 'SIGUSR2', reload_timeout: 500,
      backoff: 'exponential', startretries: 5, stdout: '/var/log/c.log',
    });
    expect(c.companions[1]!.restart_delay).toBe(9_000);
  });

  it('lets "" from text sources mean "none" where null does in a file', () => {
    const c = resolve({
      file: file({ companions: [{ name: 'w', command: cmd, stop_timeout: 6 }], companion_startretries: 3, companion_cwd: '/a', companion_reload_timeout: 1 }),
      env: { DROVER_COMPANION_STARTRETRIES: '', DROVER_COMPANION_CWD: '', DROVER_COMPANION_RELOAD_TIMEOUT: '' },
    });
    expect(c.companions[0]).toMatchObject({ startretries: null, cwd: null, reload_timeout: 6_000 });
  });

  it('refuses a bad default from any source, naming it where it came from', () => {
    expect(resolveProblems({
      file: file({ companion_stop_timeout: -1, companion_env: { A: 1 } }),
      env: { DROVER_COMPANION_STOP_SIGNAL: 'KILL' },
      argv: ['app.js', '--companion-backoff', 'linear', '--companion-startretries', '0'],
    })).toEqual([
      'companion_stop_timeout in drover.config.json: expected a number of seconds >= 0 (fractions allowed, e.g. 0.5), got -1',
      'companion_env in drover.config.json: environment values are strings: A is 1 (a number); write "1"',
      'DROVER_COMPANION_STOP_SIGNAL: KILL cannot be the stop signal: it leaves no graceful stop, and it is what drover sends when stop_timeout runs out; use TERM (the default) or the signal the program handles',
      '--companion-backoff: expected one of fixed, exponential, got "linear"',
      '--companion-startretries: expected a whole number >= 1 (FATAL after that many failed starts) or "" (retry for ever), got "0"',
    ]);
  });

  it('takes companion_autorestart and companion_exitcodes from the file, the environment (on/off, unexpected; 0,2) and the command line', () => {
    const both = [{ name: 'w', command: cmd }, { name: 'x', command: cmd, autorestart: true, exitcodes: [3] }];
    const f = resolve({ file: file({ companions: both, companion_autorestart: 'unexpected', companion_exitcodes: [2, 0] }) });
    expect(f.companions.map((c) => [c.autorestart, c.exitcodes])).toEqual([['unexpected', [0, 2]], [true, [3]]]);
    const e = resolve({ file: file({ companions: both }), env: { DROVER_COMPANION_AUTORESTART: 'off', DROVER_COMPANION_EXITCODES: ' 0, 75 ,0' } });
    expect(e.companions[0]).toMatchObject({ autorestart: false, exitcodes: [0, 75] });
    const a = resolve({ file: file({ companions: both, companion_autorestart: false }), argv: ['app.js', '--companion-autorestart', 'Unexpected', '--companion-exitcodes=1'] });
    expect(a.companions[0]).toMatchObject({ autorestart: 'unexpected', exitcodes: [1] });
  });

  it('refuses a bad companion_autorestart or companion_exitcodes from any source, naming it where it came from', () => {
    expect(resolveProblems({
      file: file({ companion_autorestart: 'sometimes', companion_exitcodes: [300] }),
      env: { DROVER_COMPANION_EXITCODES: '0;2' },
      argv: ['app.js', '--companion-autorestart', 'maybe'],
    })).toEqual([
      'companion_autorestart in drover.config.json: expected true (restart after any exit), false (never) or "unexpected" (only after an exit code not in exitcodes), got "sometimes"',
      'companion_exitcodes in drover.config.json: exitcodes[0] must be a whole number from 0 to 255, got 300; an exit status is one byte, and a death by a signal is never expected',
      'DROVER_COMPANION_EXITCODES: expected exit codes separated by commas, e.g. 0,2, got "0;2"',
      '--companion-autorestart: expected true (restart after any exit), false (never) or "unexpected" (only after an exit code not in exitcodes), got "maybe"',
    ]);
  });

  it('refuses companions and companion_env from the environment and the command line: only a file can hold them', () => {
    expect(resolveProblems({ env: { DROVER_COMPANIONS: '[]', DROVER_COMPANION_ENV: 'A=1' }, argv: ['--companions', '[]', 'app.js', '--companion-env=A'] })).toEqual([
      'DROVER_COMPANIONS: companions can be set only in a config file; unset DROVER_COMPANIONS',
      'DROVER_COMPANION_ENV: companion_env can be set only in a config file; unset DROVER_COMPANION_ENV',
      '--companions: companions can be set only in a config file',
      '--companion-env: companion_env can be set only in a config file',
    ]);
  });

  it('refuses the whole config for one duplicate name, and reports companion problems with every other one', () => {
    expect(resolveProblems({
      file: file({ workers: 0, companions: [{ name: 'w', command: cmd }, { name: 'w', command: cmd }] }),
    })).toEqual([
      'workers in drover.config.json: expected a whole number >= 1, got 0',
      'companion name "w" is used by companions[0] and companions[1] in drover.config.json; give each companion its own name',
    ]);
  });

  it('refuses a companions value that is not a list without a second message', () => {
    expect(resolveProblems({ file: file({ companions: { w: { command: cmd } } }) })).toEqual([
      'companions in drover.config.json: expected a list of companions, e.g. [{ "name": "worker", "command": ["node", "worker.js"] }], got {"w":{"command":["node","worker.js"]}} (an object)',
    ]);
  });

  it('has no companions by default', () => {
    expect(resolve({}).companions).toEqual([]);
  });
});

describe('the companions file', () => {
  const main = (data: Record<string, unknown> = {}) => file({ companions_file: 'companions.json', ...data });

  it('may be a list of companions', () => {
    const c = resolve({ file: main({ companion_stop_timeout: 2 }), companionsFile: file([{ name: 'w', command: cmd }], 'companions.json') });
    expect(c.companions.map((x) => [x.name, x.stop_timeout])).toEqual([['w', 2_000]]);
  });

  it('may be an object with companions and companion_* defaults, below the environment', () => {
    const c = resolve({
      file: main(),
      companionsFile: file({ companions: [{ name: 'w', command: cmd }], companion_startsecs: 5, companion_restart_delay: 3 }, 'companions.json'),
      env: { DROVER_COMPANION_RESTART_DELAY: '7' },
    });
    expect(c.companions[0]).toMatchObject({ startsecs: 5_000, restart_delay: 7_000 });
  });

  it('can be named from the command line or the environment too', () => {
    const c = resolve({ argv: ['app.js', '--companions-file', 'c.json'], companionsFile: file([{ name: 'w', command: cmd }], 'c.json') });
    expect(c.companions).toHaveLength(1);
  });

  it('names itself in its companions\' messages', () => {
    expect(resolveProblems({ file: main(), companionsFile: file([{ name: 'w' }], 'companions.json') })).toEqual([
      'companion "w" in companions.json: needs command (an argv array, e.g. ["node", "worker.js"]) or module (a Node module, e.g. "worker.js#run")',
    ]);
  });

  it('is refused together with inline companions, and a default set in both files is refused', () => {
    expect(resolveProblems({
      file: main({ companions: [{ name: 'a', command: cmd }], companion_startsecs: 1 }),
      companionsFile: file({ companions: [{ name: 'b', command: cmd }], companion_startsecs: 2 }, 'companions.json'),
    })).toEqual([
      'companions are given both inline (in drover.config.json) and in companions_file companions.json; keep them in one place',
      'companion_startsecs is set both in drover.config.json and in companions_file companions.json; set it in one place',
    ]);
  });

  it('holds only companions and their defaults', () => {
    expect(resolveProblems({
      file: main(),
      companionsFile: file({ companions: [], workers: 2, companion_stop_timout: 1, colour: 1 }, 'companions.json'),
    })).toEqual([
      '"workers" cannot be set in a companions file (companions.json); set it in the main config file',
      'unknown setting "companion_stop_timout" in companions file companions.json; did you mean "companion_stop_timeout"?',
      'unknown setting "colour" in companions file companions.json; a companions file holds companions, companion_cwd, companion_env, companion_stdout, companion_stderr, companion_stop_signal, companion_stop_timeout, companion_reload_timeout, companion_startsecs, companion_restart_delay, companion_startretries, companion_backoff, companion_backoff_max, companion_autorestart, companion_exitcodes',
    ]);
  });

  it('must be a list or an object', () => {
    expect(resolveProblems({ file: main(), companionsFile: file('w', 'companions.json') })).toEqual([
      'companions.json: expected a list of companions, or an object { "companions": [...] } with companion_* settings, got "w" (a string)',
    ]);
  });

  it('must have been read when named; a failed read adds nothing (its reader reported it)', () => {
    expect(resolveProblems({ file: main() })).toEqual([
      'companions_file "companions.json" (from drover.config.json) was not read: resolveConfig needs its content as companionsFile (loadConfig reads it)',
    ]);
    expect(resolve({ file: main(), companionsFile: null }).companions).toEqual([]);
    // "" switches a file's companions_file off from a higher source.
    expect(resolve({ file: main(), env: { DROVER_COMPANIONS_FILE: '' } }).companions).toEqual([]);
  });
});

describe('loadConfig reads the companions file through the Os', () => {
  /** Just what loadConfig touches: cwd, env and a read-only file system. */
  const fakeOs = (files: Record<string, string>, env: Record<string, string> = {}): Os =>
    ({ cwd: () => '/srv', env, fs: { exists: (p: string) => p in files, readFile: (p: string) => files[p]! } }) as unknown as Os;

  it('relative to the working directory, named in the config file', async () => {
    const os = fakeOs({
      '/srv/drover.config.json': JSON.stringify({ app: 'a.js', companions_file: 'conf/companions.json', companion_startsecs: 2 }),
      '/srv/conf/companions.json': JSON.stringify([{ name: 'w', command: cmd }]),
    });
    const c = await loadConfig(os, [], 1);
    expect(c.companions.map((x) => [x.name, x.startsecs])).toEqual([['w', 2_000]]);
  });

  it('named on the command line, with the main file absent', async () => {
    const os = fakeOs({ '/srv/c.json': JSON.stringify({ companions: [{ name: 'w', module: 'w.js' }] }) });
    expect((await loadConfig(os, ['a.js', '--companions-file', 'c.json'], 1)).companions[0]!.module).toBe('w.js#default');
  });

  it('reports a missing or broken companions file as a companions file, with every other problem', async () => {
    await expect(loadConfig(fakeOs({}), ['a.js', '--companions-file', 'nope.json', '--wokers', '2'], 1)).rejects.toThrow(
      new ConfigError(['companions file nope.json does not exist (looked for /srv/nope.json)', 'unknown option --wokers; did you mean --workers?']).message,
    );
    const broken = fakeOs({ '/srv/c.json': '[{' });
    await expect(loadConfig(broken, ['--companions-file=c.json'], 1)).rejects.toThrow(/^c\.json: invalid JSON[^\n]*\nno app given/);
  });
});

describe('control_socket', () => {
  it('defaults to one socket per config file in the runtime dir, found alike from a relative or absolute path', () => {
    const env = { XDG_RUNTIME_DIR: '/run/user/1000' };
    expect(defaultControlSocket('/srv', 'drover.config.json', env, 1000)).toBe('/run/user/1000/drover/ctl-ae6113c4.sock');
    expect(defaultControlSocket('/elsewhere', '/srv/drover.config.json', env, 1000)).toBe('/run/user/1000/drover/ctl-ae6113c4.sock');
    expect(defaultControlSocket('/srv/sub', '../drover.config.json', env, 1000)).toBe('/run/user/1000/drover/ctl-ae6113c4.sock');
    expect(defaultControlSocket('/etc', 'drover.json', {}, 1000)).toBe('/tmp/drover-1000/ctl-458c5c90.sock');
  });

  it('uses the working directory without a config file, /tmp/drover-<uid> without XDG_RUNTIME_DIR or when it is too long', () => {
    expect(defaultControlSocket('/srv', null, {}, 0)).toBe('/tmp/drover-0/ctl-a3d9ac4f.sock');
    expect(defaultControlSocket('/srv/', null, { XDG_RUNTIME_DIR: '' }, 7)).toBe('/tmp/drover-7/ctl-a3d9ac4f.sock');
    expect(defaultControlSocket('/srv', null, { XDG_RUNTIME_DIR: `/${'d'.repeat(100)}` }, 7)).toBe('/tmp/drover-7/ctl-a3d9ac4f.sock');
    expect(defaultControlSocket('/srv', null, {}, 0)).not.toBe(defaultControlSocket('/srv/other', null, {}, 0));
    expect(defaultControlSocket('/srv', null, {}, 0)).not.toBe(defaultControlSocket('/srv', null, {}, 1));
  });

  it('is resolved into Config: the default from the config file and the environment, or as set', () => {
    expect(resolve({ file: file({}, 'drover.config.json'), env: { XDG_RUNTIME_DIR: '/run/u' } }).control_socket).toBe('/run/u/drover/ctl-ae6113c4.sock');
    expect(resolve({ file: file({ control_socket: '/run/a.sock' }) }).control_socket).toBe('/run/a.sock');
    expect(resolve({ file: file({ control_socket: '/run/a.sock' }), env: { DROVER_CONTROL_SOCKET: '/run/b.sock' } }).control_socket).toBe('/run/b.sock');
    expect(resolve({ argv: ['app.js', '--control-socket', 'ctl.sock'] }).control_socket).toBe('ctl.sock');
  });

  it('refuses a path a Unix socket cannot have', () => {
    const long = `/run/${'s'.repeat(110)}`;
    expect(resolveProblems({ argv: ['app.js', '--control-socket', long] })).toEqual([
      `--control-socket: a Unix socket path is at most 107 bytes, "${long.slice(0, 56)}... has 115; use a shorter path`,
    ]);
    expect(resolveProblems({ file: file({ control_socket: '' }) })).toEqual(['control_socket in drover.config.json: expected a Unix socket path, e.g. /run/drover/ctl.sock, got ""']);
  });
});

describe('the config hash', () => {
  const base = { name: 'w', command: cmd };

  it('is the same for the same effective config, however it was written', () => {
    expect(one({ command: cmd, name: 'w' }).hash).toBe(one(base).hash);
    expect(one({ ...base, stop_signal: 'TERM' }).hash).toBe(one({ ...base, stop_signal: 'SIGTERM' }).hash);
    expect(one({ ...base, stop_timeout: 10 }).hash).toBe(one(base).hash);
    // A value from a global default or from the companion itself: one config.
    expect(one(base, { stop_timeout: 5_000 }).hash).toBe(one({ ...base, stop_timeout: 5 }).hash);
    expect(one({ ...base, env: { A: '1', B: '2' } }).hash).toBe(one({ ...base, env: { B: '2', A: '1' } }).hash);
  });

  it('changes with a global default the companion takes', () => {
    expect(one(base, { stop_timeout: 5_000 }).hash).not.toBe(one(base).hash);
    expect(one(base, { env: { A: '1' } }).hash).not.toBe(one(base).hash);
  });

  it('writes canonical JSON with sorted keys at every level', () => {
    expect(canonicalJson({ b: [{ d: 1, c: null }], a: 'x', u: undefined })).toBe('{"a":"x","b":[{"c":null,"d":1}]}');
  });

  // Resolved configs, valid or not: the hash is over data, whatever it holds.
  const str = fc.string({ maxLength: 8 });
  const ms = fc.nat({ max: 10_000_000 });
  const resolved = fc.record({
    name: str, command: fc.option(fc.array(str, { minLength: 1, maxLength: 4 })), module: fc.option(str), cwd: fc.option(str),
    env: fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), str, { maxKeys: 4 }), stdout: str, stderr: str,
    stop_signal: fc.constantFrom('SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP'), stop_timeout: ms, reload_timeout: ms, startsecs: ms,
    restart_delay: ms, startretries: fc.option(fc.integer({ min: 1, max: 100 })), backoff: fc.constantFrom('fixed', 'exponential'),
    backoff_max: ms, autostart: fc.boolean(), autorestart: fc.constantFrom(true, false, 'unexpected'),
    exitcodes: fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }), numprocs: fc.integer({ min: 1, max: 64 }),
  }) as fc.Arbitrary<Omit<CompanionConfig, 'hash'>>;

  /** A different value for one field of `c`, of the field's own type. */
  function change(c: Omit<CompanionConfig, 'hash'>, key: keyof typeof c, salt: string): unknown {
    const v = c[key];
    switch (key) {
      case 'command': return v === null ? [salt] : [...(v as string[]), salt];
      case 'module': case 'cwd': return v === null ? salt : null;
      case 'env': return { ...(v as Record<string, string>), [`K${salt}${Object.keys(v as object).join('')}`]: salt };
      case 'stop_signal': return v === 'SIGTERM' ? 'SIGUSR1' : 'SIGTERM';
      case 'startretries': return v === null ? 1 : null;
      case 'backoff': return v === 'fixed' ? 'exponential' : 'fixed';
      case 'autostart': return !v;
      case 'autorestart': return v === true ? 'unexpected' : v === 'unexpected' ? false : true;
      case 'exitcodes': return (v as number[]).includes(256) ? [0] : [...(v as number[]), 256];
      default: return typeof v === 'number' ? v + 1 : `${v as string}${salt || 'x'}`;
    }
  }

  it('changes when any single field changes (property)', () => {
    const keys = Object.keys(COMPANION_DEFAULTS).concat('name', 'command', 'module', 'autostart', 'numprocs') as (keyof Omit<CompanionConfig, 'hash'>)[];
    fc.assert(
      fc.property(resolved, fc.constantFrom(...keys), fc.string({ minLength: 1, maxLength: 3 }), (c, key, salt) => {
        const other = { ...c, [key]: change(c, key, salt) };
        expect(companionHash(other)).not.toBe(companionHash(c));
      }),
      { numRuns: 1000 },
    );
  });

  it('ignores key order, at the top and inside env (property)', () => {
    fc.assert(
      fc.property(resolved, fc.infiniteStream(fc.nat()), (c, order) => {
        const shuffle = <T>(xs: T[]): T[] => xs.map((x) => [order.next().value as number, x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x);
        const env = Object.fromEntries(shuffle(Object.entries(c.env)));
        const reordered = Object.fromEntries(shuffle(Object.entries({ ...c, env }))) as typeof c;
        expect(companionHash(reordered)).toBe(companionHash(c));
      }),
      { numRuns: 500 },
    );
  });

  it('of a parsed companion does not depend on the order its keys were written in (property)', () => {
    const input = fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}$/),
      command: fc.array(fc.stringMatching(/^[a-z0-9.-]{1,6}$/), { minLength: 1, maxLength: 3 }),
      stop_timeout: fc.integer({ min: 0, max: 100 }), stop_signal: fc.constantFrom('TERM', 'SIGINT', 'hup'),
      env: fc.dictionary(fc.stringMatching(/^[A-Z]{1,4}$/), fc.string({ maxLength: 4 }), { maxKeys: 3 }),
      startretries: fc.option(fc.integer({ min: 1, max: 9 })), autostart: fc.boolean(),
    }, { requiredKeys: ['name', 'command'] });
    fc.assert(
      fc.property(input, (c) => {
        const reversed = Object.fromEntries(Object.entries(c).reverse());
        expect(one(reversed).hash).toBe(one(c).hash);
      }),
    );
  });
});
