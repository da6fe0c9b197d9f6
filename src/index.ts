// drover as a library: `import { start, defineConfig } from 'drover'`.
// The server itself is always the drover command in a process of its own;
// this module only starts it (src/api/start.ts) and types its config.

export { defineConfig, type DroverCompanion, type DroverConfig } from './api/config.js';
export { start, type DroverServer, type Exit, type StartOptions } from './api/start.js';
export { VERSION as version } from './version.js';
