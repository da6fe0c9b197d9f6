// A test app for lanes on the real OS:
//   /               the worker's pid
//   /burn?ms=N      holds the event loop for N ms (CPU-bound), then its pid
//   /stream         chunked answer with a duplicate header and a trailer
//   /echo           the POST body back, with the client address the app sees
export default function lanesReal(req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/burn') {
    const end = performance.now() + Number(url.searchParams.get('ms') ?? 200);
    while (performance.now() < end);
    res.end(String(process.pid));
    return;
  }
  if (url.pathname === '/stream') {
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('trailer', 'x-sum');
    res.setHeader('x-pid', String(process.pid));
    res.writeHead(207, 'Mixed Bag');
    res.write('one,');
    res.write('two');
    res.addTrailers({ 'x-sum': '7' });
    res.end();
    return;
  }
  if (url.pathname === '/echo') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => res.end(JSON.stringify({ pid: process.pid, body, remote: req.socket.remoteAddress, spoof: req.headers['x-drover-client'] ?? null })));
    return;
  }
  res.end(String(process.pid));
}
