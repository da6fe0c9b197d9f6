// A drover process imports its own program's module graph and nothing else:
// a worker that also loaded the arbiter's and the companions' graphs spent a
// third of its boot on them, and a reload waits for every new worker's boot.
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { runtimePrograms } from '../../src/runtime/programs.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The files a module loads at run time: its static value imports (not `import type`), followed through relative paths. */
function graph(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm)) {
      todo.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
    }
  }
  return new Set([...seen].map((f) => relative(ROOT, f)));
}

const moduleOf = (program: string): string => {
  const reg = runtimePrograms.find((r) => program in r.programs);
  if (!reg) throw new Error(`no registry has ${program}`);
  return fileURLToPath(reg.url);
};

describe("each program's process loads its own graph", () => {
  test('the scan follows value imports and skips type-only ones', () => {
    const g = graph(join(ROOT, 'src/runtime/worker/worker.ts'));
    expect(g.has('src/runtime/worker/connections.ts')).toBe(true);
    expect(g.has('src/runtime/lanes/route-key.ts')).toBe(true);
    // programs.ts imports every program: it is the graph the split avoids.
    const all = graph(join(ROOT, 'src/runtime/programs.ts'));
    expect(all.has('src/runtime/arbiter/arbiter.ts') && all.has('src/runtime/companions/manager.ts') && all.has('src/runtime/worker/worker.ts')).toBe(true);
  });

  test('every runtime program lives in a registry of its own module', () => {
    expect(relative(ROOT, moduleOf('worker'))).toBe('src/runtime/worker/worker.ts');
    expect(moduleOf('slow-worker')).toBe(moduleOf('worker'));
    expect(relative(ROOT, moduleOf('companion-manager'))).toBe('src/runtime/companions/manager.ts');
    expect(relative(ROOT, moduleOf('companion-module'))).toBe('src/runtime/companions/module.ts');
  });

  test("a worker does not load the arbiter's or the companions' code", () => {
    const g = [...graph(moduleOf('worker'))];
    expect(g.filter((f) => f.startsWith('src/runtime/arbiter/') || f.startsWith('src/runtime/companions/') || f === 'src/runtime/programs.ts')).toEqual([]);
  });

  test("the companion manager does not load the arbiter's or a worker's code", () => {
    const g = [...graph(moduleOf('companion-manager'))];
    expect(g.filter((f) => f.startsWith('src/runtime/arbiter/') || f.startsWith('src/runtime/worker/') || f === 'src/runtime/programs.ts')).toEqual([]);
  });

  test("a module companion loads only what starts the user's module", () => {
    const g = [...graph(moduleOf('companion-module'))].filter((f) => f.startsWith('src/runtime/'));
    expect(g).toEqual(['src/runtime/companions/module.ts']);
  });
});
