// Finding and loading config files: JSON through the Os (so in the
// simulator too), JavaScript through Node's import from the real disk.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createNodeOs } from '../../src/os/node/index.js';
import type { Os } from '../../src/os/types.js';
import {
  ConfigError, findConfigFile, loadConfig, loadConfigFile, locateConfig, type Config,
} from '../../src/runtime/config/index.js';
import { LOAD_LIMIT_MS, lineCol } from '../../src/runtime/config/load.js';
import { boot } from '../sim/helpers.js';
import { inbox, reap } from '../support/os.js';
import { registry } from './programs.js';

/** Runs `fn` as a simulated process in `cwd`, with `files` on its disk; returns its result. */
async function inSim<T>(files: Record<string, string>, cwd: string, fn: (os: Os) => Promise<T> | T, env: Record<string, string> = {}): Promise<T> {
  type Out = { ok: true; value: T } | { ok: false; error: unknown };
  const box: { out: Out | null } = { out: null };
  const { k } = boot({
    main: (os) => {
      os.fs.mkdir(cwd, { recursive: true });
      for (const [p, text] of Object.entries(files)) {
        os.fs.mkdir(p.slice(0, p.lastIndexOf('/')) || '/', { recursive: true });
        os.fs.writeFile(p, text);
      }
      os.spawn({ program: 'child', cwd, env, channel: false });
    },
    child: async (os) => {
      try {
        box.out = { ok: true, value: await fn(os) };
      } catch (error) {
        box.out = { ok: false, error };
      }
    },
  });
  await k.run();
  const r = box.out;
  if (r === null) throw new Error('the simulated process did not finish');
  if (!r.ok) throw r.error;
  return r.value;
}

async function problemsOf(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('findConfigFile', () => {
  it('finds drover.config.js, .mjs, .cjs or .json in the working directory', async () => {
    for (const ext of ['js', 'mjs', 'cjs', 'json']) {
      expect(await inSim({ [`/srv/app/drover.config.${ext}`]: '{}' }, '/srv/app', findConfigFile)).toBe(`/srv/app/drover.config.${ext}`);
    }
  });

  it('refuses two of them, naming both and the fixes, rather than pick one without a word', async () => {
    const two = { '/srv/app/drover.config.json': '{}', '/srv/app/drover.config.cjs': '' };
    expect(await problemsOf(inSim(two, '/srv/app', async (os) => findConfigFile(os)))).toEqual([
      'drover.config.cjs and drover.config.json are both in /srv/app, and drover reads one config file: remove the others, or name the one to read with --config (or DROVER_CONFIG)',
    ]);
    const all = { ...two, '/srv/app/drover.config.js': '', '/srv/app/drover.config.mjs': '' };
    expect((await problemsOf(inSim(all, '/srv/app', async (os) => findConfigFile(os))))[0]).toMatch(/^drover\.config\.js and drover\.config\.mjs and drover\.config\.cjs and drover\.config\.json are both in/);
  });

  it('finds nothing elsewhere: not in the parent directory, not under another name', async () => {
    expect(await inSim({ '/srv/drover.config.json': '{}', '/srv/app/gunicorn.conf.py': '' }, '/srv/app', findConfigFile)).toBeNull();
  });
});

describe('locateConfig', () => {
  const files = { '/srv/drover.config.json': '{}', '/srv/other.json': '{}' };
  it('prefers --config, then DROVER_CONFIG, then the default file', async () => {
    expect(await inSim(files, '/srv', (os) => locateConfig(os, ['-c', 'cli.json']), { DROVER_CONFIG: 'env.json' })).toBe('cli.json');
    expect(await inSim(files, '/srv', (os) => locateConfig(os, ['app.js']), { DROVER_CONFIG: 'env.json' })).toBe('env.json');
    expect(await inSim(files, '/srv', (os) => locateConfig(os, ['app.js']))).toBe('/srv/drover.config.json');
  });

  it('a named file settles which one, even with two default files present', async () => {
    const two = { '/srv/drover.config.json': '{}', '/srv/drover.config.js': '' };
    expect(await inSim(two, '/srv', (os) => locateConfig(os, ['-c', 'drover.config.json']))).toBe('drover.config.json');
    expect(await inSim(two, '/srv', (os) => locateConfig(os, ['app.js']), { DROVER_CONFIG: 'drover.config.js' })).toBe('drover.config.js');
  });
});

describe('loadConfigFile: JSON, through the Os', () => {
  it('reads a file relative to the working directory and keeps the path as given', async () => {
    const got = await inSim({ '/srv/conf/d.json': '{"workers": 3, "bind": [":1"]}' }, '/srv', (os) => loadConfigFile(os, 'conf/d.json'));
    expect(got).toEqual({ path: 'conf/d.json', data: { workers: 3, bind: [':1'] } });
  });

  it('names the file, the line and the column of a syntax error', async () => {
    const text = '{\n  "workers": 3,\n  "bind": }\n';
    const ps = await problemsOf(inSim({ '/srv/d.json': text }, '/srv', (os) => loadConfigFile(os, 'd.json')));
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(/^d\.json: invalid JSON/);
    // V8 names the position for most errors; where it does, it becomes line 3, column 11.
    if (/position/.test(ps[0]!)) expect(ps[0]).toMatch(/at line 3, column 11/);
  });

  it('places an early end at the end of the text', async () => {
    const ps = await problemsOf(inSim({ '/srv/d.json': '{\n"workers": 3' }, '/srv', (os) => loadConfigFile(os, 'd.json')));
    expect(ps[0]).toMatch(/^d\.json: invalid JSON at line 2, column \d+: /);
  });

  it('refuses a missing file and an unknown extension', async () => {
    expect(await problemsOf(inSim({}, '/srv', (os) => loadConfigFile(os, 'nope.json')))).toEqual([
      'config file nope.json does not exist (looked for /srv/nope.json)',
    ]);
    expect(await problemsOf(inSim({ '/srv/d.yaml': 'a: 1' }, '/srv', (os) => loadConfigFile(os, 'd.yaml')))).toEqual([
      'config file d.yaml: unsupported type ".yaml"; use .js, .mjs, .cjs or .json',
    ]);
    expect(await problemsOf(inSim({ '/srv/drover': '{}' }, '/srv', (os) => loadConfigFile(os, 'drover')))).toEqual([
      'config file drover: no extension; use .js, .mjs, .cjs or .json',
    ]);
  });

  it('computes line and column from an offset', () => {
    expect(lineCol('ab\ncd', 0)).toEqual({ line: 1, col: 1 });
    expect(lineCol('ab\ncd', 4)).toEqual({ line: 2, col: 2 });
  });
});

describe('loadConfig: the whole read', () => {
  it('merges the default file, the environment and the command line', async () => {
    const c = await inSim(
      { '/srv/drover.config.json': '{"app": "hello.js", "workers": 2, "timeout": 1.5}' },
      '/srv',
      (os) => loadConfig(os, ['--workers', '3'], 8),
      { DROVER_TIMEOUT: '2' },
    );
    expect(c).toMatchObject({ app: 'hello.js', workers: 3, timeout: 2000, config: '/srv/drover.config.json' } satisfies Partial<Config>);
  });

  it('reports a broken file together with the other sources\' problems, without a spurious "no app"', async () => {
    const ps = await problemsOf(inSim({ '/srv/drover.config.json': '{"app": "a.js",' }, '/srv', (os) => loadConfig(os, ['--wokers', '2'], 2), { DROVER_NOPE: '1' }));
    expect(ps).toHaveLength(3);
    expect(ps[0]).toMatch(/^drover\.config\.json: invalid JSON|^\/srv\/drover\.config\.json: invalid JSON/);
    expect(ps.slice(1)).toEqual([
      expect.stringMatching(/^unknown environment variable DROVER_NOPE/),
      'unknown option --wokers; did you mean --workers?',
    ]);
  });

  it('reports two default files together with the other sources\' problems, without a spurious "no app"', async () => {
    const two = { '/srv/drover.config.json': '{"app": "a.js"}', '/srv/drover.config.mjs': '' };
    const ps = await problemsOf(inSim(two, '/srv', (os) => loadConfig(os, ['--wokers', '2'], 2)));
    expect(ps).toEqual([
      expect.stringMatching(/^drover\.config\.mjs and drover\.config\.json are both in \/srv/),
      'unknown option --wokers; did you mean --workers?',
    ]);
  });

  it('ignores "$schema" in a JSON file: it names the schema for an editor, it is not a setting', async () => {
    const c = await inSim({ '/srv/drover.config.json': '{"$schema": "./node_modules/drover/schema/drover.config.schema.json", "app": "a.js", "workers": 2}' }, '/srv', (os) => loadConfig(os, [], 2));
    expect(c).toMatchObject({ app: 'a.js', workers: 2 });
    const got = await inSim({ '/srv/c.json': '{"$schema": "x", "companions": []}' }, '/srv', (os) => loadConfigFile(os, 'c.json', 'companions file'));
    expect(got.data).toEqual({ companions: [] });
  });

  it('fails on a named file that does not exist, but not on a missing default file', async () => {
    expect(await problemsOf(inSim({}, '/srv', (os) => loadConfig(os, ['a.js', '-c', 'x.json'], 1)))).toEqual([
      'config file x.json does not exist (looked for /srv/x.json)',
    ]);
    expect((await inSim({}, '/srv', (os) => loadConfig(os, ['a.js'], 1))).config).toBeNull();
  });
});

describe('loadConfigFile: JavaScript, through import', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-config-'));
  const os = createNodeOs({ programs: [] });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const put = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('takes an ES module\'s default export object', async () => {
    const p = put('a.mjs', 'export default { workers: 2, bind: [":1"] };');
    expect(await loadConfigFile(os, p)).toEqual({ path: p, data: { workers: 2, bind: [':1'] } });
  });

  it('calls a default export function, awaiting it when async', async () => {
    expect((await loadConfigFile(os, put('f.mjs', 'export default () => ({ workers: 3 });'))).data).toEqual({ workers: 3 });
    expect((await loadConfigFile(os, put('g.mjs', 'export default async () => { await null; return { workers: 4 }; };'))).data).toEqual({ workers: 4 });
  });

  it('takes named exports when there is no default, like gunicorn\'s module variables', async () => {
    expect((await loadConfigFile(os, put('n.mjs', 'export const workers = 5; export const timeout = 1;'))).data).toEqual({ workers: 5, timeout: 1 });
  });

  it('takes module.exports from CommonJS', async () => {
    expect((await loadConfigFile(os, put('c.cjs', 'module.exports = { workers: 6 };'))).data).toEqual({ workers: 6 });
  });

  // Under vitest, import() goes through vite's module runner, which would pass
  // this for CommonJS even without the cache purge: the real-process test below
  // is the one that pins CommonJS.
  it('sees edits on every load (a HUP re-read)', async () => {
    for (const name of ['e.mjs']) {
      const body = (n: number): string => (name.endsWith('.cjs') ? `module.exports = { workers: ${n} };` : `export default { workers: ${n} };`);
      const p = put(name, body(1));
      expect((await loadConfigFile(os, p)).data).toEqual({ workers: 1 });
      put(name, body(2));
      expect((await loadConfigFile(os, p)).data).toEqual({ workers: 2 });
      put(name, body(3));
      expect((await loadConfigFile(os, p)).data).toEqual({ workers: 3 });
    }
  });

  it('turns a throwing or broken module into a ConfigError naming the file', async () => {
    const p = put('t.mjs', 'throw new Error("no database URL");');
    expect(await problemsOf(loadConfigFile(os, p))).toEqual([`config file ${p} failed to load: Error: no database URL`]);
    const q = put('s.mjs', 'export default {');
    // Node says SyntaxError; under vitest, vite's import analysis says it first, in its own words.
    expect((await problemsOf(loadConfigFile(os, q)))[0]).toMatch(new RegExp(`^config file ${q} failed to load: .*(SyntaxError|invalid JS syntax)`));
    const r = put('r.mjs', 'export default async () => { throw new TypeError("bad"); };');
    expect(await problemsOf(loadConfigFile(os, r))).toEqual([`config file ${r} failed to load: TypeError: bad`]);
  });

  // `drover --config app.cjs` called the app's request listener as a config
  // factory: "TypeError: Cannot read properties of undefined (reading 'end')",
  // and nothing said the file was an app.
  it('refuses an app given as the config file, without calling it, and says how to run it', async () => {
    const marker = join(dir, 'listener-called');
    const listener = `(req, res) => { require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x'); res.end('hi'); }`;
    const app = put('app.cjs', `module.exports = ${listener};`);
    const express = put('express.mjs', 'export default function app(req, res, next) { res.end(); }');
    const said = (p: string, n: number) =>
      `config file ${p}: its default export is a function of ${n} arguments, as a request listener (req, res) is, so it looks like an app, not a config: ` +
      `serve it with drover ${p}, and give settings in a config file, e.g. drover ${p} --config drover.config.js (whose default export is an object of settings, or a function of no arguments returning one)`;
    expect(await problemsOf(loadConfigFile(os, app))).toEqual([said(app, 2)]);
    expect(await problemsOf(loadConfigFile(os, express))).toEqual([said(express, 3)]);
    expect(existsSync(marker)).toBe(false);
    // A function of no arguments that fails as a listener does without its (req, res): the same hint after the error.
    const rest = put('rest.mjs', 'export default (...args) => args[1].end();');
    expect(await problemsOf(loadConfigFile(os, rest))).toEqual([
      `config file ${rest} failed to load: TypeError: Cannot read properties of undefined (reading 'end'); if ${rest} is an app rather than a config, ` +
        `serve it with drover ${rest}, and give settings in a config file, e.g. drover ${rest} --config drover.config.js (whose default export is an object of settings, or a function of no arguments returning one)`,
    ]);
  });

  // Its limit is an Os timer (LOAD_LIMIT_MS); here one that fires at once, so the test does not wait 10 s.
  it('gives up on a module that never finishes loading, naming the file and what to do; a load that settles cancels the limit', async () => {
    const timers: { ms: number; cancelled: boolean }[] = [];
    let soon = true;
    const quick = Object.create(os, {
      timer: {
        value: (ms: number, fn: () => void) => {
          const t = { ms, cancelled: false };
          timers.push(t);
          const real = os.timer(soon ? 5 : ms, fn);
          return { cancel: () => ((t.cancelled = true), real.cancel()), unref: () => real.unref() };
        },
      },
    }) as Os;
    const hang = put('hang.mjs', 'export default async function () { return new Promise(() => {}); }');
    expect(await problemsOf(loadConfigFile(quick, hang))).toEqual([
      `config file ${hang} did not finish loading within 10 s: its module, or the promise its default export returned, never settled; ` +
        'make whatever it awaits (a secret store, a network call) time out and throw, or fail fast',
    ]);
    expect(timers.map((t) => t.ms)).toEqual([LOAD_LIMIT_MS]);
    expect(LOAD_LIMIT_MS).toBe(10_000);
    soon = false;
    expect((await loadConfigFile(quick, put('quick.mjs', 'export default async () => ({ workers: 2 });'))).data).toEqual({ workers: 2 });
    expect(timers[1]!.cancelled).toBe(true);
  });

  it('sees edits in a real Node process, where import() and the CommonJS cache are Node\'s own', async () => {
    const real = createNodeOs({ programs: [registry] });
    const cases: Array<[string, string, string]> = [
      ['r.mjs', 'export default { workers: 1 };', 'export default { workers: 2 };'],
      ['r.cjs', 'module.exports = { workers: 1 };', 'module.exports = { workers: 2 };'],
      // A .js file is CommonJS here (no package.json says otherwise): cached by file name, like .cjs.
      ['r.js', 'module.exports = { workers: 1 };', 'module.exports = { workers: 2 };'],
      ['bad.mjs', 'export default {', 'export default { workers: 2 };'],
    ];
    for (const [name, first, second] of cases) {
      const child = real.spawn({ program: 'reload-config', args: [join(dir, name), first, second] });
      const got = await inbox(real, child.channel!)();
      await reap(real, child.pid);
      if (name === 'bad.mjs') {
        expect(got).toEqual([{ error: expect.stringMatching(/failed to load: SyntaxError/) }, { workers: 2 }]);
      } else {
        expect(got, name).toEqual([{ workers: 1 }, { workers: 2 }]);
      }
    }
  });

  it('finds and reads a drover.config.cjs in the working directory', async () => {
    const d = mkdtempSync(join(dir, 'cjs-'));
    writeFileSync(join(d, 'drover.config.cjs'), 'module.exports = { app: "a.js", workers: 3 };');
    const here = Object.create(os, { cwd: { value: () => d } }) as Os;
    expect(await loadConfig(here, [], 2)).toMatchObject({ app: 'a.js', workers: 3, config: join(d, 'drover.config.cjs') });
  });

  it('reads JSON from the real disk too', async () => {
    const p = put('d.json', '{"workers": 7}');
    expect(await loadConfigFile(os, p)).toEqual({ path: p, data: { workers: 7 } });
  });
});
