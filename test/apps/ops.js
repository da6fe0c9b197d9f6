// A test app for operations on the real OS (admin listener, recycling, request_timeout):
//   /               the worker's pid
//   /burn?ms=N      holds the event loop for N ms, then its pid
//   /leak?mb=N      keeps N MiB more for as long as the worker lives, then its pid
//   /hang, /hang/*  never answers (its work goes on; only request_timeout ends the wait)
//   /late?ms=N      begins its answer after N ms: past a request_timeout, into a response already answered 504
//   /status?code=N  answers with status N
// OPS_BOOT_MS: the factory takes this long before the worker serves.
const kept = [];

export default async function createOps() {
  const boot = Number(process.env.OPS_BOOT_MS ?? 0);
  if (boot > 0) await new Promise((r) => setTimeout(r, boot));
  return (req, res) => {
    const url = new URL(req.url, 'http://x');
    const n = (k, d) => Number(url.searchParams.get(k) ?? d);
    switch (url.pathname.startsWith('/hang/') ? '/hang' : url.pathname) {
      case '/burn': {
        const end = performance.now() + n('ms', 200);
        while (performance.now() < end);
        return res.end(String(process.pid));
      }
      case '/leak': {
        const b = Buffer.alloc(n('mb', 8) * 1024 * 1024, 1); // filled: the pages are resident
        kept.push(b);
        return res.end(String(process.pid));
      }
      case '/hang':
        return;
      case '/late':
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('late ');
          res.end(String(process.pid));
        }, n('ms', 1000));
        return;
      case '/status':
        res.statusCode = n('code', 200);
        return res.end(String(process.pid));
      default:
        return res.end(String(process.pid));
    }
  };
}
