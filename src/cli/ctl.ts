// drover ctl ...: talks to a running drover through its control socket. The
// work is in src/runtime/control/ctl.ts (it runs on any Os); this is the
// real-OS shell.
import { createNodeOs } from '../os/node/index.js';
import { ctl } from '../runtime/control/ctl.js';

export async function main(argv: readonly string[]): Promise<never> {
  const os = createNodeOs({ programs: [], args: argv });
  let code: number;
  try {
    code = await ctl(os, argv);
  } catch (e) {
    process.stderr.write(`drover ctl: ${e instanceof Error ? e.message : String(e)}\n`);
    code = 2;
  }
  process.exit(code);
}
