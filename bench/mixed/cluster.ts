// The node:cluster peer of bench/mixed: a primary that forks N workers, each
// serving bench/mixed/app.js with node:http's defaults, with node:cluster's
// default scheduling on Linux (SCHED_RR: the primary accepts and hands each
// connection to the next worker in turn, busy or not).
//
//   node --import tsx bench/mixed/cluster.ts PORT N
//
// Prints `ready` on stdout once every worker listens; TERM stops the workers
// and the primary.
import cluster from 'node:cluster';
import { createServer, type RequestListener } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { clusterPrimary } from '../lib/cluster.js';

const [portArg, countArg] = process.argv.slice(2);
const port = Number(portArg);
const n = Number(countArg);

if (cluster.isPrimary) {
  if (!Number.isInteger(port) || !Number.isInteger(n) || n <= 0) {
    console.error('usage: cluster.ts PORT N');
    process.exit(2);
  }
  clusterPrimary(n);
} else {
  const APP = pathToFileURL(join(import.meta.dirname, 'app.js')).href;
  const app = ((await import(APP)) as { default: RequestListener }).default;
  // Node's defaults, as drover's workers have them (keep-alive timeout 5 s).
  createServer(app).listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
