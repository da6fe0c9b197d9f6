import { programs, type ProgramFn } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';

/** A kernel running `main` from `table`, with every trace line kept. */
export function boot(table: Record<string, ProgramFn>, seed: number | bigint = 1, args: string[] = []): { k: Kernel; pid: number } {
  const k = new Kernel({ seed, programs: [programs(import.meta.url, table)], record: true });
  const pid = k.spawn({ program: 'main', args });
  return { k, pid };
}
