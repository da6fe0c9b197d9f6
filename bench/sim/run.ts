// bench/sim: how fast chaos runs go. For each named scenario, a batch of
// seeds run one after another in this process: simulated seconds per wall
// second, runs per second, kernel events per second. Then the reference
// point of issue 6 — `mixed` with 4 workers, 2 slow workers, 3 companions
// and 200 requests per simulated second — and the same topology at lower
// request rates down to none, because the rate is what sets the cost: an
// idle simulated second is nearly free, each HTTP request runs Node's own
// client and server code over simulated sockets. The idle row and
// node:http's own speed (floor.ts) say how much of the target's budget is
// left to a request.
//
//   npm run bench:sim               full run: prints, writes bench/results/sim.json and .md
//   npm run bench:sim -- --quick    short run for CI: prints, writes nothing
//
// Options (print, write nothing): --seeds N per scenario (default 20).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generate, SCENARIOS, type Scenario } from '../../src/chaos/scenario.js';
import { runScenario } from '../../src/chaos/run.js';
import { OS_RATES } from '../../src/chaos/scenario.js';
import { ExitSignal } from '../../src/sim/index.js';
import { cli, fmt, table } from '../lib/report.js';
import { httpServerFloor } from './floor.js';

// A simulated process that was killed may still have host callbacks queued; they end with ExitSignal.
process.on('uncaughtException', (e) => {
  if (!(e instanceof ExitSignal)) throw e;
});

const { progress, positive } = cli('sim');
const { values: opt } = parseArgs({ options: { quick: { type: 'boolean', default: false }, seeds: { type: 'string' } }, strict: true });
const quick = opt.quick!;
const seeds = opt.seeds ? positive('seeds', opt.seeds) : quick ? 3 : 20;
const write = !quick && opt.seeds === undefined;
const DURATION = 30_000;

interface Row {
  name: string;
  runs: number;
  simS: number;
  wallS: number;
  events: number;
  requests: number;
  failed: number;
}

async function batch(name: string, make: (seed: bigint) => Scenario, n: number): Promise<Row> {
  const row: Row = { name, runs: 0, simS: 0, wallS: 0, events: 0, requests: 0, failed: 0 };
  for (let i = 1; i <= n; i++) {
    const s = make(BigInt(i));
    const t0 = performance.now();
    const r = await runScenario(s);
    row.wallS += (performance.now() - t0) / 1000;
    row.simS += r.simulatedMs / 1000;
    row.events += r.events;
    row.requests += r.requests.sent;
    row.runs++;
    if (r.violation) row.failed++;
  }
  progress(`${name}: ${row.runs} runs, ${(row.simS / row.wallS).toFixed(0)}x`);
  return row;
}

/** The issue's reference topology at `rate` requests per simulated second, the seed's faults kept, with the kernel's own. */
const reference = (rate: number) => (seed: bigint): Scenario => {
  const base = generate(seed, { name: 'mixed', durationMs: DURATION });
  return {
    ...base,
    topology: {
      ...base.topology, workers: 4, minWorkers: 4, maxWorkers: 4, slowWorkers: 2, spareWorkers: 0,
      companions: [0, 1, 2].map((i) => ({ name: `c${i}`, behaviour: 'cooperative' as const })),
      oneShots: [], // the reference topology of issue 6: three daemons, no jobs
    },
    load: { ...base.load, rate },
    // The kernel's own faults too (issue 15: the speed counts with them on), each kind at its base rate.
    osFaults: { ...OS_RATES },
  };
};

const rows: Row[] = [];
for (const name of SCENARIOS) rows.push(await batch(name, (seed) => generate(seed, { name, durationMs: DURATION }), seeds));
const refRuns = quick ? 1 : seeds;
for (const rate of [200, 50, 10, 0]) rows.push(await batch(`mixed, reference topology, ${rate} req/s`, reference(rate), refRuns));

progress('node:http server alone');
const floor = await httpServerFloor(quick ? 20_000 : 200_000);

const head = ['scenario', 'runs', 'failed', 'simulated s', 'wall s', 'sim / wall', 'runs/s', 'events/s', 'requests/s (wall)'];
const body = rows.map((r) => [
  r.name, String(r.runs), String(r.failed), fmt(r.simS), (r.wallS).toFixed(1), `${(r.simS / r.wallS).toFixed(0)}x`,
  (r.runs / r.wallS).toFixed(2), fmt(r.events / r.wallS), fmt(r.requests / r.wallS),
]);
const ref = rows.find((r) => r.name.includes(' 200 req/s'))!;
const refX = ref.simS / ref.wallS;
const idle = rows.find((r) => r.name.includes(' 0 req/s'))!;
const tenRow = rows.find((r) => r.name.includes(' 10 req/s'))!;
const ten = tenRow.simS / tenRow.wallS;
const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
// At 1000x a simulated second has 1 ms of wall time: what the topology takes with no load, and what that leaves a request.
const idleMs = (idle.wallS / idle.simS) * 1000;
const leftUs = ((1 - idleMs) * 1000) / 200;
const lines = [
  `sim: chaos runs of ${DURATION / 1000} simulated s each (plus settling and shutdown), seeds 1..${seeds} per scenario, one process`,
  '',
  ...table(head, 'lrrrrrrrr', body),
  '',
  `Reference (issue 6): mixed, 4 workers, 2 slow workers, 3 companions, 200 requests per simulated second: ${refX.toFixed(1)}x simulated over wall time.`,
  `Targets (issue 15): at 200 req/s, 30% of the node:http bound below: ${pct(refX * 200 / floor)} (${refX * 200 / floor >= 0.3 ? 'met' : 'not met'});`,
  `at 10 req/s, 1000x: ${ten.toFixed(0)}x (${ten >= 1000 ? 'met' : 'not met'}). With the kernel's own faults on (each kind at its base rate) besides the mixed scenario's, and app code on virtual time.`,
  '',
  `The floor, same run: node:http's server alone answers ${fmt(floor)} GETs per wall second on one kept-alive in-memory connection`,
  `(no kernel, no client, no sockets). Every simulated request runs at least that code, so at 200 requests per simulated second`,
  `no simulator of drover's real workers can exceed ${fmt(floor / 200)}x; the reference run reaches ${((refX * 200) / floor * 100).toFixed(0)}% of that bound.`,
  '',
  `The budget of the 1000x target: 1 ms of wall time per simulated second. The same topology with no load (boot and shutdown included)`,
  `takes ${idleMs.toFixed(2)} ms of it, which leaves ${leftUs > 0 ? `${leftUs.toFixed(1)} µs` : 'nothing'} for each of 200 requests; node:http's server alone takes ${(1e6 / floor).toFixed(1)} µs a request.`,
];
const text = lines.join('\n');
console.log(text);
if (write) {
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString().slice(0, 10);
  writeFileSync(join(dir, 'sim.md'), `# bench/sim\n\n\`npm run bench:sim\`, ${when}\n\n\`\`\`\n${text}\n\`\`\`\n\nNode ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} CPUs\n`);
  writeFileSync(join(dir, 'sim.json'), JSON.stringify({ date: when, node: process.version, seeds, durationMs: DURATION, rows, httpServerFloorPerS: Math.round(floor) }, null, 2) + '\n');
}
