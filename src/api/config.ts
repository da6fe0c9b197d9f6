// defineConfig: the identity, typed, so an editor completes and checks a
// drover.config.js/.mjs/.cjs:
//
//   import { defineConfig } from 'drover';
//   export default defineConfig({ app: 'app.js', workers: 4 });
//
// The types are generated from the settings table (config-types.ts, by `npm
// run schema`); test/api/config.test.ts fails to compile when the table has
// a setting or a companion field they lack.

import type { DroverConfig } from './config-types.js';

export type { DroverCompanion, DroverConfig } from './config-types.js';

/** A config, or a function (maybe async) computing one when drover reads the file: drover takes either as a default export. */
export function defineConfig(config: DroverConfig): DroverConfig;
export function defineConfig(config: () => DroverConfig | Promise<DroverConfig>): () => DroverConfig | Promise<DroverConfig>;
// Overloads rather than a generic: a misspelt key in an object literal is an error only against a plain parameter type.
export function defineConfig(config: DroverConfig | (() => DroverConfig | Promise<DroverConfig>)): unknown {
  return config;
}
