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
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const loaded = new Map<string, unknown>();

const HOOK = `
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /[?&]drover-sim=(\\d+)/.exec(context.parentURL ?? '');
  if (m === null || !r.url.startsWith('file:') || r.url.includes('/node_modules/') || r.url.includes('drover-sim=')) return r;
  return { ...r, url: r.url + (r.url.includes('?') ? '&' : '?') + 'drover-sim=' + m[1] };
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
  // A process's own instance is asked for once or twice: not worth keeping past it.
  if (owner === null) loaded.set(url, mod);
  return mod;
}
