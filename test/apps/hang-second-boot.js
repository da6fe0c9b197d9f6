// Answers /slow?ms=N after N ms and / at once, each with its pid; the second
// process to load it in this host (module state is per host in the
// simulator) never finishes booting, so a reload to it fails on its timeout.
let boots = 0;

export default async function createApp(ctx) {
  if (++boots === 2) await ctx.sleep(1e9);
  return async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/slow') await ctx.sleep(Number(url.searchParams.get('ms') ?? 100));
    res.end(String(ctx.pid));
  };
}
