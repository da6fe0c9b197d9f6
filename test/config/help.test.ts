import { describe, expect, it } from 'vitest';
import { ACTIONS, SETTINGS, envOf, flagOf, helpText, parseArgv } from '../../src/runtime/config/index.js';

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
});
