// An app with a syntax error, at boot: the log names the file, the line and
// where in it, once, whether the app is an ES module or CommonJS (where Node
// itself puts that excerpt in front of the error's stack).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { freePort, perTest } from './drover.js';

const { drover, dir } = perTest();

/** How many times `needle` occurs in `text`. */
const count = (text: string, needle: string): number => text.split(needle).length - 1;

test.each([
  ['an ES module', 'app.mjs', 'export default (req, res) => {\n  res.end(;\n};\n'],
  ['CommonJS', 'app.cjs', 'module.exports = (req, res) => {\n  res.end(;\n};\n'],
])('a syntax error in %s: exit 4, the excerpt once in the worker\'s line and once in the arbiter\'s', async (_, name, source) => {
  const app = join(dir(), name);
  writeFileSync(app, source);
  const d = drover([app, '--bind', `127.0.0.1:${await freePort()}`, '--workers', '1', '--lanes', 'off']);
  expect(await d.exited()).toEqual({ code: 4, signal: null });
  // The text log writes the message on one line, newlines as \x0a.
  const excerpt = `${app}:2\\x0a  res.end(;\\x0a          ^\\x0a\\x0aSyntaxError: Unexpected token ';'`;
  const lines = d.log().split('\n').filter((l) => l.includes(`cannot load app ${app}: `));
  // The worker's [ERROR] and the arbiter's [CRITICAL] "Worker failed to boot".
  expect(lines).toHaveLength(2);
  for (const line of lines) {
    expect(line).toContain(`cannot load app ${app}: ${excerpt}`);
    expect(count(line, `${app}:2\\x0a`)).toBe(1);
  }
});
