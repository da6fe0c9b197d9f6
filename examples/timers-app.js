// A plain app that keeps time with Node's own timers and clock, not with
// drover's AppContext. Under `drover sim` (and the simulator's tests) those
// are the worker's virtual clock, so a run replays from its seed; on the real
// OS they are the host's.
//   npx drover examples/timers-app.js
//   GET /?ms=250          answers after 250 ms (setTimeout, then setImmediate)
//   GET /ticks?n=3&ms=100 answers after 3 ticks of a 100 ms setInterval
// The answer is JSON: when it was asked and answered (Date.now()), how long
// it waited (performance.now()).
export default function timersApp(req, res) {
  const url = new URL(req.url, 'http://x');
  const ms = Number(url.searchParams.get('ms') ?? 100);
  const asked = Date.now();
  const t0 = performance.now();
  const answer = (extra) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ asked, answered: Date.now(), waited: performance.now() - t0, ...extra }) + '\n');
  };
  if (url.pathname === '/ticks') {
    const n = Number(url.searchParams.get('n') ?? 3);
    let ticks = 0;
    const timer = setInterval(() => {
      if (++ticks < n) return;
      clearInterval(timer);
      answer({ ticks, at: new Date().toISOString() });
    }, ms);
    return;
  }
  setTimeout(() => setImmediate(() => answer({ at: new Date().toISOString() })), ms);
}
