// A config file's content, already loaded (load.ts): an object of settings
// under their snake_case names. Values are typed: `workers: "4"` is a type
// error here, where `DROVER_WORKERS=4` is not.
//
// Besides settings, the main file may hold sections that are not settings:
// `sim`, the request mix of `drover sim --config FILE` (src/chaos/mix.ts reads
// and checks it). The server skips them whole: no entry, no check, so a run
// of the server never depends on them.

import { closest, flagOf, show, snake, typeName } from './names.js';
import { ACTIONS, SETTING_NAMES, allowedFrom, settingByName } from './settings.js';
import type { RawEntry, Scan, SettingName } from './types.js';

/** Keys of the main config file that are sections read by other commands, not settings. */
export const FILE_SECTIONS = ['sim'] as const;

export function scanFile(file: { path: string; data: unknown }): Scan {
  const entries: RawEntry[] = [];
  const problems: string[] = [];
  const { path, data } = file;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    problems.push(`${path}: expected an object of settings, e.g. { "workers": 4 }, got ${show(data)} (${typeName(data)})`);
    return { entries, problems };
  }
  for (const [key, raw] of Object.entries(data)) {
    // `workers: process.env.X ? 8 : undefined` in a JS config means "not set here".
    if (raw === undefined) continue;
    if ((FILE_SECTIONS as readonly string[]).includes(key)) continue;
    const spec = settingByName(key);
    if (spec !== undefined && allowedFrom(spec, 'file')) {
      entries.push({ name: spec.name, raw, text: false, kind: 'file', source: path });
      continue;
    }
    if (spec !== undefined) {
      problems.push(`"${key}" cannot be set in a config file (${path}); use ${flagOf(key)} or DROVER_${key.toUpperCase()}`);
      continue;
    }
    const action = ACTIONS.find((a) => a.name === snake(key));
    if (action !== undefined) {
      problems.push(`"${key}" in ${path}: ${flagOf(action.name)} is a command-line action, not a setting; remove it`);
      continue;
    }
    const normal = snake(key);
    const names: readonly string[] = [...SETTING_NAMES, ...FILE_SECTIONS];
    const near = names.includes(normal) ? normal : closest(normal, names);
    problems.push(`unknown setting "${key}" in ${path}; ${near === null ? 'see drover --help for the settings' : `did you mean "${near}"?`}`);
  }
  return { entries, problems };
}

/** What a companions file may set: the list and its defaults. */
const COMPANIONS_FILE_KEYS: readonly SettingName[] = SETTING_NAMES.filter((n) => n === 'companions' || n.startsWith('companion_'));

/**
 * A companions file (the companions_file setting): a list of companions, or
 * an object with `companions` and any companion_* defaults. Other settings
 * belong in the main config file, so they are refused here rather than read
 * from a second place.
 */
export function scanCompanionsFile(file: { path: string; data: unknown }): Scan {
  const { path, data } = file;
  if (Array.isArray(data)) return { entries: [{ name: 'companions', raw: data, text: false, kind: 'file', source: path }], problems: [] };
  const entries: RawEntry[] = [];
  const problems: string[] = [];
  if (data === null || typeof data !== 'object') {
    problems.push(`${path}: expected a list of companions, or an object { "companions": [...] } with companion_* settings, got ${show(data)} (${typeName(data)})`);
    return { entries, problems };
  }
  for (const [key, raw] of Object.entries(data)) {
    if (raw === undefined) continue;
    const spec = settingByName(key);
    if (spec !== undefined && COMPANIONS_FILE_KEYS.includes(spec.name)) {
      entries.push({ name: spec.name, raw, text: false, kind: 'file', source: path });
    } else if (spec !== undefined || (FILE_SECTIONS as readonly string[]).includes(key)) {
      problems.push(`"${key}" cannot be set in a companions file (${path}); set it in the main config file`);
    } else {
      const normal = snake(key);
      const near = COMPANIONS_FILE_KEYS.includes(normal as never) ? normal : closest(normal, COMPANIONS_FILE_KEYS);
      problems.push(`unknown setting "${key}" in companions file ${path}; ${near === null ? `a companions file holds ${COMPANIONS_FILE_KEYS.join(', ')}` : `did you mean "${near}"?`}`);
    }
  }
  return { entries, problems };
}
