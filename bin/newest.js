// The newest mtime under a directory, directories included (a deleted file
// changes its directory's). A checkout's build is current when
// dist/cli/drover.js is at least as new as everything under src/: bin/drover.js
// runs dist/ only then, and bench/sim measures only then.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function newest(dir) {
  let t = statSync(dir).mtimeMs;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
