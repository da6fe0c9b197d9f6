// A test app for the hostile-client tests (test/runtime/hostile.real.test.ts).
// Every answer carries the pid of the process that ran it (x-pid), so a test
// can tell a fast worker from the slow-lane worker.
//   /                 the worker's pid (a hello world)
//   /big?bytes=N      N bytes of 'x' (default 8 MiB), written at once
//   /burn?ms=N        holds the event loop for N ms (CPU-bound), then its pid
//   /echo             what the app saw: raw headers, raw trailers, the body, the peer
//   /upload, /login   reads the whole body, then {pid, bytes}
//   /early            writes its head at once, then reads the body and ends
//   /hold?ms=N        answers `held` after N ms (default 60 s) without holding the loop
//   /stamp            the time the app ran it (Date.now())
//   /bighead?bytes=N  an answer with an N-byte header (burn=N: once the head is all written, N ms held before the end)
//   /trailered        a chunked answer that announces and sends a trailer (node:http throws
//                     on the announcement where it cannot chunk: HEAD, an HTTP/1.0 client)
//   /hints            103 Early Hints and 102 Processing, then its pid
//   /rawhead?line=S   writes `HTTP/1.1 S` and a body straight to the socket, past node:http (burn=N: N ms between;
//                     upgrade=1: with `Connection: upgrade` and `Upgrade: websocket`)
export default function hostile(req, res) {
  const url = new URL(req.url, 'http://x');
  res.setHeader('x-pid', String(process.pid));
  switch (url.pathname) {
    case '/big': {
      const n = Number(url.searchParams.get('bytes') ?? 8 * 1024 * 1024);
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('content-length', String(n));
      res.end(Buffer.alloc(n, 'x'));
      return;
    }
    case '/burn': {
      const end = performance.now() + Number(url.searchParams.get('ms') ?? 200);
      while (performance.now() < end);
      res.end(String(process.pid));
      return;
    }
    case '/echo': {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          pid: process.pid,
          method: req.method,
          headers: req.rawHeaders,
          parsed: Object.keys(req.headers),
          distinct: Object.keys(req.headersDistinct),
          trailers: req.rawTrailers,
          body: Buffer.concat(chunks).toString('latin1'),
          remote: req.socket.remoteAddress,
        }));
      });
      return;
    }
    case '/upload':
    case '/login': {
      let bytes = 0;
      req.on('data', (c) => (bytes += c.length));
      req.on('end', () => res.end(JSON.stringify({ pid: process.pid, bytes })));
      return;
    }
    case '/early': {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      let bytes = 0;
      req.on('data', (c) => (bytes += c.length));
      req.on('end', () => res.end(`read ${bytes}\n`));
      return;
    }
    case '/hold': {
      setTimeout(() => res.end('held'), Number(url.searchParams.get('ms') ?? 60_000));
      return;
    }
    case '/trailered':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
      res.write('one,');
      res.addTrailers({ 'x-sum': '7' });
      res.end('two');
      return;
    case '/hints':
      res.writeEarlyHints({ link: ['</a.css>; rel=preload; as=style', '</b.js>; rel=preload; as=script'] });
      res.writeProcessing();
      res.end(String(process.pid));
      return;
    case '/rawhead': {
      // ...then, with burn=N, holds its event loop N ms before it ends.
      const upgrade = url.searchParams.has('upgrade') ? 'connection: upgrade\r\nupgrade: websocket\r\n' : '';
      res.socket.write(`HTTP/1.1 ${url.searchParams.get('line')}\r\n${upgrade}content-length: 2\r\n\r\n`);
      const end = performance.now() + Number(url.searchParams.get('burn') ?? 0);
      while (performance.now() < end);
      res.socket.end('ok');
      return;
    }
    case '/stamp':
      res.end(String(Date.now()));
      return;
    case '/bighead': {
      res.setHeader('x-big', 'a'.repeat(Number(url.searchParams.get('bytes') ?? 20_000)));
      const burn = Number(url.searchParams.get('burn') ?? 0);
      if (burn === 0) {
        res.end('ok');
        return;
      }
      // The head goes out whole (the write's callback), then the event loop is held.
      res.write('start,', () => {
        const end = performance.now() + burn;
        while (performance.now() < end);
        res.end('done');
      });
      return;
    }
    default:
      res.end(String(process.pid));
  }
}
