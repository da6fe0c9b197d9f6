import { describe, expect, it } from 'vitest';
import { parseArgv } from '../../src/runtime/config/index.js';

const none = { help: false, version: false, checkConfig: false };

describe('parseArgv', () => {
  it('reads the positional app, both long forms, short forms, and repeated --bind in order', () => {
    const r = parseArgv(['--workers', '4', 'app.js', '--timeout=2.5', '-b', ':1', '--bind=unix:/s', '-b[::1]:3', '-w8', '-t=9']);
    expect(r.problems).toEqual([]);
    expect(r.settings).toEqual({ app: 'app.js', workers: '8', timeout: '9', bind: [':1', 'unix:/s', '[::1]:3'] });
    expect(r.actions).toEqual(none);
    expect(r.configPath).toBeNull();
  });

  it('lets the last use of a single-valued option win', () => {
    expect(parseArgv(['a', '--workers', '2', '--workers', '3']).settings.workers).toBe('3');
  });

  it('reads actions as switches, with short forms, and refuses a value on them', () => {
    expect(parseArgv(['--help']).actions).toEqual({ ...none, help: true });
    expect(parseArgv(['-h', '-v']).actions).toEqual({ ...none, help: true, version: true });
    expect(parseArgv(['app.js', '--check-config']).actions).toEqual({ ...none, checkConfig: true });
    expect(parseArgv(['--check-config=yes']).problems).toEqual(['--check-config takes no value, got "yes"']);
  });

  it('finds --config and -c, which are not settings in the result', () => {
    expect(parseArgv(['--config', 'x.json', 'a']).configPath).toBe('x.json');
    const r = parseArgv(['-c', 'y.mjs', 'a']);
    expect(r.configPath).toBe('y.mjs');
    expect(r.settings).toEqual({ app: 'a' });
  });

  it('treats everything after -- as positional', () => {
    expect(parseArgv(['--', '--weird.js']).settings).toEqual({ app: '--weird.js' });
  });

  it('takes "-" and negative numbers as values, so their own validation explains them', () => {
    expect(parseArgv(['a', '--access-log', '-']).settings.access_log).toBe('-');
    expect(parseArgv(['a', '--workers', '-1']).settings.workers).toBe('-1');
  });

  it('reports an option missing its value, with an example', () => {
    expect(parseArgv(['a', '--workers']).problems).toEqual(['--workers needs a value, e.g. --workers 4']);
    expect(parseArgv(['a', '--bind', '--workers', '2']).problems).toEqual(['--bind needs a value, e.g. --bind 127.0.0.1:8000']);
    expect(parseArgv(['a', '-w']).problems).toEqual(['--workers needs a value, e.g. --workers 4']);
  });

  it('reports unknown options with the nearest real one, and keeps their value away from the app', () => {
    const r = parseArgv(['--wokers', '3', 'app.js']);
    expect(r.problems).toEqual(['unknown option --wokers; did you mean --workers?']);
    expect(r.settings).toEqual({ app: 'app.js' });
    expect(parseArgv(['a', '--max_requests=3']).problems).toEqual(['unknown option --max_requests; did you mean --max-requests?']);
    expect(parseArgv(['a', '--Workers', '2']).problems).toEqual(['unknown option --Workers; did you mean --workers?']);
    expect(parseArgv(['a', '--frobnicate']).problems).toEqual(['unknown option --frobnicate; see drover --help']);
    expect(parseArgv(['a', '-x']).problems).toEqual(['unknown option -x; see drover --help']);
  });

  it('refuses two apps, and an app given both ways', () => {
    expect(parseArgv(['a.js', 'b.js']).problems).toEqual(['expected one APP_MODULE, got 2: "a.js" "b.js"']);
    expect(parseArgv(['--app', 'a.js', 'b.js']).problems).toEqual([
      'the app is given twice: as APP_MODULE "b.js" and with --app; give one',
    ]);
    expect(parseArgv(['--app', 'a.js']).settings).toEqual({ app: 'a.js' });
  });

  it('does not throw on anything', () => {
    expect(() => parseArgv(['-', '--', '=', '--=', '-=', '---'])).not.toThrow();
  });
});
