// bin/drover.js chooses what to run: an installed package runs dist/; a
// checkout runs dist/ only when dist/cli/drover.js is at least as new as
// everything under src/, else the sources through tsx. Played here on a
// fake package whose two entries say which one ran.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = new Date('2026-01-01T00:00:00Z');
const later = (s: number): Date => new Date(T0.getTime() + s * 1000);

/** A package with bin/drover.js and whichever of src/ and dist/ are asked for, every mtime T0. */
function fake(parts: { src?: boolean; dist?: boolean; tsx?: boolean }): string {
  const d = mkdtempSync(join(tmpdir(), 'drover-bin-'));
  dirs.push(d);
  mkdirSync(join(d, 'bin'));
  for (const f of ['drover.js', 'newest.js']) copyFileSync(join(ROOT, 'bin', f), join(d, 'bin', f));
  writeFileSync(join(d, 'package.json'), '{"type":"module"}');
  const put = (p: string, text: string): void => {
    mkdirSync(join(d, p, '..'), { recursive: true });
    writeFileSync(join(d, p), text);
  };
  if (parts.src) {
    put('src/cli/drover.ts', "const who: string = 'sources'; console.log(who);\n");
    put('src/runtime/x.ts', 'export {};\n');
  }
  if (parts.dist) put('dist/cli/drover.js', "console.log('dist');\n");
  if (parts.tsx) symlinkSync(join(ROOT, 'node_modules'), join(d, 'node_modules'));
  for (const p of ['src/runtime/x.ts', 'src/cli/drover.ts', 'src/runtime', 'src/cli', 'src', 'dist/cli/drover.js']) {
    try {
      utimesSync(join(d, p), T0, T0);
    } catch {
      // not in this fake
    }
  }
  return d;
}

function run(d: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(d, 'bin', 'drover.js')], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('installed (no src/): dist/ runs', () => {
  expect(run(fake({ dist: true }))).toMatchObject({ code: 0, out: 'dist\n' });
});

test('a checkout whose build is at least as new as every source runs dist/', () => {
  const d = fake({ src: true, dist: true, tsx: true });
  expect(run(d)).toMatchObject({ code: 0, out: 'dist\n' }); // equal mtimes: current
  utimesSync(join(d, 'dist/cli/drover.js'), later(5), later(5));
  expect(run(d)).toMatchObject({ code: 0, out: 'dist\n' });
});

test('a checkout with a source newer than the build runs the sources, however deep the edit', () => {
  const d = fake({ src: true, dist: true, tsx: true });
  utimesSync(join(d, 'src/runtime/x.ts'), later(1), later(1));
  expect(run(d)).toMatchObject({ code: 0, out: 'sources\n' });
});

test('a source deleted after the build counts as an edit (its directory changed)', () => {
  const d = fake({ src: true, dist: true, tsx: true });
  rmSync(join(d, 'src/runtime/x.ts'));
  utimesSync(join(d, 'dist/cli/drover.js'), T0, T0);
  expect(run(d)).toMatchObject({ code: 0, out: 'sources\n' });
});

test('a checkout without a build runs the sources', () => {
  expect(run(fake({ src: true, tsx: true }))).toMatchObject({ code: 0, out: 'sources\n' });
});

test('stale dist/ and no tsx: a refusal naming both fixes, never the stale build', () => {
  const d = fake({ src: true, dist: true });
  utimesSync(join(d, 'src/cli/drover.ts'), later(1), later(1));
  const r = run(d);
  expect(r.code).toBe(1);
  expect(r.out).toBe('');
  expect(r.err).toMatch(/^drover: src\/ is newer than dist\/ in .*needs tsx.*`npm run build`.*`npm install`/);
});

test('no dist/ and no src/: a refusal saying the package was packed without its build', () => {
  const r = run(fake({}));
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/dist\/cli\/drover\.js is missing: this package was packed without its build/);
});
