// Os.importModule's host side, for both worlds: import() of a module this
// host has already loaded, without the round trip. Node's ESM loader
// resolves every import() again, through the loader hooks when there are
// any (tsx runs its hooks on a thread of their own: a synchronous hop per
// import). A real drover process imports its app once; the simulator runs
// hundreds of workers in one host, and each one's import of the same app was
// a hop. Only successful loads are kept, as Node keeps them: a module that
// failed to resolve is looked for again next time.
import { pathToFileURL } from 'node:url';

const loaded = new Map<string, unknown>();

export async function hostImport(path: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(path).href;
  const hit = loaded.get(url);
  if (hit !== undefined) return hit as Record<string, unknown>;
  const mod = (await import(url)) as Record<string, unknown>;
  loaded.set(url, mod);
  return mod;
}
