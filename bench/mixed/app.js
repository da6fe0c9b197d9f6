// The app of bench/mixed (and bench/hostile), served unchanged by every target: drover loads it
// as its app module, and bench/mixed/cluster.ts (node:cluster) imports its
// default export. Two routes:
//
//   GET /work   CPU-bound: a real busy loop on the event loop until
//               performance.now() has passed 200 ms (no sleep, no await:
//               the process can do nothing else meanwhile)
//   GET /big    (bench/hostile) a 4 MiB answer, made afresh for each request
//               as an app renders one, so that a client that never reads it
//               holds 4 MiB of the worker's memory
//   /upload     (bench/hostile) reads the whole request body, then answers
//               with its size
//   anything    hello world, at once
//
// All but /big name the process that answered, so that the benchmark can
// tell which worker served a connection and which process ran /work.
export const WORK_MS = 200;
export const BIG_BYTES = 4 * 1024 * 1024;

export default function mixed(req, res) {
  res.setHeader('content-type', 'text/plain');
  if (req.url === '/work') {
    const end = performance.now() + WORK_MS;
    let spins = 0;
    while (performance.now() < end) spins++;
    res.end(`Worked ${WORK_MS} ms (${spins} spins) in worker ${process.pid}\n`);
    return;
  }
  if (req.url === '/big') {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(Buffer.alloc(BIG_BYTES, 0x61));
    return;
  }
  if (req.url === '/upload') {
    let bytes = 0;
    req.on('data', (d) => (bytes += d.length));
    req.on('end', () => res.end(`Read ${bytes} bytes in worker ${process.pid}\n`));
    return;
  }
  res.end(`Hello from worker ${process.pid}\n`);
}
