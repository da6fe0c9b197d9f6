// A registry with a one-file entry (ProgramRegistry.entry), as the worker's
// is in a build, and one whose entry was never built.
import { programs, type Os } from '../../src/os/types.js';

/** Says where the process started and by which copy of the registry its program was found. */
export const report = (os: Os, via: 'preloaded' | 'imported') => {
  const g = globalThis as { droverTestEntry?: string };
  os.channel!.send({ entry: g.droverTestEntry ?? null, argv1: process.argv[1], via });
};

export const oneFileRegistry = programs(import.meta.url, { 'where-started': (os) => report(os, 'imported') }, { entry: new URL('./one-file-entry.ts', import.meta.url).href });
export const unbuiltRegistry = programs(import.meta.url, { 'where-started-unbuilt': (os) => report(os, 'imported') }, { entry: new URL('./never-built-entry.js', import.meta.url).href });
