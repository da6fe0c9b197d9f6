// A test app: / answers with the worker's pid; /slow?ms=N answers after N ms;
// /spin blocks the event loop forever (a hung worker); /boom throws.
export default function basic(req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/slow') {
    setTimeout(() => res.end(`slow ${process.pid}\n`), Number(url.searchParams.get('ms') ?? 1000));
    return;
  }
  if (url.pathname === '/spin') {
    for (;;);
  }
  if (url.pathname === '/boom') throw new Error('boom on purpose');
  res.end(String(process.pid));
}
