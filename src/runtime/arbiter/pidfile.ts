// The pidfile: written whole by rename (a reader never sees half a pid),
// refused when it names a live process, removed on exit only if still ours.
import type { Os } from '../../os/types.js';

export class PidfileError extends Error {}

export function writePidfile(os: Os, path: string, alive: (pid: number) => boolean): void {
  if (os.fs.exists(path)) {
    const old = Number.parseInt(os.fs.readFile(path).trim(), 10);
    if (Number.isInteger(old) && old > 0 && old !== os.pid && alive(old)) {
      throw new PidfileError(`pidfile ${path} names process ${old}, which is running: is drover already running? Stop it, or use another --pid`);
    }
  }
  const tmp = `${path}.${os.pid}.tmp`;
  os.fs.writeFile(tmp, `${os.pid}\n`, 0o644);
  os.fs.rename(tmp, path);
}

export function removePidfile(os: Os, path: string): void {
  try {
    if (os.fs.readFile(path).trim() === String(os.pid)) os.fs.unlink(path);
  } catch {
    // gone already, or never written
  }
}
