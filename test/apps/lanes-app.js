// The lanes test app (test/runtime/lanes.*.test.ts). Simulator-safe: time
// and CPU only through the AppContext drover hands its factory, never host
// timers. Every route but /stream and /peer answers with the pid, so a test
// knows which process ran a request (slow-lane workers are the processes
// whose program is 'slow-worker').
//   any path       `?burn=N` holds the event loop N ms, `?sleep=N` waits
//                  N ms, both before anything else (default 0)
//   .../seen       JSON: the URLs this process has run, oldest first
//   /echo...       (any method) the request body, byte for byte, with its
//                  length in x-echo-length
//   /peer...       JSON: the peer address and port the app sees, and
//                  whether an x-drover-client header reached it
//   /stream...     203 "Partly Mine", two set-cookie and two x-multi
//                  lines, a chunked body of `?parts=N` (default 3) parts
//                  written `?gap=N` ms (default 200) apart, and trailers
//   /big...        `?kb=N` (default 4096) KiB of 'x' in 64 KiB writes,
//                  waiting for 'drain' whenever write() says so; trailer
//                  X-Done: the virtual time its last write was taken
//   anything else  `PID URL START`: START is the virtual time (ctx.now())
//                  the app got the request, before the burn or sleep;
//                  with `?status=N`, answered N
export default function createApp(ctx) {
  const seen = [];
  return async (req, res) => {
    const start = ctx.now();
    const url = new URL(req.url, 'http://x');
    seen.push(req.url);
    const burn = Number(url.searchParams.get('burn') ?? 0);
    const sleep = Number(url.searchParams.get('sleep') ?? 0);
    if (sleep > 0) await ctx.sleep(sleep);
    if (burn > 0) ctx.burn(burn);
    const path = url.pathname;
    if (path === '/seen' || path.endsWith('/seen')) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ pid: ctx.pid, seen }));
    } else if (path.startsWith('/echo')) {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks);
      res.setHeader('x-echo-length', String(body.length));
      res.setHeader('x-echo-pid', String(ctx.pid));
      res.end(body);
    } else if (path.startsWith('/peer')) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        pid: ctx.pid,
        address: req.socket.remoteAddress ?? null,
        port: req.socket.remotePort ?? null,
        header: req.headers['x-drover-client'] ?? null,
        raw: req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i].toLowerCase() === 'x-drover-client').length,
      }));
    } else if (path.startsWith('/big')) {
      const kb = Number(url.searchParams.get('kb') ?? 4096);
      res.setHeader('X-Pid', String(ctx.pid));
      res.setHeader('Trailer', 'X-Done');
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (let sent = 0; sent < kb * 1024; sent += chunk.length) {
        if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      }
      res.addTrailers({ 'X-Done': String(ctx.now()) });
      res.end();
    } else if (path.startsWith('/stream')) {
      const parts = Number(url.searchParams.get('parts') ?? 3);
      const gap = Number(url.searchParams.get('gap') ?? 200);
      // setHeader with a list: duplicates survive (see dateHeader in worker.ts for writeHead's raw arrays).
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
      res.setHeader('X-Multi', ['one', 'two']);
      res.setHeader('X-Pid', String(ctx.pid));
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('Trailer', 'X-Checksum, X-Parts');
      res.writeHead(203, 'Partly Mine');
      let all = '';
      for (let i = 0; i < parts; i++) {
        if (i > 0) await ctx.sleep(gap);
        const chunk = `part ${i} of ${parts};`;
        all += chunk;
        res.write(chunk);
      }
      res.addTrailers([['X-Checksum', String(all.length)], ['X-Parts', String(parts)]]);
      res.end();
    } else {
      res.statusCode = Number(url.searchParams.get('status') ?? 200);
      res.end(`${ctx.pid} ${req.url} ${start}`);
    }
  };
}
