// The module a spawned drover program starts on:
//   node --import <early> [--import tsx] entry.ts <program> [args...]
// with the plumbing in the environment (plumbing.ts).

import { inspect } from 'node:util';
import type { ProgramFn, ProgramRegistry } from '../types.js';
import { IpcChannel } from './channel.js';
import { takeEarlyMessages } from './early.js';
import { ParentCopies } from './handoff.js';
import { NodeListener } from './listener.js';
import { NodeOs } from './os.js';
import { PRELOADED, takePlumbing, type RegistryRef } from './plumbing.js';
import { SignalTable } from './signals.js';
import { keepStdio } from './stdio.js';

function fail(what: string, e: unknown): never {
  process.stderr.write(`drover: ${what}: ${e instanceof Error ? inspect(e) : String(e)}\n`);
  process.exit(1);
}

// Before anything can write: a reader of our stdout or stderr that goes away must not end this process (stdio.ts).
keepStdio();

const [name = '', ...args] = process.argv.slice(2);

const signals = new SignalTable();
// Takes over from the early guard: USR1 with no handler is ignored.
signals.set('SIGUSR1', null);

const plumbing = takePlumbing(process.env);
const early = takeEarlyMessages();
// Only a channel the drover parent opened: process.send alone could be anyone's.
const channel = plumbing.channel && process.send ? new IpcChannel(process, early) : null;
// Where a paused listener gets a fresh descriptor to resume with, and a new
// socket its copies: the parent, over the channel.
const copies = channel ? new ParentCopies(process, channel) : null;
const os = new NodeOs({
  registries: plumbing.registries,
  args,
  parentPid: plumbing.parentPid ?? process.ppid,
  channel,
  copies,
  listeners: plumbing.listeners.map((l, i) => new NodeListener(l.address, l.backlog, 3 + i, copies ? { fromParent: () => copies.copy(i) } : {})),
  signals,
});

// Asked for by the spawner: armed here too, for where setpriv is missing (the kernel's, when there, comes first).
if (plumbing.parentDeathSignal) os.setParentDeathSignal(plumbing.parentDeathSignal);

const program = await load(plumbing.registries, name).catch((e: unknown) => fail(`cannot load program "${name}"`, e));

// Not awaited at top level: a program whose promise never settles must not
// make Node exit 13. The process ends when its loop is empty, as any Node
// program does.
try {
  const r: unknown = program(os, args);
  if (typeof (r as Promise<void> | undefined)?.then === 'function') {
    (r as Promise<void>).then(undefined, (e: unknown) => fail(`program "${name}" failed`, e));
  }
} catch (e) {
  fail(`program "${name}" failed`, e);
}

async function load(registries: readonly RegistryRef[], wanted: string): Promise<ProgramFn> {
  const ref = registries.find((r) => r.names.includes(wanted));
  if (!ref) throw new Error(`no registry holds "${wanted}"`);
  // Started through a one-file entry (ProgramRegistry.entry): the registry is in it.
  const pre = (globalThis as { [PRELOADED]?: readonly ProgramRegistry[] })[PRELOADED]?.find((r) => r.url === ref.url);
  if (pre?.programs[wanted]) return pre.programs[wanted];
  const mod = (await import(ref.url)) as Record<string, unknown>;
  // The module may export its registry under any name.
  const found = Object.values(mod).filter(isRegistry);
  const holding = found.filter((r) => wanted in r.programs);
  const reg = holding.find((r) => r.url === ref.url) ?? holding[0];
  const fn = reg?.programs[wanted];
  if (!fn) throw new Error(`${ref.url} exports no registry with "${wanted}"`);
  return fn;
}

function isRegistry(v: unknown): v is ProgramRegistry {
  const r = v as Partial<ProgramRegistry> | null;
  return typeof r === 'object' && r !== null && typeof r.url === 'string' && typeof r.programs === 'object' && r.programs !== null;
}
