#!/usr/bin/env node
// The drover command. An installed package runs its compiled JavaScript; a
// checkout of the repository runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/drover.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/drover.ts', import.meta.url).href);
}
