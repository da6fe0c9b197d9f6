// bench/sim's measuring process (run.ts starts it): plain node on drover's
// build (dist/), what `drover sim` runs — not the sources through tsx, whose
// loader and source-mapped stack traces made the same runs a quarter slower.
// It runs the batches it is given, one after another (later rows run on a
// warm JIT, as a long `drover sim` batch does), then node:http's floor, and
// prints one JSON line: { rows, floor }.
//
//   node bench/sim/child.mjs '{"batches":[{"name":…,"scenario":…,"rate":…,"seeds":N,"durationMs":…}],"floorRequests":N}'
//   node --import tsx bench/sim/child.mjs '{"build":"src",…}'     the same on the sources
//
// `rate` present: the reference topology of issue 6 at that rate, with the
// kernel's own faults at their base rates (issue 15); absent: the named
// scenario as generated.
import * as http from 'node:http';
import { Duplex } from 'node:stream';

const spec = JSON.parse(process.argv[2]);
// "dist" (the default), or "src": the sources, run with --import tsx, as the tests run them.
const build = spec.build ?? 'dist';
const { generate, OS_RATES } = await import(`../../${build}/chaos/scenario.js`);
const { runScenario } = await import(`../../${build}/chaos/run.js`);
const { ExitSignal } = await import(`../../${build}/sim/index.js`);

// A simulated process that was killed may still have host callbacks queued; they end with ExitSignal.
process.on('uncaughtException', (e) => {
  if (!(e instanceof ExitSignal)) throw e;
});

/** The reference topology at `rate` requests per simulated second, the seed's faults kept, with the kernel's own. */
function reference(seed, rate, durationMs) {
  const base = generate(seed, { name: 'mixed', durationMs });
  return {
    ...base,
    topology: {
      ...base.topology, workers: 4, minWorkers: 4, maxWorkers: 4, slowWorkers: 2, spareWorkers: 0,
      companions: [0, 1, 2].map((i) => ({ name: `c${i}`, behaviour: 'cooperative' })),
      oneShots: [], // three daemons, no jobs
    },
    load: { ...base.load, rate },
    osFaults: { ...OS_RATES },
  };
}

async function batch(b) {
  const row = { name: b.name, runs: 0, simS: 0, wallS: 0, events: 0, requests: 0, failed: 0 };
  for (let i = 1; i <= b.seeds; i++) {
    const s = b.rate === undefined ? generate(BigInt(i), { name: b.scenario, durationMs: b.durationMs }) : reference(BigInt(i), b.rate, b.durationMs);
    const t0 = performance.now();
    const r = await runScenario(s);
    row.wallS += (performance.now() - t0) / 1000;
    row.simS += r.simulatedMs / 1000;
    row.events += r.events;
    row.requests += r.requests.sent;
    row.runs++;
    if (r.violation) row.failed++;
  }
  if (row.runs > 0) process.stderr.write(`[bench:sim] ${b.name}: ${row.runs} runs, ${(row.simS / row.wallS).toFixed(0)}x\n`);
  return row;
}

// The floor under a simulated request: node:http's server alone, in this
// process, answering GETs on one kept-alive in-memory connection — no
// kernel, no client parser, no sockets, the most favourable case there is.
// Every simulated request runs at least this code, so (its requests per
// wall second) / (simulated requests per simulated second) bounds how much
// faster than real time any simulator running drover's real workers can go.
async function httpServerFloor(n) {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${req.url} v1 1`);
  });
  let answered = null;
  let seen = 0;
  // The server's side of the connection; what it writes is only counted.
  const conn = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      // One answer per request: its head and body come in one write.
      if (chunk.includes('HTTP/1.1 ')) seen++;
      cb();
      const a = answered;
      answered = null;
      a?.();
    },
  });
  server.emit('connection', conn);
  const one = (i) =>
    new Promise((resolve) => {
      answered = resolve;
      conn.push(`GET /f?id=r${i} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nconnection: keep-alive\r\n\r\n`);
    });
  for (let i = 0; i < 2000; i++) await one(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await one(i);
  const s = (performance.now() - t0) / 1000;
  conn.destroy();
  server.close();
  if (seen < n) throw new Error(`httpServerFloor: ${seen} answers for ${n + 2000} requests`);
  return n / s;
}

const rows = [];
for (const b of spec.batches) rows.push(await batch(b));
let floor = null;
if (spec.floorRequests > 0) {
  process.stderr.write('[bench:sim] node:http server alone\n');
  floor = await httpServerFloor(spec.floorRequests);
}
process.stdout.write(JSON.stringify({ rows, floor }) + '\n');
