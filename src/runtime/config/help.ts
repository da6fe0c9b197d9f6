// `drover --help`, generated from the table so it cannot drift from what
// the parser accepts.

import { envOf, flagOf } from './names.js';
import { ACTIONS, SETTINGS, allowedFrom } from './settings.js';
import type { Group, SettingSpec } from './types.js';

const WIDTH = 80;
const COL = 28;

function wrap(text: string, indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** `left` in the first column, `text` wrapped in the second. */
function entry(left: string, text: string): string {
  const pad = ' '.repeat(COL);
  const body = wrap(text, COL);
  const first = `  ${left}`;
  const head = first.length < COL - 1 ? first.padEnd(COL) + body[0] : `${first}\n${pad}${body[0]}`;
  return [head, ...body.slice(1).map((l) => pad + l)].join('\n');
}

function usage(s: SettingSpec): string {
  // A setting with no flag is shown by its file key.
  if (!allowedFrom(s, 'cli')) return `    ${s.name} ${s.metavar}`;
  const short = s.short ? `-${s.short}, ` : '    ';
  return `${short}${flagOf(s.name)} ${s.metavar}`;
}

function where(s: SettingSpec): string {
  const parts = [];
  if (allowedFrom(s, 'env')) parts.push(`env ${envOf(s.name)}`);
  if (!allowedFrom(s, 'file')) parts.push('not in a config file');
  if (!allowedFrom(s, 'cli') && !allowedFrom(s, 'env')) parts.push('config file only');
  parts.push(`default: ${s.defaultText}`);
  return `[${parts.join('; ')}]`;
}

const GROUPS: readonly Group[] = ['Server', 'Workers', 'Lanes', 'Timeouts', 'Clients', 'Logging', 'Companions'];

export function helpText(): string {
  const out: string[] = [
    'Usage: drover [OPTIONS] APP_MODULE',
    '',
    ...wrap(
      'Serves APP_MODULE, a module whose default export is a Node request listener (req, res) or an async factory of one, from a pool of worker processes supervised by one arbiter.',
      0,
    ),
    '',
    ...wrap(
      'Every setting has one name: --kebab-case on the command line, snake_case in a config file, DROVER_UPPER_SNAKE in the environment. Precedence, lowest to highest: defaults < config file < DROVER_* environment < command line; a higher source replaces a value whole (a --bind list replaces the file\'s). Durations are in seconds, fractions allowed.',
      0,
    ),
  ];
  for (const g of GROUPS) {
    out.push('', `${g}:`);
    for (const s of SETTINGS.filter((x) => x.group === g)) {
      out.push(entry(usage(s), `${s.help} ${where(s)}`));
    }
  }
  out.push('', 'Actions:');
  for (const a of ACTIONS) out.push(entry(`${a.short ? `-${a.short}, ` : '    '}${flagOf(a.name)}`, a.help));
  out.push('', ...wrap('Signals to the arbiter: HUP reload, TERM graceful stop, INT or QUIT quick stop, TTIN/TTOU one worker more/fewer, USR1 reopen logs.', 0));
  out.push('', ...wrap('Control: drover ctl [--config FILE | --socket PATH] [--json] COMMAND talks to the running drover through its control socket: stats (the request lanes), and for companions status, start, stop, restart, reread, signal, pid, tail (drover ctl help for more).', 0));
  out.push('', ...wrap('Chaos: drover sim [--seeds N | --seed SEED] [--scenario NAME] [--jobs N] runs seeded fault scenarios of drover on the simulated kernel and checks its invariants (drover sim --help for more).', 0));
  return out.map((l) => l.split('\n').map((x) => x.trimEnd()).join('\n')).join('\n') + '\n';
}
