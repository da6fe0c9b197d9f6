// The baselines of bench/http, each serving bench/http/hello.js:
//
//   node --import tsx bench/http/server.ts single PORT
//   node --import tsx bench/http/server.ts cluster PORT N rr|none
//
// `single` is one node:http process. `cluster` is node:cluster with N workers;
// `rr` is cluster.SCHED_RR (Node's default everywhere but Windows: the primary
// accepts and hands connections round-robin to the workers over IPC), `none`
// is cluster.SCHED_NONE (the workers accept from the shared listening socket
// themselves and the kernel picks which one wakes — what drover does).
// Prints `ready` on stdout once every process listens.
import cluster from 'node:cluster';
import { createServer, type RequestListener } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { clusterPrimary } from '../lib/cluster.js';

const APP = pathToFileURL(join(import.meta.dirname, 'hello.js')).href;
const [mode, portArg, countArg, policy] = process.argv.slice(2);
const port = Number(portArg);

async function serve(onListening: () => void): Promise<void> {
  const app = ((await import(APP)) as { default: RequestListener }).default;
  // Node's defaults, as drover's workers have them (keep-alive timeout 5 s).
  createServer(app).listen(port, '127.0.0.1', onListening);
}

if (mode === 'single') {
  await serve(() => console.log('ready'));
  process.on('SIGTERM', () => process.exit(0));
} else if (mode === 'cluster') {
  if (cluster.isPrimary) {
    const n = Number(countArg);
    if (policy !== 'rr' && policy !== 'none') throw new Error(`scheduling policy: rr or none, not ${policy}`);
    cluster.schedulingPolicy = policy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
    clusterPrimary(n);
  } else {
    await serve(() => {});
    process.on('SIGTERM', () => process.exit(0));
  }
} else {
  console.error('usage: server.ts single PORT | server.ts cluster PORT N rr|none');
  process.exit(2);
}
