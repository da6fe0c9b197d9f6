// The app of bench/mixed, served unchanged by every target: drover loads it
// as its app module, and bench/mixed/cluster.ts (node:cluster) imports its
// default export. Two routes:
//
//   GET /work   CPU-bound: a real busy loop on the event loop until
//               performance.now() has passed 200 ms (no sleep, no await:
//               the process can do nothing else meanwhile)
//   anything    hello world, at once
//
// Both name the process that answered, so that the benchmark can tell which
// worker served a connection and which process ran /work.
export const WORK_MS = 200;

export default function mixed(req, res) {
  res.setHeader('content-type', 'text/plain');
  if (req.url === '/work') {
    const end = performance.now() + WORK_MS;
    let spins = 0;
    while (performance.now() < end) spins++;
    res.end(`Worked ${WORK_MS} ms (${spins} spins) in worker ${process.pid}\n`);
    return;
  }
  res.end(`Hello from worker ${process.pid}\n`);
}
