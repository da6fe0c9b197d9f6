// Os.importModule's host side, for both worlds: import() of a module this
// host has already loaded, without the round trip. Node's ESM loader
// resolves every import() again, through the loader hooks when there are
// any (tsx runs its hooks on a thread of their own: a synchronous hop per
// import). A real drover process imports its app once; the simulator runs
// hundreds of workers in one host, and each one's import of the same app was
// a hop. Only successful loads are kept, as Node keeps them: a module that
// failed to resolve is looked for again next time.
//
// `owner` (a simulated process) asks for instances of its own, as each real
// Node process has: the module is imported under a query naming the owner,
// and a resolve hook carries that query on to every file the module imports
// outside node_modules, so the app's own files run their top level (timers,
// caches, connections) once per process that imports them, in that
// process's time. Packages in node_modules stay shared (as a CommonJS module
// does: its cache is by file name). drover sim needs this for a user's app,
// whose top level is not written for the simulator; its own chaos apps share
// one instance, and their harness state with it.
//
// A process's main module that is CommonJS is loaded with require(), not
// import(). Node's CommonJS loader keeps one module per file name, and
// import() of a CommonJS file under a new URL made one more ES module
// wrapping that one module. When the file threw at load, Node dropped its
// module from the cache while the other processes' wrappers still held it,
// and those processes got ERR_INTERNAL_ASSERTION ("a bug in Node.js", Node
// 20) instead of the file's own error (drover sim gave that as why the app
// failed). Importing it under one URL for all is no better: once it has
// failed, Node 20 hands any module that imports it an empty module with no
// error (and an unhandled rejection). require() has neither problem: a file
// that loaded is shared from the cache, one that threw is not cached and runs
// again, so each process gets an error of its own, as each real process
// would. Only the loader knows a file's format for sure (a .js file's may
// depend on its source), so the load hook answers a process's main module
// that is CommonJS with a stand-in that says so, and hostImport requires the
// file. It does this only where Node would have loaded the file with its
// CommonJS loader anyway (format commonjs and no source from the hooks); with
// a source, Node compiles it into each wrapper and does not have the fault.
//
// Left as they were: CommonJS files that a process's ES modules import (each
// under the process's URL). Node has the same fault there, but their importer
// needs the file's named exports at link time, before any code runs.
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const loaded = new Map<string, unknown>();

// The stand-in's one export, a name no module of an app exports.
const COMMONJS = 'drover-sim: commonjs';

// In the hook: mains holds the URLs hostImport asks for (a process's URL,
// imported by a module that has none); commonjsMains, those of them that are
// CommonJS and got the stand-in. A module of the same process that imports
// such a file gets its plain URL (the file's one shared instance) instead, as
// the stand-in has none of the file's exports.
const HOOK = `
const mains = new Set();
const commonjsMains = new Set();
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /[?&]drover-sim=(\\d+)/.exec(context.parentURL ?? '');
  if (m === null) {
    if (/[?&]drover-sim=\\d+$/.test(r.url)) mains.add(r.url);
    return r;
  }
  if (!r.url.startsWith('file:') || r.url.includes('/node_modules/') || r.url.includes('drover-sim=')) return r;
  const url = r.url + (r.url.includes('?') ? '&' : '?') + 'drover-sim=' + m[1];
  return commonjsMains.has(url) ? r : { ...r, url };
}
export async function load(url, context, next) {
  const r = await next(url, context);
  if (!mains.delete(url) || r.format !== 'commonjs' || r.source != null) return r;
  commonjsMains.add(url);
  return { format: 'module', source: 'export const m = true; export { m as ${JSON.stringify(COMMONJS)} };', shortCircuit: true };
}`;

let hooked = false;
const instances = new WeakMap<object, number>();
let next = 0;

export async function hostImport(path: string, owner: object | null = null): Promise<Record<string, unknown>> {
  let url = pathToFileURL(path).href;
  if (owner !== null) {
    if (!hooked) {
      register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
      hooked = true;
    }
    let n = instances.get(owner);
    if (n === undefined) instances.set(owner, (n = ++next));
    url = `${url}?drover-sim=${n}`;
  }
  const hit = loaded.get(url);
  if (hit !== undefined) return hit as Record<string, unknown>;
  const mod = (await import(url)) as Record<string, unknown>;
  if (owner !== null && mod[COMMONJS] === true) {
    // Throws the file's own error, thrown anew for each process while it fails.
    createRequire(path)(path);
    // Loaded, and in Node's CommonJS cache: import() gives it the namespace Node gives a CommonJS file, without running it again.
    return hostImport(path);
  }
  // A process's own instance is asked for once or twice: not worth keeping past it.
  if (owner === null) loaded.set(url, mod);
  return mod;
}
