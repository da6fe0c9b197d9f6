// The hostile-client app for the simulator (test/runtime/clients.sim.test.ts):
// time and CPU only through the AppContext.
//   /               the worker's pid
//   /burn?ms=N      holds the event loop for N ms, then its pid
//   /big?kb=N       N KiB in 16 KiB writes, waiting for 'drain' as a good app does
//   /echo           reads the body; answers what it saw: raw headers, raw trailers, body, peer
//   /upload         reads the body, then its pid
//   /sleep?ms=N     begins its answer after N ms (past a request_timeout: into a response answered 504)
//   /count          how many /count requests this worker's app has run, this one included
export default function createApp(ctx) {
  let counted = 0;
  return async (req, res) => {
    const url = new URL(req.url, 'http://x');
    res.setHeader('x-pid', String(ctx.pid));
    if (url.pathname === '/count') {
      res.end(String(++counted));
      return;
    }
    if (url.pathname === '/burn') {
      ctx.burn(Number(url.searchParams.get('ms') ?? 100));
      res.end(String(ctx.pid));
      return;
    }
    if (url.pathname === '/big') {
      const chunk = Buffer.alloc(16 * 1024, 'x');
      let left = Number(url.searchParams.get('kb') ?? 1024) / 16;
      res.setHeader('content-length', String(left * chunk.length));
      while (left-- > 0) {
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        if (res.destroyed) return;
      }
      res.end();
      return;
    }
    if (url.pathname === '/sleep') {
      await ctx.sleep(Number(url.searchParams.get('ms') ?? 1000));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('late ');
      res.end(String(ctx.pid));
      return;
    }
    if (url.pathname === '/echo' || url.pathname === '/upload') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      await new Promise((r) => req.on('end', r));
      if (url.pathname === '/upload') res.end(String(ctx.pid));
      else res.end(JSON.stringify({ pid: ctx.pid, headers: req.rawHeaders, trailers: req.rawTrailers, body: Buffer.concat(chunks).toString('latin1'), remote: req.socket.remoteAddress }));
      return;
    }
    res.end(String(ctx.pid));
  };
}
