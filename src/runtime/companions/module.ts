// A companion given as `module: 'path#export'`: a Node module run as its own
// process. The export is called once; the process then lives while the
// module keeps work going (a queue consumer's loop, a timer), like `node
// file.js` would. Its output goes where the manager points this process's.
import { programs, type Os } from '../../os/types.js';

export async function companionModule(os: Os, args: readonly string[]): Promise<void> {
  const [path, name = 'default'] = args as [string, string | undefined];
  // If the manager dies, so does this companion (its own group is killed by
  // the arbiter, which knows it): no orphan outlives its supervisor.
  os.setParentDeathSignal('SIGKILL');
  let mod: Record<string, unknown>;
  try {
    mod = await os.importModule(path);
  } catch (e) {
    os.stderr.write(`drover: companion module ${path} cannot load: ${e instanceof Error ? e.message : String(e)}\n`);
    return os.exit(4);
  }
  const fn = mod[name];
  if (typeof fn !== 'function') {
    os.stderr.write(`drover: companion module ${path} has no export "${name}" that is a function (exports: ${Object.keys(mod).join(', ') || 'none'})\n`);
    return os.exit(4);
  }
  await (fn as () => unknown)();
}

/** Its registry: a module companion's process imports this file alone, not the manager's graph. */
export const companionModulePrograms = programs(import.meta.url, { 'companion-module': companionModule });
