// Chaos app, version v3 (see app.ts).
import { makeApp } from './app.js';

export default makeApp('v3');
