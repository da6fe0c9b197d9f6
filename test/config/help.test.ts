import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ACTIONS, SETTINGS, defaultControlSocket, envOf, flagOf, helpText, parseArgv, settingByName } from '../../src/runtime/config/index.js';
import { configSchema, configTypesText } from '../../src/runtime/config/schema.js';

const text = helpText();
/** Help with line wraps undone, so a phrase split across lines still matches. */
const flat = text.replace(/\s*\n\s*/g, ' ');

describe('helpText', () => {
  it('lists every setting with its flag, short form, environment variable and default', () => {
    for (const s of SETTINGS) {
      const cli = s.sources === undefined || s.sources.includes('cli');
      const env = s.sources === undefined || s.sources.includes('env');
      // A file-only setting (companions, companion_env) is shown by its key, marked as such.
      expect(text).toContain(cli ? `${s.short ? `-${s.short}, ` : ''}${flagOf(s.name)} ${s.metavar}` : `  ${s.name} ${s.metavar}`);
      if (env) expect(flat).toContain(`env ${envOf(s.name)}`);
      else expect(flat).not.toMatch(new RegExp(`env ${envOf(s.name)}\\b`));
      if (!cli && !env) expect(flat).toContain(`${s.help} [config file only;`);
      expect(flat).toContain(`default: ${s.defaultText}]`);
      expect(flat).toContain(s.help);
    }
  });

  it('lists the actions', () => {
    for (const a of ACTIONS) expect(text).toMatch(new RegExp(`${a.short ? `-${a.short}, ` : ''}${flagOf(a.name)}\\s+\\S`));
  });

  it('states the precedence, the naming rule and the unit of durations', () => {
    expect(flat).toContain('defaults < config file < DROVER_* environment < command line');
    expect(flat).toContain('--kebab-case on the command line, snake_case in a config file, DROVER_UPPER_SNAKE in the environment');
    expect(flat).toContain('Durations are in seconds, fractions allowed');
    expect(text.startsWith('Usage: drover [OPTIONS] APP_MODULE\n')).toBe(true);
  });

  it('groups the settings in order and fits 80 columns', () => {
    const groups = [...text.matchAll(/^(\w+):$/gm)].map((m) => m[1]);
    expect(groups).toEqual(['Server', 'Workers', 'Lanes', 'Timeouts', 'Clients', 'Logging', 'Companions', 'Actions']);
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it('documents only options the parser accepts', () => {
    for (const [, flag] of text.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)) {
      expect(parseArgv([flag!, ...(ACTIONS.some((a) => flagOf(a.name) === flag) ? [] : ['x'])]).problems, flag).toEqual([]);
    }
  });

  // The help, the schema and the config types said $XDG_RUNTIME_DIR (else
  // /tmp)/drover-HASH.sock, where no socket is: an operator looking for it
  // (to point drover ctl --socket at it, or a monitor) found nothing.
  it('gives the default control socket as the path drover makes, with and without XDG_RUNTIME_DIR', () => {
    const said = settingByName('control_socket')!.defaultText;
    const hash = createHash('sha256').update('/srv/drover.config.json').digest('hex').slice(0, 8);
    const filled = said.replaceAll('$XDG_RUNTIME_DIR', '/run/user/1000').replaceAll('UID', '1000').replaceAll('HASH', hash);
    const xdg = defaultControlSocket('/srv', 'drover.config.json', { XDG_RUNTIME_DIR: '/run/user/1000' }, 1000);
    const tmp = defaultControlSocket('/srv', 'drover.config.json', {}, 1000);
    // An XDG_RUNTIME_DIR too deep for a Unix socket path: the /tmp one.
    const deep = defaultControlSocket('/srv', 'drover.config.json', { XDG_RUNTIME_DIR: `/run/${'x'.repeat(100)}` }, 1000);
    expect([xdg, tmp, deep]).toEqual([`/run/user/1000/drover/ctl-${hash}.sock`, `/tmp/drover-1000/ctl-${hash}.sock`, `/tmp/drover-1000/ctl-${hash}.sock`]);
    expect(filled).toContain(xdg);
    expect(filled).toContain(tmp);
    expect(said).toMatch(/too long for a Unix socket path/);
    expect(said).toMatch(/sha256 of the config file's absolute path \(else the working directory\)/);
    expect(flat).toContain(`default: ${said}]`);
    expect(configSchema().properties!.control_socket!.description).toContain(said);
    expect(configTypesText()).toContain(said);
  });
});
