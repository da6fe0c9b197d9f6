// numprocs: one configured companion (a group) runs as N supervised
// processes, supervisord's process_num. Each copy is a companion of its own
// to the manager and the state machine: its own name, state, pid, output and
// hash. Copies are named NAME:0 .. NAME:N-1; with numprocs 1 the one copy
// keeps the plain NAME. ":" is not allowed in a configured name, so a copy's
// name never clashes with another companion's.
//
// A copy's hash leaves numprocs out: a reread that changes only numprocs
// adds or removes copies and leaves the others running (but 1 <-> N renames
// the first copy, NAME <-> NAME:0, which restarts it).
import { hashOf, type CompanionConfig } from './config.js';

/** The environment variable that tells a copy its number (0 .. numprocs-1). */
export const PROCESS_NUM_ENV = 'DROVER_PROCESS_NUM';

export interface Copy {
  /** The configured companion's name. */
  readonly group: string;
  readonly num: number;
  /** The group's config with the copy's name, its DROVER_PROCESS_NUM and its own hash. */
  readonly config: CompanionConfig;
}

export function copyName(group: string, num: number, numprocs: number): string {
  return numprocs === 1 ? group : `${group}:${num}`;
}

export function copies(c: CompanionConfig): Copy[] {
  const { hash: _hash, numprocs, ...rest } = c;
  return Array.from({ length: numprocs }, (_, num) => {
    const fields = { ...rest, name: copyName(c.name, num, numprocs), env: Object.freeze({ ...c.env, [PROCESS_NUM_ENV]: String(num) }) };
    return { group: c.name, num, config: Object.freeze({ ...fields, numprocs, hash: hashOf(fields) }) };
  });
}

/** "w:0..w:3" for a group's copies, "w" for one: names listed in a message without 64 of them. */
export function listNames(named: ReadonlyArray<{ readonly group: string; readonly name: string }>): string {
  const out: string[] = [];
  for (let i = 0; i < named.length; ) {
    let j = i;
    while (j + 1 < named.length && named[j + 1]!.group === named[i]!.group && named[i]!.name !== named[i]!.group) j++;
    out.push(j > i + 1 ? `${named[i]!.name}..${named[j]!.name}` : named.slice(i, j + 1).map((n) => n.name).join(', '));
    i = j + 1;
  }
  return out.join(', ');
}
