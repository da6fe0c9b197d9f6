// The node:cluster primary of the benchmarks' peer servers (bench/http,
// bench/mixed): forks n workers, prints "ready" once all listen, fails the
// benchmark if one dies, and takes the workers down on TERM.
import cluster from 'node:cluster';

export function clusterPrimary(n: number): void {
  let listening = 0;
  let stopping = false;
  cluster.on('listening', () => {
    if (++listening === n) console.log('ready');
  });
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) {
      console.error(`cluster worker ${w.process.pid} died (${signal ?? code}) during the benchmark`);
      process.exit(1);
    }
  });
  process.on('SIGTERM', () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    process.exit(0);
  });
  for (let i = 0; i < n; i++) cluster.fork();
}
