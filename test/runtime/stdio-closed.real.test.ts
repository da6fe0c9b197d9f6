// drover whose stdout and stderr are pipes the reader closes: `drover app 2>&1
// | head -1`, a `| tee` that gets killed, journald restarting. Every drover
// process writes there (the arbiter's and workers' logs, the app's and the
// companions' output); none of them may die of it, and the server keeps serving
// until it is told to stop.
import { spawn, execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect, test } from 'vitest';
import { APPS, freePort, get, group, removeTmp, tmp } from './drover.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'drover.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const started: number[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const pgid of started.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
  for (const d of dirs.splice(0)) removeTmp(d);
});

interface Run {
  pid: number;
  /** What came out of stdout and stderr while they were read. */
  text(): string;
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  /** Lets go of both reading ends: every later write of drover's finds its reader gone (EPIPE). */
  close(): void;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

function start(args: string[]): Run {
  const proc = spawn(process.execPath, [BIN, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(proc.pid!);
  let text = '';
  for (const s of [proc.stdout!, proc.stderr!]) s.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    pid: proc.pid!,
    text: () => text,
    async waitFor(re) {
      for (let i = 0; i < 750; i++) {
        const m = text.match(re);
        if (m) return m;
        await sleep(20);
      }
      throw new Error(`timed out waiting for ${re}; output:\n${text}`);
    },
    close() {
      proc.stdout!.destroy();
      proc.stderr!.destroy();
    },
    exited: Promise.race([exited, sleep(20_000).then(() => ({ code: null, signal: `still running 20 s on; output before the close:\n${text}` }))]),
  };
}

async function ctlStatus(sock: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'ctl', '--socket', sock, 'status']);
  return stdout;
}

/** GET / until a worker other than `old` answers (a HUP's new one), for up to 15 s. */
async function answeredByOtherThan(port: number, old: string): Promise<string> {
  for (let i = 0; i < 150; i++) {
    const r = await get(port).catch((e: Error) => ({ status: 0, body: e.message }));
    if (r.status === 200 && r.body !== old) return r.body;
    await sleep(100);
  }
  throw new Error(`no worker but ${old} answered within 15 s of the HUP`);
}

test("stdout and stderr closed under it: workers, and the companion manager that passes on a companion's output live on; HUP reloads; TERM stops it all, exit 0", async () => {
  const dir = tmp();
  dirs.push(dir);
  const port = await freePort();
  const sock = join(dir, 'ctl.sock');
  // Its output goes through the companion manager, which passes it on to the arbiter's stdout as `ticker | tick`.
  writeFileSync(join(dir, 'ticker.mjs'), "export default () => { setInterval(() => console.log('tick'), 50); };\n");
  const cfg = join(dir, 'drover.config.json');
  writeFileSync(cfg, JSON.stringify({
    app: join(APPS, 'basic.js'), bind: [`127.0.0.1:${port}`], workers: 1, lanes: false, control_socket: sock,
    access_log: '-', // every request is a write of the worker's to stderr
    companions: [{ name: 'ticker', module: join(dir, 'ticker.mjs'), startsecs: 0.2 }],
  }));
  const d = start(['--config', cfg]);
  const worker = (await d.waitFor(/worker (\d+) booted/))[1]!;
  await d.waitFor(/companion manager \d+ running/);
  await d.waitFor(/ticker \| tick/);
  const ticker = /ticker\s+RUNNING\s+(\d+)/.exec(await ctlStatus(sock))?.[1];
  expect(ticker).toMatch(/^\d+$/);

  d.close();
  // The access log line of this request meets the closed pipe; so does the manager's next `ticker | tick` (were the manager to die, its companion would die with it).
  expect(await get(port)).toEqual({ status: 200, body: worker });
  await sleep(500);
  expect(await get(port)).toEqual({ status: 200, body: worker });
  expect(/ticker\s+RUNNING\s+(\d+)/.exec(await ctlStatus(sock))?.[1]).toBe(ticker);
  // The arbiter logs the reload, the manager re-reads its companions.
  process.kill(d.pid, 'SIGHUP');
  await answeredByOtherThan(port, worker);
  process.kill(d.pid, 'SIGTERM');
  expect(await d.exited).toEqual({ code: 0, signal: null });
  expect(group(d.pid)).toEqual([]);
});

test('with error_log a file, each process that finds stderr gone says so there once, and keeps serving', async () => {
  const dir = tmp();
  dirs.push(dir);
  const port = await freePort();
  const errorLog = join(dir, 'error.log');
  const d = start([join(APPS, 'basic.js'), '--bind', `127.0.0.1:${port}`, '--workers', '1', '--lanes', 'off', '--error-log', errorLog, '--access-log', '-']);
  // The access log's first line: the worker is serving, and stderr is read.
  let worker = '';
  for (let i = 0; i < 150 && worker === ''; i++) {
    const r = await get(port).catch(() => null);
    if (r?.status === 200) worker = r.body;
    else await sleep(100);
  }
  await d.waitFor(/"GET \/ HTTP\/1.1" 200/);
  d.close();
  for (let i = 0; i < 5; i++) {
    expect(await get(port)).toEqual({ status: 200, body: worker });
    await sleep(100);
  }
  // The line goes out with the worker's next log line: an error of the app's.
  expect((await get(port, '/boom')).status).toBe(500);
  expect(await get(port)).toEqual({ status: 200, body: worker });
  const lines = readFileSync(errorLog, 'utf8').split('\n').filter((l) => l.includes('stderr'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^\\[[^\\]]+\\] \\[${worker}\\] \\[WARNING\\] stderr cannot be written \\(EPIPE: its reader is gone\\)`));
  process.kill(d.pid, 'SIGTERM');
  expect(await d.exited).toEqual({ code: 0, signal: null });
  expect(group(d.pid)).toEqual([]);
});
