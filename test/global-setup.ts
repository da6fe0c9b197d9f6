// Every real process a test starts inherits DROVER_TEST_RUN. When the suite
// ends, none may be left: a stray one is killed and fails the run.
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

export function strays(marker: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'latin1');
      if (!env.includes(`DROVER_TEST_RUN=${marker}`)) continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ').trim();
      if (cmd.includes('vitest') || cmd === '') continue; // the runner's own workers, or a zombie
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      found.push({ pid, cmd });
    } catch {
      // gone while we looked
    }
  }
  return found;
}

export default function setup(): () => void {
  const marker = randomUUID();
  process.env.DROVER_TEST_RUN = marker;
  return () => {
    const left = strays(marker);
    for (const p of left) {
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (left.length > 0) {
      // vitest reports a teardown error but still exits 0; the exit code is ours to set.
      process.exitCode = 1;
      throw new Error(`real-OS tests left ${left.length} process(es) running:\n` +
        left.map((p) => `  ${p.pid} ${p.cmd}`).join('\n'));
    }
  };
}
