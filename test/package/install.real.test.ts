// drover as a user gets it: `npm pack`, then `npm install --omit=dev` of the
// tarball in an empty project, then the installed command and API. Slow (a
// build and an install), and part of the normal suite on purpose: a package
// that cannot start when installed is the failure this file exists to catch.
//
// The pack runs in a copy of the checkout (node_modules linked, for tsc and
// tsx): `prepack` builds dist/, and a dist/ appearing in the checkout while
// other test files start bin/drover.js would be run half-written.
import { spawn, type SpawnOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, get, group } from '../runtime/drover.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };

interface Run { code: number | null; signal: string | null; out: string; err: string }

/** A nested npm must act as a user's, not as the `npm test` that may be running us. */
function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Runs a command in its own process group, killed whole when it ends or at the deadline. */
function run(cmd: string, args: string[], opts: SpawnOptions & { timeout?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: userEnv(), ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const kill = (): void => {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    };
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`${cmd} ${args.join(' ')} took over ${opts.timeout ?? 120_000} ms:\n${out}${err}`));
    }, opts.timeout ?? 120_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      kill();
      resolve({ code, signal, out, err });
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'drover-pkg-'));
const project = join(tmp, 'project');
let tarball = '';
let files: string[] = [];

beforeAll(async () => {
  const copy = join(tmp, 'checkout');
  mkdirSync(copy);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'bin', 'src', 'scripts', 'schema', 'deploy']) {
    if (existsSync(join(ROOT, f))) cpSync(join(ROOT, f), join(copy, f), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  const packed = await run('npm', ['pack', '--pack-destination', tmp], { cwd: copy, timeout: 240_000 });
  expect(packed.code, packed.out + packed.err).toBe(0);
  tarball = join(tmp, `drover-${PKG.version}.tgz`);
  expect(existsSync(tarball)).toBe(true);
  files = (await run('tar', ['tzf', tarball])).out.split('\n').filter((l) => l !== '');

  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'a-user-project', private: true, type: 'module' }));
  const installed = await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project, timeout: 240_000 });
  expect(installed.code, installed.out + installed.err).toBe(0);
  writeFileSync(join(project, 'app.js'), 'export default (req, res) => res.end(`hello from ${process.pid}`);\n');
}, 480_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bin = (): string => join(project, 'node_modules', '.bin', 'drover');

describe('the tarball', () => {
  test('holds the build, the bin, the schema, the deploy files and the README, and no sources, tests or benchmarks', () => {
    // deploy/: the README builds the image with `docker build -f node_modules/drover/deploy/Dockerfile`.
    for (const f of ['package/package.json', 'package/README.md', 'package/bin/drover.js', 'package/dist/cli/drover.js', 'package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/os/node/entry.js', 'package/schema/drover.config.schema.json', 'package/deploy/Dockerfile', 'package/deploy/drover.service']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => !/^package\/(bin|deploy|dist|schema)\/|^package\/(package\.json|README\.md|LICENSE)$/.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  test('installs without a single devDependency', () => {
    const nm = join(project, 'node_modules');
    expect(Object.keys(PKG.devDependencies).filter((d) => existsSync(join(nm, d)))).toEqual([]);
    expect(readdirSync(join(nm, 'drover')).sort()).toEqual(expect.arrayContaining(['bin', 'dist', 'package.json', 'schema']));
    expect(existsSync(join(nm, 'drover', 'src'))).toBe(false);
  });

  test("the worker's entry is one file: it imports builtins and packages only, and its own paths stay inside the package", () => {
    const dist = join(project, 'node_modules', 'drover', 'dist');
    const text = readFileSync(join(dist, 'cli', 'worker-entry.js'), 'utf8');
    expect(text).toContain('var workerPrograms');
    const specifiers = [...text.matchAll(/^import\s[^;]*?from\s+"([^"]+)"|\bimport\(\s*"([^"]+)"/gm)].map((m) => m[1] ?? m[2]);
    expect(specifiers.length).toBeGreaterThan(0);
    expect(specifiers.filter((s) => s!.startsWith('.') || s!.startsWith('/'))).toEqual([]);
    // Each bundled module's import.meta.url, rewritten relative to the bundle: every one names a file of the build.
    const own = [...text.matchAll(/new URL\("([^"]+)", import\.meta\.url\)/g)].map((m) => m[1]!);
    expect(own).toContain('../runtime/worker/worker.js');
    expect(own.filter((p) => !existsSync(join(dist, 'cli', p)))).toEqual([]);
  });
});

describe('the installed command', () => {
  test('--version names drover\'s version and Node\'s', async () => {
    const r = await run(bin(), ['--version'], { cwd: project });
    expect(r).toMatchObject({ code: 0, out: `drover ${PKG.version} (node ${process.version})\n` });
  });

  test('--check-config loads the app', async () => {
    const r = await run(bin(), ['app.js', '--check-config'], { cwd: project });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/app OK: .*app\.js loads/);
  });

  test('serves an app, answers drover ctl, runs no TypeScript loader, and stops on TERM with exit 0 and nothing left', async () => {
    const port = await freePort();
    const p = spawn(bin(), ['app.js', '-b', `127.0.0.1:${port}`, '-w', '2', '--lanes', 'off'], { cwd: project, env: userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    const exit = new Promise<{ code: number | null; signal: string | null }>((r) => p.on('exit', (code, signal) => r({ code, signal })));
    try {
      const end = Date.now() + 30_000;
      while ((log.match(/booted/g) ?? []).length < 2) {
        if (Date.now() > end) throw new Error(`drover did not boot:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const r = await get(port);
      expect(r.status).toBe(200);
      const worker = Number(/^hello from (\d+)$/.exec(r.body)?.[1]);
      // The worker runs the build (its title hides its argv; the registry it was handed says where its code is).
      const environ = readFileSync(`/proc/${worker}/environ`, 'latin1').split('\0');
      const registries = environ.find((v) => v.startsWith('DROVER_REGISTRIES='));
      expect(registries).toMatch(/node_modules\/drover\/dist\/runtime\/programs\.js/);
      // The worker's registry names its one-file entry, which spawn runs when the file is there (it is: see the tarball's test).
      expect(registries).toMatch(/"entry":"file:[^"]*node_modules\/drover\/dist\/cli\/worker-entry\.js"/);
      expect(registries).not.toMatch(/\.ts"/);

      const ctl = await run(bin(), ['ctl', 'version'], { cwd: project });
      expect(ctl.code, ctl.err).toBe(0);
      expect(ctl.out).toContain(`drover ${PKG.version}`);

      process.kill(p.pid!, 'SIGTERM');
      expect(await exit).toEqual({ code: 0, signal: null });
      expect(group(p.pid!)).toEqual([]);
      expect(log).not.toMatch(/ERROR|Error:/);
    } finally {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        // stopped
      }
      await exit;
    }
  }, 60_000);

  test('drover sim runs on the installed package (memfs is a dependency; fast-check, only for shrinking, is not)', async () => {
    const r = await run(bin(), ['sim', '--seed', '1', '--duration', '2'], { cwd: project, timeout: 60_000 });
    expect(r.code, r.out + r.err).toBe(0);
  }, 60_000);
});

describe('the installed API', () => {
  test('import { start, defineConfig } from "drover": ready, serve, reload, stop', async () => {
    const port = await freePort();
    writeFileSync(join(project, 'use-api.js'), `
      import { get } from 'node:http';
      import { defineConfig, start, version } from 'drover';
      // A new connection each time: a kept-alive one may still reach a draining worker of the old generation.
      const fetch = (url) => new Promise((resolve, reject) => get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ text: async () => body }));
      }).on('error', reject));
      const s = start({ config: defineConfig({ app: 'app.js', bind: '127.0.0.1:${port}', workers: 1, lanes: false }), stdio: 'pipe' });
      try {
        await s.ready;
        const first = await (await fetch(s.addresses[0])).text();
        await s.reload();
        const second = await (await fetch(s.addresses[0])).text();
        await s.stop();
        console.log(JSON.stringify({ version, addresses: s.addresses, generation: s.generation, first, second, exit: await s.exited }));
      } finally {
        await s.stop();
      }
    `);
    const r = await run(process.execPath, ['use-api.js'], { cwd: project, timeout: 60_000 });
    expect(r.code, r.err).toBe(0);
    const got = JSON.parse(r.out) as { version: string; addresses: string[]; generation: number; first: string; second: string; exit: unknown };
    expect(got).toMatchObject({ version: PKG.version, addresses: [`http://127.0.0.1:${port}`], generation: 2, exit: { code: 0, signal: null } });
    expect(got.first).toMatch(/^hello from \d+$/);
    expect(got.second).not.toBe(got.first); // a new worker after the reload
  }, 60_000);

  test('the package exports its types and its schema', async () => {
    const dts = readFileSync(join(project, 'node_modules', 'drover', 'dist', 'index.d.ts'), 'utf8');
    expect(dts).toMatch(/defineConfig/);
    expect(dts).toMatch(/start/);
    const r = await run(process.execPath, ['--input-type=module', '-e', `
      import { createRequire } from 'node:module';
      const schema = createRequire(import.meta.url)('drover/schema.json');
      console.log(schema.title);
    `], { cwd: project });
    expect(r).toMatchObject({ code: 0, out: 'drover config file\n' });
  });
});
