// Helpers for test programs and tests. They use nothing but the Os they
// are given, so the same program runs on the real OS and in the simulator.
import type { Channel, Exited, Os, Stream } from '../../src/os/types.js';

export function emit(os: Os, record: unknown): void {
  os.stdout.write(JSON.stringify(record) + '\n');
}

/** Polls `cond` every 5 ms; false when `timeout` ms pass first. */
export async function until(os: Os, cond: () => boolean, timeout = 5000): Promise<boolean> {
  const end = os.now() + timeout;
  while (!cond()) {
    if (os.now() >= end) return false;
    await os.sleep(5);
  }
  return true;
}

export async function reap(os: Os, pid: number, timeout = 10_000): Promise<Exited> {
  let got: Exited | null = null;
  if (!(await until(os, () => (got = os.waitpid(pid)) !== null, timeout))) {
    throw new Error(`child ${pid} did not exit within ${timeout} ms`);
  }
  return got!;
}

/** The errno code `fn` throws, or null when it does not throw. */
export function errno(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

export async function errnoAsync(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

/** Messages from a channel, awaited one at a time. */
export function inbox(os: Os, ch: Channel): (timeout?: number) => Promise<unknown> {
  const queue: unknown[] = [];
  ch.onMessage((m) => queue.push(m));
  return async (timeout = 10_000) => {
    if (!(await until(os, () => queue.length > 0, timeout))) throw new Error(`no message within ${timeout} ms`);
    return queue.shift();
  };
}

export function readAll(s: Stream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

/** Lines of a file that may not exist yet. */
export function lines(os: Os, path: string): string[] {
  if (!os.fs.exists(path)) return [];
  return os.fs.readFile(path).split('\n').filter((l) => l !== '');
}
