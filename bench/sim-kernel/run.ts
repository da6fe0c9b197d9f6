// bench/sim-kernel: the simulated kernel's speed on the reference workload
// (workload.ts), against a bare event loop running the same work in the same
// process (bare.ts). Prints a table and writes bench/results/sim-kernel.json.
//
//   npm run bench             full run, writes the results file
//   npm run bench -- --quick  a short run for CI (prints, writes nothing)
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { Kernel } from '../../src/sim/index.js';
import { runBare } from './bare.js';
import { benchPrograms, PEERS, ROUNDS } from './workload.js';

const quick = process.argv.includes('--quick');
const rounds = quick ? 40 : ROUNDS;
const reps = quick ? 3 : 9;

interface Sample { events: number; wallMs: number; simMs: number }

async function kernelOnce(seed: number): Promise<Sample> {
  const k = new Kernel({ seed, programs: [benchPrograms] });
  const t0 = performance.now();
  const pid = k.spawn({ program: 'hub', args: [String(PEERS), String(rounds)], channel: false });
  await k.run({ stopWhen: () => k.exitStatus(pid) !== undefined });
  const wallMs = performance.now() - t0;
  const e = k.exitStatus(pid);
  if (!e || e.code !== 0) throw new Error(`hub did not finish cleanly: ${JSON.stringify(e)}\n${k.output.stderr}`);
  return { events: k.events, wallMs, simMs: k.now() };
}

async function bareOnce(seed: number): Promise<Sample> {
  const t0 = performance.now();
  const r = await runBare(PEERS, rounds, seed);
  return { events: r.events, wallMs: performance.now() - t0, simMs: r.simMs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function summarize(samples: Sample[]) {
  const wallMs = median(samples.map((x) => x.wallMs));
  const events = median(samples.map((x) => x.events));
  const simMs = median(samples.map((x) => x.simMs));
  return { events, wallMs, bestMs: Math.min(...samples.map((x) => x.wallMs)), simPerWall: simMs / wallMs, eventsPerSec: events / (wallMs / 1000) };
}

// Warm-up (JIT, module loading), then the two loops alternate, so that a
// noisy moment on the machine hits both rather than picking a winner.
await bareOnce(1);
await kernelOnce(1);
const bareSamples: Sample[] = [];
const kernelSamples: Sample[] = [];
for (let i = 0; i < reps; i++) {
  bareSamples.push(await bareOnce(100 + i));
  kernelSamples.push(await kernelOnce(100 + i));
}
const bare = summarize(bareSamples);
const kernel = summarize(kernelSamples);
const rows = [
  ['bare event loop', bare],
  ['simulated kernel', kernel],
] as const;

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const slowdown = kernel.wallMs / bare.wallMs;
const report = [
  `sim-kernel: ${PEERS} processes x ${rounds} rounds (sleep, burn, message via a hub), median of ${reps} alternating runs each`,
  '',
  '| loop             |    events |  wall ms | best ms |   events/s | sim s / wall s |',
  '|------------------|----------:|---------:|--------:|-----------:|---------------:|',
  ...rows.map(([name, r]) =>
    `| ${name.padEnd(16)} | ${fmt(r.events).padStart(9)} | ${fmt(r.wallMs, 1).padStart(8)} | ${fmt(r.bestMs, 1).padStart(7)} | ${fmt(r.eventsPerSec).padStart(10)} | ${fmt(r.simPerWall, 1).padStart(14)} |`),
  '',
  `kernel wall time / bare wall time for the same work: ${slowdown.toFixed(2)}x of the medians, ${(kernel.bestMs / bare.bestMs).toFixed(2)}x of the best runs (target: at most 2x)`,
].join('\n');
console.log('\n' + report);

if (!quick) {
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'sim-kernel.json'), JSON.stringify({
    bench: 'sim-kernel',
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model,
    workload: { peers: PEERS, rounds, reps },
    bare, kernel, slowdown,
  }, null, 2) + '\n');
  writeFileSync(join(dir, 'sim-kernel.md'), `${report}\n\nNode ${process.version}, ${cpus()[0]?.model}, ${new Date().toISOString().slice(0, 10)}\n`);
}
