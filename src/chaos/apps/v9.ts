// Chaos app, version v9 (see app.ts).
import { makeApp } from './app.js';

export default makeApp('v9');
