// A test app that works in the simulator too: it waits and burns CPU through
// the AppContext drover hands its factory, never with host timers.
//   /          the worker's pid
//   /slow?ms=N answers after N ms
//   /burn?ms=N holds the worker's event loop for N ms first
//   /hang      holds it for ever (a hung worker)
export default function createApp(ctx) {
  return async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const ms = Number(url.searchParams.get('ms') ?? 100);
    if (url.pathname === '/slow') await ctx.sleep(ms);
    else if (url.pathname === '/burn') ctx.burn(ms);
    else if (url.pathname === '/hang') ctx.burn(1e9);
    res.end(String(ctx.pid));
  };
}
