// drover's version, read from its package.json: the one place it is written.
// This file is src/version.ts in a checkout and dist/version.js when built,
// so ../package.json is the package's own either way. Read once, when this
// module loads; it sits outside src/runtime (whose code reaches the world only
// through the Os) so that the arbiter and the manager import a plain value.
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
