// The command line: `drover [OPTIONS] APP_MODULE`. Forms: `--workers 4`,
// `--workers=4`, `-w 4`, `-w4`, repeatable `--bind`, `--` ends the options.
// Scanning never throws: unknown flags and missing values become problems,
// so they are reported together with every other problem, and so --help
// still works on a command line that has mistakes in it.

import { closest, flagOf, show } from './names.js';
import { ACTIONS, SETTINGS, allowedFrom, settingByName } from './settings.js';
import type { ActionSpec, RawEntry, Scan, SettingSpec } from './types.js';

export interface Actions {
  help: boolean;
  version: boolean;
  checkConfig: boolean;
}

export interface ArgvScan extends Scan {
  readonly actions: Actions;
  readonly configPath: string | null;
}

type Option = { kind: 'setting'; spec: SettingSpec } | { kind: 'action'; spec: ActionSpec };

const LONG = new Map<string, Option>();
const SHORT = new Map<string, Option>();
for (const spec of SETTINGS) {
  if (!allowedFrom(spec, 'cli')) continue;
  LONG.set(flagOf(spec.name), { kind: 'setting', spec });
  if (spec.short) SHORT.set(`-${spec.short}`, { kind: 'setting', spec });
}
for (const spec of ACTIONS) {
  LONG.set(flagOf(spec.name), { kind: 'action', spec });
  if (spec.short) SHORT.set(`-${spec.short}`, { kind: 'action', spec });
}
// Without the leading dashes, which every candidate shares and which would loosen the match.
const LONG_NAMES = [...LONG.keys()].map((f) => f.slice(2));

/**
 * A token that can be an option's value. A leading dash usually means the
 * value was forgotten (`--workers --bind x`), but '-' is a value (stderr)
 * and so is a negative number, which then fails validation with a message
 * about the number rather than about a missing value.
 */
function isValue(tok: string | undefined): tok is string {
  return tok !== undefined && (!tok.startsWith('-') || tok === '-' || /^-[\d.]/.test(tok));
}

export function scanArgv(argv: readonly string[]): ArgvScan {
  const entries: RawEntry[] = [];
  const problems: string[] = [];
  const actions: Actions = { help: false, version: false, checkConfig: false };
  const positionals: string[] = [];
  let configPath: string | null = null;
  let unknown = false;
  const binds: string[] = [];

  const set = (spec: SettingSpec, flag: string, value: string): void => {
    if (spec.name === 'config') configPath = value;
    if (spec.repeatable) binds.push(value);
    else entries.push({ name: spec.name, raw: value, text: true, kind: 'cli', source: flag });
  };

  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith('-') || tok === '-') {
      positionals.push(tok);
      continue;
    }
    let name: string;
    let inline: string | null = null;
    let opt: Option | undefined;
    if (tok.startsWith('--')) {
      const eq = tok.indexOf('=');
      name = eq < 0 ? tok : tok.slice(0, eq);
      if (eq >= 0) inline = tok.slice(eq + 1);
      opt = LONG.get(name);
    } else {
      name = tok.slice(0, 2);
      opt = SHORT.get(name);
      if (tok.length > 2) inline = tok[2] === '=' ? tok.slice(3) : tok.slice(2);
    }
    if (opt === undefined) {
      unknown = true;
      // A real setting that only a file can hold (companions, companion_env): say so rather than guess.
      const fileOnly = tok.startsWith('--') ? settingByName(name.slice(2).replace(/-/g, '_')) : undefined;
      if (fileOnly !== undefined && !allowedFrom(fileOnly, 'cli')) {
        problems.push(`${name}: ${fileOnly.name} can be set only in a config file`);
        if (inline === null && isValue(argv[i + 1])) i++;
        continue;
      }
      const near = closest(name.replace(/^-+/, '').replace(/_/g, '-').toLowerCase(), LONG_NAMES);
      problems.push(`unknown option ${name}${near === null ? '; see drover --help' : `; did you mean --${near}?`}`);
      // `--wokers 4`: the 4 belongs to the misspelt option, not to the app.
      const nearOpt = near === null ? undefined : LONG.get(`--${near}`);
      if (inline === null && nearOpt?.kind === 'setting' && isValue(argv[i + 1])) i++;
      continue;
    }
    const flag = flagOf(opt.spec.name);
    if (opt.kind === 'action') {
      if (inline !== null) problems.push(`${flag} takes no value, got ${show(inline)}`);
      else if (opt.spec.name === 'check_config') actions.checkConfig = true;
      else actions[opt.spec.name] = true;
      continue;
    }
    if (inline === null) {
      if (!isValue(argv[i + 1])) {
        problems.push(`${flag} needs a value, e.g. ${flag} ${opt.spec.example}`);
        continue;
      }
      inline = argv[++i]!;
    }
    set(opt.spec, flag, inline);
  }

  if (binds.length > 0) entries.push({ name: 'bind', raw: binds, text: true, kind: 'cli', source: '--bind' });
  // Several positionals after an unknown option are most likely its values: that problem is already reported.
  if (positionals.length > 1 && !unknown) {
    problems.push(`expected one APP_MODULE, got ${positionals.length}: ${positionals.map(show).join(' ')}`);
  }
  const app = positionals[positionals.length - 1];
  if (app !== undefined) {
    if (entries.some((e) => e.name === 'app')) problems.push(`the app is given twice: as APP_MODULE ${show(app)} and with --app; give one`);
    else entries.push({ name: 'app', raw: app, text: true, kind: 'cli', source: 'APP_MODULE' });
  }
  return { entries, problems, actions, configPath };
}

/**
 * The command line read but not validated: raw values by setting name (the
 * last use wins; bind is the list of every use), the actions, and the config
 * file it names. resolveConfig reports the problems; they are here too for a
 * caller that wants them early.
 */
export function parseArgv(argv: readonly string[]): {
  settings: Record<string, unknown>;
  actions: Actions;
  configPath: string | null;
  problems: string[];
} {
  const scan = scanArgv(argv);
  const settings: Record<string, unknown> = {};
  for (const e of scan.entries) if (e.name !== 'config') settings[e.name] = e.raw;
  return { settings, actions: scan.actions, configPath: scan.configPath, problems: scan.problems };
}
