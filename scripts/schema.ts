// npm run schema: writes the config file's JSON Schema and the TypeScript
// types of defineConfig from the settings table (src/runtime/config/schema.ts
// says how). Both are committed; `npm pack` runs this first, and
// test/config/schema.test.ts fails when a committed copy is stale.
import { writeFileSync } from 'node:fs';
import { configSchemaText, configTypesText } from '../src/runtime/config/schema.js';

const root = new URL('../', import.meta.url);
for (const [file, text] of [['schema/drover.config.schema.json', configSchemaText()], ['src/api/config-types.ts', configTypesText()]] as const) {
  writeFileSync(new URL(file, root), text);
  process.stdout.write(`wrote ${file}\n`);
}
