// Chaos app, version v2 (see app.ts).
import { makeApp } from './app.js';

export default makeApp('v2');
