// A program that loads config files in a real Node process, where import()
// is Node's own (under vitest it goes through vite's module runner instead).
import { programs } from '../../src/os/types.js';
import { loadConfigFile } from '../../src/runtime/config/index.js';

export const registry = programs(import.meta.url, {
  /** Writes args[1] to args[0] and loads it, then args[2] and loads again; sends both results. */
  'reload-config': async (os, args) => {
    const [path, first, second] = args as [string, string, string];
    const results: unknown[] = [];
    for (const body of [first, second]) {
      os.fs.writeFile(path, body);
      try {
        results.push((await loadConfigFile(os, path)).data);
      } catch (e) {
        results.push({ error: (e as Error).message });
      }
    }
    os.channel!.send(results);
    os.channel!.close();
  },
});
