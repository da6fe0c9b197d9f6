// Runs the real `drover` command for a test, reads its log, and always
// cleans up: the arbiter is started in its own process group and the whole
// group is killed at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { afterEach } from 'vitest';
import { loops, type Load } from '../support/load.js';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
export const APPS = join(import.meta.dirname, '..', 'apps');

export interface Drover {
  readonly proc: ChildProcess;
  readonly pid: number;
  log(): string;
  /** Resolves when the log has a line matching `re` (after `from` characters). */
  waitFor(re: RegExp, timeout?: number, from?: number): Promise<RegExpMatchArray>;
  exited(timeout?: number): Promise<{ code: number | null; signal: string | null }>;
  kill(sig: NodeJS.Signals): void;
  cleanup(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'drover-t-'));
}

export function startDrover(args: string[], env: Record<string, string> = {}): Drover {
  const proc = spawn(process.execPath, [BIN, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const d: Drover = {
    proc,
    pid: proc.pid!,
    log: () => text,
    async waitFor(re, timeout = 15_000, from = 0) {
      const end = Date.now() + timeout;
      for (;;) {
        const m = text.slice(from).match(re);
        if (m) return m;
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; log:\n${text}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    exited: (timeout = 15_000) => Promise.race([exit, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`drover did not exit; log:\n${text}`)), timeout).unref())]),
    kill: (sig) => process.kill(proc.pid!, sig),
    async cleanup() {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
      await exit;
    },
  };
  return d;
}

export interface Reply { status: number; body: string }

export function get(port: number, path = '/', agent?: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Keeps `concurrency` keep-alive clients busy until stop(); counts what failed. */
export function load(port: number, concurrency = 4): Load {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  return loops(concurrency, () => get(port, '/', agent), async () => {}, () => agent.destroy());
}

export function removeTmp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Live members of a process group (zombies are dead), from /proc. */
export function group(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Drovers and temp dirs for one test file, stopped and removed after each test. */
export function perTest(): { drover(args: string[], env?: Record<string, string>): Drover; dir(): string } {
  const running: Drover[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of running.splice(0)) await d.cleanup();
    for (const d of dirs.splice(0)) removeTmp(d);
  });
  return {
    drover(args, env) {
      const d = startDrover(args, env);
      running.push(d);
      return d;
    },
    dir() {
      const d = tmp();
      dirs.push(d);
      return d;
    },
  };
}
