// Chaos app, version v1 (see app.ts).
import { makeApp } from './app.js';

export default makeApp('v1');
