// drover ctl ...: talks to a running drover through its control socket. The
// work is in src/runtime/control/ctl.ts (it runs on any Os); this is the
// real-OS shell, and the terminal `drover ctl top` draws on.
import { createNodeOs } from '../os/node/index.js';
import { ctl } from '../runtime/control/ctl.js';
import type { Terminal } from '../runtime/control/top.js';

/** This process's stdout, and stdin in raw mode while top reads keys from it. */
function terminal(): Terminal {
  return {
    isTTY: process.stdout.isTTY === true,
    get columns() {
      return process.stdout.columns;
    },
    keys(fn) {
      const stdin = process.stdin;
      if (!stdin.isTTY) return () => {};
      const onData = (d: Buffer): void => fn(d.toString('utf8'));
      stdin.setRawMode(true);
      stdin.on('data', onData);
      stdin.resume();
      return () => {
        stdin.off('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
      };
    },
  };
}

export async function main(argv: readonly string[]): Promise<never> {
  const os = createNodeOs({ programs: [], args: argv });
  let code: number;
  try {
    code = await ctl(os, argv, terminal());
  } catch (e) {
    process.stderr.write(`drover ctl: ${e instanceof Error ? e.message : String(e)}\n`);
    code = 2;
  }
  process.exit(code);
}
