// drover --check-config loads the app as well as the settings: in a process
// of its own, so an app that throws, exits or hangs at import costs only
// that process, and the verdict is the one a boot would give (exit 4). And
// drover --version names drover's and Node's versions.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { alive } from '../os/helpers.js';
import { APPS, perTest } from './drover.js';

const { drover, dir } = perTest();
const VERSION = (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

async function check(app: string, ...more: string[]): Promise<{ code: number | null; log: string }> {
  const d = drover([app, '--check-config', ...more]);
  const { code } = await d.exited(20_000);
  return { code, log: d.log() };
}

function app(text: string, name = 'app.mjs'): string {
  const p = join(dir(), name);
  writeFileSync(p, text);
  return p;
}

test('a good app: exit 0, the config line and what the app exports', async () => {
  const path = join(APPS, 'basic.js');
  const r = await check(path, '--workers', '3');
  expect(r.code).toBe(0);
  expect(r.log).toBe(`config OK: app ${path}, bind 127.0.0.1:8000, 3 worker(s)\napp OK: ${path} loads; its default export is a request listener\n`);
});

test('a factory is named and not called: a check connects to nothing', async () => {
  const d = dir();
  const marker = join(d, 'called');
  const path = app(`import { writeFileSync } from 'node:fs';\nexport default async function make() { writeFileSync(${JSON.stringify(marker)}, 'x'); return (req, res) => res.end(); }\n`);
  const r = await check(path);
  expect(r.code).toBe(0);
  expect(r.log).toContain(`app OK: ${path} loads; its default export is a factory (not called by --check-config)`);
  expect(existsSync(marker)).toBe(false);
});

test('an app that throws at import: exit 4 with its error, as at boot', async () => {
  const path = join(APPS, 'broken-import.js');
  const r = await check(path);
  expect(r.code).toBe(4);
  expect(r.log).toMatch(/^config OK: /);
  expect(r.log).toContain(`drover: cannot load app ${path}: Error: this app cannot load: missing DATABASE_URL\n    at `);
});

test('a syntax error: exit 4 naming it, with the file, the line and where in it (what node prints for its own)', async () => {
  const path = app('export default (req, res) => {\n  res.end(;\n};\n');
  const r = await check(path);
  expect(r.code).toBe(4);
  expect(r.log).toContain(`drover: cannot load app ${path}: ${path}:2\n  res.end(;\n          ^\n\nSyntaxError: Unexpected token ';'\n`);
  // In a module the app imports, Node's words alone.
  const dep = app('export const x = (;\n', 'dep.mjs');
  const top = app(`import { x } from ${JSON.stringify(dep)};\nexport default (req, res) => res.end(String(x));\n`, 'top.mjs');
  const t = await check(top);
  expect(t.code).toBe(4);
  expect(t.log).toMatch(new RegExp(`drover: cannot load app ${top}: SyntaxError`));
});

test('no default export, and a missing module: exit 4, each in words', async () => {
  const none = app('export const handler = (req, res) => res.end();\n');
  let r = await check(none);
  expect(r.code).toBe(4);
  expect(r.log).toContain(`drover: app ${none} has no default export function; export a request listener (req, res) => ... or a factory returning one\n`);
  const missing = join(dir(), 'nope.js');
  r = await check(missing);
  expect(r.code).toBe(4);
  expect(r.log).toMatch(/cannot load app .*nope\.js: .*Cannot find module/s);
});

test('an app that exits at import: exit 4, and drover\'s own report still comes', async () => {
  const path = app('process.exit(3);\n');
  const r = await check(path);
  expect(r.code).toBe(4);
  expect(r.log).toContain(`drover: cannot load app ${path}: the process importing it exited (code 3) before the import finished\n`);
});

test('an app that never finishes loading: exit 4 after the timeout setting, and whatever it started is killed', async () => {
  const d = dir();
  const pidFile = join(d, 'child.pid');
  const path = app(`import { spawn } from 'node:child_process';\nimport { writeFileSync } from 'node:fs';\n` +
    `writeFileSync(${JSON.stringify(pidFile)}, String(spawn('sleep', ['300'], { stdio: 'ignore' }).pid));\n` +
    `await new Promise(() => setInterval(() => {}, 1000));\n`);
  const started = Date.now();
  const r = await check(path, '--timeout', '1');
  expect(r.code).toBe(4);
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(r.log).toContain(`drover: cannot load app ${path}: did not finish loading within 1 s (the timeout setting)\n`);
  const sleeper = Number(readFileSync(pidFile, 'utf8'));
  const end = Date.now() + 5000;
  while (alive(sleeper) && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
  expect(alive(sleeper)).toBe(false);
});

test('a bad setting is still exit 2, before any app is loaded', async () => {
  const d = dir();
  const marker = join(d, 'loaded');
  const path = app(`import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'x');\nexport default (req, res) => res.end();\n`);
  const r = await check(path, '--workers', '0');
  expect(r.code).toBe(2);
  expect(r.log).toMatch(/^drover: .*workers/);
  expect(existsSync(marker)).toBe(false);
});

// A start creates these files and sockets, and refused one whose directory
// is missing (exit 2, or 1 for a socket) after --check-config had said OK.
// The check names each from the directory alone: it creates and opens nothing.
test('paths a start creates: a missing directory, or a file where one should be, is exit 2 naming each and the fix; nothing is made', async () => {
  const d = dir();
  const missing = join(d, 'nodir');
  const file = join(d, 'afile');
  writeFileSync(file, 'x');
  const r = await check(join(APPS, 'basic.js'),
    '-b', `unix:${missing}/s.sock`, '--pid', `${missing}/p.pid`, '--admin-bind', `unix:${file}/x/admin.sock`,
    '--access-log', `${file}/a.log`, '--error-log', `${missing}/deeper/e.log`);
  expect(r.code).toBe(2);
  const absent = (dir: string) => `directory ${dir} does not exist; create it (mkdir -p ${dir}) or choose another path`;
  const notDir = `${file} is a file, not a directory; choose a path in a directory`;
  expect(r.log).toBe([
    `drover: bind unix:${missing}/s.sock: ${absent(missing)}`,
    `drover: pid ${missing}/p.pid: ${absent(missing)}`,
    `drover: admin_bind unix:${file}/x/admin.sock: ${notDir}`,
    `drover: access_log ${file}/a.log: ${notDir}`,
    `drover: error_log ${missing}/deeper/e.log: ${absent(`${missing}/deeper`)}`,
    '',
  ].join('\n'));
  expect(readdirSync(d)).toEqual(['afile']);
  // Where they can be made, the check passes, and still makes none of them.
  const ok = await check(join(APPS, 'basic.js'), '-b', `unix:${d}/s.sock`, '--pid', `${d}/p.pid`, '--access-log', `${d}/a.log`, '--error-log', `${d}/e.log`);
  expect(ok.code).toBe(0);
  expect(readdirSync(d)).toEqual(['afile']);
});

test('--version: drover\'s version from package.json, and Node\'s', async () => {
  for (const flag of ['--version', '-v']) {
    const d = drover([flag]);
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    expect(d.log()).toBe(`drover ${VERSION} (node ${process.version})\n`);
  }
});
