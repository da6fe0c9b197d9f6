// The layer rule (DESIGN.md, "Layers"): src/runtime and src/sim reach the
// world only through the Os object they are handed, so the same code runs on
// the real OS and in the deterministic simulator.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
// The files that must touch the host's globals: app-globals.ts swaps setTimeout,
// Date and friends for a simulated process's virtual ones while that process
// runs; net-guard.ts wraps node:net, http, dns, fetch... so that a simulated
// process that reaches for the host's network fails at the call.
const HOST_GLOBALS = ['src/sim/app-globals.ts', 'src/sim/net-guard.ts'];
const FORBIDDEN_MODULES = ['child_process', 'net', 'fs', 'fs/promises', 'timers', 'timers/promises', 'dgram', 'worker_threads', 'cluster'];
const FORBIDDEN = [
  { re: /\bDate\b/, why: 'Date (use os.now() / os.wallTime())' },
  { re: /\bMath\.random\b/, why: 'Math.random (use os.random())' },
  // A method of the same name (stream.setTimeout) is not the global.
  { re: /(?<![.\w$])(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|clearImmediate)\b/, why: 'a global timer (use os.timer() / os.sleep())' },
  { re: /\bprocess\s*\./, why: 'process.* (use the Os object)' },
  { re: /\bperformance\s*\./, why: 'performance.* (use os.now())' },
  { re: /\bglobalThis\b/, why: 'globalThis (reach the world through Os)' },
];

/** Blank out comments and string/template contents, keeping line numbers. */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g,
    (m) => (m.startsWith('/') ? m.replace(/[^\n]/g, ' ') : m[0] + m.slice(1, -1).replace(/[^\n]/g, ' ') + m[0]));
}

export function violations(src: string): string[] {
  const found: string[] = [];
  const lines = src.split('\n');
  lines.forEach((line, i) => {
    const m = /\bfrom\s+['"](?:node:)?([\w/]+)['"]|\bimport\s*\(\s*['"](?:node:)?([\w/]+)['"]|\brequire\s*\(\s*['"](?:node:)?([\w/]+)['"]/.exec(line);
    const mod = m && (m[1] ?? m[2] ?? m[3]);
    if (mod && FORBIDDEN_MODULES.includes(mod)) found.push(`${i + 1}: imports node:${mod}`);
  });
  code(src).split('\n').forEach((line, i) => {
    for (const f of FORBIDDEN) if (f.re.test(line)) found.push(`${i + 1}: uses ${f.why}`);
  });
  return found;
}

function sources(dir: string): string[] {
  let out: string[] = [];
  let names: string[];
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(sources(p));
    else if (/\.(ts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

describe('layer rule', () => {
  test('the scan catches each forbidden use and ignores comments and strings', () => {
    expect(violations(`import { spawn } from 'node:child_process';`)).toEqual(['1: imports node:child_process']);
    expect(violations(`import * as fs from "fs";`)).toEqual(['1: imports node:fs']);
    expect(violations(`const m = await import('node:net');`)).toEqual(['1: imports node:net']);
    expect(violations(`const t = Date.now();`)).toHaveLength(1);
    expect(violations(`const r = Math.random();`)).toHaveLength(1);
    expect(violations(`setImmediate(fn);`)).toHaveLength(1);
    expect(violations(`globalThis.setTimeout(fn, 1);`)).toEqual(['1: uses globalThis (reach the world through Os)']);
    expect(violations(`socket.setTimeout(5000);`)).toEqual([]);
    expect(violations(`const p = process.pid;`)).toHaveLength(1);
    expect(violations(`const t = performance.now();`)).toHaveLength(1);
    expect(violations(`// Date.now() and process.exit are mentioned here\nconst s = 'process.env';`)).toEqual([]);
    expect(violations(`/* setTimeout */ const x = os.now();`)).toEqual([]);
    expect(violations(`import type { Duplex } from 'node:stream';`)).toEqual([]);
  });

  // src/chaos runs on the simulated kernel too: a run must be its seed and nothing else.
  for (const layer of ['src/runtime', 'src/sim', 'src/chaos']) {
    test(`${layer} reaches the world only through Os`, () => {
      const bad: string[] = [];
      for (const file of sources(join(ROOT, layer))) {
        if (HOST_GLOBALS.includes(relative(ROOT, file))) continue;
        for (const v of violations(readFileSync(file, 'utf8'))) bad.push(`${relative(ROOT, file)}:${v}`);
      }
      expect(bad).toEqual([]);
    });
  }

  test('src/sim imports src/runtime only from src/sim/chaos', () => {
    const bad: string[] = [];
    for (const file of sources(join(ROOT, 'src/sim'))) {
      if (file.includes('/src/sim/chaos/')) continue;
      if (/from\s+['"][./]*\/runtime\//.test(readFileSync(file, 'utf8'))) bad.push(relative(ROOT, file));
    }
    expect(bad).toEqual([]);
  });
});
