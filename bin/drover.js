#!/usr/bin/env node
// The drover command. Which code it runs:
// - an installed package (no src/ beside bin/): dist/, the compiled JavaScript;
// - a checkout (src/ is here): dist/ only when it is current, that is when
//   dist/cli/drover.js is at least as new (mtime) as the newest file or
//   directory under src/; otherwise the TypeScript sources, through tsx (a
//   devDependency). An edit is run at once, never shadowed by an older build;
//   a build made after the last edit is used as it is.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newest } from './newest.js';

// Before anything else but the imports above (builtins and one small file;
// loading drover takes a few hundred ms): the server's
// signals are queued, and SignalTable (src/os/node/signals.ts) hands them to
// the arbiter. Until then Node took USR1 as "open the inspector" (on
// 127.0.0.1:9229, where any local user could run code as drover's user), HUP
// and TERM killed the server, and TTIN stopped it. `ctl` and `sim` keep the
// defaults: a terminal's hangup ends them.
if (process.argv[2] !== 'ctl' && process.argv[2] !== 'sim') {
  const early = { q: [], fns: new Map() };
  for (const sig of ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1']) {
    const fn = () => early.q.length < 64 && early.q.push(sig);
    early.fns.set(sig, fn);
    process.on(sig, fn);
  }
  globalThis[Symbol.for('drover.earlySignals')] = early;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const built = join(root, 'dist', 'cli', 'drover.js');

const checkout = existsSync(src);
const hasBuild = existsSync(built);
if (!checkout && !hasBuild) {
  process.stderr.write(`drover: ${built} is missing: this package was packed without its build; reinstall it, or run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
if (hasBuild && (!checkout || statSync(built).mtimeMs >= newest(src))) {
  await import(new URL('../dist/cli/drover.js', import.meta.url).href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    const why = hasBuild ? 'src/ is newer than dist/' : 'there is no dist/';
    process.stderr.write(`drover: ${why} in ${root}, and running the sources needs tsx, which is not installed: run \`npm run build\`, or \`npm install\` (tsx is a devDependency)\n`);
    process.exit(1);
  }
  register();
  await import(new URL('../src/cli/drover.ts', import.meta.url).href);
}
