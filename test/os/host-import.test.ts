// hostImport (src/os/host-import.ts) with one instance per simulated process,
// under Node's own loader: vitest loads modules through its own runner, so
// this runs hostImport in a Node process of its own (with tsx, as
// bin/drover.js runs the sources). Several processes import a CommonJS main
// module at once, as a pool of workers boots. When the file threw at load,
// all but the first got Node 20's ERR_INTERNAL_ASSERTION ("a bug in Node.js")
// instead of the file's error, and drover sim reported that.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'drover-host-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const put = (name: string, text: string) => writeFileSync(join(dir, name), text);
put('throws.cjs', "throw new Error('boom');\n");
put('syntax.cjs', 'const x = ;\n');
// A .js file is CommonJS in a package without "type": "module".
mkdirSync(join(dir, 'plain'));
put('plain/package.json', '{ "name": "plain" }\n');
put('plain/throws.js', "const why = 'boom in a .js';\nthrow new Error(why);\n");
// Counts its top level's runs on the host's global.
put('fine.cjs', "globalThis.fineLoads = (globalThis.fineLoads ?? 0) + 1;\nexports.answer = 42;\nexports.run = () => 'ran';\n");
// An ES module of a process that imports the CommonJS file the same process has as a main module.
put('uses-fine.mjs', "import fine, { run } from './fine.cjs';\nexport default () => `${run()} ${fine.answer}`;\n");

const SCRIPT = `
import { hostImport } from ${JSON.stringify(new URL('../../src/os/host-import.ts', import.meta.url).href)};
const dir = ${JSON.stringify(dir)};
const rejections = [];
process.on('unhandledRejection', (e) => rejections.push(String(e)));
const show = (r) => r.status === 'fulfilled'
  ? 'exports ' + Object.keys(r.value).sort().join(',')
  : r.reason.stack.split('\\n').filter((l) => !/^ +at (?!Object\\.<anonymous>)/.test(l)).join(' | ').replaceAll(dir, '');
const owners = [{}, {}, {}, {}];
const out = {};
for (const f of ['throws.cjs', 'plain/throws.js', 'syntax.cjs', 'fine.cjs']) {
  // All at once, then the first owner again.
  const rs = await Promise.allSettled(owners.map((o) => hostImport(dir + '/' + f, o)));
  rs.push(...(await Promise.allSettled([hostImport(dir + '/' + f, owners[0])])));
  out[f] = rs.map(show);
}
out.fineLoads = globalThis.fineLoads;
out.usesFine = (await hostImport(dir + '/uses-fine.mjs', owners[0])).default();
await new Promise((r) => setTimeout(r, 50));
out.rejections = rejections;
process.stdout.write(JSON.stringify(out));
`;

function run(): Promise<Record<string, unknown>> {
  const script = join(dir, 'script.mjs');
  writeFileSync(script, SCRIPT);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, unknown>) : reject(new Error(`the script exited ${code}: ${err}`))));
  });
}

describe('hostImport of a CommonJS main module, one instance per process', () => {
  test('a file that throws at load: every process gets the file\'s own error at its line, never Node\'s internal assertion; one that loads is shared, with its named exports', async () => {
    const r = await run();
    const five = (s: string) => Array(5).fill(s);
    expect(r['throws.cjs']).toEqual(five('Error: boom |     at Object.<anonymous> (/throws.cjs:1:7)'));
    expect(r['plain/throws.js']).toEqual(five('Error: boom in a .js |     at Object.<anonymous> (/plain/throws.js:2:7)'));
    expect(r['syntax.cjs']).toEqual(five("/syntax.cjs:1 | const x = ; |           ^ |  | SyntaxError: Unexpected token ';'"));
    expect(r['fine.cjs']).toEqual(five('exports answer,default,run'));
    expect(r.fineLoads).toBe(1);
    // Its process's ES module gets the file's named exports, not the stand-in its main import was.
    expect(r.usesFine).toBe('ran 42');
    expect(r.rejections).toEqual([]);
  }, 30_000);
});
