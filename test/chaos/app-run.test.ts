// drover sim on a user's own deployment (issue 15, item 2): the config read
// as drover reads it and rewritten for the simulator, and what a run reports
// of the user's app — code that threw, 5xx, lost requests, companions past
// their stop_timeout, the network outside drover — with the same seed
// giving the same run.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { blame, runApp } from '../../src/chaos/app-run.js';
import { loadDeployment, MOUNT, SIM_CPUS, type Deployment } from '../../src/chaos/deployment.js';
import { cpuCount } from '../../src/os/node/cpus.js';
import { parseMix } from '../../src/chaos/mix.js';
import { ConfigError } from '../../src/runtime/config/errors.js';

const DIR = join(import.meta.dirname, 'fixtures', 'user-app');
const ROOT = join(import.meta.dirname, '..', '..');

async function deployment(requests: unknown[] = ['GET /'], config = 'drover.config.js'): Promise<Deployment> {
  const d = await loadDeployment({ config, cwd: DIR });
  return { ...d, mix: parseMix({ rate: 20, requests }, config) };
}

describe('the deployment', () => {
  test('paths move under the mount; the simulator sets bind, socket and log; the mix is the config\'s', async () => {
    const d = await loadDeployment({ config: 'drover.config.js', cwd: DIR });
    expect(d.config.app).toBe(`${MOUNT}/app.js`);
    expect(d.config.bind).toEqual(['127.0.0.1:8000']);
    expect(d.config.error_log).toBe('/var/log/drover.log');
    expect(d.config.workers).toBe(2);
    expect(d.config).not.toHaveProperty('sim');
    expect(d.mix.durationMs).toBe(5000);
    expect(d.mix.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /']);
  });

  test('a module companion runs from the mount; a command becomes a stand-in, and the report says so', async () => {
    const d = await loadDeployment({ config: 'stubborn.config.json', cwd: DIR });
    const [stubborn, mailer] = d.config.companions as Record<string, unknown>[];
    expect(stubborn).toMatchObject({ name: 'stubborn', module: `${MOUNT}/stubborn.js#default`, stop_timeout: 1 });
    expect(mailer).toMatchObject({ name: 'mailer', command: ['sim-stand-in', 'mailer'], stdout: '/var/log/companion-mailer.out' });
    expect(d.notes.join('\n')).toMatch(/companion mailer runs a command \(celery worker\), which the simulator cannot run/);
  });

  test('--app alone: drover\'s defaults and GET / at 20 a second', async () => {
    const d = await loadDeployment({ app: 'examples/hello.js', cwd: ROOT });
    expect(d.config.app).toBe(`${MOUNT}/examples/hello.js`);
    expect(d.mix.rate).toBe(20);
    expect(d.mix.requests).toHaveLength(1);
  });

  test('the worker counts are those of the simulated machine, whatever CPUs the host has', async () => {
    const counts = async () => {
      const d = await loadDeployment({ app: 'examples/hello.js', cwd: ROOT });
      const { workers, min_workers, max_workers, workers_limit } = d.config;
      return { workers, min_workers, max_workers, workers_limit };
    };
    const sim = { workers: SIM_CPUS, min_workers: SIM_CPUS, max_workers: SIM_CPUS, workers_limit: 4 * SIM_CPUS };
    expect(await counts()).toEqual(sim);
    // A host of 1 CPU: a cgroup quota of one CPU, read from a fake cgroup tree (src/os/node/cpus.ts).
    const dir = mkdtempSync(join(tmpdir(), 'drover-cpus-'));
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'app', 'cpu.max'), '100000 100000\n');
    writeFileSync(join(dir, 'cgroup'), '0::/app\n');
    const saved = { root: process.env.DROVER_CGROUP_ROOT, proc: process.env.DROVER_PROC_CGROUP };
    process.env.DROVER_CGROUP_ROOT = dir;
    process.env.DROVER_PROC_CGROUP = join(dir, 'cgroup');
    try {
      expect(cpuCount()).toBe(1);
      expect(await counts()).toEqual(sim);
    } finally {
      for (const [k, v] of [['DROVER_CGROUP_ROOT', saved.root], ['DROVER_PROC_CGROUP', saved.proc]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('an app outside the directory drover sim mounts is refused, naming it and the fix', async () => {
    const e = await loadDeployment({ config: 'outside.config.json', cwd: DIR }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/app \.\.\/\.\.\/\.\.\/\.\.\/examples\/hello\.js is outside .*user-app.*run drover sim from a directory that holds it/);
  });

  test('an app that is not there, or a config file that is not, is refused before any run', async () => {
    const e = await loadDeployment({ app: 'no-such-app.js', cwd: DIR }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/^app no-such-app\.js does not exist \(looked for \/.*user-app\/no-such-app\.js\)$/);
    const bad = await loadDeployment({ config: 'missing.config.js', cwd: DIR }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(ConfigError);
    expect((bad as Error).message).toMatch(/missing\.config\.js does not exist/);
  });
});

describe('a run of the user\'s app', () => {
  const opts = { durationMs: 3000 };

  test('a healthy route: every request answered 200, nothing found, and the same seed gives the same run', async () => {
    const d = await deployment(['GET /']);
    const a = await runApp(d, 7n, opts);
    expect(a.violation).toBeNull();
    expect(a.findings.filter((f) => f.kind !== 'lost')).toEqual([]);
    expect(a.statuses['200']).toBeGreaterThan(20);
    const b = await runApp(d, 7n, opts);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.statuses).toEqual(a.statuses);
  });

  test('a throw from a timer in app code is an uncaught exception of the worker, with its message and simulated time', async () => {
    const r = await runApp(await deployment(['GET /boom-later']), 1n, { ...opts, faults: [] });
    const crash = r.findings.find((f) => f.kind === 'crash');
    expect(crash).toBeDefined();
    expect(crash!.text).toBe('Error: boom from a timer');
    expect(crash!.where).toMatch(/^worker \d+$/);
    expect(crash!.at).toBeGreaterThan(0);
    // drover replaces the worker: the load is still answered.
    expect(r.statuses['200']).toBeGreaterThan(10);
  });

  // The worker died and its requests were lost, named after no fault: nothing said the app ended it.
  test('process.exit() called from app code in a handler is the app\'s finding, naming the code and where it was called', async () => {
    const r = await runApp(await deployment(['GET /exit', 'GET /']), 1n, { ...opts, faults: [] });
    expect(r.violation).toBeNull();
    const exits = r.findings.filter((f) => f.kind === 'exit');
    expect(exits.length).toBeGreaterThan(0);
    expect(exits[0]!.where).toMatch(/^(slow-)?worker \d+$/);
    expect(exits[0]!.text).toMatch(/^(slow-)?worker exited 4: process\.exit\(\) called from \S*app\.js:\d+$/);
    expect(r.counts.exit).toBeGreaterThanOrEqual(exits.length);
    // What it lost is named after it.
    const lost = r.findings.filter((f) => f.kind === 'lost');
    expect(lost.every((f) => f.after === 'process.exit()')).toBe(true);
  });

  test('an unhandled rejection in app code crashes its worker, as Node\'s default does, and is reported as one', async () => {
    const r = await runApp(await deployment(['GET /reject']), 1n, { ...opts, faults: [] });
    const found = r.findings.find((f) => f.kind === 'rejection' || f.kind === 'crash');
    expect(found?.text).toMatch(/nobody caught me/);
    expect(r.counts.rejection).toBeGreaterThan(0);
  });

  test('an app that listens for uncaughtException and unhandledRejection keeps its workers, as under Node: nothing is reported', async () => {
    const d = await loadDeployment({ config: 'drover.config.js', cwd: DIR });
    const handled = { ...d, config: { ...d.config, app: `${MOUNT}/handled.js` }, mix: parseMix({ rate: 20, requests: ['GET /boom-later', 'GET /reject', 'GET /'] }, 'x') };
    const r = await runApp(handled, 1n, { ...opts, faults: [], record: true });
    expect(r.violation).toBeNull();
    expect(r.findings).toEqual([]);
    expect(r.statuses['200']).toBeGreaterThan(40);
    // The two workers served the whole run: none died of the errors, and their listeners saw them.
    expect(r.timeline.filter((l) => / spawn \d+ worker /.test(l))).toHaveLength(2);
    expect(r.timeline.some((l) => / handled Error: boom from a timer$/.test(l))).toBe(true);
    expect(r.timeline.some((l) => / handled Error: nobody caught me$/.test(l))).toBe(true);
  });

  test('5xx answers are counted by route with their bodies; they do not fail the run by themselves', async () => {
    const r = await runApp(await deployment(['GET /fail', 'GET /']), 3n, { ...opts, faults: [] });
    expect(r.violation).toBeNull();
    expect(r.statuses['500']).toBeGreaterThan(0);
    const f = r.findings.find((x) => x.kind === '5xx')!;
    expect(f.where).toBe('GET /fail');
    expect(f.text).toBe('500 "failed on purpose"');
  });

  test('a request lost to a KILL of the arbiter is reported as lost, named after that KILL and its time (a TTOU follows it; which one is blamed is the pure test below)', async () => {
    const faults = [{ at: 1500, kind: 'kill-arbiter', pick: 0 }, { at: 1550, kind: 'ttou', pick: 0 }] as const;
    const r = await runApp(await deployment(['GET /slow']), 1n, { ...opts, faults });
    const lost = r.findings.filter((f) => f.kind === 'lost');
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.every((f) => f.after === 'kill-arbiter')).toBe(true);
    expect(lost[0]!.text).toMatch(/no answer: .*\(after kill-arbiter at 1500 ms\)$/);
  });

  test('a lost request\'s cause: the last kill of the window, else its last fault, else none', () => {
    const f = (at: number, text: string) => ({ at, text });
    expect(blame([f(100, 'hup'), f(3000, 'kill-arbiter'), f(3001, 'ttou')], 2000)?.text).toBe('kill-arbiter');
    expect(blame([f(3000, 'kill-worker'), f(3100, 'kill-arbiter'), f(3200, 'hup')], 2000)?.text).toBe('kill-arbiter');
    expect(blame([f(100, 'kill-worker'), f(3000, 'ttin'), f(3001, 'hup')], 2000)?.text).toBe('hup');
    expect(blame([f(100, 'kill-worker')], 2000)).toBeNull();
  });

  test('a route that reads a file asynchronously (fs.promises, fs callback) is answered, and the seed replays', async () => {
    const d = await deployment(['GET /file']);
    const a = await runApp(d, 2n, { ...opts, faults: [] });
    expect(a.violation).toBeNull();
    expect(a.findings).toEqual([]);
    expect(a.statuses).toEqual({ 200: expect.any(Number) });
    expect(a.sent).toBe(a.statuses['200']);
    const b = await runApp(d, 2n, { ...opts, faults: [] });
    expect(b.traceHash).toBe(a.traceHash);
  });

  test('a route that never ends its answer (request_timeout off) is the app\'s finding by route, not a broken drover invariant', async () => {
    const r = await runApp(await deployment(['GET /forget', 'GET /marked']), 1n, { ...opts, faults: [] });
    expect(r.violation).toBeNull();
    const never = r.findings.filter((f) => f.kind === 'unanswered');
    expect(never.length).toBeGreaterThan(5);
    expect(never.every((f) => f.where === 'GET /forget')).toBe(true);
    expect(never[0]!.text).toMatch(/^sent at \d+ ms, handed to the app in worker \d+ at \d+ ms, never answered \(40 s after the faults stopped; request_timeout is off\)$/);
    expect(r.counts.unanswered).toBe(r.statuses.unanswered);
    expect(r.places).toEqual({ 'unanswered\tGET /forget': r.counts.unanswered });
    // The connections closed at the stop are not counted lost as well; GET /marked was answered throughout,
    // and its app never saw the header that marks each request.
    expect(r.statuses.lost).toBeUndefined();
    expect(r.statuses['200']! + r.statuses.unanswered!).toBe(r.sent);
    expect(r.statuses['200']).toBeGreaterThan(5);
  });

  test('a request drover drops before the app gets it (a planted defect) is still a broken invariant, even beside an app that never answers', async () => {
    const alone = await runApp(await deployment(['GET /']), 1n, { ...opts, faults: [], defects: ['worker-drops-request'] });
    expect(alone.violation?.invariant).toBe('convergence');
    expect(alone.violation!.message).toMatch(/\d+ request\(s\) without an end \(GET \/ sent at \d+ ms, never handed to the app;/);
    expect(alone.counts.unanswered).toBe(0);
    const both = await runApp(await deployment(['GET /forget', 'GET /']), 1n, { ...opts, faults: [], defects: ['worker-drops-request'] });
    expect(both.violation?.invariant).toBe('convergence');
    expect(both.violation!.message).toMatch(/request\(s\) without an end \(GET \/\S* sent at \d+ ms, never handed to the app/);
    expect(both.counts.unanswered).toBeGreaterThan(0);
  });

  // A crash of drover's own code in a worker was the app's (exit 3), and an app listening for
  // uncaughtException swallowed it whole (exit 0).
  test('a TypeError of drover\'s own worker code (a planted defect) is a crash of drover, not the app\'s, and is never handed to the app\'s uncaughtException listener', async () => {
    const plain = await runApp(await deployment(['GET /']), 1n, { ...opts, faults: [], defects: ['worker-timer-type-error'] });
    const own = plain.findings.filter((f) => f.kind === 'drover-crash');
    expect(own.length).toBeGreaterThan(0);
    expect(own[0]!.where).toMatch(/^(slow-)?worker \d+$/);
    expect(own[0]!.text).toMatch(/^TypeError: Cannot read properties of null \(reading 'sweep'\)/);
    expect(plain.counts.crash + plain.counts.rejection).toBe(0);
    const d = await loadDeployment({ config: 'drover.config.js', cwd: DIR });
    const handled = { ...d, config: { ...d.config, app: `${MOUNT}/handled.js` }, mix: parseMix({ rate: 20, requests: ['GET /'] }, 'x') };
    const listening = await runApp(handled, 1n, { ...opts, faults: [], record: true, defects: ['worker-timer-type-error'] });
    expect(listening.findings.filter((f) => f.kind === 'drover-crash').length).toBeGreaterThan(0);
    expect(listening.counts.crash + listening.counts.rejection).toBe(0);
    expect(listening.timeline.some((l) => / handled TypeError/.test(l))).toBe(false);
  });

  test('an app whose top level throws is the app\'s finding, its load error as drover logs it, and the run ends there: not a broken invariant', async () => {
    const d = await loadDeployment({ config: 'drover.config.js', cwd: DIR });
    const unloadable = { ...d, config: { ...d.config, app: `${MOUNT}/unloadable.js` } };
    const r = await runApp(unloadable, 1n, opts);
    expect(r.violation).toBeNull();
    const load = r.findings.filter((f) => f.kind === 'load');
    expect(load.length).toBeGreaterThan(0);
    expect(load[0]!.where).toMatch(/^worker \d+$/);
    expect(load[0]!.text).toMatch(/^cannot load app \/\S+\/unloadable\.js: Error: DATABASE_URL is not set\n/);
    expect(r.findings.filter((f) => f.kind !== 'load' && f.kind !== 'lost')).toEqual([]);
    expect(r.logTail.join('\n')).toMatch(/Worker failed to boot, shutting down: cannot load app .*unloadable\.js: Error: DATABASE_URL is not set/);
    // Ended at the halt, not after the 40 s settle and the stop.
    expect(r.simulatedMs).toBeLessThan(opts.durationMs);
  });

  test('the network outside drover: a clear error at the call, naming the module', async () => {
    const r = await runApp(await deployment(['GET /fetch']), 1n, { ...opts, faults: [] });
    const f = r.findings.find((x) => x.kind === '5xx');
    expect(f?.text).toMatch(/ERR_DROVER_NOT_SIMULATED: drover sim: the network outside drover is not simulated: .*app\.js.*fetch/);
  });

  // The runs of a seed saw each other's files: --determinism's second run read the log the first one wrote
  // (a nondeterminism blamed on drover), and the user's own file grew with every simulated request.
  test('a route that writes a host file is refused at the call, naming it; no file is written, and the seed replays', async () => {
    const log = join(DIR, 'visits.log');
    rmSync(log, { force: true });
    const d = await deployment(['GET /visit']);
    const a = await runApp(d, 3n, { ...opts, faults: [] });
    const b = await runApp(d, 3n, { ...opts, faults: [] });
    expect(b.traceHash).toBe(a.traceHash);
    expect(existsSync(log)).toBe(false);
    expect(a.violation).toBeNull();
    expect(a.statuses).toEqual({ 500: a.sent });
    expect(a.logTail.join('\n')).toMatch(/error handling GET \/visit: Error: drover sim: writes to files on the host are not simulated .*: \S*app\.js called fs\.appendFileSync\(\)/);
    // The report says so too, by call and module, each time: an app (express) may make it a plain 500, or swallow it.
    expect(a.counts['not-simulated']).toBe(a.sent);
    expect(Object.keys(a.places).filter((k) => k.startsWith('not-simulated'))).toEqual([expect.stringMatching(/^not-simulated\t\S*app\.js called fs\.appendFileSync\(\)$/)]);
  });

  test('a companion that ignores SIGTERM is reported past its stop_timeout; the stand-in of a command companion stops cleanly', async () => {
    const d = await loadDeployment({ config: 'stubborn.config.json', cwd: DIR });
    const r = await runApp(d, 1n, { durationMs: 3000, faults: [] });
    expect(r.violation).toBeNull();
    const late = r.findings.filter((f) => f.kind === 'stop-timeout');
    expect(late.map((f) => f.where)).toEqual(['companion stubborn']);
    expect(late[0]!.text).toMatch(/did not exit 1(\.0)? ?s after SIGTERM/);
  });
});
