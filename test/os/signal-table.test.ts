// The Node adapter's SignalTable (src/os/node/signals.ts) on a real process:
// replacing a handler never drops a signal that came while JS was busy.
// Node closes a signal's handle when its last listener goes, and a signal
// libuv caught but had not yet handed to JS is lost with it; drover replaces
// its handlers while it loads (early ones, then the arbiter's), and a TERM
// from systemd in that window was lost: the server ran on.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, test } from 'vitest';

const SIGNALS = join(import.meta.dirname, '..', '..', 'dist', 'os', 'node', 'signals.js');

test('a signal that arrives while JS is busy, before its handler is replaced, goes to the new handler', () => {
  const program = `
    const { SignalTable } = await import(${JSON.stringify(SIGNALS)});
    const t = new SignalTable();
    const got = [];
    t.set('SIGHUP', () => got.push('old'));
    setTimeout(() => {
      process.kill(process.pid, 'SIGHUP');
      const end = Date.now() + 100;
      while (Date.now() < end);
      t.set('SIGHUP', () => got.push('new'));
      setTimeout(() => { console.log(JSON.stringify(got)); process.exit(0); }, 200);
    }, 50);
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', program], { encoding: 'utf8', timeout: 10_000 });
  expect(JSON.parse(out)).toEqual(['new']);
});
