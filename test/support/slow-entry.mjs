// `node --import ./slow-entry.mjs bin/drover.js ...`: drover's own entry
// (cli/drover, built or source) loads 1.5 s late, and the file named by
// SLOW_ENTRY_MARKER is written when it is asked for — by then bin/drover.js
// has run its first lines. A test can thus send signals in the window while
// drover loads, at a known time (server.real.test.ts).
import { register } from 'node:module';

const hooks = `
import { writeFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (/\\/(dist|src)\\/cli\\/drover\\.(js|ts)$/.test(url) && process.env.SLOW_ENTRY_MARKER) {
    writeFileSync(process.env.SLOW_ENTRY_MARKER, url);
    await new Promise((r) => setTimeout(r, 1500));
  }
  return next(url, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
